/* TCP tunnels: TCP_CONNECT and TCP_ACCEPT streams, each carrying one loopback TCP connection of the guest as a
 * bidirectional byte stream under flow control, and the listening sockets that pending ACCEPTs wait on. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "wire.h"

/* A listening socket outlives its last pending ACCEPT by this much, so that the host's next ACCEPT (sent as soon as
 * one is answered) finds the port still open and no guest client meets a closed port in between. */
#define LISTEN_GRACE_MS 2000
#define LISTEN_BACKLOG 64

/* port 0: a free slot. `pending` counts the ACCEPTs waiting on it. */
static struct listener {
    uint16_t port;
    int fd, pending;
    int64_t idle_since;
} listeners[MAX_STREAMS];

/* Payload `u32 flags, u16 port`; flags must be 0 and the port nonzero. Returns -1 when malformed, 1 when refused
 * (the ERROR was sent), 0 when the request may go on. */
static int parse_request(uint32_t id, const uint8_t *p, size_t len, uint16_t *port)
{
    struct rd r;
    rd_init(&r, p, len);
    uint32_t flags = rd_u32(&r);
    *port = rd_u16(&r);
    if (!rd_done(&r))
        return -1;
    if (flags != 0) {
        send_error(id, ERR_INVALID_ARGUMENT, "unknown TCP flags 0x%x", flags);
        return 1;
    }
    if (*port == 0) {
        send_error(id, ERR_INVALID_ARGUMENT, "TCP port 0 is not a port: give 1 to 65535");
        return 1;
    }
    return 0;
}

static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* The ERROR for a socket call that failed with `err` on `port`; `what` says what was being done. */
static void send_socket_error(uint32_t id, uint16_t port, const char *what, int err)
{
    if (err == ECONNREFUSED)
        send_error(id, ERR_NOT_FOUND, "nothing listens on guest port %u (connection refused): start the server in "
                   "the guest first, listening on 127.0.0.1 or 0.0.0.0", port);
    else if (err == EADDRINUSE)
        send_error(id, ERR_ALREADY_EXISTS, "guest port %u is already in use by a guest program: pick another port "
                   "or stop that program", port);
    else if (err == ENETUNREACH || err == EADDRNOTAVAIL)
        send_error(id, errno_code(err), "cannot %s guest port %u: %s (is the guest's loopback interface up?)", what,
                   port, strerror(err));
    else if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
        send_error(id, ERR_RESOURCE_LIMIT, "cannot %s guest port %u: %s", what, port, strerror(err));
    else
        send_error(id, errno_code(err), "cannot %s guest port %u: %s", what, port, strerror(err));
}

/* The stream carries bytes from now on: the guest side may send a full window. */
static void opened(struct stream *s, int fd, uint8_t type, const void *payload, size_t len)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  /* a relay must not add Nagle delays */
    s->t.fd = fd;
    s->t.credit = INITIAL_WINDOW;
    send_frame(type, 0, s->id, payload, len);
}

int tcp_connect_start(uint32_t id, const uint8_t *p, size_t len)
{
    uint16_t port;
    int rc = parse_request(id, p, len, &port);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        send_socket_error(id, port, "connect to", errno);
        return 0;
    }
    struct sockaddr_in a = loopback(port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        send_socket_error(id, port, "connect to", errno);
        close(fd);
        return 0;
    }
    struct stream *s = stream_open(id, ST_TCP);
    s->t.port = port;
    s->t.fd = fd;
    s->t.connecting = 1;  /* even when connect() completed at once: POLLOUT reports it on the next round */
    return 0;
}

/* The socket's pending error (0: none), which reading it also clears. */
static int socket_error(int fd)
{
    int err = 0;
    socklen_t elen = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        err = errno;
    return err;
}

static void finish_connect(struct stream *s)
{
    int err = socket_error(s->t.fd);
    if (err == EINPROGRESS || err == EINTR)
        return;
    if (err) {
        send_socket_error(s->id, s->t.port, "connect to", err);
        stream_close(s);
        return;
    }
    s->t.connecting = 0;
    opened(s, s->t.fd, MSG_TCP_CONNECTED, NULL, 0);
}

