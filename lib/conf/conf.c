/* Configuration. One table (dm_conf_table) names every setting once: its variable, type,
 * bounds, default, secrecy, help text and place in struct dm_conf. Loading, validation,
 * `--help` and `domainmon config` all walk that table, so a new setting is one new line
 * (the idea of Redis' static_configs[]).
 *
 * Loading is two-phase: first every layer (defaults, .env, environment, flags) is reduced
 * to one raw text per entry, remembering where it came from; then each text is parsed and
 * checked once. Defaults are written as text too and go through the same parser, so a
 * default can never be a value the parser would refuse. */
#include "dm/conf.h"

#include "dm/buf.h"
#include "dm/check.h"
#include "dm/error.h"
#include "dm/http.h"
#include "dm/ratelimit.h"
#include "dm/secret.h"
#include "dm/time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define DM_CONF_DOTENV_DEFAULT ".env"
#define DM_CONF_DOTENV_MAX (1024 * 1024)
#define DM_CONF_FLAG_MAX 64
#define DM_CONF_VALUE_MAX 4096
#define DM_CONF_SQLITE_FILE "domainmon.db"

/* Said once, by `help` and by the README's table. */
#define DM_CONF_PRECEDENCE                                                                         \
        "Every setting comes from, in order of precedence: a flag (`--scan-interval 5m`), the\n"   \
        "environment (`DM_SCAN_INTERVAL=5m`), a `.env` file in the working directory, the\n"       \
        "default. Unknown variables are ignored; a bad value stops start-up with a message\n"      \
        "naming the variable. Durations take `90`, `90s`, `1500ms`, `10m`, `2h`, `1d` (a bare\n"   \
        "number is seconds)."

#define DM_SECOND 1000LL
#define DM_DAY (86400LL * DM_SECOND)

enum dm_conf_type {
        DM_CONF_T_STRING,   /* any text */
        DM_CONF_T_URL,      /* text starting with one of `schemes` */
        DM_CONF_T_LISTEN,   /* host:port or [v6]:port */
        DM_CONF_T_HOST,     /* host[:port] */
        DM_CONF_T_ADDRLIST, /* ip[:port],[v6]:port,... */
        DM_CONF_T_INT,      /* integer within min..max */
        DM_CONF_T_DURATION, /* dm_duration_parse, in ms within min..max */
        DM_CONF_T_ENUM,     /* one of `choices` */
        DM_CONF_T_CHECKS,   /* a list of check names (dm_checks_parse), as DM_CHECKS_* bits */
        DM_CONF_T_RATE,     /* a rate limit policy, dm_rate_policy_parse: kept as text */
        DM_CONF_T_ORIGINS,  /* CORS origins, dm_http_cors_parse: kept as text */
};

struct dm_conf_entry {
        const char *env;
        enum dm_conf_type type;
        int64_t min, max;
        const char *def;        /* default as it would be written in .env; NULL: unset */
        const char *unset_text; /* what an unset value means, for print and help */
        const char *const *schemes;
        const char *const *choices;
        bool secret;
        bool inert; /* read and checked, but nothing in this build acts on it yet */
        size_t offset;
        const char *help; /* one source for `help`, the README's table and `config` */
};

static const char *const dm_conf_db_schemes[] = {"sqlite://", "postgres://", "postgresql://", NULL};
static const char *const dm_conf_amqp_schemes[] = {"amqp://", "amqps://", NULL};
static const char *const dm_conf_redis_schemes[] = {"redis://", "rediss://", NULL};
static const char *const dm_conf_smtp_schemes[] = {"smtp://", "smtps://", NULL};
static const char *const dm_conf_http_schemes[] = {"http://", "https://", NULL};
static const char *const dm_conf_log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const dm_conf_log_formats[] = {"logfmt", "json", NULL};
static const char *const dm_conf_caches[] = {"auto", "memory", "redis", "none", NULL};

#define DM_CONF_FIELD(f) offsetof(struct dm_conf, f)

/* Types whose field is an int64_t rather than an owned string. */
static bool conf_numeric(enum dm_conf_type t)
{
        return t == DM_CONF_T_INT || t == DM_CONF_T_DURATION || t == DM_CONF_T_CHECKS;
}

