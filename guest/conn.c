/* One host connection: the input buffer that frames are parsed from and the output queue flushed on POLLOUT. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "dispatch.h"
#include "wire.h"

static int fd = -1;
static int dead;  /* after a protocol error: input is ignored until the host disconnects */

static uint8_t inbuf[FRAME_HEADER_SIZE + MAX_PAYLOAD];
static size_t in_len;

/* Output queue: bytes [head, len) of buf are still to be written. */
static uint8_t *obuf;
static size_t ohead, olen, ocap;

size_t outq_len(void)
{
    return olen - ohead;
}

static void outq_reset(void)
{
    free(obuf);
    obuf = NULL;
    ohead = olen = ocap = 0;
}

static void outq_reserve(size_t n)
{
    /* Compacting only when the consumed prefix is at least as big as what remains keeps moves amortized O(1). */
    if (ohead > 0 && ohead >= olen - ohead) {
        memmove(obuf, obuf + ohead, olen - ohead);
        olen -= ohead;
        ohead = 0;
    }
    if (ocap - olen >= n)
        return;
    size_t cap = ocap ? ocap : 65536;
    while (cap - olen < n)
        cap *= 2;
    obuf = realloc(obuf, cap);
    if (!obuf)
        abort();
    ocap = cap;
}

void send_frame(uint8_t type, uint8_t flags, uint32_t id, const void *payload, size_t len)
{
    if (fd < 0)
        return;
    uint8_t *body = frame_reserve(len);
    if (len)
        memcpy(body, payload, len);
    frame_commit(type, flags, id, len);
}

uint8_t *frame_reserve(size_t max_len)
{
    if (fd < 0)
        return NULL;
    outq_reserve(FRAME_HEADER_SIZE + max_len);
    return obuf + olen + FRAME_HEADER_SIZE;
}

void frame_commit(uint8_t type, uint8_t flags, uint32_t id, size_t len)
{
    uint8_t *h = obuf + olen;
    put_le32(h, (uint32_t)len);
    h[4] = type;
    h[5] = flags;
    h[6] = h[7] = 0;
    put_le32(h + 8, id);
    olen += FRAME_HEADER_SIZE + len;
}

void send_error(uint32_t id, uint32_t code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    uint8_t buf[1100];
    struct wb w;
    wb_init(&w, buf, sizeof buf);
    wb_u32(&w, code);
    wb_str(&w, msg);
    send_frame(MSG_ERROR, 0, id, buf, w.len);
}

void send_ok(uint32_t id, uint64_t value)
{
    uint8_t buf[8];
    struct wb w;
    wb_init(&w, buf, sizeof buf);
    wb_u64(&w, value);
    send_frame(MSG_OK, 0, id, buf, w.len);
}

void send_window(uint32_t id, uint8_t channel, uint64_t increment)
{
    while (increment > 0) {
        uint32_t step = increment > UINT32_MAX ? UINT32_MAX : (uint32_t)increment;
        uint8_t buf[5];
        struct wb w;
        wb_init(&w, buf, sizeof buf);
        wb_u8(&w, channel);
        wb_u32(&w, step);
        send_frame(MSG_WINDOW, 0, id, buf, w.len);
        increment -= step;
    }
}

void conn_attach(int newfd)
{
    fd = newfd;
    dead = 0;
    in_len = 0;
    outq_reset();
    dispatch_reset();
}

/* The host went away: end every session of the connection and forget everything it said. */
void conn_detach(void)
{
    streams_close_all();
    outq_reset();
    in_len = 0;
    dead = 0;
    fd = -1;
    dispatch_reset();
}

int conn_fd(void)
{
    return fd;
}

short conn_events(void)
{
    short ev = 0;
    if (dead || outq_len() < OUTQ_INPUT_CAP)
        ev |= POLLIN;
    if (outq_len() > 0)
        ev |= POLLOUT;
    return ev;
}

void conn_protocol_error(const char *why)
{
    logmsg("protocol error: %s", why);
    send_error(0, ERR_PROTOCOL, "protocol error: %s", why);
    streams_close_all();
    dead = 1;
    in_len = 0;
}

/* Dispatches every complete frame in the buffer; keeps a partial one for later. */
static void parse_frames(void)
{
    size_t off = 0;
    while (!dead && in_len - off >= FRAME_HEADER_SIZE) {
        const uint8_t *h = inbuf + off;
        uint32_t len = le32(h);
        if (len > MAX_PAYLOAD) {
            conn_protocol_error("frame length exceeds MAX_PAYLOAD");
            return;
        }
        if (h[6] != 0 || h[7] != 0 || (h[5] & ~FLAG_FIN) != 0) {
            conn_protocol_error("reserved bits set in frame header");
            return;
        }
        if (in_len - off < FRAME_HEADER_SIZE + (size_t)len)
            break;
        dispatch_frame(h[4], h[5], le32(h + 8), h + FRAME_HEADER_SIZE, len);
        off += FRAME_HEADER_SIZE + len;
    }
    if (dead) {
        in_len = 0;
        return;
    }
    /* Moving only after a frame was consumed: a frame arriving in many small reads is never shifted in place. */
    if (off > 0) {
        memmove(inbuf, inbuf + off, in_len - off);
        in_len -= off;
    }
}

int conn_read(void)
{
    for (int round = 0; round < 64; round++) {
        if (!dead && outq_len() >= OUTQ_INPUT_CAP)
            return 0;
        ssize_t n = read(fd, inbuf + in_len, sizeof inbuf - in_len);
        if (n == 0)
            return -1;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return -1;
        }
        if (dead)
            continue;
        in_len += (size_t)n;
        parse_frames();
        if (shutdown_requested)
            return 0;
    }
    return 0;
}

int conn_flush(void)
{
    while (fd >= 0 && outq_len() > 0) {
        ssize_t n = write(fd, obuf + ohead, outq_len());
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return -1;
        }
        ohead += (size_t)n;
    }
    if (outq_len() == 0)
        ohead = olen = 0;
    return 0;
}
