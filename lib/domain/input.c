/* lib/domain: a domain's name and settings from an API body, every refusal collected. Each
 * field stops at its first refusal (the rest of a bad array says little more); the other
 * fields are still checked. */
#include "dm/domain_input.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "dm/check.h"
#include "dm/json.h"
#include "dm/name.h"
#include "dm/rrtype.h"

void dm_field_error(struct dm_field_errors *fe, const char *field, const char *fmt, ...)
{
        if (fe->n < DM_FIELD_ERRORS_MAX) {
                struct dm_field_error *e = &fe->e[fe->n];
                va_list ap;
                snprintf(e->field, sizeof(e->field), "%s", field);
                va_start(ap, fmt);
                vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
                va_end(ap);
        }
        fe->n++;
}

void dm_domain_input_name(const json_t *v, struct dm_field_errors *fe, struct dm_domain *d)
{
        struct dm_name name;
        char why[160];

        if (!json_is_string(v)) {
                dm_field_error(fe, "name", "must be a string, not %s", dm_json_value_type_name(v));
                return;
        }
        if (dm_name_parse(json_string_value(v), json_string_length(v), why, sizeof(why), &name) <
            0) {
                dm_field_error(fe, "name", "%s", why);
                return;
        }
        memcpy(d->name, name.ascii, sizeof(d->name));
        memcpy(d->unicode_name, name.unicode, sizeof(d->unicode_name));
}

/* interval: seconds, a duration string ("5m", as the flags take), or null (the configured
 * default). */
static void read_interval(const json_t *v, int64_t min_interval_ms, struct dm_field_errors *fe,
                          struct dm_domain *d)
{
        char why[160];
        int64_t s;

        if (json_is_null(v)) {
                d->interval_ms = 0;
                return;
        }
        if (dm_json_duration_s(v, &s, why, sizeof(why)) < 0) {
                dm_field_error(fe, "interval", "%s", why);
                return;
        }
        int64_t lo = min_interval_ms / 1000 + (min_interval_ms % 1000 > 0);
        if (lo < 1)
                lo = 1;
        if (s < lo || s > DM_DOMAIN_INTERVAL_MAX_S) {
                dm_field_error(fe, "interval", "must be between %lld and %d seconds", (long long)lo,
                               DM_DOMAIN_INTERVAL_MAX_S);
                return;
        }
        d->interval_ms = s * 1000;
}

/* The array member `name` before its items are read: refused unless a non-empty array (the
 * refusal says `empty` when it is empty). */
static bool array_ok(const json_t *v, const char *name, const char *empty,
                     struct dm_field_errors *fe)
{
        if (!json_is_array(v)) {
                dm_field_error(fe, name, "must be an array, not %s", dm_json_value_type_name(v));
                return false;
        }
        if (json_array_size(v) == 0) {
                dm_field_error(fe, name, "must not be empty (%s)", empty);
                return false;
        }
        return true;
}

/* Item i of the array `name` as a string, or NULL after a refusal naming "name[i]" (also
 * written to field, for the caller's own refusals). */
static const char *string_item(const json_t *item, const char *name, size_t i, char *field,
                               size_t size, struct dm_field_errors *fe)
{
        snprintf(field, size, "%s[%zu]", name, i);
        if (!json_is_string(item)) {
                dm_field_error(fe, field, "must be a string, not %s",
                               dm_json_value_type_name(item));
                return NULL;
        }
        return json_string_value(item);
}

/* record_types: non-empty array of type names, or null (the default set). A type named twice
 * is kept once. */
static void read_record_types(const json_t *v, struct dm_field_errors *fe, struct dm_domain *d)
{
        uint16_t types[DM_RRTYPE_MAX_PER_DOMAIN];
        size_t n = 0, i;
        json_t *item;

        if (json_is_null(v)) {
                d->nrecord_types = 0;
                return;
        }
        if (json_array_size(v) > DM_RRTYPE_MAX_PER_DOMAIN) {
                dm_field_error(fe, "record_types", "at most %d record types",
                               DM_RRTYPE_MAX_PER_DOMAIN);
                return;
        }
        if (!array_ok(v, "record_types", "use null for the default set", fe))
                return;
        json_array_foreach(v, i, item)
        {
                char field[48];
                uint16_t t;
                const char *s = string_item(item, "record_types", i, field, sizeof(field), fe);
                if (!s)
                        return;
                if (strlen(s) != json_string_length(item) || dm_rrtype_from_name(s, &t) < 0) {
                        dm_field_error(fe, field, "unknown or unsupported record type \"%.24s\"",
                                       s);
                        return;
                }
                bool dup = false;
                for (size_t j = 0; j < n; j++)
                        dup = dup || types[j] == t;
                if (!dup)
                        types[n++] = t;
        }
        memcpy(d->record_types, types, n * sizeof(types[0]));
        d->nrecord_types = n;
}

