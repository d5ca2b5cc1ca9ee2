/* Files compiled into the binary (migrations, OpenAPI document, web assets). */
#ifndef DM_EMBED_H
#define DM_EMBED_H

#include <stddef.h>

/* One embedded file. `data` is NUL-terminated (the NUL is not counted in `len`).
 * Tables end with an entry whose `name` is NULL. Everything is static: never free. */
struct dm_embed_file {
        const char *name;
        const unsigned char *data;
        size_t len;
};

/* sql/sqlite/NNN_*.sql, sorted by name. */
extern const struct dm_embed_file dm_embed_sql_sqlite[];
/* sql/postgres/NNN_*.sql, sorted by name. */
extern const struct dm_embed_file dm_embed_sql_postgres[];
/* docs/openapi.json */
extern const struct dm_embed_file dm_embed_docs[];
/* web/ * (the UI), by file name. */
extern const struct dm_embed_file dm_embed_web[];
/* data/rdap/dns.json: the IANA RDAP bootstrap file (RFC 9224) shipped with the source. */
extern const struct dm_embed_file dm_embed_rdap[];

/* Returns the entry called `name` in `table`, or NULL. */
const struct dm_embed_file *dm_embed_find(const struct dm_embed_file *table, const char *name);

#endif
