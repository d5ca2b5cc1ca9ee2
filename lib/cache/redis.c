/* The redis backend. Keys:
 *
 *   dm:c:epoch              the key space's epoch (absent: 0)
 *   dm:c:g:<name>           the generation of a name (absent: 0), INCR to invalidate
 *   dm:c:v:<name>:<kind>    "<epoch>:<gen>\n<answer>", with a TTL
 *
 * A get is one MGET of the three, so a hit costs one round trip; a value counts only when
 * its prefix is the current epoch and generation. An invalidation that cannot reach Redis
 * marks the cache dirty; the first connection made after that moves the epoch on before
 * anything is served, so an answer that missed its invalidation never comes back.
 *
 * A few connections, each under its own mutex, so that the HTTP threads do not queue behind
 * one round trip. A failed command drops its connection; a new one is tried at most once per
 * DM_REDIS_RETRY_MS per connection. */
#include "cache/cache_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm/error.h"
#include "dm/log.h"
#include "dm/time.h"
#include "redis/redis_int.h"

#define POOL 4

struct conn {
        pthread_mutex_t mu;
        redisContext *ctx;
        int64_t next_try_ms;
};

struct redis_cache {
        struct dm_cache base;
        struct dm_redis_target target;
        int64_t ttl_ms;
        size_t max_value;
        struct conn pool[POOL];
        atomic_uint next;
        atomic_bool degraded;
        atomic_bool dirty; /* an invalidation was lost: a new epoch is due */
};

static void set_degraded(struct redis_cache *r, bool down, const char *why)
{
        char q[300];

        if (atomic_exchange(&r->degraded, down) == down)
                return;
        if (down)
                dm_log_warn("cache",
                            "msg=\"Redis does not answer: answers are read from the store "
                            "until it is back\" err=%s",
                            dm_log_quote(q, sizeof(q), why ? why : "-"));
        else
                dm_log_info("cache", "msg=\"Redis answers again: caching resumed\"");
}

static void conn_drop(struct conn *c)
{
        if (c->ctx)
                redisFree(c->ctx);
        c->ctx = NULL;
}

/* Locks and returns a connected slot, or NULL (nothing locked) while Redis is away. */
static struct conn *conn_take(struct redis_cache *r)
{
        unsigned i = atomic_fetch_add(&r->next, 1) % POOL;
        struct conn *c = &r->pool[i];
        char err[256];

        pthread_mutex_lock(&c->mu);
        if (!c->ctx) {
                int64_t now = dm_mono_ms();
                if (now < c->next_try_ms)
                        goto down;
                c->next_try_ms = now + DM_REDIS_RETRY_MS;
                if (dm_redis_connect(&r->target, &c->ctx, err, sizeof(err)) < 0) {
                        set_degraded(r, true, err);
                        goto down;
                }
        }
        if (atomic_exchange(&r->dirty, false)) {
                redisReply *rep = redisCommand(c->ctx, "INCR dm:c:epoch");
                bool ok = rep && rep->type == REDIS_REPLY_INTEGER;
                if (rep)
                        freeReplyObject(rep);
                if (!ok) {
                        atomic_store(&r->dirty, true);
                        conn_drop(c);
                        set_degraded(r, true, "cannot start a new cache epoch");
                        goto down;
                }
                dm_log_info("cache", "msg=\"new cache epoch after a lost invalidation\"");
        }
        return c;
down:
        pthread_mutex_unlock(&c->mu);
        return NULL;
}

static void conn_give(struct redis_cache *r, struct conn *c, bool ok, const char *why)
{
        char copy[200];

        /* `why` may point into the connection about to be freed. */
        snprintf(copy, sizeof(copy), "%s", why ? why : "-");
        if (!ok)
                conn_drop(c);
        pthread_mutex_unlock(&c->mu);
        set_degraded(r, !ok, copy);
}

static int redis_open(const struct dm_cache_opts *opts, char *err, size_t errlen,
                      struct dm_cache **ret)
{
        struct redis_cache *r = calloc(1, sizeof(*r));
        int rc;

        if (!r)
                return DM_ENOMEM;
        rc = dm_redis_url_parse(opts->backend, &r->target, err, errlen);
        if (rc < 0) {
                free(r);
                return rc;
        }
        r->base.ops = &dm_cache_redis_ops;
        r->ttl_ms = opts->ttl_ms;
        r->max_value = opts->max_bytes / 8;
        for (size_t i = 0; i < POOL; i++)
                pthread_mutex_init(&r->pool[i].mu, NULL);
        atomic_init(&r->next, 0);
        atomic_init(&r->degraded, false);
        atomic_init(&r->dirty, false);
        struct conn *c = conn_take(r);
        if (c)
                conn_give(r, c, true, NULL);
        *ret = &r->base;
        return 0;
}

