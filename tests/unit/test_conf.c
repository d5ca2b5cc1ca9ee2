/* lib/conf: the configuration table, its layers (flag > environment > .env > default),
 * validation messages, argv compaction and masking of secrets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dm/check.h"
#include "dm/conf.h"
#include "dm/error.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];
static char dotenv[128];  /* a .env written per test */
static char no_file[128]; /* a path that never exists */

static int group_setup(void **state)
{
        (void)state;
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/dm_test_conf_XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(dotenv, sizeof(dotenv), "%s/.env", tmpdir);
        snprintf(no_file, sizeof(no_file), "%s/missing.env", tmpdir);
        return 0;
}

static int group_teardown(void **state)
{
        (void)state;
        unlink(dotenv);
        rmdir(tmpdir);
        return 0;
}

static void write_dotenv(const char *text)
{
        FILE *f = fopen(dotenv, "w");
        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
}

/* dm_conf_print output, for checking values and sources through the public interface. */
static char *print_conf(const struct dm_conf *conf)
{
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        assert_non_null(f);
        dm_conf_print(conf, f);
        assert_int_equal(fclose(f), 0);
        return text;
}

/* The printed line for `name`, without the newline. */
static void print_line(const struct dm_conf *conf, const char *name, char *buf, size_t size)
{
        char *text = print_conf(conf);
        char key[64];
        snprintf(key, sizeof(key), "\n%s=", name);
        char *all = NULL;
        assert_true(asprintf(&all, "\n%s", text) > 0);
        char *p = strstr(all, key);
        if (!p)
                fail_msg("%s not printed", name);
        p++;
        size_t n = strcspn(p, "\n");
        assert_true(n < size);
        memcpy(buf, p, n);
        buf[n] = '\0';
        free(all);
        free(text);
}

static void assert_line(const struct dm_conf *conf, const char *name, const char *want)
{
        char line[512];
        print_line(conf, name, line, sizeof(line));
        if (strcmp(line, want) != 0)
                fail_msg("got \"%s\", want \"%s\"", line, want);
}

static int load(struct dm_conf *conf, char *const *envp, const char *path, char *err, size_t errlen)
{
        int argc = 1;
        char *argv[] = {"domainmon", NULL};
        return dm_conf_load(conf, &argc, argv, envp, path, err, errlen);
}

static void test_defaults(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        char *const envp[] = {NULL};
        (void)state;

        assert_int_equal(load(&c, envp, no_file, err, sizeof(err)), 0);
        assert_null(c.database_url);
        assert_null(c.rabbitmq_url);
        assert_null(c.rabbitmq_host);
        assert_null(c.rabbitmq_user);
        assert_null(c.rabbitmq_password);
        assert_null(c.redis_url);
        assert_null(c.secret_key);
        assert_null(c.dns_servers);
        assert_string_equal(c.listen, "127.0.0.1:8080");
        assert_string_equal(c.log_level, "info");
        assert_int_equal(c.scan_interval_ms, 600000);
        assert_int_equal(c.min_interval_ms, 60000);
        assert_int_equal(c.http_threads, 4);
        assert_int_equal(c.max_body, 1048576);
        assert_int_equal(c.dns_timeout_ms, 2000);
        assert_int_equal(c.dns_retries, 5);
        assert_int_equal(c.dns_concurrency, 1000);
        assert_int_equal(c.dns_qps, 0);
        assert_int_equal(c.dns_loops, 0);
        assert_int_equal(c.dns_auth_only, 0);
        assert_int_equal(c.scan_batch, 1000);
        assert_int_equal(c.history_retention_ms, 0);
        assert_int_equal(c.events_max_streams, 256);
        assert_int_equal(c.events_replay, 10000);
        assert_int_equal(c.events_replay_bytes, 16777216);
        assert_int_equal(c.events_backlog, 1048576);
        assert_int_equal(c.events_heartbeat_ms, 15000);
        for (size_t i = 0; i < sizeof(c.sources) / sizeof(c.sources[0]); i++)
                assert_int_equal(c.sources[i], DM_CONF_DEFAULT);

        assert_line(&c, "DM_SCAN_INTERVAL", "DM_SCAN_INTERVAL=10m  # default");
        assert_line(&c, "DM_LISTEN", "DM_LISTEN=127.0.0.1:8080  # default");
        assert_line(&c, "DM_HTTP_THREADS", "DM_HTTP_THREADS=4  # default");
        char line[512], cwd[256], want[512];
        assert_non_null(getcwd(cwd, sizeof(cwd)));
        snprintf(want, sizeof(want), "DATABASE_URL=sqlite://%s/domainmon.db  # default", cwd);
        print_line(&c, "DATABASE_URL", line, sizeof(line));
        assert_string_equal(line, want);
        print_line(&c, "REDIS_URL", line, sizeof(line));
        assert_memory_equal(line, "REDIS_URL=  # default", 21);
        dm_conf_done(&c);
        dm_conf_done(&c);
        dm_conf_done(NULL);
}

