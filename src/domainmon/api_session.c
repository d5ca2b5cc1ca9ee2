/* /api/v1/session: the web UI's sign-in (an API key exchanged for a session cookie), who is
 * signed in, and sign-out; and the check of the cookie on every other route. Wiring only:
 * lib/session decides what a cookie is worth and whether a write's Origin is acceptable. */
#include <string.h>
#include <strings.h>

#include "api.h"
#include "dm/apikey.h"
#include "dm/error.h"
#include "dm/log.h"
#include "dm/session.h"
#include "dm/time.h"

static const struct dm_json_field session_fields[] = {
    {"key", DM_JSON_STRING, DM_JSON_REQUIRED},
    {0},
};

/* Secure when the request reached us over TLS: through a proxy that says so, as this
 * server itself speaks plain HTTP. Adding Secure only ever narrows where the cookie goes. */
static bool request_is_https(const struct dm_http_request *req)
{
        const char *proto = dm_http_header(req, "X-Forwarded-Proto");
        return proto && strcasecmp(proto, "https") == 0;
}

static int set_cookie(struct dm_http_request *req, struct dm_http_response *res, const char *value)
{
        char header[DM_SESSION_SET_COOKIE_MAX];
        int ret = dm_session_set_cookie(value, DM_SESSION_TTL_MS / 1000, request_is_https(req),
                                        header, sizeof(header));
        if (ret == 0)
                ret = dm_http_response_header(res, "Set-Cookie", header);
        return ret;
}

static json_t *session_json(const char *key_name, enum dm_scope scope, int64_t expires_at)
{
        json_t *exp = expires_at ? dm_api_time_json(expires_at) : json_null();
        return json_pack("{s:s, s:s, s:o*}", "key_name", key_name, "scope", dm_scope_name(scope),
                         "expires_at", exp);
}

int dm_api_session_auth(void *arg, const struct dm_http_request *req, struct dm_http_principal *ret)
{
        struct dm_app *app = arg;
        char value[DM_SESSION_VALUE_MAX];
        struct dm_session s;
        struct dm_api_key k;

        if (!app->session_secret ||
            dm_session_cookie_find(dm_http_header(req, "Cookie"), value, sizeof(value)) < 0)
                return DM_EACCES;
        int r = dm_session_verify(app->store, app->session_secret, value, dm_now_ms(), &s, &k);
        if (r < 0)
                return r;
        r = dm_session_origin_check(req->method_name, dm_http_header(req, "Origin"),
                                    dm_http_header(req, "Host"),
                                    dm_http_header(req, "Sec-Fetch-Site"));
        if (r < 0)
                return r;
        ret->scope = s.scope;
        ret->key_id = k.id;
        memcpy(ret->key_name, k.name, sizeof(ret->key_name));
        ret->key_name[sizeof(ret->key_name) - 1] = '\0';
        return 0;
}

/* POST: {"key": "dmk_..."} -> 200 and the cookie. The form posts from the UI's own page;
 * the Origin check refuses a sign-in forced from another site's page. */
static void session_create(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        char value[DM_SESSION_VALUE_MAX];
        struct dm_api_key k;
        struct dm_session s;
        json_t *obj = NULL;

        if (!app->session_secret) {
                dm_http_problem(res, 503, &dm_problem_unavailable, "sessions are not available");
                return;
        }
        if (dm_session_origin_check(req->method_name, dm_http_header(req, "Origin"),
                                    dm_http_header(req, "Host"),
                                    dm_http_header(req, "Sec-Fetch-Site")) < 0) {
                dm_http_problem(res, 403, &dm_problem_forbidden,
                                "sign-in must come from this service's own page (Origin)");
                return;
        }
        if (dm_api_read_body(req, res, session_fields, &obj) < 0)
                return;
        const char *key = json_string_value(json_object_get(obj, "key"));
        int r = dm_apikey_authenticate(app->store, key, &k);
        if (r == DM_EACCES) {
                dm_http_problem_field(res, 401, &dm_problem_unauthorized, "key",
                                      "the API key is not valid");
                goto out;
        }
        if (r < 0) {
                dm_api_store_error(res, r, "sign in");
                goto out;
        }
        r = dm_session_open(app->store, app->session_secret, &k, dm_now_ms(), value, &s);
        if (r < 0) {
                dm_api_store_error(res, r, "open session");
                goto out;
        }
        if (set_cookie(req, res, value) < 0) {
                dm_api_store_error(res, DM_ENOMEM, "session cookie");
                goto out;
        }
        dm_http_respond_json(res, 200, session_json(k.name, s.scope, s.expires_at));
out:
        json_decref(obj);
}

/* GET: who is signed in (by cookie or by key): the UI asks on load. */
static void session_get(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        char value[DM_SESSION_VALUE_MAX];
        struct dm_session_claims c;
        int64_t expires_at = 0;

        if (app->session_secret &&
            dm_session_cookie_find(dm_http_header(req, "Cookie"), value, sizeof(value)) == 0 &&
            dm_session_claims_check(app->session_secret, value, dm_now_ms(), &c) == 0 &&
            !dm_http_header(req, "Authorization"))
                expires_at = c.expires_at;
        dm_http_respond_json(
            res, 200, session_json(req->principal.key_name, req->principal.scope, expires_at));
}

/* DELETE: ends the session on the server (the old cookie is refused from then on) and
 * tells the browser to drop it. */
static void session_delete(struct dm_http_request *req, struct dm_http_response *res)
{
        struct dm_app *app = req->app;
        char value[DM_SESSION_VALUE_MAX];

        if (app->session_secret &&
            dm_session_cookie_find(dm_http_header(req, "Cookie"), value, sizeof(value)) == 0) {
                int r = dm_session_close(app->store, app->session_secret, value, dm_now_ms());
                if (r < 0 && r != DM_ENOENT && r != DM_EACCES) {
                        dm_api_store_error(res, r, "sign out");
                        return;
                }
        }
        dm_http_respond_empty(res, 204);
        if (set_cookie(req, res, NULL) < 0)
                dm_api_store_error(res, DM_ENOMEM, "session cookie");
}

const struct dm_http_route dm_api_session_routes[] = {
    {DM_HTTP_POST, "/api/v1/session", session_create, DM_SCOPE_NONE,
     DM_HTTP_ROUTE_PUBLIC | DM_HTTP_ROUTE_EXPENSIVE},
    {DM_HTTP_GET, "/api/v1/session", session_get, DM_SCOPE_READ, 0},
    {DM_HTTP_DELETE, "/api/v1/session", session_delete, DM_SCOPE_READ, 0},
    {0},
};
