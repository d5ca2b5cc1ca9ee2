/* The DNS service's parts, one file per job, and what they share. Only src/domainmon/dns_*.c
 * and cmd_scan.c include this header; docs/internals/dns-service.md tells the whole story.
 *
 *   dns_service.c    start and stop in dependency order, shared helpers, the stats line
 *   dns_scheduler.c  claims due domains, publishes task messages; hands back what was
 *                    published and never consumed when the service stops
 *   dns_scanner.c    task handler (parse, validate, hand to a loop) and the resolver loops
 *   dns_commit.c     finished scans -> lib/dns/change.c -> one dns_commit per batch ->
 *                    settle the task messages; backs off while the store fails
 *   dns_retention.c  deletes history older than DM_HISTORY_RETENTION, in small batches
 *   dns_registration.c  registration checks (RDAP, WHOIS): claim, look up, commit
 *   cmd_scan.c       `domainmon scan`: one pass through the same parts
 *
 * Threads: dns-sched, the bus's delivery thread (handler), dns-loop-N, dns-commit,
 * dns-retain. Change events leave through the process's outbox relay (app->relay, held
 * while the service runs). Each struct field says which lock or thread guards it. */
#ifndef DM_DNS_INT_H
#define DM_DNS_INT_H

#include "app.h"

#include "dm/change.h"
#include "dm/resolver.h"
#include "dm/rrset.h"
#include "dm/task.h"
#include "dm/tls.h"

#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DM_DNS_SVC "dns"

/* The service's queue, and a separate one for `domainmon scan` so that a one-off scan never
 * hands its tasks to (or takes them from) dns-service processes sharing the broker. */
#define DM_DNS_TASK_QUEUE "dns.scan"
#define DM_DNS_TASK_KEY "task.dns"
#define DM_DNS_TASK_DEAD "dns.scan.dead"
#define DM_DNS_CLI_QUEUE "dns.scan.cli"
#define DM_DNS_CLI_KEY "task.dns.cli"
#define DM_DNS_CLI_DEAD "dns.scan.cli.dead"
/* Task queues are work queues: a task put back this many times (nacked at a stop, or held
 * by scanners that crashed or lost the broker) goes to the dead-letter queue instead of
 * being delivered again, and so does a malformed one, at once. */
#define DM_DNS_DELIVERY_LIMIT 5

#define DM_DNS_TASKS_PER_MSG 64 /* domains per task message we publish */
/* Bytes of one change event: four sets of at most DM_RRSET_JSON_MAX and the rest. */
#define DM_DNS_EVENT_MAX (4 * DM_RRSET_JSON_MAX + 4096)

#define DM_DNS_IDLE_MS 200          /* scheduler pause when nothing more is due */
#define DM_DNS_RETRY_MS 1000        /* pause after a failed claim or publish */
#define DM_DNS_BACKOFF_MIN_MS 500   /* first pause before a failed commit is tried again */
#define DM_DNS_BACKOFF_MAX_MS 30000 /* the pause doubles up to this */
#define DM_DNS_COMMIT_MAX 2000      /* results per dns_commit */
#define DM_DNS_COMMIT_MS 100        /* longest a finished result waits for its batch */
#define DM_DNS_ROOM_WAIT_MS 1000    /* scheduler's look while it may not claim */
#define DM_DNS_DEPTH_POLL_MS 50     /* scheduler's look at a full task queue */
#define DM_DNS_STATS_MS 60000       /* stats log line */
#define DM_DNS_DRAIN_MS 2000        /* how long stop waits for lookups in flight */
#define DM_DNS_POLL_BUSY_MS 10      /* loop wake-up while lookups are in flight */
#define DM_DNS_POLL_IDLE_MS 250     /* loop wake-up when idle */
#define DM_DNS_LOOPS_MAX 64
#define DM_DNS_PAGE 1000 /* domains per dm_store_domain_list page */
/* TLS probes in flight per loop: each holds a socket and a TLS state (about 50 KB), so the
 * cap bounds memory and descriptors; domains past it wait their turn in the loop. */
#define DM_DNS_TLS_INFLIGHT 256
/* History retention: entries per transaction, the pause between two, and between rounds. */
#define DM_DNS_PRUNE_BATCH 1000
#define DM_DNS_PRUNE_PAUSE_MS 100
#define DM_DNS_PRUNE_ROUND_MS 600000
/* Domains published but not finished, per loop and unit of concurrency: enough to keep
 * every window full while results wait for their commit, small enough that a burst of a
 * million due domains stays in the database rather than in memory. */
