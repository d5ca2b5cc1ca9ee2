/* Policies, the GCRA arithmetic and the backend registry.
 *
 * GCRA keeps one time per key, the theoretical arrival time (TAT): when the bucket would be
 * empty if requests came no faster than the emission interval T = window / limit. A request
 * at `now` is allowed when TAT - now <= window - T (so a key at rest may spend its whole
 * quota at once), and moves TAT to max(TAT, now) + T. Nothing is reset on a window edge, so
 * there is no double burst at the boundary that fixed windows allow. */
#include "ratelimit/ratelimit_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dm/error.h"
#include "dm/time.h"

#define DM_RATE_LIMIT_MAX 1000000000u
#define DM_RATE_WINDOW_MIN_MS 1000
#define DM_RATE_WINDOW_MAX_MS (86400LL * 1000)

int dm_rate_policy_parse(const char *text, struct dm_rate_policy *ret_policy)
{
        uint64_t n = 0;
        const char *p = text;
        int64_t window = 0;

        if (!text || *p < '0' || *p > '9')
                return DM_EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
                n = n * 10 + (uint64_t)(*p - '0');
                if (n > DM_RATE_LIMIT_MAX)
                        return DM_EINVAL;
        }
        if (n == 0 || *p != '/' || !p[1])
                return DM_EINVAL;
        p++;
        if (strcmp(p, "s") == 0)
                window = 1000;
        else if (strcmp(p, "m") == 0)
                window = 60 * 1000;
        else if (strcmp(p, "h") == 0)
                window = 3600 * 1000;
        else if (strcmp(p, "d") == 0)
                window = 86400LL * 1000;
        else if (dm_duration_parse(p, &window) < 0)
                return DM_EINVAL;
        if (window < DM_RATE_WINDOW_MIN_MS || window > DM_RATE_WINDOW_MAX_MS)
                return DM_EINVAL;
        ret_policy->limit = (uint32_t)n;
        ret_policy->window_ms = window;
        return 0;
}

static int64_t emission_us(const struct dm_rate_policy *p)
{
        int64_t t = p->window_ms * 1000 / p->limit;
        return t > 0 ? t : 1;
}

static uint32_t ceil_s(int64_t us)
{
        if (us <= 0)
                return 0;
        int64_t s = (us + 999999) / 1000000;
        return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

void dm_gcra_result(const struct dm_rate_policy *p, bool allowed, int64_t ahead_us,
                    int64_t retry_us, struct dm_rate_result *r)
{
        int64_t t = emission_us(p), window = p->window_ms * 1000;
        int64_t room = window - (ahead_us < 0 ? 0 : ahead_us);

        r->allowed = allowed;
        r->limit = p->limit;
        r->window_s = ceil_s(window);
        r->remaining = room <= 0 ? 0 : (uint32_t)(room / t > p->limit ? p->limit : room / t);
        r->reset_s = ceil_s(ahead_us);
        r->retry_after_s = allowed ? 0 : (ceil_s(retry_us) ? ceil_s(retry_us) : 1);
}

bool dm_gcra_step(const struct dm_rate_policy *p, int64_t tat, int64_t now, int64_t *ret_tat,
                  struct dm_rate_result *ret_result)
{
        int64_t t = emission_us(p), window = p->window_ms * 1000;
        int64_t base = tat > now ? tat : now;
        int64_t next = base + t;
        int64_t allow_at = next - window;

        if (now < allow_at) {
                *ret_tat = tat;
                dm_gcra_result(p, false, base - now, allow_at - now, ret_result);
                return false;
        }
        *ret_tat = next;
        dm_gcra_result(p, true, next - now, 0, ret_result);
        return true;
}

void dm_rate_headers(const char *name, const struct dm_rate_result *r, char *policy,
                     size_t policy_size, char *state, size_t state_size)
{
        snprintf(policy, policy_size, "\"%s\";q=%u;w=%u", name, r->limit, r->window_s);
        snprintf(state, state_size, "\"%s\";r=%u;t=%u", name, r->remaining,
                 r->allowed ? r->reset_s : r->retry_after_s);
}

/* ---- registry ---- */

static const struct dm_ratelimit_ops *const backends[] = {
    &dm_ratelimit_memory_ops,
#ifdef DM_HAVE_HIREDIS
    &dm_ratelimit_redis_ops,
#endif
};

int dm_ratelimit_open(const char *url, char *err, size_t errlen, struct dm_ratelimit **ret)
{
        if (!url || !*url)
                return dm_ratelimit_memory_ops.open(NULL, err, errlen, ret);
        for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
                const char *s = backends[i]->scheme;
                if (s && strncasecmp(url, s, strlen(s)) == 0)
                        return backends[i]->open(url, err, errlen, ret);
        }
        if (strncasecmp(url, "redis://", 8) == 0 || strncasecmp(url, "rediss://", 9) == 0) {
                snprintf(err, errlen, "REDIS_URL: this build has no Redis support (hiredis)");
                return DM_ENOBACKEND;
        }
        snprintf(err, errlen, "REDIS_URL: unknown scheme (use redis://host:6379/0)");
        return DM_EINVAL;
}

void dm_ratelimit_free(struct dm_ratelimit *rl)
{
        if (rl)
                rl->ops->free(rl);
}

const char *dm_ratelimit_backend(const struct dm_ratelimit *rl)
{
        return rl->ops->name;
}

int dm_ratelimit_check(struct dm_ratelimit *rl, const char *key, const struct dm_rate_policy *p,
                       struct dm_rate_result *ret)
{
        char k[DM_RATE_KEY_MAX];

        if (!p || p->limit == 0 || p->window_ms <= 0)
                return DM_EINVAL;
        /* A key's state belongs to one policy: a TAT computed under "40/h" read under
         * "600/m" would refuse for up to an hour. Processes configured alike share it. */
        snprintf(k, sizeof(k), "%u/%lld:%s", p->limit, (long long)p->window_ms, key);
        return rl->ops->check(rl, k, p, ret);
}

bool dm_ratelimit_degraded(const struct dm_ratelimit *rl)
{
        return rl->ops->degraded ? rl->ops->degraded(rl) : false;
}

void dm_ratelimit_set_clock(struct dm_ratelimit *rl, int64_t now_us)
{
        if (rl->ops->set_clock)
                rl->ops->set_clock(rl, now_us);
}
