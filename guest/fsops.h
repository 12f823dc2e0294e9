/* Helpers shared by the file operations. */
#ifndef JITVM_FSOPS_H
#define JITVM_FSOPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Sends ERROR with the code for `err` and "path: strerror". */
void send_errno(uint32_t id, int err, const char *path);
/* Parses `[u32,] str path` filling the whole payload; NULL when malformed. */
char *parse_path(const uint8_t *p, size_t len, int with_u32, uint32_t *u32);
/* mkdir -p: parents get 0755, the last component (when include_last) exactly `mode`. On failure returns -1 with
 * errno set and *where a malloc'd copy of the path prefix that failed. */
int make_dirs(const char *path, int include_last, mode_t mode, char **where);

#endif
