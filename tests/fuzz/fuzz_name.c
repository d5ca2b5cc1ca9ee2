/* Fuzz target for dm_name_parse: any bytes must give either a reason or a canonical name
 * that is lower case, within DNS limits, and a fixed point of the parser. */
#include "dm/error.h"
#include "dm/name.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct dm_name n, again;
        char err[256];

        int r = dm_name_parse((const char *)data, size, err, sizeof(err), &n);
        if (r != 0) {
                if (r != DM_EBADNAME || err[0] == '\0' || strlen(err) >= sizeof(err))
                        abort();
                return 0;
        }

        size_t len = strlen(n.ascii);
        if (len == 0 || len > DM_NAME_MAX || n.ascii[len - 1] == '.')
                abort();
        if (!memchr(n.ascii, '.', len))
                abort();
        size_t label = 0;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)n.ascii[i];
                if (c >= 'A' && c <= 'Z')
                        abort();
                if (c >= 0x80 || c <= ' ')
                        abort();
                label = (c == '.') ? 0 : label + 1;
                if (label > DM_LABEL_MAX)
                        abort();
        }
        if (strlen(n.unicode) == 0 || strlen(n.unicode) > DM_UNAME_MAX)
                abort();
        /* What other processes check task names with must accept every parsed name. */
        if (!dm_name_is_stored_form(n.ascii))
                abort();

        /* Canonical means stable: parsing either form again gives the same name. */
        if (dm_name_parse(n.ascii, len, err, sizeof(err), &again) != 0)
                abort();
        if (strcmp(again.ascii, n.ascii) != 0 || strcmp(again.unicode, n.unicode) != 0)
                abort();
        if (dm_name_parse(n.unicode, strlen(n.unicode), err, sizeof(err), &again) != 0)
                abort();
        if (strcmp(again.ascii, n.ascii) != 0)
                abort();
        return 0;
}
