/* REST API v1: a domain's TLS state and history. The objects are lib/tls's
 * (dm_tls_endpoint_json, dm_tls_change_json), shared with the change.tls event. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "dm/error.h"
#include "dm/time.h"
#include "dm/tls.h"

/* GET /api/v1/domains/{name}/tls */
static void tls_get(struct dm_http_request *req, struct dm_http_response *res)
{
        static const char *const no_params[] = {NULL};
        struct dm_app *app = req->app;
        struct dm_domain d;
        struct dm_tls_endpoint *eps = NULL;
        size_t n = 0;
        json_t *list = NULL;
        int64_t now = dm_now_ms();

        if (dm_http_query_check(req, no_params, res) < 0)
                return;
        if (dm_api_domain_lookup(req, res, &d) < 0)
                return;
        int r = dm_store_tls_current(app->store, d.id, &eps, &n);
        if (r < 0) {
                dm_api_store_error(res, r, "tls current");
                return;
        }
        list = json_array();
        for (size_t i = 0; list && i < n; i++) {
                if (json_array_append_new(list, dm_tls_endpoint_json(&eps[i], now)) != 0) {
                        json_decref(list);
                        list = NULL;
                }
        }
        if (!list) {
                dm_api_store_error(res, DM_ENOMEM, "tls current");
                goto out;
        }
        /* json_pack takes the list's reference, also when it fails (a 500 then). */
        dm_http_respond_json(res, 200,
                             json_pack("{s:s, s:o, s:o}", "domain", d.name, "checked_at",
                                       dm_api_time_json(d.tls_checked_at), "endpoints", list));
out:
        dm_tls_endpoints_free(eps, n);
}

/* GET /api/v1/domains/{name}/tls/history?limit=&cursor= */
static void tls_history_get(struct dm_http_request *req, struct dm_http_response *res)
{
        static const char *const params[] = {"limit", "cursor", NULL};
        struct dm_app *app = req->app;
        struct dm_domain d;
        struct dm_tls_change *chs = NULL;
        size_t n = 0;
        int64_t limit = 0, before_id = 0;
        json_t *list = NULL, *next = NULL;

        if (dm_http_query_check(req, params, res) < 0)
                return;
        if (dm_http_query_int(req, "limit", 1, DM_API_LIST_MAX, DM_API_LIST_DEFAULT, true, res,
                              &limit) < 0)
                return;
        const char *cursor = dm_http_query(req, "cursor");
        if (cursor && dm_api_id_cursor_parse(cursor, &before_id) < 0) {
                dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, "cursor",
                                      "is not a cursor this API returned");
                return;
        }
        if (dm_api_domain_lookup(req, res, &d) < 0)
                return;
        /* One more than the page tells whether a next page exists. */
        int r = dm_store_tls_change_list(app->store, d.id, before_id, (size_t)limit + 1, &chs, &n);
        if (r < 0) {
                dm_api_store_error(res, r, "tls history");
                return;
        }
        size_t shown = n > (size_t)limit ? (size_t)limit : n;
        list = json_array();
        for (size_t i = 0; list && i < shown; i++) {
                if (json_array_append_new(list, dm_tls_change_json(&chs[i], false)) != 0) {
                        json_decref(list);
                        list = NULL;
                }
        }
        if (!list)
                goto enomem;
        next = n > shown ? dm_api_id_cursor_json(chs[shown - 1].id) : json_null();
        if (!next)
                goto enomem;
        dm_http_respond_json(res, 200,
                             json_pack("{s:o, s:o}", "changes", list, "next_cursor", next));
        list = NULL;
        goto out;
enomem:
        dm_api_store_error(res, DM_ENOMEM, "tls history");
out:
        json_decref(list);
        dm_tls_changes_free(chs, n);
}

const struct dm_http_route dm_api_tls_routes[] = {
    {DM_HTTP_GET, "/api/v1/domains/{name}/tls", tls_get, DM_SCOPE_READ, 0},
    {DM_HTTP_GET, "/api/v1/domains/{name}/tls/history", tls_history_get, DM_SCOPE_READ, 0},
    {0},
};