static const struct dm_conf_entry dm_conf_table[] = {
    {.env = "DATABASE_URL",
     .type = DM_CONF_T_URL,
     .schemes = dm_conf_db_schemes,
     .unset_text = "SQLite file " DM_CONF_SQLITE_FILE " in the working directory",
     .offset = DM_CONF_FIELD(database_url),
     .help = "store: `sqlite:///abs/path.db`, or PostgreSQL `postgres://user:pass@host:5432/db` "
             "(libpq parameters such as `?sslmode=require` allowed; the password is masked in "
             "`config`). PostgreSQL needs a server of your own (Debian: `apt install "
             "postgresql`, then `createdb domainmon`) and a binary built with libpq, as `make` "
             "does when libpq-dev is installed"},
    {.env = "RABBITMQ_URL",
     .type = DM_CONF_T_URL,
     .schemes = dm_conf_amqp_schemes,
     .unset_text = "in-process bus",
     .offset = DM_CONF_FIELD(rabbitmq_url),
     .help = "RabbitMQ for separate services: `amqp://user:pass@host:5672/vhost` (`amqps://` "
             "for TLS; options `?heartbeat=30&publish_timeout=30&exchange=domainmon`; see "
             "docs/internals/bus.md)"},
    {.env = "RABBITMQ_HOST",
     .type = DM_CONF_T_HOST,
     .unset_text = "in-process bus",
     .offset = DM_CONF_FIELD(rabbitmq_host),
     .help = "`host[:port]`, short for RABBITMQ_URL (vhost `/`; credentials from "
             "RABBITMQ_USER and RABBITMQ_PASSWORD); RABBITMQ_URL wins when both are set"},
    {.env = "RABBITMQ_USER",
     .type = DM_CONF_T_STRING,
     .unset_text = "the broker's default account, guest",
     .offset = DM_CONF_FIELD(rabbitmq_user),
     .help = "user for RABBITMQ_HOST, or for a RABBITMQ_URL that names none; set it together "
             "with RABBITMQ_PASSWORD. Both unset: guest/guest, the broker's default account "
             "(which RabbitMQ accepts only from localhost)"},
    {.env = "RABBITMQ_PASSWORD",
     .type = DM_CONF_T_STRING,
     .secret = true,
     .unset_text = "the broker's default account, guest",
     .offset = DM_CONF_FIELD(rabbitmq_password),
     .help = "password of RABBITMQ_USER"},
    {.env = "REDIS_URL",
     .type = DM_CONF_T_URL,
     .schemes = dm_conf_redis_schemes,
     .unset_text = "the cache and rate limits in each process's memory",
     .offset = DM_CONF_FIELD(redis_url),
     .help = "Redis for the cache and the rate limiter, shared by every Domain Service on it: "
             "`redis://[:pass@]host:6379/0`"},
    {.env = "SECRET_KEY",
     .type = DM_CONF_T_STRING,
     .secret = true,
     .unset_text = "a random secret made once and kept in the database",
     .offset = DM_CONF_FIELD(secret_key),
     .help = "secret for signing web UI sessions; set the same value on every Domain "
             "Service of a deployment; required when DM_LISTEN is not a loopback address"},
    {.env = "DM_LISTEN",
     .type = DM_CONF_T_LISTEN,
     .def = "127.0.0.1:8080",
     .offset = DM_CONF_FIELD(listen),
     .help =
         "address of the web UI, REST API and live event stream, `host:port` or `[v6]:port` (of "
         "dns-service: its /healthz and /readyz)"},
    {.env = "DM_LOG_LEVEL",
     .type = DM_CONF_T_ENUM,
     .choices = dm_conf_log_levels,
     .def = "info",
     .offset = DM_CONF_FIELD(log_level),
     .help = "least severe log level written: `debug`, `info`, `warn` or `error`"},
    {.env = "DM_LOG_FORMAT",
     .type = DM_CONF_T_ENUM,
     .choices = dm_conf_log_formats,
     .def = "logfmt",
     .offset = DM_CONF_FIELD(log_format),
     .help = "log lines as logfmt (key=value) or json (one object per line, the same "
             "fields)"},
    {.env = "DM_SCAN_INTERVAL",
     .type = DM_CONF_T_DURATION,
     .min = DM_SECOND,
     .max = 30 * DM_DAY,
     .def = "600s",
     .offset = DM_CONF_FIELD(scan_interval_ms),
     .help = "default interval between two checks of a domain"},
    {.env = "DM_MIN_INTERVAL",
     .type = DM_CONF_T_DURATION,
     .min = DM_SECOND,
     .max = 30 * DM_DAY,
     .def = "60s",
     .offset = DM_CONF_FIELD(min_interval_ms),
     .help = "the shortest interval a domain may have"},
    {.env = "DM_HTTP_THREADS",
     .type = DM_CONF_T_INT,
     .min = 1,
     .max = 64,
     .def = "4",
     .offset = DM_CONF_FIELD(http_threads),
     .help = "HTTP server worker threads"},
    {.env = "DM_MAX_BODY",
     .type = DM_CONF_T_INT,
     .min = 1024,
     .max = 64 * 1024 * 1024,
     .def = "1048576",
     .offset = DM_CONF_FIELD(max_body),
     .help = "largest request body, in bytes"},
    {.env = "DM_DNS_SERVERS",
     .type = DM_CONF_T_ADDRLIST,
     .unset_text = "name servers from /etc/resolv.conf",
     .offset = DM_CONF_FIELD(dns_servers),
     .help = "resolvers, `ip[:port]` comma-separated, IPv4 or `[IPv6]:port`"},
    {.env = "DM_DNS_TIMEOUT",
     .type = DM_CONF_T_DURATION,
     .min = 100,
     .max = 60 * DM_SECOND,
     .def = "2s",
     .offset = DM_CONF_FIELD(dns_timeout_ms),
     .help = "budget for one lookup, retries included"},
    {.env = "DM_DNS_RETRIES",
     .type = DM_CONF_T_INT,
     .min = 0,
     .max = 10,
     .def = "5",
     .offset = DM_CONF_FIELD(dns_retries),
     .help = "retransmissions after the first query, within the timeout (six tries: at 3 % "
             "loss each way, four would lose about one lookup in 80,000)"},
    {.env = "DM_DNS_CONCURRENCY",
     .type = DM_CONF_T_INT,
     .min = 1,
     .max = 100000,
     .def = "1000",
     .offset = DM_CONF_FIELD(dns_concurrency),
     .help = "most DNS queries in flight per scanner loop"},
    {.env = "DM_DNS_QPS",
     .type = DM_CONF_T_INT,
     .min = 0,
     .max = 10000000,
     .def = "0",
     .offset = DM_CONF_FIELD(dns_qps),
     .help = "most queries per second sent, all loops together (0: no cap)"},
    {.env = "DM_DNS_LOOPS",
     .type = DM_CONF_T_INT,
     .min = 0,
     .max = 64,
     .def = "0",
     .offset = DM_CONF_FIELD(dns_loops),
     .help = "scanner event loops (0: one per core)"},
    {.env = "DM_DNS_AUTHORITATIVE",
     .type = DM_CONF_T_INT,
     .min = 0,
     .max = 1,
     .def = "0",
     .offset = DM_CONF_FIELD(dns_auth_only),
     .help = "1: the DNS servers are the zones' own authoritative servers, so an "
             "authoritative empty reply without SOA counts as no data (with 0 it is an error)"},
    {.env = "DM_SCAN_BATCH",
     .type = DM_CONF_T_INT,
     .min = 1,
     .max = 100000,
     .def = "1000",
     .offset = DM_CONF_FIELD(scan_batch),
     .help = "domains the scheduler claims per round"},
    {.env = "DM_HISTORY_RETENTION",
     .type = DM_CONF_T_DURATION,
     .min = 3600 * DM_SECOND,
     .max = 36500 * DM_DAY,
     .unset_text = "keep every history entry",
     .offset = DM_CONF_FIELD(history_retention_ms),
     .help = "delete DNS, TLS and registration history entries older than this, e.g. `90d` "
             "(at least `1h`)"},
    {.env = "DM_EVENTS_MAX_STREAMS",
     .type = DM_CONF_T_INT,
     .min = 1,
     .max = 65535,
     .def = "256",
     .offset = DM_CONF_FIELD(events_max_streams),
     .help = "live event streams (`GET /api/v1/events`) open at once; more get 503. Each "
             "holds a connection and a file descriptor"},
    {.env = "DM_EVENTS_REPLAY",
     .type = DM_CONF_T_INT,
     .min = 1,
     .max = 1000000,
     .def = "10000",
     .offset = DM_CONF_FIELD(events_replay),
     .help = "recent events kept in memory for clients that reconnect with Last-Event-ID"},
    {.env = "DM_EVENTS_REPLAY_BYTES",
     .type = DM_CONF_T_INT,
     .min = 64 * 1024,
     .max = 1024 * 1024 * 1024,
     .def = "16777216",
     .offset = DM_CONF_FIELD(events_replay_bytes),
     .help = "bytes of those events at most (the oldest go first)"},
    {.env = "DM_EVENTS_BACKLOG",
     .type = DM_CONF_T_INT,
     .min = 4096,
     .max = 256 * 1024 * 1024,
     .def = "1048576",
     .offset = DM_CONF_FIELD(events_backlog),
     .help = "a stream with more than this many bytes unsent for 5 s is dropped as too slow; "
             "also the most a reconnect replays"},
    {.env = "DM_EVENTS_HEARTBEAT",
     .type = DM_CONF_T_DURATION,
     .min = DM_SECOND,
     .max = 3600 * DM_SECOND,
     .def = "15s",
     .offset = DM_CONF_FIELD(events_heartbeat_ms),
     .help = "a stream silent this long gets a `: ping` comment, so proxies keep it open"},
    {.env = "DM_API_URL",
     .type = DM_CONF_T_URL,
     .schemes = dm_conf_http_schemes,
     .unset_text = "http:// and DM_LISTEN, 0.0.0.0 read as 127.0.0.1",
     .offset = DM_CONF_FIELD(api_url),
     .help = "for the command-line client (domains, records, history, changes, watch): the "
             "API of a running service, e.g. http://10.0.0.5:8080"},
    {.env = "DM_API_KEY",
     .type = DM_CONF_T_STRING,
     .secret = true,
     .unset_text = "none: the client is refused",
     .offset = DM_CONF_FIELD(api_key),
     .help = "for the command-line client: the API key it sends (from `domainmon keys "
             "create`, or the admin key printed at first start)"},
    {.env = "DM_DEFAULT_CHECKS",
     .type = DM_CONF_T_CHECKS,
     .def = DM_CHECKS_DEFAULT_TEXT,
     .offset = DM_CONF_FIELD(default_checks),
     .help = "checks of a domain that names none: a list of dns, tls, registration"},
    {.env = "DM_TLS_CA_FILE",
     .type = DM_CONF_T_STRING,
     .unset_text = "the system's trust store",
     .offset = DM_CONF_FIELD(tls_ca_file),
     .help = "PEM file of the certificate authorities TLS chains are verified against"},
    {.env = "DM_TLS_TIMEOUT",
     .type = DM_CONF_T_DURATION,
     .min = 100,
     .max = 120 * DM_SECOND,
     .def = "10s",
     .offset = DM_CONF_FIELD(tls_timeout_ms),
     .help = "longest a TLS check of one endpoint may take: connect and handshake"},
    {.env = "DM_OUTBOX_LEASE",
     .type = DM_CONF_T_DURATION,
     .min = 6 * DM_SECOND,
     .max = 3600 * DM_SECOND,
     .def = "60s",
     .offset = DM_CONF_FIELD(outbox_lease_ms),
     .help = "events an outbox relay claimed and did not publish are taken over by another "
             "relay (or the next start) this long after the claim"},
    {.env = "DM_ALERT_GROUP_WAIT",
     .type = DM_CONF_T_DURATION,
     .min = 0,
     .max = 3600 * DM_SECOND,
     .def = "10s",
     .offset = DM_CONF_FIELD(alert_group_wait_ms),
     .help = "alerts of one rule are held this long from the first of a group, then sent "
             "together"},
    {.env = "DM_ALERT_DIGEST_MIN",
     .type = DM_CONF_T_INT,
     .min = 1,
     .max = 100000,
     .def = "10",
     .offset = DM_CONF_FIELD(alert_digest_min),
     .help = "a group with more domains than this goes out as one digest"},
    {.env = "DM_ALERT_EXPIRY_INTERVAL",
     .type = DM_CONF_T_DURATION,
     .min = 100,
     .max = 86400 * DM_SECOND,
     .def = "10m",
     .offset = DM_CONF_FIELD(alert_expiry_interval_ms),
     .help = "how often certificate and registration expiry dates are held against the "
             "rules' thresholds"},
    {.env = "DM_ALERT_RETRY_MIN",
     .type = DM_CONF_T_DURATION,
     .min = 100,
     .max = 86400 * DM_SECOND,
     .def = "30s",
     .offset = DM_CONF_FIELD(alert_retry_min_ms),
     .help = "first retry of a failed alert (then doubling, with jitter)"},
    {.env = "DM_ALERT_MAX_ATTEMPTS",
     .type = DM_CONF_T_INT,
     .min = 1,
     .max = 100,
     .def = "10",
     .offset = DM_CONF_FIELD(alert_max_attempts),
     .help = "tries of one alert before it is marked failed"},
    {.env = "DM_ALLOW_PRIVATE_TARGETS",
     .type = DM_CONF_T_INT,
     .min = 0,
     .max = 1,
     .def = "0",
     .offset = DM_CONF_FIELD(allow_private_targets),
     .help = "1: webhooks may go to private, loopback and link-local addresses"},
    {.env = "DM_SMTP_URL",
     .type = DM_CONF_T_URL,
     .schemes = dm_conf_smtp_schemes,
     .unset_text = "no email alerts",
     .offset = DM_CONF_FIELD(smtp_url),
     .help = "mail server for email alerts: smtp://host:587 (STARTTLS when offered) or "
             "smtps://host:465"},
    {.env = "DM_SMTP_FROM",
     .type = DM_CONF_T_STRING,
     .offset = DM_CONF_FIELD(smtp_from),
     .help = "sender address of email alerts"},
    {.env = "DM_SMTP_USER",
     .type = DM_CONF_T_STRING,
     .unset_text = "no authentication",
     .offset = DM_CONF_FIELD(smtp_user),
     .help = "user for the mail server"},
    {.env = "DM_SMTP_PASSWORD",
     .type = DM_CONF_T_STRING,
     .secret = true,
     .offset = DM_CONF_FIELD(smtp_password),
     .help = "password for the mail server"},
    {.env = "DM_SMS_URL",
     .type = DM_CONF_T_URL,
     .schemes = dm_conf_http_schemes,
     .unset_text = "no SMS alerts",
     .offset = DM_CONF_FIELD(sms_url),
     .help = "SMS gateway's Messages URL (Twilio-compatible form POST)"},
    {.env = "DM_SMS_USER",
     .type = DM_CONF_T_STRING,
     .offset = DM_CONF_FIELD(sms_user),
     .help = "user (account id) for the SMS gateway, sent with basic auth"},
    {.env = "DM_SMS_PASSWORD",
     .type = DM_CONF_T_STRING,
     .secret = true,
     .offset = DM_CONF_FIELD(sms_password),
     .help = "password (auth token) for the SMS gateway"},
    {.env = "DM_SMS_FROM",
     .type = DM_CONF_T_STRING,
     .offset = DM_CONF_FIELD(sms_from),
     .help = "sender number of SMS alerts"},
    {.env = "DM_REGISTRATION_INTERVAL",
     .type = DM_CONF_T_DURATION,
     .min = 60 * DM_SECOND,
     .max = 365 * DM_DAY,
     .def = "1d",
     .offset = DM_CONF_FIELD(registration_interval_ms),
     .help = "how often each domain's registration (RDAP or WHOIS) is checked; registries "
             "throttle hard"},
    {.env = "DM_REGISTRATION_TIMEOUT",
     .type = DM_CONF_T_DURATION,
     .min = 100,
     .max = 120 * DM_SECOND,
     .def = "10s",
     .offset = DM_CONF_FIELD(registration_timeout_ms),
     .help = "longest one RDAP or WHOIS server may take to answer"},
    {.env = "DM_REGISTRATION_RATE",
     .type = DM_CONF_T_DURATION,
     .min = 0,
     .max = 3600 * DM_SECOND,
     .def = "1s",
     .offset = DM_CONF_FIELD(registration_gap_ms),
     .help = "least time between two requests to one RDAP or WHOIS server (a failing server "
             "is backed off from, doubling up to 1 h)"},
    {.env = "DM_REGISTRATION_WORKERS",
     .type = DM_CONF_T_INT,
     .min = 1,
     .max = 64,
     .def = "4",
     .offset = DM_CONF_FIELD(registration_workers),
     .help = "registration lookups in flight per dns-service process"},
    {.env = "DM_RDAP_BOOTSTRAP",
     .type = DM_CONF_T_STRING,
     .unset_text = "the IANA file built into the binary",
     .offset = DM_CONF_FIELD(rdap_bootstrap),
     .help = "RDAP bootstrap file (RFC 9224 dns.json) naming each TLD's RDAP server"},
    {.env = "DM_WHOIS_SERVER",
     .type = DM_CONF_T_HOST,
     .unset_text = "each TLD's server, from DM_WHOIS_ROOT",
     .offset = DM_CONF_FIELD(whois_server),
     .help = "host[:port] of the WHOIS server asked for every domain without RDAP (its "
             "referrals are asked on the same port)"},
    {.env = "DM_WHOIS_ROOT",
     .type = DM_CONF_T_HOST,
     .def = "whois.iana.org:43",
     .offset = DM_CONF_FIELD(whois_root),
     .help = "host[:port] of the WHOIS server that names each TLD's WHOIS server (refer:)"},
    {.env = "DM_RATE_LIMIT",
     .type = DM_CONF_T_RATE,
     .def = "600/m",
     .offset = DM_CONF_FIELD(rate_limit),
     .help = "requests allowed per API key, and per client address for requests without a "
             "valid key: COUNT/UNIT (s, m, h, d) or COUNT/DURATION, e.g. 600/m or 50/10s; over "
             "it: 429"},
    {.env = "DM_RATE_LIMIT_EXPENSIVE",
     .type = DM_CONF_T_RATE,
     .def = "30/m",
     .offset = DM_CONF_FIELD(rate_limit_expensive),
     .help = "the smaller budget of costly routes (import, scan now), counted as well"},
    {.env = "DM_CORS_ORIGINS",
     .type = DM_CONF_T_ORIGINS,
     .unset_text = "CORS off: browsers on other origins cannot call the API",
     .offset = DM_CONF_FIELD(cors_origins),
     .help = "origins allowed to call the API from a browser, comma-separated "
             "(https://app.example.com), or *"},
    {.env = "DM_CACHE",
     .type = DM_CONF_T_ENUM,
     .choices = dm_conf_caches,
     .def = "auto",
     .offset = DM_CONF_FIELD(cache),
     .help = "cache of hot API reads: memory, redis (needs REDIS_URL), none, or auto (redis "
             "when REDIS_URL is set, else memory)"},
    {.env = "DM_CACHE_BYTES",
     .type = DM_CONF_T_INT,
     .min = 1024 * 1024,
     .max = 64LL * 1024 * 1024 * 1024,
     .def = "67108864",
     .offset = DM_CONF_FIELD(cache_bytes),
     .help = "memory cache: most bytes held (least recently used answers go first)"},
    {.env = "DM_CACHE_TTL",
     .type = DM_CONF_T_DURATION,
     .min = DM_SECOND,
     .max = DM_DAY,
     .def = "60s",
     .offset = DM_CONF_FIELD(cache_ttl_ms),
     .help = "a cached answer is dropped after this even without a change"},
    {.env = "DM_MAX_CONNECTIONS",
     .type = DM_CONF_T_INT,
     .min = 16,
     .max = 1000000,
     .def = "1024",
     .offset = DM_CONF_FIELD(max_connections),
     .help = "HTTP connections open at once, event streams not counted; more are closed at "
             "once"},
    {.env = "DM_MAX_CONNECTIONS_PER_IP",
     .type = DM_CONF_T_INT,
     .min = 1,
     .max = 1000000,
     .def = "64",
     .offset = DM_CONF_FIELD(max_connections_per_ip),
     .help = "HTTP connections one client address may hold open"},
    {.env = "DM_REQUEST_TIMEOUT",
     .type = DM_CONF_T_DURATION,
     .min = DM_SECOND,
     .max = 3600 * DM_SECOND,
     .def = "30s",
     .offset = DM_CONF_FIELD(request_timeout_ms),
     .help = "time a client has from its request line to the last byte of its body"},
    {.env = "DM_MAX_HEADER_BYTES",
     .type = DM_CONF_T_INT,
     .min = 1024,
     .max = 1024 * 1024,
     .def = "16384",
     .offset = DM_CONF_FIELD(max_header_bytes),
     .help = "bytes of request headers accepted; more: 431"},
};

