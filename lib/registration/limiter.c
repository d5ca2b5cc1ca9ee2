/* Per-server rate limit with back-off. Registries throttle hard and some ban clients that
 * keep knocking: one request per gap to a server, and after a failure a pause that doubles
 * until the server answers again. A small open table keyed by host name; when full, the
 * entry used longest ago is replaced (forgetting a server only makes it look fresh). */
#include "dm/registration.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm/error.h"

#define LIM_SLOTS 4096

struct lim_server {
        char host[DM_NAME_MAX + 1];
        int64_t next_ok;    /* no request before this */
        int64_t backoff_ms; /* current pause after a failure; 0: none */
        int64_t last_used;
};

struct dm_reg_limiter {
        pthread_mutex_t lock;
        int64_t gap_ms;
        int64_t max_backoff_ms;
        struct lim_server *slots;
        size_t n;
};

int dm_reg_limiter_new(int64_t gap_ms, int64_t max_backoff_ms, struct dm_reg_limiter **ret)
{
        struct dm_reg_limiter *l = calloc(1, sizeof(*l));
        if (!l)
                return DM_ENOMEM;
        l->slots = calloc(LIM_SLOTS, sizeof(*l->slots));
        if (!l->slots) {
                free(l);
                return DM_ENOMEM;
        }
        pthread_mutex_init(&l->lock, NULL);
        l->gap_ms = gap_ms < 0 ? 0 : gap_ms;
        l->max_backoff_ms = max_backoff_ms < 1000 ? 1000 : max_backoff_ms;
        *ret = l;
        return 0;
}

void dm_reg_limiter_free(struct dm_reg_limiter *l)
{
        if (!l)
                return;
        pthread_mutex_destroy(&l->lock);
        free(l->slots);
        free(l);
}

static struct lim_server *find(struct dm_reg_limiter *l, const char *server, int64_t now)
{
        size_t oldest = 0;
        for (size_t i = 0; i < l->n; i++) {
                if (strcmp(l->slots[i].host, server) == 0) {
                        l->slots[i].last_used = now;
                        return &l->slots[i];
                }
                if (l->slots[i].last_used < l->slots[oldest].last_used)
                        oldest = i;
        }
        struct lim_server *s = l->n < LIM_SLOTS ? &l->slots[l->n++] : &l->slots[oldest];
        memset(s, 0, sizeof(*s));
        snprintf(s->host, sizeof(s->host), "%s", server);
        s->last_used = now;
        return s;
}

int64_t dm_reg_limiter_take(struct dm_reg_limiter *l, const char *server, int64_t now_ms)
{
        int64_t wait = 0;
        pthread_mutex_lock(&l->lock);
        struct lim_server *s = find(l, server, now_ms);
        if (s->next_ok > now_ms)
                wait = s->next_ok - now_ms;
        else
                s->next_ok = now_ms + l->gap_ms;
        pthread_mutex_unlock(&l->lock);
        return wait;
}

void dm_reg_limiter_report(struct dm_reg_limiter *l, const char *server, int64_t now_ms, bool ok,
                           int64_t retry_after_ms)
{
        pthread_mutex_lock(&l->lock);
        struct lim_server *s = find(l, server, now_ms);
        if (ok) {
                s->backoff_ms = 0;
        } else {
                int64_t first = l->gap_ms < 1000 ? 1000 : l->gap_ms;
                s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : first;
                if (s->backoff_ms > l->max_backoff_ms)
                        s->backoff_ms = l->max_backoff_ms;
                int64_t pause = s->backoff_ms;
                if (retry_after_ms > pause)
                        pause = retry_after_ms < 86400000 ? retry_after_ms : 86400000;
                if (now_ms + pause > s->next_ok)
                        s->next_ok = now_ms + pause;
        }
        pthread_mutex_unlock(&l->lock);
}