#define DM_DNS_OUTSTANDING_PER_SLOT 4
#define DM_DNS_OUTSTANDING_MIN 8192
#define DM_DNS_OUTSTANDING_MAX 32768

enum dm_dns_mode {
        DM_DNS_MODE_SERVICE, /* dns-service / all: runs until stopped */
        DM_DNS_MODE_SCAN,    /* domainmon scan: one pass over what is due */
        DM_DNS_MODE_RESOLVE, /* domainmon scan --resolve-only: lookups only */
};

/* One task message: acked once every domain in it is written, nacked (requeued) if any
 * could not be. Touched by the committer thread only once the handler has handed it over
 * (and by the stopping thread once the committer is gone). */
struct dm_dns_msg {
        uint64_t tag;
        size_t ndomains;
        size_t remaining;
        bool requeue;
};

struct dm_dns_loop;
struct dm_dns_scan;

/* A resolver callback's argument: which type of which domain answered. */
struct dm_dns_lookup {
        struct dm_dns_scan *scan;
        struct dm_change_rr *rr;
};

/* One domain being scanned, from its task to its commit. */
struct dm_dns_scan {
        struct dm_dns_scan *next, *prev; /* intake, active, held or done list */
        struct dm_dns_msg *msg;          /* NULL with --resolve-only */
        struct dm_dns_loop *loop;
        int64_t id;
        int64_t observed_at;
        struct timespec started; /* first lookup sent: the scan duration metric */
        /* Set by the committer: the domain's status entered or left `error` with this
         * result (dm_change_status_move). */
        enum dm_change_move move;
        bool abandoned;  /* not finished: stays due, its message is requeued */
        unsigned checks; /* DM_CHECKS_* bits, resolved (never 0): without DNS nothing is
                            looked up or written for DNS */
        /* The TLS check (checks with DM_CHECKS_TLS): rr[nrr..nrr+naddr) are the A and AAAA
         * lookups the DNS check does not make itself; once every lookup is in, one probe
         * per endpoint dm_tls_plan names. Loop thread only until handed off. */
        size_t naddr;
        uint16_t tls_ports[DM_TLS_PORTS_MAX];
        size_t ntls_ports;
        uint8_t tls_task_fp[DM_FP_LEN];
        uint8_t tls_fp[DM_FP_LEN];
        bool tls_skip;             /* an address lookup failed: nothing of TLS written */
        struct dm_tls_result *tls; /* ntls planned endpoints, then their results */
        size_t ntls, tls_next, tls_pending;
        int64_t tls_observed_at;
        struct dm_dns_scan *tls_wait_next; /* the loop's queue of scans waiting for slots */
        size_t pending;                    /* lookups not answered yet */
        uint8_t task_fp[DM_FP_LEN];
        uint8_t fp[DM_FP_LEN];
        char name[DM_NAME_MAX + 1];
        size_t nrr;
        struct dm_change_rr *rr;       /* nrr, ascending type order, as the fingerprint needs */
        struct dm_dns_lookup *lookups; /* nrr */
};

struct dm_dns_loop {
        struct dm_dns_service *svc;
        size_t index;
        pthread_t thread;
        bool started;
        struct dm_resolver *resolver; /* the loop thread's alone once started */
        int efd;                      /* wakes the loop for new intake */
        pthread_mutex_t mu;
        struct dm_dns_scan *intake_head, *intake_tail; /* under mu */
        atomic_size_t load;                            /* domains handed over, not finished */
        struct dm_dns_scan *active;                    /* loop thread only */
        atomic_uint_fast64_t lookups, failures;
        atomic_uint_fast64_t sent, retransmits; /* copied from the resolver's stats */
        atomic_int window;
        atomic_int servers_down;
        uint32_t down_mask, no_edns_mask, no_case_mask; /* loop thread only: last logged */
        /* TLS probes in flight and the scans waiting for a free slot: loop thread only. */
        struct dm_dns_probe {
                struct dm_tls_probe *probe;
                struct dm_dns_scan *scan;
                size_t index; /* into scan->tls */
        } * probes;
        size_t nprobes;
        struct dm_dns_scan *tls_wait_head, *tls_wait_tail;
        atomic_uint_fast64_t probes_done, probe_errors;
};

struct dm_dns_service {
        struct dm_app *app;
        struct dm_store *store;
        struct dm_bus *bus;
        enum dm_dns_mode mode;
        const char *queue, *task_key, *dead_queue;
        int64_t scan_now; /* DM_DNS_MODE_SCAN: claims as of this instant only */

