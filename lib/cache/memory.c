/* The memory backend: an LRU of (name, kind) -> value under one mutex, capped in bytes
 * (keys, values and the per-entry overhead count), with a TTL per entry.
 *
 * Generations live in a fixed table of GEN_SLOTS counters indexed by a hash of the name:
 * invalidating a name bumps its slot, which also retires the answers of the few other names
 * that share the slot (a harmless extra miss) and keeps the table's size fixed however many
 * names come and go. A token is the slot's generation plus one, so 0 never names one. */
#include "cache/cache_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dm/error.h"
#include "dm/time.h"

#define BUCKETS 8192
#define GEN_SLOTS 4096
#define ENTRY_OVERHEAD 96 /* bytes counted per entry beside key and value */

struct entry {
        struct entry *hnext;       /* hash chain */
        struct entry *prev, *next; /* LRU list: head most recent */
        uint32_t hash, slot;
        uint64_t gen;
        int64_t expires_ms;
        size_t klen, vlen;
        char *value;
        char key[]; /* name '\0' kind '\0' */
};

struct mem_cache {
        struct dm_cache base;
        pthread_mutex_t mu;
        struct entry *buckets[BUCKETS];
        struct entry *head, *tail;
        uint64_t gens[GEN_SLOTS];
        size_t bytes, max_bytes, n;
        int64_t ttl_ms;
};

static uint32_t fnv(const char *s, uint32_t h)
{
        for (; *s; s++) {
                h ^= (uint8_t)*s;
                h *= 16777619u;
        }
        return h;
}

static uint32_t name_slot(const char *name)
{
        return fnv(name, 2166136261u) % GEN_SLOTS;
}

static uint32_t key_hash(const char *name, const char *kind)
{
        return fnv(kind, fnv(name, 2166136261u) ^ 0x2fu);
}

static size_t entry_cost(const struct entry *e)
{
        return ENTRY_OVERHEAD + e->klen + e->vlen;
}

static void lru_unlink(struct mem_cache *m, struct entry *e)
{
        if (e->prev)
                e->prev->next = e->next;
        else
                m->head = e->next;
        if (e->next)
                e->next->prev = e->prev;
        else
                m->tail = e->prev;
        e->prev = e->next = NULL;
}

static void lru_push_front(struct mem_cache *m, struct entry *e)
{
        e->prev = NULL;
        e->next = m->head;
        if (m->head)
                m->head->prev = e;
        m->head = e;
        if (!m->tail)
                m->tail = e;
}

static void entry_remove(struct mem_cache *m, struct entry *e)
{
        struct entry **pp = &m->buckets[e->hash % BUCKETS];
        while (*pp && *pp != e)
                pp = &(*pp)->hnext;
        if (*pp)
                *pp = e->hnext;
        lru_unlink(m, e);
        m->bytes -= entry_cost(e);
        m->n--;
        free(e->value);
        free(e);
}

static struct entry *entry_find(struct mem_cache *m, const char *name, const char *kind, uint32_t h)
{
        size_t nlen = strlen(name);
        for (struct entry *e = m->buckets[h % BUCKETS]; e; e = e->hnext) {
                if (e->hash == h && strcmp(e->key, name) == 0 && e->key[nlen] == '\0' &&
                    strcmp(e->key + nlen + 1, kind) == 0)
                        return e;
        }
        return NULL;
}

static int mem_open(const struct dm_cache_opts *opts, char *err, size_t errlen,
                    struct dm_cache **ret)
{
        struct mem_cache *m = calloc(1, sizeof(*m));
        if (!m)
                return DM_ENOMEM;
        m->base.ops = &dm_cache_memory_ops;
        m->max_bytes = opts->max_bytes;
        m->ttl_ms = opts->ttl_ms;
        pthread_mutex_init(&m->mu, NULL);
        *ret = &m->base;
        return 0;
}

static void mem_free(struct dm_cache *c)
{
        struct mem_cache *m = (struct mem_cache *)c;
        while (m->head)
                entry_remove(m, m->head);
        pthread_mutex_destroy(&m->mu);
        free(m);
}

