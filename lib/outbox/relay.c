/* The outbox relay (include/dm/outbox.h): claim -> dm_bus_publish_batch -> delete, one round
 * per kick and per poll interval, on a thread of its own. The store's claim is what keeps
 * relays apart (docs/internals/store.md, "The outbox"); the relay's own state is only its
 * owner token, the kick flag and the outage flags. */
#include "dm/outbox.h"

#include "dm/error.h"
#include "dm/log.h"
#include "dm/time.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct dm_outbox_relay {
        struct dm_store *store;
        struct dm_bus *bus;
        size_t batch;
        int64_t lease_ms, poll_ms;
        const char *svc;
        int64_t owner; /* this relay's claims in the store */

        pthread_mutex_t mu; /* guards kick and stop */
        pthread_cond_t cond;
        bool kick, stop;
        pthread_t thread;

        pthread_mutex_t round_mu; /* one round at a time: the thread's or a flush's */

        pthread_mutex_t stat_mu; /* guards stats */
        struct dm_outbox_stats stats;
};

/* A positive token no other relay draws: 63 random bits (the time and pid if the kernel
 * has no randomness to give yet). */
static int64_t relay_owner_new(void)
{
        uint64_t v = 0;
        if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
                v = ((uint64_t)dm_now_ms() << 20) ^ (uint64_t)getpid() ^ (uint64_t)dm_mono_ms();
        v &= (uint64_t)INT64_MAX;
        return v ? (int64_t)v : 1;
}

/* ---- outages: logged once when they start, once when they end ---- */

static void relay_failed(struct dm_outbox_relay *r, bool bus, const char *what, int err)
{
        pthread_mutex_lock(&r->stat_mu);
        bool *down = bus ? &r->stats.bus_down : &r->stats.store_down;
        bool was = *down;
        if (!was) {
                *down = true;
                r->stats.outages++;
        }
        pthread_mutex_unlock(&r->stat_mu);
        if (was)
                return;
        if (bus)
                dm_log_error(r->svc,
                             "msg=\"cannot publish events; they wait in the outbox\" err=\"%s\"",
                             dm_strerror(err));
        else
                dm_log_error(r->svc,
                             "msg=\"cannot reach the outbox in the store; events wait there\" "
                             "op=%s err=\"%s\"",
                             what, dm_strerror(err));
}

static void relay_ok(struct dm_outbox_relay *r, bool bus)
{
        pthread_mutex_lock(&r->stat_mu);
        bool *down = bus ? &r->stats.bus_down : &r->stats.store_down;
        bool was = *down;
        *down = false;
        pthread_mutex_unlock(&r->stat_mu);
        if (!was)
                return;
        if (bus)
                dm_log_info(r->svc, "msg=\"publishing events again\"");
        else
                dm_log_info(r->svc, "msg=\"the outbox in the store is reachable again\"");
}

static void relay_count(struct dm_outbox_relay *r, size_t published, size_t dropped)
{
        pthread_mutex_lock(&r->stat_mu);
        r->stats.published += published;
        r->stats.dropped += dropped;
        pthread_mutex_unlock(&r->stat_mu);
}

/* ---- one round ---- */

/* Publishes the claimed events; what the bus took, and what it can never take, goes into
 * `done` (to delete). Returns 0 or the first publish failure. */
static int relay_publish(struct dm_outbox_relay *r, const struct dm_outbox_event *ev, size_t n,
                         int64_t *done, size_t *ret_ndone)
{
        struct dm_bus_out *out = calloc(n, sizeof(*out));
        size_t *idx = calloc(n, sizeof(*idx)); /* out[k] is ev[idx[k]] */
        size_t ndone = 0, published = 0, dropped = 0, m = n;
        int ret = DM_ENOMEM;
        if (!out || !idx)
                goto out_free;
        for (size_t i = 0; i < n; i++) {
                out[i] = (struct dm_bus_out){
                    .routing_key = ev[i].routing_key,
                    .body = ev[i].body,
                    .len = strlen(ev[i].body),
                };
                idx[i] = i;
        }
        ret = dm_bus_publish_batch(r->bus, out, n, DM_BUS_CONSUMED);
        if (ret == DM_EINVAL) {
                /* Nothing was sent. The ones refused can never go: they must not block the
                 * rest, which go again at once. */
                m = 0;
                for (size_t k = 0; k < n; k++) {
                        const struct dm_outbox_event *e = &ev[idx[k]];
                        if (out[k].result != DM_EINVAL) {
                                out[m] = out[k];
                                idx[m++] = idx[k];
                                continue;
                        }
                        char q[64];
                        dm_log_warn(r->svc,
                                    "msg=\"dropped an outbox event the bus refuses\" "
                                    "id=%" PRId64 " routing_key=%s",
                                    e->id, dm_log_quote(q, sizeof(q), e->routing_key));
                        done[ndone++] = e->id;
                        dropped++;
                }
                ret = m > 0 ? dm_bus_publish_batch(r->bus, out, m, DM_BUS_CONSUMED) : 0;
        }
        for (size_t k = 0; k < m; k++) {
                if (out[k].result == 0) {
                        done[ndone++] = ev[idx[k]].id;
                        published++;
                }
        }
        relay_count(r, published, dropped);
        *ret_ndone = ndone;

out_free:
        free(idx);
        free(out);
        return ret;
}

