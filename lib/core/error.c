/* Error texts and names, generated from the one X-macro table in dm/error.h so the enum,
 * the names and the messages cannot drift apart. */
#include "dm/error.h"

#include <stdarg.h>
#include <stdio.h>

#include <stddef.h>

struct dm_error_entry {
        int code;
        const char *name;
        const char *text;
};

static const struct dm_error_entry dm_error_table[] = {{DM_OK, "OK", "success"},
#define DM_ERROR_ENTRY(name, value, text) {DM_##name, #name, text},
                                                       DM_ERRNO_MAP(DM_ERROR_ENTRY)
                                                           DM_DOMAIN_MAP(DM_ERROR_ENTRY)
#undef DM_ERROR_ENTRY
};

static const struct dm_error_entry *error_lookup(int err)
{
        for (size_t i = 0; i < sizeof(dm_error_table) / sizeof(dm_error_table[0]); i++) {
                if (dm_error_table[i].code == err)
                        return &dm_error_table[i];
        }
        return NULL;
}

const char *dm_strerror(int err)
{
        const struct dm_error_entry *e = error_lookup(err);
        return e ? e->text : "unknown error";
}

const char *dm_errname(int err)
{
        const struct dm_error_entry *e = error_lookup(err);
        return e ? e->name : NULL;
}

int dm_errorf(int code, char *err, size_t errlen, const char *fmt, ...)
{
        if (err && errlen > 0) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(err, errlen, fmt, ap);
                va_end(ap);
        }
        return code;
}
