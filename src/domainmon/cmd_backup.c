/* `domainmon backup FILE`: a consistent copy of the SQLite store, also of a running one
 * (lib/store/file.c does the copy). */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "dm/error.h"
#include "dm/store_file.h"

int dm_cmd_backup(struct dm_app *app, int argc, char **argv)
{
        char err[1200], db[1200];

        if (argc != 1 || argv[0][0] == '\0' || (argv[0][0] == '-' && argv[0][1] != '\0')) {
                fprintf(stderr, "domainmon backup: give one FILE to write the copy to (see "
                                "'domainmon backup --help')\n");
                return 2;
        }
        int r = dm_store_backup(app->conf.database_url, argv[0], err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "domainmon backup: %s\n", err);
                return r == DM_EINVAL ? 2 : 1;
        }
        printf("copied %s to %s\n", dm_store_describe(app->conf.database_url, db, sizeof(db)),
               argv[0]);
        return 0;
}