/* Claim, publish, delete. *ret_more: a full batch went, so more may be waiting. */
static int relay_round(struct dm_outbox_relay *r, bool *ret_more)
{
        struct dm_outbox_event *ev = NULL;
        int64_t *done = NULL;
        size_t n = 0, ndone = 0;
        *ret_more = false;

        /* A bus known to be down takes nothing: claiming would only hold the events. */
        int ret = dm_bus_ping(r->bus);
        if (ret < 0) {
                relay_failed(r, true, "ping", ret);
                return ret;
        }
        ret =
            dm_store_outbox_claim(r->store, r->owner, r->lease_ms, r->batch, dm_now_ms(), &ev, &n);
        if (ret < 0) {
                relay_failed(r, false, "claim", ret);
                return ret;
        }
        relay_ok(r, false);
        if (n == 0) {
                relay_ok(r, true);
                goto out_free;
        }
        done = calloc(n, sizeof(*done));
        if (!done) {
                ret = DM_ENOMEM;
                goto out_free;
        }
        int pub = relay_publish(r, ev, n, done, &ndone);
        /* What went is deleted even when the rest failed; what failed stays claimed by this
         * relay, which takes it back first on its next round. */
        if (ndone > 0) {
                ret = dm_store_outbox_delete(r->store, r->owner, done, ndone, NULL);
                if (ret < 0)
                        relay_failed(r, false, "delete", ret);
        }
        if (pub < 0) {
                relay_failed(r, true, "publish", pub);
                ret = pub;
                goto out_free;
        }
        relay_ok(r, true);
        *ret_more = ret == 0 && n == r->batch;

out_free:
        free(done);
        dm_outbox_events_free(ev, n);
        return ret;
}

/* Rounds until nothing is left or one fails. */
static int relay_rounds(struct dm_outbox_relay *r)
{
        bool more = true;
        int ret = 0;
        pthread_mutex_lock(&r->round_mu);
        while (ret == 0 && more)
                ret = relay_round(r, &more);
        pthread_mutex_unlock(&r->round_mu);
        return ret;
}

static void relay_wait(struct dm_outbox_relay *r)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(r->poll_ms / 1000);
        ts.tv_nsec += (long)(r->poll_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->cond, &r->mu, &ts);
}

static void *relay_main(void *arg)
{
        struct dm_outbox_relay *r = arg;
        for (;;) {
                pthread_mutex_lock(&r->mu);
                if (!r->kick && !r->stop)
                        relay_wait(r);
                bool stop = r->stop;
                r->kick = false;
                pthread_mutex_unlock(&r->mu);

                (void)relay_rounds(r); /* failures are logged and tried again */
                if (stop)
                        break;
        }
        return NULL;
}

/* ---- the interface ---- */

static void relay_free(struct dm_outbox_relay *r)
{
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->mu);
        pthread_mutex_destroy(&r->round_mu);
        pthread_mutex_destroy(&r->stat_mu);
        free(r);
}

int dm_outbox_relay_start(const struct dm_outbox_relay_opts *opts,
                          struct dm_outbox_relay **ret_relay)
{
        if (!opts || !opts->store || !opts->bus || !ret_relay || opts->lease_ms < 0 ||
            opts->poll_ms < 0)
                return DM_EINVAL;
        struct dm_outbox_relay *r = calloc(1, sizeof(*r));
        if (!r)
                return DM_ENOMEM;
        r->store = opts->store;
        r->bus = opts->bus;
        r->batch = opts->batch ? opts->batch : DM_OUTBOX_BATCH;
        r->lease_ms = opts->lease_ms ? opts->lease_ms : DM_OUTBOX_LEASE_MS;
        r->poll_ms = opts->poll_ms ? opts->poll_ms : DM_OUTBOX_POLL_MS;
        r->svc = opts->log_svc ? opts->log_svc : "outbox";
        r->owner = relay_owner_new();
        pthread_mutex_init(&r->mu, NULL);
        pthread_mutex_init(&r->round_mu, NULL);
        pthread_mutex_init(&r->stat_mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&r->cond, &ca);
        pthread_condattr_destroy(&ca);

        /* Signals are the program's main thread's to take. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int rc = pthread_create(&r->thread, NULL, relay_main, r);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) {
                relay_free(r);
                return DM_EAGAIN;
        }
        pthread_setname_np(r->thread, "outbox-relay");
        *ret_relay = r;
        return 0;
}

void dm_outbox_relay_kick(struct dm_outbox_relay *r)
{
        if (!r)
                return;
        pthread_mutex_lock(&r->mu);
        r->kick = true;
        pthread_cond_signal(&r->cond);
        pthread_mutex_unlock(&r->mu);
}

int dm_outbox_relay_flush(struct dm_outbox_relay *r)
{
        if (!r)
                return DM_EINVAL;
        return relay_rounds(r);
}

void dm_outbox_relay_stats(struct dm_outbox_relay *r, struct dm_outbox_stats *ret_stats)
{
        if (!r || !ret_stats)
                return;
        pthread_mutex_lock(&r->stat_mu);
        *ret_stats = r->stats;
        pthread_mutex_unlock(&r->stat_mu);
}

void dm_outbox_relay_stop(struct dm_outbox_relay *r)
{
        if (!r)
                return;
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_signal(&r->cond);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
        relay_free(r);
}
