/* The in-process bus: the AMQP model (one topic exchange, named queues, bindings, manual
 * acks with a prefetch) inside one process, so `domainmon all` runs the same pipeline as a
 * RabbitMQ deployment with no server behind it.
 *
 * Locking: `lock` (a rwlock) guards the registry arrays (queues, bindings, consumers); they
 * only grow, so a pointer read under it stays valid until dm_bus_free. Each queue's mutex
 * guards its ready list and the delivery slots of its consumers. publish locks every
 * matching queue in registry order, so a fan-out is all or nothing and two publishers can
 * never deadlock; everything else holds at most one queue mutex.
 *
 * Delivery: one thread per consumer pops the queue head while it has fewer than `prefetch`
 * unacked messages. An unacked message sits in a slot of its consumer; the delivery tag
 * names the consumer, the slot and the slot's generation, so an ack is O(1) and a stale
 * or repeated tag is refused instead of acking someone else's message.
 *
 * Memory: a queue holds at most max_messages ready messages and max_bytes of them; publish
 * reports DM_ENOSPC beyond that instead of growing. Messages a consumer holds are bounded
 * by its prefetch. Configure with "inproc:?max_messages=N&max_bytes=N".
 *
 * Work queues (dm_bus_queue_opts): a message counts the times it was nacked with requeue;
 * past the queue's delivery limit, or nacked without requeue, it moves to the queue's
 * dead-letter queue (dropped when there is none, or when that queue is full), as a quorum
 * queue with a dead-letter exchange does on RabbitMQ.
 *
 * Consumed confirms (DM_BUS_CONSUMED): a queue here is not the disk a broker's confirm
 * promises, so such a publish hangs a waiter on each copy it puts in a durable queue with a
 * consumer, and returns when every copy is settled (acked, nacked without requeue, reclaimed)
 * or lost (freed unconsumed, or its queue's last consumer cancelled), or at a deadline. The
 * outbox relay publishes so: its rows go only once the consumer has done its work.
 *
 * Transient queues leave the registry when their last consumer is cancelled, so they are the
 * one exception to "only grow": the queue itself is kept (unlinked, empty, marked removed)
 * until dm_bus_free, because the cancelled consumers still point to it and may settle what
 * they hold. */
#include "bus/bus_int.h"

#include "dm/error.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INPROC_DEFAULT_MAX_MESSAGES 1000000
#define INPROC_DEFAULT_MAX_BYTES ((size_t)1 << 30)
#define INPROC_MAX_QUEUES 256
#define INPROC_MAX_BINDINGS 1024
#define INPROC_MAX_CONSUMERS 4096
/* AMQP's prefetch-count is 16 bits; 0 there means "no limit", which here is this. */
#define INPROC_PREFETCH_MAX 65535u
#define INPROC_NO_SLOT UINT32_MAX
/* Longest a DM_BUS_CONSUMED publish waits for its consumers: shorter than the outbox lease
 * (DM_OUTBOX_LEASE), so a relay waiting on a slow consumer still holds its claim. */
#define INPROC_CONSUMED_WAIT_MS 5000

struct inproc_waiter;

struct inproc_msg {
        struct inproc_msg *next; /* in the ready list */
        /* The publisher waiting for this copy to be consumed (DM_BUS_CONSUMED), or NULL.
         * Detached, under the queue mutex, when the copy is settled. */
        struct inproc_waiter *waiter;
        atomic_uint refs; /* the queue or slot holding it, plus running handlers */
        bool redelivered; /* guarded by the queue mutex */
        unsigned returns; /* nacks with requeue so far; guarded by the queue mutex */
        size_t len;
        const char *routing_key; /* points into data, after the body */
        unsigned char data[];    /* body, NUL, routing key, NUL */
};

struct inproc_slot {
        struct inproc_msg *msg; /* NULL when free */
        uint32_t gen;           /* bumped on every use; part of the tag */
        uint32_t next_free;
};

struct inproc_queue;

struct inproc_consumer {
        struct inproc_bus *bus;
        struct inproc_queue *q;
        uint32_t id;
        unsigned prefetch;
        dm_bus_handler handler;
        void *arg;
        /* Under q->mu: */
        unsigned unacked;
        struct inproc_slot *slots; /* prefetch entries */
        uint32_t free_head;
        pthread_cond_t room; /* an ack made room below prefetch */
        bool cancelled;      /* under q->mu */
        bool joined;         /* its thread is gone; only the canceller or free sets it */
        pthread_t thread;
};

struct inproc_queue {
        char *name;
        unsigned delivery_limit;  /* 0: none */
        struct inproc_queue *dlq; /* dead-letter queue, or NULL */
        bool transient;
        bool removed;                      /* out of the registry; under mu */
        struct inproc_queue *next_removed; /* the bus's list of removed queues */
        pthread_mutex_t mu;
        pthread_cond_t ready; /* a message arrived, or stopping */
        struct inproc_msg *head, *tail;
        size_t count, bytes;
        bool stopping;
};

struct inproc_binding {
        char *pattern;
        struct inproc_queue *q;
};

