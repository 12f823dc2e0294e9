/* FILE_WRITE and FILE_READ streams: file bodies as flow-controlled FILE_DATA frames. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "fsops.h"
#include "wire.h"

int file_write_start(uint32_t id, const uint8_t *p, size_t len)
{
    struct rd r;
    rd_init(&r, p, len);
    uint32_t mode = rd_u32(&r), flags = rd_u32(&r);
    char *path = rd_str(&r);
    if (!rd_done(&r)) {
        free(path);
        return -1;
    }
    mode &= 07777;
    char *where = NULL;
    int fd = -1;
    struct stat st;
    if (flags & ~(uint32_t)FILE_WRITE_FLAG_MKDIRS)
        send_error(id, ERR_INVALID_ARGUMENT, "unknown file write flags 0x%x", flags);
    else if (!path[0])
        send_error(id, ERR_INVALID_ARGUMENT, "empty path");
    else if ((flags & FILE_WRITE_FLAG_MKDIRS) && make_dirs(path, 0, 0755, &where) < 0)
        send_errno(id, errno, where);
    else if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, mode)) < 0)
        send_errno(id, errno, path);
    else if (fstat(fd, &st) < 0 || (S_ISREG(st.st_mode) && fchmod(fd, mode) < 0)) {
        send_errno(id, errno, path);  /* fchmod: the exact mode, whatever the umask */
        close(fd);
        fd = -1;
    } else if (!S_ISREG(st.st_mode)) {
        /* A FIFO or device could block the single-threaded agent on write. */
        send_error(id, ERR_INVALID_ARGUMENT, "%s: not a regular file", path);
        close(fd);
        fd = -1;
    }
    free(where);
    if (fd < 0) {
        free(path);
        return 0;
    }
    struct stream *s = stream_open(id, ST_FILE_WRITE);
    s->f.fd = fd;
    s->f.path = path;
    return 0;
}

static int write_all(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int file_data(struct stream *s, uint8_t flags, const uint8_t *data, size_t len)
{
    /* Each chunk is written before the next frame is read and granted back at once, so nothing is ever buffered
     * here and a frame (<= MAX_PAYLOAD) always fits the window. */
    struct file_state *f = &s->f;
    if (write_all(f->fd, data, len) < 0) {
        send_errno(s->id, errno, f->path);
        stream_close(s);  /* later FILE_DATA for this stream is dropped */
        return 0;
    }
    f->total += len;
    if (!(flags & FLAG_FIN)) {
        if (len)
            send_window(s->id, WINDOW_FILE, len);
        return 0;
    }
    int rc = close(f->fd);
    f->fd = -1;
    if (rc < 0)
        send_errno(s->id, errno, f->path);
    else
        send_ok(s->id, f->total);
    stream_close(s);
    return 0;
}

int file_read_start(uint32_t id, const uint8_t *p, size_t len)
{
    char *path = parse_path(p, len, 0, NULL);
    if (!path)
        return -1;
    struct stat st;
    int fd = path[0] ? open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK) : -1;
    if (!path[0])
        send_error(id, ERR_INVALID_ARGUMENT, "empty path");
    else if (fd < 0 || fstat(fd, &st) < 0)
        send_errno(id, errno, path);
    else if (S_ISDIR(st.st_mode))
        send_errno(id, EISDIR, path);
    else if (!S_ISREG(st.st_mode))
        send_error(id, ERR_INVALID_ARGUMENT, "%s: not a regular file", path);
    else {
        struct stream *s = stream_open(id, ST_FILE_READ);
        s->f.fd = fd;
        s->f.path = path;
        s->f.credit = INITIAL_WINDOW;
        s->f.size = st.st_size;
        uint8_t buf[12];
        struct wb w;
        wb_init(&w, buf, sizeof buf);
        wb_u64(&w, (uint64_t)st.st_size);
        wb_u32(&w, st.st_mode & 07777);
        send_frame(MSG_FILE_READ_OK, 0, id, buf, w.len);
        return 0;
    }
    if (fd >= 0)
        close(fd);
    free(path);
    return 0;
}

int files_pending(void)
{
    if (outq_len() >= OUTQ_DATA_CAP)
        return 0;
    for (int i = 0; i < MAX_STREAMS; i++)
        if (streams[i].kind == ST_FILE_READ && streams[i].f.credit > 0)
            return 1;
    return 0;
}

static void files_pump_round(void);

/* Round-robin, one chunk per readable stream per round, so one big file does not starve the rest; rounds repeat
 * until the output queue is full or no stream has credit, so a fast transfer is not paced by the poll loop. */
void files_pump(void)
{
    size_t before;
    do {
        before = outq_len();
        files_pump_round();
    } while (outq_len() > before && outq_len() < OUTQ_DATA_CAP);
}

static void files_pump_round(void)
{
    for (int i = 0; i < MAX_STREAMS && outq_len() < OUTQ_DATA_CAP; i++) {
        struct stream *s = &streams[i];
        if (s->kind != ST_FILE_READ || s->f.credit == 0)
            continue;
        size_t want = s->f.credit < DATA_CHUNK ? (size_t)s->f.credit : DATA_CHUNK;
        uint8_t *buf = frame_reserve(want);
        if (!buf)
            return;
        ssize_t n = read(s->f.fd, buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            send_errno(s->id, errno, s->f.path);
            stream_close(s);
            continue;
        }
        /* A short read of a regular file is its end; files that report size 0 (/proc) end at a 0-byte read. */
        int fin = n == 0 || ((size_t)n < want && s->f.size > 0);
        s->f.credit -= (uint64_t)n;
        frame_commit(MSG_FILE_DATA, fin ? FLAG_FIN : 0, s->id, (size_t)n);
        if (fin)
            stream_close(s);
    }
}

void file_release(struct stream *s)
{
    if (s->f.fd >= 0)
        close(s->f.fd);
    s->f.fd = -1;
    free(s->f.path);
    s->f.path = NULL;
}
