/* Backend choice and the wrappers. */
#include "cache/cache_int.h"

#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>

#include "dm/error.h"

int dm_cache_open(const struct dm_cache_opts *opts, char *err, size_t errlen,
                  struct dm_cache **ret_cache)
{
        const char *b = opts && opts->backend ? opts->backend : "memory";
        struct dm_cache_opts o = opts ? *opts : (struct dm_cache_opts){0};

        if (o.max_bytes == 0)
                o.max_bytes = 64u << 20;
        if (o.ttl_ms <= 0)
                o.ttl_ms = 60000;
        if (strcmp(b, "none") == 0)
                return dm_cache_none_ops.open(&o, err, errlen, ret_cache);
        if (strcmp(b, "memory") == 0)
                return dm_cache_memory_ops.open(&o, err, errlen, ret_cache);
        if (strncasecmp(b, "redis://", 8) == 0 || strncasecmp(b, "rediss://", 9) == 0) {
#ifdef DM_HAVE_HIREDIS
                o.backend = b;
                return dm_cache_redis_ops.open(&o, err, errlen, ret_cache);
#else
                snprintf(err, errlen, "REDIS_URL: this build has no Redis support (hiredis)");
                return DM_ENOBACKEND;
#endif
        }
        snprintf(err, errlen, "DM_CACHE: unknown cache '%.40s' (use memory, redis or none)", b);
        return DM_EINVAL;
}

void dm_cache_free(struct dm_cache *c)
{
        if (c)
                c->ops->free(c);
}

const char *dm_cache_backend(const struct dm_cache *c)
{
        return c->ops->name;
}

int dm_cache_get(struct dm_cache *c, const char *name, const char *kind, char **ret_value,
                 size_t *ret_len, uint64_t *ret_token)
{
        int r;

        *ret_token = 0;
        if (strlen(name) >= DM_CACHE_NAME_MAX || strlen(kind) >= DM_CACHE_KIND_MAX) {
                __atomic_add_fetch(&c->misses, 1, __ATOMIC_RELAXED);
                return DM_ENOENT;
        }
        r = c->ops->get(c, name, kind, ret_value, ret_len, ret_token);
        __atomic_add_fetch(r == 0 ? &c->hits : &c->misses, 1, __ATOMIC_RELAXED);
        return r;
}

int dm_cache_put(struct dm_cache *c, const char *name, const char *kind, uint64_t token,
                 const void *value, size_t len)
{
        if (token == 0 || strlen(name) >= DM_CACHE_NAME_MAX || strlen(kind) >= DM_CACHE_KIND_MAX)
                return 0;
        return c->ops->put(c, name, kind, token, value, len);
}

int dm_cache_invalidate(struct dm_cache *c, const char *name)
{
        if (strlen(name) >= DM_CACHE_NAME_MAX)
                return 0; /* never stored */
        return c->ops->invalidate(c, name);
}

bool dm_cache_degraded(const struct dm_cache *c)
{
        return c->ops->degraded ? c->ops->degraded(c) : false;
}

void dm_cache_stats(struct dm_cache *c, struct dm_cache_stats *ret)
{
        memset(ret, 0, sizeof(*ret));
        ret->hits = __atomic_load_n(&c->hits, __ATOMIC_RELAXED);
        ret->misses = __atomic_load_n(&c->misses, __ATOMIC_RELAXED);
        if (c->ops == &dm_cache_memory_ops)
                dm_cache_memory_usage(c, &ret->entries, &ret->bytes);
}

/* ---- none ---- */

static int none_open(const struct dm_cache_opts *opts, char *err, size_t errlen,
                     struct dm_cache **ret)
{
        struct dm_cache *c = calloc(1, sizeof(*c));
        if (!c)
                return DM_ENOMEM;
        c->ops = &dm_cache_none_ops;
        *ret = c;
        return 0;
}

static void none_free(struct dm_cache *c)
{
        free(c);
}

static int none_get(struct dm_cache *c, const char *name, const char *kind, char **ret_value,
                    size_t *ret_len, uint64_t *ret_token)
{
        *ret_token = 0;
        return DM_ENOENT;
}

static int none_put(struct dm_cache *c, const char *name, const char *kind, uint64_t token,
                    const void *value, size_t len)
{
        return 0;
}

static int none_invalidate(struct dm_cache *c, const char *name)
{
        return 0;
}

const struct dm_cache_ops dm_cache_none_ops = {
    .name = "none",
    .open = none_open,
    .free = none_free,
    .get = none_get,
    .put = none_put,
    .invalidate = none_invalidate,
};