        struct dm_resolver_opts ropts;
        struct ssl_ctx_st *tls_ctx; /* shared by the loops' probes; NULL with --resolve-only */
        size_t nloops;
        struct dm_dns_loop *loops;
        size_t max_outstanding;
        /* Task messages the queue may hold ready (waiting for a consumer) before the
         * scheduler stops claiming: max_outstanding domains in full messages. */
        size_t max_ready_msgs;
        size_t claim_max;
        unsigned prefetch;
        bool consuming;

        atomic_bool stopping; /* scheduler and retries give up */
        atomic_bool draining; /* loops finish what they hold, then exit */
        atomic_int_fast64_t drain_deadline;
        /* The store fails to take results: the committer keeps them and tries again later;
         * meanwhile the scheduler claims nothing and delivered tasks wait in `held` instead
         * of being resolved. */
        atomic_bool paused;

        /* Scheduler state, the outstanding count and the held tasks; cond also wakes
         * interruptible sleeps and the scan driver. */
        pthread_mutex_t mu;
        pthread_cond_t cond;
        /* Domains this process published and not finished, and those `domainmon scan`
         * waits for. With several processes it drifts (one claims, another finishes), so
         * the scheduler bounds itself by it only while the queue depth cannot be read. */
        int64_t outstanding; /* may dip below 0 when another process published the task */
        /* Task messages published and not settled, kept within the prefetch: a claim of
         * few domains makes a small message. */
        int64_t outstanding_msgs;
        struct dm_dns_scan *held_head, *held_tail; /* delivered while paused */
        bool sched_done;
        pthread_t scheduler;
        bool scheduler_started;

        /* Finished domains waiting for the committer. */
        pthread_mutex_t commit_mu;
        pthread_cond_t commit_cond;
        struct dm_dns_scan *done_head, *done_tail;
        size_t ndone;
        int64_t done_since; /* mono ms the oldest waiting result arrived */
        bool loops_finished;
        pthread_t committer;
        bool committer_started;

        bool relay_held; /* app->relay held for the change events */

        pthread_t retention;
        bool retention_started;

        /* Registration checks (dns_registration.c): DM_REGISTRATION_WORKERS threads, each
         * claiming one due domain at a time. The bootstrap is swapped under reg_lock when
         * its file changes. */
        struct dm_dns_reg *reg;

        atomic_uint_fast64_t domains, changes, conflicts, rejected;
        /* Report a failing dependency once, and its recovery once. */
        atomic_bool store_down, bus_down;
        bool depth_down;  /* scheduler thread: the queue depth could not be read */
        int64_t stats_at; /* the stats line: scheduler thread, or the stopping one after it */
        struct dm_dns_stats_mark {
                uint64_t domains, lookups, failures, changes, sent, retransmits, tls_probes,
                    tls_errors;
        } stats; /* totals at the last stats line */
        int64_t started_mono;
        /* Metrics series, NULL when the process keeps none (dm_metric_* take NULL). */
        struct dm_metric_series *m_scan_ok, *m_scan_error, *m_scan_seconds;
        struct dm_metric_series *m_inflight, *m_depth, *m_redelivered;
        struct dm_metric *m_changes;
};

struct dm_dns_totals {
        uint64_t lookups, failures, sent, retransmits, tls_probes, tls_errors;
        int window;
};

/* ---- dns_service.c: lifecycle and shared helpers ---- */

/* Starts every part `mode` needs; stop joins them in dependency order (no new claims, no
 * new deliveries, lookups finish or are abandoned, results are committed, what was never
 * consumed is made due again, the outbox is flushed). free releases what stop left. */
int dm_dns_start(struct dm_app *app, enum dm_dns_mode mode, struct dm_dns_service **ret_service);
void dm_dns_stop(struct dm_dns_service *svc);
void dm_dns_free(struct dm_dns_service *svc);

void dm_dns_cond_init(pthread_cond_t *c);
void dm_dns_cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, int64_t ms);
/* Sleeps up to `ms`, returning early when the service stops or anything is settled (the
 * scheduler's wait: room may have come free). */
void dm_dns_sleep(struct dm_dns_service *svc, int64_t ms);
/* Sleeps `ms` in full, returning early only when the service stops. */
void dm_dns_pause(struct dm_dns_service *svc, int64_t ms);
/* Tasks done for good (acked, or dropped): room for the scheduler to claim more. `nmsgs`:
 * task messages settled with them. */
