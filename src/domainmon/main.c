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
#include "dm/store_file.h"
#include "dm/secret.h"

enum dm_role {
        DM_ROLE_DOMAIN = 1 << 0,
        DM_ROLE_DNS = 1 << 1,
        DM_ROLE_ALERT = 1 << 2,
};

struct dm_command {
        const char *name;
        const char *summary;
        int (*run)(struct dm_app *app, int argc, char **argv);
        unsigned roles;   /* services it runs until a signal */
        bool needs_store; /* open and migrate the store first */
        bool needs_bus;
        bool takes_args;     /* arguments besides configuration flags */
        bool existing_store; /* refuse to create a new database: it must be there already */
        const char *usage;   /* what --help prints: the synopsis, then what it does */
};

static int cmd_serve(struct dm_app *app, int argc, char **argv);
static int cmd_migrate(struct dm_app *app, int argc, char **argv);
static int cmd_config(struct dm_app *app, int argc, char **argv);
static int cmd_version(struct dm_app *app, int argc, char **argv);
static int cmd_help(struct dm_app *app, int argc, char **argv);

#define CLIENT_NOTE                                                                                \
        "\nTalks to a running service: DM_API_URL (default http:// and DM_LISTEN) with the key\n"  \
        "in DM_API_KEY. --json prints the API's JSON for scripts. Exit codes: 0 done, 2 usage\n"   \
        "error (nothing sent), 1 the server refused or could not be reached.\n"

