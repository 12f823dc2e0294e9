/*
 * Test helper run inside a guest: Firecracker's hybrid-vsock muxer (docs/vsock.md, "Host-Initiated Connections") on
 * stdin/stdout instead of a Unix socket, over the guest's own loopback vsock (CID 1, module vsock_loopback).
 * Reads "CONNECT <port>\n", connects AF_VSOCK to VMADDR_CID_LOCAL:<port>, answers "OK <local port>\n" and relays
 * bytes both ways until either side closes. A malformed request or a failed connect ends it without a reply, as
 * Firecracker closes the host connection then. Build: gcc -static -Os -std=gnu11 -Wall -Wextra -Werror.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

/* Firecracker reads at most 32 bytes of request line. */
#define MAX_REQUEST 32

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The port of "CONNECT <port>\n" (the command word is case-insensitive, as in Firecracker), or -1. */
static long read_request(void)
{
    char line[MAX_REQUEST + 1];
    size_t len = 0;
    while (len < MAX_REQUEST && (len == 0 || line[len - 1] != '\n')) {
        if (read(0, line + len, 1) != 1)
            return -1;
        len++;
    }
    line[len] = 0;
    char word[MAX_REQUEST + 1];
    unsigned long port;
    if (line[len - 1] != '\n' || sscanf(line, "%32s %lu", word, &port) != 2)
        return -1;
    if (strcasecmp(word, "connect") != 0 || port > 0xffffffffUL || strchr(line, '-'))
        return -1;
    return (long)port;
}

/* Copies what `from` has to `to`; 0 at end of input (or a broken pipe), 1 otherwise. */
static int relay(int from, int to)
{
    char buf[65536];
    ssize_t n = read(from, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 1;
    return n > 0 && write_all(to, buf, (size_t)n) == 0;
}

int main(void)
{
    long port = read_request();
    if (port < 0) {
        fprintf(stderr, "vsock-mux: malformed CONNECT request\n");
        return 1;
    }
    int sock = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_vm peer = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_LOCAL, .svm_port = (unsigned)port };
    struct sockaddr_vm local;
    socklen_t local_len = sizeof local;
    if (sock < 0 || connect(sock, (struct sockaddr *)&peer, sizeof peer) < 0 ||
        getsockname(sock, (struct sockaddr *)&local, &local_len) < 0) {
        fprintf(stderr, "vsock-mux: connect to vsock port %ld: %s\n", port, strerror(errno));
        return 1;
    }
    char ok[32];
    int n = snprintf(ok, sizeof ok, "OK %u\n", local.svm_port);
    if (write_all(1, ok, (size_t)n) < 0)
        return 1;

    struct pollfd fds[2] = { { 0, POLLIN, 0 }, { sock, POLLIN, 0 } };
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (fds[1].revents && !relay(sock, 1))
            return 0;  /* the guest side closed: the host connection ends */
        if (fds[0].revents && !relay(0, sock)) {
            shutdown(sock, SHUT_WR);  /* the host closed: the guest sees end of input */
            fds[0].fd = -1;
        }
    }
}
