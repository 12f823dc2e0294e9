/* PID-1 duties: mounts, console, kernel modules, power button, Ctrl-Alt-Del, and the final shutdown. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "boot.h"

#define MODULES_LIST "/etc/jitvm/modules"
#ifndef MODULE_INIT_COMPRESSED_FILE
#define MODULE_INIT_COMPRESSED_FILE 4
#endif

static void mount_fs(const char *src, const char *target, const char *type, unsigned long flags, const char *data)
{
    mkdir(target, 0755);  /* all targets sit directly under an existing directory */
    if (mount(src, target, type, flags, data) < 0 && errno != EBUSY)
        logmsg("warning: mount %s on %s: %s", type, target, strerror(errno));
}

static void console_stdio(void)
{
    int fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd < 0)
        return;
    for (int i = 0; i < 3; i++)
        if (fd != i)
            dup2(fd, i);
    if (fd > 2)
        close(fd);
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* One module path per line, already in dependency order. */
static void load_modules(void)
{
    FILE *f = fopen(MODULES_LIST, "re");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        char *path = line + strspn(line, " \t");
        path[strcspn(path, " \t\r\n")] = 0;
        if (!path[0] || path[0] == '#')
            continue;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        int flags = has_suffix(path, ".xz") || has_suffix(path, ".zst") || has_suffix(path, ".gz")
                        ? MODULE_INIT_COMPRESSED_FILE
                        : 0;
        if (fd < 0)
            logmsg("warning: module %s: %s", path, strerror(errno));
        else if (syscall(SYS_finit_module, fd, "", flags) < 0 && errno != EEXIST)
            logmsg("warning: module %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    free(line);
    fclose(f);
}

void init_system(void)
{
    unsigned long hardened = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    mount_fs("proc", "/proc", "proc", hardened, NULL);
    mount_fs("sysfs", "/sys", "sysfs", hardened, NULL);
    mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    console_stdio();
    mount_fs("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666");
    mount_fs("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    mount_fs("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    mount_fs("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
    if (symlink("/proc/self/fd", "/dev/fd") == 0) {
        symlink("/proc/self/fd/0", "/dev/stdin");
        symlink("/proc/self/fd/1", "/dev/stdout");
        symlink("/proc/self/fd/2", "/dev/stderr");
    }
    if (sethostname("jitvm", 5) < 0)
        logmsg("warning: sethostname: %s", strerror(errno));
    setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
    setenv("HOME", "/root", 1);
    setenv("TERM", "linux", 1);
    /* The kernel's default (kernel.ctrl-alt-del = 1) reboots at once on Ctrl-Alt-Del, without syncing; disabled, it
     * sends SIGINT to PID 1 instead, which main.c turns into an orderly shutdown. */
    if (reboot(RB_DISABLE_CAD) < 0)
        logmsg("warning: disabling the Ctrl-Alt-Del reboot: %s", strerror(errno));
    load_modules();
    /* A virtio console (hvc0: vfkit's only console) exists only once virtio_console is loaded: open it again. */
    console_stdio();
    /* The network comes first: DHCP runs busybox's udhcpc, which only the initramfs is sure to have. */
    if (boot_network() < 0 || boot_storage() < 0) {
        logmsg("error: the VM cannot be set up as the host asked (see above); powering off");
        sync();
        reboot(RB_AUTOBOOT);
        reboot(RB_POWER_OFF);
    }
    boot_resolver();
}

int init_open_inputs(int *fds, int max)
{
    DIR *d = opendir("/dev/input");
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while (n < max && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "event", 5) != 0)
            continue;
        char path[300];
        snprintf(path, sizeof path, "/dev/input/%s", e->d_name);
        int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0)
            fds[n++] = fd;
    }
    closedir(d);
    return n;
}

/* 1: the power button went down; 0: nothing; -1: the device is gone (stop watching it). */
int input_power_pressed(int fd)
{
    struct input_event ev[16];
    ssize_t n = read(fd, ev, sizeof ev);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    for (size_t i = 0; i < (size_t)n / sizeof ev[0]; i++)
        if (ev[i].type == EV_KEY && ev[i].code == KEY_POWER && ev[i].value == 1)
            return 1;
    return 0;
}

/* Reaps children until none is left or `ms` have passed. */
void reap_for(int sigfd, int ms)
{
    int64_t end = now_ms() + ms;
    for (;;) {
        pid_t pid;
        while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
            ;
        if (pid < 0 && errno == ECHILD)
            return;
        int64_t left = end - now_ms();
        if (left <= 0)
            return;
        struct pollfd p = { sigfd, POLLIN, 0 };
        if (poll(&p, 1, (int)left) > 0) {
            struct signalfd_siginfo si;
            while (read(sigfd, &si, sizeof si) > 0)
                ;
        }
    }
}

void system_shutdown(int sigfd)
{
    logmsg("shutting down");
    kill(-1, SIGTERM);
    reap_for(sigfd, 1000);
    kill(-1, SIGKILL);
    reap_for(sigfd, 200);
    sync();
    reboot(RB_AUTOBOOT);  /* the VMM exits: QEMU with -no-reboot, Firecracker on any guest reboot */
    reboot(RB_POWER_OFF);
    for (;;)
        pause();
}
