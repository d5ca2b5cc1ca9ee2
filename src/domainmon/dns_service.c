/* The DNS service: scheduler, scanners, committer and outbox publisher, wired through the
 * bus so that one process (`domainmon all`) and many (`dns-service` behind RabbitMQ) run the
 * same code. docs/internals/dns-service.md tells the whole story; the short version:
 *
 *   scheduler --claim_due--> "task.dns" messages --bus--> handler --> loop intake
 *   loop (one resolver each) --complete domain + fingerprint--> committer
 *   committer --one dns_commit per batch--> ack the messages --> kick the outbox publisher
 *
 * Nothing is acked before its domain's result is in the store, and every write is a
 * compare-and-swap on the fingerprint the task carried, so a task delivered twice or a
 * process killed halfway costs a rescan, never a lost or doubled change. */
#include "app.h"

#include "dm/buf.h"
#include "dm/error.h"
#include "dm/hex.h"
#include "dm/task.h"
#include "dm/json.h"
#include "dm/log.h"
#include "dm/resolver.h"
#include "dm/rrset.h"
#include "dm/rrtype.h"
#include "dm/store.h"
#include "dm/time.h"

#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define DNS_SVC "dns"

/* The service's queue, and a separate one for `domainmon scan` so that a one-off scan never
 * hands its tasks to (or takes them from) dns-service processes sharing the broker. */
#define DNS_TASK_QUEUE "dns.scan"
#define DNS_TASK_KEY "task.dns"
#define DNS_CLI_QUEUE "dns.scan.cli"
#define DNS_CLI_KEY "task.dns.cli"

#define DNS_TASKS_PER_MSG 64      /* domains per task message we publish */
#define DNS_EVENT_MAX (16u << 20) /* bytes of one change event */
#define DNS_STATUS_ERROR_MAX 256  /* struct dm_domain.status_error */

#define DNS_IDLE_MS 200       /* scheduler pause when nothing more is due */
#define DNS_RETRY_MS 1000     /* pause after a store or bus failure */
#define DNS_COMMIT_MAX 2000   /* results per dns_commit */
#define DNS_COMMIT_MS 100     /* longest a finished result waits for its batch */
#define DNS_OUTBOX_BATCH 1000 /* events per outbox round */
#define DNS_OUTBOX_MS 1000    /* outbox poll when nothing kicks it */
#define DNS_STATS_MS 60000    /* stats log line */
#define DNS_DRAIN_MS 2000     /* how long stop waits for lookups in flight */
#define DNS_POLL_BUSY_MS 10   /* loop wake-up while lookups are in flight */
#define DNS_POLL_IDLE_MS 250  /* loop wake-up when idle */
#define DNS_LOOPS_MAX 64
#define DNS_PAGE 1000 /* domains per dm_store_domain_list page */
/* Domains published but not finished, per loop and unit of concurrency: enough to keep
 * every window full while results wait for their commit, small enough that a burst of a
 * million due domains stays in the database rather than in memory. */
#define DNS_OUTSTANDING_PER_SLOT 4
#define DNS_OUTSTANDING_MIN 8192
#define DNS_OUTSTANDING_MAX 32768

enum dns_mode {
        DNS_MODE_SERVICE, /* dns-service / all: runs until stopped */
        DNS_MODE_SCAN,    /* domainmon scan: one pass over what is due */
        DNS_MODE_RESOLVE, /* domainmon scan --resolve-only: lookups only */
};

/* One task message: acked once every domain in it is written, nacked (requeued) if any
 * could not be. Touched by the committer thread only, after the handler hands it over. */
struct dns_msg {
        uint64_t tag;
        size_t ndomains;
        size_t remaining;
        bool requeue;
};

struct dns_domain;
struct dns_loop;

/* One record type of a domain being scanned: the resolver callback's argument. */
struct dns_rr {
        struct dns_domain *d;
        uint16_t type;
        enum dm_rr_status status;
        int err;
        uint32_t ttl;
        char **values; /* canonical, owned */
        size_t nvalues;
};

struct dns_domain {
        struct dns_domain *next, *prev; /* intake, active or done list */
        struct dns_msg *msg;            /* NULL with --resolve-only */
        struct dns_loop *loop;
        int64_t id;
        int64_t observed_at;
        bool abandoned; /* not finished: stays due, its message is requeued */
        bool has_error;
        size_t pending; /* lookups not answered yet */
        uint8_t task_fp[DM_FP_LEN];
        uint8_t fp[DM_FP_LEN];
        char name[DM_NAME_MAX + 1];
        char status_error[DNS_STATUS_ERROR_MAX];
        size_t nrr;
        struct dns_rr rr[]; /* ascending type order, as the fingerprint needs */
};

struct dns_loop {
        struct dm_dns_service *svc;
        size_t index;
        pthread_t thread;
        bool started;
        struct dm_resolver *resolver; /* the loop thread's alone once started */
        int efd;                      /* wakes the loop for new intake */
        pthread_mutex_t mu;
        struct dns_domain *intake_head, *intake_tail; /* under mu */
        atomic_size_t load;                           /* domains handed over, not finished */
        struct dns_domain *active;                    /* loop thread only */
        atomic_uint_fast64_t lookups, failures;
        atomic_uint_fast64_t sent, retransmits; /* copied from the resolver's stats */
        atomic_int window;
};

struct dm_dns_service {
        struct dm_app *app;
        struct dm_store *store;
        struct dm_bus *bus;
        enum dns_mode mode;
        const char *queue, *task_key;
        int64_t scan_now; /* DNS_MODE_SCAN: claims as of this instant only */

        struct dm_resolver_opts ropts;
        size_t nloops;
        struct dns_loop *loops;
        size_t max_outstanding;
        size_t claim_max;
        unsigned prefetch;
        bool consuming;

        atomic_bool stopping; /* scheduler and retries give up */
        atomic_bool draining; /* loops finish what they hold, then exit */
        atomic_int_fast64_t drain_deadline;

        /* Scheduler state and the outstanding count; cond also wakes interruptible
         * sleeps and the scan driver. */
        pthread_mutex_t mu;
        pthread_cond_t cond;
        int64_t outstanding; /* may dip below 0 when another process published the task */
        /* Task messages published and not settled, kept within the prefetch: a claim of
         * few domains makes a small message, and with the in-process bus a message the
         * consumer has not taken in hand when it is cancelled is lost with its domains,
         * whose claim has moved them to their next slot. */
        int64_t outstanding_msgs;
        bool sched_done;
        pthread_t scheduler;
        bool scheduler_started;

        /* Finished domains waiting for the committer. */
        pthread_mutex_t commit_mu;
        pthread_cond_t commit_cond;
        struct dns_domain *done_head, *done_tail;
        size_t ndone;
        int64_t done_since; /* mono ms the oldest waiting result arrived */
        bool loops_finished;
        pthread_t committer;
        bool committer_started;

        pthread_mutex_t outbox_mu;
        pthread_cond_t outbox_cond;
        bool outbox_kick, outbox_stop;
        pthread_t outbox;
        bool outbox_started;

        atomic_uint_fast64_t domains, changes, conflicts, rejected;
        /* Report a failing dependency once, and its recovery once. */
        atomic_bool store_down, bus_down, outbox_down;
        int64_t stats_at;
        struct dns_stats_mark {
                uint64_t domains, lookups, failures, changes, sent, retransmits;
        } stats; /* totals at the last stats line */
        int64_t started_mono;
};