static void test_precedence(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        (void)state;

        write_dotenv("DM_SCAN_INTERVAL=5m\n"
                     "DM_HTTP_THREADS=8\n"
                     "DM_LISTEN=0.0.0.0:9000\n"
                     "DM_DNS_RETRIES=5\n");
        char *const envp[] = {"DM_SCAN_INTERVAL=7m", "DM_HTTP_THREADS=16", "DM_DNS_RETRIES=6",
                              "PATH=/usr/bin",       "DM_UNKNOWN_THING=1", NULL};
        char a0[] = "domainmon", a1[] = "--scan-interval", a2[] = "9m", a3[] = "--dns-retries=7";
        char *argv[] = {a0, a1, a2, a3, NULL};
        int argc = 4;

        assert_int_equal(dm_conf_load(&c, &argc, argv, envp, dotenv, err, sizeof(err)), 0);
        assert_int_equal(c.scan_interval_ms, 9 * 60000); /* flag beats env and .env */
        assert_int_equal(c.dns_retries, 7);              /* flag (--name=value) */
        assert_int_equal(c.http_threads, 16);            /* env beats .env */
        assert_string_equal(c.listen, "0.0.0.0:9000");   /* .env beats default */
        assert_int_equal(c.dns_concurrency, 1000);       /* default */
        assert_line(&c, "DM_SCAN_INTERVAL", "DM_SCAN_INTERVAL=9m  # flag");
        assert_line(&c, "DM_DNS_RETRIES", "DM_DNS_RETRIES=7  # flag");
        assert_line(&c, "DM_HTTP_THREADS", "DM_HTTP_THREADS=16  # environment");
        assert_line(&c, "DM_LISTEN", "DM_LISTEN=0.0.0.0:9000  # .env");
        assert_line(&c, "DM_DNS_CONCURRENCY", "DM_DNS_CONCURRENCY=1000  # default");
        assert_int_equal(argc, 1);
        assert_string_equal(argv[0], "domainmon");
        assert_null(argv[1]);
        dm_conf_done(&c);
}

static void test_dotenv_syntax(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        char *const envp[] = {NULL};
        (void)state;

        write_dotenv("# comment line\n"
                     "\n"
                     "   \n"
                     "export DM_LISTEN=127.0.0.1:7000\n"
                     "DM_LOG_LEVEL = \"debug\"   # quoted, spaces around =\n"
                     "SECRET_KEY='s3cr#t \"x\"'\n"
                     "DATABASE_URL=\"postgres://u:p\\\"w@db/x\"\n"
                     "DM_SCAN_INTERVAL=15m # trailing comment\r\n"
                     "REDIS_URL=redis://cache:6379/0#frag\n"
                     "SOMETHING_ELSE=ignored\n"
                     "DM_DNS_SERVERS=1.1.1.1");
        assert_int_equal(load(&c, envp, dotenv, err, sizeof(err)), 0);
        assert_string_equal(c.listen, "127.0.0.1:7000");
        assert_string_equal(c.log_level, "debug");
        assert_string_equal(c.secret_key, "s3cr#t \"x\"");
        assert_string_equal(c.database_url, "postgres://u:p\"w@db/x");
        assert_int_equal(c.scan_interval_ms, 15 * 60000);
        assert_string_equal(c.redis_url, "redis://cache:6379/0#frag");
        assert_string_equal(c.dns_servers, "1.1.1.1");
        assert_line(&c, "DM_LOG_LEVEL", "DM_LOG_LEVEL=debug  # .env");
        dm_conf_done(&c);
}

static void test_dotenv_errors(void **state)
{
        static const struct {
                const char *text;
                const char *want;
        } cases[] = {
            {"DM_LISTEN=127.0.0.1:1\nthis line has no equals\n", ".env:2: expected KEY=VALUE"},
            {"DM_LOG_LEVEL=\"debug\n", ".env:1: unterminated quoted value"},
            {"\n\nDM_LOG_LEVEL='debug' extra\n", ".env:3: text after the closing quote"},
            {"DM_HTTP_THREADS=zero\n", "DM_HTTP_THREADS: \"zero\" is not a whole number"},
        };
        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct dm_conf c;
                char err[256] = "";
                char *const envp[] = {NULL};
                write_dotenv(cases[i].text);
                memset(&c, 0x5a, sizeof(c));
                assert_int_equal(load(&c, envp, dotenv, err, sizeof(err)), DM_ECONFIG);
                if (!strstr(err, cases[i].want))
                        fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].want);
                assert_null(c.listen); /* left cleared */
                assert_int_equal(c.scan_interval_ms, 0);
        }

        /* A .env that exists but cannot be read is an error, not silently skipped. */
        struct dm_conf c;
        char err[256] = "";
        char *const envp[] = {NULL};
        assert_int_equal(load(&c, envp, tmpdir, err, sizeof(err)), DM_ECONFIG);
        assert_non_null(strstr(err, tmpdir));
}

static void test_argv_compaction(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        char *const envp[] = {NULL};
        char a0[] = "domainmon", a1[] = "all", a2[] = "--scan-interval", a3[] = "5m",
             a4[] = "--verbose", a5[] = "--listen=[::1]:9000", a6[] = "extra",
             a7[] = "--database-url", a8[] = "sqlite:///tmp/x.db", a9[] = "--", a10[] = "--listen",
             a11[] = "kept";
        char *argv[] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, NULL};
        int argc = 12;
        (void)state;

        assert_int_equal(dm_conf_load(&c, &argc, argv, envp, no_file, err, sizeof(err)), 0);
        assert_int_equal(c.scan_interval_ms, 300000);
        assert_string_equal(c.listen, "[::1]:9000");
        assert_string_equal(c.database_url, "sqlite:///tmp/x.db");
        assert_int_equal(argc, 7);
        assert_string_equal(argv[0], "domainmon");
        assert_string_equal(argv[1], "all");
        assert_string_equal(argv[2], "--verbose");
        assert_string_equal(argv[3], "extra");
        assert_string_equal(argv[4], "--");
        assert_string_equal(argv[5], "--listen");
        assert_string_equal(argv[6], "kept");
        assert_null(argv[7]);
        dm_conf_done(&c);
}

