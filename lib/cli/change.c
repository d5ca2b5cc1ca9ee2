/* A change as one line, the way `domainmon watch`, `history` and `changes` show it:
 *     17:07:34 example.test A +192.0.2.12 -192.0.2.11
 * The entry comes from the server, and its values from DNS: every piece is made safe for a
 * terminal before it is written. */
#include "dm/cli.h"

#include <string.h>
#include <time.h>

#include "dm/error.h"
#include "dm/time.h"

#define GREEN "\033[32m"
#define RED "\033[31m"
#define DIM "\033[2m"
#define BOLD "\033[1m"
#define RESET "\033[0m"

/* Longest value shown in full; a 4 KB TXT record is cut, the API has it whole. */
#define VALUE_SHOWN_MAX 512

const char *dm_cli_time(const char *rfc3339, unsigned flags, char *buf, size_t size)
{
        int64_t ms;
        if (!rfc3339 || dm_time_parse(rfc3339, &ms) < 0)
                return dm_cli_safe(buf, size, rfc3339 ? rfc3339 : "-");
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        if ((flags & DM_CLI_UTC) ? !gmtime_r(&t, &tm) : !localtime_r(&t, &tm))
                return dm_cli_safe(buf, size, rfc3339);
        strftime(buf, size, (flags & DM_CLI_FULLTS) ? "%Y-%m-%d %H:%M:%S" : "%H:%M:%S", &tm);
        return buf;
}

static int add_values(struct dm_buf *out, const json_t *list, char sign, const char *color)
{
        size_t i;
        const json_t *v;
        char safe[VALUE_SHOWN_MAX + 4];
        int r = 0;

        if (!json_is_array(list))
                return 0;
        json_array_foreach(list, i, v)
        {
                const char *s = json_is_string(v) ? json_string_value(v) : "?";
                dm_cli_safe(safe, VALUE_SHOWN_MAX + 1, s);
                if (strlen(s) > VALUE_SHOWN_MAX)
                        memcpy(safe + strlen(safe), "...", 4);
                r = color ? dm_buf_addf(out, " %s%c%s" RESET, color, sign, safe)
                          : dm_buf_addf(out, " %c%s", sign, safe);
                if (r < 0)
                        return r;
        }
        return r;
}

static const char *str_member(const json_t *o, const char *name)
{
        const json_t *v = json_object_get(o, name);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

int dm_cli_change_line(const json_t *change, const char *domain, unsigned flags, struct dm_buf *out)
{
        char when[64], dom[300], type[32];
        bool color = flags & DM_CLI_COLOR;

        if (!json_is_object(change) || !str_member(change, "type"))
                return DM_EINVAL;
        if (!domain)
                domain = str_member(change, "domain");
        dm_cli_time(str_member(change, "observed_at"), flags, when, sizeof(when));
        dm_cli_safe(dom, sizeof(dom), domain ? domain : "-");
        dm_cli_safe(type, sizeof(type), str_member(change, "type"));
        int r = color ? dm_buf_addf(out, DIM "%s" RESET " " BOLD "%s" RESET " %s", when, dom, type)
                      : dm_buf_addf(out, "%s %s %s", when, dom, type);
        if (r < 0)
                return r;
        const json_t *before = json_object_get(change, "before");
        const char *status = str_member(change, "status");
        if (!before || json_is_null(before)) {
                r = dm_buf_addstr(out, " new");
                if (r < 0)
                        return r;
        }
        r = add_values(out, json_object_get(change, "added"), '+', color ? GREEN : NULL);
        if (r == 0)
                r = add_values(out, json_object_get(change, "removed"), '-', color ? RED : NULL);
        /* An empty answer is a real one; say which, since no value shows it. */
        if (r == 0 && status && strcmp(status, "ok") != 0) {
                char st[32];
                r = dm_buf_addf(out, " (%s)", dm_cli_safe(st, sizeof(st), status));
        }
        return r;
}

int dm_cli_event_line(const char *topic, const char *data, size_t len, unsigned flags,
                      struct dm_buf *out)
{
        json_error_t jerr;
        int r = DM_ENOENT;

        if (!topic || !data)
                return DM_ENOENT;
        bool change = strncmp(topic, "change.dns.", 11) == 0;
        bool added = strcmp(topic, "domain.added") == 0;
        bool removed = strcmp(topic, "domain.removed") == 0;
        if (!change && !added && !removed)
                return DM_ENOENT;
        json_t *doc = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(doc)) {
                json_decref(doc);
                return DM_EINVAL;
        }
        if (change) {
                r = dm_cli_change_line(doc, NULL, flags, out);
        } else {
                const char *name = str_member(doc, added ? "name" : "domain");
                const char *at = str_member(doc, added ? "created_at" : "removed_at");
                char when[64], dom[300];
                if (!name) {
                        r = DM_EINVAL;
                } else {
                        dm_cli_time(at, flags, when, sizeof(when));
                        dm_cli_safe(dom, sizeof(dom), name);
                        r = (flags & DM_CLI_COLOR)
                                ? dm_buf_addf(out, DIM "%s" RESET " " BOLD "%s" RESET " %s", when,
                                              dom, added ? "added" : "removed")
                                : dm_buf_addf(out, "%s %s %s", when, dom,
                                              added ? "added" : "removed");
                }
        }
        json_decref(doc);
        return r;
}

const char *dm_cli_scan_line(const char *name, const char *status, size_t changes,
                             const char *status_error, char *buf, size_t size)
{
        char n[300], st[32], first[300];
        dm_cli_safe(n, sizeof(n), name ? name : "?");
        dm_cli_safe(st, sizeof(st), status ? status : "?");
        if (!status_error || !*status_error) {
                snprintf(buf, size, "%s %s changes=%zu", n, st, changes);
                return buf;
        }
        size_t len = strcspn(status_error, ";");
        char cut[300];
        snprintf(cut, sizeof(cut), "%.*s", (int)(len < sizeof(cut) ? len : sizeof(cut) - 1),
                 status_error);
        dm_cli_safe(first, sizeof(first), cut);
        /* A quote inside would end the value early for a reader of key="value". */
        for (char *p = first; *p; p++) {
                if (*p == '"')
                        *p = '\'';
        }
        snprintf(buf, size, "%s %s changes=%zu first_error=\"%s\"", n, st, changes, first);
        return buf;
}
