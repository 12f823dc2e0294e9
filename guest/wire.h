/* Bounds-checked payload reader and fixed-buffer payload builder (little-endian). */
#ifndef JITVM_WIRE_H
#define JITVM_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* A reader never reads past its end: a short field sets `bad` and yields zeros. */
struct rd {
    const uint8_t *p;
    size_t len, off;
    int bad;
};

void rd_init(struct rd *r, const uint8_t *p, size_t len);
uint8_t rd_u8(struct rd *r);
uint16_t rd_u16(struct rd *r);
uint32_t rd_u32(struct rd *r);
uint64_t rd_u64(struct rd *r);
/* A str field as a malloc'd NUL-terminated copy; NULL (and `bad`) on a short field or an embedded NUL. */
char *rd_str(struct rd *r);
size_t rd_left(const struct rd *r);
/* 1 when every field parsed and the payload is fully consumed. */
int rd_done(const struct rd *r);

/* A writer over a caller's buffer: an overflow sets `overflow` and stops writing. */
struct wb {
    uint8_t *p;
    size_t len, cap;
    int overflow;
};

void wb_init(struct wb *w, uint8_t *buf, size_t cap);
void wb_u8(struct wb *w, uint8_t v);
void wb_u16(struct wb *w, uint16_t v);
void wb_u32(struct wb *w, uint32_t v);
void wb_u64(struct wb *w, uint64_t v);
void wb_str(struct wb *w, const char *s);
void wb_bytes(struct wb *w, const void *data, size_t len);

uint32_t le32(const uint8_t *p);
void put_le32(uint8_t *p, uint32_t v);

#endif
