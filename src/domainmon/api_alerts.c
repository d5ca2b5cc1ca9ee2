/* REST API v1: alert rules and their deliveries. Validation is lib/alert's
 * (dm_alert_rule_apply): a body is checked completely before the store is touched, and a
 * rejected one changes nothing. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "api.h"
#include "dm/alert.h"
#include "dm/error.h"
#include "dm/log.h"
#include "dm/time.h"

static const struct dm_http_problem_type problem_target_refused = {"target-refused",
                                                                   "Alert target refused"};
static const char *const no_params[] = {NULL};
static const char *const list_params[] = {"limit", "cursor", NULL};

/* The {id} capture: a positive decimal. On failure a 404 (no such rule can exist). */
static int rule_id_param(struct dm_http_request *req, struct dm_http_response *res, int64_t *ret_id)
{
        const char *s = dm_http_param(req, "id");
        int64_t v = 0;
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > 18 || s[0] == '0')
                goto bad;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        goto bad;
                v = v * 10 + (s[i] - '0');
        }
        *ret_id = v;
        return 0;
bad:
        dm_http_problem(res, 404, &dm_problem_not_found, "no alert rule with that id");
        return DM_ENOENT;
}

static int rule_load(struct dm_http_request *req, struct dm_http_response *res,
                     struct dm_alert_rule *ret_rule)
{
        struct dm_app *app = req->app;
        int64_t id;
        int ret = rule_id_param(req, res, &id);
        if (ret < 0)
                return ret;
        ret = dm_store_alert_rule_get(app->store, id, ret_rule);
        if (ret == DM_ENOENT)
                dm_http_problem(res, 404, &dm_problem_not_found, "no alert rule %" PRId64, id);
        else if (ret < 0)
                dm_api_store_error(res, ret, "get alert rule");
        return ret;
}

static void rule_error(struct dm_http_response *res, int ret, const struct dm_alert_error *err)
{
        if (ret == DM_ENOMEM || err->status >= 500) {
                dm_api_store_error(res, DM_ENOMEM, "alert rule");
                return;
        }
        if (!err->field[0]) {
                dm_http_problem(res, err->status, &dm_problem_invalid_body, "%s", err->detail);
                return;
        }
        dm_http_problem_field(res, err->status,
                              err->status == 422 ? &problem_target_refused
                                                 : &dm_problem_invalid_body,
                              err->field, err->detail);
}

static void respond_rule(struct dm_http_response *res, unsigned status,
                         const struct dm_alert_rule *rule, bool with_secret)
{
        json_t *o = dm_alert_rule_json(rule, with_secret);
        if (!o) {
                dm_api_store_error(res, DM_ENOMEM, "render alert rule");
                return;
        }
        dm_http_respond_json(res, status, o);
}

static json_t *read_body(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_json_error jerr;
        json_t *obj = NULL;
        int ret = dm_json_parse_object(req->body, req->body_len, &jerr, &obj);
        if (ret == DM_ENOMEM)
                dm_api_store_error(res, ret, "read body");
        else if (ret == DM_EPARSE)
                dm_http_problem(res, 400, &dm_problem_invalid_json, "%s", jerr.detail);
        else if (ret < 0)
                dm_http_problem(res, 400, &dm_problem_invalid_body, "%s", jerr.detail);
        return ret < 0 ? NULL : obj;
}

static void alert_create(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        struct dm_alert_rule rule = {0};
        struct dm_alert_error err;

        if (dm_http_query_check(req, no_params, res) < 0)
                return;
        json_t *body = read_body(req, res);
        if (!body)
                return;
        int ret =
            dm_alert_rule_apply(&rule, body, true, app->conf.allow_private_targets != 0, &err);
        json_decref(body);
        if (ret < 0) {
                rule_error(res, ret, &err);
                return;
        }
        ret = dm_store_alert_rule_insert(app->store, &rule);
        if (ret < 0)
                dm_api_store_error(res, ret, "create alert rule");
        else
                respond_rule(res, 201, &rule, true);
        dm_alert_rule_done(&rule);
}

