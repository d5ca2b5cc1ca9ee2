/* What a user may set on a domain, read from an API body (any JSON object: a member of the
 * wrong type is refused here too): the name, interval, record_types, checks, tls_ports and
 * enabled. Every field is checked and every refusal collected, so that one answer names all
 * that is wrong with a request. */
#ifndef DM_DOMAIN_INPUT_H
#define DM_DOMAIN_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dm/store.h"

#define DM_DOMAIN_INTERVAL_MAX_S 2592000 /* 30 days */
#define DM_FIELD_ERRORS_MAX 8            /* kept; more are counted */

struct dm_field_error {
        char field[48]; /* "interval", "record_types[2]", ... */
        char msg[200];
};

struct dm_field_errors {
        size_t n; /* every refusal, also those past DM_FIELD_ERRORS_MAX */
        struct dm_field_error e[DM_FIELD_ERRORS_MAX];
};

void dm_field_error(struct dm_field_errors *fe, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The "name" member (a string): sets d->name and d->unicode_name, or adds a refusal. */
void dm_domain_input_name(const json_t *v, struct dm_field_errors *fe, struct dm_domain *d);

/* The settings members of obj. A member that is absent leaves d as it is; null sets the
 * default (0: the configured interval, the default record types, checks and port). An
 * interval below min_interval_ms (rounded up to whole seconds, at least 1 s) or above
 * DM_DOMAIN_INTERVAL_MAX_S is refused. On a refusal d may be changed in part. */
void dm_domain_input_settings(const json_t *obj, int64_t min_interval_ms,
                              struct dm_field_errors *fe, struct dm_domain *d);

/* The DM_DOMAIN_* bits of the settings members obj holds. */
unsigned dm_domain_input_fields(const json_t *obj);

/* "enabled,interval,checks": the names of the bits in fields, comma-separated ("" for none).
 * Returns buf. */
const char *dm_domain_fields_names(unsigned fields, char *buf, size_t size);

#endif