void dm_dns_finish(struct dm_dns_service *svc, size_t n, size_t nmsgs);
void dm_dns_sum_loops(const struct dm_dns_service *svc, struct dm_dns_totals *t);
/* A store call failed / worked: the outage and its end are logged once each. */
void dm_dns_store_failed(struct dm_dns_service *svc, const char *what, int err);
void dm_dns_store_ok(struct dm_dns_service *svc);
/* The periodic stats line (at most every DM_DNS_STATS_MS unless `final`). */
void dm_dns_stats_log(struct dm_dns_service *svc, bool final);

/* ---- dns_scheduler.c ---- */

void *dm_dns_scheduler_main(void *arg);
/* After the consumer is cancelled and everything it held is settled: the task messages
 * still queued in this process (published, never consumed) are taken back and their
 * domains made due again, so that the claim that moved them to their next slot does not
 * lose a scan. Returns how many domains. */
size_t dm_dns_reclaim_tasks(struct dm_dns_service *svc);

/* ---- dns_scanner.c ---- */

/* One domain's scan from its task: `types` empty means the default set, checks 0 the
 * configured default. Returns NULL on ENOMEM. */
struct dm_dns_scan *dm_dns_scan_new(const struct dm_dns_service *svc, const struct dm_scan_task *t);
void dm_dns_scan_free(struct dm_dns_scan *d);
/* The least loaded loop takes the domain. */
void dm_dns_dispatch(struct dm_dns_service *svc, struct dm_dns_scan *d);
/* The bus handler of the task queue: parse, validate, hand to the loops (or hold). */
void dm_dns_on_task(void *arg, const struct dm_bus_msg *m);
/* The store works again: tasks held meanwhile go to the loops. */
void dm_dns_resume(struct dm_dns_service *svc);
void *dm_dns_loop_main(void *arg);

/* ---- dns_tls.c: the TLS probes of a loop ---- */

/* Every lookup of `d` is in: plans its endpoints and queues it for probes. Returns false
 * when there is nothing to probe (the scan is finished). */
bool dm_dns_tls_begin(struct dm_dns_loop *l, struct dm_dns_scan *d);
/* Starts waiting probes while slots are free and fills pfd (room for DM_DNS_TLS_INFLIGHT)
 * with those in flight; returns how many. A scan none of whose probes could start is
 * handed to `finished`. */
size_t dm_dns_tls_poll(struct dm_dns_loop *l, struct pollfd *pfd,
                       void (*finished)(struct dm_dns_loop *l, struct dm_dns_scan *d));
/* Steps the probes (pfd as dm_dns_tls_poll filled it, `n` of them); a scan whose probes
 * are all over is handed to `finished`. */
void dm_dns_tls_run(struct dm_dns_loop *l, const struct pollfd *pfd, size_t n,
                    void (*finished)(struct dm_dns_loop *l, struct dm_dns_scan *d));
/* Stop's deadline passed: every probe is closed (their scans are abandoned by the caller). */
void dm_dns_tls_abandon(struct dm_dns_loop *l);

/* ---- dns_commit.c ---- */

/* Called by the loops for every domain they finish or give up. */
void dm_dns_hand_off(struct dm_dns_service *svc, struct dm_dns_scan *d);
/* The domain's fate is known: settle its share of the message. `requeue`: not written, so
 * the task must run again. Committer thread, or the stopping thread once it is gone. */
void dm_dns_dispose(struct dm_dns_service *svc, struct dm_dns_scan *d, bool requeue);
void *dm_dns_commit_main(void *arg);

/* ---- dns_retention.c ---- */

void *dm_dns_retention_main(void *arg);

/* ---- dns_registration.c ---- */

/* Loads the bootstrap file and starts the workers (service mode only). */
int dm_dns_reg_start(struct dm_dns_service *svc);
/* Joins the workers (svc->stopping is set) and frees. NULL-safe. */
void dm_dns_reg_stop(struct dm_dns_service *svc);

/* The bootstrap file in use: DM_RDAP_BOOTSTRAP, else DM_RDAP_BOOTSTRAP_LOCAL in the working
 * directory when `domainmon rdap-bootstrap update` wrote one, else NULL (the embedded
 * copy). */
#define DM_RDAP_BOOTSTRAP_LOCAL "rdap-dns.json"
const char *dm_dns_reg_bootstrap_path(const struct dm_conf *conf);

#endif
