/* The command-line client: `domains`, `records`, `history`, `changes` and `watch` talk to a
 * running service's API (DM_API_URL, else DM_LISTEN; DM_API_KEY). Parsing, formatting and
 * reading files live in lib/cli; this file maps each verb to its requests. Exit codes: 0
 * done, 2 the command line was wrong (nothing sent), 1 the server refused or could not be
 * reached (its problem detail printed on one line). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "app.h"
#include "dm/cli.h"
#include "dm/cli_client.h"
#include "dm/error.h"
#include "dm/time.h"

#define IMPORT_BATCH 1000 /* names per import request: a progress step, well under the cap */
#define IMPORT_FILE_MAX (64u * 1024 * 1024)
#define PAGE 1000
#define WATCH_RESTART_WAIT_S 30 /* a service restarting is waited for this long */

struct client {
        const char *prog; /* "domainmon domains" */
        struct dm_cli_client *http;
        bool json;
        unsigned flags; /* DM_CLI_COLOR ... */
};

static int usage_error(const char *prog, const char *what)
{
        fprintf(stderr, "%s: %s (see '%s --help')\n", prog, what, prog);
        return DM_CLI_EXIT_USAGE;
}

static int fail(const char *prog, const char *what)
{
        fprintf(stderr, "%s: %s\n", prog, what);
        return DM_CLI_EXIT_FAIL;
}

static int client_open(struct dm_app *app, const char *prog, bool json, struct client *c)
{
        char url[1024];
        memset(c, 0, sizeof(*c));
        c->prog = prog;
        c->json = json;
        if (isatty(STDOUT_FILENO) && !getenv("NO_COLOR"))
                c->flags |= DM_CLI_COLOR;
        dm_cli_base_url(app->conf.api_url, app->conf.listen, url, sizeof(url));
        int r = dm_cli_client_new(url, app->conf.api_key, &c->http);
        if (r == DM_EINVAL)
                return usage_error(prog, "DM_API_URL must start with http:// or https://");
        if (r < 0)
                return fail(prog, dm_strerror(r));
        return 0;
}

static void client_close(struct client *c)
{
        dm_cli_client_free(c->http);
        c->http = NULL;
}

/* Prints the one line of a refusal; a missing or bad key also says where keys come from. */
static void report(struct client *c, const struct dm_cli_response *res)
{
        char line[1024];
        dm_cli_problem_line(res, line, sizeof(line));
        if (res->status == 401)
                fprintf(stderr, "%s: %s; set DM_API_KEY to a key from 'domainmon keys create'\n",
                        c->prog, line);
        else
                fprintf(stderr, "%s: %s\n", c->prog, line);
}

/* One request; on success *res holds a 2xx answer. Anything else is printed and gives the
 * exit code. `ok404` lets a 404 through (the caller decides). */
static int call(struct client *c, const char *method, const char *path, const json_t *body,
                struct dm_cli_response *res)
{
        char err[1024];
        int r = dm_cli_request(c->http, method, path, body, res, err, sizeof(err));
        if (r < 0)
                return fail(c->prog, err);
        if (res->status >= 200 && res->status < 300)
                return 0;
        report(c, res);
        return DM_CLI_EXIT_FAIL;
}

static void print_json(const json_t *doc)
{
        json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
}

