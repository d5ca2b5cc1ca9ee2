/* The DNS service: scheduler, scanners, committer and history retention, wired through the
 * bus so that one process (`domainmon all`) and many (`dns-service` behind RabbitMQ) run
 * the same code; its change events leave through the process's outbox relay. This file
 * starts and stops the parts (dns_int.h lists them); docs/internals/dns-service.md tells
 * the whole story. The short version:
 *
 *   scheduler --claim_due--> "task.dns" messages --bus--> handler --> loop intake
 *   loop (one resolver each) --complete domain + fingerprint--> committer
 *   committer --lib/dns/change.c, one dns_commit per batch--> ack the messages --> outbox
 *
 * Nothing is acked before its domain's result is in the store, and every write is a
 * compare-and-swap on the fingerprint the task carried, so a task delivered twice or a
 * process killed halfway costs a rescan, never a lost or doubled change. */
#include "dns_int.h"

#include "dm/error.h"
#include "dm/log.h"
#include "dm/time.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* ---- shared helpers ---- */

void dm_dns_cond_init(pthread_cond_t *c)
{
        pthread_condattr_t a;
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(c, &a);
        pthread_condattr_destroy(&a);
}

void dm_dns_cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, int64_t ms)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(ms / 1000);
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(c, m, &ts);
}

void dm_dns_sleep(struct dm_dns_service *svc, int64_t ms)
{
        pthread_mutex_lock(&svc->mu);
        if (!atomic_load(&svc->stopping))
                dm_dns_cond_wait_ms(&svc->cond, &svc->mu, ms);
        pthread_mutex_unlock(&svc->mu);
}

void dm_dns_pause(struct dm_dns_service *svc, int64_t ms)
{
        int64_t until = dm_mono_ms() + ms;
        pthread_mutex_lock(&svc->mu);
        for (;;) {
                int64_t left = until - dm_mono_ms();
                if (left <= 0 || atomic_load(&svc->stopping))
                        break;
                dm_dns_cond_wait_ms(&svc->cond, &svc->mu, left);
        }
        pthread_mutex_unlock(&svc->mu);
}

void dm_dns_sum_loops(const struct dm_dns_service *svc, struct dm_dns_totals *t)
{
        memset(t, 0, sizeof(*t));
        for (size_t i = 0; i < svc->nloops; i++) {
                const struct dm_dns_loop *l = &svc->loops[i];
                t->lookups += atomic_load(&l->lookups);
                t->failures += atomic_load(&l->failures);
                t->sent += atomic_load(&l->sent);
                t->retransmits += atomic_load(&l->retransmits);
                t->window += atomic_load(&l->window);
                t->tls_probes += atomic_load(&l->probes_done);
                t->tls_errors += atomic_load(&l->probe_errors);
        }
}

void dm_dns_finish(struct dm_dns_service *svc, size_t n, size_t nmsgs)
{
        pthread_mutex_lock(&svc->mu);
        svc->outstanding -= (int64_t)n;
        svc->outstanding_msgs -= (int64_t)nmsgs;
        pthread_cond_broadcast(&svc->cond);
        pthread_mutex_unlock(&svc->mu);
}

void dm_dns_store_failed(struct dm_dns_service *svc, const char *what, int err)
{
        if (!atomic_exchange(&svc->store_down, true))
                dm_log_error(DM_DNS_SVC,
                             "msg=\"store unavailable; finished results are kept and retried, "
                             "no new work is taken\" op=%s err=\"%s\"",
                             what, dm_strerror(err));
}

void dm_dns_store_ok(struct dm_dns_service *svc)
{
        if (atomic_exchange(&svc->store_down, false))
                dm_log_info(DM_DNS_SVC, "msg=\"store reachable again\"");
}