/* ---- small helpers ---- */

static void dns_cond_init(pthread_cond_t *c)
{
        pthread_condattr_t a;
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(c, &a);
        pthread_condattr_destroy(&a);
}

static void dns_cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, int64_t ms)
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

/* Sleeps up to `ms`, returning early when the service stops. */
static void dns_sleep(struct dm_dns_service *svc, int64_t ms)
{
        pthread_mutex_lock(&svc->mu);
        if (!atomic_load(&svc->stopping))
                dns_cond_wait_ms(&svc->cond, &svc->mu, ms);
        pthread_mutex_unlock(&svc->mu);
}

struct dns_totals {
        uint64_t lookups, failures, sent, retransmits;
        int window;
};

static void dns_sum_loops(const struct dm_dns_service *svc, struct dns_totals *t)
{
        memset(t, 0, sizeof(*t));
        for (size_t i = 0; i < svc->nloops; i++) {
                const struct dns_loop *l = &svc->loops[i];
                t->lookups += atomic_load(&l->lookups);
                t->failures += atomic_load(&l->failures);
                t->sent += atomic_load(&l->sent);
                t->retransmits += atomic_load(&l->retransmits);
                t->window += atomic_load(&l->window);
        }
}

/* Tasks done for good (acked, or dropped): room for the scheduler to claim more. `nmsgs`:
 * task messages settled with them. */
static void dns_finish(struct dm_dns_service *svc, size_t n, size_t nmsgs)
{
        pthread_mutex_lock(&svc->mu);
        svc->outstanding -= (int64_t)n;
        svc->outstanding_msgs -= (int64_t)nmsgs;
        pthread_cond_broadcast(&svc->cond);
        pthread_mutex_unlock(&svc->mu);
}

/* ---- domains ---- */

static int dns_type_cmp(const void *a, const void *b)
{
        uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
        return (x > y) - (x < y);
}

/* `types` empty means the default set. Returns NULL on ENOMEM. */
static struct dns_domain *dns_domain_new(int64_t id, const char *name, const uint16_t *types,
                                         size_t ntypes, const uint8_t fp[DM_FP_LEN])
{
        uint16_t sorted[DM_RRTYPE_MAX_PER_DOMAIN];
        if (ntypes == 0) {
                types = dm_rrtype_defaults;
                ntypes = dm_rrtype_ndefaults;
        }
        if (ntypes > DM_RRTYPE_MAX_PER_DOMAIN)
                ntypes = DM_RRTYPE_MAX_PER_DOMAIN;
        memcpy(sorted, types, ntypes * sizeof(*types));
        qsort(sorted, ntypes, sizeof(sorted[0]), dns_type_cmp);
        size_t n = 0;
        for (size_t i = 0; i < ntypes; i++) {
                if (n == 0 || sorted[n - 1] != sorted[i])
                        sorted[n++] = sorted[i];
        }

        struct dns_domain *d = calloc(1, sizeof(*d) + n * sizeof(d->rr[0]));
        if (!d)
                return NULL;
        d->id = id;
        snprintf(d->name, sizeof(d->name), "%s", name);
        if (fp)
                memcpy(d->task_fp, fp, DM_FP_LEN);
        d->nrr = n;
        d->pending = n;
        for (size_t i = 0; i < n; i++) {
                d->rr[i].d = d;
                d->rr[i].type = sorted[i];
                d->rr[i].status = DM_RRS_ERROR;
                d->rr[i].err = DM_ECANCELED;
        }
        return d;
}

static void dns_domain_free(struct dns_domain *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < d->nrr; i++)
                dm_rrset_values_free(d->rr[i].values, d->rr[i].nvalues);
        free(d);
}

/* Status and reason of the whole domain: "TXT: timed out; MX: DNS query refused". */
static void dns_domain_status(struct dns_domain *d)
{
        size_t o = 0;
        d->status_error[0] = '\0';
        for (size_t i = 0; i < d->nrr; i++) {
                const struct dns_rr *rr = &d->rr[i];
                if (rr->status != DM_RRS_ERROR)
                        continue;
                d->has_error = true;
                if (o + 1 >= sizeof(d->status_error))
                        continue;
                char tbuf[16];
                int w =
                    snprintf(d->status_error + o, sizeof(d->status_error) - o, "%s%s: %s",
                             o ? "; " : "", dm_rrtype_name(rr->type, tbuf), dm_strerror(rr->err));
                o = w < 0 ? o : o + (size_t)w;
                if (o >= sizeof(d->status_error))
                        o = sizeof(d->status_error) - 1;
        }
}

static int dns_fingerprint(struct dns_domain *d)
{
        struct dm_fp fp;
        int r = dm_fp_init(&fp);
        if (r < 0)
                return r;
        for (size_t i = 0; i < d->nrr; i++) {
                const struct dns_rr *rr = &d->rr[i];
                dm_fp_add(&fp, rr->type, rr->status, rr->values, rr->nvalues);
        }
        return dm_fp_final(&fp, d->fp); /* reports any dm_fp_add error */
}

/* ---- committer side ---- */

static void dns_kick_outbox(struct dm_dns_service *svc)
{
        pthread_mutex_lock(&svc->outbox_mu);
        svc->outbox_kick = true;
        pthread_cond_signal(&svc->outbox_cond);
        pthread_mutex_unlock(&svc->outbox_mu);
}

/* Called by the loops for every domain they finish or give up. */
static void dns_hand_off(struct dm_dns_service *svc, struct dns_domain *d)
{
        if (!d->abandoned)
                atomic_fetch_add_explicit(&svc->domains, 1, memory_order_relaxed);
        if (svc->mode == DNS_MODE_RESOLVE) {
                dns_domain_free(d);
                dns_finish(svc, 1, 0);
                return;
        }
        d->next = NULL;
        pthread_mutex_lock(&svc->commit_mu);
        if (svc->done_tail)
                svc->done_tail->next = d;
        else
                svc->done_head = d;
        svc->done_tail = d;
        if (++svc->ndone == 1)
                svc->done_since = dm_mono_ms();
        if (svc->ndone == 1 || svc->ndone >= DNS_COMMIT_MAX)
                pthread_cond_signal(&svc->commit_cond);
        pthread_mutex_unlock(&svc->commit_mu);
}

/* The domain's fate is known: settle its share of the message. `requeue`: not written, so
 * the task must run again. */
static void dns_dispose(struct dm_dns_service *svc, struct dns_domain *d, bool requeue)
{
        struct dns_msg *msg = d->msg;
        if (requeue && atomic_load(&svc->stopping)) {
                /* The consumer is gone and an in-process queue dies with us: make sure the
                 * domain is claimed again soon whatever happens to the message. */
                dm_store_domain_request_scan(svc->store, d->name, dm_now_ms());
        }
        dns_domain_free(d);
        if (!msg)
                return;
        if (requeue)
                msg->requeue = true;
        if (--msg->remaining > 0)
                return;
        int r;
        if (msg->requeue) {
                r = dm_bus_nack(svc->bus, msg->tag, true);
        } else {
                r = dm_bus_ack(svc->bus, msg->tag);
                dns_finish(svc, msg->ndomains, 1);
        }
        if (r < 0)
                dm_log_warn(DNS_SVC, "msg=\"cannot settle a scan task message\" err=\"%s\"",
                            dm_strerror(r));
        free(msg);
}