static int listener_for(uint16_t port)
{
    int free_slot = -1;
    for (int i = 0; i < MAX_STREAMS; i++) {
        if (listeners[i].port == port)
            return i;
        if (!listeners[i].port && free_slot < 0)
            free_slot = i;
    }
    return free_slot;
}

/* The index of the listening socket on 127.0.0.1:port, opened now if it is not yet; -1 with errno set. */
static int listen_on(uint16_t port)
{
    int i = listener_for(port);
    if (i < 0) {
        errno = EMFILE;  /* unreachable: every slot has a pending ACCEPT, and those are at most MAX_STREAMS */
        return -1;
    }
    if (listeners[i].port)
        return i;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    struct sockaddr_in a = loopback(port);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    listeners[i] = (struct listener){ port, fd, 0, 0 };
    return i;
}

int tcp_accept_start(uint32_t id, const uint8_t *p, size_t len)
{
    uint16_t port;
    int rc = parse_request(id, p, len, &port);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    int i = listen_on(port);
    if (i < 0) {
        send_socket_error(id, port, "listen on", errno);
        return 0;
    }
    listeners[i].pending++;
    struct stream *s = stream_open(id, ST_TCP);
    s->t.port = port;
    s->t.listener = i;
    return 0;
}

static void stop_waiting(struct stream *s)
{
    struct listener *l = &listeners[s->t.listener];
    s->t.listener = -1;
    if (--l->pending == 0)
        l->idle_since = now_ms();
}

static struct stream *pending_accept(int which)
{
    for (int i = 0; i < MAX_STREAMS; i++)
        if (streams[i].kind == ST_TCP && streams[i].t.listener == which)
            return &streams[i];
    return NULL;
}

/* Hands guest clients waiting in the backlog to pending ACCEPTs, as many as both allow. */
void tcp_on_listener(int which, int fd)
{
    struct listener *l = &listeners[which];
    while (l->port && l->fd == fd && l->pending > 0) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        int conn = accept4(fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (conn < 0 && (errno == EINTR || errno == ECONNABORTED))
            continue;
        if (conn < 0 && errno == EAGAIN)
            return;
        struct stream *s = pending_accept(which);
        stop_waiting(s);
        if (conn < 0) {  /* out of descriptors or memory: this ACCEPT fails rather than the loop spinning */
            send_socket_error(s->id, s->t.port, "accept on", errno);
            stream_close(s);
            continue;
        }
        uint8_t buf[2];
        struct wb w;
        wb_init(&w, buf, sizeof buf);
        wb_u16(&w, ntohs(peer.sin_port));
        opened(s, conn, MSG_TCP_ACCEPTED, buf, w.len);
    }
}

/* Both directions are done: the socket closes gracefully and OK ends the stream. Returns 1 when it did. */
static int maybe_finish(struct stream *s)
{
    if (!s->t.rd_fin || !s->t.wr_shut)
        return 0;
    close_fd(&s->t.fd);
    send_ok(s->id, 0);
    stream_close(s);
    return 1;
}

/* A socket error mid-stream ends the stream with an ERROR naming it. */
static void fail(struct stream *s, int err)
{
    send_error(s->id, errno_code(err), "guest port %u: %s", s->t.port, strerror(err));
    stream_close(s);
}

/* Writes queued host bytes to the socket, granting the host credit for them, and shuts the write side down once the
 * host's FIN and every byte before it went out. Returns 1 when the stream ended. */
static int flush_to_guest(struct stream *s)
{
    struct tcp_state *t = &s->t;
    if (byteq_write(&t->in, t->fd) < 0) {
        fail(s, errno);
        return 1;
    }
    byteq_grant(&t->in, s->id, WINDOW_TCP);
    if (t->in.len > 0 || !t->wr_fin || t->wr_shut)
        return 0;
    shutdown(t->fd, SHUT_WR);
    t->wr_shut = 1;
    return maybe_finish(s);
}

/* Host bytes for the guest program: written at once when nothing is queued before them, else queued (at most the
 * window, which the host must respect: more, or data before the stream opened or after FIN, is malformed). */
