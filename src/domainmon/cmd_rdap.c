/* `domainmon rdap-bootstrap update FILE|URL`: validates a bootstrap file and makes it the
 * one the DNS services use (DM_RDAP_BOOTSTRAP's path, else rdap-dns.json in the working
 * directory, which then takes the place of the built-in copy). Written to a temporary
 * file and renamed, so a running service never reads half a file; it picks the new one up
 * within a minute. */
#include "app.h"
#include "dns_int.h"

#include "dm/error.h"
#include "dm/reglookup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int dm_cmd_rdap_bootstrap(struct dm_app *app, int argc, char **argv)
{
        char err[300], tmp[4096];
        char *data = NULL;
        size_t len = 0;

        if (argc != 2 || strcmp(argv[0], "update") != 0) {
                fprintf(stderr, "usage: domainmon rdap-bootstrap update FILE|URL\n");
                return 2;
        }
        const char *dest =
            app->conf.rdap_bootstrap ? app->conf.rdap_bootstrap : DM_RDAP_BOOTSTRAP_LOCAL;
        int r = dm_rdap_bootstrap_fetch(argv[1], app->conf.registration_timeout_ms, &data, &len,
                                        err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "domainmon: %s: %s\n", argv[1], err[0] ? err : dm_strerror(r));
                return 1;
        }
        struct dm_rdap_bootstrap *bs = NULL;
        (void)dm_rdap_bootstrap_parse(data, len, err, sizeof(err), &bs);
        size_t entries = dm_rdap_bootstrap_count(bs);
        char publication[64];
        snprintf(publication, sizeof(publication), "%s", dm_rdap_bootstrap_publication(bs));
        dm_rdap_bootstrap_free(bs);

        snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", dest, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        bool ok = f && fwrite(data, 1, len, f) == len;
        if (f && fclose(f) != 0)
                ok = false;
        free(data);
        if (!ok || rename(tmp, dest) != 0) {
                fprintf(stderr, "domainmon: cannot write %s\n", dest);
                unlink(tmp);
                return 1;
        }
        printf("%s: %zu TLDs, published %s\n", dest, entries,
               publication[0] ? publication : "(no date)");
        return 0;
}
