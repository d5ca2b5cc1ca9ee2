/* The scanners: the task handler (parse, validate, hand each domain to the least loaded
 * loop) and the loops, one event loop and one resolver each. A loop queries every type of a
 * domain, records each outcome through lib/dns/change.c and, when the last has answered,
 * computes the domain's fingerprint and hands it to the committer. */
#include "dns_int.h"

#include "dm/error.h"
#include "dm/log.h"
#include "dm/rrtype.h"
#include "dm/task.h"
#include "dm/time.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- domains ---- */

static int dns_type_cmp(const void *a, const void *b)
{
        uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
        return (x > y) - (x < y);
}

/* Whether `types` (n of them) holds `t`. */
static bool dns_has_type(const uint16_t *types, size_t n, uint16_t t)
{
        for (size_t i = 0; i < n; i++) {
                if (types[i] == t)
                        return true;
        }
        return false;
}

struct dm_dns_scan *dm_dns_scan_new(const struct dm_dns_service *svc, const struct dm_scan_task *t)
{
        uint16_t sorted[DM_RRTYPE_MAX_PER_DOMAIN + 2];
        const uint16_t *types = t->record_types;
        size_t ntypes = t->nrecord_types;
        unsigned checks = t->checks ? t->checks : (unsigned)svc->app->conf.default_checks;
        if (!(checks & DM_CHECKS_DNS)) {
                types = NULL;
                ntypes = 0;
        } else if (ntypes == 0) {
                types = dm_rrtype_defaults;
                ntypes = dm_rrtype_ndefaults;
        }
        if (ntypes > DM_RRTYPE_MAX_PER_DOMAIN)
                ntypes = DM_RRTYPE_MAX_PER_DOMAIN;
        if (ntypes > 0)
                memcpy(sorted, types, ntypes * sizeof(*types));
        qsort(sorted, ntypes, sizeof(sorted[0]), dns_type_cmp);
        size_t n = 0;
        for (size_t i = 0; i < ntypes; i++) {
                if (n == 0 || sorted[n - 1] != sorted[i])
                        sorted[n++] = sorted[i];
        }
        /* The TLS check connects to the addresses the DNS check finds, and looks them up
         * itself where the DNS check does not. */
        size_t naddr = 0;
        if (checks & DM_CHECKS_TLS) {
                if (!dns_has_type(sorted, n, DM_RR_A))
                        sorted[n + naddr++] = DM_RR_A;
                if (!dns_has_type(sorted, n, DM_RR_AAAA))
                        sorted[n + naddr++] = DM_RR_AAAA;
        }
        size_t total = n + naddr;

        /* One block: the scan, its outcomes, the callbacks' arguments. */
        struct dm_dns_scan *d =
            calloc(1, sizeof(*d) + total * (sizeof(*d->rr) + sizeof(*d->lookups)));
        if (!d)
                return NULL;
        d->rr = (struct dm_change_rr *)(d + 1);
        d->lookups = (struct dm_dns_lookup *)(d->rr + total);
        d->id = t->domain_id;
        d->checks = checks;
        snprintf(d->name, sizeof(d->name), "%s", t->name);
        memcpy(d->task_fp, t->dns_fp, DM_FP_LEN);
        memcpy(d->tls_task_fp, t->tls_fp, DM_FP_LEN);
        d->ntls_ports = t->ntls_ports > DM_TLS_PORTS_MAX ? DM_TLS_PORTS_MAX : t->ntls_ports;
        memcpy(d->tls_ports, t->tls_ports, d->ntls_ports * sizeof(d->tls_ports[0]));
        d->nrr = n;
        d->naddr = naddr;
        d->pending = total;
        for (size_t i = 0; i < total; i++) {
                d->rr[i].type = sorted[i];
                dm_change_rr_fail(&d->rr[i], DM_ECANCELED);
                d->lookups[i].scan = d;
                d->lookups[i].rr = &d->rr[i];
        }
        return d;
}