void dm_dns_stats_log(struct dm_dns_service *svc, bool final)
{
        int64_t now = dm_mono_ms();
        if (!final && now - svc->stats_at < DM_DNS_STATS_MS)
                return;
        struct dm_dns_totals t;
        dm_dns_sum_loops(svc, &t);
        uint64_t domains = atomic_load(&svc->domains), changes = atomic_load(&svc->changes);
        pthread_mutex_lock(&svc->mu);
        int64_t outstanding = svc->outstanding;
        pthread_mutex_unlock(&svc->mu);
        dm_log_info(DM_DNS_SVC,
                    "msg=\"%s\" domains=%" PRIu64 " lookups=%" PRIu64 " failures=%" PRIu64
                    " changes=%" PRIu64 " sent=%" PRIu64 " retransmits=%" PRIu64
                    " window=%d outstanding=%" PRId64 " tls_probes=%" PRIu64 " tls_errors=%" PRIu64
                    " seconds=%.1f",
                    final ? "scan stats (final)" : "scan stats", domains - svc->stats.domains,
                    t.lookups - svc->stats.lookups, t.failures - svc->stats.failures,
                    changes - svc->stats.changes, t.sent - svc->stats.sent,
                    t.retransmits - svc->stats.retransmits, t.window, outstanding,
                    t.tls_probes - svc->stats.tls_probes, t.tls_errors - svc->stats.tls_errors,
                    (double)(now - svc->stats_at) / 1000.0);
        svc->stats_at = now;
        svc->stats = (struct dm_dns_stats_mark){
            .domains = domains,
            .lookups = t.lookups,
            .failures = t.failures,
            .changes = changes,
            .sent = t.sent,
            .retransmits = t.retransmits,
            .tls_probes = t.tls_probes,
            .tls_errors = t.tls_errors,
        };
}

/* ---- start and stop ---- */

static int dns_resolver_opts(const struct dm_conf *conf, size_t nloops, struct dm_resolver_opts *o,
                             char *servers, size_t size)
{
        char err[256];
        memset(o, 0, sizeof(*o));
        if (conf->dns_servers && *conf->dns_servers) {
                int r = dm_resolver_parse_servers(conf->dns_servers, err, sizeof(err), o);
                if (r < 0) {
                        dm_log_error(DM_DNS_SVC, "msg=\"bad DM_DNS_SERVERS\" err=\"%s\"", err);
                        return DM_ECONFIG;
                }
                snprintf(servers, size, "%s", conf->dns_servers);
        } else {
                int r = dm_resolver_servers_from_resolv_conf("/etc/resolv.conf", o);
                if (r < 0 || o->nservers == 0) {
                        dm_log_error(DM_DNS_SVC, "msg=\"no DNS servers: set DM_DNS_SERVERS or "
                                                 "add nameserver lines to /etc/resolv.conf\"");
                        return DM_ECONFIG;
                }
                snprintf(servers, size, "resolv.conf(%zu)", o->nservers);
        }
        o->timeout_ms = (int)conf->dns_timeout_ms;
        o->retries = (int)conf->dns_retries;
        o->concurrency = (int)conf->dns_concurrency;
        o->authoritative_only = conf->dns_auth_only != 0;
        /* The cap is for the whole process: each loop takes its share, rounded up. */
        o->qps =
            conf->dns_qps > 0 ? (int)((conf->dns_qps + (int64_t)nloops - 1) / (int64_t)nloops) : 0;
        return 0;
}

void dm_dns_free(struct dm_dns_service *svc)
{
        if (!svc)
                return;
        for (size_t i = 0; svc->loops && i < svc->nloops; i++) {
                struct dm_dns_loop *l = &svc->loops[i];
                dm_resolver_free(l->resolver);
                dm_dns_tls_abandon(l);
                free(l->probes);
                if (l->efd >= 0)
                        close(l->efd);
                while (l->intake_head) {
                        struct dm_dns_scan *d = l->intake_head;
                        l->intake_head = d->next;
                        dm_dns_scan_free(d);
                }
                pthread_mutex_destroy(&l->mu);
        }
        free(svc->loops);
        dm_tls_ctx_free(svc->tls_ctx);
        pthread_mutex_destroy(&svc->mu);
        pthread_cond_destroy(&svc->cond);
        pthread_mutex_destroy(&svc->commit_mu);
        pthread_cond_destroy(&svc->commit_cond);
        free(svc);
}

/* Tasks that never reached a loop, or reached one after it stopped (held while the store
 * was failing, handed over by the committer as the loops drained): their messages go back
 * to the queue (and from there, for the in-process bus, to the store's due list). Runs once
 * the committer is gone. */