static bool dns_values_equal(char *const *a, size_t na, char *const *b, size_t nb)
{
        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++) {
                if (strcmp(a[i], b[i]) != 0)
                        return false;
        }
        return true;
}

static const struct dm_rrset_row *dns_find_row(const struct dm_rrset_row *rows, size_t n,
                                               uint16_t type)
{
        for (size_t i = 0; i < n; i++) {
                if (rows[i].type == type)
                        return &rows[i];
        }
        return NULL;
}

static void dns_item_done(struct dm_dns_commit *it)
{
        for (size_t i = 0; i < it->nrows; i++) {
                free(it->rows[i].values);
                free(it->rows[i].error);
        }
        free(it->rows);
        for (size_t i = 0; i < it->nchanges; i++) {
                free(it->changes[i].before);
                free(it->changes[i].after);
                free(it->changes[i].added);
                free(it->changes[i].removed);
        }
        free(it->changes);
        memset(it, 0, sizeof(*it));
}

/* Row and, when the type's set really changed, a history entry for one non-error type.
 * `old` is the stored row, or NULL. */
static int dns_build_type(const struct dns_domain *d, const struct dns_rr *rr,
                          const struct dm_rrset_row *old, struct dm_rrset_row *row,
                          struct dm_change *ch, bool *ret_changed)
{
        char **before = NULL;
        size_t nbefore = 0;
        struct dm_rrset_delta delta = {0};
        int r = dm_rrset_values_to_json(rr->values, rr->nvalues, &row->values);
        if (r < 0)
                return r;
        row->status = rr->status;
        row->ttl = rr->ttl;

        /* A row that never held a successful answer (errors only so far) has no history
         * to compare with: its first real answer starts it, even an empty one. */
        bool first = !old || old->changed_at == 0 || !old->values;
        if (!first) {
                r = dm_rrset_values_from_json(old->values, &before, &nbefore);
                if (r == DM_EPARSE) {
                        first = true;
                        r = 0;
                } else if (r < 0) {
                        return r;
                } else {
                        dm_rrset_canonicalize(before, &nbefore);
                }
        }
        if (!first) {
                /* TTL is not compared: resolvers count it down. An ERROR row kept the set of
                 * its last answer and the store kept that answer's class: compare with both. */
                enum dm_rr_status was =
                    old->status == DM_RRS_ERROR ? old->answer_status : old->status;
                bool same =
                    dns_values_equal(before, nbefore, rr->values, rr->nvalues) && was == rr->status;
                if (same) {
                        row->changed_at = old->changed_at;
                        *ret_changed = false;
                        goto free_before;
                }
        }

        row->changed_at = d->observed_at;
        ch->domain_id = d->id;
        snprintf(ch->domain, sizeof(ch->domain), "%s", d->name);
        ch->type = rr->type;
        ch->status = rr->status;
        ch->observed_at = d->observed_at;
        ch->after = strdup(row->values);
        if (!ch->after) {
                r = DM_ENOMEM;
                goto free_before;
        }
        if (first) {
                ch->added = strdup(row->values);
                ch->removed = strdup("[]");
                if (!ch->added || !ch->removed)
                        r = DM_ENOMEM;
        } else {
                r = dm_rrset_diff(before, nbefore, rr->values, rr->nvalues, &delta);
                if (r == 0)
                        r = dm_rrset_values_to_json(before, nbefore, &ch->before);
                if (r == 0)
                        r = dm_rrset_values_to_json(delta.added, delta.nadded, &ch->added);
                if (r == 0)
                        r = dm_rrset_values_to_json(delta.removed, delta.nremoved, &ch->removed);
                dm_rrset_delta_done(&delta);
        }
        if (r == 0)
                *ret_changed = true;

free_before:
        dm_rrset_values_free(before, nbefore);
        return r;
}

/* Fills the commit item of a finished domain. Errors are store or memory failures; the
 * item is then emptied and the task must be retried. */
static int dns_build_item(struct dm_dns_service *svc, struct dns_domain *d,
                          struct dm_dns_commit *it)
{
        struct dm_rrset_row *old = NULL;
        size_t nold = 0;
        int r = 0;

        it->domain_id = d->id;
        it->checked_at = d->observed_at;
        memcpy(it->old_fp, d->task_fp, DM_FP_LEN);
        memcpy(it->new_fp, d->fp, DM_FP_LEN);
        it->status = d->has_error ? DM_CHECK_ERROR : DM_CHECK_OK;
        it->status_error = d->has_error ? d->status_error : NULL;
        if (memcmp(d->task_fp, d->fp, DM_FP_LEN) == 0)
                return 0;

        /* All-zero fingerprint: nothing stored yet, and with no error there is no old
         * value to keep either, so the read can be skipped (the first scan of many). */
        if (!dm_store_fp_is_zero(d->task_fp) || d->has_error) {
                r = dm_store_dns_current(svc->store, d->id, &old, &nold);
                if (r < 0)
                        return r;
        }
        it->rows = calloc(d->nrr, sizeof(*it->rows));
        it->changes = calloc(d->nrr, sizeof(*it->changes));
        if (!it->rows || !it->changes) {
                r = DM_ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < d->nrr; i++) {
                const struct dns_rr *rr = &d->rr[i];
                const struct dm_rrset_row *o = dns_find_row(old, nold, rr->type);
                struct dm_rrset_row *row = &it->rows[it->nrows++];
                row->type = rr->type;
                row->checked_at = d->observed_at;
                if (rr->status == DM_RRS_ERROR) {
                        /* A failed lookup is not "records removed": keep what was seen. */
                        row->status = DM_RRS_ERROR;
                        row->ttl = o ? o->ttl : 0;
                        row->values = strdup(o && o->values ? o->values : "[]");
                        row->error = strdup(dm_strerror(rr->err));
                        row->changed_at = o ? o->changed_at : 0;
                        if (!row->values || !row->error) {
                                r = DM_ENOMEM;
                                goto fail;
                        }
                        continue;
                }
                bool changed = false;
                r = dns_build_type(d, rr, o, row, &it->changes[it->nchanges], &changed);
                if (r < 0) {
                        it->nchanges++; /* so that its parts are freed */
                        goto fail;
                }
                if (changed)
                        it->nchanges++;
        }
        dm_rrset_rows_free(old, nold);
        return 0;

fail:
        dns_item_done(it);
        dm_rrset_rows_free(old, nold);
        return r;
}

/* The outbox body of a change, called by the store inside the commit's transaction. */
static char *dns_event_json(const struct dm_change *ch, void *arg)
{
        (void)arg;
        char tbuf[16], ts[DM_RFC3339_LEN];
        struct dm_buf b;
        dm_buf_init(&b, DNS_EVENT_MAX);
        int r = dm_buf_addf(&b, "{\"id\":%" PRId64 ",\"domain\":", ch->id);
        if (r == 0)
                r = dm_json_buf_add_string(&b, ch->domain);
        if (r == 0)
                r = dm_buf_addf(&b,
                                ",\"type\":\"%s\",\"status\":\"%s\",\"observed_at\":\"%s\","
                                "\"before\":%s,\"after\":%s,\"added\":%s,\"removed\":%s}",
                                dm_rrtype_name(ch->type, tbuf), dm_rr_status_name(ch->status),
                                dm_time_format(ch->observed_at, ts),
                                ch->before ? ch->before : "null", ch->after ? ch->after : "[]",
                                ch->added ? ch->added : "[]", ch->removed ? ch->removed : "[]");
        if (r < 0) {
                dm_buf_done(&b);
                return NULL;
        }
        return dm_buf_detach(&b);
}

