/* The redis backend: the GCRA step runs inside Redis as one Lua script, so the read of the
 * TAT, the decision and the write are one atomic step for every process sharing the server,
 * on Redis' own clock (processes on machines whose clocks differ still agree).
 *
 * A few connections, each under its own mutex, taken in turn, so that the HTTP threads do not
 * queue behind one round trip. When a command fails its connection is dropped, the limiter
 * becomes degraded (logged once) and the local memory limiter answers; a new connection is
 * tried at most once per DM_REDIS_RETRY_MS per connection, so a dead Redis costs a timeout
 * a second, not one per request. */
#include "ratelimit/ratelimit_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm/error.h"
#include "dm/log.h"
#include "dm/time.h"
#include "redis/redis_int.h"

/* KEYS[1] the key; ARGV[1] emission interval, ARGV[2] window, both in microseconds.
 * Returns {allowed, tat - now after the step, wait until allowed}. */
static const char gcra_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local em = tonumber(ARGV[1])\n"
    "local window = tonumber(ARGV[2])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if tat < now then tat = now end\n"
    "local nxt = tat + em\n"
    "local allow_at = nxt - window\n"
    "if now < allow_at then return {0, tat - now, allow_at - now} end\n"
    "redis.call('SET', KEYS[1], nxt, 'PX', math.floor((nxt - now) / 1000) + 1)\n"
    "return {1, nxt - now, 0}\n";

#define POOL 4

struct conn {
        pthread_mutex_t mu;
        redisContext *ctx; /* NULL while down */
        char sha[48];      /* the loaded script */
        int64_t next_try_ms;
};

struct redis_limiter {
        struct dm_ratelimit base;
        struct dm_ratelimit *local;
        struct dm_redis_target target;
        struct conn pool[POOL];
        atomic_uint next;
        atomic_bool degraded;
};

static void set_degraded(struct redis_limiter *r, bool down, const char *why)
{
        char q[300];

        if (atomic_exchange(&r->degraded, down) == down)
                return;
        if (down)
                dm_log_warn("ratelimit",
                            "msg=\"Redis does not answer: rate limits are enforced by this "
                            "process alone until it is back\" err=%s",
                            dm_log_quote(q, sizeof(q), why ? why : "-"));
        else
                dm_log_info("ratelimit", "msg=\"Redis answers again: rate limits are shared\"");
}

/* Under c->mu. */
static int ensure_conn(struct redis_limiter *r, struct conn *c)
{
        char err[256];
        redisReply *rep;

        if (c->ctx)
                return 0;
        int64_t now = dm_mono_ms();
        if (now < c->next_try_ms)
                return DM_EAGAIN;
        c->next_try_ms = now + DM_REDIS_RETRY_MS;
        if (dm_redis_connect(&r->target, &c->ctx, err, sizeof(err)) < 0) {
                set_degraded(r, true, err);
                return DM_EIO;
        }
        rep = redisCommand(c->ctx, "SCRIPT LOAD %s", gcra_script);
        if (!rep || rep->type != REDIS_REPLY_STRING || rep->len >= sizeof(c->sha)) {
                snprintf(err, sizeof(err), "cannot load the rate limit script: %s",
                         rep && rep->type == REDIS_REPLY_ERROR ? rep->str : c->ctx->errstr);
                if (rep)
                        freeReplyObject(rep);
                redisFree(c->ctx);
                c->ctx = NULL;
                set_degraded(r, true, err);
                return DM_EIO;
        }
        memcpy(c->sha, rep->str, (size_t)rep->len);
        c->sha[rep->len] = '\0';
        freeReplyObject(rep);
        return 0;
}