static void dns_release_unstarted(struct dm_dns_service *svc)
{
        pthread_mutex_lock(&svc->mu);
        struct dm_dns_scan *list = svc->held_head;
        svc->held_head = svc->held_tail = NULL;
        pthread_mutex_unlock(&svc->mu);
        for (size_t i = 0; svc->loops && i < svc->nloops; i++) {
                struct dm_dns_loop *l = &svc->loops[i];
                pthread_mutex_lock(&l->mu);
                struct dm_dns_scan *intake = l->intake_head;
                l->intake_head = l->intake_tail = NULL;
                pthread_mutex_unlock(&l->mu);
                while (intake) {
                        struct dm_dns_scan *d = intake;
                        intake = d->next;
                        d->next = list;
                        list = d;
                }
        }
        while (list) {
                struct dm_dns_scan *d = list;
                list = d->next;
                d->abandoned = true;
                dm_dns_dispose(svc, d, true);
        }
}

void dm_dns_stop(struct dm_dns_service *svc)
{
        pthread_mutex_lock(&svc->mu);
        atomic_store(&svc->stopping, true);
        pthread_cond_broadcast(&svc->cond);
        pthread_mutex_unlock(&svc->mu);
        if (svc->scheduler_started)
                pthread_join(svc->scheduler, NULL);
        if (svc->retention_started)
                pthread_join(svc->retention, NULL);
        dm_dns_reg_stop(svc);
        if (svc->consuming)
                dm_bus_cancel(svc->bus, svc->queue, dm_dns_on_task, svc);

        atomic_store(&svc->drain_deadline, dm_mono_ms() + DM_DNS_DRAIN_MS);
        atomic_store(&svc->draining, true);
        for (size_t i = 0; i < svc->nloops; i++) {
                uint64_t one = 1;
                ssize_t w = write(svc->loops[i].efd, &one, sizeof(one));
                (void)w;
        }
        for (size_t i = 0; i < svc->nloops; i++) {
                if (svc->loops[i].started)
                        pthread_join(svc->loops[i].thread, NULL);
        }

        pthread_mutex_lock(&svc->commit_mu);
        svc->loops_finished = true;
        pthread_cond_signal(&svc->commit_cond);
        pthread_mutex_unlock(&svc->commit_mu);
        if (svc->committer_started)
                pthread_join(svc->committer, NULL);

        /* Every message the consumer took is settled now; what is left in a queue of this
         * process was never consumed. */
        dns_release_unstarted(svc);
        if (svc->consuming) {
                size_t n = dm_dns_reclaim_tasks(svc);
                if (n > 0)
                        dm_log_info(DM_DNS_SVC,
                                    "msg=\"made due again the domains of tasks never "
                                    "consumed\" domains=%zu",
                                    n);
        }

        /* The last holder's release publishes what the commits left in the outbox. */
        if (svc->relay_held) {
                dm_app_relay_release(svc->app);
                svc->relay_held = false;
        }
}

static int dns_start_thread(pthread_t *t, void *(*fn)(void *), void *arg, const char *name)
{
        if (pthread_create(t, NULL, fn, arg) != 0)
                return DM_EAGAIN;
        pthread_setname_np(*t, name);
        return 0;
}

/* Sizes the backpressure from the configuration: domains outstanding, claim size and the
 * consumer's prefetch. */
static void dns_size(struct dm_dns_service *svc, const struct dm_conf *conf)
{
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        int64_t nloops = conf->dns_loops > 0 ? conf->dns_loops : (cores > 0 ? cores : 1);
        svc->nloops = (size_t)(nloops > DM_DNS_LOOPS_MAX ? DM_DNS_LOOPS_MAX : nloops);
        int64_t outstanding = DM_DNS_OUTSTANDING_PER_SLOT * conf->dns_concurrency * nloops;
        if (outstanding < DM_DNS_OUTSTANDING_MIN)
                outstanding = DM_DNS_OUTSTANDING_MIN;
        if (outstanding > DM_DNS_OUTSTANDING_MAX)
                outstanding = DM_DNS_OUTSTANDING_MAX;
        svc->max_outstanding = (size_t)outstanding;
        svc->claim_max =
            conf->scan_batch < outstanding ? (size_t)conf->scan_batch : (size_t)outstanding;
        if (svc->claim_max == 0)
                svc->claim_max = 1;
        /* Enough messages in hand to fill the loops while earlier ones wait for commit. */
        size_t prefetch = 2 * svc->max_outstanding / DM_DNS_TASKS_PER_MSG;
        svc->prefetch = (unsigned)(prefetch < 4 ? 4 : prefetch > 65535 ? 65535 : prefetch);
        svc->max_ready_msgs = svc->max_outstanding / DM_DNS_TASKS_PER_MSG;
        if (svc->max_ready_msgs == 0)
                svc->max_ready_msgs = 1;
}