static void dns_store_failed(struct dm_dns_service *svc, const char *what, int err)
{
        if (!atomic_exchange(&svc->store_down, true))
                dm_log_error(DNS_SVC,
                             "msg=\"store unavailable; results are retried and tasks stay "
                             "owed\" op=%s err=\"%s\"",
                             what, dm_strerror(err));
}

static void dns_store_ok(struct dm_dns_service *svc)
{
        if (atomic_exchange(&svc->store_down, false))
                dm_log_info(DNS_SVC, "msg=\"store reachable again\"");
}

static void dns_commit_batch(struct dm_dns_service *svc, struct dns_domain *list, size_t n)
{
        struct dm_dns_commit *items = calloc(n, sizeof(*items));
        struct dns_domain **ds = calloc(n, sizeof(*ds));
        size_t ni = 0;
        bool retry_later = false;

        if (!items || !ds) {
                /* Nothing can be written without memory: hand the tasks back. */
                while (list) {
                        struct dns_domain *next = list->next;
                        dns_dispose(svc, list, true);
                        list = next;
                }
                goto free_arrays;
        }
        while (list) {
                struct dns_domain *d = list;
                list = d->next;
                if (d->abandoned) {
                        dns_dispose(svc, d, true);
                        continue;
                }
                int r = dns_build_item(svc, d, &items[ni]);
                if (r < 0) {
                        dns_store_failed(svc, "dns_current", r);
                        retry_later = true;
                        dns_dispose(svc, d, true);
                        continue;
                }
                ds[ni++] = d;
        }
        if (ni == 0)
                goto wait;

        int r = dm_store_dns_commit(svc->store, items, ni, dns_event_json, svc);
        if (r < 0) {
                dns_store_failed(svc, "dns_commit", r);
                retry_later = true;
                /* A redelivered task would fail the same way at once: give the store a
                 * moment before the tasks come back. */
                dns_sleep(svc, DNS_RETRY_MS);
                for (size_t i = 0; i < ni; i++)
                        dns_dispose(svc, ds[i], true);
                goto free_items;
        }
        if (!retry_later)
                dns_store_ok(svc);
        uint64_t changes = 0;
        for (size_t i = 0; i < ni; i++) {
                const struct dm_dns_commit *it = &items[i];
                if (it->result == 0) {
                        if (memcmp(it->old_fp, it->new_fp, DM_FP_LEN) != 0)
                                changes += it->nchanges;
                } else if (it->result == DM_ECONFLICT) {
                        atomic_fetch_add_explicit(&svc->conflicts, 1, memory_order_relaxed);
                        dm_log_debug(DNS_SVC,
                                     "msg=\"result dropped: the domain was written by another "
                                     "scan first\" domain=%s",
                                     ds[i]->name);
                } else if (it->result == DM_ENOENT) {
                        dm_log_debug(DNS_SVC, "msg=\"result dropped: domain deleted\" domain=%s",
                                     ds[i]->name);
                } else {
                        dm_log_warn(DNS_SVC, "msg=\"result not written\" domain=%s err=\"%s\"",
                                    ds[i]->name, dm_strerror(it->result));
                }
                dns_dispose(svc, ds[i], false);
        }
        if (changes > 0) {
                atomic_fetch_add_explicit(&svc->changes, changes, memory_order_relaxed);
                dns_kick_outbox(svc);
        }

free_items:
        for (size_t i = 0; i < ni; i++)
                dns_item_done(&items[i]);
wait:
        if (retry_later && ni == 0)
                dns_sleep(svc, DNS_RETRY_MS);
free_arrays:
        free(items);
        free(ds);
}

static void *dns_commit_main(void *arg)
{
        struct dm_dns_service *svc = arg;
        for (;;) {
                pthread_mutex_lock(&svc->commit_mu);
                for (;;) {
                        if (svc->ndone >= DNS_COMMIT_MAX || svc->loops_finished)
                                break;
                        if (svc->ndone == 0) {
                                pthread_cond_wait(&svc->commit_cond, &svc->commit_mu);
                                continue;
                        }
                        int64_t wait = svc->done_since + DNS_COMMIT_MS - dm_mono_ms();
                        if (wait <= 0)
                                break;
                        dns_cond_wait_ms(&svc->commit_cond, &svc->commit_mu, wait);
                }
                if (svc->ndone == 0 && svc->loops_finished) {
                        pthread_mutex_unlock(&svc->commit_mu);
                        break;
                }
                struct dns_domain *list = svc->done_head, *last = NULL;
                size_t k = 0;
                for (struct dns_domain *d = list; d && k < DNS_COMMIT_MAX; d = d->next) {
                        last = d;
                        k++;
                }
                svc->done_head = last->next;
                if (!svc->done_head)
                        svc->done_tail = NULL;
                last->next = NULL;
                svc->ndone -= k;
                svc->done_since = dm_mono_ms();
                pthread_mutex_unlock(&svc->commit_mu);

                dns_commit_batch(svc, list, k);
        }
        return NULL;
}

/* ---- outbox ---- */

static void dns_outbox_flush(struct dm_dns_service *svc)
{
        for (;;) {
                struct dm_outbox_event *ev = NULL;
                size_t n = 0, np = 0;
                int r = dm_store_outbox_fetch(svc->store, DNS_OUTBOX_BATCH, &ev, &n);
                if (r < 0) {
                        dns_store_failed(svc, "outbox_fetch", r);
                        return;
                }
                if (n == 0)
                        return;
                int64_t *ids = malloc(n * sizeof(*ids));
                if (!ids) {
                        dm_outbox_events_free(ev, n);
                        return;
                }
                for (size_t i = 0; i < n; i++) {
                        r = dm_bus_publish(svc->bus, ev[i].routing_key, ev[i].body,
                                           strlen(ev[i].body));
                        if (r == DM_EINVAL) {
                                /* It can never be published: it must not block the rest. */
                                char q[64];
                                dm_log_warn(DNS_SVC,
                                            "msg=\"dropped an outbox event the bus refuses\" "
                                            "id=%" PRId64 " routing_key=%s",
                                            ev[i].id,
                                            dm_log_quote(q, sizeof(q), ev[i].routing_key));
                        } else if (r < 0) {
                                if (!atomic_exchange(&svc->outbox_down, true))
                                        dm_log_error(DNS_SVC,
                                                     "msg=\"cannot publish change events; they "
                                                     "wait in the outbox\" err=\"%s\"",
                                                     dm_strerror(r));
                                break;
                        } else if (atomic_exchange(&svc->outbox_down, false)) {
                                dm_log_info(DNS_SVC, "msg=\"publishing change events again\"");
                        }
                        ids[np++] = ev[i].id;
                }
                if (np > 0) {
                        r = dm_store_outbox_delete(svc->store, ids, np);
                        if (r < 0)
                                dns_store_failed(svc, "outbox_delete", r);
                }
                free(ids);
                dm_outbox_events_free(ev, n);
                if (r < 0 || np < n || n < DNS_OUTBOX_BATCH)
                        return;
        }
}

