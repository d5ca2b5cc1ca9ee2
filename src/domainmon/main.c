/* domainmon: one binary, each service a subcommand. This file only wires: it loads the
 * configuration, opens the store and the bus, starts the services a subcommand names and
 * waits for a signal to stop them. */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "dm/apikey.h"
#include "dm/error.h"
#include "dm/log.h"
#include "dm/secret.h"

enum dm_role {
        DM_ROLE_DOMAIN = 1 << 0,
        DM_ROLE_DNS = 1 << 1,
};

struct dm_command {
        const char *name;
        const char *summary;
        int (*run)(struct dm_app *app, int argc, char **argv);
        unsigned roles;   /* services it runs until a signal */
        bool needs_store; /* open and migrate the store first */
        bool needs_bus;
        bool takes_args; /* arguments besides configuration flags */
};

static int cmd_serve(struct dm_app *app, int argc, char **argv);
static int cmd_migrate(struct dm_app *app, int argc, char **argv);
static int cmd_config(struct dm_app *app, int argc, char **argv);
static int cmd_version(struct dm_app *app, int argc, char **argv);
static int cmd_help(struct dm_app *app, int argc, char **argv);

static const struct dm_command commands[] = {
    {.name = "all",
     .summary = "every service in one process (the embedded default)",
     .run = cmd_serve,
     .roles = DM_ROLE_DOMAIN | DM_ROLE_DNS,
     .needs_store = true,
     .needs_bus = true},
    {.name = "domain-service",
     .summary = "REST API: domains, API keys",
     .run = cmd_serve,
     .roles = DM_ROLE_DOMAIN,
     .needs_store = true,
     .needs_bus = true},
    {.name = "dns-service",
     .summary = "scheduler and DNS scanners (and /healthz, /readyz on DM_LISTEN)",
     .run = cmd_serve,
     .roles = DM_ROLE_DNS,
     .needs_store = true,
     .needs_bus = true},
    {.name = "scan",
     .summary = "scan every enabled domain once and print figures ([--resolve-only])",
     .run = dm_cmd_scan,
     .needs_store = true,
     .needs_bus = true,
     .takes_args = true},
    {.name = "migrate",
     .summary = "apply database migrations and exit",
     .run = cmd_migrate,
     .needs_store = true},
    {.name = "keys",
     .summary = "API keys: keys create --name N --scope read|write|admin, keys list, "
                "keys revoke ID",
     .run = dm_cmd_keys,
     .needs_store = true,
     .takes_args = true},
    {.name = "config",
     .summary = "print the effective configuration (secrets masked)",
     .run = cmd_config},
    {.name = "version", .summary = "print the version", .run = cmd_version},
    {.name = "help", .summary = "this text", .run = cmd_help},
};

static const struct dm_command *find_command(const char *name)
{
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        }
        return NULL;
}

static int cmd_help(struct dm_app *app, int argc, char **argv)
{
        (void)app;
        printf("usage: domainmon COMMAND [--option value ...]\n\ncommands:\n");
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                printf("  %-15s %s\n", commands[i].name, commands[i].summary);
        printf("\nOptions may also come from the environment or a .env file in the working\n"
               "directory (flags > environment > .env > defaults):\n\n");
        dm_conf_help(stdout);
        return 0;
}

static int cmd_version(struct dm_app *app, int argc, char **argv)
{
        (void)app;
        printf("domainmon %s\n", DM_VERSION);
        return 0;
}

static int cmd_config(struct dm_app *app, int argc, char **argv)
{
        dm_conf_print(&app->conf, stdout);
        return 0;
}

static int cmd_migrate(struct dm_app *app, int argc, char **argv)
{
        /* main() has already migrated; report what it did. */
        printf("applied %d migration(s); the %s database is up to date\n", app->migrations_applied,
               dm_store_backend(app->store));
        return 0;
}

/* A store with no key would leave the API unusable: make an admin key and show it once.
 * Several domain services starting at once against one database make one between them. */
static int ensure_admin_key(struct dm_app *app)
{
        size_t n = 0;
        int r = dm_store_key_count_active(app->store, &n);
        if (r < 0 || n > 0)
                return r;
        char key[DM_APIKEY_LEN];
        struct dm_api_key k;
        r = dm_apikey_create_first(app->store, "admin", DM_SCOPE_ADMIN, key, &k);
        if (r == DM_EEXIST)
                return 0; /* another process made it first */
        if (r < 0)
                return r;
        printf("admin API key (shown once): %s\n", key);
        fflush(stdout);
        dm_log_info("main", "msg=\"created the first admin API key\" key_id=%s", k.key_id);
        return 0;
}

