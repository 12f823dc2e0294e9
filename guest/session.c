/* Running exec sessions: stdin/stdout/stderr under flow control, signals, timeouts, reaping and EXIT. */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "wire.h"

#define TIMEOUT_GRACE_MS 1000

void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void maybe_finish(struct stream *s)
{
    struct exec_state *x = &s->x;
    if (!x->reaped || x->out_fd[0] >= 0 || x->out_fd[1] >= 0)
        return;
    uint8_t buf[5];
    struct wb w;
    wb_init(&w, buf, sizeof buf);
    if (x->timed_out) {
        wb_u8(&w, EXIT_REASON_TIMED_OUT);
        wb_u32(&w, SIGKILL);
    } else if (WIFSIGNALED(x->status)) {
        wb_u8(&w, EXIT_REASON_SIGNALED);
        wb_u32(&w, (uint32_t)WTERMSIG(x->status));
    } else {
        wb_u8(&w, EXIT_REASON_EXITED);
        wb_u32(&w, (uint32_t)WEXITSTATUS(x->status));
    }
    send_frame(MSG_EXIT, 0, s->id, buf, w.len);
    stream_close(s);
}

/* Writes queued stdin to the pipe, granting the host credit for every byte consumed (or dropped). */
static void stdin_flush(struct stream *s)
{
    struct exec_state *x = &s->x;
    if (x->in_fd >= 0 && byteq_write(&x->in, x->in_fd) < 0)
        close_fd(&x->in_fd);  /* EPIPE: the process closed its stdin */
    if (x->in_fd < 0)
        byteq_drop(&x->in);
    if (x->in.len == 0 && x->in_fin)
        close_fd(&x->in_fd);
    byteq_grant(&x->in, s->id, WINDOW_STDIN);
}

int exec_stdin(struct stream *s, uint8_t flags, const uint8_t *data, size_t len)
{
    struct exec_state *x = &s->x;
    if (byteq_receive(&x->in, len) < 0)
        return -1;  /* more than the window allows */
    /* With stdin closed or never requested the data is dropped (and granted back), so the host is never stuck. */
    if (x->in_fd >= 0 && !x->in_fin && byteq_put(&x->in, x->in_fd, data, len) < 0)
        close_fd(&x->in_fd);  /* EPIPE, as in stdin_flush */
    if (flags & FLAG_FIN)
        x->in_fin = 1;
    stdin_flush(s);
    return 0;
}

void exec_on_stdin_writable(struct stream *s)
{
    stdin_flush(s);
}

void exec_signal(struct stream *s, uint32_t signo)
{
    if (!s->x.reaped && signo < (uint32_t)NSIG)
        kill(-s->x.pid, (int)signo);
}

void exec_on_output(struct stream *s, int which)
{
    struct exec_state *x = &s->x;
    size_t want = x->out_credit[which] < DATA_CHUNK ? (size_t)x->out_credit[which] : DATA_CHUNK;
    uint8_t type = which == 0 ? MSG_STDOUT : MSG_STDERR;
    uint8_t *buf = want ? frame_reserve(want) : NULL;
    if (!buf)
        return;
    ssize_t n = read(x->out_fd[which], buf, want);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0) {
        x->out_credit[which] -= (uint64_t)n;
        frame_commit(type, 0, s->id, (size_t)n);
        return;
    }
    send_frame(type, FLAG_FIN, s->id, NULL, 0);
    close_fd(&x->out_fd[which]);
    maybe_finish(s);
}

void exec_add_pollfds(struct pollset *ps)
{
    int room = outq_len() < OUTQ_DATA_CAP;
    for (int i = 0; i < MAX_STREAMS; i++) {
        struct stream *s = &streams[i];
        if (s->kind != ST_EXEC)
            continue;
        for (int w = 0; w < 2; w++)
            if (room && s->x.out_fd[w] >= 0 && s->x.out_credit[w] > 0)
                pollset_add(ps, s->x.out_fd[w], POLLIN, PT_EXEC_OUT, w, s->id);
        if (s->x.in_fd >= 0 && s->x.in.len > 0)
            pollset_add(ps, s->x.in_fd, POLLOUT, PT_EXEC_IN, 0, s->id);
    }
}

void exec_reaped(pid_t pid, int status)
{
    for (int i = 0; i < MAX_STREAMS; i++) {
        struct stream *s = &streams[i];
        if (s->kind == ST_EXEC && !s->x.reaped && s->x.pid == pid) {
            s->x.reaped = 1;
            s->x.status = status;
            maybe_finish(s);
            return;
        }
    }
}

/* At the deadline the group is killed; if its outputs are still open a grace period later (held by a process that
 * left the group), they are ended so that EXIT still comes. */
void exec_check_timeouts(int64_t now)
{
    for (int i = 0; i < MAX_STREAMS; i++) {
        struct stream *s = &streams[i];
        struct exec_state *x = &s->x;
        if (s->kind != ST_EXEC || !x->deadline_ms || now < x->deadline_ms)
            continue;
        if (!x->timed_out) {
            kill(-x->pid, SIGKILL);
            x->timed_out = 1;
            x->deadline_ms = now + TIMEOUT_GRACE_MS;
            continue;
        }
        x->deadline_ms = 0;
        for (int w = 0; w < 2; w++) {
            if (x->out_fd[w] >= 0) {
                send_frame(w == 0 ? MSG_STDOUT : MSG_STDERR, FLAG_FIN, s->id, NULL, 0);
                close_fd(&x->out_fd[w]);
            }
        }
        maybe_finish(s);
    }
}

int64_t exec_next_deadline(void)
{
    int64_t next = 0;
    for (int i = 0; i < MAX_STREAMS; i++) {
        int64_t d = streams[i].x.deadline_ms;
        if (streams[i].kind == ST_EXEC && d && (!next || d < next))
            next = d;
    }
    return next;
}

/* Also used on disconnect and protocol errors: an unfinished process group is killed; its pid is reaped later. */
void exec_release(struct stream *s)
{
    struct exec_state *x = &s->x;
    if (!x->reaped || x->out_fd[0] >= 0 || x->out_fd[1] >= 0)
        kill(-x->pid, SIGKILL);
    close_fd(&x->out_fd[0]);
    close_fd(&x->out_fd[1]);
    close_fd(&x->in_fd);
    byteq_free(&x->in);
}