static int redis_open(const char *url, char *err, size_t errlen, struct dm_ratelimit **ret)
{
        struct redis_limiter *r = calloc(1, sizeof(*r));
        int ret_code;

        if (!r)
                return DM_ENOMEM;
        ret_code = dm_redis_url_parse(url, &r->target, err, errlen);
        if (ret_code < 0)
                goto fail;
        ret_code = dm_ratelimit_memory_ops.open(NULL, err, errlen, &r->local);
        if (ret_code < 0)
                goto fail;
        r->base.ops = &dm_ratelimit_redis_ops;
        for (size_t i = 0; i < POOL; i++)
                pthread_mutex_init(&r->pool[i].mu, NULL);
        atomic_init(&r->next, 0);
        atomic_init(&r->degraded, false);
        pthread_mutex_lock(&r->pool[0].mu);
        (void)ensure_conn(r, &r->pool[0]);
        pthread_mutex_unlock(&r->pool[0].mu);
        *ret = &r->base;
        return 0;
fail:
        free(r);
        return ret_code;
}

static void redis_free(struct dm_ratelimit *rl)
{
        struct redis_limiter *r = (struct redis_limiter *)rl;
        for (size_t i = 0; i < POOL; i++) {
                if (r->pool[i].ctx)
                        redisFree(r->pool[i].ctx);
                pthread_mutex_destroy(&r->pool[i].mu);
        }
        dm_ratelimit_free(r->local);
        free(r);
}

static int redis_check(struct dm_ratelimit *rl, const char *key, const struct dm_rate_policy *p,
                       struct dm_rate_result *ret)
{
        struct redis_limiter *r = (struct redis_limiter *)rl;
        char k[DM_RATE_KEY_MAX + 8], em[24], win[24], err[200];
        int64_t emission = p->window_ms * 1000 / p->limit;
        redisReply *rep = NULL;
        bool ok = false;

        snprintf(k, sizeof(k), "dm:rl:%.*s", DM_RATE_KEY_MAX - 1, key);
        snprintf(em, sizeof(em), "%lld", (long long)(emission > 0 ? emission : 1));
        snprintf(win, sizeof(win), "%lld", (long long)(p->window_ms * 1000));
        struct conn *c = &r->pool[atomic_fetch_add(&r->next, 1) % POOL];
        pthread_mutex_lock(&c->mu);
        if (ensure_conn(r, c) == 0) {
                rep = redisCommand(c->ctx, "EVALSHA %s 1 %s %s %s", c->sha, k, em, win);
                if (rep && rep->type == REDIS_REPLY_ERROR &&
                    strncmp(rep->str, "NOSCRIPT", 8) == 0) {
                        /* The server restarted and forgot the script: send it whole. */
                        freeReplyObject(rep);
                        rep = redisCommand(c->ctx, "EVAL %s 1 %s %s %s", gcra_script, k, em, win);
                }
                if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
                    rep->element[0]->type == REDIS_REPLY_INTEGER &&
                    rep->element[1]->type == REDIS_REPLY_INTEGER &&
                    rep->element[2]->type == REDIS_REPLY_INTEGER) {
                        dm_gcra_result(p, rep->element[0]->integer == 1, rep->element[1]->integer,
                                       rep->element[2]->integer, ret);
                        ok = true;
                } else {
                        snprintf(err, sizeof(err), "%s",
                                 !rep                             ? c->ctx->errstr
                                 : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                                  : "unexpected reply");
                        /* A connection in an unknown state is not reused. */
                        redisFree(c->ctx);
                        c->ctx = NULL;
                }
                if (rep)
                        freeReplyObject(rep);
        } else {
                snprintf(err, sizeof(err), "not connected");
        }
        pthread_mutex_unlock(&c->mu);
        if (ok) {
                set_degraded(r, false, NULL);
                return 0;
        }
        set_degraded(r, true, err);
        return dm_ratelimit_check(r->local, key, p, ret);
}

static bool redis_degraded(const struct dm_ratelimit *rl)
{
        const struct redis_limiter *r = (const struct redis_limiter *)rl;
        return atomic_load(&((struct redis_limiter *)r)->degraded);
}

const struct dm_ratelimit_ops dm_ratelimit_redis_ops = {
    .name = "redis",
    .scheme = "redis://",
    .open = redis_open,
    .free = redis_free,
    .check = redis_check,
    .degraded = redis_degraded,
};
