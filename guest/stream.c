/* The table of open streams: at most MAX_STREAMS requests that outlive the frame that opened them. */
#include <string.h>

#include "agent.h"

struct stream streams[MAX_STREAMS];

struct stream *stream_find(uint32_t id)
{
    if (id == 0)
        return NULL;
    for (int i = 0; i < MAX_STREAMS; i++)
        if (streams[i].kind != ST_FREE && streams[i].id == id)
            return &streams[i];
    return NULL;
}

int stream_count(void)
{
    int n = 0;
    for (int i = 0; i < MAX_STREAMS; i++)
        n += streams[i].kind != ST_FREE;
    return n;
}

/* The caller has checked that `id` is new and a slot is free. */
struct stream *stream_open(uint32_t id, enum stream_kind kind)
{
    for (int i = 0; i < MAX_STREAMS; i++) {
        struct stream *s = &streams[i];
        if (s->kind == ST_FREE) {
            memset(s, 0, sizeof *s);
            s->id = id;
            s->kind = kind;
            s->x.out_fd[0] = s->x.out_fd[1] = s->x.in_fd = -1;
            s->f.fd = -1;
            s->t.fd = s->t.listener = -1;
            return s;
        }
    }
    return NULL;
}

/* Forget a stream, releasing what it holds (an unfinished exec's process group is killed, an open TCP connection
 * reset). */
void stream_close(struct stream *s)
{
    if (s->kind == ST_EXEC)
        exec_release(s);
    else if (s->kind == ST_FILE_WRITE || s->kind == ST_FILE_READ)
        file_release(s);
    else if (s->kind == ST_TCP)
        tcp_release(s);
    s->kind = ST_FREE;
    s->id = 0;
}

void streams_close_all(void)
{
    for (int i = 0; i < MAX_STREAMS; i++)
        if (streams[i].kind != ST_FREE)
            stream_close(&streams[i]);
    tcp_close_listeners();
}
