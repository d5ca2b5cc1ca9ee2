/* Fuzz target for the certificate summariser (dm_tls_cert_parse): any bytes, DER or PEM,
 * give either DM_EPARSE or a summary whose fingerprint is 64 lower-case hex digits and
 * whose object has every field, with strings that are valid UTF-8 without control
 * characters (jansson refuses invalid UTF-8 when the object is dumped and read back). */
#include "dm/error.h"
#include "dm/json.h"
#include "dm/tls.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const json_t *v)
{
        if (!json_is_string(v))
                abort();
        const char *s = json_string_value(v);
        for (size_t i = 0; i < json_string_length(v); i++) {
                unsigned char c = (unsigned char)s[i];
                if (c < 0x20 || c == 0x7f)
                        abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const fields[] = {"subject",    "issuer",   "serial",
                                             "sha256",     "key_type", "signature_algorithm",
                                             "not_before", "not_after"};
        struct dm_tls_cert c;
        int r = dm_tls_cert_parse(data, size, &c);
        if (r != 0) {
                if (r != DM_EPARSE && r != DM_ENOMEM)
                        abort();
                return 0;
        }
        if (strlen(c.sha256) != 64 || strspn(c.sha256, "0123456789abcdef") != 64)
                abort();
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
                check_text(json_object_get(c.json, fields[i]));
        const json_t *sans = json_object_get(c.json, "sans");
        if (!json_is_array(sans) || json_array_size(sans) > DM_TLS_SANS_MAX)
                abort();
        for (size_t i = 0; i < json_array_size(sans); i++)
                check_text(json_array_get(sans, i));
        if (!json_is_integer(json_object_get(c.json, "key_bits")))
                abort();
        char *text = dm_json_dump(c.json, NULL);
        if (!text)
                abort();
        json_t *back = NULL;
        if (dm_json_parse_object(text, strlen(text), NULL, &back) != 0 || !json_equal(back, c.json))
                abort();
        json_decref(back);
        free(text);
        dm_tls_cert_done(&c);
        return 0;
}