struct inproc_bus {
        struct dm_bus base; /* first: the ops pointer */
        pthread_rwlock_t lock;
        struct inproc_queue *queues[INPROC_MAX_QUEUES];
        size_t nqueues;
        struct inproc_binding bindings[INPROC_MAX_BINDINGS];
        size_t nbindings;
        struct inproc_consumer **consumers; /* grown by doubling, INPROC_MAX_CONSUMERS max */
        size_t nconsumers, consumers_cap;
        struct inproc_queue *removed; /* transient queues taken out of the registry */
        size_t max_messages, max_bytes;
        atomic_bool stopping;
};

/* A publisher waiting for its message to be consumed (DM_BUS_CONSUMED): one per published
 * message, shared by its copies in durable queues. Its mutex is a leaf: it may be taken
 * under a queue mutex, never the other way round. */
struct inproc_waiter {
        pthread_mutex_t mu;
        pthread_cond_t done;
        unsigned refs;    /* the publisher, plus each copy not yet settled */
        unsigned pending; /* copies not yet settled */
        bool lost;        /* a copy went without being consumed */
};

static struct inproc_waiter *inproc_waiter_new(void)
{
        struct inproc_waiter *w = calloc(1, sizeof(*w));
        pthread_condattr_t ca;
        if (!w)
                return NULL;
        pthread_mutex_init(&w->mu, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w->done, &ca);
        pthread_condattr_destroy(&ca);
        w->refs = 1;
        return w;
}

static void inproc_waiter_unref_locked(struct inproc_waiter *w)
{
        bool last = --w->refs == 0;
        pthread_mutex_unlock(&w->mu);
        if (last) {
                pthread_cond_destroy(&w->done);
                pthread_mutex_destroy(&w->mu);
                free(w);
        }
}

/* The copy `m` is settled: consumed (acked, or put aside by its consumer's nack), or lost
 * (dropped unconsumed). Tells its publisher, if one waits. */
static void inproc_msg_settle(struct inproc_msg *m, bool consumed)
{
        struct inproc_waiter *w = m->waiter;
        if (!w)
                return;
        m->waiter = NULL;
        pthread_mutex_lock(&w->mu);
        w->pending--;
        w->lost |= !consumed;
        if (w->pending == 0)
                pthread_cond_broadcast(&w->done);
        inproc_waiter_unref_locked(w);
}

static void inproc_msg_unref(struct inproc_msg *m)
{
        if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
                inproc_msg_settle(m, false); /* freed while still owed: never consumed */
                free(m);
        }
}

static struct inproc_msg *inproc_msg_new(const char *routing_key, const void *body, size_t len)
{
        size_t klen = strlen(routing_key);
        if (len > SIZE_MAX - sizeof(struct inproc_msg) - klen - 2)
                return NULL;
        struct inproc_msg *m = malloc(sizeof(*m) + len + klen + 2);
        if (!m)
                return NULL;
        m->next = NULL;
        m->waiter = NULL;
        atomic_init(&m->refs, 1);
        m->redelivered = false;
        m->returns = 0;
        m->len = len;
        if (len > 0)
                memcpy(m->data, body, len);
        m->data[len] = '\0';
        char *k = (char *)m->data + len + 1;
        memcpy(k, routing_key, klen + 1);
        m->routing_key = k;
        return m;
}

static size_t inproc_msg_cost(const struct inproc_msg *m)
{
        return m->len + strlen(m->routing_key);
}

/* "?max_messages=N&max_bytes=N" after "inproc:" (and an optional "//"). */
static int inproc_parse_url(const char *url, struct inproc_bus *b, char *err, size_t errlen)
{
        const char *p = strchr(url, ':') + 1;
        if (strncmp(p, "//", 2) == 0)
                p += 2;
        if (*p == '\0')
                return 0;
        if (*p != '?') {
                dm_errorf(0, err, errlen, "inproc bus URL takes only ?max_messages=N&max_bytes=N");
                return DM_EINVAL;
        }
        p++;
        while (*p) {
                const char *amp = strchrnul(p, '&');
                const char *eq = memchr(p, '=', (size_t)(amp - p));
                if (!eq) {
                        dm_errorf(0, err, errlen, "inproc bus URL: parameter without value");
                        return DM_EINVAL;
                }
                size_t klen = (size_t)(eq - p);
                const char *v = eq + 1;
                char *end = NULL;
                errno = 0;
                unsigned long long n = (*v >= '0' && *v <= '9') ? strtoull(v, &end, 10) : 0;
                if (!end || end != amp || errno != 0 || n == 0 || n > SIZE_MAX / 2) {
                        dm_errorf(0, err, errlen, "inproc bus URL: '%.*s' needs a positive number",
                                  (int)klen, p);
                        return DM_EINVAL;
                }
                if (klen == 12 && memcmp(p, "max_messages", klen) == 0) {
                        b->max_messages = (size_t)n;
                } else if (klen == 9 && memcmp(p, "max_bytes", klen) == 0) {
                        b->max_bytes = (size_t)n;
                } else {
                        dm_errorf(0, err, errlen, "inproc bus URL: unknown parameter '%.*s'",
                                  (int)klen, p);
                        return DM_EINVAL;
                }
                p = *amp ? amp + 1 : amp;
        }
        return 0;
}