void dm_dns_scan_free(struct dm_dns_scan *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < d->nrr + d->naddr; i++)
                dm_change_rr_done(&d->rr[i]);
        for (size_t i = 0; d->tls && i < d->ntls; i++)
                dm_tls_result_done(&d->tls[i]);
        free(d->tls);
        free(d);
}

/* ---- loops ---- */

static void dns_active_link(struct dm_dns_loop *l, struct dm_dns_scan *d)
{
        d->prev = NULL;
        d->next = l->active;
        if (l->active)
                l->active->prev = d;
        l->active = d;
}

static void dns_active_unlink(struct dm_dns_loop *l, struct dm_dns_scan *d)
{
        if (d->prev)
                d->prev->next = d->next;
        else
                l->active = d->next;
        if (d->next)
                d->next->prev = d->prev;
        d->next = d->prev = NULL;
}

static void dns_scan_finished(struct dm_dns_loop *l, struct dm_dns_scan *d)
{
        dns_active_unlink(l, d);
        atomic_fetch_sub_explicit(&l->load, 1, memory_order_relaxed);
        dm_dns_hand_off(l->svc, d);
}

/* Every lookup is in: the DNS part is done, the TLS probes (if any) come next. */
static void dns_lookups_done(struct dm_dns_loop *l, struct dm_dns_scan *d)
{
        struct timespec now;
        bool failed = false;
        d->observed_at = dm_now_ms();
        clock_gettime(CLOCK_MONOTONIC, &now);
        for (size_t i = 0; i < d->nrr; i++)
                failed = failed || d->rr[i].status == DM_RRS_ERROR;
        dm_metric_inc(failed ? l->svc->m_scan_error : l->svc->m_scan_ok, 1);
        dm_metric_observe(l->svc->m_scan_seconds,
                          (double)(now.tv_sec - d->started.tv_sec) +
                              (double)(now.tv_nsec - d->started.tv_nsec) / 1e9);
        if (l->svc->mode != DM_DNS_MODE_RESOLVE && dm_change_fingerprint(d->rr, d->nrr, d->fp) < 0)
                d->abandoned = true;
        if (l->svc->mode == DM_DNS_MODE_RESOLVE || d->abandoned || !(d->checks & DM_CHECKS_TLS) ||
            !dm_dns_tls_begin(l, d))
                dns_scan_finished(l, d);
}

static void dns_on_answer(void *arg, const struct dm_dns_answer *a)
{
        struct dm_dns_lookup *lk = arg;
        struct dm_dns_scan *d = lk->scan;
        struct dm_dns_loop *l = d->loop;

        dm_change_rr_set(lk->rr, a);
        if (a->status == DM_RRS_ERROR && a->server_plus1 > 0)
                dm_resolver_server_text(&l->svc->ropts, (size_t)(a->server_plus1 - 1),
                                        lk->rr->server, sizeof(lk->rr->server));
        dm_metric_add(l->svc->m_inflight, -1);
        atomic_fetch_add_explicit(&l->lookups, 1, memory_order_relaxed);
        if (lk->rr->status == DM_RRS_ERROR)
                atomic_fetch_add_explicit(&l->failures, 1, memory_order_relaxed);
        if (--d->pending == 0)
                dns_lookups_done(l, d);
}

static void dns_loop_start_scan(struct dm_dns_loop *l, struct dm_dns_scan *d)
{
        d->loop = l;
        clock_gettime(CLOCK_MONOTONIC, &d->started);
        dns_active_link(l, d);
        /* Callbacks only run from dm_resolver_run, so `pending` cannot reach zero under
         * our feet while the lookups are queued. */
        for (size_t i = 0; i < d->nrr + d->naddr; i++) {
                int r = dm_resolver_query(l->resolver, d->name, d->rr[i].type, dns_on_answer,
                                          &d->lookups[i]);
                if (r == 0)
                        dm_metric_add(l->svc->m_inflight, 1);
                if (r < 0) {
                        dm_change_rr_fail(&d->rr[i], r);
                        atomic_fetch_add_explicit(&l->lookups, 1, memory_order_relaxed);
                        atomic_fetch_add_explicit(&l->failures, 1, memory_order_relaxed);
                        d->pending--;
                }
        }
        if (d->pending == 0)
                dns_lookups_done(l, d);
}

