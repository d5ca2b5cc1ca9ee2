/* The event hub: a ring of framed events in arrival order, an index of their stable ids
 * (repeats are dropped, Last-Event-ID is found in O(1)), and the streams reading the ring.
 *
 * A stream is a position in the ring (the next event to look at, and how much of it is
 * already sent) plus a small buffer of control text (the opening comment, a reset event,
 * heartbeats). Events are framed once when they arrive and copied straight from the ring
 * into the transport's buffer, so a thousand streams cost a thousand positions, not a
 * thousand copies, and a stream that stops reading grows nothing. What it has not sent is
 * counted (`backlog`, in bytes of matching events) only to decide when it is too far behind:
 * above max_backlog for stall_ms, or at once when the ring drops an event it still owed, it
 * is dropped and its transport told to close the connection; the client reconnects with
 * Last-Event-ID and gets a replay or a reset.
 *
 * Why a time as well as a size: events come in bursts (one commit of the DNS service writes
 * the changes of up to 2,000 domains, published in one go), and a burst larger than the cap
 * reaches every stream at once, however fast its client reads. On loopback a 1 MB burst put
 * a client reading as fast as it could more than 64 KiB behind within milliseconds, and a
 * cap checked on arrival dropped it. A client that reads catches up within the grace; one
 * that does not stays above the cap and goes.
 *
 * One mutex guards the hub and every stream. Everything under it is bounded: publishing
 * visits each stream once (a topic match), eviction the same, a read copies at most what
 * the transport asked for. */
#include "dm/events.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm/error.h"

#define HUB_DEFAULT_MAX_EVENTS 10000
#define HUB_DEFAULT_MAX_BYTES ((size_t)16 << 20)
#define HUB_DEFAULT_MAX_STREAMS 256
#define HUB_DEFAULT_MAX_BACKLOG ((size_t)1 << 20)
#define HUB_DEFAULT_STALL_MS 5000
#define HUB_DEFAULT_HEARTBEAT_MS 15000
/* Control text a stream holds at most: the opening comment and a reset event. */
#define HUB_PRE_MAX 2048

static const char hub_opening[] = "ok";
static const char hub_ping[] = "ping";

struct hub_event {
        uint64_t seq;
        uint64_t hash; /* of id */
        size_t len;    /* bytes of frame */
        const char *id;
        const char *topic;
        const char *frame;
        char mem[]; /* id, NUL, topic, NUL, frame */
};

struct dm_event_stream {
        struct dm_event_hub *hub;
        struct dm_event_filter *filter;
        size_t slot;       /* index in hub->streams */
        uint64_t next_seq; /* the next ring event to look at */
        size_t offset;     /* bytes of event next_seq already sent */
        size_t backlog;    /* bytes of matching events not yet sent */
        struct dm_buf pre; /* control text sent before any further event */
        size_t pre_off;
        int64_t last_sent_ms;
        bool over; /* backlog above max_backlog, since over_since_ms */
        int64_t over_since_ms;
        bool dropped;
        struct dm_event_stream_ops ops;
        void *arg;
};

struct dm_event_hub {
        pthread_mutex_t mu;
        struct dm_event_hub_opts o;
        struct hub_event **ring;      /* o.max_events slots; event seq is in slot seq % size */
        uint64_t first_seq, next_seq; /* held: [first_seq, next_seq); seqs start at 1 */
        size_t bytes;                 /* framed bytes held */
        struct hub_event **index;     /* open addressing on the id hash, linear probing */
        size_t index_cap;             /* a power of two, at least twice max_events */
        struct dm_event_stream **streams;
        size_t nstreams;
        bool shut;
        struct dm_event_hub_stats stats;
};

/* ---- the id index ---- */

static uint64_t id_hash(const char *id)
{
        uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
        for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
                h ^= *p;
                h *= UINT64_C(1099511628211);
        }
        return h;
}

static size_t index_home(const struct dm_event_hub *h, uint64_t hash)
{
        return (size_t)(hash ^ (hash >> 29)) & (h->index_cap - 1);
}

static struct hub_event *index_find(const struct dm_event_hub *h, const char *id)
{
        uint64_t hash = id_hash(id);
        for (size_t i = index_home(h, hash);; i = (i + 1) & (h->index_cap - 1)) {
                struct hub_event *ev = h->index[i];
                if (!ev)
                        return NULL;
                if (ev->hash == hash && strcmp(ev->id, id) == 0)
                        return ev;
        }
}

/* The table is never more than half full (index_cap >= 2 * max_events), so a free slot is
 * always found. */
static void index_add(struct dm_event_hub *h, struct hub_event *ev)
{
        size_t i = index_home(h, ev->hash);
        while (h->index[i])
                i = (i + 1) & (h->index_cap - 1);
        h->index[i] = ev;
}