static int mem_get(struct dm_cache *c, const char *name, const char *kind, char **ret_value,
                   size_t *ret_len, uint64_t *ret_token)
{
        struct mem_cache *m = (struct mem_cache *)c;
        uint32_t h = key_hash(name, kind), slot = name_slot(name);
        int ret = DM_ENOENT;

        pthread_mutex_lock(&m->mu);
        struct entry *e = entry_find(m, name, kind, h);
        if (e && (e->gen != m->gens[slot] || e->expires_ms <= dm_mono_ms())) {
                entry_remove(m, e);
                e = NULL;
        }
        if (e) {
                char *copy = malloc(e->vlen ? e->vlen : 1);
                if (copy) {
                        memcpy(copy, e->value, e->vlen);
                        lru_unlink(m, e);
                        lru_push_front(m, e);
                        *ret_value = copy;
                        *ret_len = e->vlen;
                        ret = 0;
                }
        }
        *ret_token = m->gens[slot] + 1;
        pthread_mutex_unlock(&m->mu);
        return ret;
}

static int mem_put(struct dm_cache *c, const char *name, const char *kind, uint64_t token,
                   const void *value, size_t len)
{
        struct mem_cache *m = (struct mem_cache *)c;
        size_t nlen = strlen(name), klen = nlen + 1 + strlen(kind) + 1;
        uint32_t h = key_hash(name, kind), slot = name_slot(name);
        struct entry *e;
        char *v;

        if (ENTRY_OVERHEAD + klen + len > m->max_bytes / 8)
                return 0; /* one answer may take at most an eighth of the cache */
        e = malloc(sizeof(*e) + klen);
        v = malloc(len ? len : 1);
        if (!e || !v) {
                free(e);
                free(v);
                return DM_ENOMEM;
        }
        memcpy(e->key, name, nlen + 1);
        memcpy(e->key + nlen + 1, kind, klen - nlen - 1);
        memcpy(v, value, len);
        e->value = v;
        e->klen = klen;
        e->vlen = len;
        e->hash = h;
        e->slot = slot;
        e->gen = token - 1;
        e->prev = e->next = NULL;

        pthread_mutex_lock(&m->mu);
        if (m->gens[slot] != e->gen) {
                /* Invalidated since the read this value was built from. */
                pthread_mutex_unlock(&m->mu);
                free(v);
                free(e);
                return 0;
        }
        struct entry *old = entry_find(m, name, kind, h);
        if (old)
                entry_remove(m, old);
        e->expires_ms = dm_mono_ms() + m->ttl_ms;
        while (m->tail && m->bytes + entry_cost(e) > m->max_bytes)
                entry_remove(m, m->tail);
        e->hnext = m->buckets[h % BUCKETS];
        m->buckets[h % BUCKETS] = e;
        lru_push_front(m, e);
        m->bytes += entry_cost(e);
        m->n++;
        pthread_mutex_unlock(&m->mu);
        return 0;
}

static int mem_invalidate(struct dm_cache *c, const char *name)
{
        struct mem_cache *m = (struct mem_cache *)c;
        uint32_t slot = name_slot(name);

        pthread_mutex_lock(&m->mu);
        m->gens[slot]++;
        pthread_mutex_unlock(&m->mu);
        return 0;
}

void dm_cache_memory_usage(struct dm_cache *c, uint64_t *ret_entries, uint64_t *ret_bytes)
{
        struct mem_cache *m = (struct mem_cache *)c;
        pthread_mutex_lock(&m->mu);
        *ret_entries = m->n;
        *ret_bytes = m->bytes;
        pthread_mutex_unlock(&m->mu);
}

const struct dm_cache_ops dm_cache_memory_ops = {
    .name = "memory",
    .open = mem_open,
    .free = mem_free,
    .get = mem_get,
    .put = mem_put,
    .invalidate = mem_invalidate,
};
