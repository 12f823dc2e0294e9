/* jitvm guest agent: PID 1 of the sandbox VM (or, with --connect / --vsock-listen, a dev-mode process) serving
 * docs/protocol.md. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#define MAX_INPUTS 16
#define SHUTDOWN_FLUSH_MS 200

static int pid1;
static int sigfd;
static int inputs[MAX_INPUTS];
static int ninputs;

int running_as_init(void)
{
    return pid1;
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void logmsg(const char *fmt, ...)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "jitvm-agent: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    strcat(buf, "\n");
    if (write(2, buf, strlen(buf)) < 0) {
        /* no console: nothing to do */
    }
}

void pollset_add(struct pollset *ps, int fd, short events, enum poll_tag tag, int which, uint32_t id)
{
    ps->fds[ps->n] = (struct pollfd){ fd, events, 0 };
    ps->tags[ps->n].tag = tag;
    ps->tags[ps->n].which = which;
    ps->tags[ps->n].id = id;
    ps->n++;
}

static void ensure_stdio(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
            abort();
}

static int setup_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGIO);
    sigaddset(&set, SIGINT);  /* as PID 1: Ctrl-Alt-Del (Firecracker's SendCtrlAltDel), see init_system */
    if (!pid1)
        sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        logmsg("signalfd: %s", strerror(errno));
        exit(1);
    }
    return fd;
}

static void reap_children(void)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        exec_reaped(pid, status);  /* not a session: an orphan we adopted as PID 1, discarded */
}

static void shutdown_now(void)
{
    int64_t end = now_ms() + SHUTDOWN_FLUSH_MS;
    while (channel_connected() && outq_len() > 0 && now_ms() < end) {
        struct pollfd p = { channel_fd(), POLLOUT, 0 };
        if (poll(&p, 1, (int)(end - now_ms())) <= 0 || conn_flush() < 0)
            break;
    }
    streams_close_all();
    if (!pid1) {
        reap_for(sigfd, SHUTDOWN_FLUSH_MS);  /* the killed sessions: leave no zombies behind */
        exit(0);
    }
    system_shutdown(sigfd);
}

static int handle_signals(void)
{
    struct signalfd_siginfo si;
    int stop = 0;
    while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            reap_children();
        else if (si.ssi_signo == SIGIO)
            channel_on_sigio();
        else
            stop = 1;  /* SIGINT; SIGTERM in dev mode */
    }
    return stop;
}

static int64_t earliest(int64_t a, int64_t b)
{
    return !a ? b : !b ? a : a < b ? a : b;
}

static int poll_timeout(void)
{
    int64_t now = now_ms(), timeout = channel_timeout_ms();
    int64_t deadline = earliest(exec_next_deadline(), tcp_next_deadline());
    if (deadline) {
        int64_t wait = deadline > now ? deadline - now : 0;
        if (timeout < 0 || wait < timeout)
            timeout = wait;
    }
    if (channel_connected() && files_pending())
        timeout = 0;
    return (int)timeout;
}

static void serve(void)
{
    static struct pollset ps;
    for (;;) {
        ps.n = 0;
        pollset_add(&ps, sigfd, POLLIN, PT_SIGNAL, 0, 0);
        for (int i = 0; i < ninputs; i++)
            if (inputs[i] >= 0)
                pollset_add(&ps, inputs[i], POLLIN, PT_INPUT, i, 0);
        if (channel_connected())
            pollset_add(&ps, channel_fd(), conn_events(), PT_CHANNEL, 0, 0);
        if (!channel_connected() && channel_listen_fd() >= 0)
            pollset_add(&ps, channel_listen_fd(), POLLIN, PT_LISTEN, 0, 0);
        exec_add_pollfds(&ps);
        tcp_add_pollfds(&ps);

        if (poll(ps.fds, (nfds_t)ps.n, poll_timeout()) < 0 && errno != EINTR) {
            logmsg("poll: %s", strerror(errno));
            continue;
        }
        int stop = 0, host_waiting = 0;
        short chan = 0;
        for (int i = 0; i < ps.n; i++) {
            struct pollfd *p = &ps.fds[i];
            if (!p->revents)
                continue;
            struct stream *s = stream_find(ps.tags[i].id);
            int which = ps.tags[i].which;
            switch (ps.tags[i].tag) {
            case PT_SIGNAL:
                stop |= handle_signals();
                break;
            case PT_INPUT: {
                int r = input_power_pressed(p->fd);
                if (r < 0) {
                    close(inputs[which]);
                    inputs[which] = -1;
                }
                stop |= r > 0;
                break;
            }
            case PT_CHANNEL:
                chan = p->revents;
                break;
            case PT_LISTEN:
                host_waiting = 1;
                break;
            /* The stream may have ended (or its fd changed) while handling an earlier entry. */
            case PT_EXEC_OUT:
                if (s && s->kind == ST_EXEC && s->x.out_fd[which] == p->fd)
                    exec_on_output(s, which);
                break;
            case PT_EXEC_IN:
                if (s && s->kind == ST_EXEC && s->x.in_fd == p->fd)
                    exec_on_stdin_writable(s);
                break;
            case PT_TCP:
                if (s && s->kind == ST_TCP && s->t.fd == p->fd)
                    tcp_on_socket(s, p->revents);
                break;
            case PT_TCP_LISTEN:
                tcp_on_listener(which, p->fd);
                break;
            }
        }
        exec_check_timeouts(now_ms());
        tcp_check_listeners(now_ms());
        files_pump();
        if (channel_connected() && (chan & POLLIN) && conn_read() < 0)
            channel_disconnected();
        if (channel_connected() && (chan & (POLLHUP | POLLERR | POLLNVAL)))
            channel_disconnected();
        if (channel_connected() && conn_flush() < 0)
            channel_disconnected();
        if (host_waiting && !channel_connected())
            channel_accept();
        if (!channel_connected())
            channel_tick();
        if (stop || shutdown_requested)
            shutdown_now();
    }
}

/* The port of --vsock-listen: a decimal number below VMADDR_PORT_ANY (0xffffffff). */
static unsigned int parse_vsock_port(const char *text)
{
    char *end;
    errno = 0;
    unsigned long port = strtoul(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-' || port >= 0xffffffffUL) {
        logmsg("--vsock-listen needs a port number from 0 to 4294967294, got '%s'", text);
        exit(2);
    }
    return (unsigned int)port;
}

int main(int argc, char **argv)
{
    const char *dev_socket = NULL, *vsock_port = NULL;
    /* Unknown arguments are ignored: as init we get whatever the kernel command line leaves over. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--connect") && i + 1 < argc)
            dev_socket = argv[++i];
        else if (!strcmp(argv[i], "--vsock-listen") && i + 1 < argc)
            vsock_port = argv[++i];
    }
    pid1 = !dev_socket && !vsock_port && getpid() == 1;
    if (pid1)
        init_system();
    ensure_stdio();
    sigfd = setup_signals();
    if (pid1)
        ninputs = init_open_inputs(inputs, MAX_INPUTS);
    if (dev_socket)
        channel_init_unix(dev_socket);
    else if (vsock_port)
        channel_init_vsock(parse_vsock_port(vsock_port));
    else
        channel_init_vm();
    logmsg("ready");
    serve();
}
