/* Fuzz target for the operator API's parsers and the log's JSON form: any bytes must give a
 * clean refusal or a value within its contract.
 *   - dm_check_status_mask_parse: a mask of known statuses only;
 *   - dm_http_bool_parse: true/false alone;
 *   - dm_json_duration_s on the bytes as a JSON string: whole seconds, or a reason;
 *   - dm_change_soa_serial_only on the two halves (split at the first '|');
 *   - dm_log_logfmt_to_json: always one valid JSON object, within the buffer. */
#include "dm/change.h"
#include "dm/error.h"
#include "dm/http.h"
#include "dm/json.h"
#include "dm/log.h"
#include "dm/store.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size > 4096)
                return 0;
        char *s = malloc(size + 1);
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';

        unsigned mask = 0;
        if (dm_check_status_mask_parse(s, &mask) == 0 &&
            (mask == 0 || (mask & ~((1u << DM_CHECK_PENDING) | (1u << DM_CHECK_OK) |
                                    (1u << DM_CHECK_ERROR))) != 0))
                abort();
        bool b;
        if (dm_http_bool_parse(s, &b) == 0 && strcmp(s, b ? "true" : "false") != 0)
                abort();

        json_t *v = json_stringn_nocheck(s, size);
        if (v) {
                int64_t secs = -1;
                char why[160] = "";
                int r = dm_json_duration_s(v, &secs, why, sizeof(why));
                if (r == 0 && secs < 0)
                        abort();
                if (r != 0 && (r != DM_EINVAL || why[0] == '\0'))
                        abort();
                json_decref(v);
        }

        char *bar = strchr(s, '|');
        if (bar) {
                *bar = '\0';
                if (dm_change_soa_serial_only(s, s)) /* never against itself */
                        abort();
                (void)dm_change_soa_serial_only(s, bar + 1);
                *bar = '|';
        }

        char out[512];
        size_t n = dm_log_logfmt_to_json(s, strlen(s), out, sizeof(out));
        if (n >= sizeof(out) || strlen(out) != n || out[0] != '{' || out[n - 1] != '}')
                abort();
        json_error_t jerr;
        json_t *obj = json_loadb(out, n, 0, &jerr);
        if (!obj || !json_is_object(obj))
                abort();
        json_decref(obj);
        free(s);
        return 0;
}
