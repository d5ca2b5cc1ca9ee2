/* A cache of rendered API answers, grouped by domain so that one event invalidates every
 * answer about that domain. Backends, chosen once at start-up:
 *
 *   "none"          nothing is kept (every read goes to the store)
 *   "memory"        an LRU of this process, capped in bytes (the default)
 *   redis://...     Redis, shared by every Domain Service that names the same server
 *
 * Never stale past an invalidation: each domain has a generation. dm_cache_get returns, on a
 * miss, a token naming the generation seen before the caller reads the store; dm_cache_put
 * stores under that token, and a get accepts a value only if its generation is still the
 * domain's current one. So an answer built from a read that raced an invalidation is never
 * served, whatever the order in which the threads or processes ran. Entries also expire
 * after a TTL, which bounds the age of what no event covers (last_checked_at).
 *
 * When Redis does not answer, the redis backend behaves as "none" (reads go to the store),
 * logs it once and reports it through dm_cache_degraded() until Redis is back. Generations
 * bumped while Redis was away are not known to it: values stored before the loss must not
 * come back, so on reconnection the cache starts a new key space (a new epoch).
 *
 * Thread-safety: every function may be called from any thread. */
#ifndef DM_CACHE_H
#define DM_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DM_CACHE_NAME_MAX 256 /* bytes of a group (domain) name, NUL included */
#define DM_CACHE_KIND_MAX 32  /* bytes of a kind ("records"), NUL included */

struct dm_cache;

struct dm_cache_opts {
        const char *backend; /* "none", "memory", or a redis:// URL; NULL: "memory" */
        size_t max_bytes;    /* memory: cap on keys + values; 0: 64 MiB */
        int64_t ttl_ms;      /* entries expire after this; 0: 60 s */
};

/* Returns 0, DM_EINVAL with a reason in `err` (bad backend or URL), DM_ENOBACKEND (redis
 * not built) or DM_ENOMEM. A redis cache starts even when the server is down (degraded). */
int dm_cache_open(const struct dm_cache_opts *opts, char *err, size_t errlen,
                  struct dm_cache **ret_cache);
/* NULL-safe. */
void dm_cache_free(struct dm_cache *c);
const char *dm_cache_backend(const struct dm_cache *c);

/* Looks up answer `kind` of `name`. Hit: returns 0 with *ret_value (malloc'd, the caller
 * frees) and *ret_len. Miss: returns DM_ENOENT and *ret_token for dm_cache_put. Names and
 * kinds longer than their maxima always miss, with token 0 (a put with it stores nothing). */
int dm_cache_get(struct dm_cache *c, const char *name, const char *kind, char **ret_value,
                 size_t *ret_len, uint64_t *ret_token);
/* Stores a value read after the dm_cache_get that gave `token`. Returns 0 (also when the
 * value was not kept: too large, generation moved on, backend down) or DM_ENOMEM. */
int dm_cache_put(struct dm_cache *c, const char *name, const char *kind, uint64_t token,
                 const void *value, size_t len);
/* The same, for answers built from data that carries its own version (a row's update times):
 * a value is a hit only when it was stored under the same `version` (a string without
 * '\n', at most DM_CACHE_VERSION_MAX bytes), so an answer whose source has moved on since
 * is never served even when no event said so. A longer version always misses. */
#define DM_CACHE_VERSION_MAX 128
int dm_cache_get_version(struct dm_cache *c, const char *name, const char *kind,
                         const char *version, char **ret_value, size_t *ret_len,
                         uint64_t *ret_token);
int dm_cache_put_version(struct dm_cache *c, const char *name, const char *kind, uint64_t token,
                         const char *version, const void *value, size_t len);

/* Every answer about `name` is gone for every reader from the return on. Returns 0, or
 * DM_EIO when a shared backend could not be told (it is then degraded and serves nothing
 * until it is back in a new epoch). */
int dm_cache_invalidate(struct dm_cache *c, const char *name);

/* True while a shared backend does not answer. */
bool dm_cache_degraded(const struct dm_cache *c);

/* The domain an event concerns, from its body: "domain" (change and domain.removed events)
 * or "name" (domain.added). Writes it into `out` and returns 0, or DM_ENOENT when the event
 * names none, DM_EINVAL when the body is not a JSON object. */
int dm_cache_event_domain(const void *body, size_t len, char *out, size_t size);

/* Invalidates what an event from the bus makes stale: every answer about the domain it
 * names. Events that name none change nothing. Returns dm_cache_invalidate's result, or 0. */
int dm_cache_invalidate_event(struct dm_cache *c, const char *topic, const void *body, size_t len);

struct dm_cache_stats {
        uint64_t hits, misses, entries, bytes;
};
void dm_cache_stats(struct dm_cache *c, struct dm_cache_stats *ret_stats);

#endif
