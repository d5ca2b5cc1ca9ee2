/* A domain's name and settings come from API bodies. Whatever the body, reading it never
 * crashes; a body read without refusal leaves a domain within every limit, and a refusal
 * always names its field and says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm/check.h"
#include "dm/domain_input.h"
#include "dm/rrtype.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        json_error_t jerr;
        json_t *obj =
            json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        struct dm_field_errors fe = {0};
        struct dm_domain d = {0};

        if (!obj || !json_is_object(obj)) {
                json_decref(obj);
                return 0;
        }
        if (json_object_get(obj, "name"))
                dm_domain_input_name(json_object_get(obj, "name"), &fe, &d);
        dm_domain_input_settings(obj, 60000, &fe, &d);
        size_t kept = fe.n < DM_FIELD_ERRORS_MAX ? fe.n : DM_FIELD_ERRORS_MAX;
        for (size_t i = 0; i < kept; i++) {
                if (!fe.e[i].field[0] || !fe.e[i].msg[0])
                        abort();
        }
        if (fe.n == 0) {
                if (d.interval_ms != 0 &&
                    (d.interval_ms < 60000 || d.interval_ms > DM_DOMAIN_INTERVAL_MAX_S * 1000LL))
                        abort();
                if (d.nrecord_types > DM_RRTYPE_MAX_PER_DOMAIN || d.ntls_ports > DM_TLS_PORTS_MAX)
                        abort();
                for (size_t i = 0; i < d.nrecord_types; i++) {
                        for (size_t j = 0; j < i; j++) {
                                if (d.record_types[i] == d.record_types[j])
                                        abort();
                        }
                }
                for (size_t i = 0; i < d.ntls_ports; i++) {
                        if (d.tls_ports[i] == 0)
                                abort();
                        for (size_t j = 0; j < i; j++) {
                                if (d.tls_ports[i] == d.tls_ports[j])
                                        abort();
                        }
                }
                if (json_object_get(obj, "name") && !d.name[0])
                        abort();
        }
        json_decref(obj);
        return 0;
}
