/* Host->guest byte queues; see byteq.h. */
#include "byteq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

int byteq_receive(struct byteq *q, size_t len)
{
    if (q->unacked + len > INITIAL_WINDOW)
        return -1;
    q->unacked += len;
    return 0;
}

/* Writes p[0..len) until done or `fd` would block; returns the bytes written, with *err the errno of a failed write
 * that stopped it (0: none). */
static size_t write_some(int fd, const uint8_t *p, size_t len, int *err)
{
    size_t done = 0;
    *err = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            *err = errno;
        if (n < 0)
            break;
        done += (size_t)n;
    }
    return done;
}

static void append(struct byteq *q, const uint8_t *data, size_t len)
{
    if (q->head + q->len + len > q->cap) {
        if (q->len > 0)
            memmove(q->buf, q->buf + q->head, q->len);
        q->head = 0;
    }
    if (q->len + len > q->cap) {
        size_t cap = q->cap ? q->cap * 2 : DATA_CHUNK;
        q->cap = cap > q->len + len ? cap : q->len + len;
        q->buf = realloc(q->buf, q->cap);
        if (!q->buf)
            abort();
    }
    memcpy(q->buf + q->head + q->len, data, len);
    q->len += len;
}

int byteq_put(struct byteq *q, int fd, const uint8_t *data, size_t len)
{
    size_t done = 0;
    if (q->len == 0) {
        int err;
        done = write_some(fd, data, len, &err);
        if (err) {
            errno = err;
            return -1;
        }
    }
    if (done < len)
        append(q, data + done, len - done);
    return 0;
}

int byteq_write(struct byteq *q, int fd)
{
    if (q->len == 0)
        return 0;
    int err;
    size_t n = write_some(fd, q->buf + q->head, q->len, &err);
    q->head += n;
    q->len -= n;
    if (q->len == 0)
        q->head = 0;
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

void byteq_drop(struct byteq *q)
{
    q->head = q->len = 0;
}

void byteq_grant(struct byteq *q, uint32_t id, uint8_t channel)
{
    uint64_t consumed = q->unacked - q->len;
    if (consumed == 0)
        return;
    q->unacked = q->len;
    send_window(id, channel, consumed);
}

void byteq_free(struct byteq *q)
{
    free(q->buf);
    memset(q, 0, sizeof *q);
}
