/* A host->guest byte queue under flow control (exec stdin, TCP tunnels): the bytes the host sent that the guest's
 * fd has not taken yet, and the window credit the host is owed for the ones it has. */
#ifndef JITVM_BYTEQ_H
#define JITVM_BYTEQ_H

#include <stddef.h>
#include <stdint.h>

/* All zeros is an empty queue. */
struct byteq {
    uint8_t *buf;          /* queued bytes are buf[head .. head+len) */
    size_t head, len, cap;
    uint64_t unacked;      /* bytes received and not yet granted back to the host (queued ones included) */
};

/* Counts `len` bytes the host sent against its window (INITIAL_WINDOW unacknowledged bytes at most): 0, or -1,
 * counting nothing, when they overrun it, which is the host's protocol error. */
int byteq_receive(struct byteq *q, size_t len);
/* Queues `data` for `fd` behind the bytes already queued; when none are, writes what `fd` takes at once and copies
 * only the rest. The buffer grows as needed (aborts when memory runs out). -1 (errno set) when the write failed:
 * nothing of `data` is queued then. */
int byteq_put(struct byteq *q, int fd, const uint8_t *data, size_t len);
/* Writes queued bytes to `fd` until none are left or it would block; -1 (errno set) when a write failed. */
int byteq_write(struct byteq *q, int fd);
/* Drops the queued bytes (nobody will read them); the host is still granted their credit. */
void byteq_drop(struct byteq *q);
/* Sends a WINDOW on `channel` of stream `id` for every byte received and no longer queued (written or dropped);
 * nothing when there are none. */
void byteq_grant(struct byteq *q, uint32_t id, uint8_t channel);
/* Frees the buffer; the queue is empty afterwards. */
void byteq_free(struct byteq *q);

#endif
