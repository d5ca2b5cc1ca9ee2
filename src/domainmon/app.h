/* What the services of one process share, and their entry points. */
#ifndef DM_APP_H
#define DM_APP_H

#include "dm/bus.h"
#include "dm/cache.h"
#include "dm/conf.h"
#include "dm/events.h"
#include "dm/metrics.h"
#include "dm/outbox.h"
#include "dm/session.h"
#include "dm/ratelimit.h"
#include "dm/store.h"

struct dm_app {
        const char *command; /* the subcommand being run: "all", "dns-service", ... */
        int migrations_applied;
        struct dm_conf conf;
        struct dm_store *store; /* thread-safe */
        struct dm_bus *bus;     /* thread-safe */
        /* The live event stream's hub while the domain service runs, else NULL;
         * thread-safe. */
        struct dm_event_hub *events;
        /* The web UI sessions' signing key while the domain service runs, else NULL. */
        const struct dm_session_secret *session_secret;
        /* While the domain service runs (else NULL): the rate limiter its edge uses and the
         * cache of hot reads; both thread-safe. */
        struct dm_ratelimit *limiter;
        struct dm_cache *cache;
        /* The process's one outbox relay, shared by every service that writes events (kick
         * it after a write: dm_outbox_relay_kick, NULL-safe); NULL while none holds it. */
        struct dm_outbox_relay *relay;
        unsigned relay_holders; /* main thread only */
        /* The process's metrics (GET /metrics), made by dm_app_metrics_init before any
         * service starts; NULL in commands that serve nothing. */
        struct dm_metrics *metrics;
        struct dm_app_metrics *m;
};

/* The families every service counts into; NULL members when metrics are off. Label sets:
 * scans {check, result}, scan_seconds {check}, changes {check, type}, http_requests
 * {route, method, status}, http_seconds {route}. */
struct dm_app_metrics {
        struct dm_metric *scans;
        struct dm_metric *scan_seconds;
        struct dm_metric *changes;
        struct dm_metric *queries_in_flight;
        struct dm_metric *task_queue_depth;
        struct dm_metric *task_redeliveries;
        struct dm_metric *http_requests;
        struct dm_metric *http_seconds;
};

/* Makes app->metrics and registers every family (store and bus state read at each scrape).
 * Main thread, before any service starts. Returns 0 or DM_ENOMEM. */
int dm_app_metrics_init(struct dm_app *app);
/* NULL-safe; after every service stopped. */
void dm_app_metrics_done(struct dm_app *app);

/* A service that writes events holds the relay while it runs: the first hold starts it,
 * the last release publishes what is left and stops it, so `all` runs one relay for all
 * its services. Main thread only (services start and stop there). */
int dm_app_relay_hold(struct dm_app *app);
void dm_app_relay_release(struct dm_app *app);

/* `dns-service` alone has no API: its /healthz and /readyz are served on conf.listen by a
 * server of their own. start returns once the socket listens; stop frees. */
struct dm_probe_service;
int dm_probe_service_start(struct dm_app *app, struct dm_probe_service **ret_service);
void dm_probe_service_stop(struct dm_probe_service *s);

/* REST API and live event stream (and later the UI) on conf.listen. start returns once the
 * socket listens and the service receives events; stop ends the event streams, stops
 * accepting, lets in-flight requests finish, and frees. */
struct dm_domain_service;
int dm_domain_service_start(struct dm_app *app, struct dm_domain_service **ret_service);
void dm_domain_service_stop(struct dm_domain_service *s);

/* Scheduler and scanners. stop finishes or abandons in-flight lookups (abandoned domains
 * stay due and are claimed again), writes what was resolved, and frees. */
struct dm_dns_service;
int dm_dns_service_start(struct dm_app *app, struct dm_dns_service **ret_service);
void dm_dns_service_stop(struct dm_dns_service *s);

/* Alert service: consumes events, matches rules, sends alerts with retries. start returns
 * once it consumes; stop ends consuming and sending (what is pending stays in the store). */
struct dm_alert_service;
int dm_alert_service_start(struct dm_app *app, struct dm_alert_service **ret_service);
void dm_alert_service_stop(struct dm_alert_service *s);

/* Subcommand `scan`: makes every enabled domain due, runs one full cycle through the real
 * pipeline (scheduler -> bus -> scanners -> diff -> store), waits until every claimed domain
 * is written, prints a summary (domains, lookups, failures, seconds, lookups/s, changes,
 * peak RSS) and returns an exit code. `--resolve-only` resolves every name and type with the
 * same resolver settings but skips diff and store (the pipeline's baseline). */
int dm_cmd_scan(struct dm_app *app, int argc, char **argv);

/* Subcommand `keys`: create/list/revoke. argv[0] is the action. Returns an exit code. */
int dm_cmd_keys(struct dm_app *app, int argc, char **argv);
/* Subcommand `rdap-bootstrap update FILE|URL`. Returns an exit code. */
int dm_cmd_rdap_bootstrap(struct dm_app *app, int argc, char **argv);

/* The command-line client (cmd_client.c): talk to a running service's API (DM_API_URL,
 * DM_API_KEY) and return an exit code (0, 1 server or network, 2 usage). argv[0] of
 * `domains` is the action. */
int dm_cmd_domains(struct dm_app *app, int argc, char **argv);
int dm_cmd_records(struct dm_app *app, int argc, char **argv);
int dm_cmd_history(struct dm_app *app, int argc, char **argv);
int dm_cmd_changes(struct dm_app *app, int argc, char **argv);
int dm_cmd_watch(struct dm_app *app, int argc, char **argv);

/* Subcommand `backup FILE`: a consistent copy of the SQLite store. Returns an exit code. */
int dm_cmd_backup(struct dm_app *app, int argc, char **argv);

#endif