static const char *str(const json_t *o, const char *name)
{
        const json_t *v = json_object_get(o, name);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

/* "domains/<name>" with the name escaped, under /api/v1. */
static int domain_path(struct client *c, const char *name, const char *tail, char *buf, size_t size)
{
        char esc[800];
        if (!dm_cli_escape(name, esc, sizeof(esc)))
                return usage_error(c->prog, "the name is too long");
        snprintf(buf, size, "/api/v1/domains/%s%s", esc, tail ? tail : "");
        return 0;
}

/* ---- domains add / rm ---- */

static int settings_json(struct client *c, const struct dm_cli_args *a, int i_interval, int i_types,
                         json_t *obj)
{
        if (a->values[i_interval]) {
                int64_t ms;
                if (dm_duration_parse(a->values[i_interval], &ms) < 0 || ms < 1000)
                        return usage_error(c->prog, "--interval: not a duration (e.g. 600, 10m)");
                json_object_set_new(obj, "interval", json_integer(ms / 1000));
        }
        if (a->values[i_types]) {
                json_t *list = json_array();
                if (!list)
                        return fail(c->prog, dm_strerror(DM_ENOMEM));
                /* "A,MX" or "A MX": every run of other characters is one type. */
                for (const char *p = a->values[i_types]; *p;) {
                        size_t n = strcspn(p, ", ");
                        if (n > 0)
                                json_array_append_new(list, json_stringn(p, n));
                        p += n;
                        p += strspn(p, ", ");
                }
                json_object_set_new(obj, "record_types", list);
        }
        return 0;
}

struct import_tally {
        size_t added, exists, invalid;
};

/* Sends names[0..n) to the import route, counts results, prints the invalid ones (and, for
 * `add`, every name). `lines` (may be NULL) are the names' line numbers in a file. */
static int import_batch(struct client *c, json_t *tmpl, const char *const *names,
                        const size_t *lines, size_t n, bool each, struct import_tally *t,
                        json_t *all_results)
{
        struct dm_cli_response res;
        json_t *body = json_deep_copy(tmpl);
        json_t *list = json_array();
        if (!body || !list) {
                json_decref(body);
                json_decref(list);
                return fail(c->prog, dm_strerror(DM_ENOMEM));
        }
        for (size_t i = 0; i < n; i++)
                json_array_append_new(list, json_string(names[i]));
        json_object_set_new(body, "names", list);
        int rc = call(c, "POST", "/api/v1/domains/import", body, &res);
        json_decref(body);
        if (rc != 0) {
                dm_cli_response_done(&res);
                return rc;
        }
        const json_t *results = json_object_get(res.doc, "results");
        size_t i;
        const json_t *item;
        json_array_foreach(results, i, item)
        {
                const char *st = str(item, "status");
                const char *name = str(item, "name");
                char shown[300], why[300];
                dm_cli_safe(shown, sizeof(shown), name ? name : "?");
                if (all_results)
                        json_array_append(all_results, (json_t *)item);
                if (st && strcmp(st, "added") == 0) {
                        t->added++;
                        if (each && !c->json)
                                printf("added %s\n", shown);
                } else if (st && strcmp(st, "exists") == 0) {
                        t->exists++;
                        if (each && !c->json)
                                printf("exists %s\n", shown);
                } else {
                        t->invalid++;
                        dm_cli_safe(why, sizeof(why),
                                    str(item, "detail") ? str(item, "detail") : "invalid");
                        if (!c->json) {
                                if (lines && i < n)
                                        fprintf(stderr, "line %zu: %s: %s\n", lines[i], shown, why);
                                else
                                        fprintf(stderr, "invalid %s: %s\n", shown, why);
                        }
                }
        }
        dm_cli_response_done(&res);
        return 0;
}

static int domains_add(struct client *c, const struct dm_cli_args *a)
{
        if (a->npositional == 0)
                return usage_error(c->prog, "add: give one or more domain names");
        json_t *tmpl = json_object();
        if (!tmpl)
                return fail(c->prog, dm_strerror(DM_ENOMEM));
        int rc = settings_json(c, a, 1, 2, tmpl);
        if (rc != 0) {
                json_decref(tmpl);
                return rc;
        }
        struct import_tally t = {0};
        json_t *all = c->json ? json_array() : NULL;
        for (size_t i = 0; i < a->npositional && rc == 0; i += IMPORT_BATCH) {
                size_t n = a->npositional - i < IMPORT_BATCH ? a->npositional - i : IMPORT_BATCH;
                rc = import_batch(c, tmpl, a->positional + i, NULL, n, true, &t, all);
        }
        json_decref(tmpl);
        if (rc == 0 && c->json)
                print_json(all);
        json_decref(all);
        if (rc != 0)
                return rc;
        return t.invalid > 0 ? DM_CLI_EXIT_FAIL : DM_CLI_EXIT_OK;
}

static int domains_rm(struct client *c, const struct dm_cli_args *a)
{
        char path[1024], shown[300], line[600];
        size_t removed = 0, failed = 0;

        if (a->npositional == 0)
                return usage_error(c->prog, "rm: give one or more domain names");
        for (size_t i = 0; i < a->npositional; i++) {
                struct dm_cli_response res;
                int rc = domain_path(c, a->positional[i], NULL, path, sizeof(path));
                if (rc != 0)
                        return rc;
                dm_cli_safe(shown, sizeof(shown), a->positional[i]);
                char err[600];
                int r = dm_cli_request(c->http, "DELETE", path, NULL, &res, err, sizeof(err));
                if (r < 0) {
                        dm_cli_response_done(&res);
                        return fail(c->prog, err);
                }
                if (res.status >= 200 && res.status < 300) {
                        removed++;
                        if (!c->json)
                                printf("removed %s\n", shown);
                } else {
                        failed++;
                        if (res.status == 401 || res.status == 403) {
                                report(c, &res);
                                dm_cli_response_done(&res);
                                return DM_CLI_EXIT_FAIL;
                        }
                        fprintf(stderr, "%s: %s: %s\n", c->prog, shown,
                                dm_cli_problem_line(&res, line, sizeof(line)));
                }
                dm_cli_response_done(&res);
        }
        if (c->json)
                printf("{\"removed\": %zu, \"failed\": %zu}\n", removed, failed);
        return failed ? DM_CLI_EXIT_FAIL : DM_CLI_EXIT_OK;
}

/* ---- domains import ---- */

struct import_ctx {
        struct client *c;
        json_t *tmpl;
        char **names;
        size_t *lines;
        size_t n, cap;
};

static int import_collect(void *arg, const char *name, size_t len, size_t line)
{
        struct import_ctx *x = arg;
        if (x->n == x->cap) {
                size_t cap = x->cap ? x->cap * 2 : 1024;
                char **nn = realloc(x->names, cap * sizeof(*nn));
                if (!nn)
                        return DM_ENOMEM;
                x->names = nn;
                size_t *nl = realloc(x->lines, cap * sizeof(*nl));
                if (!nl)
                        return DM_ENOMEM;
                x->lines = nl;
                x->cap = cap;
        }
        x->names[x->n] = strndup(name, len);
        if (!x->names[x->n])
                return DM_ENOMEM;
        x->lines[x->n++] = line;
        return 0;
}

static int read_all(const char *path, struct dm_buf *b, char *err, size_t errlen)
{
        FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
        char chunk[65536];
        size_t n;
        int r = 0;
        if (!f)
                return dm_errorf(DM_EIO, err, errlen, "cannot open %s: %s", path, strerror(errno));
        while (r == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
                r = dm_buf_add(b, chunk, n);
        if (r == DM_E2BIG)
                dm_errorf(r, err, errlen, "%s: larger than %u bytes", path, IMPORT_FILE_MAX);
        else if (r == 0 && ferror(f))
                r = dm_errorf(DM_EIO, err, errlen, "cannot read %s", path);
        else if (r < 0)
                dm_errorf(r, err, errlen, "%s", dm_strerror(r));
        if (f != stdin)
                fclose(f);
        return r;
}

static int domains_import(struct client *c, const struct dm_cli_args *a)
{
        char err[512];
        struct dm_buf b;
        struct import_ctx x = {.c = c};
        int rc;

        if (a->npositional != 1)
                return usage_error(c->prog, "import: give one FILE (or - for standard input)");
        dm_buf_init(&b, IMPORT_FILE_MAX);
        if (read_all(a->positional[0], &b, err, sizeof(err)) < 0) {
                dm_buf_done(&b);
                return usage_error(c->prog, err);
        }
        int r = dm_cli_names_read(b.data ? b.data : "", b.len, a->values[3], import_collect, &x,
                                  err, sizeof(err));
        dm_buf_done(&b);
        x.tmpl = json_object();
        if (r == DM_EINVAL) {
                rc = usage_error(c->prog, err);
                goto out;
        }
        if (r < 0 || !x.tmpl) {
                rc = fail(c->prog, dm_strerror(r < 0 ? r : DM_ENOMEM));
                goto out;
        }
        rc = settings_json(c, a, 1, 2, x.tmpl);
        if (rc != 0)
                goto out;
        if (x.n == 0) {
                rc = usage_error(c->prog, "import: the file holds no names");
                goto out;
        }
        bool bar = isatty(STDERR_FILENO) && !c->json;
        struct import_tally t = {0};
        json_t *all = c->json ? json_array() : NULL;
        for (size_t i = 0; i < x.n && rc == 0; i += IMPORT_BATCH) {
                size_t n = x.n - i < IMPORT_BATCH ? x.n - i : IMPORT_BATCH;
                rc = import_batch(c, x.tmpl, (const char *const *)x.names + i, x.lines + i, n,
                                  false, &t, all);
                if (bar) {
                        char line[128];
                        fprintf(stderr, "\r%s",
                                dm_cli_progress(i + n, x.n, 72, line, sizeof(line)));
                        fflush(stderr);
                }
        }
        if (bar)
                fputc('\n', stderr);
        if (rc == 0 && c->json)
                print_json(all);
        json_decref(all);
        if (!c->json)
                printf("%zu names: %zu added, %zu already present, %zu invalid\n", x.n, t.added,
                       t.exists, t.invalid);
        if (rc == 0 && t.invalid > 0)
                rc = DM_CLI_EXIT_FAIL;
out:
        for (size_t i = 0; i < x.n; i++)
                free(x.names[i]);
        free(x.names);
        free(x.lines);
        json_decref(x.tmpl);
        return rc;
}

/* ---- domains list / show ---- */

static bool status_ok(const char *s)
{
        return strcmp(s, "ok") == 0 || strcmp(s, "error") == 0 || strcmp(s, "pending") == 0;
}

static void domain_row(struct dm_cli_table *t, const json_t *d, unsigned flags)
{
        char interval[32], checked[64], changed[64];
        const json_t *iv = json_object_get(d, "interval");
        snprintf(interval, sizeof(interval), "%llds",
                 json_is_integer(iv) ? (long long)json_integer_value(iv) : 0LL);
        const char *cells[] = {
            str(d, "name"),
            str(d, "status"),
            interval,
            str(d, "last_checked_at")
                ? dm_cli_time(str(d, "last_checked_at"), flags | DM_CLI_FULLTS, checked, 64)
                : NULL,
            str(d, "last_changed_at")
                ? dm_cli_time(str(d, "last_changed_at"), flags | DM_CLI_FULLTS, changed, 64)
                : NULL,
            str(d, "status_error") ? str(d, "status_error") : "",
        };
        dm_cli_table_add(t, cells);
}

static int domains_list(struct client *c, const struct dm_cli_args *a)
{
        const char *status = a->values[1];
        char path[1200], cursor[800] = "";
        bool server_filters = status != NULL;
        json_t *all = NULL;
        int rc = 0;

        if (a->npositional > 0)
                return usage_error(c->prog, "list: takes no names (use show NAME)");
        if (status && !status_ok(status))
                return usage_error(c->prog, "--status must be ok, error or pending");
        all = json_array();
        if (!all)
                return fail(c->prog, dm_strerror(DM_ENOMEM));
        for (;;) {
                struct dm_cli_response res;
                char err[600];
                snprintf(path, sizeof(path), "/api/v1/domains?limit=%d%s%s%s%s", PAGE,
                         cursor[0] ? "&cursor=" : "", cursor, server_filters ? "&status=" : "",
                         server_filters ? status : "");
                int r = dm_cli_request(c->http, "GET", path, NULL, &res, err, sizeof(err));
                if (r < 0) {
                        rc = fail(c->prog, err);
                        break;
                }
                /* A server without the status filter refuses the parameter: filter here. */
                if (res.status == 400 && server_filters && cursor[0] == '\0') {
                        dm_cli_response_done(&res);
                        server_filters = false;
                        continue;
                }
                if (res.status != 200) {
                        report(c, &res);
                        dm_cli_response_done(&res);
                        rc = DM_CLI_EXIT_FAIL;
                        break;
                }
                size_t i;
                json_t *d;
                json_array_foreach(json_object_get(res.doc, "domains"), i, d)
                {
                        const char *st = str(d, "status");
                        if (!status || (st && strcmp(st, status) == 0))
                                json_array_append(all, d);
                }
                const char *next = str(res.doc, "next_cursor");
                bool more = next && strlen(next) < sizeof(cursor) &&
                            dm_cli_escape(next, cursor, sizeof(cursor));
                dm_cli_response_done(&res);
                if (!more)
                        break;
        }
        if (rc == 0) {
                if (c->json) {
                        print_json(all);
                } else {
                        static const char *const head[] = {
                            "NAME", "STATUS", "INTERVAL", "LAST_CHECKED", "LAST_CHANGED", "ERROR"};
                        struct dm_cli_table t;
                        if (dm_cli_table_init(&t, 6, head) == 0) {
                                size_t i;
                                json_t *d;
                                json_array_foreach(all, i, d) domain_row(&t, d, c->flags);
                                dm_cli_table_print(&t, stdout);
                                dm_cli_table_done(&t);
                        }
                }
        }
        json_decref(all);
        return rc;
}

static int domains_show(struct client *c, const struct dm_cli_args *a)
{
        char path[1024];
        struct dm_cli_response res = {0};

        if (a->npositional != 1)
                return usage_error(c->prog, "show: give one domain name");
        int rc = domain_path(c, a->positional[0], NULL, path, sizeof(path));
        if (rc == 0)
                rc = call(c, "GET", path, NULL, &res);
        if (rc != 0) {
                dm_cli_response_done(&res);
                return rc;
        }
        if (c->json) {
                print_json(res.doc);
        } else {
                const char *key;
                json_t *v;
                json_object_foreach(res.doc, key, v)
                {
                        char *text = json_is_string(v) || json_is_null(v)
                                         ? NULL
                                         : json_dumps(v, JSON_ENCODE_ANY);
                        char safe[1024], when[64];
                        const char *s = text ? text : json_is_null(v) ? "-" : json_string_value(v);
                        size_t klen = strlen(key);
                        if (json_is_string(v) && klen > 3 && strcmp(key + klen - 3, "_at") == 0)
                                s = dm_cli_time(s, c->flags | DM_CLI_FULLTS, when, sizeof(when));
                        printf("%-16s %s\n", key, dm_cli_safe(safe, sizeof(safe), s));
                        free(text);
                }
        }
        dm_cli_response_done(&res);
        return 0;
}

static const struct dm_cli_opt domains_opts[] = {
    {"--json", 0, false},  {"--interval", 0, true}, {"--types", 0, true},
    {"--column", 0, true}, {"--status", 0, true},   {0},
};

int dm_cmd_domains(struct dm_app *app, int argc, char **argv)
{
        const char *prog = "domainmon domains";
        struct dm_cli_args a;
        struct client c;
        char err[256];

        if (argc < 1)
                return usage_error(prog, "missing action: add, list, show, rm or import");
        const char *action = argv[0];
        if (dm_cli_parse(argc - 1, argv + 1, domains_opts, &a, err, sizeof(err)) < 0)
                return usage_error(prog, err);
        /* list takes --status where the table has --interval at 1: re-map by name. */
        bool list = strcmp(action, "list") == 0;
        bool addlike = strcmp(action, "add") == 0 || strcmp(action, "import") == 0;
        if (!addlike && (a.present[1] || a.present[2]))
                return usage_error(prog, "--interval and --types go with add and import");
        if (strcmp(action, "import") != 0 && a.present[3])
                return usage_error(prog, "--column goes with import");
        if (!list && a.present[4])
                return usage_error(prog, "--status goes with list");
        if (list) {
                a.values[1] = a.values[4];
                a.present[1] = a.present[4];
        }
        int (*fn)(struct client *, const struct dm_cli_args *) =
            strcmp(action, "add") == 0      ? domains_add
            : list                          ? domains_list
            : strcmp(action, "show") == 0   ? domains_show
            : strcmp(action, "rm") == 0     ? domains_rm
            : strcmp(action, "import") == 0 ? domains_import
                                            : NULL;
        if (!fn) {
                char shown[64];
                snprintf(err, sizeof(err), "unknown action '%s' (add, list, show, rm, import)",
                         dm_cli_safe(shown, sizeof(shown), action));
                return usage_error(prog, err);
        }
        int rc = client_open(app, prog, a.present[0], &c);
        if (rc != 0)
                return rc;
        rc = fn(&c, &a);
        client_close(&c);
        return rc;
}

/* ---- records ---- */

static const struct dm_cli_opt json_opts[] = {{"--json", 0, false}, {0}};

int dm_cmd_records(struct dm_app *app, int argc, char **argv)
{
        const char *prog = "domainmon records";
        struct dm_cli_args a;
        struct dm_cli_response res = {0};
        struct client c;
        char err[256], path[1024];

        if (dm_cli_parse(argc, argv, json_opts, &a, err, sizeof(err)) < 0)
                return usage_error(prog, err);
        if (a.npositional != 1)
                return usage_error(prog, "give one domain name");
        int rc = client_open(app, prog, a.present[0], &c);
        if (rc != 0)
                return rc;
        rc = domain_path(&c, a.positional[0], "/records", path, sizeof(path));
        if (rc == 0)
                rc = call(&c, "GET", path, NULL, &res);
        if (rc == 0 && c.json) {
                print_json(res.doc);
        } else if (rc == 0) {
                static const char *const head[] = {"TYPE", "TTL", "STATUS", "VALUE"};
                struct dm_cli_table t;
                if (dm_cli_table_init(&t, 4, head) == 0) {
                        size_t i;
                        json_t *rec;
                        json_array_foreach(json_object_get(res.doc, "records"), i, rec)
                        {
                                char ttl[32];
                                const json_t *tv = json_object_get(rec, "ttl");
                                snprintf(ttl, sizeof(ttl), "%lld",
                                         json_is_integer(tv) ? (long long)json_integer_value(tv)
                                                             : 0LL);
                                const json_t *vals = json_object_get(rec, "values");
                                const char *st = str(rec, "status");
                                const char *first = json_array_size(vals) > 0
                                                        ? json_string_value(json_array_get(vals, 0))
                                                    : st && strcmp(st, "error") == 0
                                                        ? str(rec, "error")
                                                        : "";
                                const char *row[] = {str(rec, "type"), ttl, st, first};
                                dm_cli_table_add(&t, row);
                                for (size_t k = 1; k < json_array_size(vals); k++) {
                                        const char *more[] = {
                                            "", "", "", json_string_value(json_array_get(vals, k))};
                                        dm_cli_table_add(&t, more);
                                }
                        }
                        dm_cli_table_print(&t, stdout);
                        dm_cli_table_done(&t);
                }
        }
        dm_cli_response_done(&res);
        client_close(&c);
        return rc;
}

/* ---- history, changes ---- */

static void print_changes(struct client *c, const json_t *doc, const char *domain)
{
        struct dm_buf line;
        size_t i;
        json_t *ch;
        const json_t *list = json_object_get(doc, "changes");
        if (!list)
                list = json_object_get(doc, "history");
        dm_buf_init(&line, 1024 * 1024);
        /* Newest first from the API; a log reads oldest first. */
        for (i = json_array_size(list); i-- > 0;) {
                ch = json_array_get(list, i);
                dm_buf_clear(&line);
                if (dm_cli_change_line(ch, domain, c->flags | DM_CLI_FULLTS, &line) == 0)
                        printf("%s\n", line.data);
        }
        dm_buf_done(&line);
}

static int since_param(const char *prog, const char *since, char *buf, size_t size)
{
        int64_t ms;
        char t[DM_RFC3339_LEN];
        buf[0] = '\0';
        if (!since)
                return 0;
        if (dm_duration_parse(since, &ms) == 0)
                ms = dm_now_ms() - ms;
        else if (dm_time_parse(since, &ms) < 0)
                return usage_error(prog, "--since: a duration (1h, 2d) or a time (2026-11-25, "
                                         "2026-11-25T10:00:00Z)");
        snprintf(buf, size, "&since=%s", dm_time_format(ms < 0 ? 0 : ms, t));
        return 0;
}

static const struct dm_cli_opt changes_opts[] = {
    {"--json", 0, false}, {"--since", 0, true}, {"--domain", 0, true}, {"--limit", 0, true}, {0},
};

static int limit_param(const char *prog, const char *v, long *ret)
{
        *ret = 100;
        if (!v)
                return 0;
        char *end = NULL;
        long n = strtol(v, &end, 10);
        if (!end || *end || n < 1 || n > 1000)
                return usage_error(prog, "--limit: a number from 1 to 1000");
        *ret = n;
        return 0;
}

static int history_of(struct client *c, const char *name, const char *since, long limit)
{
        char path[1400], tail[160];
        struct dm_cli_response res = {0};
        snprintf(tail, sizeof(tail), "/history?limit=%ld%s", limit, since);
        int rc = domain_path(c, name, tail, path, sizeof(path));
        if (rc != 0)
                return rc;
        rc = call(c, "GET", path, NULL, &res);
        if (rc == 0) {
                if (c->json)
                        print_json(res.doc);
                else
                        print_changes(c, res.doc, name);
        }
        dm_cli_response_done(&res);
        return rc;
}

int dm_cmd_history(struct dm_app *app, int argc, char **argv)
{
        const char *prog = "domainmon history";
        struct dm_cli_args a;
        struct client c;
        char err[256], since[80];
        long limit;

        if (dm_cli_parse(argc, argv, changes_opts, &a, err, sizeof(err)) < 0)
                return usage_error(prog, err);
        if (a.present[2])
                return usage_error(prog, "--domain goes with changes; history takes the name");
        if (a.npositional != 1)
                return usage_error(prog, "give one domain name");
        int rc = since_param(prog, a.values[1], since, sizeof(since));
        if (rc == 0)
                rc = limit_param(prog, a.values[3], &limit);
        if (rc == 0)
                rc = client_open(app, prog, a.present[0], &c);
        if (rc != 0)
                return rc;
        rc = history_of(&c, a.positional[0], since, limit);
        client_close(&c);
        return rc;
}

int dm_cmd_changes(struct dm_app *app, int argc, char **argv)
{
        const char *prog = "domainmon changes";
        struct dm_cli_args a;
        struct dm_cli_response res = {0};
        struct client c;
        char err[600], since[80], path[1400], esc[800];
        long limit;

        if (dm_cli_parse(argc, argv, changes_opts, &a, err, sizeof(err)) < 0)
                return usage_error(prog, err);
        if (a.npositional > 0)
                return usage_error(prog, "takes no arguments (use --domain NAME)");
        int rc = since_param(prog, a.values[1], since, sizeof(since));
        if (rc == 0)
                rc = limit_param(prog, a.values[3], &limit);
        if (rc == 0 && a.values[2] && !dm_cli_escape(a.values[2], esc, sizeof(esc)))
                rc = usage_error(prog, "--domain: the name is too long");
        if (rc == 0)
                rc = client_open(app, prog, a.present[0], &c);
        if (rc != 0)
                return rc;
        snprintf(path, sizeof(path), "/api/v1/changes?limit=%ld%s%s%s", limit, since,
                 a.values[2] ? "&domain=" : "", a.values[2] ? esc : "");
        int r = dm_cli_request(c.http, "GET", path, NULL, &res, err, sizeof(err));
        if (r < 0) {
                rc = fail(prog, err);
        } else if (res.status == 400 && a.values[2]) {
                /* A server without the domain filter: the domain's own history is the same. */
                dm_cli_response_done(&res);
                rc = history_of(&c, a.values[2], since, limit);
        } else if (res.status != 200) {
                report(&c, &res);
                rc = DM_CLI_EXIT_FAIL;
        } else if (c.json) {
                print_json(res.doc);
        } else {
                print_changes(&c, res.doc, NULL);
        }
        dm_cli_response_done(&res);
        client_close(&c);
        return rc;
}

/* ---- watch ---- */

struct watch_ctx {
        struct client *c;
        const char *domain; /* only this one's events; NULL: all */
        struct dm_buf line;
        bool reset_seen;
};

static int on_event(void *arg, const char *event, const char *id, const char *data, size_t len)
{
        struct watch_ctx *w = arg;
        (void)id;
        if (strcmp(event, "reset") == 0) {
                fprintf(stderr, "domainmon watch: events were missed while disconnected; "
                                "'domainmon changes --since 1h' lists them\n");
                return 0;
        }
        if (w->domain) {
                json_t *doc = json_loadb(data, len, 0, NULL);
                const char *d = str(doc, "domain") ? str(doc, "domain") : str(doc, "name");
                bool mine = d && strcasecmp(d, w->domain) == 0;
                json_decref(doc);
                if (!mine)
                        return 0;
        }
        if (w->c->json) {
                /* One compact object a line: the event as the stream sent it. */
                json_t *doc = json_loadb(data, len, 0, NULL);
                json_t *o = json_pack("{s:s, s:s?, s:o?}", "event", event, "id", id, "data", doc);
                if (o) {
                        json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
                        fputc('\n', stdout);
                        fflush(stdout);
                }
                json_decref(o);
                return 0;
        }
        dm_buf_clear(&w->line);
        if (dm_cli_event_line(event, data, len, w->c->flags, &w->line) == 0) {
                printf("%s\n", w->line.data);
                fflush(stdout);
        }
        return 0;
}

int dm_cmd_watch(struct dm_app *app, int argc, char **argv)
{
        static const struct dm_cli_opt opts[] = {{"--json", 0, false}, {"--domain", 0, true}, {0}};
        const char *prog = "domainmon watch";
        struct dm_cli_args a;
        struct client c;
        struct watch_ctx w = {0};
        struct dm_sse_reader reader;
        char err[600];

        if (dm_cli_parse(argc, argv, opts, &a, err, sizeof(err)) < 0)
                return usage_error(prog, err);
        if (a.npositional > 0)
                return usage_error(prog, "takes no arguments (use --domain NAME)");
        int rc = client_open(app, prog, a.present[0], &c);
        if (rc != 0)
                return rc;
        w.c = &c;
        w.domain = a.values[1];
        dm_buf_init(&w.line, 1024 * 1024);
        dm_sse_reader_init(&reader, 4 * 1024 * 1024, 16 * 1024 * 1024, on_event, &w);
        fprintf(stderr, "%s: following the changes (Ctrl-C ends)\n", prog);
        /* The stream ends when the service stops or restarts: reconnect with the last id, so
         * nothing is missed while it is held; a refusal or no server at all ends the watch. */
        int down = 0; /* seconds the service has been unreachable after a stream ended */
        bool was_up = false;
        for (;;) {
                int r = dm_cli_stream(c.http, "/api/v1/events?topics=change.dns.%23,domain.*",
                                      reader.last_id[0] ? reader.last_id : NULL, &reader, err,
                                      sizeof(err));
                /* Once the stream has opened (the service's ": ok" was read), a failure
                 * is a service going away, likely to restart: wait for it. */
                was_up = was_up || reader.bom_done;
                if (r == DM_EIO && was_up && down < WATCH_RESTART_WAIT_S) {
                        if (down++ == 0)
                                fprintf(stderr, "%s: %s; retrying for %d s\n", prog, err,
                                        WATCH_RESTART_WAIT_S);
                        sleep(1);
                        continue;
                }
                if (r < 0) {
                        fprintf(stderr, "%s: %s\n", prog, err);
                        rc = DM_CLI_EXIT_FAIL;
                        break;
                }
                was_up = true;
                down = 0;
                fprintf(stderr, "%s: the stream ended; reconnecting\n", prog);
                sleep(1);
        }
        dm_sse_reader_done(&reader);
        dm_buf_done(&w.line);
        client_close(&c);
        return rc;
}