static void redis_free(struct dm_cache *cache)
{
        struct redis_cache *r = (struct redis_cache *)cache;
        for (size_t i = 0; i < POOL; i++) {
                conn_drop(&r->pool[i]);
                pthread_mutex_destroy(&r->pool[i].mu);
        }
        free(r);
}

static bool read_u32(const redisReply *e, uint64_t *ret)
{
        uint64_t v = 0;
        if (e->type == REDIS_REPLY_NIL) {
                *ret = 0;
                return true;
        }
        if (e->type != REDIS_REPLY_STRING || e->len < 1 || e->len > 10)
                return false;
        for (size_t i = 0; i < e->len; i++) {
                if (e->str[i] < '0' || e->str[i] > '9')
                        return false;
                v = v * 10 + (uint64_t)(e->str[i] - '0');
        }
        *ret = v & 0xffffffffu;
        return true;
}

static int redis_get(struct dm_cache *cache, const char *name, const char *kind, char **ret_value,
                     size_t *ret_len, uint64_t *ret_token)
{
        struct redis_cache *r = (struct redis_cache *)cache;
        struct conn *c = conn_take(r);
        uint64_t epoch = 0, gen = 0;
        char prefix[32];
        int ret = DM_ENOENT;

        *ret_token = 0;
        if (!c)
                return DM_ENOENT;
        redisReply *rep =
            redisCommand(c->ctx, "MGET dm:c:epoch dm:c:g:%s dm:c:v:%s:%s", name, name, kind);
        bool ok = rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
                  read_u32(rep->element[0], &epoch) && read_u32(rep->element[1], &gen);
        if (ok) {
                const redisReply *v = rep->element[2];
                int plen =
                    snprintf(prefix, sizeof(prefix), "%" PRIu64 ":%" PRIu64 "\n", epoch, gen);
                if (v->type == REDIS_REPLY_STRING && v->len >= (size_t)plen &&
                    memcmp(v->str, prefix, (size_t)plen) == 0) {
                        size_t n = v->len - (size_t)plen;
                        char *copy = malloc(n ? n : 1);
                        if (copy) {
                                memcpy(copy, v->str + plen, n);
                                *ret_value = copy;
                                *ret_len = n;
                                ret = 0;
                        }
                }
                *ret_token = (1ull << 63) | (epoch << 32) | gen;
        }
        conn_give(r, c, ok, rep && rep->type == REDIS_REPLY_ERROR ? rep->str : c->ctx->errstr);
        if (rep)
                freeReplyObject(rep);
        return ret;
}

static int redis_put(struct dm_cache *cache, const char *name, const char *kind, uint64_t token,
                     const void *value, size_t len)
{
        struct redis_cache *r = (struct redis_cache *)cache;
        char prefix[32];
        uint64_t epoch = (token >> 32) & 0x7fffffffu, gen = token & 0xffffffffu;

        if (len > r->max_value)
                return 0;
        int plen = snprintf(prefix, sizeof(prefix), "%" PRIu64 ":%" PRIu64 "\n", epoch, gen);
        char *buf = malloc((size_t)plen + len);
        if (!buf)
                return DM_ENOMEM;
        memcpy(buf, prefix, (size_t)plen);
        memcpy(buf + plen, value, len);
        struct conn *c = conn_take(r);
        if (!c) {
                free(buf);
                return 0;
        }
        redisReply *rep = redisCommand(c->ctx, "SET dm:c:v:%s:%s %b PX %lld", name, kind, buf,
                                       (size_t)plen + len, (long long)r->ttl_ms);
        bool ok = rep && rep->type == REDIS_REPLY_STATUS;
        conn_give(r, c, ok, rep && rep->type == REDIS_REPLY_ERROR ? rep->str : c->ctx->errstr);
        if (rep)
                freeReplyObject(rep);
        free(buf);
        return 0;
}

static int redis_invalidate(struct dm_cache *cache, const char *name)
{
        struct redis_cache *r = (struct redis_cache *)cache;
        struct conn *c = conn_take(r);

        if (!c) {
                atomic_store(&r->dirty, true);
                return DM_EIO;
        }
        redisReply *rep = redisCommand(c->ctx, "INCR dm:c:g:%s", name);
        bool ok = rep && rep->type == REDIS_REPLY_INTEGER;
        if (!ok)
                atomic_store(&r->dirty, true);
        conn_give(r, c, ok, rep && rep->type == REDIS_REPLY_ERROR ? rep->str : c->ctx->errstr);
        if (rep)
                freeReplyObject(rep);
        return ok ? 0 : DM_EIO;
}

static bool redis_degraded(const struct dm_cache *cache)
{
        return atomic_load(&((struct redis_cache *)cache)->degraded);
}

const struct dm_cache_ops dm_cache_redis_ops = {
    .name = "redis",
    .open = redis_open,
    .free = redis_free,
    .get = redis_get,
    .put = redis_put,
    .invalidate = redis_invalidate,
    .degraded = redis_degraded,
};