/* Backward-shift deletion: every probe run stays unbroken, with no tombstones to pile up. */
static void index_remove(struct dm_event_hub *h, const struct hub_event *ev)
{
        size_t mask = h->index_cap - 1;
        size_t i = index_home(h, ev->hash);
        while (h->index[i] != ev)
                i = (i + 1) & mask;
        for (size_t j = (i + 1) & mask; h->index[j]; j = (j + 1) & mask) {
                size_t home = index_home(h, h->index[j]->hash);
                /* Entry j may fill the hole at i unless its home lies cyclically in (i, j]. */
                bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
                if (!stays) {
                        h->index[i] = h->index[j];
                        i = j;
                }
        }
        h->index[i] = NULL;
}

/* ---- the ring ---- */

static struct hub_event *ring_at(const struct dm_event_hub *h, uint64_t seq)
{
        return h->ring[seq % h->o.max_events];
}

static void stream_drop(struct dm_event_hub *h, struct dm_event_stream *s)
{
        if (s->dropped)
                return;
        s->dropped = true;
        h->stats.streams_dropped++;
        if (s->ops.kill)
                s->ops.kill(s->arg);
        if (s->ops.wake)
                s->ops.wake(s->arg);
}

static void stream_wake(struct dm_event_stream *s)
{
        if (s->ops.wake)
                s->ops.wake(s->arg);
}

/* Drops the oldest event. A stream that still owed it (any part of it, if it matches) has
 * fallen out of the ring: what it would send next is gone, so it is dropped. */
static void ring_evict(struct dm_event_hub *h)
{
        struct hub_event *ev = ring_at(h, h->first_seq);

        for (size_t i = 0; i < h->nstreams; i++) {
                struct dm_event_stream *s = h->streams[i];
                if (s->next_seq > ev->seq)
                        continue;
                if (s->offset > 0 || dm_event_filter_match(s->filter, ev->topic))
                        stream_drop(h, s);
                s->next_seq = ev->seq + 1;
                s->offset = 0;
        }
        index_remove(h, ev);
        h->ring[ev->seq % h->o.max_events] = NULL;
        h->first_seq++;
        h->bytes -= ev->len;
        h->stats.evicted++;
        free(ev);
}

/* Frames an event into one allocation, outside the lock. */
static int event_new(const char *topic, const char *id, const void *body, size_t len,
                     size_t max_bytes, struct hub_event **ret_event)
{
        struct dm_buf frame;
        size_t idlen = strlen(id), tlen = strlen(topic);
        int r;

        dm_buf_init(&frame, max_bytes);
        r = dm_sse_append_event(&frame, topic, id, body, len);
        if (r < 0)
                goto done;
        struct hub_event *ev = malloc(sizeof(*ev) + idlen + 1 + tlen + 1 + frame.len);
        if (!ev) {
                r = DM_ENOMEM;
                goto done;
        }
        char *p = ev->mem;
        memcpy(p, id, idlen + 1);
        ev->id = p;
        p += idlen + 1;
        memcpy(p, topic, tlen + 1);
        ev->topic = p;
        p += tlen + 1;
        memcpy(p, frame.data, frame.len);
        ev->frame = p;
        ev->len = frame.len;
        ev->hash = id_hash(id);
        ev->seq = 0;
        *ret_event = ev;
done:
        dm_buf_done(&frame);
        return r;
}

/* ---- the hub ---- */

int dm_event_hub_new(const struct dm_event_hub_opts *opts, struct dm_event_hub **ret_hub)
{
        struct dm_event_hub *h = calloc(1, sizeof(*h));
        if (!h)
                return DM_ENOMEM;
        h->o = *opts;
        if (!h->o.max_events)
                h->o.max_events = HUB_DEFAULT_MAX_EVENTS;
        if (!h->o.max_bytes)
                h->o.max_bytes = HUB_DEFAULT_MAX_BYTES;
        if (!h->o.max_streams)
                h->o.max_streams = HUB_DEFAULT_MAX_STREAMS;
        if (!h->o.max_backlog)
                h->o.max_backlog = HUB_DEFAULT_MAX_BACKLOG;
        if (h->o.stall_ms <= 0)
                h->o.stall_ms = HUB_DEFAULT_STALL_MS;
        if (h->o.heartbeat_ms <= 0)
                h->o.heartbeat_ms = HUB_DEFAULT_HEARTBEAT_MS;
        h->index_cap = 16;
        while (h->index_cap < 2 * h->o.max_events)
                h->index_cap *= 2;
        h->first_seq = h->next_seq = 1;
        h->ring = calloc(h->o.max_events, sizeof(*h->ring));
        h->index = calloc(h->index_cap, sizeof(*h->index));
        h->streams = calloc(h->o.max_streams, sizeof(*h->streams));
        if (!h->ring || !h->index || !h->streams || pthread_mutex_init(&h->mu, NULL) != 0) {
                free(h->ring);
                free(h->index);
                free(h->streams);
                free(h);
                return DM_ENOMEM;
        }
        *ret_hub = h;
        return 0;
}

