/* Routes for probes and tooling, answered without a key: liveness, readiness (the store
 * answers) and the OpenAPI document compiled into the binary. */
#include "api.h"
#include "dm/embed.h"
#include "dm/error.h"
#include "dm/log.h"

static void healthz(struct dm_http_request *req, struct dm_http_response *res)
{
        dm_http_respond_json(res, 200, json_pack("{s:s}", "status", "ok"));
}

static void readyz(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        int ret = dm_store_ping(app->store);

        if (ret < 0) {
                dm_log_warn("api", "msg=\"not ready\" err=\"%s\"", dm_strerror(ret));
                dm_http_problem(res, 503, &dm_problem_unavailable,
                                "the database does not answer: %s", dm_strerror(ret));
                return;
        }
        dm_http_respond_json(res, 200, json_pack("{s:s}", "status", "ready"));
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

const struct dm_http_route dm_api_meta_routes[] = {
    {DM_HTTP_GET, "/healthz", healthz, DM_SCOPE_NONE, 0},
    {DM_HTTP_GET, "/readyz", readyz, DM_SCOPE_NONE, 0},
    {DM_HTTP_GET, "/openapi.json", openapi, DM_SCOPE_NONE, 0},
    {0},
};
