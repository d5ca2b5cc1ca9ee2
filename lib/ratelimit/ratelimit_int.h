/* The rate limiter's backend table. Internal to lib/ratelimit. */
#ifndef DM_RATELIMIT_INT_H
#define DM_RATELIMIT_INT_H

#include "dm/ratelimit.h"

struct dm_ratelimit_ops {
        const char *name;
        const char *scheme; /* URL scheme that selects it; NULL: the default */
        int (*open)(const char *url, char *err, size_t errlen, struct dm_ratelimit **ret);
        void (*free)(struct dm_ratelimit *rl);
        int (*check)(struct dm_ratelimit *rl, const char *key, const struct dm_rate_policy *p,
                     struct dm_rate_result *ret);
        bool (*degraded)(const struct dm_ratelimit *rl);
        void (*set_clock)(struct dm_ratelimit *rl, int64_t now_us);
};

/* Every backend's instance begins with this. */
struct dm_ratelimit {
        const struct dm_ratelimit_ops *ops;
};

extern const struct dm_ratelimit_ops dm_ratelimit_memory_ops;
#ifdef DM_HAVE_HIREDIS
extern const struct dm_ratelimit_ops dm_ratelimit_redis_ops;
#endif

#endif
