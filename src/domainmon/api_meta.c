/* Routes for probes and tooling, answered without a key: liveness, readiness (the store
 * and the bus answer) and the OpenAPI document compiled into the binary. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include "api.h"
#include "dm/buf.h"
#include "dm/embed.h"
#include "dm/error.h"
#include "dm/log.h"

static void healthz(struct dm_http_request *req, struct dm_http_response *res)
{
        dm_http_respond_json(res, 200, json_pack("{s:s}", "status", "ok"));
}

/* Set while the last probe found something down: the outage is logged once when a probe
 * first sees it and once when one finds everything back, not on every poll. */
static atomic_bool readyz_down;

/* 503 names what is down: "down" lists "database" and/or "bus", and the detail says why. A
 * bus whose broker connection is being re-established counts as down. */
static void readyz(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        int store = dm_store_ping(app->store);
        int bus = app->bus ? dm_bus_ping(app->bus) : 0;

        if (store == 0 && bus == 0) {
                if (atomic_exchange(&readyz_down, false))
                        dm_log_info("api", "msg=\"ready again\"");
                /* Redis away: still ready (rate limits hold per process, reads come from the
                 * store), but said, so that nobody believes the budget is shared. */
                bool rl = app->limiter && dm_ratelimit_degraded(app->limiter);
                bool ca = app->cache && dm_cache_degraded(app->cache);
                if (rl || ca) {
                        json_t *deg = json_array();
                        if (deg && rl)
                                json_array_append_new(deg, json_string("rate_limiter"));
                        if (deg && ca)
                                json_array_append_new(deg, json_string("cache"));
                        dm_http_respond_json(
                            res, 200,
                            json_pack("{s:s, s:o, s:s}", "status", "degraded", "degraded", deg,
                                      "detail",
                                      "Redis does not answer: rate limits are enforced by each "
                                      "process alone and cached reads are off until it is "
                                      "back"));
                        return;
                }
                dm_http_respond_json(res, 200, json_pack("{s:s}", "status", "ready"));
                return;
        }
        char detail[256];
        if (store < 0 && bus < 0)
                snprintf(detail, sizeof(detail),
                         "not ready: the database does not answer (%s) and the message bus is "
                         "not connected",
                         dm_strerror(store));
        else if (store < 0)
                snprintf(detail, sizeof(detail), "not ready: the database does not answer (%s)",
                         dm_strerror(store));
        else
                snprintf(detail, sizeof(detail),
                         "not ready: the message bus is not connected (reconnecting)");
        if (!atomic_exchange(&readyz_down, true))
                dm_log_warn("api", "msg=\"not ready\" database=\"%s\" bus=\"%s\"",
                            store < 0 ? dm_strerror(store) : "ok",
                            bus < 0 ? dm_strerror(bus) : "ok");
        json_t *problem = dm_http_problem_new(503, &dm_problem_unavailable, detail);
        json_t *down = json_array();
        bool ok = problem && down &&
                  (store == 0 || json_array_append_new(down, json_string("database")) == 0) &&
                  (bus == 0 || json_array_append_new(down, json_string("bus")) == 0);
        if (ok) {
                ok = json_object_set_new(problem, "down", down) == 0; /* takes `down` */
                down = NULL;
        }
        if (ok) {
                dm_http_respond_problem_json(res, problem);
                return;
        }
        json_decref(down);
        json_decref(problem);
        dm_http_problem(res, 503, &dm_problem_unavailable, "%s", detail);
}

static void openapi(struct dm_http_request *req, struct dm_http_response *res)
{
        const struct dm_embed_file *f = dm_embed_find(dm_embed_docs, "openapi.json");

        if (!f) {
                dm_http_problem(res, 404, &dm_problem_not_found,
                                "this build carries no API document");
                return;
        }
        dm_http_respond(res, 200, "application/json", f->data, f->len);
}

/* Bytes of one /metrics answer at most: a family holds at most DM_METRIC_SERIES_MAX series. */
#define METRICS_BODY_MAX (16u << 20)

/* The Prometheus text format. Public like the probes: it names no domain, record or key,
 * only counts by route pattern, record type and status (docs/internals/http.md). */
static void metrics(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        struct dm_buf b;

        if (!app->metrics) {
                dm_http_problem(res, 404, &dm_problem_not_found, "this process keeps no metrics");
                return;
        }
        dm_buf_init(&b, METRICS_BODY_MAX);
        int r = dm_metrics_write(app->metrics, &b);
        if (r < 0) {
                dm_buf_done(&b);
                dm_log_error("api", "msg=\"cannot write the metrics\" err=\"%s\"", dm_strerror(r));
                dm_http_problem(res, 500, NULL, "the metrics could not be written: %s",
                                dm_strerror(r));
                return;
        }
        dm_http_respond(res, 200, DM_METRICS_CONTENT_TYPE, b.data ? b.data : "", b.len);
        dm_buf_done(&b);
}

const struct dm_http_route dm_api_meta_routes[] = {
    {DM_HTTP_GET, "/healthz", healthz, DM_SCOPE_NONE, DM_HTTP_ROUTE_PUBLIC},
    {DM_HTTP_GET, "/readyz", readyz, DM_SCOPE_NONE, DM_HTTP_ROUTE_PUBLIC},
    {DM_HTTP_GET, "/openapi.json", openapi, DM_SCOPE_NONE, DM_HTTP_ROUTE_PUBLIC},
    {DM_HTTP_GET, "/metrics", metrics, DM_SCOPE_NONE, DM_HTTP_ROUTE_PUBLIC},
    {0},
};

const struct dm_http_route dm_api_probe_routes[] = {
    {DM_HTTP_GET, "/healthz", healthz, DM_SCOPE_NONE, DM_HTTP_ROUTE_PUBLIC},
    {DM_HTTP_GET, "/readyz", readyz, DM_SCOPE_NONE, DM_HTTP_ROUTE_PUBLIC},
    {DM_HTTP_GET, "/metrics", metrics, DM_SCOPE_NONE, DM_HTTP_ROUTE_PUBLIC},
    {0},
};