static void alert_list(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        struct dm_alert_rule *rules = NULL;
        int64_t limit, after = 0;
        size_t n = 0;

        if (dm_http_query_check(req, list_params, res) < 0 ||
            dm_http_query_int(req, "limit", 1, DM_API_LIST_MAX, DM_API_LIST_DEFAULT, true, res,
                              &limit) < 0)
                return;
        const char *cursor = dm_http_query(req, "cursor");
        if (cursor && *cursor) {
                if (dm_api_id_cursor_parse(cursor, &after) < 0) {
                        dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, "cursor",
                                              "malformed cursor; use next_cursor from the "
                                              "previous page");
                        return;
                }
        }
        int ret = dm_store_alert_rule_list(app->store, after, (size_t)limit + 1, &rules, &n);
        if (ret < 0) {
                dm_api_store_error(res, ret, "list alert rules");
                return;
        }
        size_t shown = n > (size_t)limit ? (size_t)limit : n;
        json_t *list = json_array(), *next = json_null();
        for (size_t i = 0; list && i < shown; i++) {
                if (json_array_append_new(list, dm_alert_rule_json(&rules[i], false)) < 0) {
                        json_decref(list);
                        list = NULL;
                }
        }
        if (list && n > shown)
                next = dm_api_id_cursor_json(rules[shown - 1].id);
        dm_alert_rules_free(rules, n);
        if (!list || !next) {
                json_decref(list);
                json_decref(next);
                dm_api_store_error(res, DM_ENOMEM, "list alert rules");
                return;
        }
        dm_http_respond_json(res, 200,
                             json_pack("{s:o, s:o}", "alerts", list, "next_cursor", next));
}

static void alert_get(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_alert_rule rule;
        if (dm_http_query_check(req, no_params, res) < 0 || rule_load(req, res, &rule) < 0)
                return;
        respond_rule(res, 200, &rule, false);
        dm_alert_rule_done(&rule);
}

static void alert_patch(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        struct dm_alert_rule rule;
        struct dm_alert_error err;

        if (dm_http_query_check(req, no_params, res) < 0)
                return;
        json_t *body = read_body(req, res);
        if (!body)
                return;
        if (rule_load(req, res, &rule) < 0) {
                json_decref(body);
                return;
        }
        int ret =
            dm_alert_rule_apply(&rule, body, false, app->conf.allow_private_targets != 0, &err);
        json_decref(body);
        if (ret < 0) {
                rule_error(res, ret, &err);
        } else {
                ret = dm_store_alert_rule_update(app->store, &rule);
                if (ret < 0)
                        dm_api_store_error(res, ret, "update alert rule");
                else
                        respond_rule(res, 200, &rule, false);
        }
        dm_alert_rule_done(&rule);
}

static void alert_delete(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        int64_t id;
        if (dm_http_query_check(req, no_params, res) < 0 || rule_id_param(req, res, &id) < 0)
                return;
        int ret = dm_store_alert_rule_delete(app->store, id);
        if (ret == DM_ENOENT)
                dm_http_problem(res, 404, &dm_problem_not_found, "no alert rule %" PRId64, id);
        else if (ret < 0)
                dm_api_store_error(res, ret, "delete alert rule");
        else
                dm_http_respond_empty(res, 204);
}

static json_t *delivery_json(const struct dm_alert_delivery *d)
{
        return json_pack(
            "{s:I, s:s, s:s, s:I, s:o, s:o, s:o}", "id", (json_int_t)d->id, "event", d->event_key,
            "status", dm_alert_status_name(d->status), "attempts", (json_int_t)d->attempts,
            "last_error", d->last_error[0] ? dm_json_string_lossy(d->last_error) : json_null(),
            "next_attempt_at",
            d->status == DM_ALERT_PENDING ? dm_api_time_json(d->next_attempt_at) : json_null(),
            "delivered_at", dm_api_time_json(d->delivered_at));
}

