/* What the services of one process share, and their entry points. */
#ifndef DM_APP_H
#define DM_APP_H

#include "dm/bus.h"
#include "dm/cache.h"
#include "dm/conf.h"
#include "dm/events.h"
#include "dm/outbox.h"
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
        /* While the domain service runs (else NULL): the rate limiter its edge uses and the
         * cache of hot reads; both thread-safe. */
        struct dm_ratelimit *limiter;
        struct dm_cache *cache;
        /* The process's one outbox relay, shared by every service that writes events (kick
         * it after a write: dm_outbox_relay_kick, NULL-safe); NULL while none holds it. */
        struct dm_outbox_relay *relay;
        unsigned relay_holders; /* main thread only */
};

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

/* Subcommand `scan`: makes every enabled domain due, runs one full cycle through the real
 * pipeline (scheduler -> bus -> scanners -> diff -> store), waits until every claimed domain
 * is written, prints a summary (domains, lookups, failures, seconds, lookups/s, changes,
 * peak RSS) and returns an exit code. `--resolve-only` resolves every name and type with the
 * same resolver settings but skips diff and store (the pipeline's baseline). */
int dm_cmd_scan(struct dm_app *app, int argc, char **argv);

/* Subcommand `keys`: create/list/revoke. argv[0] is the action. Returns an exit code. */
int dm_cmd_keys(struct dm_app *app, int argc, char **argv);

#endif
