/* The TLS check's API objects, shared by the REST routes and the change.tls event so that
 * both read the same. */
#include "dm/tls.h"

#include "dm/json.h"
#include "dm/time.h"

#include <string.h>

json_t *dm_tls_cert_object(const char *stored, int64_t at)
{
        if (!stored)
                return NULL;
        json_t *obj = NULL;
        if (dm_json_parse_object(stored, strlen(stored), NULL, &obj) < 0)
                return NULL;
        int64_t not_after = 0;
        const char *na = json_string_value(json_object_get(obj, "not_after"));
        json_t *days = na && dm_time_parse(na, &not_after) == 0
                           ? json_integer(dm_tls_days_left(not_after, at))
                           : json_null();
        if (json_object_set_new(obj, "days_left", days) < 0) {
                json_decref(obj);
                return NULL;
        }
        return obj;
}

static json_t *time_or_null(int64_t ms)
{
        char ts[DM_RFC3339_LEN];
        return ms ? json_string(dm_time_format(ms, ts)) : json_null();
}

static json_t *text_or_null(const char *s)
{
        return s && *s ? dm_json_string_lossy(s) : json_null();
}

static json_t *or_null(json_t *j)
{
        return j ? j : json_null();
}

json_t *dm_tls_endpoint_json(const struct dm_tls_endpoint *e, int64_t now)
{
        bool ever = e->cert != NULL; /* a handshake ever gave a certificate */
        return json_pack("{s:i, s:o, s:s, s:o, s:o, s:o, s:o, s:o}", "port", (int)e->port,
                         "address", text_or_null(e->address), "status",
                         e->status == DM_TLS_OK ? "ok" : "error", "error",
                         e->status == DM_TLS_ERROR ? text_or_null(e->error) : json_null(),
                         "protocol", text_or_null(e->protocol), "chain_valid",
                         ever ? json_boolean(e->chain_valid) : json_null(), "chain_error",
                         ever ? text_or_null(e->chain_error) : json_null(), "certificate",
                         or_null(dm_tls_cert_object(e->cert, now)));
}

json_t *dm_tls_change_json(const struct dm_tls_change *ch, bool with_domain)
{
        json_t *o =
            json_pack("{s:I, s:i, s:o, s:b, s:o, s:o, s:o}", "id", (json_int_t)ch->id, "port",
                      (int)ch->port, "address", text_or_null(ch->address), "chain_valid",
                      ch->chain_valid, "observed_at", time_or_null(ch->observed_at), "before",
                      or_null(dm_tls_cert_object(ch->before, ch->observed_at)), "after",
                      or_null(dm_tls_cert_object(ch->after, ch->observed_at)));
        if (o && with_domain && json_object_set_new(o, "domain", json_string(ch->domain)) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}