static void dns_stats_log(struct dm_dns_service *svc, bool final)
{
        int64_t now = dm_mono_ms();
        if (!final && now - svc->stats_at < DNS_STATS_MS)
                return;
        struct dns_totals t;
        dns_sum_loops(svc, &t);
        uint64_t domains = atomic_load(&svc->domains), changes = atomic_load(&svc->changes);
        pthread_mutex_lock(&svc->mu);
        int64_t outstanding = svc->outstanding;
        pthread_mutex_unlock(&svc->mu);
        dm_log_info(DNS_SVC,
                    "msg=\"%s\" domains=%" PRIu64 " lookups=%" PRIu64 " failures=%" PRIu64
                    " changes=%" PRIu64 " sent=%" PRIu64 " retransmits=%" PRIu64
                    " window=%d outstanding=%" PRId64 " seconds=%.1f",
                    final ? "scan stats (final)" : "scan stats", domains - svc->stats.domains,
                    t.lookups - svc->stats.lookups, t.failures - svc->stats.failures,
                    changes - svc->stats.changes, t.sent - svc->stats.sent,
                    t.retransmits - svc->stats.retransmits, t.window, outstanding,
                    (double)(now - svc->stats_at) / 1000.0);
        svc->stats_at = now;
        svc->stats = (struct dns_stats_mark){
            .domains = domains,
            .lookups = t.lookups,
            .failures = t.failures,
            .changes = changes,
            .sent = t.sent,
            .retransmits = t.retransmits,
        };
}

static void *dns_outbox_main(void *arg)
{
        struct dm_dns_service *svc = arg;
        for (;;) {
                pthread_mutex_lock(&svc->outbox_mu);
                if (!svc->outbox_kick && !svc->outbox_stop)
                        dns_cond_wait_ms(&svc->outbox_cond, &svc->outbox_mu, DNS_OUTBOX_MS);
                bool stop = svc->outbox_stop;
                svc->outbox_kick = false;
                pthread_mutex_unlock(&svc->outbox_mu);

                dns_outbox_flush(svc);
                if (stop)
                        break;
                if (svc->mode == DNS_MODE_SERVICE)
                        dns_stats_log(svc, false);
        }
        return NULL;
}

/* ---- scanner loops ---- */

static void dns_active_link(struct dns_loop *l, struct dns_domain *d)
{
        d->prev = NULL;
        d->next = l->active;
        if (l->active)
                l->active->prev = d;
        l->active = d;
}

static void dns_active_unlink(struct dns_loop *l, struct dns_domain *d)
{
        if (d->prev)
                d->prev->next = d->next;
        else
                l->active = d->next;
        if (d->next)
                d->next->prev = d->prev;
        d->next = d->prev = NULL;
}

static void dns_domain_finished(struct dns_loop *l, struct dns_domain *d)
{
        dns_active_unlink(l, d);
        d->observed_at = dm_now_ms();
        dns_domain_status(d);
        if (l->svc->mode != DNS_MODE_RESOLVE && dns_fingerprint(d) < 0)
                d->abandoned = true;
        atomic_fetch_sub_explicit(&l->load, 1, memory_order_relaxed);
        dns_hand_off(l->svc, d);
}

/* Presentation format is ASCII (RFC 1035 escapes the rest); anything else means a broken
 * answer, and storing it would not read back byte for byte. */
static bool dns_values_ascii(char *const *values, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++) {
                        if (*p > 0x7e)
                                return false;
                }
        }
        return true;
}

static void dns_on_answer(void *arg, const struct dm_dns_answer *a)
{
        struct dns_rr *rr = arg;
        struct dns_domain *d = rr->d;
        struct dns_loop *l = d->loop;

        rr->status = a->status;
        rr->err = a->status == DM_RRS_ERROR ? (a->err ? a->err : DM_EDNS) : 0;
        rr->ttl = a->ttl;
        if (a->status != DM_RRS_ERROR && a->nvalues > 0) {
                char **v = calloc(a->nvalues, sizeof(*v));
                size_t n = 0;
                if (v) {
                        for (; n < a->nvalues; n++) {
                                v[n] = strdup(a->values[n]);
                                if (!v[n])
                                        break;
                        }
                }
                if (!v || n < a->nvalues) {
                        dm_rrset_values_free(v, n);
                        rr->status = DM_RRS_ERROR;
                        rr->err = DM_ENOMEM;
                } else if (!dns_values_ascii(v, n)) {
                        dm_rrset_values_free(v, n);
                        rr->status = DM_RRS_ERROR;
                        rr->err = DM_EPARSE;
                } else {
                        dm_rrset_canonicalize(v, &n);
                        rr->values = v;
                        rr->nvalues = n;
                }
        }
        atomic_fetch_add_explicit(&l->lookups, 1, memory_order_relaxed);
        if (rr->status == DM_RRS_ERROR)
                atomic_fetch_add_explicit(&l->failures, 1, memory_order_relaxed);
        if (--d->pending == 0)
                dns_domain_finished(l, d);
}

static void dns_loop_start_domain(struct dns_loop *l, struct dns_domain *d)
{
        d->loop = l;
        dns_active_link(l, d);
        /* Callbacks only run from dm_resolver_run, so `pending` cannot reach zero under
         * our feet while the lookups are queued. */
        for (size_t i = 0; i < d->nrr; i++) {
                struct dns_rr *rr = &d->rr[i];
                int r = dm_resolver_query(l->resolver, d->name, rr->type, dns_on_answer, rr);
                if (r < 0) {
                        rr->status = DM_RRS_ERROR;
                        rr->err = r;
                        atomic_fetch_add_explicit(&l->lookups, 1, memory_order_relaxed);
                        atomic_fetch_add_explicit(&l->failures, 1, memory_order_relaxed);
                        d->pending--;
                }
        }
        if (d->pending == 0)
                dns_domain_finished(l, d);
}

static void dns_loop_take_intake(struct dns_loop *l)
{
        pthread_mutex_lock(&l->mu);
        struct dns_domain *list = l->intake_head;
        l->intake_head = l->intake_tail = NULL;
        pthread_mutex_unlock(&l->mu);
        while (list) {
                struct dns_domain *d = list;
                list = d->next;
                dns_loop_start_domain(l, d);
        }
}

/* Stop's deadline passed: what is still in flight is handed back unfinished. */
static void dns_loop_abandon(struct dns_loop *l)
{
        dm_resolver_free(l->resolver); /* no callback runs after this */
        l->resolver = NULL;
        while (l->active) {
                struct dns_domain *d = l->active;
                dns_active_unlink(l, d);
                d->abandoned = true;
                atomic_fetch_sub_explicit(&l->load, 1, memory_order_relaxed);
                dns_hand_off(l->svc, d);
        }
}

/* The resolver belongs to the loop thread: others read these copies. */
static void dns_loop_stats(struct dns_loop *l)
{
        if (!l->resolver)
                return;
        struct dm_resolver_stats st;
        dm_resolver_get_stats(l->resolver, &st);
        atomic_store(&l->window, st.window);
        atomic_store(&l->sent, st.sent);
        atomic_store(&l->retransmits, st.retransmits);
}