#define DM_CONF_N (sizeof(dm_conf_table) / sizeof(dm_conf_table[0]))

_Static_assert(DM_CONF_N <= sizeof(((struct dm_conf *)0)->sources) /
                                sizeof(((struct dm_conf *)0)->sources[0]),
               "struct dm_conf.sources is too small for the table");

static const char *const dm_conf_source_names[] = {
    [DM_CONF_DEFAULT] = "default",
    [DM_CONF_DOTENV] = ".env",
    [DM_CONF_ENV] = "environment",
    [DM_CONF_FLAG] = "flag",
};

/* One entry's winning raw text while the layers are merged. */
struct dm_conf_raw {
        const char *value; /* not owned: points into the table, envp, argv or `dotenv` */
        enum dm_conf_source source;
        char *dotenv; /* owned copy of the .env value */
};

/* DM_SCAN_INTERVAL -> scan-interval, DATABASE_URL -> database-url. */
static void conf_flag_name(const struct dm_conf_entry *e, char *buf, size_t size)
{
        const char *s = e->env;
        size_t o = 0;
        if (strncmp(s, "DM_", 3) == 0)
                s += 3;
        for (; *s && o + 1 < size; s++) {
                char c = *s;
                if (c == '_')
                        c = '-';
                else if (c >= 'A' && c <= 'Z')
                        c = (char)(c - 'A' + 'a');
                buf[o++] = c;
        }
        buf[o] = '\0';
}

