/* Fuzz target for the RDAP reader (dm_rdap_parse) and the bootstrap reader: any bytes give
 * either a reason or a record whose text is clean, whose lists are sorted and unique, and
 * whose JSON form reads back to the same record. */
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
        struct dm_reg_record r, back;
        struct dm_rdap_bootstrap *bs;
        char err[256];
        int e;

        if (dm_rdap_bootstrap_parse((const char *)data, size, err, sizeof(err), &bs) == 0) {
                (void)dm_rdap_bootstrap_lookup(bs, "www.example.com");
                dm_rdap_bootstrap_free(bs);
        }
        int rc = dm_rdap_parse((const char *)data, size, &r, err, sizeof(err));
        if (rc != 0) {
                if ((rc != DM_EPARSE && rc != DM_EINVAL) || err[0] == '\0')
                        abort();
                return 0;
        }
        check_text(r.registrar);
        check_text(r.registrant.name);
        check_text(r.registrant.organization);
        check_text(r.registrant.email);
        check_text(r.registrant.country);
        for (size_t i = 0; i < r.nns; i++) {
                check_text(r.name_servers[i]);
                if (i > 0 && strcmp(r.name_servers[i - 1], r.name_servers[i]) >= 0)
                        abort();
        }
        for (size_t i = 1; i < r.nstatuses; i++)
                if (strcmp(r.statuses[i - 1], r.statuses[i]) >= 0)
                        abort();
        json_t *j = dm_reg_record_to_json(&r);
        if (!j)
                return 0;
        if (dm_reg_record_from_json(j, &back) != 0)
                abort();
        json_t *d = dm_reg_diff(&r, &back, &e);
        if (d || e)
                abort();
        json_decref(j);
        return 0;
}