static void dns_loop_take_intake(struct dm_dns_loop *l)
{
        pthread_mutex_lock(&l->mu);
        struct dm_dns_scan *list = l->intake_head;
        l->intake_head = l->intake_tail = NULL;
        pthread_mutex_unlock(&l->mu);
        while (list) {
                struct dm_dns_scan *d = list;
                list = d->next;
                dns_loop_start_scan(l, d);
        }
}

/* Stop's deadline passed: what is still in flight is handed back unfinished. */
static void dns_loop_abandon(struct dm_dns_loop *l)
{
        dm_resolver_free(l->resolver); /* no callback runs after this */
        l->resolver = NULL;
        dm_dns_tls_abandon(l);
        while (l->active) {
                struct dm_dns_scan *d = l->active;
                dns_active_unlink(l, d);
                d->abandoned = true;
                atomic_fetch_sub_explicit(&l->load, 1, memory_order_relaxed);
                dm_dns_hand_off(l->svc, d);
        }
}

/* The resolver belongs to the loop thread: others read these copies. */
/* One line per server whose state changed since the last look: each loop's resolver learns
 * on its own, so a line names the loop. */
static void dns_loop_log_servers(struct dm_dns_loop *l, const struct dm_resolver_stats *st)
{
        const struct dm_resolver_opts *o = &l->svc->ropts;
        for (size_t i = 0; i < o->nservers && i < 32; i++) {
                uint32_t bit = 1u << i;
                char addr[64];
                if (!((st->down_mask ^ l->down_mask) & bit) &&
                    !((st->no_edns_mask ^ l->no_edns_mask) & bit) &&
                    !((st->no_case_mask ^ l->no_case_mask) & bit))
                        continue;
                if (dm_resolver_server_text(o, i, addr, sizeof(addr)) < 0)
                        continue;
                if ((st->down_mask ^ l->down_mask) & bit) {
                        if (st->down_mask & bit)
                                dm_log_warn(DM_DNS_SVC,
                                            "msg=\"DNS server marked down: no answer for several "
                                            "timeouts; lookups go to the others, probes go on\" "
                                            "server=%s loop=%zu",
                                            addr, l->index);
                        else
                                dm_log_info(DM_DNS_SVC,
                                            "msg=\"DNS server answers again\" server=%s loop=%zu",
                                            addr, l->index);
                }
                if ((st->no_edns_mask & bit) && !(l->no_edns_mask & bit))
                        dm_log_warn(DM_DNS_SVC,
                                    "msg=\"DNS server does not take EDNS; asking it without\" "
                                    "server=%s loop=%zu",
                                    addr, l->index);
                if ((st->no_case_mask & bit) && !(l->no_case_mask & bit))
                        dm_log_warn(DM_DNS_SVC,
                                    "msg=\"DNS server does not echo the case of names; 0x20 off "
                                    "for it\" server=%s loop=%zu",
                                    addr, l->index);
        }
        if (st->servers_down == (int)o->nservers && o->nservers > 0 &&
            st->down_mask != l->down_mask)
                dm_log_error(DM_DNS_SVC,
                             "msg=\"every DNS server is down: lookups fail at once until one "
                             "answers a probe\" loop=%zu",
                             l->index);
        l->down_mask = st->down_mask;
        l->no_edns_mask = st->no_edns_mask;
        l->no_case_mask = st->no_case_mask;
}

