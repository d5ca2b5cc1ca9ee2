/* Configuration: one table (lib/conf/conf.c) of name, environment variable, type, bounds,
 * default and secret flag drives parsing, validation, `--help` and `domainmon config`.
 * Precedence: flags > environment > .env file in the working directory > defaults.
 * Unknown environment variables are ignored. */
#ifndef DM_CONF_H
#define DM_CONF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum dm_conf_source { DM_CONF_DEFAULT, DM_CONF_DOTENV, DM_CONF_ENV, DM_CONF_FLAG };

/* The effective configuration. Strings are owned (free with dm_conf_done); an unset
 * optional string is NULL. Durations are in milliseconds. */
struct dm_conf {
        char *database_url;       /* DATABASE_URL: sqlite:///abs/path.db, postgres://... */
        char *rabbitmq_url;       /* RABBITMQ_URL: amqp://user:pass@host:port/vhost */
        char *rabbitmq_host;      /* RABBITMQ_HOST: host[:port], shorthand for RABBITMQ_URL */
        char *rabbitmq_user;      /* RABBITMQ_USER: set together with the password, or neither */
        char *rabbitmq_password;  /* RABBITMQ_PASSWORD (secret) */
        char *redis_url;          /* REDIS_URL */
        char *secret_key;         /* SECRET_KEY (secret) */
        char *listen;             /* DM_LISTEN host:port, default 127.0.0.1:8080 */
        char *log_level;          /* DM_LOG_LEVEL debug|info|warn|error */
        char *log_format;         /* DM_LOG_FORMAT logfmt|json */
        int64_t scan_interval_ms; /* DM_SCAN_INTERVAL, default 600 s */
        int64_t min_interval_ms;  /* DM_MIN_INTERVAL, default 60 s, floor for any interval */
        int64_t http_threads;     /* DM_HTTP_THREADS */
        int64_t max_body;         /* DM_MAX_BODY bytes, default 1 MiB */
        char *dns_servers;        /* DM_DNS_SERVERS "ip[:port],[v6]:port"; NULL: resolv.conf */
        int64_t dns_timeout_ms;   /* DM_DNS_TIMEOUT */
        int64_t dns_retries;      /* DM_DNS_RETRIES */
        int64_t dns_concurrency;  /* DM_DNS_CONCURRENCY: max queries in flight per loop */
        int64_t dns_qps;          /* DM_DNS_QPS: 0 = no cap */
        int64_t dns_loops;        /* DM_DNS_LOOPS: scanner event loops; 0 = one per core */
        int64_t dns_auth_only;    /* DM_DNS_AUTHORITATIVE: 1 = the servers are the zones' own */
        int64_t scan_batch;       /* DM_SCAN_BATCH: domains claimed per scheduler round */
        /* DM_HISTORY_RETENTION: history older than this is deleted; 0 = keep it forever */
        int64_t history_retention_ms;
        int64_t events_max_streams;       /* DM_EVENTS_MAX_STREAMS: open live event streams */
        int64_t events_replay;            /* DM_EVENTS_REPLAY: events kept for Last-Event-ID */
        int64_t events_replay_bytes;      /* DM_EVENTS_REPLAY_BYTES: their bytes */
        int64_t events_backlog;           /* DM_EVENTS_BACKLOG: unsent bytes before a drop */
        int64_t events_heartbeat_ms;      /* DM_EVENTS_HEARTBEAT */
        char *api_url;                    /* DM_API_URL: the client's server; NULL: DM_LISTEN */
        char *api_key;                    /* DM_API_KEY (secret): the client's key */
        int64_t default_checks;           /* DM_DEFAULT_CHECKS: DM_CHECKS_* bits, never 0 */
        char *tls_ca_file;                /* DM_TLS_CA_FILE; NULL: the system trust store */
        int64_t tls_timeout_ms;           /* DM_TLS_TIMEOUT: connect and handshake */
        int64_t outbox_lease_ms;          /* DM_OUTBOX_LEASE */
        int64_t alert_group_wait_ms;      /* DM_ALERT_GROUP_WAIT */
        int64_t alert_digest_min;         /* DM_ALERT_DIGEST_MIN */
        int64_t alert_retry_min_ms;       /* DM_ALERT_RETRY_MIN */
        int64_t alert_max_attempts;       /* DM_ALERT_MAX_ATTEMPTS */
        int64_t alert_expiry_interval_ms; /* DM_ALERT_EXPIRY_INTERVAL */
        int64_t allow_private_targets;    /* DM_ALLOW_PRIVATE_TARGETS: 1 = allowed */
        char *smtp_url;                   /* DM_SMTP_URL smtp:// or smtps:// */
        char *smtp_from;                  /* DM_SMTP_FROM */
        char *smtp_user;                  /* DM_SMTP_USER */
        char *smtp_password;              /* DM_SMTP_PASSWORD (secret) */
        char *sms_url;                    /* DM_SMS_URL */
        char *sms_user;                   /* DM_SMS_USER */
        char *sms_password;               /* DM_SMS_PASSWORD (secret) */
        char *sms_from;                   /* DM_SMS_FROM */
        int64_t registration_interval_ms; /* DM_REGISTRATION_INTERVAL */
        int64_t registration_timeout_ms;  /* DM_REGISTRATION_TIMEOUT: per server asked */
        int64_t registration_gap_ms;      /* DM_REGISTRATION_RATE: least time between two
                                             requests to one RDAP or WHOIS server */
        int64_t registration_workers;     /* DM_REGISTRATION_WORKERS */
        char *rdap_bootstrap;             /* DM_RDAP_BOOTSTRAP; NULL: the embedded file */
        char *whois_server;               /* DM_WHOIS_SERVER host[:port]; NULL: per TLD */
        char *whois_root;                 /* DM_WHOIS_ROOT host[:port] naming TLD servers */
        char *rate_limit;                 /* DM_RATE_LIMIT: "600/m" (dm_rate_policy_parse) */
        char *rate_limit_expensive;       /* DM_RATE_LIMIT_EXPENSIVE */
        char *cors_origins;               /* DM_CORS_ORIGINS; NULL: CORS off */
        char *cache;                      /* DM_CACHE: auto|memory|redis|none */
        int64_t cache_bytes;              /* DM_CACHE_BYTES */
        int64_t cache_ttl_ms;             /* DM_CACHE_TTL */
        int64_t max_connections;          /* DM_MAX_CONNECTIONS */
        int64_t max_connections_per_ip;   /* DM_MAX_CONNECTIONS_PER_IP */
        int64_t request_timeout_ms;       /* DM_REQUEST_TIMEOUT */
        int64_t max_header_bytes;         /* DM_MAX_HEADER_BYTES */
        enum dm_conf_source sources[112]; /* where each table entry came from, by index */
};

