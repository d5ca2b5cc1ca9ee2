/* What the services of one process share beyond the store and the bus: the outbox relay,
 * started by the first service that writes events and stopped by the last. */
#include "app.h"

#include "dm/error.h"
#include "dm/log.h"

#include <stdlib.h>

int dm_app_relay_hold(struct dm_app *app)
{
        if (app->relay_holders++ > 0)
                return 0;
        struct dm_outbox_relay_opts o = {
            .store = app->store, .bus = app->bus, .lease_ms = app->conf.outbox_lease_ms};
        int r = dm_outbox_relay_start(&o, &app->relay);
        if (r < 0) {
                app->relay_holders = 0;
                app->relay = NULL;
                dm_log_error("main", "msg=\"cannot start the outbox relay\" err=\"%s\"",
                             dm_strerror(r));
        }
        return r;
}

void dm_app_relay_release(struct dm_app *app)
{
        if (app->relay_holders == 0 || --app->relay_holders > 0)
                return;
        dm_outbox_relay_stop(app->relay);
        app->relay = NULL;
}

/* ---- metrics ---- */

static double store_up(void *arg)
{
        struct dm_app *app = arg;
        return dm_store_ping(app->store) == 0 ? 1 : 0;
}

static double bus_up(void *arg)
{
        struct dm_app *app = arg;
        return app->bus && dm_bus_ping(app->bus) == 0 ? 1 : 0;
}

/* Seconds: a lookup on loopback takes well under a millisecond, a scan of a server that
 * does not answer takes the DNS timeout (2 s by default) and retries. */
static const double scan_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                     0.5,   1,     2,    5,     10,   30};
static const double http_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1,     2.5,  5,     10};

int dm_app_metrics_init(struct dm_app *app)
{
        struct dm_app_metrics *am = calloc(1, sizeof(*am));
        int r = am ? dm_metrics_new(&app->metrics) : DM_ENOMEM;
        if (r < 0) {
                free(am);
                return r;
        }
        app->m = am;
        struct dm_metrics *m = app->metrics;
        if (r == 0)
                r = dm_metrics_counter(m, "dm_scans_total",
                                       "Scans finished, by check and result (ok: every lookup "
                                       "answered; error: at least one failed).",
                                       (const char *[]){"check", "result", NULL}, &am->scans);
        if (r == 0)
                r = dm_metrics_histogram(m, "dm_scan_duration_seconds",
                                         "Time from a scan's first lookup to its last answer.",
                                         (const char *[]){"check", NULL}, scan_bounds,
                                         sizeof(scan_bounds) / sizeof(scan_bounds[0]),
                                         &am->scan_seconds);
        if (r == 0)
                r = dm_metrics_gauge(m, "dm_dns_queries_in_flight",
                                     "DNS lookups sent and not yet answered or failed.", NULL,
                                     &am->queries_in_flight);
        if (r == 0)
                r = dm_metrics_gauge(m, "dm_task_queue_depth",
                                     "Scan task messages waiting in the task queue, as the "
                                     "scheduler last read it.",
                                     NULL, &am->task_queue_depth);
        if (r == 0)
                r = dm_metrics_counter(m, "dm_task_redeliveries_total",
                                       "Scan task messages delivered again after a consumer "
                                       "failed to settle them.",
                                       NULL, &am->task_redeliveries);
        if (r == 0)
                r = dm_metrics_counter(m, "dm_changes_total",
                                       "Changes recorded in the history, by check and record "
                                       "type.",
                                       (const char *[]){"check", "type", NULL}, &am->changes);
        if (r == 0)
                r = dm_metrics_counter(m, "dm_http_requests_total",
                                       "HTTP requests answered, by route pattern, method and "
                                       "status.",
                                       (const char *[]){"route", "method", "status", NULL},
                                       &am->http_requests);
        if (r == 0)
                r = dm_metrics_histogram(m, "dm_http_request_duration_seconds",
                                         "Time from a request's first byte to its answer, by "
                                         "route pattern.",
                                         (const char *[]){"route", NULL}, http_bounds,
                                         sizeof(http_bounds) / sizeof(http_bounds[0]),
                                         &am->http_seconds);
        if (r == 0)
                r = dm_metrics_gauge_fn(
                    m, "dm_store_up", "1 when the database answers a ping, else 0.", store_up, app);
        if (r == 0)
                r = dm_metrics_gauge_fn(
                    m, "dm_bus_up", "1 when the message bus is connected, else 0.", bus_up, app);
        if (r < 0)
                dm_app_metrics_done(app);
        return r;
}

void dm_app_metrics_done(struct dm_app *app)
{
        dm_metrics_free(app->metrics);
        free(app->m);
        app->metrics = NULL;
        app->m = NULL;
}
