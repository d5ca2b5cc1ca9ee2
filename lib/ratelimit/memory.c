/* The memory backend: a chained hash table of key -> TAT under one mutex. It holds at most
 * MEM_MAX_KEYS keys: a full table first drops every key at rest (TAT in the past: such a key
 * starts over with a full quota anyway, so dropping it changes no decision), and only when
 * that frees nothing the oldest entry of the bucket the new key falls in. */
#include "ratelimit/ratelimit_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dm/error.h"

#define MEM_BUCKETS 16384
#define MEM_MAX_KEYS 200000

struct mem_entry {
        struct mem_entry *next;
        int64_t tat;
        char key[];
};

struct mem_limiter {
        struct dm_ratelimit base;
        pthread_mutex_t mu;
        struct mem_entry *buckets[MEM_BUCKETS];
        size_t n;
        int64_t clock_us; /* tests: a fixed clock; 0: the real one */
};

static uint32_t hash_key(const char *s)
{
        uint32_t h = 2166136261u; /* FNV-1a */
        for (; *s; s++) {
                h ^= (uint8_t)*s;
                h *= 16777619u;
        }
        return h;
}

static int64_t real_now_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int mem_open(const char *url, char *err, size_t errlen, struct dm_ratelimit **ret)
{
        struct mem_limiter *m = calloc(1, sizeof(*m));
        if (!m)
                return DM_ENOMEM;
        m->base.ops = &dm_ratelimit_memory_ops;
        pthread_mutex_init(&m->mu, NULL);
        *ret = &m->base;
        return 0;
}

static void mem_free(struct dm_ratelimit *rl)
{
        struct mem_limiter *m = (struct mem_limiter *)rl;
        for (size_t i = 0; i < MEM_BUCKETS; i++) {
                struct mem_entry *e = m->buckets[i];
                while (e) {
                        struct mem_entry *next = e->next;
                        free(e);
                        e = next;
                }
        }
        pthread_mutex_destroy(&m->mu);
        free(m);
}

static void sweep_at_rest(struct mem_limiter *m, int64_t now)
{
        for (size_t i = 0; i < MEM_BUCKETS; i++) {
                struct mem_entry **pp = &m->buckets[i];
                while (*pp) {
                        struct mem_entry *e = *pp;
                        if (e->tat <= now) {
                                *pp = e->next;
                                free(e);
                                m->n--;
                        } else {
                                pp = &e->next;
                        }
                }
        }
}

static void drop_last(struct mem_limiter *m, struct mem_entry **pp)
{
        if (!*pp)
                return;
        while ((*pp)->next)
                pp = &(*pp)->next;
        free(*pp);
        *pp = NULL;
        m->n--;
}

static int mem_check(struct dm_ratelimit *rl, const char *key, const struct dm_rate_policy *p,
                     struct dm_rate_result *ret)
{
        struct mem_limiter *m = (struct mem_limiter *)rl;
        char k[DM_RATE_KEY_MAX];
        size_t klen = strnlen(key, sizeof(k) - 1);

        memcpy(k, key, klen);
        k[klen] = '\0';
        uint32_t b = hash_key(k) % MEM_BUCKETS;
        pthread_mutex_lock(&m->mu);
        int64_t now = m->clock_us ? m->clock_us : real_now_us();
        struct mem_entry *e = m->buckets[b];
        while (e && strcmp(e->key, k) != 0)
                e = e->next;
        int64_t tat = e ? e->tat : 0, next;
        bool allowed = dm_gcra_step(p, tat, now, &next, ret);
        if (allowed && e) {
                e->tat = next;
        } else if (allowed) {
                if (m->n >= MEM_MAX_KEYS)
                        sweep_at_rest(m, now);
                if (m->n >= MEM_MAX_KEYS)
                        drop_last(m, &m->buckets[b]);
                e = malloc(sizeof(*e) + klen + 1);
                if (e) {
                        /* Without memory the request still passes: refusing every new
                         * client for want of a few bytes would be an outage of its own. */
                        e->tat = next;
                        memcpy(e->key, k, klen + 1);
                        e->next = m->buckets[b];
                        m->buckets[b] = e;
                        m->n++;
                }
        }
        pthread_mutex_unlock(&m->mu);
        return 0;
}

static void mem_set_clock(struct dm_ratelimit *rl, int64_t now_us)
{
        struct mem_limiter *m = (struct mem_limiter *)rl;
        pthread_mutex_lock(&m->mu);
        m->clock_us = now_us;
        pthread_mutex_unlock(&m->mu);
}

const struct dm_ratelimit_ops dm_ratelimit_memory_ops = {
    .name = "memory",
    .scheme = NULL,
    .open = mem_open,
    .free = mem_free,
    .check = mem_check,
    .set_clock = mem_set_clock,
};