static void test_flag_missing_value(void **state)
{
        char *const envp[] = {NULL};
        (void)state;
        {
                struct dm_conf c;
                char err[256] = "";
                char a0[] = "domainmon", a1[] = "all", a2[] = "--scan-interval";
                char *argv[] = {a0, a1, a2, NULL};
                int argc = 3;
                assert_int_equal(dm_conf_load(&c, &argc, argv, envp, no_file, err, sizeof(err)),
                                 DM_ECONFIG);
                assert_non_null(strstr(err, "--scan-interval"));
                assert_non_null(strstr(err, "missing value"));
                assert_int_equal(argc, 3); /* argv untouched on error */
                assert_ptr_equal(argv[2], a2);
        }
        {
                struct dm_conf c;
                char err[256] = "";
                char a0[] = "domainmon", a1[] = "--listen", a2[] = "--http-threads", a3[] = "2";
                char *argv[] = {a0, a1, a2, a3, NULL};
                int argc = 4;
                assert_int_equal(dm_conf_load(&c, &argc, argv, envp, no_file, err, sizeof(err)),
                                 DM_ECONFIG);
                assert_non_null(strstr(err, "--listen"));
        }
        {
                struct dm_conf c;
                char err[256] = "";
                char a0[] = "domainmon", a1[] = "--redis-url=";
                char *argv[] = {a0, a1, NULL};
                int argc = 2;
                assert_int_equal(dm_conf_load(&c, &argc, argv, envp, no_file, err, sizeof(err)),
                                 DM_ECONFIG);
                assert_non_null(strstr(err, "REDIS_URL"));
        }
}

static void test_flag_names(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        char *const envp[] = {NULL};
        char *args[] = {"domainmon",
                        "--database-url=postgres://db/x",
                        "--rabbitmq-url=amqp://mq",
                        "--rabbitmq-host=mq:5672",
                        "--redis-url=redis://cache",
                        "--secret-key=k",
                        "--log-level=warn",
                        "--min-interval=30s",
                        "--http-threads=2",
                        "--max-body=2048",
                        "--dns-servers=127.0.0.1:5353",
                        "--dns-timeout=500ms",
                        "--dns-concurrency=10",
                        "--dns-qps=100",
                        "--dns-loops=2",
                        "--scan-batch=50",
                        "--DM_SCAN_INTERVAL=5s",
                        "--scan_interval=5s",
                        NULL};
        int argc = 18;
        (void)state;
        assert_int_equal(dm_conf_load(&c, &argc, args, envp, no_file, err, sizeof(err)), 0);
        assert_string_equal(c.database_url, "postgres://db/x");
        assert_string_equal(c.rabbitmq_url, "amqp://mq");
        assert_string_equal(c.rabbitmq_host, "mq:5672");
        assert_string_equal(c.redis_url, "redis://cache");
        assert_string_equal(c.secret_key, "k");
        assert_string_equal(c.log_level, "warn");
        assert_int_equal(c.min_interval_ms, 30000);
        assert_int_equal(c.http_threads, 2);
        assert_int_equal(c.max_body, 2048);
        assert_string_equal(c.dns_servers, "127.0.0.1:5353");
        assert_int_equal(c.dns_timeout_ms, 500);
        assert_int_equal(c.dns_concurrency, 10);
        assert_int_equal(c.dns_qps, 100);
        assert_int_equal(c.dns_loops, 2);
        assert_int_equal(c.scan_batch, 50);
        /* Only the documented spelling is a config flag; the others are left for the caller. */
        assert_int_equal(c.scan_interval_ms, 600000);
        assert_int_equal(argc, 3);
        assert_string_equal(args[1], "--DM_SCAN_INTERVAL=5s");
        assert_string_equal(args[2], "--scan_interval=5s");
        dm_conf_done(&c);
}

