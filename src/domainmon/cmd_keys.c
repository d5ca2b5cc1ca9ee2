/* `domainmon keys`: create, list and revoke API keys. `create` prints the key alone on
 * stdout so that scripts can capture it; secrets are never shown again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "dm/apikey.h"
#include "dm/error.h"
#include "dm/json.h"
#include "dm/log.h"
#include "dm/time.h"

static int usage(const char *what)
{
        fprintf(stderr,
                "domainmon keys: %s (usage: keys create --name N [--scope read|write|admin], "
                "keys list, keys revoke KEY_ID|NAME)\n",
                what);
        return 2;
}

/* Takes "--opt value" or "--opt=value" at argv[*i]; returns the value or NULL. */
static const char *option_value(int argc, char **argv, int *i, const char *opt)
{
        size_t n = strlen(opt);

        if (strncmp(argv[*i], opt, n) != 0)
                return NULL;
        if (argv[*i][n] == '=')
                return argv[*i] + n + 1;
        if (argv[*i][n] == '\0' && *i + 1 < argc)
                return argv[++*i];
        return NULL;
}

static int name_in_use(struct dm_app *app, const char *name, bool *ret_used)
{
        struct dm_api_key *keys = NULL;
        size_t n = 0;
        int ret = dm_store_key_list(app->store, &keys, &n);

        if (ret < 0)
                return ret;
        bool used = false;
        for (size_t i = 0; i < n; i++)
                used = used || (keys[i].revoked_at == 0 && strcmp(keys[i].name, name) == 0);
        free(keys);
        *ret_used = used;
        return 0;
}

static int keys_create(struct dm_app *app, int argc, char **argv)
{
        const char *name = NULL, *scope_s = "read", *v;
        enum dm_scope scope;
        char key[DM_APIKEY_LEN], msg[200];
        struct dm_api_key k;
        bool used;

        for (int i = 0; i < argc; i++) {
                if ((v = option_value(argc, argv, &i, "--name")))
                        name = v;
                else if ((v = option_value(argc, argv, &i, "--scope")))
                        scope_s = v;
                else {
                        char shown[64];
                        snprintf(msg, sizeof(msg), "create: unknown or incomplete option '%s'",
                                 dm_json_safe_text(shown, sizeof(shown), argv[i], strlen(argv[i])));
                        return usage(msg);
                }
        }
        if (!name || !*name)
                return usage("create: --name is required");
        if (dm_scope_parse(scope_s, &scope) < 0 || scope == DM_SCOPE_NONE)
                return usage("create: --scope must be read, write or admin");

        int ret = name_in_use(app, name, &used);
        if (ret == 0 && used) {
                char shown[sizeof(k.name)];
                fprintf(stderr, "domainmon keys: an active key named '%s' already exists\n",
                        dm_json_safe_text(shown, sizeof(shown), name, strlen(name)));
                return 1;
        }
        if (ret == 0)
                ret = dm_apikey_create(app->store, name, scope, key, &k);
        if (ret == DM_EINVAL)
                return usage("create: the name must be 1 to 127 printable characters");
        if (ret < 0) {
                fprintf(stderr, "domainmon keys: cannot create the key: %s\n", dm_strerror(ret));
                return 1;
        }
        printf("%s\n", key);
        fflush(stdout);
        dm_log_info("keys", "msg=\"API key created\" key_id=%s scope=%s", k.key_id,
                    dm_scope_name(k.scope));
        return 0;
}

static const char *time_or_dash(int64_t ms, char *buf)
{
        return ms ? dm_time_format(ms, buf) : "-";
}

static int keys_list(struct dm_app *app, int argc, char **argv)
{
        struct dm_api_key *keys = NULL;
        size_t n = 0;

        if (argc > 0)
                return usage("list: takes no arguments");
        int ret = dm_store_key_list(app->store, &keys, &n);
        if (ret < 0) {
                fprintf(stderr, "domainmon keys: cannot list keys: %s\n", dm_strerror(ret));
                return 1;
        }
        printf("%-12s  %-20s  %-5s  %-24s  %-24s  %s\n", "KEY_ID", "NAME", "SCOPE", "CREATED",
               "LAST_USED", "REVOKED");
        for (size_t i = 0; i < n; i++) {
                char name[sizeof(keys[i].name)], c[DM_RFC3339_LEN], u[DM_RFC3339_LEN],
                    r[DM_RFC3339_LEN];
                /* Names were typed by people: keep control characters off the terminal. */
                dm_json_safe_text(name, sizeof(name), keys[i].name, strlen(keys[i].name));
                printf("%-12s  %-20s  %-5s  %-24s  %-24s  %s\n", keys[i].key_id, name,
                       dm_scope_name(keys[i].scope), time_or_dash(keys[i].created_at, c),
                       time_or_dash(keys[i].last_used_at, u), time_or_dash(keys[i].revoked_at, r));
        }
        free(keys);
        return 0;
}

static int keys_revoke(struct dm_app *app, int argc, char **argv)
{
        char shown[160];

        if (argc != 1 || !*argv[0])
                return usage("revoke: give exactly one KEY_ID or NAME");
        dm_json_safe_text(shown, sizeof(shown), argv[0], strlen(argv[0]));
        int ret = dm_store_key_revoke(app->store, argv[0], dm_now_ms());
        if (ret == DM_ENOENT) {
                fprintf(stderr, "domainmon keys: no active key with id or name '%s'\n", shown);
                return 1;
        }
        if (ret < 0) {
                fprintf(stderr, "domainmon keys: cannot revoke '%s': %s\n", shown,
                        dm_strerror(ret));
                return 1;
        }
        printf("revoked %s\n", shown);
        return 0;
}

int dm_cmd_keys(struct dm_app *app, int argc, char **argv)
{
        if (argc < 1)
                return usage("missing action");
        if (strcmp(argv[0], "create") == 0)
                return keys_create(app, argc - 1, argv + 1);
        if (strcmp(argv[0], "list") == 0)
                return keys_list(app, argc - 1, argv + 1);
        if (strcmp(argv[0], "revoke") == 0)
                return keys_revoke(app, argc - 1, argv + 1);
        char shown[64], msg[120];
        snprintf(msg, sizeof(msg), "unknown action '%s'",
                 dm_json_safe_text(shown, sizeof(shown), argv[0], strlen(argv[0])));
        return usage(msg);
}
