/* SET_IDENTITY: fresh entropy for the kernel RNG, the host's wall-clock time and a hostname, so that clones restored
 * from one memory snapshot stop sharing their RNG state, clock and name. See docs/protocol.md#identity. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "wire.h"

#define ETC_HOSTNAME "/etc/hostname"

/* RNDADDENTROPY's argument: the header, then up to IDENTITY_MAX_ENTROPY bytes. A union, since a struct ending in a
 * flexible array member cannot be embedded in another struct. */
union pool_request {
    struct rand_pool_info info;
    uint8_t raw[sizeof(struct rand_pool_info) + IDENTITY_MAX_ENTROPY];
};

int identity_available(void)
{
    return running_as_init();
}

/* At most IDENTITY_MAX_HOSTNAME bytes of [A-Za-z0-9.-]; the empty name is valid and keeps the current hostname. */
static int hostname_valid(const char *name)
{
    size_t n = strlen(name);
    if (n > IDENTITY_MAX_HOSTNAME)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* Mixes the bytes into the input pool crediting 8 bits each (which makes the CRNG ready if it was not), then makes
 * the kernel extract a new base key from the pool: every CPU's CRNG re-keys from it on its next use. */
static int reseed(uint32_t id, const uint8_t *entropy, size_t len)
{
    static union pool_request req;
    int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        send_error(id, errno_code(errno), "entropy: opening /dev/urandom: %s", strerror(errno));
        return -1;
    }
    req.info.entropy_count = (int)(len * 8);
    req.info.buf_size = (int)len;
    memcpy(req.info.buf, entropy, len);
    int rc = ioctl(fd, RNDADDENTROPY, &req.info);
    int err = errno;
    explicit_bzero(&req, sizeof req);
    if (rc < 0) {
        close(fd);
        send_error(id, errno_code(err), "entropy: RNDADDENTROPY on /dev/urandom: %s", strerror(err));
        return -1;
    }
    rc = ioctl(fd, RNDRESEEDCRNG);
    err = errno;
    close(fd);
    if (rc < 0 && (err == EINVAL || err == ENOTTY)) {
        send_error(id, ERR_UNSUPPORTED, "entropy: the guest kernel lacks RNDRESEEDCRNG (Linux 4.17 or later needed)");
        return -1;
    }
    if (rc < 0) {
        send_error(id, errno_code(err), "entropy: RNDRESEEDCRNG on /dev/urandom: %s", strerror(err));
        return -1;
    }
    return 0;
}

static int set_clock(uint32_t id, uint64_t realtime_ns)
{
    struct timespec ts = { .tv_sec = (time_t)(realtime_ns / 1000000000u),
                           .tv_nsec = (long)(realtime_ns % 1000000000u) };
    if (clock_settime(CLOCK_REALTIME, &ts) < 0) {
        send_error(id, errno_code(errno), "clock: clock_settime(CLOCK_REALTIME, %llu ns): %s",
                   (unsigned long long)realtime_ns, strerror(errno));
        return -1;
    }
    return 0;
}

/* Writes "name\n" to /etc/hostname for programs that read the file; 0 or an errno. */
static int write_etc_hostname(const char *name, size_t n)
{
    char line[IDENTITY_MAX_HOSTNAME + 1];
    memcpy(line, name, n);
    line[n] = '\n';
    int fd = open(ETC_HOSTNAME, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    ssize_t w = write(fd, line, n + 1);
    int err = w < 0 ? errno : w != (ssize_t)(n + 1) ? EIO : 0;
    if (close(fd) < 0 && !err)
        err = errno;
    return err;
}

/* sethostname, then /etc/hostname; a root without /etc, or a read-only one, skips the file. */
static int set_hostname(uint32_t id, const char *name)
{
    size_t n = strlen(name);
    if (sethostname(name, n) < 0) {
        send_error(id, errno_code(errno), "hostname: sethostname: %s", strerror(errno));
        return -1;
    }
    int err = write_etc_hostname(name, n);
    if (err && err != EROFS && err != ENOENT) {
        send_error(id, errno_code(err), "hostname: writing " ETC_HOSTNAME ": %s", strerror(err));
        return -1;
    }
    return 0;
}

int identity_set(uint32_t id, const uint8_t *p, size_t len)
{
    struct rd r;
    rd_init(&r, p, len);
    uint64_t realtime_ns = rd_u64(&r);
    char *hostname = rd_str(&r);
    if (r.bad)
        return -1;
    size_t entropy_len = rd_left(&r);
    const uint8_t *entropy = p + r.off;
    /* Every value is checked before any step runs, so a refused request changes nothing. */
    if (!hostname_valid(hostname))
        send_error(id, ERR_INVALID_ARGUMENT, "hostname: use at most %d letters, digits, '-' and '.'",
                   IDENTITY_MAX_HOSTNAME);
    else if (entropy_len < IDENTITY_MIN_ENTROPY || entropy_len > IDENTITY_MAX_ENTROPY)
        send_error(id, ERR_INVALID_ARGUMENT, "entropy: %zu bytes, needs %d to %d", entropy_len, IDENTITY_MIN_ENTROPY,
                   IDENTITY_MAX_ENTROPY);
    else if (!identity_available())
        send_error(id, ERR_UNSUPPORTED, "only the agent running as PID 1 of a VM sets its identity; dev mode leaves "
                                        "its host's RNG, clock and hostname alone");
    else if (reseed(id, entropy, entropy_len) == 0 && set_clock(id, realtime_ns) == 0 &&
             (!hostname[0] || set_hostname(id, hostname) == 0))
        send_ok(id, 0);
    free(hostname);
    return 0;
}