static void test_bad_values(void **state)
{
        static const struct {
                const char *env;
                const char *want; /* whole message, or prefix when it ends in '*' */
        } cases[] = {
            {"DM_SCAN_INTERVAL=abc",
             "DM_SCAN_INTERVAL: \"abc\" is not a duration (use e.g. 600, 90s, 10m)"},
            {"DM_SCAN_INTERVAL=0", "DM_SCAN_INTERVAL: 0 is out of range (1s..30d)"},
            {"DM_SCAN_INTERVAL=31d", "DM_SCAN_INTERVAL: 31d is out of range (1s..30d)"},
            {"DM_SCAN_INTERVAL=999999999999999999999d", "DM_SCAN_INTERVAL: *"},
            {"DM_MIN_INTERVAL=500ms", "DM_MIN_INTERVAL: 500ms is out of range (1s..30d)"},
            {"DM_DNS_TIMEOUT=50ms", "DM_DNS_TIMEOUT: 50ms is out of range (100ms..1m)"},
            {"DM_DNS_TIMEOUT=61s", "DM_DNS_TIMEOUT: *"},
            {"DM_HTTP_THREADS=0", "DM_HTTP_THREADS: 0 is out of range (1..64)"},
            {"DM_HTTP_THREADS=65", "DM_HTTP_THREADS: 65 is out of range (1..64)"},
            {"DM_HTTP_THREADS=four", "DM_HTTP_THREADS: \"four\" is not a whole number"},
            {"DM_HTTP_THREADS=4x", "DM_HTTP_THREADS: \"4x\" is not a whole number"},
            {"DM_HTTP_THREADS= 4", "DM_HTTP_THREADS: \" 4\" is not a whole number"},
            {"DM_HTTP_THREADS=99999999999999999999", "DM_HTTP_THREADS: *"},
            {"DM_MAX_BODY=1023", "DM_MAX_BODY: 1023 is out of range (1024..67108864)"},
            {"DM_MAX_BODY=67108865", "DM_MAX_BODY: *"},
            {"DM_DNS_RETRIES=11", "DM_DNS_RETRIES: *"},
            {"DM_DNS_RETRIES=-1", "DM_DNS_RETRIES: -1 is out of range (0..10)"},
            {"DM_DNS_CONCURRENCY=0", "DM_DNS_CONCURRENCY: *"},
            {"DM_DNS_CONCURRENCY=100001", "DM_DNS_CONCURRENCY: *"},
            {"DM_DNS_QPS=10000001", "DM_DNS_QPS: *"},
            {"DM_DNS_LOOPS=65", "DM_DNS_LOOPS: *"},
            {"DM_DNS_AUTHORITATIVE=2", "DM_DNS_AUTHORITATIVE: 2 is out of range (0..1)"},
            {"DM_SCAN_BATCH=0", "DM_SCAN_BATCH: *"},
            {"DM_LOG_LEVEL=loud",
             "DM_LOG_LEVEL: \"loud\" is not one of debug, info, warn or error"},
            {"DM_LISTEN=8080", "DM_LISTEN: \"8080\" is not host:port*"},
            {"DM_LISTEN=:8080", "DM_LISTEN: *"},
            {"DM_LISTEN=localhost", "DM_LISTEN: *"},
            {"DM_LISTEN=localhost:0", "DM_LISTEN: *"},
            {"DM_LISTEN=localhost:65536", "DM_LISTEN: *"},
            {"DM_LISTEN=localhost:http", "DM_LISTEN: *"},
            {"DM_LISTEN=[::1]", "DM_LISTEN: *"},
            {"DM_LISTEN=::1:80", "DM_LISTEN: *"},
            {"DM_LISTEN=[zz::1]:80", "DM_LISTEN: *"},
            {"DM_LISTEN=[::1]80", "DM_LISTEN: *"},
            {"DM_LISTEN=bad host:80", "DM_LISTEN: *"},
            {"RABBITMQ_HOST=mq:0", "RABBITMQ_HOST: *"},
            {"RABBITMQ_HOST=a/b", "RABBITMQ_HOST: *"},
            {"DATABASE_URL=mysql://db/x",
             "DATABASE_URL: \"mysql://db/x\" must start with sqlite://, postgres:// or "
             "postgresql://"},
            {"DATABASE_URL=./domainmon.db", "DATABASE_URL: *"},
            {"DATABASE_URL=sqlite://", "DATABASE_URL: *"},
            {"RABBITMQ_URL=http://mq", "RABBITMQ_URL: \"http://mq\" must start with amqp:// "
                                       "or amqps://"},
            {"REDIS_URL=cache:6379", "REDIS_URL: *"},
            {"DM_DNS_SERVERS=dns.google", "DM_DNS_SERVERS: \"dns.google\" is not an IP*"},
            {"DM_DNS_SERVERS=1.1.1.1,,8.8.8.8", "DM_DNS_SERVERS: \"\" is not an IP*"},
            {"DM_DNS_SERVERS=1.1.1.1:99999", "DM_DNS_SERVERS: *"},
            {"SECRET_KEY=a\tb", "SECRET_KEY: contains control characters"},
        };
        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct dm_conf c;
                char err[256] = "";
                char *const envp[] = {(char *)cases[i].env, NULL};
                int r = load(&c, envp, no_file, err, sizeof(err));
                if (r != DM_ECONFIG)
                        fail_msg("%s: accepted (%d)", cases[i].env, r);
                size_t wl = strlen(cases[i].want);
                bool ok = cases[i].want[wl - 1] == '*' ? strncmp(err, cases[i].want, wl - 1) == 0
                                                       : strcmp(err, cases[i].want) == 0;
                if (!ok)
                        fail_msg("%s: got \"%s\", want \"%s\"", cases[i].env, err, cases[i].want);
                assert_null(strchr(err, '\n'));
        }
}

static void test_good_values(void **state)
{
        static const char *const good[] = {
            "DM_LISTEN=0.0.0.0:80",
            "DM_LISTEN=localhost:8080",
            "DM_LISTEN=[::]:8080",
            "DM_LISTEN=[::1]:65535",
            "DM_LISTEN=api.example.com:1",
            "RABBITMQ_HOST=rabbitmq",
            "RABBITMQ_HOST=rabbitmq:5672",
            "RABBITMQ_HOST=[::1]:5672",
            "RABBITMQ_HOST=10.0.0.5",
            "RABBITMQ_URL=amqps://u:p@mq:5671/vhost",
            "DATABASE_URL=postgresql://u@db/x",
            "DATABASE_URL=SQLITE:///tmp/x.db",
            "REDIS_URL=rediss://cache:6380/1",
            "DM_DNS_SERVERS=1.1.1.1, 8.8.8.8:53,[2001:db8::1]:53,2001:db8::2",
            "DM_LOG_LEVEL=ERROR",
            "DM_SCAN_INTERVAL=30d",
            "DM_DNS_TIMEOUT=100ms",
            "DM_DNS_TIMEOUT=60s",
            "DM_DNS_QPS=10000000",
            "DM_MAX_BODY=67108864",
            "DM_HTTP_THREADS=64",
            "DM_DNS_RETRIES=0",
            "DM_DNS_AUTHORITATIVE=1",
        };
        (void)state;
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                struct dm_conf c;
                char err[256] = "";
                char *const envp[] = {(char *)good[i], NULL};
                if (load(&c, envp, no_file, err, sizeof(err)) != 0)
                        fail_msg("%s rejected: %s", good[i], err);
                dm_conf_done(&c);
        }

        struct dm_conf c;
        char err[256] = "";
        char *const envp[] = {"DM_LOG_LEVEL=WARN", NULL};
        assert_int_equal(load(&c, envp, no_file, err, sizeof(err)), 0);
        assert_string_equal(c.log_level, "warn");
        dm_conf_done(&c);
}

static void test_min_interval_vs_scan_interval(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        (void)state;
        char *const bad[] = {"DM_SCAN_INTERVAL=5m", "DM_MIN_INTERVAL=10m", NULL};
        assert_int_equal(load(&c, bad, no_file, err, sizeof(err)), DM_ECONFIG);
        assert_string_equal(err, "DM_MIN_INTERVAL: 10m is longer than DM_SCAN_INTERVAL (5m)");

        /* The default minimum (60s) is checked against a shorter scan interval too. */
        char *const bad2[] = {"DM_SCAN_INTERVAL=30s", NULL};
        assert_int_equal(load(&c, bad2, no_file, err, sizeof(err)), DM_ECONFIG);
        assert_non_null(strstr(err, "DM_MIN_INTERVAL"));

        char *const ok[] = {"DM_SCAN_INTERVAL=30s", "DM_MIN_INTERVAL=30s", NULL};
        assert_int_equal(load(&c, ok, no_file, err, sizeof(err)), 0);
        dm_conf_done(&c);
}