static int conf_find_env(const char *name, size_t len)
{
        for (size_t i = 0; i < DM_CONF_N; i++) {
                if (strlen(dm_conf_table[i].env) == len &&
                    memcmp(dm_conf_table[i].env, name, len) == 0)
                        return (int)i;
        }
        return -1;
}

static int conf_find_flag(const char *name, size_t len)
{
        char flag[DM_CONF_FLAG_MAX];
        for (size_t i = 0; i < DM_CONF_N; i++) {
                conf_flag_name(&dm_conf_table[i], flag, sizeof(flag));
                if (strlen(flag) == len && memcmp(flag, name, len) == 0)
                        return (int)i;
        }
        return -1;
}

/* An empty value means "not set here": it puts the entry back to its default, so an empty
 * REDIS_URL in the environment can switch off a Redis named in .env. */
static void conf_raw_set(struct dm_conf_raw *raw, size_t i, const char *value,
                         enum dm_conf_source source)
{
        raw[i].value = (value && *value) ? value : dm_conf_table[i].def;
        raw[i].source = source;
}

static bool conf_is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\r';
}

/* Parses one value of a .env line at `p` (already past '='), into out (size bytes).
 * Double quotes allow \" \\ \n escapes; single quotes are literal; an unquoted value ends
 * at a '#' that follows whitespace. */
static int conf_dotenv_value(const char *p, const char *end, char *out, size_t size,
                             const char **ret_err)
{
        size_t o = 0;
        while (p < end && conf_is_space(*p))
                p++;
        if (p < end && (*p == '"' || *p == '\'')) {
                char q = *p++;
                for (;;) {
                        if (p >= end) {
                                *ret_err = "unterminated quoted value";
                                return DM_ECONFIG;
                        }
                        char c = *p++;
                        if (c == q)
                                break;
                        if (q == '"' && c == '\\' && p < end) {
                                c = *p++;
                                if (c == 'n')
                                        c = '\n';
                        }
                        if (o + 1 >= size) {
                                *ret_err = "value too long";
                                return DM_ECONFIG;
                        }
                        out[o++] = c;
                }
                while (p < end && conf_is_space(*p))
                        p++;
                if (p < end && *p != '#') {
                        *ret_err = "text after the closing quote";
                        return DM_ECONFIG;
                }
        } else {
                const char *start = p;
                while (p < end && !(*p == '#' && (p == start || conf_is_space(p[-1]))))
                        p++;
                while (p > start && conf_is_space(p[-1]))
                        p--;
                size_t n = (size_t)(p - start);
                if (n + 1 > size) {
                        *ret_err = "value too long";
                        return DM_ECONFIG;
                }
                memcpy(out, start, n);
                o = n;
        }
        out[o] = '\0';
        return 0;
}

static int conf_read_file(const char *path, struct dm_buf *b, int *ret_errno)
{
        FILE *f = fopen(path, "rb");
        if (!f) {
                *ret_errno = errno;
                return DM_EIO;
        }
        int r = 0;
        char chunk[4096];
        errno = 0;
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
                r = dm_buf_add(b, chunk, n);
                if (r < 0)
                        break;
        }
        if (r == 0 && ferror(f)) {
                *ret_errno = errno ? errno : EIO;
                r = DM_EIO;
        }
        fclose(f);
        return r;
}