void dm_event_hub_free(struct dm_event_hub *h)
{
        if (!h)
                return;
        for (uint64_t seq = h->first_seq; seq < h->next_seq; seq++)
                free(ring_at(h, seq));
        free(h->ring);
        free(h->index);
        free(h->streams);
        pthread_mutex_destroy(&h->mu);
        free(h);
}

int dm_event_hub_publish(struct dm_event_hub *h, const char *topic, const void *body, size_t len)
{
        char id[DM_EVENT_ID_MAX];
        struct hub_event *ev = NULL;
        int r;

        r = dm_event_id(topic, body, len, id, sizeof(id));
        if (r < 0)
                return r;
        r = event_new(topic, id, body, len, h->o.max_bytes, &ev);
        if (r < 0)
                return r;

        pthread_mutex_lock(&h->mu);
        if (h->shut) {
                r = DM_ESHUTDOWN;
                goto unlock;
        }
        if (index_find(h, ev->id)) {
                h->stats.repeats++;
                r = DM_EEXIST;
                goto unlock;
        }
        while (h->next_seq > h->first_seq && (h->next_seq - h->first_seq >= h->o.max_events ||
                                              h->bytes + ev->len > h->o.max_bytes))
                ring_evict(h);
        ev->seq = h->next_seq++;
        h->ring[ev->seq % h->o.max_events] = ev;
        index_add(h, ev);
        h->bytes += ev->len;
        h->stats.published++;
        for (size_t i = 0; i < h->nstreams; i++) {
                struct dm_event_stream *s = h->streams[i];
                if (s->dropped || !dm_event_filter_match(s->filter, ev->topic))
                        continue;
                s->backlog += ev->len;
                stream_wake(s);
        }
        ev = NULL;
unlock:
        pthread_mutex_unlock(&h->mu);
        free(ev);
        return r;
}

void dm_event_hub_shutdown(struct dm_event_hub *h)
{
        pthread_mutex_lock(&h->mu);
        h->shut = true;
        for (size_t i = 0; i < h->nstreams; i++)
                stream_wake(h->streams[i]);
        pthread_mutex_unlock(&h->mu);
}

int64_t dm_event_hub_tick(struct dm_event_hub *h, int64_t now_ms)
{
        int64_t next = h->o.heartbeat_ms;

        pthread_mutex_lock(&h->mu);
        for (size_t i = 0; i < h->nstreams; i++) {
                struct dm_event_stream *s = h->streams[i];
                if (s->dropped)
                        continue;
                if (s->backlog > h->o.max_backlog) {
                        if (!s->over) {
                                s->over = true;
                                s->over_since_ms = now_ms;
                        }
                        int64_t stall_end = s->over_since_ms + h->o.stall_ms;
                        if (stall_end <= now_ms) {
                                stream_drop(h, s);
                                continue;
                        }
                        if (stall_end - now_ms < next)
                                next = stall_end - now_ms;
                }
                int64_t due = s->last_sent_ms + h->o.heartbeat_ms;
                if (due <= now_ms)
                        stream_wake(s);
                else if (due - now_ms < next)
                        next = due - now_ms;
        }
        pthread_mutex_unlock(&h->mu);
        return next;
}

void dm_event_hub_stats(struct dm_event_hub *h, struct dm_event_hub_stats *ret_stats)
{
        pthread_mutex_lock(&h->mu);
        *ret_stats = h->stats;
        ret_stats->events = (size_t)(h->next_seq - h->first_seq);
        ret_stats->bytes = h->bytes;
        ret_stats->streams = h->nstreams;
        pthread_mutex_unlock(&h->mu);
}

/* ---- streams ---- */

/* Under the lock: where a stream resuming after `last_event_id` starts, or a reset. */
static int stream_place(struct dm_event_hub *h, struct dm_event_stream *s, const char *last_id)
{
        const char *reason = NULL;
        const struct hub_event *last = index_find(h, last_id);

        if (last) {
                size_t owed = 0;
                for (uint64_t seq = last->seq + 1; seq < h->next_seq && owed <= h->o.max_backlog;
                     seq++) {
                        const struct hub_event *ev = ring_at(h, seq);
                        if (dm_event_filter_match(s->filter, ev->topic))
                                owed += ev->len;
                }
                if (owed <= h->o.max_backlog) {
                        s->next_seq = last->seq + 1;
                        s->backlog = owed;
                        return 0;
                }
                reason = "{\"reason\":\"replay_too_large\",\"detail\":\"more was missed since "
                         "Last-Event-ID than a stream replays: reload the state from the API\"}";
        } else {
                reason = "{\"reason\":\"unknown_last_event_id\",\"detail\":\"the events after "
                         "Last-Event-ID are no longer held: reload the state from the API\"}";
        }
        const char *newest = h->next_seq > h->first_seq ? ring_at(h, h->next_seq - 1)->id : "";
        return dm_sse_append_event(&s->pre, "reset", newest, reason, strlen(reason));
}