static void test_empty_value_means_default(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        (void)state;
        write_dotenv("REDIS_URL=redis://cache\nDM_HTTP_THREADS=9\n");
        char *const envp[] = {"REDIS_URL=", "DM_HTTP_THREADS=", NULL};
        assert_int_equal(load(&c, envp, dotenv, err, sizeof(err)), 0);
        assert_null(c.redis_url);
        assert_int_equal(c.http_threads, 4);
        assert_line(&c, "DM_HTTP_THREADS", "DM_HTTP_THREADS=4  # environment");
        dm_conf_done(&c);
}

static void test_mask_url(void **state)
{
        char buf[128];
        (void)state;
        assert_string_equal(dm_conf_mask_url("postgres://user:pw@db:5432/x", buf, sizeof(buf)),
                            "postgres://user:****@db:5432/x");
        assert_string_equal(dm_conf_mask_url("amqp://guest:guest@mq/", buf, sizeof(buf)),
                            "amqp://guest:****@mq/");
        assert_string_equal(dm_conf_mask_url("redis://:secret@cache:6379/0", buf, sizeof(buf)),
                            "redis://:****@cache:6379/0");
        assert_string_equal(dm_conf_mask_url("amqp://u:p@ss@mq/v", buf, sizeof(buf)),
                            "amqp://u:****@mq/v");
        assert_string_equal(dm_conf_mask_url("postgres://user@db/x", buf, sizeof(buf)),
                            "postgres://user@db/x");
        assert_string_equal(dm_conf_mask_url("postgres://db:5432/x", buf, sizeof(buf)),
                            "postgres://db:5432/x");
        assert_string_equal(dm_conf_mask_url("sqlite:///tmp/a:b@c.db", buf, sizeof(buf)),
                            "sqlite:///tmp/a:b@c.db");
        assert_string_equal(dm_conf_mask_url("http://h/p?x=a:b@c", buf, sizeof(buf)),
                            "http://h/p?x=a:b@c");
        assert_string_equal(dm_conf_mask_url(NULL, buf, sizeof(buf)), "");
        char small[12];
        assert_string_equal(dm_conf_mask_url("amqp://u:p@mq/", small, sizeof(small)),
                            "amqp://u:**");
}

static void test_print_masks_secrets(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        (void)state;
        char *const envp[] = {"SECRET_KEY=hunter2", "DATABASE_URL=postgres://app:pw1@db/x",
                              "RABBITMQ_URL=amqp://u:pw2@mq/", "REDIS_URL=redis://:pw3@cache",
                              NULL};
        assert_int_equal(load(&c, envp, no_file, err, sizeof(err)), 0);
        char *text = print_conf(&c);
        assert_null(strstr(text, "hunter2"));
        assert_null(strstr(text, "pw1"));
        assert_null(strstr(text, "pw2"));
        assert_null(strstr(text, "pw3"));
        free(text);
        assert_line(&c, "SECRET_KEY", "SECRET_KEY=****  # environment");
        assert_line(&c, "DATABASE_URL", "DATABASE_URL=postgres://app:****@db/x  # environment");
        assert_line(&c, "REDIS_URL", "REDIS_URL=redis://:****@cache  # environment");
        /* The struct keeps the real values for the code that connects. */
        assert_string_equal(c.secret_key, "hunter2");
        assert_string_equal(c.database_url, "postgres://app:pw1@db/x");
        dm_conf_done(&c);

        /* Error messages do not leak passwords either. */
        char *const bad[] = {"DATABASE_URL=mysql://app:topsecret@db/x", NULL};
        assert_int_equal(load(&c, bad, no_file, err, sizeof(err)), DM_ECONFIG);
        assert_null(strstr(err, "topsecret"));
        assert_non_null(strstr(err, "DATABASE_URL"));
}

/* A password is masked wherever the URL carries it: userinfo, ?password=, libpq's
 * password= in the query, a token parameter. */
static void test_print_masks_query_passwords(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        (void)state;
        char *const envp[] = {
            "DATABASE_URL=postgres://app@db/x?sslmode=require&password=qpw1",
            "REDIS_URL=redis://cache:6379/0?password=qpw2",
            "RABBITMQ_URL=amqp://mq/?heartbeat=30&token=qpw3",
            NULL,
        };
        assert_int_equal(load(&c, envp, no_file, err, sizeof(err)), 0);
        char *text = print_conf(&c);
        assert_null(strstr(text, "qpw1"));
        assert_null(strstr(text, "qpw2"));
        assert_null(strstr(text, "qpw3"));
        free(text);
        assert_line(&c, "DATABASE_URL",
                    "DATABASE_URL=postgres://app@db/x?sslmode=require&password=****  # "
                    "environment");
        dm_conf_done(&c);
}

static void test_rate_and_cors_values(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        (void)state;
        char *const ok[] = {"DM_RATE_LIMIT=50/10s", "DM_RATE_LIMIT_EXPENSIVE=5/m",
                            "DM_CORS_ORIGINS=https://app.example.com, http://localhost:3000", NULL};
        assert_int_equal(load(&c, ok, no_file, err, sizeof(err)), 0);
        assert_string_equal(c.rate_limit, "50/10s");
        assert_string_equal(c.cors_origins, "https://app.example.com, http://localhost:3000");
        dm_conf_done(&c);

        char *const bad_rate[] = {"DM_RATE_LIMIT=lots", NULL};
        assert_int_equal(load(&c, bad_rate, no_file, err, sizeof(err)), DM_ECONFIG);
        assert_non_null(strstr(err, "DM_RATE_LIMIT"));
        char *const bad_origin[] = {"DM_CORS_ORIGINS=https://app.example.com/path", NULL};
        assert_int_equal(load(&c, bad_origin, no_file, err, sizeof(err)), DM_ECONFIG);
        assert_non_null(strstr(err, "DM_CORS_ORIGINS"));
}

