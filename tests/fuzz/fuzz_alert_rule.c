/* Alert rules come from API bodies. Whatever the body, applying it never crashes; a rule it
 * accepts has a spec that parses back and renders, and applying the rule's own rendering
 * again as an update is accepted and changes nothing of the spec. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm/alert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        json_error_t jerr;
        json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
        struct dm_alert_rule rule = {0};
        struct dm_alert_error err;
        struct dm_alert_spec spec;

        if (!body)
                return 0;
        bool allow = size > 0 && (data[0] & 1);
        if (dm_alert_rule_apply(&rule, body, true, allow, &err) == 0) {
                if (dm_alert_spec_parse(rule.spec, &spec) < 0)
                        abort();
                dm_alert_spec_done(&spec);
                rule.id = 1;
                json_t *shown = dm_alert_rule_json(&rule, false);
                if (!shown)
                        abort();
                /* What the API shows, sent back as an update, is accepted as it is. */
                json_object_del(shown, "id");
                json_object_del(shown, "created_at");
                json_object_del(shown, "updated_at");
                char *before = strdup(rule.spec);
                if (!before || dm_alert_rule_apply(&rule, shown, false, allow, &err) != 0 ||
                    strcmp(before, rule.spec) != 0)
                        abort();
                free(before);
                json_decref(shown);
        } else if (!err.field[0] && !err.detail[0]) {
                abort(); /* a refusal always says why */
        }
        dm_alert_rule_done(&rule);
        json_decref(body);
        return 0;
}