static void *dns_loop_main(void *arg)
{
        struct dns_loop *l = arg;
        struct dm_dns_service *svc = l->svc;
        int64_t stats_at = 0;
        bool run_failed = false;

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

                struct pollfd pfd[2] = {
                    {.fd = l->efd, .events = POLLIN},
                    {.fd = dm_resolver_fd(l->resolver), .events = POLLIN},
                };
                int timeout = l->active ? DNS_POLL_BUSY_MS : DNS_POLL_IDLE_MS;
                if (poll(pfd, 2, timeout) > 0 && (pfd[0].revents & POLLIN)) {
                        uint64_t v;
                        ssize_t rd = read(l->efd, &v, sizeof(v));
                        (void)rd;
                }
                int r = dm_resolver_run(l->resolver, 0);
                if (r < 0 && !run_failed) {
                        run_failed = true;
                        dm_log_error(DNS_SVC, "msg=\"resolver loop error\" loop=%zu err=\"%s\"",
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

/* The least loaded loop takes the domain. */
static void dns_dispatch(struct dm_dns_service *svc, struct dns_domain *d)
{
        struct dns_loop *best = &svc->loops[0];
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
static int dns_parse_tasks(const void *body, size_t len, struct dns_domain **ret_domains,
                           size_t *ret_n, char *why, size_t whylen)
{
        struct dm_scan_task *tasks = NULL;
        size_t n = 0, i;
        int r = dm_scan_tasks_decode(body, len, why, whylen, &tasks, &n);
        if (r < 0)
                return r;
        for (i = 0; i < n; i++) {
                ret_domains[i] =
                    dns_domain_new(tasks[i].domain_id, tasks[i].name, tasks[i].record_types,
                                   tasks[i].nrecord_types, tasks[i].dns_fp);
                if (!ret_domains[i]) {
                        r = DM_ENOMEM;
                        goto free_domains;
                }
        }
        free(tasks);
        *ret_n = n;
        return 0;

free_domains:
        while (i-- > 0)
                dns_domain_free(ret_domains[i]);
        free(tasks);
        return r;
}

/* Bus handler: runs on the bus's thread, so it only parses and hands over. */
static void dns_on_task(void *arg, const struct dm_bus_msg *m)
{
        struct dm_dns_service *svc = arg;
        struct dns_domain *ds[DM_TASKS_PER_MSG_MAX];
        size_t n = 0;
        char why[256];

        if (atomic_load(&svc->draining)) {
                dm_bus_nack(svc->bus, m->tag, true);
                return;
        }
        int r = dns_parse_tasks(m->body, m->len, ds, &n, why, sizeof(why));
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
                        dm_log_warn(DNS_SVC, "msg=\"rejected a malformed scan task\" why=%s",
                                    dm_log_quote(q, sizeof(q), why));
                }
                dm_bus_nack(svc->bus, m->tag, false);
                dns_finish(svc, 0, 1);
                return;
        }
        struct dns_msg *msg = calloc(1, sizeof(*msg));
        if (!msg) {
                for (size_t i = 0; i < n; i++)
                        dns_domain_free(ds[i]);
                dm_bus_nack(svc->bus, m->tag, true);
                return;
        }
        msg->tag = m->tag;
        msg->ndomains = n;
        msg->remaining = n;
        for (size_t i = 0; i < n; i++) {
                ds[i]->msg = msg;
                dns_dispatch(svc, ds[i]);
        }
}

/* ---- scheduler ---- */

/* Publishes claimed tasks, retrying while the bus refuses. On stop, the unpublished ones
 * are made due again so that the claim does not push them to their next slot. */
static void dns_publish_tasks(struct dm_dns_service *svc, const struct dm_scan_task *t, size_t n,
                              struct dm_buf *b)
{
        int r = dm_scan_tasks_encode(t, n, b);
        while (r == 0) {
                r = dm_bus_publish(svc->bus, svc->task_key, b->data, b->len);
                if (r == 0) {
                        if (atomic_exchange(&svc->bus_down, false))
                                dm_log_info(DNS_SVC, "msg=\"publishing scan tasks again\"");
                        return;
                }
                if (!atomic_exchange(&svc->bus_down, true))
                        dm_log_error(DNS_SVC,
                                     "msg=\"cannot publish scan tasks; retrying\" err=\"%s\"",
                                     dm_strerror(r));
                if (atomic_load(&svc->stopping))
                        break;
                dns_sleep(svc, DNS_IDLE_MS);
                r = 0;
        }
        int64_t now = dm_now_ms();
        for (size_t i = 0; i < n; i++)
                dm_store_domain_request_scan(svc->store, t[i].name, now);
        dns_finish(svc, n, 1);
}

static void *dns_scheduler_main(void *arg)
{
        struct dm_dns_service *svc = arg;
        const struct dm_conf *conf = &svc->app->conf;
        struct dm_scan_task *tasks = calloc(svc->claim_max, sizeof(*tasks));
        struct dm_buf b;
        dm_buf_init(&b, DM_TASK_MSG_MAX);
        if (!tasks) {
                dm_log_error(DNS_SVC, "msg=\"scheduler out of memory\"");
                goto out;
        }

        while (!atomic_load(&svc->stopping)) {
                pthread_mutex_lock(&svc->mu);
                while (!atomic_load(&svc->stopping) &&
                       (svc->outstanding >= (int64_t)svc->max_outstanding ||
                        svc->outstanding_msgs >= (int64_t)svc->prefetch))
                        dns_cond_wait_ms(&svc->cond, &svc->mu, DNS_OUTBOX_MS);
                int64_t room = (int64_t)svc->max_outstanding - svc->outstanding;
                /* Each message holds up to DNS_TASKS_PER_MSG: this many cannot make more
                 * messages than the prefetch has room for. */
                int64_t msg_room =
                    ((int64_t)svc->prefetch - svc->outstanding_msgs) * DNS_TASKS_PER_MSG;
                if (msg_room < room)
                        room = msg_room;
                pthread_mutex_unlock(&svc->mu);
                if (atomic_load(&svc->stopping))
                        break;

                struct dm_claim_opts opts = {
                    .now = svc->mode == DNS_MODE_SCAN ? svc->scan_now : dm_now_ms(),
                    .limit = room < (int64_t)svc->claim_max ? (size_t)room : svc->claim_max,
                    .default_interval_ms = conf->scan_interval_ms,
                    .min_interval_ms = conf->min_interval_ms,
                };
                size_t n = 0;
                int r = dm_store_claim_due(svc->store, &opts, tasks, &n);
                if (r < 0) {
                        dns_store_failed(svc, "claim_due", r);
                        dns_sleep(svc, DNS_RETRY_MS);
                        continue;
                }
                dns_store_ok(svc);
                if (n > 0) {
                        pthread_mutex_lock(&svc->mu);
                        svc->outstanding += (int64_t)n;
                        svc->outstanding_msgs +=
                            (int64_t)((n + DNS_TASKS_PER_MSG - 1) / DNS_TASKS_PER_MSG);
                        pthread_mutex_unlock(&svc->mu);
                        for (size_t i = 0; i < n; i += DNS_TASKS_PER_MSG) {
                                size_t k = n - i < DNS_TASKS_PER_MSG ? n - i : DNS_TASKS_PER_MSG;
                                dns_publish_tasks(svc, tasks + i, k, &b);
                        }
                }
                if (n == opts.limit)
                        continue; /* a full batch: more may be due right now */
                if (svc->mode == DNS_MODE_SCAN)
                        break; /* one pass: everything due at the start is claimed */
                dns_sleep(svc, DNS_IDLE_MS);
        }

out:
        /* Whatever ended the loop, the scan driver must not wait for more claims. */
        pthread_mutex_lock(&svc->mu);
        svc->sched_done = true;
        pthread_cond_broadcast(&svc->cond);
        pthread_mutex_unlock(&svc->mu);
        dm_buf_done(&b);
        free(tasks);
        return NULL;
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
                        dm_log_error(DNS_SVC, "msg=\"bad DM_DNS_SERVERS\" err=\"%s\"", err);
                        return DM_ECONFIG;
                }
                snprintf(servers, size, "%s", conf->dns_servers);
        } else {
                int r = dm_resolver_servers_from_resolv_conf("/etc/resolv.conf", o);
                if (r < 0 || o->nservers == 0) {
                        dm_log_error(DNS_SVC, "msg=\"no DNS servers: set DM_DNS_SERVERS or "
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

static void dns_service_free(struct dm_dns_service *svc)
{
        if (!svc)
                return;
        for (size_t i = 0; svc->loops && i < svc->nloops; i++) {
                struct dns_loop *l = &svc->loops[i];
                dm_resolver_free(l->resolver);
                if (l->efd >= 0)
                        close(l->efd);
                while (l->intake_head) {
                        struct dns_domain *d = l->intake_head;
                        l->intake_head = d->next;
                        dns_domain_free(d);
                }
                pthread_mutex_destroy(&l->mu);
        }
        free(svc->loops);
        pthread_mutex_destroy(&svc->mu);
        pthread_cond_destroy(&svc->cond);
        pthread_mutex_destroy(&svc->commit_mu);
        pthread_cond_destroy(&svc->commit_cond);
        pthread_mutex_destroy(&svc->outbox_mu);
        pthread_cond_destroy(&svc->outbox_cond);
        free(svc);
}

/* Stops in dependency order: no new claims, no new deliveries, lookups in flight finish
 * (or are abandoned after DNS_DRAIN_MS), results are committed and their messages settled,
 * the outbox is flushed one last time. */
static void dns_service_stop(struct dm_dns_service *svc)
{
        pthread_mutex_lock(&svc->mu);
        atomic_store(&svc->stopping, true);
        pthread_cond_broadcast(&svc->cond);
        pthread_mutex_unlock(&svc->mu);
        if (svc->scheduler_started)
                pthread_join(svc->scheduler, NULL);
        if (svc->consuming)
                dm_bus_cancel(svc->bus, svc->queue, dns_on_task, svc);

        atomic_store(&svc->drain_deadline, dm_mono_ms() + DNS_DRAIN_MS);
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

        pthread_mutex_lock(&svc->outbox_mu);
        svc->outbox_stop = true;
        pthread_cond_signal(&svc->outbox_cond);
        pthread_mutex_unlock(&svc->outbox_mu);
        if (svc->outbox_started)
                pthread_join(svc->outbox, NULL);
}

static int dns_start_thread(pthread_t *t, void *(*fn)(void *), void *arg, const char *name)
{
        if (pthread_create(t, NULL, fn, arg) != 0)
                return DM_EAGAIN;
        pthread_setname_np(*t, name);
        return 0;
}

static int dns_service_start(struct dm_app *app, enum dns_mode mode,
                             struct dm_dns_service **ret_service)
{
        const struct dm_conf *conf = &app->conf;
        char servers[256];
        int r;

        struct dm_dns_service *svc = calloc(1, sizeof(*svc));
        if (!svc)
                return DM_ENOMEM;
        svc->app = app;
        svc->store = app->store;
        svc->bus = app->bus;
        svc->mode = mode;
        svc->queue = mode == DNS_MODE_SERVICE ? DNS_TASK_QUEUE : DNS_CLI_QUEUE;
        svc->task_key = mode == DNS_MODE_SERVICE ? DNS_TASK_KEY : DNS_CLI_KEY;
        svc->started_mono = dm_mono_ms();
        svc->stats_at = svc->started_mono;
        pthread_mutex_init(&svc->mu, NULL);
        dns_cond_init(&svc->cond);
        pthread_mutex_init(&svc->commit_mu, NULL);
        dns_cond_init(&svc->commit_cond);
        pthread_mutex_init(&svc->outbox_mu, NULL);
        dns_cond_init(&svc->outbox_cond);

        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        int64_t nloops = conf->dns_loops > 0 ? conf->dns_loops : (cores > 0 ? cores : 1);
        svc->nloops = (size_t)(nloops > DNS_LOOPS_MAX ? DNS_LOOPS_MAX : nloops);
        int64_t outstanding = DNS_OUTSTANDING_PER_SLOT * conf->dns_concurrency * nloops;
        if (outstanding < DNS_OUTSTANDING_MIN)
                outstanding = DNS_OUTSTANDING_MIN;
        if (outstanding > DNS_OUTSTANDING_MAX)
                outstanding = DNS_OUTSTANDING_MAX;
        svc->max_outstanding = (size_t)outstanding;
        svc->claim_max =
            conf->scan_batch < outstanding ? (size_t)conf->scan_batch : (size_t)outstanding;
        if (svc->claim_max == 0)
                svc->claim_max = 1;
        /* Enough messages in hand to fill the loops while earlier ones wait for commit. */
        size_t prefetch = 2 * svc->max_outstanding / DNS_TASKS_PER_MSG;
        svc->prefetch = (unsigned)(prefetch < 4 ? 4 : prefetch > 65535 ? 65535 : prefetch);

        r = dns_resolver_opts(conf, svc->nloops, &svc->ropts, servers, sizeof(servers));
        if (r < 0)
                goto fail;
        svc->loops = calloc(svc->nloops, sizeof(*svc->loops));
        if (!svc->loops) {
                r = DM_ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < svc->nloops; i++) {
                struct dns_loop *l = &svc->loops[i];
                l->svc = svc;
                l->index = i;
                l->efd = -1;
                pthread_mutex_init(&l->mu, NULL);
        }
        for (size_t i = 0; i < svc->nloops; i++) {
                struct dns_loop *l = &svc->loops[i];
                l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
                if (l->efd < 0) {
                        r = DM_EIO;
                        goto fail;
                }
                r = dm_resolver_new(&svc->ropts, &l->resolver);
                if (r < 0) {
                        dm_log_error(DNS_SVC, "msg=\"cannot create a resolver\" err=\"%s\"",
                                     dm_strerror(r));
                        goto fail;
                }
        }

        if (mode != DNS_MODE_RESOLVE) {
                r = dm_bus_declare(svc->bus, svc->queue, svc->task_key);
                if (r < 0) {
                        dm_log_error(DNS_SVC, "msg=\"cannot declare the task queue\" err=\"%s\"",
                                     dm_strerror(r));
                        goto fail;
                }
                r = dns_start_thread(&svc->committer, dns_commit_main, svc, "dns-commit");
                if (r < 0)
                        goto fail_stop;
                svc->committer_started = true;
                r = dns_start_thread(&svc->outbox, dns_outbox_main, svc, "dns-outbox");
                if (r < 0)
                        goto fail_stop;
                svc->outbox_started = true;
        }
        for (size_t i = 0; i < svc->nloops; i++) {
                char tname[16];
                snprintf(tname, sizeof(tname), "dns-loop-%u", (unsigned)(i % DNS_LOOPS_MAX));
                r = dns_start_thread(&svc->loops[i].thread, dns_loop_main, &svc->loops[i], tname);
                if (r < 0)
                        goto fail_stop;
                svc->loops[i].started = true;
        }
        if (mode != DNS_MODE_RESOLVE) {
                r = dm_bus_consume(svc->bus, svc->queue, svc->prefetch, dns_on_task, svc);
                if (r < 0) {
                        dm_log_error(DNS_SVC, "msg=\"cannot consume the task queue\" err=\"%s\"",
                                     dm_strerror(r));
                        goto fail_stop;
                }
                svc->consuming = true;
                svc->scan_now = dm_now_ms();
                r = dns_start_thread(&svc->scheduler, dns_scheduler_main, svc, "dns-sched");
                if (r < 0)
                        goto fail_stop;
                svc->scheduler_started = true;
        }

        char q[300];
        dm_log_info(DNS_SVC,
                    "msg=\"dns %s started\" loops=%zu servers=%s concurrency=%" PRId64
                    " timeout_ms=%" PRId64 " retries=%" PRId64 " qps=%" PRId64
                    " max_outstanding=%zu prefetch=%u queue=%s",
                    mode == DNS_MODE_SERVICE ? "service" : "scan", svc->nloops,
                    dm_log_quote(q, sizeof(q), servers), conf->dns_concurrency,
                    conf->dns_timeout_ms, conf->dns_retries, conf->dns_qps, svc->max_outstanding,
                    svc->prefetch, mode == DNS_MODE_RESOLVE ? "none" : svc->queue);
        *ret_service = svc;
        return 0;

fail_stop:
        if (r == DM_EAGAIN)
                dm_log_error(DNS_SVC, "msg=\"cannot start a thread\"");
        dns_service_stop(svc);
fail:
        dns_service_free(svc);
        return r;
}

int dm_dns_service_start(struct dm_app *app, struct dm_dns_service **ret_service)
{
        if (!app || !app->store || !app->bus || !ret_service)
                return DM_EINVAL;
        return dns_service_start(app, DNS_MODE_SERVICE, ret_service);
}

void dm_dns_service_stop(struct dm_dns_service *s)
{
        if (!s)
                return;
        dns_service_stop(s);
        dns_stats_log(s, true);
        dns_service_free(s);
}

/* ---- domainmon scan ---- */

/* --resolve-only: every enabled domain straight to the loops, nothing stored. */
static int dns_feed_all(struct dm_dns_service *svc)
{
        struct dm_domain *page = calloc(DNS_PAGE, sizeof(*page));
        char after[DM_NAME_MAX + 1] = "";
        int r = 0;
        if (!page)
                return DM_ENOMEM;
        for (;;) {
                struct dm_domain_query q = {.after = after[0] ? after : NULL, .limit = DNS_PAGE};
                size_t n = 0;
                r = dm_store_domain_list(svc->store, &q, page, &n);
                if (r < 0)
                        break;
                for (size_t i = 0; i < n; i++) {
                        if (!page[i].enabled)
                                continue;
                        pthread_mutex_lock(&svc->mu);
                        while (svc->outstanding >= (int64_t)svc->max_outstanding)
                                dns_cond_wait_ms(&svc->cond, &svc->mu, DNS_OUTBOX_MS);
                        svc->outstanding++;
                        pthread_mutex_unlock(&svc->mu);
                        struct dns_domain *d =
                            dns_domain_new(page[i].id, page[i].name, page[i].record_types,
                                           page[i].nrecord_types, NULL);
                        if (!d) {
                                dns_finish(svc, 1, 0);
                                r = DM_ENOMEM;
                                goto out;
                        }
                        dns_dispatch(svc, d);
                }
                if (n < DNS_PAGE)
                        break;
                snprintf(after, sizeof(after), "%s", page[n - 1].name);
        }
out:
        free(page);
        return r;
}

int dm_cmd_scan(struct dm_app *app, int argc, char **argv)
{
        bool resolve_only = false;
        struct dm_dns_service *svc = NULL;
        size_t due = 0;
        int r;

        for (int i = 0; i < argc; i++) {
                if (strcmp(argv[i], "--resolve-only") == 0) {
                        resolve_only = true;
                } else {
                        fprintf(stderr,
                                "domainmon scan: unknown option '%s' (only --resolve-only)\n",
                                argv[i]);
                        return 2;
                }
        }
        if (!app || !app->store || !app->bus)
                return 1;

        int64_t t0 = dm_mono_ms();
        if (!resolve_only) {
                r = dm_store_domain_request_scan_all(app->store, dm_now_ms(), &due);
                if (r < 0) {
                        fprintf(stderr, "domainmon scan: cannot make the domains due: %s\n",
                                dm_strerror(r));
                        return 1;
                }
        }
        int64_t t1 = dm_mono_ms();
        if (!resolve_only)
                dm_log_info(DNS_SVC, "msg=\"made every enabled domain due\" domains=%zu", due);
        r = dns_service_start(app, resolve_only ? DNS_MODE_RESOLVE : DNS_MODE_SCAN, &svc);
        if (r < 0) {
                fprintf(stderr, "domainmon scan: cannot start the scanners: %s\n", dm_strerror(r));
                return 1;
        }
        if (resolve_only) {
                r = dns_feed_all(svc);
                if (r < 0)
                        fprintf(stderr, "domainmon scan: cannot list the domains: %s\n",
                                dm_strerror(r));
                pthread_mutex_lock(&svc->mu);
                svc->sched_done = true;
                pthread_mutex_unlock(&svc->mu);
        }
        pthread_mutex_lock(&svc->mu);
        while (!svc->sched_done || svc->outstanding > 0)
                dns_cond_wait_ms(&svc->cond, &svc->mu, DNS_OUTBOX_MS);
        pthread_mutex_unlock(&svc->mu);
        int64_t t2 = dm_mono_ms();

        dns_service_stop(svc);
        dns_stats_log(svc, true);
        struct dns_totals t;
        dns_sum_loops(svc, &t);
        uint64_t lookups = t.lookups, failures = t.failures;
        uint64_t domains = atomic_load(&svc->domains), changes = atomic_load(&svc->changes);
        dns_service_free(svc);

        struct rusage ru;
        long peak_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
        double secs = (double)(t2 - t1) / 1000.0;
        printf("domains=%" PRIu64 " lookups=%" PRIu64 " failed=%" PRIu64
               " seconds=%.2f lookups_per_s=%.0f changes=%" PRIu64
               " peak_rss_mb=%ld prepare_seconds=%.2f\n",
               domains, lookups, failures, secs, secs > 0 ? (double)lookups / secs : 0.0, changes,
               peak_kb / 1024, (double)(t1 - t0) / 1000.0);
        fflush(stdout);
        return r < 0 ? 1 : 0;
}