/* checks: non-empty array of check names, or null (DM_DEFAULT_CHECKS). */
static void read_checks(const json_t *v, struct dm_field_errors *fe, struct dm_domain *d)
{
        unsigned checks = 0;
        size_t i;
        json_t *item;

        if (json_is_null(v)) {
                d->checks = 0;
                return;
        }
        if (!array_ok(v, "checks", "use null for the default set, or disable the domain", fe))
                return;
        json_array_foreach(v, i, item)
        {
                char field[32];
                unsigned bit;
                const char *s = string_item(item, "checks", i, field, sizeof(field), fe);
                if (!s)
                        return;
                if (dm_check_from_name(s, json_string_length(item), &bit) < 0) {
                        dm_field_error(fe, field,
                                       "unknown check \"%.24s\" (use dns, tls, registration)", s);
                        return;
                }
                checks |= bit;
        }
        d->checks = checks;
}

/* tls_ports: array of 1..DM_TLS_PORTS_MAX distinct ports, or null (443). */
static void read_tls_ports(const json_t *v, struct dm_field_errors *fe, struct dm_domain *d)
{
        uint16_t ports[DM_TLS_PORTS_MAX];
        size_t n = 0, i;
        json_t *item;

        if (json_is_null(v)) {
                d->ntls_ports = 0;
                return;
        }
        if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > DM_TLS_PORTS_MAX) {
                dm_field_error(fe, "tls_ports", "must hold 1 to %d ports (null: %d)",
                               DM_TLS_PORTS_MAX, DM_TLS_PORT_DEFAULT);
                return;
        }
        json_array_foreach(v, i, item)
        {
                char field[32];
                snprintf(field, sizeof(field), "tls_ports[%zu]", i);
                json_int_t p = json_integer_value(item);
                if (!json_is_integer(item) || p < 1 || p > 65535) {
                        dm_field_error(fe, field, "must be a port number from 1 to 65535");
                        return;
                }
                for (size_t j = 0; j < n; j++) {
                        if (ports[j] == p) {
                                dm_field_error(fe, field, "repeats port %d", (int)p);
                                return;
                        }
                }
                ports[n++] = (uint16_t)p;
        }
        memcpy(d->tls_ports, ports, n * sizeof(ports[0]));
        d->ntls_ports = n;
}

void dm_domain_input_settings(const json_t *obj, int64_t min_interval_ms,
                              struct dm_field_errors *fe, struct dm_domain *d)
{
        const json_t *v;

        if ((v = json_object_get(obj, "interval")))
                read_interval(v, min_interval_ms, fe, d);
        if ((v = json_object_get(obj, "record_types")))
                read_record_types(v, fe, d);
        if ((v = json_object_get(obj, "checks")))
                read_checks(v, fe, d);
        if ((v = json_object_get(obj, "tls_ports")))
                read_tls_ports(v, fe, d);
        if ((v = json_object_get(obj, "enabled"))) {
                if (json_is_boolean(v))
                        d->enabled = json_is_true(v);
                else
                        dm_field_error(fe, "enabled", "must be true or false, not %s",
                                       dm_json_value_type_name(v));
        }
}

static const struct {
        const char *name;
        unsigned bit;
} setting_fields[] = {
    {"enabled", DM_DOMAIN_ENABLED},           {"interval", DM_DOMAIN_INTERVAL},
    {"record_types", DM_DOMAIN_RECORD_TYPES}, {"checks", DM_DOMAIN_CHECKS},
    {"tls_ports", DM_DOMAIN_TLS_PORTS},
};

unsigned dm_domain_input_fields(const json_t *obj)
{
        unsigned fields = 0;
        for (size_t i = 0; i < sizeof(setting_fields) / sizeof(setting_fields[0]); i++) {
                if (json_object_get(obj, setting_fields[i].name))
                        fields |= setting_fields[i].bit;
        }
        return fields;
}

const char *dm_domain_fields_names(unsigned fields, char *buf, size_t size)
{
        size_t len = 0;
        if (size == 0)
                return buf;
        buf[0] = '\0';
        for (size_t i = 0; i < sizeof(setting_fields) / sizeof(setting_fields[0]); i++) {
                if (!(fields & setting_fields[i].bit))
                        continue;
                int w =
                    snprintf(buf + len, size - len, "%s%s", len ? "," : "", setting_fields[i].name);
                if (w < 0 || (size_t)w >= size - len) {
                        buf[len] = '\0'; /* whole names only */
                        break;
                }
                len += (size_t)w;
        }
        return buf;
}