int dm_event_stream_open(struct dm_event_hub *h, struct dm_event_filter *filter,
                         const char *last_event_id, int64_t now_ms,
                         struct dm_event_stream **ret_stream)
{
        struct dm_event_stream *s = calloc(1, sizeof(*s));
        int r = 0;

        if (!s) {
                dm_event_filter_free(filter);
                return DM_ENOMEM;
        }
        s->hub = h;
        s->filter = filter;
        s->last_sent_ms = now_ms;
        dm_buf_init(&s->pre, HUB_PRE_MAX);
        r = dm_sse_append_comment(&s->pre, hub_opening);
        if (r < 0)
                goto fail;

        pthread_mutex_lock(&h->mu);
        if (h->shut)
                r = DM_ESHUTDOWN;
        else if (h->nstreams == h->o.max_streams)
                r = DM_ENOSPC;
        if (r < 0)
                goto unlock;
        s->next_seq = h->next_seq;
        if (last_event_id && *last_event_id) {
                r = stream_place(h, s, last_event_id);
                if (r < 0)
                        goto unlock;
        }
        s->slot = h->nstreams;
        h->streams[h->nstreams++] = s;
unlock:
        pthread_mutex_unlock(&h->mu);
        if (r < 0)
                goto fail;
        *ret_stream = s;
        return 0;
fail:
        dm_buf_done(&s->pre);
        dm_event_filter_free(s->filter);
        free(s);
        return r;
}

void dm_event_stream_attach(struct dm_event_stream *s, const struct dm_event_stream_ops *ops,
                            void *arg)
{
        pthread_mutex_lock(&s->hub->mu);
        s->ops = *ops;
        s->arg = arg;
        pthread_mutex_unlock(&s->hub->mu);
}

/* Under the lock: copies what is left of the control text. */
static size_t stream_copy_pre(struct dm_event_stream *s, char *buf, size_t max)
{
        size_t c = s->pre.len - s->pre_off;
        if (c > max)
                c = max;
        memcpy(buf, s->pre.data + s->pre_off, c);
        s->pre_off += c;
        if (s->pre_off == s->pre.len) {
                dm_buf_clear(&s->pre);
                s->pre_off = 0;
        }
        return c;
}

ssize_t dm_event_stream_read(struct dm_event_stream *s, char *buf, size_t max, int64_t now_ms)
{
        struct dm_event_hub *h = s->hub;
        size_t n = 0;
        ssize_t r;

        pthread_mutex_lock(&h->mu);
        if (s->dropped) {
                r = DM_ECANCELED;
                goto unlock;
        }
        if (h->shut) {
                r = DM_ESHUTDOWN;
                goto unlock;
        }
        if (s->pre.len > 0)
                n += stream_copy_pre(s, buf, max);
        while (n < max && s->pre.len == 0 && s->next_seq < h->next_seq) {
                const struct hub_event *ev = ring_at(h, s->next_seq);
                if (s->offset == 0 && !dm_event_filter_match(s->filter, ev->topic)) {
                        s->next_seq++;
                        continue;
                }
                size_t c = ev->len - s->offset;
                if (c > max - n)
                        c = max - n;
                memcpy(buf + n, ev->frame + s->offset, c);
                n += c;
                s->offset += c;
                s->backlog -= c;
                if (s->offset == ev->len) {
                        s->offset = 0;
                        s->next_seq++;
                }
        }
        if (n == 0 && now_ms - s->last_sent_ms >= h->o.heartbeat_ms &&
            dm_sse_append_comment(&s->pre, hub_ping) == 0)
                n = stream_copy_pre(s, buf, max);
        if (n > 0)
                s->last_sent_ms = now_ms;
        if (s->backlog <= h->o.max_backlog)
                s->over = false;
        r = (ssize_t)n;
unlock:
        pthread_mutex_unlock(&h->mu);
        return r;
}

int dm_event_stream_close(struct dm_event_stream *s)
{
        if (!s)
                return 0;
        struct dm_event_hub *h = s->hub;
        pthread_mutex_lock(&h->mu);
        struct dm_event_stream *last = h->streams[--h->nstreams];
        h->streams[s->slot] = last;
        last->slot = s->slot;
        int r = s->dropped ? DM_ECANCELED : 0;
        pthread_mutex_unlock(&h->mu);
        dm_buf_done(&s->pre);
        dm_event_filter_free(s->filter);
        free(s);
        return r;
}