static int dns_loops_new(struct dm_dns_service *svc)
{
        svc->loops = calloc(svc->nloops, sizeof(*svc->loops));
        if (!svc->loops)
                return DM_ENOMEM;
        for (size_t i = 0; i < svc->nloops; i++) {
                struct dm_dns_loop *l = &svc->loops[i];
                l->svc = svc;
                l->index = i;
                l->efd = -1;
                pthread_mutex_init(&l->mu, NULL);
        }
        for (size_t i = 0; i < svc->nloops; i++) {
                struct dm_dns_loop *l = &svc->loops[i];
                l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
                if (l->efd < 0)
                        return DM_EIO;
                int r = dm_resolver_new(&svc->ropts, &l->resolver);
                if (r < 0) {
                        dm_log_error(DM_DNS_SVC, "msg=\"cannot create a resolver\" err=\"%s\"",
                                     dm_strerror(r));
                        return r;
                }
        }
        return 0;
}

/* The task queue is a work queue: a malformed task (rejected by the handler) and one put
 * back DM_DNS_DELIVERY_LIMIT times go to the dead-letter queue, where an operator can look
 * at them, instead of going round for ever. */
static int dns_declare_tasks(struct dm_dns_service *svc)
{
        const struct dm_bus_queue_opts work = {
            .delivery_limit = DM_DNS_DELIVERY_LIMIT,
            .dead_letter_queue = svc->dead_queue,
        };
        int r = dm_bus_declare_opts(svc->bus, svc->queue, svc->task_key, &work);
        if (r == DM_EEXIST)
                dm_log_error(DM_DNS_SVC,
                             "msg=\"the task queue exists on the broker as another kind of "
                             "queue (made by an older version?); delete it there, e.g. "
                             "rabbitmqctl delete_queue %s, and start again\" queue=%s",
                             svc->queue, svc->queue);
        else if (r < 0)
                dm_log_error(DM_DNS_SVC, "msg=\"cannot declare the task queue\" err=\"%s\"",
                             dm_strerror(r));
        return r;
}