static void alert_deliveries(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        struct dm_alert_rule rule;
        struct dm_alert_delivery *ds = NULL;
        int64_t limit, before = 0;
        size_t n = 0;

        if (dm_http_query_check(req, list_params, res) < 0 ||
            dm_http_query_int(req, "limit", 1, DM_API_LIST_MAX, DM_API_LIST_DEFAULT, true, res,
                              &limit) < 0)
                return;
        const char *cursor = dm_http_query(req, "cursor");
        if (cursor && *cursor) {
                if (dm_api_id_cursor_parse(cursor, &before) < 0) {
                        dm_http_problem_field(res, 400, &dm_problem_invalid_parameter, "cursor",
                                              "malformed cursor; use next_cursor from the "
                                              "previous page");
                        return;
                }
        }
        if (rule_load(req, res, &rule) < 0)
                return;
        int ret =
            dm_store_alert_delivery_list(app->store, rule.id, before, (size_t)limit + 1, &ds, &n);
        dm_alert_rule_done(&rule);
        if (ret < 0) {
                dm_api_store_error(res, ret, "list deliveries");
                return;
        }
        size_t shown = n > (size_t)limit ? (size_t)limit : n;
        json_t *list = json_array(), *next = json_null();
        for (size_t i = 0; list && i < shown; i++) {
                if (json_array_append_new(list, delivery_json(&ds[i])) < 0) {
                        json_decref(list);
                        list = NULL;
                }
        }
        if (list && n > shown)
                next = dm_api_id_cursor_json(ds[shown - 1].id);
        dm_alert_deliveries_free(ds, n);
        if (!list || !next) {
                json_decref(list);
                json_decref(next);
                dm_api_store_error(res, DM_ENOMEM, "list deliveries");
                return;
        }
        dm_http_respond_json(res, 200,
                             json_pack("{s:o, s:o}", "deliveries", list, "next_cursor", next));
}

/* A test message: a delivery of its own, due now, sent by the alert service like any other. */
static void alert_test(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        struct dm_alert_rule rule;
        char body[256], ts[DM_RFC3339_LEN];
        uint32_t rnd = 0;

        if (dm_http_query_check(req, no_params, res) < 0 || rule_load(req, res, &rule) < 0)
                return;
        if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
                rnd = (uint32_t)dm_mono_ms();
        int64_t now = dm_now_ms();
        struct dm_alert_delivery d = {.rule_id = rule.id, .body = body, .next_attempt_at = now};
        snprintf(d.event_key, sizeof(d.event_key), "alert.test:%" PRId64 "-%08x", now, rnd);
        snprintf(d.routing_key, sizeof(d.routing_key), "alert.test");
        snprintf(body, sizeof(body),
                 "{\"id\":\"%" PRId64 "-%08x\",\"rule\":%" PRId64 ",\"sent_at\":\"%s\"}", now, rnd,
                 rule.id, dm_time_format(now, ts));
        dm_alert_rule_done(&rule);
        int ret = dm_store_alert_delivery_add(app->store, &d, now, 0);
        if (ret < 0) {
                dm_api_store_error(res, ret, "add test delivery");
                return;
        }
        dm_http_respond_json(res, 202, delivery_json(&d));
}

const struct dm_http_route dm_api_alert_routes[] = {
    {DM_HTTP_POST, "/api/v1/alerts", alert_create, DM_SCOPE_WRITE, 0},
    {DM_HTTP_GET, "/api/v1/alerts", alert_list, DM_SCOPE_READ, 0},
    {DM_HTTP_GET, "/api/v1/alerts/{id}", alert_get, DM_SCOPE_READ, 0},
    {DM_HTTP_PATCH, "/api/v1/alerts/{id}", alert_patch, DM_SCOPE_WRITE, 0},
    {DM_HTTP_DELETE, "/api/v1/alerts/{id}", alert_delete, DM_SCOPE_WRITE, 0},
    {DM_HTTP_GET, "/api/v1/alerts/{id}/deliveries", alert_deliveries, DM_SCOPE_READ, 0},
    {DM_HTTP_POST, "/api/v1/alerts/{id}/test", alert_test, DM_SCOPE_WRITE, DM_HTTP_ROUTE_EXPENSIVE},
    {0},
};