static void dns_loop_stats(struct dm_dns_loop *l)
{
        if (!l->resolver)
                return;
        struct dm_resolver_stats st;
        dm_resolver_get_stats(l->resolver, &st);
        dns_loop_log_servers(l, &st);
        atomic_store(&l->servers_down, st.servers_down);
        atomic_store(&l->window, st.window);
        atomic_store(&l->sent, st.sent);
        atomic_store(&l->retransmits, st.retransmits);
}

void *dm_dns_loop_main(void *arg)
{
        struct dm_dns_loop *l = arg;
        struct dm_dns_service *svc = l->svc;
        int64_t stats_at = 0;
        bool run_failed = false;
        struct pollfd pfd[2 + DM_DNS_TLS_INFLIGHT];

        for (;;) {
                dns_loop_take_intake(l);
                if (atomic_load(&svc->draining)) {
                        pthread_mutex_lock(&l->mu);
                        bool intake = l->intake_head != NULL;
                        pthread_mutex_unlock(&l->mu);
                        if (!l->active && !intake)
                                break;
                        if (dm_mono_ms() >= atomic_load(&svc->drain_deadline)) {
                                dns_loop_take_intake(l);
                                dns_loop_abandon(l);
                                break;
                        }
                }

                pfd[0] = (struct pollfd){.fd = l->efd, .events = POLLIN};
                pfd[1] = (struct pollfd){.fd = dm_resolver_fd(l->resolver), .events = POLLIN};
                size_t nprobes = dm_dns_tls_poll(l, pfd + 2, dns_scan_finished);
                int timeout = l->active ? DM_DNS_POLL_BUSY_MS : DM_DNS_POLL_IDLE_MS;
                if (poll(pfd, 2 + nprobes, timeout) > 0 && (pfd[0].revents & POLLIN)) {
                        uint64_t v;
                        ssize_t rd = read(l->efd, &v, sizeof(v));
                        (void)rd;
                }
                dm_dns_tls_run(l, pfd + 2, nprobes, dns_scan_finished);
                int r = dm_resolver_run(l->resolver, 0);
                if (r < 0 && !run_failed) {
                        run_failed = true;
                        dm_log_error(DM_DNS_SVC, "msg=\"resolver loop error\" loop=%zu err=\"%s\"",
                                     l->index, dm_strerror(r));
                }
                int64_t now = dm_mono_ms();
                if (now - stats_at >= 1000) {
                        dns_loop_stats(l);
                        stats_at = now;
                }
        }
        dns_loop_stats(l);
        return NULL;
}

void dm_dns_dispatch(struct dm_dns_service *svc, struct dm_dns_scan *d)
{
        struct dm_dns_loop *best = &svc->loops[0];
        size_t best_load = atomic_load(&best->load);
        for (size_t i = 1; i < svc->nloops && best_load > 0; i++) {
                size_t load = atomic_load(&svc->loops[i].load);
                if (load < best_load) {
                        best = &svc->loops[i];
                        best_load = load;
                }
        }
        atomic_fetch_add(&best->load, 1);
        d->next = NULL;
        pthread_mutex_lock(&best->mu);
        bool was_empty = best->intake_head == NULL;
        if (best->intake_tail)
                best->intake_tail->next = d;
        else
                best->intake_head = d;
        best->intake_tail = d;
        pthread_mutex_unlock(&best->mu);
        if (was_empty) {
                uint64_t one = 1;
                ssize_t w = write(best->efd, &one, sizeof(one));
                (void)w;
        }
}

/* ---- task messages ---- */

