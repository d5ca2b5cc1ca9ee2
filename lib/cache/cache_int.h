/* The cache's backend table. Internal to lib/cache. */
#ifndef DM_CACHE_INT_H
#define DM_CACHE_INT_H

#include "dm/cache.h"

struct dm_cache_ops {
        const char *name;
        int (*open)(const struct dm_cache_opts *opts, char *err, size_t errlen,
                    struct dm_cache **ret);
        void (*free)(struct dm_cache *c);
        int (*get)(struct dm_cache *c, const char *name, const char *kind, char **ret_value,
                   size_t *ret_len, uint64_t *ret_token);
        int (*put)(struct dm_cache *c, const char *name, const char *kind, uint64_t token,
                   const void *value, size_t len);
        int (*invalidate)(struct dm_cache *c, const char *name);
        bool (*degraded)(const struct dm_cache *c);
};

/* Every backend's instance begins with this. */
struct dm_cache {
        const struct dm_cache_ops *ops;
        uint64_t hits, misses; /* atomics, through the wrappers */
};

extern const struct dm_cache_ops dm_cache_none_ops;
extern const struct dm_cache_ops dm_cache_memory_ops;
#ifdef DM_HAVE_HIREDIS
extern const struct dm_cache_ops dm_cache_redis_ops;
#endif

/* memory: entries and bytes held (for stats). */
void dm_cache_memory_usage(struct dm_cache *c, uint64_t *ret_entries, uint64_t *ret_bytes);

#endif
