/* Shared state and interfaces of the jitvm guest agent. See docs/protocol.md for the wire protocol. */
#ifndef JITVM_AGENT_H
#define JITVM_AGENT_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "byteq.h"
#include "protocol.h"

#define AGENT_VERSION "0.1.0"

/* Data frames (stdout, stderr, file bodies) are only produced while the output queue is below this. */
#define OUTQ_DATA_CAP (2u << 20)
/* Host input is only read while the output queue is below this (bounds control-frame replies). */
#define OUTQ_INPUT_CAP (8u << 20)

enum stream_kind { ST_FREE, ST_EXEC, ST_FILE_WRITE, ST_FILE_READ, ST_TCP };

struct exec_state {
    pid_t pid;
    int reaped, status, timed_out;
    int64_t deadline_ms;   /* timeout, then (timed_out) end of the grace for outputs; 0: none */
    int out_fd[2];         /* stdout, stderr read ends; -1 once their FIN was sent */
    uint64_t out_credit[2];
    int in_fd;             /* stdin write end; -1 when closed or not requested */
    int in_fin;            /* host sent FIN on stdin */
    struct byteq in;       /* stdin bytes received but not yet written to the pipe */
};

struct file_state {
    int fd;
    char *path;
    uint64_t total;        /* bytes written (FILE_WRITE) */
    uint64_t credit;       /* FILE_READ: bytes we may still send */
    int64_t size;          /* FILE_READ: st_size at open */
};

/* A TCP tunnel (tcp.c). fd < 0 with listener >= 0: an ACCEPT still waiting for a guest client. */
struct tcp_state {
    int fd;                /* the guest-side socket; -1 while an ACCEPT waits */
    int listener;          /* pending ACCEPT: index of the listening socket it waits on; -1 otherwise */
    int connecting;        /* TCP_CONNECT: the non-blocking connect has not completed yet */
    uint16_t port;         /* the guest port, for messages */
    uint64_t credit;       /* guest->host bytes we may still send */
    int rd_fin;            /* the guest program's EOF was read and FIN sent to the host */
    int wr_fin;            /* the host sent FIN */
    int wr_shut;           /* shutdown(SHUT_WR) done after the host's FIN and every queued byte */
    struct byteq in;       /* host->guest bytes received but not yet written to the socket */
};

struct stream {
    uint32_t id;
    enum stream_kind kind;
    struct exec_state x;
    struct file_state f;
    struct tcp_state t;
};

/* Poll set built fresh each loop iteration; tags say who owns each entry. */
enum poll_tag { PT_SIGNAL, PT_CHANNEL, PT_LISTEN, PT_INPUT, PT_EXEC_OUT, PT_EXEC_IN, PT_TCP, PT_TCP_LISTEN };
#define POLL_MAX (8 + 32 + 3 * MAX_STREAMS)
struct pollset {
    struct pollfd fds[POLL_MAX];
    struct { enum poll_tag tag; int which; uint32_t id; } tags[POLL_MAX];
    int n;
};
void pollset_add(struct pollset *ps, int fd, short events, enum poll_tag tag, int which, uint32_t id);

/* 1 when the agent is PID 1 of a VM; 0 in dev mode (--connect, --vsock-listen), where it must not touch its host. */
int running_as_init(void);
int64_t now_ms(void);
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* stream.c: the table of open streams */
extern struct stream streams[MAX_STREAMS];
struct stream *stream_find(uint32_t id);
struct stream *stream_open(uint32_t id, enum stream_kind kind);
int stream_count(void);
void stream_close(struct stream *s);
/* Closes *fd if open and marks it closed (-1). */
void close_fd(int *fd);
void streams_close_all(void);

/* conn.c: frames in and out */
void conn_attach(int fd);
void conn_detach(void);
int conn_fd(void);
short conn_events(void);
int conn_read(void);   /* -1: host disconnected */
int conn_flush(void);  /* -1: fatal write error (host gone) */
size_t outq_len(void);
void send_frame(uint8_t type, uint8_t flags, uint32_t id, const void *payload, size_t len);
/* Zero-copy sending: reserve room for a payload of up to max_len in the output queue (NULL when no host is
 * connected), fill it (e.g. with read()), then commit the frame with the length actually used. */
