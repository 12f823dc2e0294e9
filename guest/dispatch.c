/* Routes each well-framed message: the handshake, requests that open streams, and frames for open streams. */
#include <stdio.h>
#include <stdlib.h>

#include "agent.h"
#include "dispatch.h"
#include "wire.h"

int shutdown_requested;
static int hello_done;

void dispatch_reset(void)
{
    hello_done = 0;
}

static void hello(uint32_t id, const uint8_t *p, size_t len)
{
    struct rd r;
    rd_init(&r, p, len);
    uint32_t min = rd_u32(&r), max = rd_u32(&r);
    if (id != 0 || !rd_done(&r)) {
        conn_protocol_error("malformed HELLO");
        return;
    }
    /* A second HELLO starts the connection over: the host may have reconnected without us seeing the gap. */
    streams_close_all();
    hello_done = 0;
    if (min > PROTOCOL_VERSION || max < MIN_PROTOCOL_VERSION || min > max) {
        send_error(0, ERR_UNSUPPORTED_VERSION, "agent speaks protocol versions %d..%d, host offered %u..%u",
                   MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, min, max);
        return;
    }
    uint8_t buf[64];
    struct wb w;
    wb_init(&w, buf, sizeof buf);
    wb_u32(&w, max < PROTOCOL_VERSION ? max : PROTOCOL_VERSION);
    wb_u32(&w, CAP_EXEC | CAP_FILES | CAP_SIGNAL | CAP_SHUTDOWN | CAP_TCP | (identity_available() ? CAP_IDENTITY : 0));
    wb_u32(&w, MAX_PAYLOAD);
    wb_u32(&w, INITIAL_WINDOW);
    wb_str(&w, AGENT_VERSION);
    send_frame(MSG_HELLO_OK, 0, 0, buf, w.len);
    hello_done = 1;
}

static int shutdown_req(uint32_t id, size_t len)
{
    if (len != 0)
        return -1;
    send_ok(id, 0);
    shutdown_requested = 1;
    return 0;
}

static int window(struct stream *s, const uint8_t *p, size_t len)
{
    struct rd r;
    rd_init(&r, p, len);
    uint8_t ch = rd_u8(&r);
    uint32_t inc = rd_u32(&r);
    if (!rd_done(&r) || ch > WINDOW_TCP)
        return -1;
    if (!s)
        return 0;
    if (s->kind == ST_EXEC && (ch == WINDOW_STDOUT || ch == WINDOW_STDERR)) {
        s->x.out_credit[ch - WINDOW_STDOUT] += inc;
        return 0;
    }
    if (s->kind == ST_FILE_READ && ch == WINDOW_FILE) {
        s->f.credit += inc;
        return 0;
    }
    if (s->kind == ST_TCP && ch == WINDOW_TCP) {
        tcp_window(s, inc);
        return 0;
    }
    return -1;
}

/* Frames that continue an open stream; for a stream that is not open they are dropped. */
static int continuation(uint8_t type, uint8_t flags, uint32_t id, const uint8_t *p, size_t len)
{
    struct stream *s = stream_find(id);
    switch (type) {
    case MSG_WINDOW:
        return window(s, p, len);
    case MSG_SIGNAL: {
        struct rd r;
        rd_init(&r, p, len);
        uint32_t signo = rd_u32(&r);
        if (!rd_done(&r) || (s && s->kind != ST_EXEC))
            return -1;
        if (s)
            exec_signal(s, signo);
        return 0;
    }
    case MSG_STDIN:
        if (!s)
            return 0;
        return s->kind == ST_EXEC ? exec_stdin(s, flags, p, len) : -1;
    case MSG_FILE_DATA:
        if (!s)
            return 0;
        return s->kind == ST_FILE_WRITE ? file_data(s, flags, p, len) : -1;
    case MSG_TCP_DATA:
        if (!s)
            return 0;
        return s->kind == ST_TCP ? tcp_data(s, flags, p, len) : -1;
    }
    return -1;
}

