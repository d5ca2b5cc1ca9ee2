/* Registration data over the REST API: a domain's current registration (RDAP or WHOIS)
 * and its history, cursor-paged like the DNS history. What the objects hold is decided in
 * lib/registration (dm_reg_state_json); this reads the store and pages. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "dm/error.h"
#include "dm/regchange.h"
#include "dm/store.h"

/* GET /api/v1/domains/{name}/registration */
static void registration_get(struct dm_http_request *req, struct dm_http_response *res)
{
        static const char *const no_params[] = {NULL};
        struct dm_app *app = req->app;
        struct dm_domain d;
        struct dm_reg_state st;

        if (dm_http_query_check(req, no_params, res) < 0)
                return;
        if (dm_api_domain_lookup(req, res, &d) < 0)
                return;
        int r = dm_store_reg_get(app->store, d.id, &st);
        if (r < 0 && r != DM_ENOENT) {
                dm_api_store_error(res, r, "registration");
                return;
        }
        json_t *doc = dm_reg_state_json(d.name, r == 0 ? &st : NULL);
        if (r == 0)
                dm_reg_state_done(&st);
        if (!doc) {
                dm_api_store_error(res, DM_ENOMEM, "registration");
                return;
        }
        dm_http_respond_json(res, 200, doc);
}

/* GET /api/v1/domains/{name}/registration/history?limit=&cursor= */
static void registration_history_get(struct dm_http_request *req, struct dm_http_response *res)
{
        static const char *const params[] = {"limit", "cursor", NULL};
        struct dm_app *app = req->app;
        struct dm_domain d;
        struct dm_reg_change *changes = NULL;
        size_t n = 0;
        int64_t limit = 0, before = 0;
        json_t *list = NULL, *doc = NULL;

        if (dm_http_query_check(req, params, res) < 0)
                return;
        if (dm_http_query_int(req, "limit", 1, DM_API_LIST_MAX, DM_API_LIST_DEFAULT, true, res,
                              &limit) < 0)
                return;
        const char *v = dm_http_query(req, "cursor");
        if (v && dm_api_id_cursor_parse(v, &before) < 0) {
                dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, "cursor",
                                      "is not a cursor this API returned");
                return;
        }
        if (dm_api_domain_lookup(req, res, &d) < 0)
                return;
        int r = dm_store_reg_changes(app->store, d.id, before, (size_t)limit + 1, &changes, &n);
        if (r < 0) {
                dm_api_store_error(res, r, "registration history");
                return;
        }
        size_t shown = n > (size_t)limit ? (size_t)limit : n;
        list = json_array();
        if (!list)
                goto enomem;
        for (size_t i = 0; i < shown; i++) {
                json_t *fields = json_loads(changes[i].fields, 0, NULL);
                if (!fields) {
                        dm_api_store_error(res, DM_ESTORE, "registration history");
                        goto out;
                }
                json_t *e =
                    json_pack("{s:I, s:o, s:o}", "id", (json_int_t)changes[i].id, "observed_at",
                              dm_api_time_json(changes[i].observed_at), "fields", fields);
                if (!e || json_array_append_new(list, e) != 0)
                        goto enomem;
        }
        json_t *next =
            n > shown && shown > 0 ? dm_api_id_cursor_json(changes[shown - 1].id) : json_null();
        if (!next)
                goto enomem;
        doc = json_pack("{s:o, s:o}", "changes", list, "next_cursor", next);
        list = NULL;
        dm_http_respond_json(res, 200, doc);
        goto out;

enomem:
        dm_api_store_error(res, DM_ENOMEM, "registration history");
out:
        json_decref(list);
        dm_reg_changes_free(changes, n);
}

const struct dm_http_route dm_api_registration_routes[] = {
    {DM_HTTP_GET, "/api/v1/domains/{name}/registration", registration_get, DM_SCOPE_READ, 0},
    {DM_HTTP_GET, "/api/v1/domains/{name}/registration/history", registration_history_get,
     DM_SCOPE_READ, 0},
    {0},
};
