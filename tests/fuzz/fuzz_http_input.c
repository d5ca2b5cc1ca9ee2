/* Fuzz target for what the HTTP layer reads from clients: request paths through the router
 * (percent-decoding of captures), page cursors, JSON bodies through the strict reader, and
 * problem details built from hostile text. Properties checked: nothing crashes, a decoded
 * cursor re-encodes to the same text, and every message is valid JSON text. */
#include "dm/error.h"
#include "dm/http.h"
#include "dm/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void h(struct dm_http_request *req, struct dm_http_response *res)
{
}

static const struct dm_http_route routes[] = {
    {DM_HTTP_GET, "/api/v1/domains", h, DM_SCOPE_READ, 0},
    {DM_HTTP_POST, "/api/v1/domains/import", h, DM_SCOPE_WRITE, 0},
    {DM_HTTP_GET, "/api/v1/domains/{name}", h, DM_SCOPE_READ, 0},
    {DM_HTTP_GET, "/api/v1/domains/{name}/records/{type}", h, DM_SCOPE_READ, 0},
    {0},
};

static const struct dm_json_field fields[] = {
    {"name", DM_JSON_STRING, DM_JSON_REQUIRED},
    {"interval", DM_JSON_INTEGER, DM_JSON_NULLABLE},
    {"record_types", DM_JSON_ARRAY, 0},
    {"enabled", DM_JSON_BOOL, 0},
    {0},
};

static struct dm_http_router *router(void)
{
        static struct dm_http_router *r;
        if (!r && (dm_http_router_new(&r) != 0 || dm_http_router_add(r, routes) != 0))
                abort();
        return r;
}

static void check_path(const char *s)
{
        static struct dm_http_match m;
        if (dm_http_router_match(router(), DM_HTTP_GET, s, &m) != 0)
                return;
        if (!m.route && m.ncaptures)
                abort();
        for (size_t i = 0; i < m.ncaptures; i++) {
                if (strlen(m.captures[i].value) != m.captures[i].len || m.captures[i].len == 0)
                        abort();
        }
}

static void check_cursor(const char *s)
{
        char key[512], again[1024];
        if (dm_http_cursor_decode(s, key, sizeof(key)) != 0)
                return;
        if (dm_http_cursor_encode(key, again, sizeof(again)) != 0 || strcmp(again, s) != 0)
                abort();
}

static void check_json(const char *s, size_t len)
{
        struct dm_json_error err;
        json_t *obj = NULL;
        int r = dm_json_parse_object(s, len, &err, &obj);
        if (r == 0)
                r = dm_json_check_fields(obj, fields, &err);
        json_decref(obj);
        if (r == 0 || r == DM_ENOMEM)
                return;
        json_t *a = json_string(err.field), *b = json_string(err.detail);
        if (!a || !b)
                abort();
        json_decref(a);
        json_decref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';

        check_path(s);
        check_cursor(s);
        check_json((const char *)data, size);

        json_t *p = dm_http_problem_new(400, &dm_problem_invalid_body, s);
        if (!p)
                abort();
        json_decref(p);
        free(s);
        return 0;
}
