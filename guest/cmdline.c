/* The kernel command line, read once: `name=value` lookups for the boot arguments. */
#include <stdio.h>
#include <string.h>

#include "boot.h"

static char cmdline[4096];
static int loaded;

static void load(void)
{
    if (loaded)
        return;
    loaded = 1;
    FILE *f = fopen("/proc/cmdline", "re");
    if (!f)
        return;
    if (!fgets(cmdline, sizeof cmdline, f))
        cmdline[0] = 0;
    fclose(f);
}

void cmdline_each(const char *name, void (*fn)(const char *value, void *ctx), void *ctx)
{
    load();
    size_t n = strlen(name);
    for (const char *p = cmdline; *p;) {
        p += strspn(p, " \n");
        size_t len = strcspn(p, " \n");
        if (len > n && strncmp(p, name, n) == 0 && p[n] == '=') {
            char value[1024];
            if (len - n - 1 < sizeof value) {
                memcpy(value, p + n + 1, len - n - 1);
                value[len - n - 1] = 0;
                fn(value, ctx);
            }
        }
        p += len;
    }
}

struct last { char *out; size_t cap; int found; };

static void keep_last(const char *value, void *ctx)
{
    struct last *l = ctx;
    l->found = strlen(value) < l->cap;
    if (l->found)
        strcpy(l->out, value);
}

int cmdline_last(const char *name, char *out, size_t cap)
{
    struct last l = { out, cap, 0 };
    cmdline_each(name, keep_last, &l);
    return l.found;
}