/* Fills `conf` from defaults, then `dotenv_path` (NULL: "./.env"; missing file is fine),
 * then `envp` (NULL: environ), then the flags in argv[0..*argc). Config flags are
 * `--name value` or `--name=value` where name is the variable's lower-case name with
 * dashes (DM_SCAN_INTERVAL -> --scan-interval, DATABASE_URL -> --database-url). They are
 * removed from argv; other arguments are kept in order and *argc is updated.
 * On a bad value returns DM_ECONFIG with a one-line message naming the variable in `err`;
 * `conf` is then left cleared (nothing to free). */
int dm_conf_load(struct dm_conf *conf, int *argc, char **argv, char *const *envp,
                 const char *dotenv_path, char *err, size_t errlen);

/* Frees the strings. NULL-safe. */
void dm_conf_done(struct dm_conf *conf);

/* `NAME=value  # source` per entry; secrets and URL passwords masked. */
void dm_conf_print(const struct dm_conf *conf, FILE *out);

/* The table as help text: flag, variable, default, description. */
void dm_conf_help(FILE *out);

/* The table as the README's Markdown: the precedence paragraph, then one row per setting
 * (variable, flag, default, meaning). scripts/readme-config.sh puts it in README.md and a
 * test checks that the two agree. */
void dm_conf_markdown(FILE *out);

/* The settings given a value (not defaults) that nothing in this build acts on yet, so
 * that start-up can name them in a warning. Fills up to `max` names (static strings) and
 * returns how many. */
size_t dm_conf_inert_set(const struct dm_conf *conf, const char **ret_names, size_t max);

/* The bus URL the configuration names: RABBITMQ_URL, else "amqp://HOST" from RABBITMQ_HOST;
 * RABBITMQ_USER and RABBITMQ_PASSWORD, when set, become its percent-encoded user:password
 * (dm_conf_load refuses a RABBITMQ_URL that names a user of its own as well). Unset
 * credentials leave the URL without a user: rabbitmq-c then logs in as guest/guest, the
 * broker's default account. *ret_url points to buf, or is NULL when neither RABBITMQ_URL
 * nor RABBITMQ_HOST is set (the in-process bus). Returns 0, DM_E2BIG when buf is too small,
 * DM_EINVAL. */
int dm_conf_rabbitmq_url(const struct dm_conf *conf, char *buf, size_t size, const char **ret_url);

/* Copies `url` into buf with any password (user:PASS@, ?password=PASS) replaced by "****". */
const char *dm_conf_mask_url(const char *url, char *buf, size_t size);

/* Refuses to serve beyond this machine unprotected: a DM_LISTEN that is not a loopback
 * address (127.0.0.0/8, ::1, localhost) needs SECRET_KEY. Returns 0, or DM_ECONFIG with a
 * one-line message in `err`. */
int dm_conf_check_exposure(const struct dm_conf *conf, char *err, size_t errlen);

/* The cache backend the configuration names: "none", "memory" or the REDIS_URL, or NULL
 * with a message in `err` when DM_CACHE=redis has no REDIS_URL. */
const char *dm_conf_cache_backend(const struct dm_conf *conf, char *err, size_t errlen);

#endif