int dm_dns_start(struct dm_app *app, enum dm_dns_mode mode, struct dm_dns_service **ret_service)
{
        const struct dm_conf *conf = &app->conf;
        char servers[256];
        int r;

        struct dm_dns_service *svc = calloc(1, sizeof(*svc));
        if (!svc)
                return DM_ENOMEM;
        svc->app = app;
        if (app->m) {
                svc->m_scan_ok = dm_metric_series(app->m->scans, (const char *[]){"dns", "ok"});
                svc->m_scan_error =
                    dm_metric_series(app->m->scans, (const char *[]){"dns", "error"});
                svc->m_scan_seconds =
                    dm_metric_series(app->m->scan_seconds, (const char *[]){"dns"});
                svc->m_inflight = dm_metric_series(app->m->queries_in_flight, NULL);
                svc->m_depth = dm_metric_series(app->m->task_queue_depth, NULL);
                svc->m_redelivered = dm_metric_series(app->m->task_redeliveries, NULL);
                svc->m_changes = app->m->changes;
        }
        svc->store = app->store;
        svc->bus = app->bus;
        svc->mode = mode;
        svc->queue = mode == DM_DNS_MODE_SERVICE ? DM_DNS_TASK_QUEUE : DM_DNS_CLI_QUEUE;
        svc->task_key = mode == DM_DNS_MODE_SERVICE ? DM_DNS_TASK_KEY : DM_DNS_CLI_KEY;
        svc->dead_queue = mode == DM_DNS_MODE_SERVICE ? DM_DNS_TASK_DEAD : DM_DNS_CLI_DEAD;
        svc->started_mono = dm_mono_ms();
        svc->stats_at = svc->started_mono;
        pthread_mutex_init(&svc->mu, NULL);
        dm_dns_cond_init(&svc->cond);
        pthread_mutex_init(&svc->commit_mu, NULL);
        dm_dns_cond_init(&svc->commit_cond);
        dns_size(svc, conf);

        r = dns_resolver_opts(conf, svc->nloops, &svc->ropts, servers, sizeof(servers));
        if (r < 0)
                goto fail;
        r = dns_loops_new(svc);
        if (r < 0)
                goto fail;
        if (mode != DM_DNS_MODE_RESOLVE) {
                char why[256];
                svc->tls_ctx = dm_tls_ctx_new(conf->tls_ca_file, why, sizeof(why));
                if (!svc->tls_ctx) {
                        char q[300];
                        dm_log_error(DM_DNS_SVC, "msg=\"cannot set up TLS checks\" err=%s",
                                     dm_log_quote(q, sizeof(q), why));
                        r = DM_ECONFIG;
                        goto fail;
                }
        }

        if (mode != DM_DNS_MODE_RESOLVE) {
                r = dns_declare_tasks(svc);
                if (r < 0)
                        goto fail;
                r = dm_app_relay_hold(app);
                if (r < 0)
                        goto fail;
                svc->relay_held = true;
                r = dns_start_thread(&svc->committer, dm_dns_commit_main, svc, "dns-commit");
                if (r < 0)
                        goto fail_stop;
                svc->committer_started = true;
        }
        for (size_t i = 0; i < svc->nloops; i++) {
                char tname[16];
                snprintf(tname, sizeof(tname), "dns-loop-%u", (unsigned)(i % DM_DNS_LOOPS_MAX));
                r = dns_start_thread(&svc->loops[i].thread, dm_dns_loop_main, &svc->loops[i],
                                     tname);
                if (r < 0)
                        goto fail_stop;
                svc->loops[i].started = true;
        }
        if (mode != DM_DNS_MODE_RESOLVE) {
                r = dm_bus_consume(svc->bus, svc->queue, svc->prefetch, dm_dns_on_task, svc);
                if (r < 0) {
                        dm_log_error(DM_DNS_SVC, "msg=\"cannot consume the task queue\" err=\"%s\"",
                                     dm_strerror(r));
                        goto fail_stop;
                }
                svc->consuming = true;
                svc->scan_now = dm_now_ms();
                r = dns_start_thread(&svc->scheduler, dm_dns_scheduler_main, svc, "dns-sched");
                if (r < 0)
                        goto fail_stop;
                svc->scheduler_started = true;
        }
        if (mode == DM_DNS_MODE_SERVICE) {
                r = dm_dns_reg_start(svc);
                if (r < 0) {
                        dm_log_error(DM_DNS_SVC,
                                     "msg=\"cannot start registration checks\" err=\"%s\"",
                                     dm_strerror(r));
                        goto fail_stop;
                }
        }
        if (mode == DM_DNS_MODE_SERVICE && conf->history_retention_ms > 0) {
                r = dns_start_thread(&svc->retention, dm_dns_retention_main, svc, "dns-retain");
                if (r < 0)
                        goto fail_stop;
                svc->retention_started = true;
        }

        char q[300];
        dm_log_info(DM_DNS_SVC,
                    "msg=\"dns %s started\" loops=%zu servers=%s concurrency=%" PRId64
                    " timeout_ms=%" PRId64 " retries=%" PRId64 " qps=%" PRId64
                    " max_outstanding=%zu prefetch=%u queue=%s history_retention_s=%" PRId64,
                    mode == DM_DNS_MODE_SERVICE ? "service" : "scan", svc->nloops,
                    dm_log_quote(q, sizeof(q), servers), conf->dns_concurrency,
                    conf->dns_timeout_ms, conf->dns_retries, conf->dns_qps, svc->max_outstanding,
                    svc->prefetch, mode == DM_DNS_MODE_RESOLVE ? "none" : svc->queue,
                    conf->history_retention_ms / 1000);
        *ret_service = svc;
        return 0;

fail_stop:
        if (r == DM_EAGAIN)
                dm_log_error(DM_DNS_SVC, "msg=\"cannot start a thread\"");
        dm_dns_stop(svc);
fail:
        dm_dns_free(svc);
        return r;
}

int dm_dns_service_start(struct dm_app *app, struct dm_dns_service **ret_service)
{
        if (!app || !app->store || !app->bus || !ret_service)
                return DM_EINVAL;
        return dm_dns_start(app, DM_DNS_MODE_SERVICE, ret_service);
}

void dm_dns_service_stop(struct dm_dns_service *s)
{
        if (!s)
                return;
        dm_dns_stop(s);
        dm_dns_stats_log(s, true);
        dm_dns_free(s);
}