/* Listening beyond loopback needs SECRET_KEY. */
static void test_exposure(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        (void)state;
        static const struct {
                const char *listen, *secret;
                int want;
        } cases[] = {
            {"127.0.0.1:8080", NULL, 0},
            {"127.1.2.3:8080", NULL, 0},
            {"localhost:8080", NULL, 0},
            {"[::1]:8080", NULL, 0},
            {"0.0.0.0:8080", NULL, DM_ECONFIG},
            {"192.0.2.10:8080", NULL, DM_ECONFIG},
            {"[::]:8080", NULL, DM_ECONFIG},
            {"0.0.0.0:8080", "short", DM_ECONFIG},
            {"0.0.0.0:8080", "0123456789abcdef0123", 0},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char l[64], k[64];
                snprintf(l, sizeof(l), "DM_LISTEN=%s", cases[i].listen);
                snprintf(k, sizeof(k), "SECRET_KEY=%s", cases[i].secret ? cases[i].secret : "");
                char *const envp[] = {l, k, NULL};
                assert_int_equal(load(&c, envp, no_file, err, sizeof(err)), 0);
                int r = dm_conf_check_exposure(&c, err, sizeof(err));
                if (r != cases[i].want)
                        print_error("case %zu: %s\n", i, cases[i].listen);
                assert_int_equal(r, cases[i].want);
                if (r < 0) {
                        assert_non_null(strstr(err, "SECRET_KEY"));
                        assert_null(strstr(err, "short"));
                }
                dm_conf_done(&c);
        }
}

static const char *bus_url(char *const *envp, char *buf, size_t size)
{
        struct dm_conf c;
        char err[256] = "";
        const char *url = NULL;
        if (load(&c, envp, no_file, err, sizeof(err)) != 0)
                print_error("%s\n", err);
        assert_int_equal(dm_conf_rabbitmq_url(&c, buf, size, &url), 0);
        dm_conf_done(&c);
        return url;
}

static void test_rabbitmq_credentials(void **state)
{
        struct dm_conf c;
        char err[256] = "", buf[512];
        (void)state;

        char *const none[] = {NULL};
        assert_null(bus_url(none, buf, sizeof(buf)));
        /* No credentials: no user in the URL, so the client's default (guest) applies. */
        char *const host[] = {"RABBITMQ_HOST=mq:5673", NULL};
        assert_string_equal(bus_url(host, buf, sizeof(buf)), "amqp://mq:5673");
        char *const v6[] = {"RABBITMQ_HOST=::1", NULL};
        assert_string_equal(bus_url(v6, buf, sizeof(buf)), "amqp://[::1]");
        char *const v6p[] = {"RABBITMQ_HOST=[::1]:5672", NULL};
        assert_string_equal(bus_url(v6p, buf, sizeof(buf)), "amqp://[::1]:5672");
        char *const creds[] = {"RABBITMQ_HOST=mq", "RABBITMQ_USER=app",
                               "RABBITMQ_PASSWORD=p@ss:w/rd%", NULL};
        assert_string_equal(bus_url(creds, buf, sizeof(buf)), "amqp://app:p%40ss%3Aw%2Frd%25@mq");
        char *const url[] = {"RABBITMQ_URL=amqps://mq:5671/prod", "RABBITMQ_USER=app",
                             "RABBITMQ_PASSWORD=pw", NULL};
        assert_string_equal(bus_url(url, buf, sizeof(buf)), "amqps://app:pw@mq:5671/prod");
        char *const both[] = {"RABBITMQ_URL=amqp://u:p@mq/", "RABBITMQ_HOST=other", NULL};
        assert_string_equal(bus_url(both, buf, sizeof(buf)), "amqp://u:p@mq/");

        char small[10];
        const char *out = NULL;
        assert_int_equal(load(&c, creds, no_file, err, sizeof(err)), 0);
        assert_int_equal(dm_conf_rabbitmq_url(&c, small, sizeof(small), &out), DM_E2BIG);
        assert_null(out);
        /* The password is a secret; the user is not. */
        assert_line(&c, "RABBITMQ_PASSWORD", "RABBITMQ_PASSWORD=****  # environment");
        assert_line(&c, "RABBITMQ_USER", "RABBITMQ_USER=app  # environment");
        dm_conf_done(&c);

        char *const user_only[] = {"RABBITMQ_HOST=mq", "RABBITMQ_USER=app", NULL};
        assert_int_equal(load(&c, user_only, no_file, err, sizeof(err)), DM_ECONFIG);
        assert_non_null(strstr(err, "RABBITMQ_PASSWORD"));
        char *const pass_only[] = {"RABBITMQ_PASSWORD=secret", NULL};
        assert_int_equal(load(&c, pass_only, no_file, err, sizeof(err)), DM_ECONFIG);
        assert_non_null(strstr(err, "RABBITMQ_USER"));
        assert_null(strstr(err, "secret"));
        char *const twice[] = {"RABBITMQ_URL=amqp://u:p@mq/", "RABBITMQ_USER=app",
                               "RABBITMQ_PASSWORD=pw", NULL};
        assert_int_equal(load(&c, twice, no_file, err, sizeof(err)), DM_ECONFIG);
        assert_non_null(strstr(err, "RABBITMQ_URL"));
}

static void test_registration_settings(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        (void)state;
        char *const envp[] = {"DM_REGISTRATION_INTERVAL=6h", "DM_WHOIS_SERVER=127.0.0.1:4343",
                              NULL};
        int argc = 1;
        char *argv[] = {"domainmon", NULL};
        assert_int_equal(dm_conf_load(&c, &argc, argv, envp, "/nonexistent", err, sizeof(err)), 0);
        assert_int_equal(c.registration_interval_ms, 6 * 3600 * 1000LL);
        assert_string_equal(c.whois_server, "127.0.0.1:4343");
        assert_string_equal(c.whois_root, "whois.iana.org:43");
        assert_null(c.rdap_bootstrap);
        assert_int_equal(c.registration_workers, 4);
        dm_conf_done(&c);
        char *const bad[] = {"DM_REGISTRATION_INTERVAL=10s", NULL};
        assert_int_equal(dm_conf_load(&c, &argc, argv, bad, "/nonexistent", err, sizeof(err)),
                         DM_ECONFIG);
        assert_non_null(strstr(err, "DM_REGISTRATION_INTERVAL"));
}