/* The host abandons a stream: its files are closed, its process group killed, its TCP connection reset or its
 * ACCEPT withdrawn, and nothing more is said about it. */
static int cancel(uint32_t id, size_t len)
{
    if (len != 0)
        return -1;
    struct stream *s = id ? stream_find(id) : NULL;
    if (s)
        stream_close(s);
    return 0;
}

/* Requests open a stream; returns -1 when the payload is malformed. */
static int request(uint8_t type, uint32_t id, const uint8_t *p, size_t len)
{
    if (!hello_done) {
        send_error(id, ERR_PROTOCOL, "HELLO must come first");
        return 0;
    }
    if (id == 0) {
        send_error(0, ERR_INVALID_ARGUMENT, "requests need a nonzero stream id");
        return 0;
    }
    struct stream *old = stream_find(id);
    if (old) {
        /* Our ERROR is terminal for the id on the host side, so the old stream ends here too. */
        stream_close(old);
        send_error(id, ERR_INVALID_ARGUMENT, "stream %u is already open", id);
        return 0;
    }
    int holds_slot = type == MSG_EXEC || type == MSG_FILE_WRITE || type == MSG_FILE_READ || type == MSG_TCP_CONNECT ||
                     type == MSG_TCP_ACCEPT;
    if (holds_slot && stream_count() >= MAX_STREAMS) {
        send_error(id, ERR_RESOURCE_LIMIT, "too many open streams (max %d)", MAX_STREAMS);
        return 0;
    }
    switch (type) {
    case MSG_PING:
        send_frame(MSG_PONG, 0, id, p, len);
        return 0;
    case MSG_EXEC:
        return exec_start(id, p, len);
    case MSG_FILE_WRITE:
        return file_write_start(id, p, len);
    case MSG_FILE_READ:
        return file_read_start(id, p, len);
    case MSG_MKDIR:
        return fs_mkdir(id, p, len);
    case MSG_STAT:
        return fs_stat(id, p, len);
    case MSG_LIST:
        return fs_list(id, p, len);
    case MSG_REMOVE:
        return fs_remove(id, p, len);
    case MSG_SHUTDOWN:
        return shutdown_req(id, len);
    case MSG_SET_IDENTITY:
        return identity_set(id, p, len);
    case MSG_TCP_CONNECT:
        return tcp_connect_start(id, p, len);
    case MSG_TCP_ACCEPT:
        return tcp_accept_start(id, p, len);
    }
    return 0;
}

void dispatch_frame(uint8_t type, uint8_t flags, uint32_t id, const uint8_t *p, size_t len)
{
    int rc = 0;
    switch (type) {
    case MSG_HELLO:
        hello(id, p, len);
        return;
    case MSG_WINDOW:
    case MSG_SIGNAL:
    case MSG_STDIN:
    case MSG_FILE_DATA:
    case MSG_TCP_DATA:
        rc = continuation(type, flags, id, p, len);
        break;
    case MSG_CANCEL:
        rc = cancel(id, len);
        break;
    case MSG_PING:
    case MSG_EXEC:
    case MSG_FILE_WRITE:
    case MSG_FILE_READ:
    case MSG_MKDIR:
    case MSG_STAT:
    case MSG_LIST:
    case MSG_REMOVE:
    case MSG_SHUTDOWN:
    case MSG_SET_IDENTITY:
    case MSG_TCP_CONNECT:
    case MSG_TCP_ACCEPT:
        rc = request(type, id, p, len);
        break;
    default: {
        struct stream *s = stream_find(id);
        if (s)
            stream_close(s);
        send_error(id, ERR_UNSUPPORTED, "unsupported message type 0x%02x", type);
        return;
    }
    }
    if (rc < 0) {
        char why[64];
        snprintf(why, sizeof why, "malformed frame of type 0x%02x on stream %u", type, id);
        conn_protocol_error(why);
    }
}