static const struct dm_command commands[] = {
    {.name = "all",
     .summary = "every service in one process (the embedded default)",
     .run = cmd_serve,
     .roles = DM_ROLE_DOMAIN | DM_ROLE_DNS | DM_ROLE_ALERT,
     .needs_store = true,
     .needs_bus = true,
     .usage =
         "usage: domainmon all [--option value ...]\n\n"
         "Runs the REST API, the live event stream, the scheduler and the DNS scanners in\n"
         "one process until SIGINT or SIGTERM. The first start prints an admin API key once.\n"},
    {.name = "domain-service",
     .summary = "REST API and live event stream: domains, API keys",
     .run = cmd_serve,
     .roles = DM_ROLE_DOMAIN,
     .needs_store = true,
     .needs_bus = true,
     .usage = "usage: domainmon domain-service [--option value ...]\n\n"
              "Runs the REST API and the live event stream on DM_LISTEN until SIGINT or SIGTERM;\n"
              "DNS services elsewhere do the scans (shared DATABASE_URL and RABBITMQ_URL).\n"},
    {.name = "dns-service",
     .summary = "scheduler and DNS scanners (and /healthz, /readyz on DM_LISTEN)",
     .run = cmd_serve,
     .roles = DM_ROLE_DNS,
     .needs_store = true,
     .needs_bus = true,
     .usage = "usage: domainmon dns-service [--option value ...]\n\n"
              "Runs the scheduler and the DNS scanners until SIGINT or SIGTERM; /healthz and\n"
              "/readyz answer on DM_LISTEN. Run as many as the load needs.\n"},
    {.name = "alert-service",
     .summary = "alerts: events -> rules -> email, SMS, webhooks (and /healthz, /readyz)",
     .run = cmd_serve,
     .roles = DM_ROLE_ALERT,
     .needs_store = true,
     .needs_bus = true,
     .usage = "usage: domainmon alert-service [--option value ...]\n\n"
              "Matches events to alert rules and delivers the alerts (email, SMS, webhooks)\n"
              "until SIGINT or SIGTERM; /healthz and /readyz answer on DM_LISTEN. Run as many\n"
              "as the load needs: each alert is sent by one of them.\n"},
    {.name = "scan",
     .summary = "scan every enabled domain once and print figures ([-v] [--resolve-only])",
     .run = dm_cmd_scan,
     .needs_store = true,
     .needs_bus = true,
     .takes_args = true,
     .existing_store = true,
     .usage = "usage: domainmon scan [-v] [--resolve-only]\n\n"
              "Scans every enabled domain of an existing database once through the real pipeline\n"
              "and prints one line of figures. -v also prints a line per domain: name, status,\n"
              "changes recorded, first error. --resolve-only resolves and stores nothing.\n"},
    {.name = "migrate",
     .summary = "apply database migrations and exit",
     .run = cmd_migrate,
     .needs_store = true,
     .usage = "usage: domainmon migrate\n\nCreates the database if needed and applies its "
              "migrations.\n"},
    {.name = "keys",
     .summary = "API keys: keys create --name N --scope read|write|admin, keys list, "
                "keys revoke ID",
     .run = dm_cmd_keys,
     .needs_store = true,
     .takes_args = true,
     .existing_store = true,
     .usage = "usage: domainmon keys create --name NAME [--scope read|write|admin]\n"
              "       domainmon keys list\n"
              "       domainmon keys revoke KEY_ID|NAME\n\n"
              "Works on the database of DATABASE_URL (default domainmon.db in the working\n"
              "directory), also while the service runs; it never creates one. create prints the\n"
              "key alone on standard output.\n"},
    {.name = "domains",
     .summary = "domains add NAME... | list [--status S] | show NAME | rm NAME... | import FILE",
     .run = dm_cmd_domains,
     .takes_args = true,
     .usage =
         "usage: domainmon domains add NAME... [--interval 10m] [--types A,MX,TXT]\n"
         "       domainmon domains list [--status ok|error|pending]\n"
         "       domainmon domains show NAME\n"
         "       domainmon domains rm NAME...\n"
         "       domainmon domains import FILE [--column NAME|N] [--interval D] [--types T]\n\n"
         "import reads one name a line, or a CSV column (a header \"name\" or \"domain\",\n"
         "else the first; --column picks another); - reads standard input.\n" CLIENT_NOTE},
    {.name = "records",
     .summary = "records NAME: the current DNS records of a domain",
     .run = dm_cmd_records,
     .takes_args = true,
     .usage = "usage: domainmon records NAME [--json]\n\n"
              "The current records of every type: TTL, status (ok, nxdomain, nodata, error), "
              "values.\n" CLIENT_NOTE},
    {.name = "history",
     .summary = "history NAME [--since 1h]: the changes of one domain, a line each",
     .run = dm_cmd_history,
     .takes_args = true,
     .usage = "usage: domainmon history NAME [--since 1h|2026-11-25] [--limit N] [--json]\n\n"
              "The domain's changes, oldest first, one a line: time, domain, type, +added\n"
              "-removed.\n" CLIENT_NOTE},
    {.name = "changes",
     .summary = "changes [--since 1h] [--domain NAME]: recent changes of every domain",
     .run = dm_cmd_changes,
     .takes_args = true,
     .usage = "usage: domainmon changes [--since 1h|2026-11-25] [--domain NAME] [--limit N] "
              "[--json]\n\n"
              "Recent changes across all domains (newest 100 by default), oldest first, one a "
              "line.\n" CLIENT_NOTE},
    {.name = "watch",
     .summary = "follow the live change stream, one line per change",
     .run = dm_cmd_watch,
     .takes_args = true,
     .usage = "usage: domainmon watch [--domain NAME] [--json]\n\n"
              "Follows GET /api/v1/events and prints each change as it happens, e.g.\n"
              "  17:07:34 example.test A +192.0.2.12 -192.0.2.11\n"
              "in colour on a terminal, a line at a time into a pipe. It reconnects (with\n"
              "Last-Event-ID) when the service restarts; Ctrl-C ends it.\n" CLIENT_NOTE},
    {.name = "backup",
     .summary = "backup FILE: a consistent copy of the SQLite store, also while it runs",
     .run = dm_cmd_backup,
     .takes_args = true,
     .usage = "usage: domainmon backup FILE\n\n"
              "Writes a consistent copy of the SQLite database of DATABASE_URL to the new file\n"
              "FILE, also while services write to it (what is still in the WAL included); to\n"
              "restore, stop the service and put the copy in the database's place. A plain cp\n"
              "of a running database misses what is in its WAL. For PostgreSQL use pg_dump.\n"},
    {.name = "rdap-bootstrap",
     .summary = "rdap-bootstrap update FILE|URL: validate an RDAP bootstrap file (RFC 9224 "
                "dns.json) and use it",
     .run = dm_cmd_rdap_bootstrap,
     .takes_args = true,
     .usage = "usage: domainmon rdap-bootstrap update FILE|URL\n\n"
              "Checks an RDAP bootstrap file (IANA's dns.json, RFC 9224) and writes it to\n"
              "DM_RDAP_BOOTSTRAP, or to ./rdap-dns.json, which then replaces the copy built into\n"
              "the binary; a running service reloads it within a minute.\n"},
    {.name = "config",
     .summary = "print the effective configuration (secrets masked)",
     .run = cmd_config,
     .takes_args = true,
     .usage = "usage: domainmon config [--markdown]\n\n"
              "Prints every setting as NAME=value with where it came from (flag, environment,\n"
              ".env, default); secrets masked. --markdown prints the settings table of the\n"
              "README instead.\n"},
    {.name = "version",
     .summary = "print the version",
     .run = cmd_version,
     .usage = "usage: domainmon version\n"},
    {.name = "help",
     .summary = "this text (domainmon COMMAND --help: one command)",
     .run = cmd_help,
     .takes_args = true,
     .usage = "usage: domainmon help [COMMAND]\n"},
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
        if (argc > 0) {
                const struct dm_command *c = find_command(argv[0]);
                if (!c) {
                        fprintf(stderr, "domainmon help: unknown command '%.40s'\n", argv[0]);
                        return 2;
                }
                fputs(c->usage, stdout);
                return 0;
        }
        printf("usage: domainmon COMMAND [--option value ...]\n\ncommands:\n");
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                printf("  %-15s %s\n", commands[i].name, commands[i].summary);
        printf("\n'domainmon COMMAND --help' describes one command.\n\n");
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
        if (argc == 1 && strcmp(argv[0], "--markdown") == 0) {
                dm_conf_markdown(stdout);
                return 0;
        }
        if (argc > 0) {
                fprintf(stderr, "domainmon config: unknown %s '%.40s' (only --markdown)\n",
                        argv[0][0] == '-' ? "option" : "argument", argv[0]);
                return 2;
        }
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
        struct dm_alert_service *alert = NULL;
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

        r = dm_app_metrics_init(app);
        if (r < 0) {
                dm_log_error("main", "msg=\"cannot make the metrics\" err=\"%s\"", dm_strerror(r));
                return 1;
        }
        /* The alert service first, so that its queue has its consumer before any outbox
         * relay (started by the domain or DNS service) publishes: in process, an event
         * published to no queue would be gone, and the relay waits for this consumer to
         * have recorded an event before it deletes it (DM_BUS_CONSUMED). It stops last. */
        if (self->roles & DM_ROLE_ALERT) {
                r = dm_alert_service_start(app, &alert);
                if (r < 0) {
                        dm_log_error("main", "msg=\"alert service failed to start\" err=\"%s\"",
                                     dm_strerror(r));
                        goto out;
                }
        }
        if (self->roles & DM_ROLE_DOMAIN) {
                /* The listener before the key: a start that fails (the port taken) must not
                 * have made, and shown, a key that the next start would then never show
                 * again. The service logged why it failed. */
                r = dm_domain_service_start(app, &domain);
                if (r < 0) {
                        dm_log_error("main", "msg=\"not started: the domain service could not "
                                             "start (see above)\"");
                        goto out_alert;
                }
                r = ensure_admin_key(app);
                if (r < 0) {
                        dm_log_error("main", "msg=\"cannot create the admin key\" err=\"%s\"",
                                     dm_strerror(r));
                        goto out_domain;
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
        /* Which database and which broker, so that two processes that should share them
         * can be seen to; passwords masked. */
        char db[1200], qdb[1300], bus[8192], shown[1200], qbus[1300];
        const char *bus_url = NULL;
        dm_store_describe(app->conf.database_url, db, sizeof(db));
        if (dm_conf_rabbitmq_url(&app->conf, bus, sizeof(bus), &bus_url) < 0 || !bus_url)
                bus_url = "in-process";
        dm_conf_mask_url(bus_url, shown, sizeof(shown));
        explicit_bzero(bus, sizeof(bus));
        dm_log_info("main", "msg=\"started\" services=%s store=%s bus=%s database=%s bus_url=%s",
                    self->name, dm_store_backend(app->store), dm_bus_backend(app->bus),
                    dm_log_quote(qdb, sizeof(qdb), db), dm_log_quote(qbus, sizeof(qbus), shown));

        if (sigwait(&set, &sig) != 0)
                sig = 0;
        dm_log_info("main", "msg=\"stopping\" signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
        rc = 0;

        dm_probe_service_stop(probe);
out_dns:
        dm_dns_service_stop(dns);
out_domain:
        dm_domain_service_stop(domain);
out_alert:
        dm_alert_service_stop(alert);
out:
        dm_app_metrics_done(app);
        return rc;
}

int main(int argc, char **argv)
{
        struct dm_app app = {0};
        char err[512], shown[512];
        int rc = 1, r;

        if (argc < 2) {
                fprintf(stderr, "domainmon: missing command (see 'domainmon help')\n");
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

        /* -h/--help anywhere before "--": the command's usage, and nothing opened, created
         * or started. */
        for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++) {
                if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
                        if (cmd->run == cmd_help)
                                return cmd_help(NULL, 0, NULL);
                        fputs(cmd->usage, stdout);
                        return 0;
                }
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
        enum dm_log_format format = DM_LOG_LOGFMT;
        if (app.conf.log_format && dm_log_format_parse(app.conf.log_format, &format) == 0)
                dm_log_set_format(format);

        /* Settings this build reads but does not act on yet: say so rather than let the
         * operator believe them applied. */
        const char *inert[8];
        size_t ninert = cmd->roles ? dm_conf_inert_set(&app.conf, inert, 8) : 0;
        for (size_t i = 0; i < ninert; i++)
                dm_log_warn("main", "msg=\"%s is set but this build does not use it yet\"",
                            inert[i]);
        if (cmd->existing_store &&
            dm_store_require_existing(app.conf.database_url, err, sizeof(err)) < 0) {
                fprintf(stderr, "domainmon %s: %s\n", cmd->name, err);
                rc = 1;
                goto out_conf;
        }
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