static void test_print_all_entries(void **state)
{
        static const char *const names[] = {
            "DATABASE_URL",
            "RABBITMQ_URL",
            "RABBITMQ_HOST",
            "RABBITMQ_USER",
            "RABBITMQ_PASSWORD",
            "REDIS_URL",
            "SECRET_KEY",
            "DM_LISTEN",
            "DM_LOG_LEVEL",
            "DM_LOG_FORMAT",
            "DM_SCAN_INTERVAL",
            "DM_MIN_INTERVAL",
            "DM_HTTP_THREADS",
            "DM_MAX_BODY",
            "DM_DNS_SERVERS",
            "DM_DNS_TIMEOUT",
            "DM_DNS_RETRIES",
            "DM_DNS_CONCURRENCY",
            "DM_DNS_QPS",
            "DM_DNS_LOOPS",
            "DM_DNS_AUTHORITATIVE",
            "DM_SCAN_BATCH",
            "DM_HISTORY_RETENTION",
            "DM_EVENTS_MAX_STREAMS",
            "DM_EVENTS_REPLAY",
            "DM_EVENTS_REPLAY_BYTES",
            "DM_EVENTS_BACKLOG",
            "DM_EVENTS_HEARTBEAT",
            "DM_API_URL",
            "DM_API_KEY",
            "DM_DEFAULT_CHECKS",
            "DM_TLS_CA_FILE",
            "DM_TLS_TIMEOUT",
            "DM_OUTBOX_LEASE",
            "DM_ALERT_GROUP_WAIT",
            "DM_ALERT_DIGEST_MIN",
            "DM_ALERT_EXPIRY_INTERVAL",
            "DM_ALERT_RETRY_MIN",
            "DM_ALERT_MAX_ATTEMPTS",
            "DM_ALLOW_PRIVATE_TARGETS",
            "DM_SMTP_URL",
            "DM_SMTP_FROM",
            "DM_SMTP_USER",
            "DM_SMTP_PASSWORD",
            "DM_SMS_URL",
            "DM_SMS_USER",
            "DM_SMS_PASSWORD",
            "DM_SMS_FROM",
            "DM_REGISTRATION_INTERVAL",
            "DM_REGISTRATION_TIMEOUT",
            "DM_REGISTRATION_RATE",
            "DM_REGISTRATION_WORKERS",
            "DM_RDAP_BOOTSTRAP",
            "DM_WHOIS_SERVER",
            "DM_WHOIS_ROOT",
            "DM_RATE_LIMIT",
            "DM_RATE_LIMIT_EXPENSIVE",
            "DM_CORS_ORIGINS",
            "DM_CACHE",
            "DM_CACHE_BYTES",
            "DM_CACHE_TTL",
            "DM_MAX_CONNECTIONS",
            "DM_MAX_CONNECTIONS_PER_IP",
            "DM_REQUEST_TIMEOUT",
            "DM_MAX_HEADER_BYTES",
        };
        struct dm_conf c;
        char err[256] = "";
        char *const envp[] = {NULL};
        (void)state;
        assert_int_equal(load(&c, envp, no_file, err, sizeof(err)), 0);
        char *text = print_conf(&c);
        size_t lines = 0;
        for (const char *p = text; *p; p++)
                lines += *p == '\n';
        assert_int_equal(lines, sizeof(names) / sizeof(names[0]));
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                char line[512];
                print_line(&c, names[i], line, sizeof(line));
                assert_non_null(strstr(line, "  # default"));
        }
        free(text);
        dm_conf_done(&c);
}

/* DM_HISTORY_RETENTION: unset keeps everything (a duration with no default reads as unset
 * while it is 0), otherwise a duration of an hour or more. */
static void test_default_checks(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        (void)state;

        char *const none[] = {NULL};
        assert_int_equal(load(&c, none, no_file, err, sizeof(err)), 0);
        assert_int_equal(c.default_checks, DM_CHECKS_ALL);
        assert_line(&c, "DM_DEFAULT_CHECKS", "DM_DEFAULT_CHECKS=dns,tls,registration  # default");
        assert_null(c.tls_ca_file);
        assert_int_equal(c.tls_timeout_ms, 10000);
        dm_conf_done(&c);

        char *const dns[] = {"DM_DEFAULT_CHECKS=DNS, tls", NULL};
        assert_int_equal(load(&c, dns, no_file, err, sizeof(err)), 0);
        assert_int_equal(c.default_checks, DM_CHECKS_DNS | DM_CHECKS_TLS);
        assert_line(&c, "DM_DEFAULT_CHECKS", "DM_DEFAULT_CHECKS=dns,tls  # environment");
        dm_conf_done(&c);

        static const char *const bad[] = {"DM_DEFAULT_CHECKS=dns,whois", "DM_DEFAULT_CHECKS=,",
                                          "DM_DEFAULT_CHECKS=dns,,tls"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char *const envp[] = {(char *)bad[i], NULL};
                assert_int_equal(load(&c, envp, no_file, err, sizeof(err)), DM_ECONFIG);
                assert_non_null(strstr(err, "DM_DEFAULT_CHECKS"));
        }
}