static int inproc_open(const char *url, char *err, size_t errlen, struct dm_bus **ret_bus)
{
        struct inproc_bus *b = calloc(1, sizeof(*b));
        if (!b) {
                dm_errorf(0, err, errlen, "out of memory");
                return DM_ENOMEM;
        }
        b->base.ops = &dm_bus_inproc_ops;
        b->max_messages = INPROC_DEFAULT_MAX_MESSAGES;
        b->max_bytes = INPROC_DEFAULT_MAX_BYTES;
        atomic_init(&b->stopping, false);
        int r = inproc_parse_url(url, b, err, errlen);
        if (r < 0)
                goto free_bus;
        if (pthread_rwlock_init(&b->lock, NULL) != 0) {
                dm_errorf(0, err, errlen, "cannot create lock");
                r = DM_ENOMEM;
                goto free_bus;
        }
        *ret_bus = &b->base;
        return 0;

free_bus:
        free(b);
        return r;
}

static struct inproc_queue *inproc_find_queue(struct inproc_bus *b, const char *name)
{
        for (size_t i = 0; i < b->nqueues; i++) {
                if (strcmp(b->queues[i]->name, name) == 0)
                        return b->queues[i];
        }
        return NULL;
}

static void inproc_queue_free(struct inproc_queue *q)
{
        if (!q)
                return;
        struct inproc_msg *m = q->head;
        while (m) {
                struct inproc_msg *next = m->next;
                inproc_msg_unref(m);
                m = next;
        }
        pthread_cond_destroy(&q->ready);
        pthread_mutex_destroy(&q->mu);
        free(q->name);
        free(q);
}

static struct inproc_queue *inproc_queue_new(const char *name)
{
        struct inproc_queue *q = calloc(1, sizeof(*q));
        if (!q)
                return NULL;
        q->name = strdup(name);
        if (!q->name)
                goto free_queue;
        if (pthread_mutex_init(&q->mu, NULL) != 0)
                goto free_name;
        if (pthread_cond_init(&q->ready, NULL) != 0)
                goto destroy_mutex;
        return q;

destroy_mutex:
        pthread_mutex_destroy(&q->mu);
free_name:
        free(q->name);
free_queue:
        free(q);
        return NULL;
}

static bool inproc_same_opts(const struct inproc_queue *q, const struct dm_bus_queue_opts *opts)
{
        const char *dlq = q->dlq ? q->dlq->name : NULL;
        const char *want = opts->dead_letter_queue;
        if (q->delivery_limit != opts->delivery_limit || q->transient != opts->transient)
                return false;
        return (!dlq && !want) || (dlq && want && strcmp(dlq, want) == 0);
}

/* Finds the queue `name` or adds it with `opts`; DM_EEXIST when it exists with others.
 * Under the write lock. */
static int inproc_get_queue(struct inproc_bus *b, const char *name,
                            const struct dm_bus_queue_opts *opts, struct inproc_queue *dlq,
                            struct inproc_queue **ret_queue)
{
        struct inproc_queue *q = inproc_find_queue(b, name);
        if (q) {
                if (!inproc_same_opts(q, opts))
                        return DM_EEXIST;
                *ret_queue = q;
                return 0;
        }
        if (b->nqueues == INPROC_MAX_QUEUES)
                return DM_ENOSPC;
        q = inproc_queue_new(name);
        if (!q)
                return DM_ENOMEM;
        q->delivery_limit = opts->delivery_limit;
        q->transient = opts->transient;
        q->dlq = dlq;
        b->queues[b->nqueues++] = q;
        *ret_queue = q;
        return 0;
}

static int inproc_declare(struct dm_bus *bus, const char *queue, const char *pattern,
                          const struct dm_bus_queue_opts *opts)
{
        static const struct dm_bus_queue_opts plain = {0};
        struct inproc_bus *b = (struct inproc_bus *)bus;
        struct inproc_queue *dlq = NULL, *q = NULL;
        int r = 0;
        pthread_rwlock_wrlock(&b->lock);
        if (atomic_load(&b->stopping)) {
                r = DM_ESHUTDOWN;
                goto unlock;
        }
        /* Checked before anything is added, so a refused declaration changes nothing. */
        struct inproc_queue *old = inproc_find_queue(b, queue);
        struct inproc_queue *old_dlq =
            opts->dead_letter_queue ? inproc_find_queue(b, opts->dead_letter_queue) : NULL;
        if ((old && !inproc_same_opts(old, opts)) ||
            (old_dlq && !inproc_same_opts(old_dlq, &plain))) {
                r = DM_EEXIST;
                goto unlock;
        }
        size_t new_queues = (old ? 0 : 1) + (opts->dead_letter_queue && !old_dlq ? 1 : 0);
        if (b->nqueues + new_queues > INPROC_MAX_QUEUES) {
                r = DM_ENOSPC;
                goto unlock;
        }
        if (old) {
                for (size_t i = 0; i < b->nbindings; i++) {
                        if (b->bindings[i].q == old && strcmp(b->bindings[i].pattern, pattern) == 0)
                                goto unlock;
                }
        }
        if (b->nbindings == INPROC_MAX_BINDINGS) {
                r = DM_ENOSPC;
                goto unlock;
        }
        char *pat = strdup(pattern);
        if (!pat) {
                r = DM_ENOMEM;
                goto unlock;
        }
        if (opts->dead_letter_queue) {
                r = inproc_get_queue(b, opts->dead_letter_queue, &plain, NULL, &dlq);
                if (r < 0)
                        goto free_pattern;
        }
        r = inproc_get_queue(b, queue, opts, dlq, &q);
        if (r < 0)
                goto free_pattern;
        b->bindings[b->nbindings].pattern = pat;
        b->bindings[b->nbindings].q = q;
        b->nbindings++;
        goto unlock;

free_pattern:
        free(pat);
unlock:
        pthread_rwlock_unlock(&b->lock);
        return r;
}

