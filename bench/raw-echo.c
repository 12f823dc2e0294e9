/* Raw virtio-serial baseline for `npm run bench`: no framing, no multiplexing, just bytes.
 * Commands from the host: one byte + u64 little-endian length n.
 *   'E' n: read n bytes and write them back (round trip).
 *   'U' n: read and discard n bytes, then write one byte (upload throughput).
 *   'D' n: write n zero bytes (download throughput).
 *   'F' n: read n bytes into /tmp/raw.bin, then write one byte (upload into a file: the same storage work as jitvm).
 *   'R' n: write the first n bytes of /tmp/raw.bin (download from a file). */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char buf[1 << 16];

static int full_io(int fd, char *p, size_t n, int writing) {
    while (n > 0) {
        ssize_t r = writing ? write(fd, p, n) : read(fd, p, n);
        if (r <= 0) return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int open_port(void) {
    for (;;) {
        DIR *dir = opendir("/sys/class/virtio-ports");
        struct dirent *entry;
        while (dir && (entry = readdir(dir))) {
            char path[512], name[64] = {0};
            snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", entry->d_name);
            FILE *f = fopen(path, "r");
            if (!f) continue;
            if (fgets(name, sizeof name, f) && strncmp(name, "jitvm.agent", 11) == 0) {
                snprintf(path, sizeof path, "/dev/%s", entry->d_name);
                int fd = open(path, O_RDWR);
                if (fd >= 0) return fd;
            }
            fclose(f);
        }
        if (dir) closedir(dir);
        usleep(1000);
    }
}

int main(void) {
    int fd = open_port();
    for (;;) {
        char header[9];
        if (full_io(fd, header, sizeof header, 0) < 0) { usleep(1000); continue; }
        uint64_t n;
        memcpy(&n, header + 1, 8);
        char op = header[0];
        int file = op == 'F' ? open("/tmp/raw.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644)
                 : op == 'R' ? open("/tmp/raw.bin", O_RDONLY) : -1;
        while (n > 0) {
            size_t chunk = n < sizeof buf ? (size_t)n : sizeof buf;
            if (op == 'D') memset(buf, 0, chunk);
            else if (full_io(op == 'R' ? file : fd, buf, chunk, 0) < 0) break;
            if (op == 'F' && full_io(file, buf, chunk, 1) < 0) break;
            if ((op == 'E' || op == 'D' || op == 'R') && full_io(fd, buf, chunk, 1) < 0) break;
            n -= chunk;
        }
        if (file >= 0) close(file);
        if (op == 'U' || op == 'F') full_io(fd, buf, 1, 1);
    }
}