static int conf_load_dotenv(struct dm_conf_raw *raw, const char *path, char *err, size_t errlen)
{
        struct dm_buf b;
        int saved = 0;
        int ret = 0;

        dm_buf_init(&b, DM_CONF_DOTENV_MAX);
        int r = conf_read_file(path, &b, &saved);
        if (r == DM_EIO && saved == ENOENT)
                goto out; /* no .env is the normal case */
        if (r == DM_E2BIG) {
                ret = dm_errorf(DM_ECONFIG, err, errlen, "%s: larger than %d bytes", path,
                                DM_CONF_DOTENV_MAX);
                goto out;
        }
        if (r < 0) {
                ret = dm_errorf(DM_ECONFIG, err, errlen, "%s: %s", path,
                                r == DM_EIO ? strerror(saved) : dm_strerror(r));
                goto out;
        }

        const char *p = b.data ? b.data : "";
        const char *end = p + b.len;
        for (int lineno = 1; p < end; lineno++) {
                const char *eol = memchr(p, '\n', (size_t)(end - p));
                const char *lend = eol ? eol : end;
                const char *next = eol ? eol + 1 : end;

                while (p < lend && conf_is_space(*p))
                        p++;
                if (p == lend || *p == '#') {
                        p = next;
                        continue;
                }
                if ((size_t)(lend - p) > 7 && memcmp(p, "export", 6) == 0 && conf_is_space(p[6])) {
                        p += 7;
                        while (p < lend && conf_is_space(*p))
                                p++;
                }
                const char *eq = memchr(p, '=', (size_t)(lend - p));
                if (!eq) {
                        ret = dm_errorf(DM_ECONFIG, err, errlen, "%s:%d: expected KEY=VALUE", path,
                                        lineno);
                        goto out;
                }
                const char *kend = eq;
                while (kend > p && conf_is_space(kend[-1]))
                        kend--;

                char value[DM_CONF_VALUE_MAX];
                const char *why = NULL;
                if (conf_dotenv_value(eq + 1, lend, value, sizeof(value), &why) < 0) {
                        ret = dm_errorf(DM_ECONFIG, err, errlen, "%s:%d: %s", path, lineno, why);
                        goto out;
                }
                int i = conf_find_env(p, (size_t)(kend - p));
                if (i >= 0) {
                        char *copy = strdup(value);
                        if (!copy) {
                                ret = DM_ENOMEM;
                                dm_errorf(DM_ECONFIG, err, errlen, "out of memory");
                                goto out;
                        }
                        free(raw[i].dotenv);
                        raw[i].dotenv = copy;
                        conf_raw_set(raw, (size_t)i, copy, DM_CONF_DOTENV);
                }
                p = next;
        }
out:
        dm_buf_done(&b);
        return ret;
}

static void conf_load_env(struct dm_conf_raw *raw, char *const *envp)
{
        for (char *const *e = envp; e && *e; e++) {
                const char *eq = strchr(*e, '=');
                if (!eq)
                        continue;
                int i = conf_find_env(*e, (size_t)(eq - *e));
                if (i >= 0)
                        conf_raw_set(raw, (size_t)i, eq + 1, DM_CONF_ENV);
        }
}

/* Marks consumed arguments in `drop`; argv itself is only rewritten once everything is
 * known to be valid. Arguments after a bare "--" belong to the program. */
static int conf_load_flags(struct dm_conf_raw *raw, int argc, char **argv, bool *drop, char *err,
                           size_t errlen)
{
        for (int a = 0; a < argc; a++) {
                const char *arg = argv[a];
                if (!arg || strncmp(arg, "--", 2) != 0)
                        continue;
                if (arg[2] == '\0')
                        break;
                const char *name = arg + 2;
                const char *eq = strchr(name, '=');
                size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
                int i = conf_find_flag(name, nlen);
                if (i < 0)
                        continue;

                const char *value;
                drop[a] = true;
                if (eq) {
                        value = eq + 1;
                        if (*value == '\0')
                                return dm_errorf(DM_ECONFIG, err, errlen,
                                                 "--%.*s: missing value (%s)", (int)nlen, name,
                                                 dm_conf_table[i].env);
                } else {
                        if (a + 1 >= argc || !argv[a + 1] || strncmp(argv[a + 1], "--", 2) == 0)
                                return dm_errorf(DM_ECONFIG, err, errlen,
                                                 "--%.*s: missing value (%s)", (int)nlen, name,
                                                 dm_conf_table[i].env);
                        value = argv[++a];
                        drop[a] = true;
                }
                conf_raw_set(raw, (size_t)i, value, DM_CONF_FLAG);
        }
        return 0;
}

/* Durations read back best in the largest unit that divides them exactly. */
static const char *conf_format_duration(int64_t ms, char *buf, size_t size)
{
        static const struct {
                int64_t ms;
                const char *unit;
        } units[] = {
            {DM_DAY, "d"}, {3600 * DM_SECOND, "h"}, {60 * DM_SECOND, "m"}, {DM_SECOND, "s"}};
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
                if (ms != 0 && ms % units[i].ms == 0) {
                        snprintf(buf, size, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
                        return buf;
                }
        }
        snprintf(buf, size, "%lldms", (long long)ms);
        return buf;
}

static bool conf_parse_port(const char *s, size_t n)
{
        if (n == 0 || n > 5)
                return false;
        long v = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (s[i] - '0');
        }
        return v >= 1 && v <= 65535;
}

static bool conf_is_ipv6(const char *s, size_t n)
{
        char tmp[64];
        unsigned char addr[16];
        if (n == 0 || n >= sizeof(tmp))
                return false;
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        return inet_pton(AF_INET6, tmp, addr) == 1;
}

static bool conf_is_ipv4(const char *s, size_t n)
{
        char tmp[32];
        unsigned char addr[4];
        if (n == 0 || n >= sizeof(tmp))
                return false;
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        return inet_pton(AF_INET, tmp, addr) == 1;
}

static bool conf_is_hostname(const char *s, size_t n)
{
        if (n == 0 || n > 253)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '-' || c == '_'))
                        return false;
        }
        return true;
}

/* host:port, [v6]:port; with `port_optional` also host and [v6]. With `ip_only` the host
 * must be an address (resolvers are given by address, not by name). */
static bool conf_check_hostport(const char *s, size_t n, bool port_optional, bool ip_only)
{
        const char *host = s, *port = NULL;
        size_t hlen, plen = 0;

        if (n > 0 && s[0] == '[') {
                const char *close = memchr(s, ']', n);
                if (!close)
                        return false;
                host = s + 1;
                hlen = (size_t)(close - host);
                if (!conf_is_ipv6(host, hlen))
                        return false;
                const char *rest = close + 1;
                size_t rlen = n - (size_t)(rest - s);
                if (rlen > 0) {
                        if (rest[0] != ':')
                                return false;
                        port = rest + 1;
                        plen = rlen - 1;
                }
        } else {
                const char *colon = memchr(s, ':', n);
                if (colon && memchr(colon + 1, ':', n - (size_t)(colon + 1 - s))) {
                        /* A bare IPv6 address can only be written without a port. */
                        return port_optional && conf_is_ipv6(s, n);
                }
                hlen = colon ? (size_t)(colon - s) : n;
                if (colon) {
                        port = colon + 1;
                        plen = n - hlen - 1;
                }
                if (ip_only ? !conf_is_ipv4(host, hlen) : !conf_is_hostname(host, hlen))
                        return false;
        }
        if (!port)
                return port_optional;
        return conf_parse_port(port, plen);
}

static bool conf_has_ctl(const char *s)
{
        for (; *s; s++) {
                if ((unsigned char)*s < 0x20 || *s == 0x7f)
                        return true;
        }
        return false;
}

static void conf_join(const char *const *list, const char *sep, const char *last, char *buf,
                      size_t size)
{
        size_t o = 0;
        buf[0] = '\0';
        for (size_t i = 0; list[i]; i++) {
                const char *s = i == 0 ? "" : (list[i + 1] ? sep : last);
                int n = snprintf(buf + o, size - o, "%s%s", s, list[i]);
                if (n < 0 || (size_t)n >= size - o)
                        return;
                o += (size_t)n;
        }
}

