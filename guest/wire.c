/* Payload parsing and building; see wire.h. */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#include "protocol.h"

uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

void rd_init(struct rd *r, const uint8_t *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
    r->bad = 0;
}

size_t rd_left(const struct rd *r)
{
    return r->len - r->off;
}

static const uint8_t *take(struct rd *r, size_t n)
{
    if (r->bad || rd_left(r) < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *q = r->p + r->off;
    r->off += n;
    return q;
}

uint8_t rd_u8(struct rd *r)
{
    const uint8_t *q = take(r, 1);
    return q ? q[0] : 0;
}

uint16_t rd_u16(struct rd *r)
{
    const uint8_t *q = take(r, 2);
    return q ? (uint16_t)(q[0] | q[1] << 8) : 0;
}

uint32_t rd_u32(struct rd *r)
{
    const uint8_t *q = take(r, 4);
    return q ? le32(q) : 0;
}

uint64_t rd_u64(struct rd *r)
{
    const uint8_t *q = take(r, 8);
    return q ? (uint64_t)le32(q) | (uint64_t)le32(q + 4) << 32 : 0;
}

char *rd_str(struct rd *r)
{
    uint32_t n = rd_u32(r);
    if (n > MAX_PAYLOAD) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *q = take(r, n);
    if (!q)
        return NULL;
    if (memchr(q, 0, n)) {
        r->bad = 1;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s)
        abort();
    memcpy(s, q, n);
    s[n] = 0;
    return s;
}

int rd_done(const struct rd *r)
{
    return !r->bad && r->off == r->len;
}

void wb_init(struct wb *w, uint8_t *buf, size_t cap)
{
    w->p = buf;
    w->len = 0;
    w->cap = cap;
    w->overflow = 0;
}

void wb_bytes(struct wb *w, const void *data, size_t len)
{
    if (w->overflow || w->cap - w->len < len) {
        w->overflow = 1;
        return;
    }
    if (len)
        memcpy(w->p + w->len, data, len);
    w->len += len;
}

void wb_u8(struct wb *w, uint8_t v)
{
    wb_bytes(w, &v, 1);
}

void wb_u16(struct wb *w, uint16_t v)
{
    uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
    wb_bytes(w, b, 2);
}

void wb_u32(struct wb *w, uint32_t v)
{
    uint8_t b[4];
    put_le32(b, v);
    wb_bytes(w, b, 4);
}

void wb_u64(struct wb *w, uint64_t v)
{
    wb_u32(w, (uint32_t)v);
    wb_u32(w, (uint32_t)(v >> 32));
}

void wb_str(struct wb *w, const char *s)
{
    size_t n = strlen(s);
    wb_u32(w, (uint32_t)n);
    wb_bytes(w, s, n);
}
