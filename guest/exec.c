/* EXEC requests: parse, fork/exec in a new session and process group, report EXEC_STARTED or why it failed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "wire.h"

extern char **environ;

static const char *const default_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "TERM=linux",
};
#define NDEFAULT_ENV (sizeof default_env / sizeof default_env[0])

enum stage { STAGE_SETUP, STAGE_CHDIR, STAGE_EXEC };
struct exec_failure { int stage, err; };

struct request {
    uint32_t flags, timeout_ms;
    char *cwd;
    uint32_t argc, envc;
    char **argv, **env;
};

static void free_strv(char **v, uint32_t n)
{
    if (!v)
        return;
    for (uint32_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_request(struct request *q)
{
    free(q->cwd);
    free_strv(q->argv, q->argc);
    free_strv(q->env, q->envc);
}

/* Reads `n` str fields into a NULL-terminated vector; a count that cannot fit the payload is malformed. */
static char **read_strv(struct rd *r, uint32_t n)
{
    if (r->bad || n > rd_left(r) / 4) {
        r->bad = 1;
        return NULL;
    }
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v)
        abort();
    for (uint32_t i = 0; i < n && !r->bad; i++)
        v[i] = rd_str(r);
    return v;
}

static int parse_request(struct request *q, const uint8_t *p, size_t len)
{
    struct rd r;
    rd_init(&r, p, len);
    memset(q, 0, sizeof *q);
    q->flags = rd_u32(&r);
    q->timeout_ms = rd_u32(&r);
    q->cwd = rd_str(&r);
    q->argc = rd_u32(&r);
    q->argv = read_strv(&r, q->argc);
    q->envc = r.bad ? 0 : rd_u32(&r);
    q->env = read_strv(&r, q->envc);
    if (!rd_done(&r) || !q->argv || !q->env) {
        if (!q->argv)
            q->argc = 0;
        if (!q->env)
            q->envc = 0;
        return -1;
    }
    return 0;
}

/* The agent's defaults with each K=V of the request replacing or adding. */
static char **build_env(const struct request *q)
{
    char **env = calloc(NDEFAULT_ENV + q->envc + 1, sizeof *env);
    if (!env)
        abort();
    size_t n = 0;
    for (size_t i = 0; i < NDEFAULT_ENV; i++)
        env[n++] = (char *)default_env[i];
    for (uint32_t i = 0; i < q->envc; i++) {
        size_t klen = (size_t)(strchr(q->env[i], '=') - q->env[i]) + 1;
        size_t j = 0;
        while (j < n && strncmp(env[j], q->env[i], klen) != 0)
            j++;
        env[j] = q->env[i];
        if (j == n)
            n++;
    }
    return env;
}

static void child_fail(int errfd, int stage)
{
    struct exec_failure f = { stage, errno };
    if (write(errfd, &f, sizeof f) < 0) {
        /* nothing more we can do */
    }
    _exit(127);
}

