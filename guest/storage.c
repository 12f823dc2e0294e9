/* Root switch and extra mounts: the root drive (ext4, read-only) under an overlay whose upper layer is a tmpfs or a
 * per-sandbox disk, then switch root into it; then host-attached disks and virtio-fs shares at their paths. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "boot.h"

#define LOWER "/jitvm/lower"
#define RW "/jitvm/rw"
#define NEWROOT "/jitvm/root"
#define DEVICE_WAIT_MS 3000

static void mkdirs(const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        mkdir(buf, 0755);
        *p = '/';
    }
    mkdir(buf, 0755);
}

static int read_serial(const char *disk, char *out, size_t cap)
{
    char path[300];
    snprintf(path, sizeof path, "/sys/block/%s/serial", disk);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    int ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    out[strcspn(out, "\n")] = 0;
    return ok;
}

static int find_by_serial(const char *drive_id, char *dev, size_t cap)
{
    DIR *d = opendir("/sys/block");
    if (!d)
        return 0;
    struct dirent *e;
    int found = 0;
    char serial[64];
    while (!found && (e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "vd", 2) == 0 && read_serial(e->d_name, serial, sizeof serial) &&
            strcmp(serial, drive_id) == 0) {
            snprintf(dev, cap, "/dev/%s", e->d_name);
            found = 1;
        }
    closedir(d);
    return found;
}

/* Backends without disk serials attach drives in the order jitvm.drives lists them: vda, vdb, … */
static int find_by_order(const char *drive_id, char *dev, size_t cap)
{
    char order[1024];
    if (!cmdline_last(BOOT_ARG_DRIVES, order, sizeof order))
        return 0;
    int index = 0;
    for (char *id = strtok(order, ","); id; id = strtok(NULL, ","), index++)
        if (strcmp(id, drive_id) == 0 && index < 26) {
            snprintf(dev, cap, "/dev/vd%c", 'a' + index);
            return 1;
        }
    return 0;
}

int drive_device(const char *drive_id, char *dev, size_t cap)
{
    const struct timespec step = { 0, 20 * 1000 * 1000 };
    for (int waited = 0; waited <= DEVICE_WAIT_MS; waited += 20) {
        struct stat st;
        if ((find_by_serial(drive_id, dev, cap) || find_by_order(drive_id, dev, cap)) && stat(dev, &st) == 0)
            return 0;
        nanosleep(&step, NULL);
    }
    logmsg("error: no disk for drive %s", drive_id);
    return -1;
}

static int mount_drive(const char *drive_id, const char *target, unsigned long flags)
{
    char dev[64];
    if (drive_device(drive_id, dev, sizeof dev) < 0)
        return -1;
    mkdirs(target);
    if (mount(dev, target, "ext4", flags, NULL) < 0) {
        logmsg("error: mounting drive %s (%s) on %s: %s", drive_id, dev, target, strerror(errno));
        return -1;
    }
    return 0;
}

/* The overlay's writable layer: `tmpfs:<MiB>` (0: the kernel's default, half the RAM) or `disk:<drive-id>`. */
static int mount_upper(void)
{
    char spec[128] = "tmpfs:0";
    cmdline_last(BOOT_ARG_OVERLAY, spec, sizeof spec);
    if (strncmp(spec, "disk:", 5) == 0)
        return mount_drive(spec + 5, RW, MS_NOATIME);
    unsigned long mib = strncmp(spec, "tmpfs:", 6) == 0 ? strtoul(spec + 6, NULL, 10) : 0;
    char options[64] = "mode=0755";
    if (mib > 0)
        snprintf(options, sizeof options, "mode=0755,size=%lum", mib);
    mkdirs(RW);
    if (mount("tmpfs", RW, "tmpfs", 0, options) < 0) {
        logmsg("error: mounting the overlay's tmpfs: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Moves the early mounts under the new root, then makes it / (what switch_root does, minus deleting the initramfs). */
static int switch_root(void)
{
    static const char *const moved[] = { "/dev", "/proc", "/sys", "/run", "/tmp" };
    for (size_t i = 0; i < sizeof moved / sizeof moved[0]; i++) {
        char target[64];
        snprintf(target, sizeof target, NEWROOT "%s", moved[i]);
        mkdirs(target);
        if (mount(moved[i], target, NULL, MS_MOVE, NULL) < 0)
            logmsg("warning: moving %s into the new root: %s", moved[i], strerror(errno));
    }
    if (chdir(NEWROOT) < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0) {
        logmsg("error: switching root: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int mount_root(const char *root_id)
{
    if (mount_drive(root_id, LOWER, MS_RDONLY) < 0 || mount_upper() < 0)
        return -1;
    mkdir(RW "/upper", 0755);
    mkdir(RW "/work", 0755);
    mkdirs(NEWROOT);
    if (mount("overlay", NEWROOT, "overlay", 0, "lowerdir=" LOWER ",upperdir=" RW "/upper,workdir=" RW "/work") < 0) {
        logmsg("error: mounting the root overlay: %s", strerror(errno));
        return -1;
    }
    return switch_root();
}

/* `blk:<drive-id>:<ro|rw>:<path>` or `virtiofs:<tag>:<ro|rw>:<path>`. */
static void mount_extra(const char *value, void *ctx)
{
    int *failed = ctx;
    char kind[16], source[64], mode[4];
    int consumed = 0;
    if (sscanf(value, "%15[^:]:%63[^:]:%3[^:]:%n", kind, source, mode, &consumed) != 3 || value[consumed] != '/') {
        logmsg("error: malformed %s=%s", BOOT_ARG_MOUNT, value);
        *failed = 1;
        return;
    }
    const char *path = value + consumed;
    unsigned long flags = strcmp(mode, "rw") == 0 ? MS_NOATIME : MS_RDONLY;
    if (strcmp(kind, "blk") == 0) {
        if (mount_drive(source, path, flags) < 0)
            *failed = 1;
        return;
    }
    mkdirs(path);
    if (strcmp(kind, "virtiofs") != 0 || mount(source, path, "virtiofs", flags, NULL) < 0) {
        logmsg("error: mounting %s share %s on %s: %s", kind, source, path, strerror(errno));
        *failed = 1;
    }
}

int boot_storage(void)
{
    char root_id[64];
    if (cmdline_last(BOOT_ARG_ROOT, root_id, sizeof root_id) && mount_root(root_id) < 0)
        return -1;
    int failed = 0;
    cmdline_each(BOOT_ARG_MOUNT, mount_extra, &failed);
    return failed ? -1 : 0;
}
