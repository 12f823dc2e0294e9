/* Routing of parsed frames to their handlers. */
#ifndef JITVM_DISPATCH_H
#define JITVM_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

void dispatch_reset(void);
void dispatch_frame(uint8_t type, uint8_t flags, uint32_t id, const uint8_t *p, size_t len);
void conn_protocol_error(const char *why);

#endif