static void test_history_retention(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        (void)state;

        char *const none[] = {NULL};
        assert_int_equal(load(&c, none, no_file, err, sizeof(err)), 0);
        assert_int_equal(c.history_retention_ms, 0);
        assert_line(&c, "DM_HISTORY_RETENTION",
                    "DM_HISTORY_RETENTION=  # default: unset, keep every history entry");
        dm_conf_done(&c);

        char *const days[] = {"DM_HISTORY_RETENTION=90d", NULL};
        assert_int_equal(load(&c, days, no_file, err, sizeof(err)), 0);
        assert_int_equal(c.history_retention_ms, 90LL * 86400 * 1000);
        assert_line(&c, "DM_HISTORY_RETENTION", "DM_HISTORY_RETENTION=90d  # environment");
        dm_conf_done(&c);

        char *const empty[] = {"DM_HISTORY_RETENTION=", NULL};
        assert_int_equal(load(&c, empty, no_file, err, sizeof(err)), 0);
        assert_int_equal(c.history_retention_ms, 0);
        dm_conf_done(&c);

        static const char *const bad[] = {"DM_HISTORY_RETENTION=30m", "DM_HISTORY_RETENTION=0",
                                          "DM_HISTORY_RETENTION=forever",
                                          "DM_HISTORY_RETENTION=36501d"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char *const envp[] = {(char *)bad[i], NULL};
                assert_int_equal(load(&c, envp, no_file, err, sizeof(err)), DM_ECONFIG);
                assert_non_null(strstr(err, "DM_HISTORY_RETENTION"));
        }
}

static void test_help(void **state)
{
        char *text = NULL;
        size_t len = 0;
        (void)state;
        FILE *f = open_memstream(&text, &len);
        assert_non_null(f);
        dm_conf_help(f);
        fclose(f);
        assert_non_null(strstr(text, "--scan-interval"));
        assert_non_null(strstr(text, "DM_SCAN_INTERVAL"));
        assert_non_null(strstr(text, "--database-url"));
        assert_non_null(strstr(text, "DATABASE_URL"));
        assert_non_null(strstr(text, "--listen"));
        assert_non_null(strstr(text, "127.0.0.1:8080"));
        assert_non_null(strstr(text, "1..64"));
        assert_non_null(strstr(text, "1s..30d"));
        assert_non_null(strstr(text, "SECRET_KEY (secret)"));
        assert_non_null(strstr(text, "--scan-interval DURATION"));
        assert_non_null(strstr(text, "--history-retention DURATION"));
        assert_non_null(strstr(text, "keep every history entry"));
        free(text);
}

/* The precedence paragraph is said once, and the README's table has a row per setting. */
static void test_help_and_markdown(void **state)
{
        char *text = NULL;
        size_t len = 0;
        (void)state;
        FILE *f = open_memstream(&text, &len);
        assert_non_null(f);
        dm_conf_help(f);
        fclose(f);
        const char *first = strstr(text, "in order of precedence");
        assert_non_null(first);
        assert_null(strstr(first + 1, "in order of precedence"));
        assert_non_null(strstr(text, "web UI"));
        assert_non_null(strstr(text, "budget for one lookup, retries included"));
        assert_null(strchr(text, '`')); /* Markdown marks read as plain quotes */
        free(text);

        f = open_memstream(&text, &len);
        assert_non_null(f);
        dm_conf_markdown(f);
        fclose(f);
        size_t rows = 0;
        for (const char *p = text; (p = strstr(p, "\n| `")); p++)
                rows++;
        assert_int_equal(rows, 65);
        assert_non_null(strstr(text, "| `DM_DNS_TIMEOUT` | `--dns-timeout` | `2s` | budget for "
                                     "one lookup, retries included |"));
        assert_non_null(strstr(text, "| `DM_API_KEY` | `--api-key` |"));
        assert_non_null(strstr(text, "(secret: masked in `config`)"));
        free(text);
}

/* Every setting of this build acts: none is named as doing nothing, set or not. */
static void test_inert(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        const char *names[8];
        (void)state;

        char *const none[] = {NULL};
        assert_int_equal(load(&c, none, no_file, err, sizeof(err)), 0);
        assert_int_equal(dm_conf_inert_set(&c, names, 8), 0);
        dm_conf_done(&c);

        char *const set[] = {"REDIS_URL=redis://127.0.0.1:6379/0", "SECRET_KEY=s3cret",
                             "DM_HTTP_THREADS=2", NULL};
        assert_int_equal(load(&c, set, no_file, err, sizeof(err)), 0);
        assert_int_equal(dm_conf_inert_set(&c, names, 8), 0);
        dm_conf_done(&c);
}

static void test_no_argv(void **state)
{
        struct dm_conf c;
        char err[256] = "";
        char *const envp[] = {"DM_HTTP_THREADS=3", NULL};
        (void)state;
        assert_int_equal(dm_conf_load(&c, NULL, NULL, envp, no_file, err, sizeof(err)), 0);
        assert_int_equal(c.http_threads, 3);
        dm_conf_done(&c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_defaults),
            cmocka_unit_test(test_precedence),
            cmocka_unit_test(test_dotenv_syntax),
            cmocka_unit_test(test_dotenv_errors),
            cmocka_unit_test(test_argv_compaction),
            cmocka_unit_test(test_flag_missing_value),
            cmocka_unit_test(test_flag_names),
            cmocka_unit_test(test_bad_values),
            cmocka_unit_test(test_good_values),
            cmocka_unit_test(test_min_interval_vs_scan_interval),
            cmocka_unit_test(test_empty_value_means_default),
            cmocka_unit_test(test_mask_url),
            cmocka_unit_test(test_print_masks_secrets),
            cmocka_unit_test(test_print_all_entries),
            cmocka_unit_test(test_registration_settings),
            cmocka_unit_test(test_default_checks),
            cmocka_unit_test(test_print_masks_query_passwords),
            cmocka_unit_test(test_rate_and_cors_values),
            cmocka_unit_test(test_exposure),
            cmocka_unit_test(test_history_retention),
            cmocka_unit_test(test_rabbitmq_credentials),
            cmocka_unit_test(test_help),
            cmocka_unit_test(test_help_and_markdown),
            cmocka_unit_test(test_inert),
            cmocka_unit_test(test_no_argv),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