int tcp_data(struct stream *s, uint8_t flags, const uint8_t *data, size_t len)
{
    struct tcp_state *t = &s->t;
    if (t->fd < 0 || t->connecting || t->wr_fin || byteq_receive(&t->in, len) < 0)
        return -1;
    if (byteq_put(&t->in, t->fd, data, len) < 0) {
        fail(s, errno);
        return 0;
    }
    if (flags & FLAG_FIN)
        t->wr_fin = 1;
    flush_to_guest(s);
    return 0;
}

void tcp_window(struct stream *s, uint64_t increment)
{
    s->t.credit += increment;
}

/* Guest bytes for the host, one chunk per round and only within the host's credit; EOF becomes a FIN. */
static void guest_readable(struct stream *s)
{
    struct tcp_state *t = &s->t;
    size_t want = t->credit < DATA_CHUNK ? (size_t)t->credit : DATA_CHUNK;
    uint8_t *buf = want ? frame_reserve(want) : NULL;
    if (!buf)
        return;
    ssize_t n = read(t->fd, buf, want);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) {
        fail(s, errno);
        return;
    }
    if (n > 0) {
        t->credit -= (uint64_t)n;
        frame_commit(MSG_TCP_DATA, 0, s->id, (size_t)n);
        return;
    }
    send_frame(MSG_TCP_DATA, FLAG_FIN, s->id, NULL, 0);
    t->rd_fin = 1;
    maybe_finish(s);
}

void tcp_on_socket(struct stream *s, short revents)
{
    if (s->t.connecting) {
        finish_connect(s);
        return;
    }
    int err = revents & POLLERR ? socket_error(s->t.fd) : 0;
    if (err) {
        fail(s, err);
        return;
    }
    if ((revents & (POLLOUT | POLLHUP)) && flush_to_guest(s))
        return;
    if (revents & (POLLIN | POLLHUP | POLLERR))
        guest_readable(s);
}

/* A socket is polled only for what it can do now, so a closed or idle peer never makes the loop spin; an error on
 * an idle socket shows at its next read or write. */
void tcp_add_pollfds(struct pollset *ps)
{
    int room = outq_len() < OUTQ_DATA_CAP;
    for (int i = 0; i < MAX_STREAMS; i++) {
        struct stream *s = &streams[i];
        struct tcp_state *t = &s->t;
        if (s->kind != ST_TCP || t->fd < 0)
            continue;
        short ev = 0;
        if (t->connecting)
            ev = POLLOUT;
        else {
            if (room && !t->rd_fin && t->credit > 0)
                ev |= POLLIN;
            if (t->in.len > 0)
                ev |= POLLOUT;
        }
        if (ev)
            pollset_add(ps, t->fd, ev, PT_TCP, 0, s->id);
    }
    for (int i = 0; i < MAX_STREAMS; i++)
        if (listeners[i].port && listeners[i].pending > 0)
            pollset_add(ps, listeners[i].fd, POLLIN, PT_TCP_LISTEN, i, 0);
}

static void close_listener(struct listener *l)
{
    close_fd(&l->fd);
    l->port = 0;
}

void tcp_check_listeners(int64_t now)
{
    for (int i = 0; i < MAX_STREAMS; i++)
        if (listeners[i].port && !listeners[i].pending && now - listeners[i].idle_since >= LISTEN_GRACE_MS)
            close_listener(&listeners[i]);
}

int64_t tcp_next_deadline(void)
{
    int64_t next = 0;
    for (int i = 0; i < MAX_STREAMS; i++) {
        int64_t d = listeners[i].idle_since + LISTEN_GRACE_MS;
        if (listeners[i].port && !listeners[i].pending && (!next || d < next))
            next = d;
    }
    return next;
}

/* Also used on CANCEL and disconnect: an open connection is aborted with a reset (SO_LINGER 0), not a FIN, so the
 * guest program sees that its peer went away rather than a clean end. */
void tcp_release(struct stream *s)
{
    struct tcp_state *t = &s->t;
    if (t->listener >= 0)
        stop_waiting(s);
    if (t->fd >= 0) {
        struct linger abort_close = { 1, 0 };
        setsockopt(t->fd, SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close);
    }
    close_fd(&t->fd);
    byteq_free(&t->in);
}

void tcp_close_listeners(void)
{
    for (int i = 0; i < MAX_STREAMS; i++)
        if (listeners[i].port)
            close_listener(&listeners[i]);
}