/* In the child: never returns. Only async-signal-safe calls between fork and exec. */
static void child(const struct request *q, char **env, int in_rd, int out_wr, int err_wr, int errfd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);  /* ignored dispositions (SIGPIPE) would survive exec */
    setsid();
    if (in_rd < 0 && (in_rd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
        child_fail(errfd, STAGE_SETUP);
    if (dup2(in_rd, 0) < 0 || dup2(out_wr, 1) < 0 || dup2(err_wr, 2) < 0)
        child_fail(errfd, STAGE_SETUP);
    if (chdir(q->cwd[0] ? q->cwd : "/") < 0)
        child_fail(errfd, STAGE_CHDIR);
    environ = env;  /* so execvp searches the request's PATH */
    execvp(q->argv[0], q->argv);
    child_fail(errfd, STAGE_EXEC);
}

static void report_failure(uint32_t id, const struct request *q, struct exec_failure f)
{
    const char *cwd = q->cwd[0] ? q->cwd : "/";
    if (f.stage == STAGE_CHDIR && f.err == ENOENT)
        send_error(id, ERR_NOT_FOUND, "working directory not found: %s", cwd);
    else if (f.stage == STAGE_CHDIR)
        send_error(id, errno_code(f.err), "cannot enter working directory %s: %s", cwd, strerror(f.err));
    else if (f.stage == STAGE_EXEC && f.err == ENOENT)
        send_error(id, ERR_NOT_FOUND, "command not found: %s", q->argv[0]);
    else if (f.stage == STAGE_EXEC && (f.err == EACCES || f.err == EPERM))
        send_error(id, ERR_PERMISSION, "permission denied: %s", q->argv[0]);
    else if (f.stage == STAGE_EXEC)
        send_error(id, errno_code(f.err), "cannot execute %s: %s", q->argv[0], strerror(f.err));
    else
        send_error(id, ERR_INTERNAL, "cannot set up the process: %s", strerror(f.err));
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Pipes are [read, write]; all O_CLOEXEC so no child inherits another session's ends. */
static void spawn(uint32_t id, const struct request *q)
{
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, fail[2] = { -1, -1 };
    int want_stdin = q->flags & EXEC_FLAG_STDIN;
    if ((want_stdin && pipe2(in, O_CLOEXEC) < 0) || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
        pipe2(fail, O_CLOEXEC) < 0) {
        send_error(id, ERR_RESOURCE_LIMIT, "cannot create pipes: %s", strerror(errno));
        goto out;
    }
    char **env = build_env(q);
    pid_t pid = fork();
    if (pid == 0)
        child(q, env, in[0], out[1], err[1], fail[1]);
    int fork_errno = errno;
    free(env);
    if (pid < 0) {
        send_error(id, ERR_RESOURCE_LIMIT, "fork failed: %s", strerror(fork_errno));
        goto out;
    }
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&err[1]);
    close_fd(&fail[1]);
    struct exec_failure f;
    ssize_t n;
    do
        n = read(fail[0], &f, sizeof f);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof f) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        report_failure(id, q, f);
        goto out;
    }
    struct stream *s = stream_open(id, ST_EXEC);
    struct exec_state *x = &s->x;
    x->pid = pid;
    x->deadline_ms = q->timeout_ms ? now_ms() + q->timeout_ms : 0;
    x->out_fd[0] = out[0];
    x->out_fd[1] = err[0];
    x->out_credit[0] = x->out_credit[1] = INITIAL_WINDOW;
    x->in_fd = in[1];
    out[0] = err[0] = in[1] = -1;
    set_nonblock(x->out_fd[0]);
    set_nonblock(x->out_fd[1]);
    if (x->in_fd >= 0)
        set_nonblock(x->in_fd);
    uint8_t buf[4];
    put_le32(buf, (uint32_t)pid);
    send_frame(MSG_EXEC_STARTED, 0, id, buf, sizeof buf);
out:
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&out[i]);
        close_fd(&err[i]);
        close_fd(&fail[i]);
    }
}

int exec_start(uint32_t id, const uint8_t *p, size_t len)
{
    struct request q;
    if (parse_request(&q, p, len) < 0) {
        free_request(&q);
        return -1;
    }
    if (q.flags & ~(uint32_t)EXEC_FLAG_STDIN)
        send_error(id, ERR_INVALID_ARGUMENT, "unknown exec flags 0x%x", q.flags);
    else if (q.argc == 0)
        send_error(id, ERR_INVALID_ARGUMENT, "argv is empty");
    else {
        uint32_t i = 0;
        while (i < q.envc && strchr(q.env[i], '=') && q.env[i][0] != '=')
            i++;
        if (i < q.envc)
            send_error(id, ERR_INVALID_ARGUMENT, "environment entry is not K=V: %s", q.env[i]);
        else
            spawn(id, &q);
    }
    free_request(&q);
    return 0;
}