uint8_t *frame_reserve(size_t max_len);
void frame_commit(uint8_t type, uint8_t flags, uint32_t id, size_t len);
void send_error(uint32_t id, uint32_t code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void send_ok(uint32_t id, uint64_t value);
void send_window(uint32_t id, uint8_t channel, uint64_t increment);
extern int shutdown_requested;

/* channel.c: finding / (re)connecting the byte stream to the host */
void channel_init_vm(void);                        /* PID 1: virtio-serial port, else vsock; waits for either */
void channel_init_unix(const char *socket_path);   /* dev mode: connect to a Unix socket, reconnect after a drop */
void channel_init_vsock(unsigned int port);        /* listen on AF_VSOCK port; exits when it cannot */
int channel_connected(void);
int channel_fd(void);
int channel_listen_fd(void);       /* vsock: polled for POLLIN while no host is served; -1 otherwise */
void channel_accept(void);         /* vsock: no host is served and one is waiting: serve it */
void channel_disconnected(void);
void channel_on_sigio(void);
void channel_tick(void);           /* reconnect attempts / checks while disconnected */
int channel_timeout_ms(void);      /* poll timeout while disconnected, -1 when connected or none needed */

/* vsock.c: AF_VSOCK helpers for the channel */
int vsock_device_present(void);    /* the VM has a vsock device with a CID */
int vsock_listen(unsigned int port);   /* non-blocking listening socket, or -1 (errno set) */
int vsock_accept_one(int listen_fd);   /* one waiting host, or -1 when none is */

/* exec.c (EXEC requests) and session.c (running sessions); payload parsers return -1 when malformed */
int exec_start(uint32_t id, const uint8_t *p, size_t len);
int exec_stdin(struct stream *s, uint8_t flags, const uint8_t *data, size_t len);
void exec_signal(struct stream *s, uint32_t signo);
void exec_add_pollfds(struct pollset *ps);
void exec_on_output(struct stream *s, int which);
void exec_on_stdin_writable(struct stream *s);
void exec_reaped(pid_t pid, int status);
void exec_check_timeouts(int64_t now);
int64_t exec_next_deadline(void);
void exec_release(struct stream *s);

/* files.c: file operations */
uint32_t errno_code(int err);
int file_write_start(uint32_t id, const uint8_t *p, size_t len);
int file_data(struct stream *s, uint8_t flags, const uint8_t *data, size_t len);
int file_read_start(uint32_t id, const uint8_t *p, size_t len);
int files_pending(void);
void files_pump(void);
void file_release(struct stream *s);
int fs_mkdir(uint32_t id, const uint8_t *p, size_t len);
int fs_stat(uint32_t id, const uint8_t *p, size_t len);
int fs_list(uint32_t id, const uint8_t *p, size_t len);
int fs_remove(uint32_t id, const uint8_t *p, size_t len);

/* identity.c: SET_IDENTITY (entropy, clock, hostname); offered only when running as PID 1 */
int identity_available(void);
int identity_set(uint32_t id, const uint8_t *p, size_t len);

/* ---- tcp.c: TCP tunnels (TCP_CONNECT, TCP_ACCEPT) to and from 127.0.0.1 in the agent's network namespace ---- */
int tcp_connect_start(uint32_t id, const uint8_t *p, size_t len);
int tcp_accept_start(uint32_t id, const uint8_t *p, size_t len);
int tcp_data(struct stream *s, uint8_t flags, const uint8_t *data, size_t len);
void tcp_window(struct stream *s, uint64_t increment);
void tcp_add_pollfds(struct pollset *ps);
void tcp_on_socket(struct stream *s, short revents);
void tcp_on_listener(int which, int fd);
/* Listening sockets are closed LISTEN_GRACE_MS after their last pending ACCEPT ended. */
void tcp_check_listeners(int64_t now);
int64_t tcp_next_deadline(void);
void tcp_release(struct stream *s);
void tcp_close_listeners(void);   /* at once, with their backlog: the host is gone */

/* init.c: PID-1 duties */
void init_system(void);
int init_open_inputs(int *fds, int max);
int input_power_pressed(int fd);
void reap_for(int sigfd, int ms);
void system_shutdown(int sigfd) __attribute__((noreturn));

#endif
