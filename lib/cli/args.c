/* Command-line arguments of the client's subcommands: a small table per command, so every
 * command treats "--opt value", "--opt=value", "-h" and "--" the same way. */
#include "dm/cli.h"

#include <stdio.h>
#include <string.h>

#include "dm/error.h"

static int find_long(const struct dm_cli_opt *opts, const char *name, size_t len)
{
        for (int i = 0; i < DM_CLI_MAX_OPTS && opts && opts[i].name; i++) {
                if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
                        return i;
        }
        return -1;
}

static int find_short(const struct dm_cli_opt *opts, char c)
{
        for (int i = 0; i < DM_CLI_MAX_OPTS && opts && opts[i].name; i++) {
                if (opts[i].shortname && opts[i].shortname == c)
                        return i;
        }
        return -1;
}

int dm_cli_parse(int argc, char **argv, const struct dm_cli_opt *opts, struct dm_cli_args *ret,
                 char *err, size_t errlen)
{
        bool options = true;

        memset(ret, 0, sizeof(*ret));
        for (int a = 0; a < argc; a++) {
                const char *arg = argv[a];
                if (options && (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)) {
                        ret->help = true;
                        return 0;
                }
                if (options && strcmp(arg, "--") == 0) {
                        options = false;
                        continue;
                }
                if (options && arg[0] == '-' && arg[1] != '\0') {
                        int i;
                        const char *value = NULL;
                        if (arg[1] == '-') {
                                const char *eq = strchr(arg, '=');
                                size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
                                i = find_long(opts, arg, len);
                                if (i < 0)
                                        return dm_errorf(DM_EINVAL, err, errlen,
                                                         "unknown option '%.*s'", (int)len, arg);
                                if (eq && !opts[i].takes_value)
                                        return dm_errorf(DM_EINVAL, err, errlen,
                                                         "%s takes no value", opts[i].name);
                                value = eq ? eq + 1 : NULL;
                        } else {
                                i = arg[2] == '\0' ? find_short(opts, arg[1]) : -1;
                                if (i < 0)
                                        return dm_errorf(DM_EINVAL, err, errlen,
                                                         "unknown option '%.40s'", arg);
                        }
                        if (opts[i].takes_value && !value) {
                                if (a + 1 >= argc)
                                        return dm_errorf(DM_EINVAL, err, errlen, "%s needs a value",
                                                         opts[i].name);
                                value = argv[++a];
                        }
                        if (opts[i].takes_value && *value == '\0')
                                return dm_errorf(DM_EINVAL, err, errlen, "%s needs a value",
                                                 opts[i].name);
                        ret->present[i] = true;
                        ret->values[i] = value;
                        continue;
                }
                if (ret->npositional >= DM_CLI_MAX_POSITIONAL)
                        return dm_errorf(DM_EINVAL, err, errlen,
                                         "more than %d arguments (use import FILE for many names)",
                                         DM_CLI_MAX_POSITIONAL);
                ret->positional[ret->npositional++] = arg;
        }
        return 0;
}

const char *dm_cli_base_url(const char *api_url, const char *listen, char *buf, size_t size)
{
        if (api_url && *api_url) {
                snprintf(buf, size, "%s", api_url);
                return buf;
        }
        if (!listen || !*listen)
                listen = "127.0.0.1:8080";
        const char *port = strrchr(listen, ':');
        size_t hlen = port ? (size_t)(port - listen) : strlen(listen);
        const char *host = listen;
        if ((hlen == 7 && memcmp(listen, "0.0.0.0", 7) == 0) || hlen == 0 ||
            (hlen == 1 && listen[0] == '*')) {
                host = "127.0.0.1";
                hlen = 9;
        } else if (hlen == 4 && memcmp(listen, "[::]", 4) == 0) {
                host = "[::1]";
                hlen = 5;
        }
        snprintf(buf, size, "http://%.*s%s", (int)hlen, host, port ? port : ":8080");
        return buf;
}