/* Queues whose bindings match, each once, in registry order (the lock order). */
static size_t inproc_route(struct inproc_bus *b, const char *routing_key,
                           struct inproc_queue **ret_queues)
{
        size_t n = 0;
        for (size_t qi = 0; qi < b->nqueues; qi++) {
                struct inproc_queue *q = b->queues[qi];
                for (size_t i = 0; i < b->nbindings; i++) {
                        if (b->bindings[i].q == q &&
                            dm_bus_topic_match(b->bindings[i].pattern, routing_key)) {
                                ret_queues[n++] = q;
                                break;
                        }
                }
        }
        return n;
}

/* Whether a consumer not cancelled takes from `q`. Under the read lock and q->mu. */
static bool inproc_consumed(const struct inproc_bus *b, const struct inproc_queue *q)
{
        for (size_t i = 0; i < b->nconsumers; i++) {
                if (b->consumers[i]->q == q && !b->consumers[i]->cancelled)
                        return true;
        }
        return false;
}

/* With DM_BUS_CONSUMED, *ret_waiter gets the waiter of the copies put in durable queues (NULL
 * when there are none); the caller waits on it and drops its reference. */
static int inproc_publish_one(struct inproc_bus *b, const char *routing_key, const void *body,
                              size_t len, unsigned flags, struct inproc_waiter **ret_waiter)
{
        struct inproc_queue *targets[INPROC_MAX_QUEUES];
        struct inproc_msg *msgs[INPROC_MAX_QUEUES];
        struct inproc_waiter *w = NULL;
        size_t n = 0, nmsgs = 0;
        int r = 0;

        if (flags & DM_BUS_CONSUMED) {
                w = inproc_waiter_new();
                if (!w)
                        return DM_ENOMEM;
        }
        pthread_rwlock_rdlock(&b->lock);
        if (atomic_load(&b->stopping)) {
                r = DM_ESHUTDOWN;
                goto unlock;
        }
        n = inproc_route(b, routing_key, targets);
        if (n == 0) {
                /* Like an exchange with no matching binding: dropped, or returned. */
                if (flags & DM_BUS_MANDATORY)
                        r = DM_ENOROUTE;
                goto unlock;
        }
        for (; nmsgs < n; nmsgs++) {
                msgs[nmsgs] = inproc_msg_new(routing_key, body, len);
                if (!msgs[nmsgs]) {
                        r = DM_ENOMEM;
                        goto free_msgs;
                }
        }
        size_t cost = inproc_msg_cost(msgs[0]);
        for (size_t i = 0; i < n; i++)
                pthread_mutex_lock(&targets[i]->mu);
        for (size_t i = 0; i < n; i++) {
                struct inproc_queue *q = targets[i];
                if (q->count >= b->max_messages || cost > b->max_bytes ||
                    q->bytes > b->max_bytes - cost) {
                        r = DM_ENOSPC;
                        break;
                }
        }
        if (r == 0) {
                for (size_t i = 0; i < n; i++) {
                        struct inproc_queue *q = targets[i];
                        struct inproc_msg *m = msgs[i];
                        /* A durable queue is the one a broker would have written to disk: the
                         * publisher waits until its consumer has taken the copy. One nobody
                         * consumes keeps it, as without the flag: nobody would be waited for. */
                        if (w && !q->transient && inproc_consumed(b, q)) {
                                m->waiter = w;
                                w->pending++;
                                w->refs++;
                        }
                        if (q->tail)
                                q->tail->next = m;
                        else
                                q->head = m;
                        q->tail = m;
                        q->count++;
                        q->bytes += cost;
                        pthread_cond_signal(&q->ready);
                }
                nmsgs = 0; /* the queues own them now */
        }
        for (size_t i = n; i-- > 0;)
                pthread_mutex_unlock(&targets[i]->mu);
free_msgs:
        for (size_t i = 0; i < nmsgs; i++)
                inproc_msg_unref(msgs[i]);
unlock:
        pthread_rwlock_unlock(&b->lock);
        if (w) {
                pthread_mutex_lock(&w->mu);
                if (r == 0 && w->pending > 0) {
                        pthread_mutex_unlock(&w->mu);
                        *ret_waiter = w;
                } else {
                        inproc_waiter_unref_locked(w);
                }
        }
        return r;
}

/* Waits until every copy `w` stands for is settled, or the deadline (CLOCK_MONOTONIC) passes,
 * and drops the publisher's reference. 0: all consumed; DM_EBUS: one was lost unconsumed;
 * DM_ETIMEDOUT: not all settled yet. */
