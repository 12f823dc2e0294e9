/* One-shot file system requests: MKDIR, STAT, LIST, REMOVE (each answered at once). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "fsops.h"
#include "wire.h"

uint32_t errno_code(int err)
{
    switch (err) {
    case ENOENT: return ERR_NOT_FOUND;
    case EACCES:
    case EPERM: return ERR_PERMISSION;
    case EEXIST: return ERR_ALREADY_EXISTS;
    case ENOTDIR: return ERR_NOT_A_DIRECTORY;
    case EISDIR: return ERR_IS_A_DIRECTORY;
    case ENOTEMPTY: return ERR_NOT_EMPTY;
    case EINVAL: return ERR_INVALID_ARGUMENT;
    default: return ERR_IO;
    }
}

void send_errno(uint32_t id, int err, const char *path)
{
    send_error(id, errno_code(err), "%s: %s", path, strerror(err));
}

/* Parses a payload that is exactly `[u32 flags_or_mode,] str path`. */
char *parse_path(const uint8_t *p, size_t len, int with_u32, uint32_t *u32)
{
    struct rd r;
    rd_init(&r, p, len);
    if (with_u32)
        *u32 = rd_u32(&r);
    char *path = rd_str(&r);
    if (!rd_done(&r)) {
        free(path);
        return NULL;
    }
    return path;
}

int make_dirs(const char *path, int include_last, mode_t mode, char **where)
{
    char *p = strdup(path);
    if (!p)
        abort();
    *where = p;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = 0;
    for (size_t i = 1; i <= n; i++) {
        if ((p[i] != '/' && p[i] != 0) || p[i - 1] == '/')
            continue;
        int last = p[i] == 0;
        if (last && !include_last)
            break;
        char c = p[i];
        p[i] = 0;
        if (mkdir(p, last ? mode : 0755) == 0) {
            if (last && chmod(p, mode) < 0)  /* exact mode, whatever the umask */
                return -1;
        } else {
            int e = errno;
            struct stat st;
            if (stat(p, &st) < 0) {
                errno = e;
                return -1;
            }
            if (!S_ISDIR(st.st_mode)) {
                errno = last ? EEXIST : ENOTDIR;
                return -1;
            }
        }
        p[i] = c;
    }
    free(p);
    *where = NULL;
    return 0;
}

int fs_mkdir(uint32_t id, const uint8_t *p, size_t len)
{
    uint32_t mode;
    char *path = parse_path(p, len, 1, &mode);
    if (!path)
        return -1;
    char *where;
    if (!path[0])
        send_error(id, ERR_INVALID_ARGUMENT, "empty path");
    else if (make_dirs(path, 1, mode & 07777, &where) < 0) {
        send_errno(id, errno, where);
        free(where);
    } else
        send_ok(id, 0);
    free(path);
    return 0;
}

static void put_entry(struct wb *w, const struct stat *st, const char *name)
{
    uint8_t type = S_ISREG(st->st_mode)   ? ENTRY_FILE
                   : S_ISDIR(st->st_mode) ? ENTRY_DIRECTORY
                   : S_ISLNK(st->st_mode) ? ENTRY_SYMLINK
                                          : ENTRY_OTHER;
    wb_u8(w, type);
    wb_u32(w, st->st_mode & 07777);
    wb_u64(w, (uint64_t)st->st_size);
    wb_u64(w, (uint64_t)((int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000));
    wb_str(w, name);
}

static const char *base_name(char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        path[--n] = 0;
    char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

int fs_stat(uint32_t id, const uint8_t *p, size_t len)
{
    char *path = parse_path(p, len, 0, NULL);
    if (!path)
        return -1;
    struct stat st;
    if (!path[0])
        send_error(id, ERR_INVALID_ARGUMENT, "empty path");
    else if (lstat(path, &st) < 0)
        send_errno(id, errno, path);
    else {
        uint8_t buf[64 + 4096];
        struct wb w;
        wb_init(&w, buf, sizeof buf);
        put_entry(&w, &st, base_name(path));
        if (w.overflow)
            send_error(id, ERR_INVALID_ARGUMENT, "name too long");
        else
            send_frame(MSG_STAT_RESULT, 0, id, buf, w.len);
    }
    free(path);
    return 0;
}

static uint8_t listbuf[MAX_PAYLOAD];

static void list_send(uint32_t id, struct wb *w, uint32_t count, uint8_t flags)
{
    put_le32(w->p, count);
    send_frame(MSG_LIST_RESULT, flags, id, w->p, w->len);
    wb_init(w, listbuf, sizeof listbuf);
    wb_u32(w, 0);
}

int fs_list(uint32_t id, const uint8_t *p, size_t len)
{
    char *path = parse_path(p, len, 0, NULL);
    if (!path)
        return -1;
    int fd = path[0] ? open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!path[0])
        send_error(id, ERR_INVALID_ARGUMENT, "empty path");
    else if (!d) {
        send_errno(id, errno, path);
        if (fd >= 0)
            close(fd);
    } else {
        struct wb w;
        wb_init(&w, listbuf, sizeof listbuf);
        wb_u32(&w, 0);
        uint32_t count = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            struct stat st;
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
                fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                continue;  /* vanished since readdir: not listed */
            uint8_t one[64 + 256];
            struct wb ew;
            wb_init(&ew, one, sizeof one);
            put_entry(&ew, &st, e->d_name);
            if (w.len + ew.len > sizeof listbuf) {
                list_send(id, &w, count, 0);
                count = 0;
            }
            wb_bytes(&w, one, ew.len);
            count++;
        }
        list_send(id, &w, count, FLAG_FIN);
        closedir(d);
    }
    free(path);
    return 0;
}

static int rm_errno;
static char *rm_where;

static int rm_one(const char *fpath, const struct stat *sb, int typeflag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    int rc = typeflag == FTW_DP || typeflag == FTW_D || typeflag == FTW_DNR ? rmdir(fpath) : unlink(fpath);
    if (rc < 0 && errno != ENOENT) {
        rm_errno = errno;
        rm_where = strdup(fpath);
        return 1;
    }
    return 0;
}

int fs_remove(uint32_t id, const uint8_t *p, size_t len)
{
    uint32_t flags;
    char *path = parse_path(p, len, 1, &flags);
    if (!path)
        return -1;
    struct stat st;
    if (flags & ~(uint32_t)REMOVE_FLAG_RECURSIVE)
        send_error(id, ERR_INVALID_ARGUMENT, "unknown remove flags 0x%x", flags);
    else if (!path[0])
        send_error(id, ERR_INVALID_ARGUMENT, "empty path");
    else if (lstat(path, &st) < 0)
        send_errno(id, errno, path);
    else if (!S_ISDIR(st.st_mode))
        unlink(path) < 0 ? send_errno(id, errno, path) : send_ok(id, 0);
    else if (!(flags & REMOVE_FLAG_RECURSIVE))
        rmdir(path) < 0 ? send_errno(id, errno, path) : send_ok(id, 0);
    else {
        rm_errno = 0;
        rm_where = NULL;
        int rc = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        if (rc == 0)
            send_ok(id, 0);
        else if (rm_errno) {
            send_errno(id, rm_errno, rm_where ? rm_where : path);
            free(rm_where);
        } else
            send_errno(id, errno, path);
    }
    free(path);
    return 0;
}
