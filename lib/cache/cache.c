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

static bool version_ok(const char *version)
{
        return strlen(version) <= DM_CACHE_VERSION_MAX && !strchr(version, '\n');
}

int dm_cache_get_version(struct dm_cache *c, const char *name, const char *kind,
                         const char *version, char **ret_value, size_t *ret_len,
                         uint64_t *ret_token)
{
        char *v = NULL;
        size_t n = 0, vl = strlen(version);
        int r = dm_cache_get(c, name, kind, &v, &n, ret_token);

        if (r < 0)
                return r;
        if (!version_ok(version) || n < vl + 1 || memcmp(v, version, vl) != 0 || v[vl] != '\n') {
                free(v);
                /* Counted as a hit by dm_cache_get: it was not one. */
                __atomic_sub_fetch(&c->hits, 1, __ATOMIC_RELAXED);
                __atomic_add_fetch(&c->misses, 1, __ATOMIC_RELAXED);
                return DM_ENOENT;
        }
        memmove(v, v + vl + 1, n - vl - 1);
        *ret_value = v;
        *ret_len = n - vl - 1;
        return 0;
}

int dm_cache_put_version(struct dm_cache *c, const char *name, const char *kind, uint64_t token,
                         const char *version, const void *value, size_t len)
{
        size_t vl = strlen(version);
        char *buf;
        int r;

        if (token == 0 || !version_ok(version))
                return 0;
        buf = malloc(vl + 1 + len);
        if (!buf)
                return DM_ENOMEM;
        memcpy(buf, version, vl);
        buf[vl] = '\n';
        memcpy(buf + vl + 1, value, len);
        r = dm_cache_put(c, name, kind, token, buf, vl + 1 + len);
        free(buf);
        return r;
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
