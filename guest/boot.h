/* Boot-time setup the host asks for on the kernel command line (PID 1 only): root switch, mounts, network.
 * docs/protocol.md ("Boot arguments") gives each argument's format. */
#ifndef JITVM_BOOT_H
#define JITVM_BOOT_H

#include <stddef.h>

/* Calls fn with the value of every `name=value` kernel argument, in command-line order. */
void cmdline_each(const char *name, void (*fn)(const char *value, void *ctx), void *ctx);
/* Copies the value of the last `name=value` kernel argument into out; 0 when there is none (or it does not fit). */
int cmdline_last(const char *name, char *out, size_t cap);

/* The /dev node of the virtio disk the host attached as `drive_id` (by its serial, else by attach order). */
int drive_device(const char *drive_id, char *dev, size_t cap);

/* Mounts the root drive under an overlay and switches root into it, then the extra mounts. 0, or -1 after logging
 * why: the VM cannot serve what the host asked for. */
int boot_storage(void);
/* Brings up lo, and the NIC as jitvm.net says (static address or DHCP). 0, or -1 after logging why. */
int boot_network(void);
/* Writes /etc/resolv.conf in the final root from what boot_network learned. */
void boot_resolver(void);

#endif
