/* Fuzz target for the WHOIS text parser: any bytes give a record whose text is clean UTF-8
 * without control characters, with sorted unique lists, and a referral that is a bare host
 * name. */
#include "dm/error.h"
#include "dm/registration.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s)
{
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
                if (*p < 0x20 || *p == 0x7f)
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct dm_whois_result w;
        int e;

        dm_whois_parse((const char *)data, size, &w);
        if (w.has_data && w.not_found)
                abort();
        check_text(w.record.registrar);
        check_text(w.record.registrant.name);
        check_text(w.record.registrant.organization);
        check_text(w.record.registrant.email);
        check_text(w.record.registrant.country);
        for (const char *p = w.referral; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                      *p == '.'))
                        abort();
        for (size_t i = 1; i < w.record.nns; i++)
                if (strcmp(w.record.name_servers[i - 1], w.record.name_servers[i]) >= 0)
                        abort();
        for (size_t i = 0; i < w.record.nstatuses; i++)
                check_text(w.record.statuses[i]);
        json_t *j = dm_reg_record_to_json(&w.record);
        if (j) {
                struct dm_reg_record back;
                if (dm_reg_record_from_json(j, &back) != 0)
                        abort();
                json_t *d = dm_reg_diff(&w.record, &back, &e);
                if (d || e)
                        abort();
                json_decref(j);
        }
        return 0;
}