/* Parses entry i's raw text into the field of `conf`. */
static int conf_apply(struct dm_conf *conf, size_t i, const char *value, char *err, size_t errlen)
{
        const struct dm_conf_entry *e = &dm_conf_table[i];
        char *field = (char *)conf + e->offset;
        char shown[256];
        char list[128];

        if (!value)
                return 0; /* unset optional string: stays NULL */

        if (e->secret)
                snprintf(shown, sizeof(shown), "****");
        else if (e->type == DM_CONF_T_URL)
                dm_conf_mask_url(value, shown, sizeof(shown));
        else
                dm_secret_mask(value, shown, 81);
        if (conf_has_ctl(value))
                return dm_errorf(DM_ECONFIG, err, errlen, "%s: contains control characters",
                                 e->env);

        switch (e->type) {
        case DM_CONF_T_STRING:
                break;
        case DM_CONF_T_URL: {
                bool ok = false;
                for (size_t k = 0; e->schemes[k] && !ok; k++) {
                        size_t sl = strlen(e->schemes[k]);
                        ok = strncasecmp(value, e->schemes[k], sl) == 0 && value[sl] != '\0';
                }
                if (!ok) {
                        conf_join(e->schemes, ", ", " or ", list, sizeof(list));
                        return dm_errorf(DM_ECONFIG, err, errlen, "%s: \"%s\" must start with %s",
                                         e->env, shown, list);
                }
                break;
        }
        case DM_CONF_T_LISTEN:
                if (!conf_check_hostport(value, strlen(value), false, false))
                        return dm_errorf(DM_ECONFIG, err, errlen,
                                         "%s: \"%s\" is not host:port (use e.g. 127.0.0.1:8080, "
                                         "0.0.0.0:8080 or [::1]:8080; port 1-65535)",
                                         e->env, shown);
                break;
        case DM_CONF_T_HOST:
                if (!conf_check_hostport(value, strlen(value), true, false))
                        return dm_errorf(DM_ECONFIG, err, errlen,
                                         "%s: \"%s\" is not host[:port] (use e.g. rabbitmq or "
                                         "10.0.0.5:5672)",
                                         e->env, shown);
                break;
        case DM_CONF_T_ADDRLIST: {
                const char *p = value;
                for (;;) {
                        const char *comma = strchr(p, ',');
                        size_t n = comma ? (size_t)(comma - p) : strlen(p);
                        while (n > 0 && *p == ' ') {
                                p++;
                                n--;
                        }
                        while (n > 0 && p[n - 1] == ' ')
                                n--;
                        if (!conf_check_hostport(p, n, true, true))
                                return dm_errorf(DM_ECONFIG, err, errlen,
                                                 "%s: \"%.*s\" is not an IP address with optional "
                                                 "port (use e.g. 192.0.2.53, 192.0.2.53:5353 or "
                                                 "[2001:db8::53]:53)",
                                                 e->env, (int)(n > 80 ? 80 : n), p);
                        if (!comma)
                                break;
                        p = comma + 1;
                }
                break;
        }
        case DM_CONF_T_RATE: {
                struct dm_rate_policy p;
                if (dm_rate_policy_parse(value, &p) < 0)
                        return dm_errorf(DM_ECONFIG, err, errlen,
                                         "%s: \"%s\" is not a rate such as 600/m, 10/s or 50/10s "
                                         "(1 s to 1 d)",
                                         e->env, shown);
                break;
        }
        case DM_CONF_T_ORIGINS: {
                struct dm_http_cors *c = NULL;
                int r = dm_http_cors_parse(value, err, errlen, &c);
                dm_http_cors_free(c);
                if (r == DM_EINVAL)
                        return DM_ECONFIG;
                if (r < 0)
                        return dm_errorf(DM_ECONFIG, err, errlen, "out of memory");
                break;
        }
        case DM_CONF_T_ENUM: {
                const char *choice = NULL;
                for (size_t k = 0; e->choices[k] && !choice; k++) {
                        if (strcasecmp(value, e->choices[k]) == 0)
                                choice = e->choices[k];
                }
                if (!choice) {
                        conf_join(e->choices, ", ", " or ", list, sizeof(list));
                        return dm_errorf(DM_ECONFIG, err, errlen, "%s: \"%s\" is not one of %s",
                                         e->env, shown, list);
                }
                /* Stored in the table's spelling so callers compare with strcmp. */
                value = choice;
                break;
        }
        case DM_CONF_T_INT: {
                char *end = NULL;
                errno = 0;
                long long v = strtoll(value, &end, 10);
                bool digits = (value[0] >= '0' && value[0] <= '9') ||
                              (value[0] == '-' && value[1] >= '0' && value[1] <= '9');
                if (!digits || *end != '\0')
                        return dm_errorf(DM_ECONFIG, err, errlen,
                                         "%s: \"%s\" is not a whole number", e->env, shown);
                if (errno == ERANGE || v < e->min || v > e->max)
                        return dm_errorf(DM_ECONFIG, err, errlen,
                                         "%s: %s is out of range (%lld..%lld)", e->env, shown,
                                         (long long)e->min, (long long)e->max);
                *(int64_t *)field = v;
                return 0;
        }
        case DM_CONF_T_DURATION: {
                int64_t ms = 0;
                char lo[32], hi[32];
                int r = dm_duration_parse(value, &ms);
                if (r == DM_EINVAL)
                        return dm_errorf(DM_ECONFIG, err, errlen,
                                         "%s: \"%s\" is not a duration (use e.g. 600, 90s, 10m)",
                                         e->env, shown);
                if (r < 0 || ms < e->min || ms > e->max)
                        return dm_errorf(DM_ECONFIG, err, errlen, "%s: %s is out of range (%s..%s)",
                                         e->env, shown,
                                         conf_format_duration(e->min, lo, sizeof(lo)),
                                         conf_format_duration(e->max, hi, sizeof(hi)));
                *(int64_t *)field = ms;
                return 0;
        }
        case DM_CONF_T_CHECKS: {
                char why[96];
                unsigned checks = 0;
                if (dm_checks_parse(value, why, sizeof(why), &checks) < 0)
                        return dm_errorf(DM_ECONFIG, err, errlen, "%s: %s", e->env, why);
                *(int64_t *)field = checks;
                return 0;
        }
        }

        char *copy = strdup(value);
        if (!copy) {
                dm_errorf(DM_ECONFIG, err, errlen, "out of memory");
                return DM_ENOMEM;
        }
        *(char **)field = copy;
        return 0;
}

/* Where the authority of a URL ("user:pass@host:port") starts, and its length. */
static const char *conf_url_authority(const char *url, size_t *ret_len)
{
        const char *auth = strstr(url, "://");
        auth = auth ? auth + 3 : url;
        *ret_len = strcspn(auth, "/?#");
        return auth;
}

static bool conf_url_has_user(const char *url)
{
        size_t alen;
        const char *auth = conf_url_authority(url, &alen);
        return memchr(auth, '@', alen) != NULL;
}

static void conf_raw_done(struct dm_conf_raw *raw)
{
        for (size_t i = 0; i < DM_CONF_N; i++)
                free(raw[i].dotenv);
}