static int inproc_wait_consumed(struct inproc_waiter *w, const struct timespec *deadline)
{
        int r = 0;
        pthread_mutex_lock(&w->mu);
        while (w->pending > 0 && r == 0) {
                if (pthread_cond_timedwait(&w->done, &w->mu, deadline) == ETIMEDOUT)
                        r = w->pending > 0 ? DM_ETIMEDOUT : 0;
        }
        if (r == 0 && w->lost)
                r = DM_EBUS;
        inproc_waiter_unref_locked(w);
        return r;
}

static int inproc_publish(struct dm_bus *bus, struct dm_bus_out *msgs, size_t n, unsigned flags)
{
        struct inproc_bus *b = (struct inproc_bus *)bus;
        struct inproc_waiter **waiters = NULL;
        int first = 0;
        bool stop = false;

        if ((flags & DM_BUS_CONSUMED) && !(waiters = calloc(n, sizeof(*waiters))))
                return DM_ENOMEM;
        for (size_t i = 0; i < n; i++) {
                /* After a message the bus could not take the rest are not sent: a later one
                 * must never get in ahead of it (a consumer may make room in between). A
                 * message with no route (DM_BUS_MANDATORY) stops nothing. */
                if (stop) {
                        msgs[i].result = DM_ECANCELED;
                        continue;
                }
                msgs[i].result =
                    inproc_publish_one(b, msgs[i].routing_key, msgs[i].body, msgs[i].len, flags,
                                       waiters ? &waiters[i] : NULL);
                if (msgs[i].result < 0 && msgs[i].result != DM_ENOROUTE)
                        stop = true;
        }
        if (waiters) {
                /* The whole batch is in the queues before the first wait, so its consumers
                 * work on it together; one deadline for all of it. */
                struct timespec deadline;
                clock_gettime(CLOCK_MONOTONIC, &deadline);
                deadline.tv_sec += INPROC_CONSUMED_WAIT_MS / 1000;
                deadline.tv_nsec += (long)(INPROC_CONSUMED_WAIT_MS % 1000) * 1000000L;
                if (deadline.tv_nsec >= 1000000000L) {
                        deadline.tv_sec++;
                        deadline.tv_nsec -= 1000000000L;
                }
                for (size_t i = 0; i < n; i++) {
                        if (waiters[i])
                                msgs[i].result = inproc_wait_consumed(waiters[i], &deadline);
                }
                free(waiters);
        }
        for (size_t i = 0; i < n; i++) {
                if (msgs[i].result < 0 && first == 0)
                        first = msgs[i].result;
        }
        return first;
}

static uint64_t inproc_tag(uint32_t gen, uint32_t consumer_id, uint32_t slot)
{
        return ((uint64_t)gen << 32) | ((uint64_t)(consumer_id & 0xffff) << 16) | (slot & 0xffff);
}

static void *inproc_deliver_main(void *arg)
{
        struct inproc_consumer *c = arg;
        struct inproc_queue *q = c->q;

        pthread_mutex_lock(&q->mu);
        for (;;) {
                while (!q->stopping && !c->cancelled && (!q->head || c->unacked >= c->prefetch)) {
                        if (c->unacked >= c->prefetch)
                                pthread_cond_wait(&c->room, &q->mu);
                        else
                                pthread_cond_wait(&q->ready, &q->mu);
                }
                if (q->stopping || c->cancelled)
                        break;

                struct inproc_msg *m = q->head;
                q->head = m->next;
                if (!q->head)
                        q->tail = NULL;
                m->next = NULL;
                q->count--;
                q->bytes -= inproc_msg_cost(m);

                uint32_t si = c->free_head;
                struct inproc_slot *s = &c->slots[si];
                c->free_head = s->next_free;
                s->next_free = INPROC_NO_SLOT;
                s->msg = m; /* the queue's reference moves to the slot */
                s->gen = s->gen == UINT32_MAX ? 1 : s->gen + 1;
                c->unacked++;
                atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);

                struct dm_bus_msg dm = {
                    .routing_key = m->routing_key,
                    .body = m->data,
                    .len = m->len,
                    .tag = inproc_tag(s->gen, c->id, si),
                    .redelivered = m->redelivered,
                };
                /* A wake-up taken by this thread may have been meant for an idle peer. */
                if (q->head)
                        pthread_cond_signal(&q->ready);
                pthread_mutex_unlock(&q->mu);

                c->handler(c->arg, &dm);
                inproc_msg_unref(m);

                pthread_mutex_lock(&q->mu);
        }
        /* A wake-up meant for the queue may have reached this thread as it left. */
        if (q->head)
                pthread_cond_signal(&q->ready);
        pthread_mutex_unlock(&q->mu);
        return NULL;
}

static void inproc_consumer_free(struct inproc_consumer *c)
{
        if (!c)
                return;
        if (c->slots) {
                for (unsigned i = 0; i < c->prefetch; i++)
                        inproc_msg_unref(c->slots[i].msg);
        }
        free(c->slots);
        pthread_cond_destroy(&c->room);
        free(c);
}

