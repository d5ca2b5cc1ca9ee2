/* What the Redis backends (cache, rate limiter) share: the URL and one connection made with
 * a time limit, so that a Redis that is down costs a request at most that limit.
 * Internal to lib/. */
#ifndef DM_REDIS_INT_H
#define DM_REDIS_INT_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#define DM_REDIS_TIMEOUT_MS 200 /* connect and per-command limit */
#define DM_REDIS_RETRY_MS 1000  /* least time between two connection attempts */

/* redis://[[user]:password@]host[:port][/db]; rediss:// is refused (no TLS in this build). */
struct dm_redis_target {
        char host[256];
        unsigned port;
        char password[256]; /* "" when none */
        unsigned db;
};

/* Parses `url`. Returns 0, or DM_EINVAL with a one-line reason (never the password) in
 * `err`. */
int dm_redis_url_parse(const char *url, struct dm_redis_target *ret_target, char *err,
                       size_t errlen);

/* Connects, authenticates and selects the database within DM_REDIS_TIMEOUT_MS each.
 * Returns 0 and *ret_ctx (free with redisFree), or DM_ECONNREFUSED / DM_ETIMEDOUT /
 * DM_EACCES / DM_EIO with a reason in `err`. */
int dm_redis_connect(const struct dm_redis_target *t, redisContext **ret_ctx, char *err,
                     size_t errlen);

#endif