int dm_conf_load(struct dm_conf *conf, int *argc, char **argv, char *const *envp,
                 const char *dotenv_path, char *err, size_t errlen)
{
        struct dm_conf_raw raw[DM_CONF_N];
        struct dm_conf tmp;
        int nargs = (argc && argv) ? *argc : 0;
        bool *drop = NULL;
        int ret = 0;

        memset(&tmp, 0, sizeof(tmp));
        memset(raw, 0, sizeof(raw));
        if (err && errlen > 0)
                err[0] = '\0';
        for (size_t i = 0; i < DM_CONF_N; i++)
                conf_raw_set(raw, i, NULL, DM_CONF_DEFAULT);

        drop = calloc(nargs > 0 ? (size_t)nargs : 1, sizeof(*drop));
        if (!drop) {
                ret = DM_ENOMEM;
                dm_errorf(DM_ECONFIG, err, errlen, "out of memory");
                goto out;
        }

        ret =
            conf_load_dotenv(raw, dotenv_path ? dotenv_path : DM_CONF_DOTENV_DEFAULT, err, errlen);
        if (ret < 0)
                goto out;
        conf_load_env(raw, envp ? envp : environ);
        ret = conf_load_flags(raw, nargs, argv, drop, err, errlen);
        if (ret < 0)
                goto out;

        for (size_t i = 0; i < DM_CONF_N; i++) {
                ret = conf_apply(&tmp, i, raw[i].value, err, errlen);
                if (ret < 0)
                        goto out_free_conf;
                tmp.sources[i] = raw[i].source;
        }

        if (tmp.min_interval_ms > tmp.scan_interval_ms) {
                char a[32], b[32];
                ret = dm_errorf(DM_ECONFIG, err, errlen,
                                "DM_MIN_INTERVAL: %s is longer than DM_SCAN_INTERVAL (%s)",
                                conf_format_duration(tmp.min_interval_ms, a, sizeof(a)),
                                conf_format_duration(tmp.scan_interval_ms, b, sizeof(b)));
                goto out_free_conf;
        }

        if ((tmp.rabbitmq_user == NULL) != (tmp.rabbitmq_password == NULL)) {
                ret = dm_errorf(DM_ECONFIG, err, errlen,
                                "%s is set without %s: set both, or neither for the broker's "
                                "default account",
                                tmp.rabbitmq_user ? "RABBITMQ_USER" : "RABBITMQ_PASSWORD",
                                tmp.rabbitmq_user ? "RABBITMQ_PASSWORD" : "RABBITMQ_USER");
                goto out_free_conf;
        }
        if (tmp.rabbitmq_user && tmp.rabbitmq_url && conf_url_has_user(tmp.rabbitmq_url)) {
                ret = dm_errorf(DM_ECONFIG, err, errlen,
                                "RABBITMQ_URL names a user and RABBITMQ_USER is set too: keep "
                                "one of them");
                goto out_free_conf;
        }

        int kept = 0;
        for (int a = 0; a < nargs; a++) {
                if (!drop[a])
                        argv[kept++] = argv[a];
        }
        if (kept < nargs)
                argv[kept] = NULL;
        if (argc && argv)
                *argc = kept;
        *conf = tmp;
        memset(&tmp, 0, sizeof(tmp)); /* the strings now belong to *conf */

out_free_conf:
        dm_conf_done(&tmp);
out:
        if (ret < 0)
                memset(conf, 0, sizeof(*conf));
        free(drop);
        conf_raw_done(raw);
        return ret;
}

void dm_conf_done(struct dm_conf *conf)
{
        if (!conf)
                return;
        for (size_t i = 0; i < DM_CONF_N; i++) {
                const struct dm_conf_entry *e = &dm_conf_table[i];
                if (conf_numeric(e->type))
                        continue;
                char **field = (char **)((char *)conf + e->offset);
                free(*field);
                *field = NULL;
        }
}

const char *dm_conf_mask_url(const char *url, char *buf, size_t size)
{
        if (!buf || size == 0)
                return buf;
        if (!url)
                url = "";

        size_t alen;
        const char *auth = conf_url_authority(url, &alen);
        const char *at = NULL;
        for (const char *p = auth; p < auth + alen; p++) {
                if (*p == '@')
                        at = p; /* the last '@' ends the userinfo */
        }
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        char tmp[DM_CONF_VALUE_MAX + 8];
        if (!colon)
                snprintf(tmp, sizeof(tmp), "%s", url);
        else
                snprintf(tmp, sizeof(tmp), "%.*s****%s", (int)(colon + 1 - url), url, at);
        /* Then passwords in any other position: ?password=, libpq's password=... */
        dm_secret_mask(tmp, buf, size);
        return buf;
}