static int cmd_serve(struct dm_app *app, int argc, char **argv)
{
        struct dm_domain_service *domain = NULL;
        struct dm_dns_service *dns = NULL;
        struct dm_probe_service *probe = NULL;
        const struct dm_command *self = find_command(app->command);
        int r, sig = 0, rc = 1;

        /* Signals are taken by sigwait below; every thread started from here inherits the
         * mask, so none of them is interrupted by SIGINT/SIGTERM. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);

        if (self->roles & DM_ROLE_DOMAIN) {
                r = ensure_admin_key(app);
                if (r < 0) {
                        dm_log_error("main", "msg=\"cannot create the admin key\" err=\"%s\"",
                                     dm_strerror(r));
                        goto out;
                }
                r = dm_domain_service_start(app, &domain);
                if (r < 0) {
                        dm_log_error("main", "msg=\"domain service failed to start\" err=\"%s\"",
                                     dm_strerror(r));
                        goto out;
                }
        }
        if (self->roles & DM_ROLE_DNS) {
                r = dm_dns_service_start(app, &dns);
                if (r < 0) {
                        dm_log_error("main", "msg=\"dns service failed to start\" err=\"%s\"",
                                     dm_strerror(r));
                        goto out_domain;
                }
        }
        /* Without the API, /healthz and /readyz get a listener of their own. */
        if (!(self->roles & DM_ROLE_DOMAIN)) {
                r = dm_probe_service_start(app, &probe);
                if (r < 0)
                        goto out_dns;
        }
        dm_log_info("main", "msg=\"started\" services=%s store=%s bus=%s", self->name,
                    dm_store_backend(app->store), dm_bus_backend(app->bus));

        if (sigwait(&set, &sig) != 0)
                sig = 0;
        dm_log_info("main", "msg=\"stopping\" signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
        rc = 0;

        dm_probe_service_stop(probe);
out_dns:
        dm_dns_service_stop(dns);
out_domain:
        dm_domain_service_stop(domain);
out:
        return rc;
}

int main(int argc, char **argv)
{
        struct dm_app app = {0};
        char err[512], shown[512];
        int rc = 1, r;

        if (argc < 2) {
                fprintf(stderr, "domainmon: missing command (all, domain-service, dns-service, "
                                "scan, migrate, keys, config, version, help)\n");
                return 2;
        }
        const char *name = argv[1];
        if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
                name = "help";
        else if (strcmp(name, "--version") == 0)
                name = "version";
        const struct dm_command *cmd = find_command(name);
        if (!cmd) {
                fprintf(stderr, "domainmon: unknown command '%s' (see 'domainmon help')\n",
                        argv[1]);
                return 2;
        }

        /* Everything after the command: configuration flags are taken out by the loader,
         * the rest belongs to the command. */
        int sub_argc = argc - 2;
        char **sub_argv = argv + 2;
        app.command = cmd->name;
        r = dm_conf_load(&app.conf, &sub_argc, sub_argv, NULL, NULL, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "domainmon: %s\n", err);
                return 2;
        }
        /* Rejected before anything is opened, so a typo changes nothing. */
        if (!cmd->takes_args && sub_argc > 0) {
                fprintf(stderr, "domainmon %s: unknown %s '%s'\n", cmd->name,
                        sub_argv[0][0] == '-' ? "option" : "argument", sub_argv[0]);
                rc = 2;
                goto out_conf;
        }
        if (cmd->roles) {
                r = dm_conf_check_exposure(&app.conf, err, sizeof(err));
                if (r < 0) {
                        fprintf(stderr, "domainmon: %s\n", err);
                        rc = 2;
                        goto out_conf;
                }
        }
        enum dm_log_level level = DM_LOG_INFO;
        if (app.conf.log_level && dm_log_level_parse(app.conf.log_level, &level) == 0)
                dm_log_set_level(level);

        if (cmd->needs_store) {
                r = dm_store_open(app.conf.database_url, err, sizeof(err), &app.store);
                if (r < 0) {
                        fprintf(stderr, "domainmon: %s\n",
                                dm_secret_mask(err, shown, sizeof(shown)));
                        goto out_conf;
                }
                int applied = 0;
                r = dm_store_migrate(app.store, &applied);
                app.migrations_applied = applied;
                if (r < 0) {
                        fprintf(stderr, "domainmon: database migration failed: %s\n",
                                dm_strerror(r));
                        goto out_store;
                }
                if (applied > 0)
                        dm_log_info("main", "msg=\"applied migrations\" count=%d", applied);
        }
        if (cmd->needs_bus) {
                /* RABBITMQ_URL, or RABBITMQ_HOST with RABBITMQ_USER and RABBITMQ_PASSWORD. */
                char bus_url[8192];
                const char *url = NULL;
                r = dm_conf_rabbitmq_url(&app.conf, bus_url, sizeof(bus_url), &url);
                if (r == 0)
                        r = dm_bus_open(url, err, sizeof(err), &app.bus);
                else
                        snprintf(err, sizeof(err), "RabbitMQ URL: %s", dm_strerror(r));
                explicit_bzero(bus_url, sizeof(bus_url));
                if (r < 0) {
                        fprintf(stderr, "domainmon: %s\n",
                                dm_secret_mask(err, shown, sizeof(shown)));
                        goto out_store;
                }
        }

        rc = cmd->run(&app, sub_argc, sub_argv);

        dm_bus_free(app.bus);
out_store:
        dm_store_free(app.store);
out_conf:
        dm_conf_done(&app.conf);
        return rc;
}
