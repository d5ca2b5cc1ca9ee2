/* Rate limiting: a budget of `limit` requests per `window`, enforced with GCRA (the generic
 * cell rate algorithm: one "theoretical arrival time" per key, no counters to reset), behind
 * an interface with two backends chosen by URL:
 *
 *   NULL            memory: a table in this process
 *   redis://...     redis: one atomic Lua script per check, so every process that shares
 *                   the server shares one budget per key (Redis' clock decides)
 *
 * The redis backend keeps a memory limiter beside it. When Redis does not answer, checks go
 * on under the local one (each process then enforces the budget on its own), the loss is
 * logged once, and dm_ratelimit_degraded() says so until Redis answers again: the service
 * never runs without a limiter, and never silently.
 *
 * Thread-safety: every function may be called from any thread. */
#ifndef DM_RATELIMIT_H
#define DM_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DM_RATE_KEY_MAX 160 /* bytes of a key, NUL included */

/* `limit` requests per `window_ms`; a burst of `limit` is allowed from rest. */
struct dm_rate_policy {
        uint32_t limit;
        int64_t window_ms;
};

/* What one check decided, in the terms of the IETF RateLimit headers. */
struct dm_rate_result {
        bool allowed;
        uint32_t limit;         /* the policy's quota */
        uint32_t window_s;      /* the policy's window in seconds */
        uint32_t remaining;     /* requests that would be allowed now, after this one */
        uint32_t reset_s;       /* seconds until the full quota is back */
        uint32_t retry_after_s; /* denied: seconds until one more request is allowed */
};

/* Parses "600/m", "10/s", "5000/h", "100000/d" or "50/30s" (a count, '/', a unit or a
 * duration of dm_duration_parse). The count is 1..1000000000, the window 1 s..1 day.
 * Returns 0 or DM_EINVAL. */
int dm_rate_policy_parse(const char *text, struct dm_rate_policy *ret_policy);

/* The GCRA step, on microsecond times: `tat` is the key's stored theoretical arrival time
 * (0 for a new key), `now` the clock. Allowed: returns true and *ret_tat is the time to
 * store. Denied: returns false and *ret_tat is `tat` unchanged. Fills *ret_result. */
bool dm_gcra_step(const struct dm_rate_policy *p, int64_t tat, int64_t now, int64_t *ret_tat,
                  struct dm_rate_result *ret_result);

/* Fills *ret_result from what a GCRA step left: `ahead_us` is stored tat minus now after the
 * step (>= 0), `retry_us` the wait when denied. Shared by the backends that run the step
 * elsewhere (the Redis script). */
void dm_gcra_result(const struct dm_rate_policy *p, bool allowed, int64_t ahead_us,
                    int64_t retry_us, struct dm_rate_result *ret_result);

/* The two headers of draft-ietf-httpapi-ratelimit-headers for `r` under policy name
 * `name` (a token): RateLimit-Policy `"name";q=600;w=60` and RateLimit
 * `"name";r=599;t=1`. Buffers of 96 bytes are enough. */
void dm_rate_headers(const char *name, const struct dm_rate_result *r, char *policy,
                     size_t policy_size, char *state, size_t state_size);

struct dm_ratelimit;

/* Opens the backend named by `redis_url` (NULL: memory). A redis limiter starts even when
 * the server does not answer yet (degraded, retrying): a rate limiter must not keep the API
 * down. `err` gets a one-line reason for a bad URL or a backend not built. Returns 0,
 * DM_EINVAL, DM_ENOBACKEND or DM_ENOMEM. */
int dm_ratelimit_open(const char *redis_url, char *err, size_t errlen,
                      struct dm_ratelimit **ret_limiter);
/* NULL-safe. */
void dm_ratelimit_free(struct dm_ratelimit *rl);
const char *dm_ratelimit_backend(const struct dm_ratelimit *rl);

/* Counts one request of `key` (longer keys are cut to DM_RATE_KEY_MAX - 1 bytes with the
 * policy's prefix) against `p` and fills *ret_result. Each policy keeps its own state per
 * key, so a changed limit starts afresh. Returns 0; an error only for DM_EINVAL (bad policy).
 * A backend failure is not an error: the local limiter answers instead. */
int dm_ratelimit_check(struct dm_ratelimit *rl, const char *key, const struct dm_rate_policy *p,
                       struct dm_rate_result *ret_result);

/* True while a shared backend does not answer and the local limiter stands in. */
bool dm_ratelimit_degraded(const struct dm_ratelimit *rl);

/* For tests: the memory backend's clock is `now_us` from now on (0: the real clock). */
void dm_ratelimit_set_clock(struct dm_ratelimit *rl, int64_t now_us);

#endif