/* Whether the host of a DM_LISTEN value is a loopback address. */
static bool conf_listen_is_loopback(const char *listen)
{
        char host[64];
        const char *h = listen;
        size_t n;

        if (listen[0] == '[') {
                const char *close = strchr(listen, ']');
                if (!close)
                        return false;
                h = listen + 1;
                n = (size_t)(close - h);
        } else {
                const char *colon = strrchr(listen, ':');
                n = colon ? (size_t)(colon - listen) : strlen(listen);
        }
        if (n >= sizeof(host))
                return false;
        memcpy(host, h, n);
        host[n] = '\0';
        if (strcasecmp(host, "localhost") == 0 || strcmp(host, "::1") == 0)
                return true;
        struct in_addr a4;
        if (inet_pton(AF_INET, host, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        return false;
}

int dm_conf_check_exposure(const struct dm_conf *conf, char *err, size_t errlen)
{
        const char *listen = conf->listen ? conf->listen : "127.0.0.1:8080";

        if (conf_listen_is_loopback(listen))
                return 0;
        if (conf->secret_key && strlen(conf->secret_key) >= 16)
                return 0;
        return dm_errorf(DM_ECONFIG, err, errlen,
                         "DM_LISTEN: %.80s is reachable from other machines, which needs "
                         "SECRET_KEY set (16 characters or more, e.g. from `openssl rand -hex "
                         "32`); or listen on 127.0.0.1",
                         listen);
}

const char *dm_conf_cache_backend(const struct dm_conf *conf, char *err, size_t errlen)
{
        const char *c = conf->cache ? conf->cache : "auto";

        if (strcmp(c, "none") == 0 || strcmp(c, "memory") == 0)
                return c;
        if (conf->redis_url)
                return conf->redis_url;
        if (strcmp(c, "auto") == 0)
                return "memory";
        dm_errorf(DM_ECONFIG, err, errlen, "DM_CACHE: redis needs REDIS_URL");
        return NULL;
}

static const char *conf_entry_value(const struct dm_conf *conf, size_t i, char *buf, size_t size)
{
        const struct dm_conf_entry *e = &dm_conf_table[i];
        const char *field = (const char *)conf + e->offset;

        switch (e->type) {
        case DM_CONF_T_INT:
                snprintf(buf, size, "%lld", (long long)*(const int64_t *)field);
                return buf;
        case DM_CONF_T_DURATION:
                return conf_format_duration(*(const int64_t *)field, buf, size);
        case DM_CONF_T_CHECKS:
                dm_checks_format((unsigned)*(const int64_t *)field, buf, size);
                return buf;
        default:
                break;
        }
        const char *s = *(char *const *)field;
        if (!s) {
                buf[0] = '\0';
                return buf;
        }
        if (e->secret)
                snprintf(buf, size, "****");
        else if (e->type == DM_CONF_T_URL)
                dm_conf_mask_url(s, buf, size);
        else
                dm_secret_mask(s, buf, size);
        return buf;
}

static const char *conf_default_database_url(char *buf, size_t size)
{
        char cwd[4096];
        if (!getcwd(cwd, sizeof(cwd)))
                snprintf(cwd, sizeof(cwd), ".");
        snprintf(buf, size, "sqlite://%s%s" DM_CONF_SQLITE_FILE, cwd,
                 (cwd[0] && cwd[strlen(cwd) - 1] == '/') ? "" : "/");
        return buf;
}

void dm_conf_print(const struct dm_conf *conf, FILE *out)
{
        for (size_t i = 0; i < DM_CONF_N; i++) {
                const struct dm_conf_entry *e = &dm_conf_table[i];
                const char *field = (const char *)conf + e->offset;
                char value[4200];
                unsigned src = (unsigned)conf->sources[i];
                const char *source =
                    src < sizeof(dm_conf_source_names) / sizeof(dm_conf_source_names[0])
                        ? dm_conf_source_names[src]
                        : "?";
                /* A number without a default is unset while it is 0. */
                bool numeric = conf_numeric(e->type);
                bool unset = numeric ? !e->def && *(const int64_t *)field == 0
                                     : *(char *const *)field == NULL;

                if (unset && e->offset == offsetof(struct dm_conf, database_url)) {
                        fprintf(out, "%s=%s  # %s\n", e->env,
                                conf_default_database_url(value, sizeof(value)), source);
                } else if (unset) {
                        fprintf(out, "%s=  # %s: unset, %s\n", e->env, source,
                                e->unset_text ? e->unset_text : "none");
                } else {
                        fprintf(out, "%s=%s  # %s\n", e->env,
                                conf_entry_value(conf, i, value, sizeof(value)), source);
                }
        }
}

static const char *conf_metavar(enum dm_conf_type type)
{
        switch (type) {
        case DM_CONF_T_URL:
                return "URL";
        case DM_CONF_T_LISTEN:
                return "HOST:PORT";
        case DM_CONF_T_HOST:
                return "HOST[:PORT]";
        case DM_CONF_T_ADDRLIST:
                return "ADDR,...";
        case DM_CONF_T_INT:
                return "N";
        case DM_CONF_T_DURATION:
                return "DURATION";
        case DM_CONF_T_ENUM:
                return "LEVEL";
        case DM_CONF_T_CHECKS:
                return "CHECKS";
        case DM_CONF_T_RATE:
                return "N/UNIT";
        case DM_CONF_T_ORIGINS:
                return "ORIGIN,...";
        case DM_CONF_T_STRING:
                break;
        }
        return "TEXT";
}

/* Help text is written for Markdown: `code` marks read as plain quotes on a terminal. */
static void conf_put_plain(FILE *out, const char *s)
{
        for (; *s; s++)
                fputc(*s == '`' ? '\'' : *s, out);
}

/* `s` as plain text in lines of at most about 80 columns, each after `indent` spaces. */
static void conf_put_wrapped(FILE *out, const char *s, int indent)
{
        const int width = 80 - indent;
        while (*s) {
                int n = (int)strlen(s);
                if (n > width) {
                        n = width;
                        while (n > 0 && s[n] != ' ')
                                n--;
                        if (n == 0)
                                n = (int)strcspn(s, " ");
                }
                char line[256];
                snprintf(line, sizeof(line), "%.*s", n < 255 ? n : 255, s);
                fprintf(out, "%*s", indent, "");
                conf_put_plain(out, line);
                fputc('\n', out);
                s += n;
                while (*s == ' ')
                        s++;
        }
}

void dm_conf_help(FILE *out)
{
        conf_put_plain(out, DM_CONF_PRECEDENCE "\n");
        for (size_t i = 0; i < DM_CONF_N; i++) {
                const struct dm_conf_entry *e = &dm_conf_table[i];
                char flag[DM_CONF_FLAG_MAX];
                char usage[DM_CONF_FLAG_MAX + 32];
                char range[96] = "";

                conf_flag_name(e, flag, sizeof(flag));
                snprintf(usage, sizeof(usage), "--%s %s", flag, conf_metavar(e->type));
                if (e->type == DM_CONF_T_INT) {
                        snprintf(range, sizeof(range), "; %lld..%lld", (long long)e->min,
                                 (long long)e->max);
                } else if (e->type == DM_CONF_T_DURATION) {
                        char lo[32], hi[32];
                        snprintf(range, sizeof(range), "; %s..%s",
                                 conf_format_duration(e->min, lo, sizeof(lo)),
                                 conf_format_duration(e->max, hi, sizeof(hi)));
                }
                fprintf(out, "  %-34s %s%s\n", usage, e->env, e->secret ? " (secret)" : "");
                conf_put_wrapped(out, e->help, 8);
                if (e->def)
                        fprintf(out, "        default %s%s\n", e->def, range);
                else
                        fprintf(out, "        default: %s%s\n",
                                e->unset_text ? e->unset_text : "unset", range);
        }
}

/* "`600s`" or the meaning of unset; DATABASE_URL's default names the working directory. */
static void conf_markdown_default(const struct dm_conf_entry *e, FILE *out)
{
        if (e->offset == offsetof(struct dm_conf, database_url))
                fputs("`sqlite:///<cwd>/" DM_CONF_SQLITE_FILE "`", out);
        else if (e->def)
                fprintf(out, "`%s`", e->def);
        else if (e->unset_text)
                fprintf(out, "unset (%s)", e->unset_text);
        else
                fputs("unset", out);
}

void dm_conf_markdown(FILE *out)
{
        fputs(DM_CONF_PRECEDENCE "\n\n", out);
        fputs("| variable | flag | default | meaning |\n| --- | --- | --- | --- |\n", out);
        for (size_t i = 0; i < DM_CONF_N; i++) {
                const struct dm_conf_entry *e = &dm_conf_table[i];
                char flag[DM_CONF_FLAG_MAX];
                conf_flag_name(e, flag, sizeof(flag));
                fprintf(out, "| `%s` | `--%s` | ", e->env, flag);
                conf_markdown_default(e, out);
                fprintf(out, " | %s%s |\n", e->help,
                        e->secret ? " (secret: masked in `config`)" : "");
        }
}

size_t dm_conf_inert_set(const struct dm_conf *conf, const char **ret_names, size_t max)
{
        size_t n = 0;
        for (size_t i = 0; i < DM_CONF_N && n < max; i++) {
                const struct dm_conf_entry *e = &dm_conf_table[i];
                if (!e->inert || conf->sources[i] == DM_CONF_DEFAULT)
                        continue;
                bool numeric = e->type == DM_CONF_T_INT || e->type == DM_CONF_T_DURATION;
                if (!numeric && *(char *const *)((const char *)conf + e->offset) == NULL)
                        continue;
                ret_names[n++] = e->env;
        }
        return n;
}

/* Appends `s` percent-encoded as URL userinfo needs it: only unreserved bytes stay. */
static int conf_put_encoded(struct dm_buf *b, const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                             (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
                char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
                int r = plain ? dm_buf_add(b, s, 1) : dm_buf_add(b, esc, 3);
                if (r < 0)
                        return r;
        }
        return 0;
}

int dm_conf_rabbitmq_url(const struct dm_conf *conf, char *buf, size_t size, const char **ret_url)
{
        struct dm_buf b;
        int r = 0;

        if (!conf || !buf || size == 0 || !ret_url)
                return DM_EINVAL;
        if (!conf->rabbitmq_url && !conf->rabbitmq_host) {
                *ret_url = NULL;
                return 0;
        }
        dm_buf_init(&b, size - 1);
        const char *rest;
        if (conf->rabbitmq_url) {
                const char *sep = strstr(conf->rabbitmq_url, "://");
                size_t slen = sep ? (size_t)(sep + 3 - conf->rabbitmq_url) : 0;
                r = dm_buf_add(&b, conf->rabbitmq_url, slen);
                rest = conf->rabbitmq_url + slen;
        } else {
                r = dm_buf_add(&b, "amqp://", 7);
                rest = conf->rabbitmq_host;
        }
        if (r == 0 && conf->rabbitmq_user) {
                r = conf_put_encoded(&b, conf->rabbitmq_user);
                if (r == 0)
                        r = dm_buf_add(&b, ":", 1);
                if (r == 0)
                        r = conf_put_encoded(&b, conf->rabbitmq_password);
                if (r == 0)
                        r = dm_buf_add(&b, "@", 1);
        }
        /* A bare IPv6 address in RABBITMQ_HOST ("::1") needs its brackets in a URL. */
        bool bracket = !conf->rabbitmq_url && rest[0] != '[' && strchr(rest, ':') &&
                       strchr(rest, ':') != strrchr(rest, ':');
        if (r == 0 && bracket)
                r = dm_buf_add(&b, "[", 1);
        if (r == 0)
                r = dm_buf_add(&b, rest, strlen(rest));
        if (r == 0 && bracket)
                r = dm_buf_add(&b, "]", 1);
        if (r == 0) {
                memcpy(buf, b.data, b.len);
                buf[b.len] = '\0';
                *ret_url = buf;
        }
        if (b.data)
                explicit_bzero(b.data, b.len); /* it held the password */
        dm_buf_done(&b);
        return r;
}
