/* Lookup in the tables cmake/embed.cmake generates. The tables are small (a few dozen
 * files), so a linear scan is all that is needed. */
#include "dm/embed.h"

#include <string.h>

const struct dm_embed_file *dm_embed_find(const struct dm_embed_file *table, const char *name)
{
        if (!table || !name)
                return NULL;
        for (const struct dm_embed_file *f = table; f->name; f++) {
                if (strcmp(f->name, name) == 0)
                        return f;
        }
        return NULL;
}
