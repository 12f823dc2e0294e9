/* The byte stream to the host: the virtio-serial port (in the VM) or a Unix socket (dev mode, --connect). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#define DEV_RETRY_MS 100
#define DEV_GIVE_UP_MS 10000
#define PORT_RECHECK_MS 500

static const char *dev_socket;  /* dev mode when set */
static int port_fd = -1;
static int sock_fd = -1;
static int connected;
static int64_t next_try_ms, give_up_ms;

int channel_connected(void)
{
    return connected;
}

int channel_fd(void)
{
    return dev_socket ? sock_fd : port_fd;
}

static int find_port(void)
{
    DIR *d = opendir("/sys/class/virtio-ports");
    if (!d)
        return -1;
    int fd = -1;
    struct dirent *e;
    while (fd < 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], name[64] = "";
        snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        if (!fgets(name, sizeof name, f))
            name[0] = 0;
        fclose(f);
        name[strcspn(name, "\n")] = 0;
        if (strcmp(name, AGENT_PORT_NAME) != 0)
            continue;
        snprintf(path, sizeof path, "/dev/%s", e->d_name);
        fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    }
    closedir(d);
    return fd;
}

/* The port's sysfs entry, its name and its /dev node show up at slightly different times after the module loads. */
static int open_port(void)
{
    const struct timespec step = { 0, 10 * 1000 * 1000 };
    for (int tries = 0;; tries++) {
        int fd = find_port();
        if (fd >= 0)
            return fd;
        if (tries == 500)
            logmsg("warning: virtio port %s not found yet, still looking", AGENT_PORT_NAME);
        nanosleep(&step, NULL);
    }
}

static void set_async(int on)
{
    int fl = fcntl(port_fd, F_GETFL);
    fcntl(port_fd, F_SETFL, on ? fl | O_ASYNC : fl & ~O_ASYNC);
}

/* virtio_console reports POLLHUP for as long as no host has the port open. */
static void check_port(void)
{
    struct pollfd p = { port_fd, POLLIN, 0 };
    if (poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLNVAL)))
        return;
    set_async(0);
    connected = 1;
    conn_attach(port_fd);
}

static void try_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", dev_socket);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        sock_fd = fd;
        connected = 1;
        conn_attach(fd);
        return;
    }
    if (fd >= 0)
        close(fd);
    next_try_ms = now_ms() + DEV_RETRY_MS;
    if (next_try_ms > give_up_ms) {
        logmsg("no host at %s for %d s, exiting", dev_socket, DEV_GIVE_UP_MS / 1000);
        exit(0);
    }
}

void channel_init(const char *socket_path)
{
    dev_socket = socket_path;
    if (dev_socket) {
        give_up_ms = now_ms() + DEV_GIVE_UP_MS;
        try_connect();
        return;
    }
    port_fd = open_port();
    fcntl(port_fd, F_SETOWN, getpid());
    set_async(1);
    check_port();
}

void channel_disconnected(void)
{
    conn_detach();
    connected = 0;
    if (dev_socket) {
        close(sock_fd);
        sock_fd = -1;
        give_up_ms = now_ms() + DEV_GIVE_UP_MS;
        next_try_ms = now_ms();
        return;
    }
    /* Bytes the old host sent that we never read must not reach the next connection. */
    char junk[4096];
    struct pollfd p = { port_fd, POLLIN, 0 };
    while (poll(&p, 1, 0) > 0 && (p.revents & POLLHUP) && read(port_fd, junk, sizeof junk) > 0)
        ;
    set_async(1);
    check_port();  /* after enabling SIGIO, so a reconnect in between is not missed */
}

void channel_on_sigio(void)
{
    if (!connected && !dev_socket)
        check_port();
}

void channel_tick(void)
{
    if (connected)
        return;
    if (!dev_socket)
        check_port();
    else if (now_ms() >= next_try_ms)
        try_connect();
}

int channel_timeout_ms(void)
{
    if (connected)
        return -1;
    if (!dev_socket)
        return PORT_RECHECK_MS;
    int64_t wait = next_try_ms - now_ms();
    return wait < 0 ? 0 : (int)wait;
}