/* Decodes a task message into domains to scan: all of them or none. */
static int dns_parse_tasks(const struct dm_dns_service *svc, const void *body, size_t len,
                           struct dm_dns_scan **ret_scans, size_t *ret_n, char *why, size_t whylen)
{
        struct dm_scan_task *tasks = NULL;
        size_t n = 0, i;
        int r = dm_scan_tasks_decode(body, len, why, whylen, &tasks, &n);
        if (r < 0)
                return r;
        for (i = 0; i < n; i++) {
                ret_scans[i] = dm_dns_scan_new(svc, &tasks[i]);
                if (!ret_scans[i]) {
                        r = DM_ENOMEM;
                        goto free_scans;
                }
        }
        free(tasks);
        *ret_n = n;
        return 0;

free_scans:
        while (i-- > 0)
                dm_dns_scan_free(ret_scans[i]);
        free(tasks);
        return r;
}

/* While the store refuses results, a delivered task is held rather than resolved: its
 * message stays unacked, so the prefetch stops further deliveries, and no lookup is made
 * whose result could not be written. Returns false when not paused (the caller
 * dispatches). */
static bool dns_hold(struct dm_dns_service *svc, struct dm_dns_scan **ds, size_t n)
{
        pthread_mutex_lock(&svc->mu);
        bool paused = atomic_load(&svc->paused);
        for (size_t i = 0; paused && i < n; i++) {
                ds[i]->next = NULL;
                if (svc->held_tail)
                        svc->held_tail->next = ds[i];
                else
                        svc->held_head = ds[i];
                svc->held_tail = ds[i];
        }
        pthread_mutex_unlock(&svc->mu);
        return paused;
}

void dm_dns_resume(struct dm_dns_service *svc)
{
        struct dm_dns_scan *list = NULL;
        pthread_mutex_lock(&svc->mu);
        atomic_store(&svc->paused, false);
        /* Once the loops drain they take nothing new: held tasks then wait for the stop,
         * which hands them back. */
        if (!atomic_load(&svc->draining)) {
                list = svc->held_head;
                svc->held_head = svc->held_tail = NULL;
        }
        pthread_cond_broadcast(&svc->cond);
        pthread_mutex_unlock(&svc->mu);
        while (list) {
                struct dm_dns_scan *d = list;
                list = d->next;
                dm_dns_dispatch(svc, d);
        }
}

void dm_dns_on_task(void *arg, const struct dm_bus_msg *m)
{
        struct dm_dns_service *svc = arg;
        struct dm_dns_scan *ds[DM_TASKS_PER_MSG_MAX];
        size_t n = 0;
        char why[256];

        if (m->redelivered)
                dm_metric_inc(svc->m_redelivered, 1);
        if (atomic_load(&svc->draining)) {
                dm_bus_nack(svc->bus, m->tag, true);
                return;
        }
        int r = dns_parse_tasks(svc, m->body, m->len, ds, &n, why, sizeof(why));
        if (r == DM_ENOMEM) {
                dm_bus_nack(svc->bus, m->tag, true);
                return;
        }
        if (r < 0) {
                /* A poison message: requeueing would loop forever; a broker dead-letters
                 * it. Logged for the first few and then now and then. */
                uint64_t k = atomic_fetch_add(&svc->rejected, 1);
                if (k < 10 || k % 1000 == 0) {
                        char q[300];
                        dm_log_warn(DM_DNS_SVC, "msg=\"rejected a malformed scan task\" why=%s",
                                    dm_log_quote(q, sizeof(q), why));
                }
                dm_bus_nack(svc->bus, m->tag, false);
                dm_dns_finish(svc, 0, 1);
                return;
        }
        struct dm_dns_msg *msg = calloc(1, sizeof(*msg));
        if (!msg) {
                for (size_t i = 0; i < n; i++)
                        dm_dns_scan_free(ds[i]);
                dm_bus_nack(svc->bus, m->tag, true);
                return;
        }
        msg->tag = m->tag;
        msg->ndomains = n;
        msg->remaining = n;
        for (size_t i = 0; i < n; i++)
                ds[i]->msg = msg;
        if (dns_hold(svc, ds, n))
                return;
        for (size_t i = 0; i < n; i++)
                dm_dns_dispatch(svc, ds[i]);
}