static int inproc_consume(struct dm_bus *bus, const char *queue, unsigned prefetch,
                          dm_bus_handler handler, void *arg)
{
        struct inproc_bus *b = (struct inproc_bus *)bus;
        struct inproc_consumer *c = NULL;
        int r = 0;

        if (prefetch == 0 || prefetch > INPROC_PREFETCH_MAX)
                prefetch = INPROC_PREFETCH_MAX;

        pthread_rwlock_wrlock(&b->lock);
        if (atomic_load(&b->stopping)) {
                r = DM_ESHUTDOWN;
                goto unlock;
        }
        struct inproc_queue *q = inproc_find_queue(b, queue);
        if (!q) {
                r = DM_ENOENT;
                goto unlock;
        }
        if (b->nconsumers == INPROC_MAX_CONSUMERS) {
                r = DM_ENOSPC;
                goto unlock;
        }
        if (b->nconsumers == b->consumers_cap) {
                size_t ncap = b->consumers_cap ? b->consumers_cap * 2 : 16;
                struct inproc_consumer **nc = realloc(b->consumers, ncap * sizeof(*nc));
                if (!nc) {
                        r = DM_ENOMEM;
                        goto unlock;
                }
                b->consumers = nc;
                b->consumers_cap = ncap;
        }

        c = calloc(1, sizeof(*c));
        if (!c) {
                r = DM_ENOMEM;
                goto unlock;
        }
        c->bus = b;
        c->q = q;
        c->id = (uint32_t)b->nconsumers;
        c->prefetch = prefetch;
        c->handler = handler;
        c->arg = arg;
        c->slots = calloc(prefetch, sizeof(*c->slots));
        if (!c->slots) {
                r = DM_ENOMEM;
                goto free_slots;
        }
        for (unsigned i = 0; i < prefetch; i++)
                c->slots[i].next_free = i + 1 < prefetch ? i + 1 : INPROC_NO_SLOT;
        c->free_head = 0;
        if (pthread_cond_init(&c->room, NULL) != 0) {
                r = DM_ENOMEM;
                goto free_slots;
        }
        b->consumers[b->nconsumers++] = c;
        /* Delivery threads take no signals: which thread does is the program's choice. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int cr = pthread_create(&c->thread, NULL, inproc_deliver_main, c);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (cr != 0) {
                b->nconsumers--;
                r = DM_EAGAIN;
                goto destroy_cond;
        }
        char tname[16];
        snprintf(tname, sizeof(tname), "bus:%.11s", q->name);
        pthread_setname_np(c->thread, tname);
        goto unlock;

destroy_cond:
        pthread_cond_destroy(&c->room);
free_slots:
        free(c->slots);
        free(c);
unlock:
        pthread_rwlock_unlock(&b->lock);
        return r;
}

/* A transient queue whose last consumer was cancelled leaves the registry with its bindings;
 * what was ready in it is dropped. The queue stays allocated for the consumers that point
 * to it (see the top of the file). */
static void inproc_remove_transient(struct inproc_bus *b, struct inproc_queue *q)
{
        struct inproc_msg *list = NULL;

        pthread_rwlock_wrlock(&b->lock);
        for (size_t i = 0; i < b->nconsumers; i++) {
                if (b->consumers[i]->q == q && !b->consumers[i]->cancelled)
                        goto unlock; /* still consumed */
        }
        size_t qi = 0;
        while (qi < b->nqueues && b->queues[qi] != q)
                qi++;
        if (qi == b->nqueues)
                goto unlock; /* removed by a concurrent cancel */
        /* Compacted in place: the registry order is the lock order and must not change. */
        memmove(&b->queues[qi], &b->queues[qi + 1], (b->nqueues - qi - 1) * sizeof(b->queues[0]));
        b->nqueues--;
        size_t kept = 0;
        for (size_t i = 0; i < b->nbindings; i++) {
                if (b->bindings[i].q == q)
                        free(b->bindings[i].pattern);
                else
                        b->bindings[kept++] = b->bindings[i];
        }
        b->nbindings = kept;
        pthread_mutex_lock(&q->mu);
        q->removed = true;
        list = q->head;
        q->head = q->tail = NULL;
        q->count = 0;
        q->bytes = 0;
        pthread_mutex_unlock(&q->mu);
        q->next_removed = b->removed;
        b->removed = q;
unlock:
        pthread_rwlock_unlock(&b->lock);
        while (list) {
                struct inproc_msg *m = list;
                list = m->next;
                inproc_msg_unref(m);
        }
}

static int inproc_cancel(struct dm_bus *bus, const char *queue, dm_bus_handler handler, void *arg)
{
        struct inproc_bus *b = (struct inproc_bus *)bus;
        struct inproc_consumer *found[INPROC_MAX_CONSUMERS];
        size_t nfound = 0;

        /* Mark under the lock, join without it: a handler still running may publish or ack,
         * and those take the lock for reading. */
        pthread_rwlock_rdlock(&b->lock);
        struct inproc_queue *q = inproc_find_queue(b, queue);
        for (size_t i = 0; q && i < b->nconsumers; i++) {
                struct inproc_consumer *c = b->consumers[i];
                if (c->q != q || c->handler != handler || c->arg != arg)
                        continue;
                pthread_mutex_lock(&q->mu);
                if (!c->cancelled) {
                        c->cancelled = true;
                        pthread_cond_broadcast(&q->ready);
                        pthread_cond_broadcast(&c->room);
                        found[nfound++] = c;
                }
                pthread_mutex_unlock(&q->mu);
        }
        if (nfound > 0 && !q->transient) {
                /* Nobody takes from the queue any more: publishers waiting for what is ready
                 * in it learn now that it was not consumed, instead of at their deadline. */
                pthread_mutex_lock(&q->mu);
                if (!inproc_consumed(b, q)) {
                        for (struct inproc_msg *m = q->head; m; m = m->next)
                                inproc_msg_settle(m, false);
                }
                pthread_mutex_unlock(&q->mu);
        }
        pthread_rwlock_unlock(&b->lock);

        for (size_t i = 0; i < nfound; i++) {
                /* From inside its own handler the thread cannot be joined; it ends when the
                 * handler returns and dm_bus_free reaps it. */
                if (pthread_equal(found[i]->thread, pthread_self()))
                        continue;
                pthread_join(found[i]->thread, NULL);
                found[i]->joined = true;
        }
        if (nfound > 0 && q->transient)
                inproc_remove_transient(b, q);
        return nfound > 0 ? 0 : DM_ENOENT;
}

/* The queue dies with the process: whatever is ready goes back to its owner. */
static int inproc_reclaim(struct dm_bus *bus, const char *queue, dm_bus_handler handler, void *arg)
{
        struct inproc_bus *b = (struct inproc_bus *)bus;

        pthread_rwlock_rdlock(&b->lock);
        struct inproc_queue *q = inproc_find_queue(b, queue);
        pthread_rwlock_unlock(&b->lock);
        if (!q)
                return DM_ENOENT;
        pthread_mutex_lock(&q->mu);
        struct inproc_msg *list = q->head;
        q->head = q->tail = NULL;
        q->count = 0;
        q->bytes = 0;
        pthread_mutex_unlock(&q->mu);

        int n = 0;
        while (list) {
                struct inproc_msg *m = list;
                list = m->next;
                struct dm_bus_msg dm = {
                    .routing_key = m->routing_key,
                    .body = m->data,
                    .len = m->len,
                    .redelivered = m->redelivered,
                };
                handler(arg, &dm);
                inproc_msg_settle(m, true); /* its owner has it back */
                inproc_msg_unref(m);
                if (n < INT_MAX)
                        n++;
        }
        return n;
}

/* Finds the slot a tag names, with its queue locked. Returns NULL (nothing locked) when the
 * tag is unknown, already settled or from an earlier use of the slot. */
static struct inproc_slot *inproc_lock_slot(struct inproc_bus *b, uint64_t tag,
                                            struct inproc_consumer **ret_consumer)
{
        uint32_t gen = (uint32_t)(tag >> 32);
        uint32_t id = (uint32_t)(tag >> 16) & 0xffff;
        uint32_t si = (uint32_t)tag & 0xffff;

        pthread_rwlock_rdlock(&b->lock);
        struct inproc_consumer *c = id < b->nconsumers ? b->consumers[id] : NULL;
        pthread_rwlock_unlock(&b->lock);
        if (!c || si >= c->prefetch || gen == 0)
                return NULL;

        pthread_mutex_lock(&c->q->mu);
        struct inproc_slot *s = &c->slots[si];
        if (!s->msg || s->gen != gen) {
                pthread_mutex_unlock(&c->q->mu);
                return NULL;
        }
        *ret_consumer = c;
        return s;
}

/* Frees the slot and wakes the delivery thread if it was waiting for room. Takes the
 * slot's message reference away and returns it. */
static struct inproc_msg *inproc_release_slot(struct inproc_consumer *c, struct inproc_slot *s)
{
        struct inproc_msg *m = s->msg;
        s->msg = NULL;
        s->next_free = c->free_head;
        c->free_head = (uint32_t)(s - c->slots);
        if (c->unacked-- == c->prefetch)
                pthread_cond_signal(&c->room);
        return m;
}

static int inproc_ack(struct dm_bus *bus, uint64_t tag)
{
        struct inproc_bus *b = (struct inproc_bus *)bus;
        struct inproc_consumer *c = NULL;
        struct inproc_slot *s = inproc_lock_slot(b, tag, &c);
        if (!s)
                return DM_ENOENT;
        struct inproc_msg *m = inproc_release_slot(c, s);
        inproc_msg_settle(m, true);
        pthread_mutex_unlock(&c->q->mu);
        inproc_msg_unref(m);
        return 0;
}

/* Appends a message that left `from` to the dead-letter queue of `from`, or drops it. No
 * queue mutex may be held: this one takes the dead-letter queue's. */
static void inproc_dead_letter(struct inproc_bus *b, struct inproc_queue *from,
                               struct inproc_msg *m)
{
        struct inproc_queue *dlq = from->dlq;
        if (!dlq) {
                inproc_msg_unref(m);
                return;
        }
        size_t cost = inproc_msg_cost(m);
        pthread_mutex_lock(&dlq->mu);
        if (dlq->stopping || dlq->count >= b->max_messages || cost > b->max_bytes ||
            dlq->bytes > b->max_bytes - cost) {
                pthread_mutex_unlock(&dlq->mu);
                inproc_msg_unref(m);
                return;
        }
        m->redelivered = false;
        m->returns = 0;
        m->next = NULL;
        if (dlq->tail)
                dlq->tail->next = m;
        else
                dlq->head = m;
        dlq->tail = m;
        dlq->count++;
        dlq->bytes += cost;
        pthread_cond_signal(&dlq->ready);
        pthread_mutex_unlock(&dlq->mu);
}

static int inproc_nack(struct dm_bus *bus, uint64_t tag, bool requeue)
{
        struct inproc_bus *b = (struct inproc_bus *)bus;
        struct inproc_consumer *c = NULL;
        struct inproc_slot *s = inproc_lock_slot(b, tag, &c);
        if (!s)
                return DM_ENOENT;
        struct inproc_queue *q = c->q;
        struct inproc_msg *m = inproc_release_slot(c, s);
        if (requeue && q->delivery_limit > 0 && ++m->returns > q->delivery_limit)
                requeue = false; /* a poison message: tried often enough */
        if (q->removed)
                requeue = false; /* its queue is gone, as on a broker */
        if (requeue) {
                /* Back at the head, as a broker puts it back near its old place; it was
                 * counted against the queue when published, so the caps do not refuse it. */
                m->redelivered = true;
                m->next = q->head;
                q->head = m;
                if (!q->tail)
                        q->tail = m;
                q->count++;
                q->bytes += inproc_msg_cost(m);
                pthread_cond_signal(&q->ready);
                m = NULL;
        }
        if (m)
                inproc_msg_settle(m, true); /* its consumer put it aside: taken */
        pthread_mutex_unlock(&q->mu);
        if (m)
                inproc_dead_letter(b, q, m); /* q->dlq is set once and lives until free */
        return 0;
}

static void inproc_free(struct dm_bus *bus)
{
        struct inproc_bus *b = (struct inproc_bus *)bus;

        pthread_rwlock_wrlock(&b->lock);
        atomic_store(&b->stopping, true);
        pthread_rwlock_unlock(&b->lock);

        /* No new consumers or queues appear once stopping is set, so the arrays are stable
         * without the lock, and handlers may still ack while we wait for them. */
        for (size_t i = 0; i < b->nqueues; i++) {
                struct inproc_queue *q = b->queues[i];
                pthread_mutex_lock(&q->mu);
                q->stopping = true;
                pthread_cond_broadcast(&q->ready);
                for (size_t j = 0; j < b->nconsumers; j++) {
                        if (b->consumers[j]->q == q)
                                pthread_cond_broadcast(&b->consumers[j]->room);
                }
                pthread_mutex_unlock(&q->mu);
        }
        for (size_t j = 0; j < b->nconsumers; j++) {
                if (!b->consumers[j]->joined)
                        pthread_join(b->consumers[j]->thread, NULL);
        }

        for (size_t j = 0; j < b->nconsumers; j++)
                inproc_consumer_free(b->consumers[j]);
        free(b->consumers);
        for (size_t i = 0; i < b->nbindings; i++)
                free(b->bindings[i].pattern);
        for (size_t i = 0; i < b->nqueues; i++)
                inproc_queue_free(b->queues[i]);
        while (b->removed) {
                struct inproc_queue *q = b->removed;
                b->removed = q->next_removed;
                inproc_queue_free(q);
        }
        pthread_rwlock_destroy(&b->lock);
        free(b);
}

/* Exact: the ready list's length, and the consumers not cancelled. */
static int inproc_queue_depth(struct dm_bus *bus, const char *queue, uint64_t *ret_ready,
                              uint64_t *ret_consumers)
{
        struct inproc_bus *b = (struct inproc_bus *)bus;

        /* The read lock keeps the consumer array still; a queue mutex is taken under it, as
         * consume does. */
        pthread_rwlock_rdlock(&b->lock);
        struct inproc_queue *q = inproc_find_queue(b, queue);
        if (!q) {
                pthread_rwlock_unlock(&b->lock);
                return DM_ENOENT;
        }
        pthread_mutex_lock(&q->mu);
        uint64_t consumers = 0;
        for (size_t i = 0; i < b->nconsumers; i++) {
                if (b->consumers[i]->q == q && !b->consumers[i]->cancelled)
                        consumers++;
        }
        *ret_ready = q->count;
        *ret_consumers = consumers;
        pthread_mutex_unlock(&q->mu);
        pthread_rwlock_unlock(&b->lock);
        return 0;
}

/* Nothing to lose touch with. */
static int inproc_ping(struct dm_bus *bus)
{
        (void)bus;
        return 0;
}

const struct dm_bus_ops dm_bus_inproc_ops = {
    .name = "inproc",
    .open = inproc_open,
    .free = inproc_free,
    .declare = inproc_declare,
    .publish = inproc_publish,
    .consume = inproc_consume,
    .cancel = inproc_cancel,
    .reclaim = inproc_reclaim,
    .ack = inproc_ack,
    .nack = inproc_nack,
    .ping = inproc_ping,
    .queue_depth = inproc_queue_depth,
};
