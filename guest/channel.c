/*
 * The byte stream to the host. In the VM: the virtio-serial port (QEMU) or, when the VM has no such port but a
 * vsock device (Firecracker), a connection accepted on AF_VSOCK port AGENT_VSOCK_PORT. In dev mode: a Unix socket
 * we connect to (--connect) or an AF_VSOCK port we listen on (--vsock-listen).
 */
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
#define TRANSPORT_POLL_MS 10
#define TRANSPORT_WARN_MS 5000

/* T_ANY: the host named no VM transport (see requested_transport). */
enum transport { T_SERIAL, T_VSOCK, T_UNIX, T_ANY };

static enum transport transport;
static const char *dev_socket;  /* T_UNIX */
static int port_fd = -1;        /* T_SERIAL */
static int listen_fd = -1;      /* T_VSOCK */
static int sock_fd = -1;        /* T_UNIX, T_VSOCK: the connection being served */
static int connected;
static int64_t next_try_ms, give_up_ms;

int channel_connected(void)
{
    return connected;
}

int channel_fd(void)
{
    return transport == T_SERIAL ? port_fd : sock_fd;
}

int channel_listen_fd(void)
{
    return listen_fd;
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

/* A VM with a virtio-serial device (QEMU) serves the agent on its port even if it also has a vsock device. */
static int has_virtio_serial(void)
{
    DIR *d = opendir("/sys/bus/virtio/drivers/virtio_console");
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL)
        found = strncmp(e->d_name, "virtio", 6) == 0;
    closedir(d);
    return found;
}

/*
 * The transport the host asked for with `jitvm.channel=serial|vsock` on the kernel command line, or T_ANY when it
 * did not say: then the first one found wins. vfkit needs it: its console is a virtio console
 * device too, so "a virtio-serial device exists" does not mean the agent's port will appear.
 */
static enum transport requested_transport(void)
{
    char cmdline[4096] = "";
    FILE *f = fopen("/proc/cmdline", "re");
    if (f) {
        if (!fgets(cmdline, sizeof cmdline, f))
            cmdline[0] = 0;
        fclose(f);
    }
    enum transport wanted = T_ANY;  /* the last one given wins, as with other kernel arguments */
    for (char *arg = strtok(cmdline, " \n"); arg; arg = strtok(NULL, " \n")) {
        if (!strcmp(arg, AGENT_CHANNEL_ARG_VSOCK))
            wanted = T_VSOCK;
        else if (!strcmp(arg, AGENT_CHANNEL_ARG_SERIAL))
            wanted = T_SERIAL;
    }
    return wanted;
}

/*
 * Waits for the VM's transport: the port's sysfs entry, its name and its /dev node show up at slightly different
 * times after the module loads, and a vsock device may bind a little after its module. Returns T_SERIAL with
 * port_fd open, or T_VSOCK.
 */
static enum transport await_transport(void)
{
    const struct timespec step = { 0, TRANSPORT_POLL_MS * 1000 * 1000 };
    enum transport wanted = requested_transport();
    for (int tries = 0;; tries++) {
        port_fd = wanted == T_VSOCK ? -1 : find_port();
        if (port_fd >= 0)
            return T_SERIAL;
        if (wanted != T_SERIAL && vsock_device_present() && (wanted == T_VSOCK || !has_virtio_serial()))
            return T_VSOCK;
        if (tries == TRANSPORT_WARN_MS / TRANSPORT_POLL_MS && wanted == T_VSOCK)
            logmsg("warning: no vsock device found yet (jitvm.channel=vsock), still looking");
        else if (tries == TRANSPORT_WARN_MS / TRANSPORT_POLL_MS)
            logmsg("warning: neither virtio port %s nor a vsock device found yet, still looking", AGENT_PORT_NAME);
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

void channel_init_unix(const char *socket_path)
{
    transport = T_UNIX;
    dev_socket = socket_path;
    give_up_ms = now_ms() + DEV_GIVE_UP_MS;
    try_connect();
}

void channel_init_vsock(unsigned int port)
{
    transport = T_VSOCK;
    listen_fd = vsock_listen(port);
    if (listen_fd < 0) {
        logmsg("cannot listen on vsock port %u: %s", port, strerror(errno));
        exit(1);
    }
}

void channel_init_vm(void)
{
    if (await_transport() == T_VSOCK) {
        channel_init_vsock(AGENT_VSOCK_PORT);
        return;
    }
    transport = T_SERIAL;
    fcntl(port_fd, F_SETOWN, getpid());
    set_async(1);
    check_port();
}

/*
 * One host at a time, as on the serial port: while one is served the listener is not polled, and a host that
 * connects meanwhile waits in the listen backlog (the guest kernel has completed its connection, so Firecracker has
 * answered it OK; its HELLO is read once the previous host is gone). A host that goes away is seen at once: the
 * muxer resets the guest side when its Unix socket closes. Firecracker also resets every connection when it
 * snapshots a VM and keeps the listener, so after a restore the next host is simply accepted.
 */
void channel_accept(void)
{
    int fd = vsock_accept_one(listen_fd);
    if (fd < 0)
        return;
    sock_fd = fd;
    connected = 1;
    conn_attach(fd);
}

void channel_disconnected(void)
{
    conn_detach();
    connected = 0;
    if (transport != T_SERIAL) {
        close(sock_fd);
        sock_fd = -1;
    }
    if (transport == T_VSOCK)
        return;  /* the listener is polled for the next host */
    if (transport == T_UNIX) {
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
    if (!connected && transport == T_SERIAL)
        check_port();
}

void channel_tick(void)
{
    if (connected)
        return;
    if (transport == T_SERIAL)
        check_port();
    else if (transport == T_UNIX && now_ms() >= next_try_ms)
        try_connect();
}

int channel_timeout_ms(void)
{
    if (connected || transport == T_VSOCK)
        return -1;
    if (transport == T_SERIAL)
        return PORT_RECHECK_MS;
    int64_t wait = next_try_ms - now_ms();
    return wait < 0 ? 0 : (int)wait;
}
