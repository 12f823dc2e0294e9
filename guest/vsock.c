/* AF_VSOCK for the channel: is there a vsock device, the listening socket, and accepting hosts on it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "agent.h"

#define LISTEN_BACKLOG 8
#define ACCEPT_RETRY_MS 100

/*
 * Loading vmw_vsock_virtio_transport registers the guest-to-host transport whether or not the VM has a vsock
 * device; its local CID stays VMADDR_CID_ANY until a device is probed (Linux 6.1 virtio_transport_get_local_cid),
 * which can happen a little after the module loaded. /dev/vsock exists as soon as the vsock core module is loaded.
 */
int vsock_device_present(void)
{
    static int dev = -1;
    if (dev < 0)
        dev = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
    unsigned int cid = VMADDR_CID_ANY;
    return dev >= 0 && ioctl(dev, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) == 0 && cid != VMADDR_CID_ANY;
}

int vsock_listen(unsigned int port)
{
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port };
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/*
 * One waiting host, or -1 when none is. A persistent failure (EMFILE, ENOMEM) leaves the listener readable, so it
 * is logged and followed by a short pause rather than retried in a tight loop.
 */
int vsock_accept_one(int listen_fd)
{
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            const struct timespec pause = { 0, ACCEPT_RETRY_MS * 1000 * 1000 };
            logmsg("warning: accept on the vsock listener: %s", strerror(errno));
            nanosleep(&pause, NULL);
        }
        return -1;
    }
}
