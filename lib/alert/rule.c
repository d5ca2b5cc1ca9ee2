/* Alert rules: validation of what the API sends, the stored spec, matching events. A rule
 * is checked completely into a copy before anything of it is kept, so a rejected body
 * leaves the rule as it was. */
#include "dm/alert.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "dm/error.h"
#include "dm/json.h"
#include "dm/name.h"
#include "dm/rrtype.h"
#include "dm/time.h"

static const struct {
        const char *name;
        unsigned bit;
} event_names[] = {
    {"change.dns", DM_ALERT_EV_CHANGE_DNS},
    {"change.tls", DM_ALERT_EV_CHANGE_TLS},
    {"change.registration", DM_ALERT_EV_CHANGE_REGISTRATION},
    {"tls.expiring", DM_ALERT_EV_TLS_EXPIRING},
    {"registration.expiring", DM_ALERT_EV_REGISTRATION_EXPIRING},
    {"check.failing", DM_ALERT_EV_CHECK_FAILING},
};
#define NEVENT_NAMES (sizeof(event_names) / sizeof(event_names[0]))

static const unsigned default_expiry[] = {30, 14, 7, 1};
#define DEFAULT_FAILING_SCANS 3

static int fail(struct dm_alert_error *err, unsigned status, const char *field, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

static int fail(struct dm_alert_error *err, unsigned status, const char *field, const char *fmt,
                ...)
{
        va_list ap;
        snprintf(err->field, sizeof(err->field), "%s", field);
        va_start(ap, fmt);
        vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
        va_end(ap);
        err->status = status;
        return DM_EINVAL;
}

/* ---- one event name: "change.dns", "change.dns.MX", "tls.expiring", ... ---- */

static int event_parse(const char *s, unsigned *events, uint16_t *types, size_t *ntypes)
{
        for (size_t i = 0; i < NEVENT_NAMES; i++) {
                if (strcmp(s, event_names[i].name) == 0) {
                        *events |= event_names[i].bit;
                        return 0;
                }
        }
        if (strncmp(s, "change.dns.", 11) == 0) {
                uint16_t t;
                if (dm_rrtype_from_name(s + 11, &t) < 0)
                        return DM_EINVAL;
                for (size_t i = 0; i < *ntypes; i++) {
                        if (types[i] == t)
                                return 0;
                }
                if (*ntypes >= DM_ALERT_DNS_TYPES_MAX)
                        return DM_E2BIG;
                types[(*ntypes)++] = t;
                return 0;
        }
        return DM_EINVAL;
}

static int cmp_name(const void *a, const void *b)
{
        return strcmp(a, b);
}

static int cmp_desc(const void *a, const void *b)
{
        unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
        return (x < y) - (x > y);
}

/* ---- the spec: one canonical JSON object ---- */

static json_t *spec_to_json(const struct dm_alert_spec *s)
{
        json_t *events = json_array(), *expiry = json_array();
        json_t *domains = s->ndomains ? json_array() : json_null();
        char tbuf[16], name[32];
        int bad = !events || !expiry || !domains;

        for (size_t i = 0; !bad && i < NEVENT_NAMES; i++) {
                if (s->events & event_names[i].bit)
                        bad |= json_array_append_new(events, json_string(event_names[i].name));
        }
        for (size_t i = 0; !bad && i < s->ndns_types; i++) {
                snprintf(name, sizeof(name), "change.dns.%s",
                         dm_rrtype_name(s->dns_types[i], tbuf));
                bad |= json_array_append_new(events, json_string(name));
        }
        for (size_t i = 0; !bad && i < s->ndomains; i++)
                bad |= json_array_append_new(domains, json_string(s->domains[i]));
        for (size_t i = 0; !bad && i < s->nexpiry; i++)
                bad |= json_array_append_new(expiry, json_integer(s->expiry_days[i]));
        if (bad) {
                json_decref(events);
                json_decref(expiry);
                json_decref(domains);
                return NULL;
        }
        return json_pack("{s:o, s:o, s:o, s:I, s:o}", "events", events, "domains", domains,
                         "expiry_days", expiry, "failing_scans", (json_int_t)s->failing_scans,
                         "quiet_period",
                         s->quiet_ms ? json_integer(s->quiet_ms / 1000) : json_null());
}

void dm_alert_spec_done(struct dm_alert_spec *spec)
{
        if (!spec)
                return;
        free(spec->domains);
        spec->domains = NULL;
        spec->ndomains = 0;
}

/* Reads the members of a spec-shaped object into `s` (starting from what s holds), checking
 * each; used for API bodies and stored specs alike. */
static int spec_read(const json_t *obj, struct dm_alert_spec *s, struct dm_alert_error *err)
{
        const json_t *v;

        if ((v = json_object_get(obj, "events"))) {
                if (!json_is_array(v) || json_array_size(v) == 0)
                        return fail(err, 400, "events", "a non-empty array of event names");
                s->events = 0;
                s->ndns_types = 0;
                size_t i;
                const json_t *e;
                json_array_foreach(v, i, e)
                {
                        if (!json_is_string(e))
                                return fail(err, 400, "events", "entry %zu is not a string", i);
                        int r = event_parse(json_string_value(e), &s->events, s->dns_types,
                                            &s->ndns_types);
                        if (r == DM_E2BIG)
                                return fail(err, 400, "events", "more than %d DNS types",
                                            DM_ALERT_DNS_TYPES_MAX);
                        if (r < 0) {
                                char safe[64];
                                dm_json_safe_text(safe, sizeof(safe), json_string_value(e),
                                                  json_string_length(e));
                                return fail(err, 400, "events",
                                            "unknown event '%s' (change.dns, change.dns.<TYPE>, "
                                            "change.tls, change.registration, tls.expiring, "
                                            "registration.expiring, check.failing)",
                                            safe);
                        }
                }
        }
        if ((v = json_object_get(obj, "domains"))) {
                if (json_is_null(v)) {
                        free(s->domains);
                        s->domains = NULL;
                        s->ndomains = 0;
                } else if (!json_is_array(v) || json_array_size(v) == 0) {
                        return fail(err, 400, "domains", "an array of domain names, or null");
                } else if (json_array_size(v) > DM_ALERT_DOMAINS_MAX) {
                        return fail(err, 400, "domains", "more than %d names",
                                    DM_ALERT_DOMAINS_MAX);
                } else {
                        size_t n = json_array_size(v), k = 0, i;
                        char(*names)[DM_NAME_MAX + 1] = calloc(n, sizeof(*names));
                        const json_t *e;
                        if (!names)
                                return DM_ENOMEM;
                        json_array_foreach(v, i, e)
                        {
                                struct dm_name nm;
                                char why[128];
                                if (!json_is_string(e) ||
                                    dm_name_parse(json_string_value(e), json_string_length(e), why,
                                                  sizeof(why), &nm) < 0) {
                                        free(names);
                                        return fail(err, 400, "domains", "entry %zu: %s", i,
                                                    json_is_string(e) ? why : "not a string");
                                }
                                memcpy(names[k++], nm.ascii, sizeof(nm.ascii));
                        }
                        qsort(names, k, sizeof(*names), cmp_name);
                        size_t m = 0;
                        for (size_t j = 0; j < k; j++) {
                                if (m == 0 || strcmp(names[m - 1], names[j]) != 0)
                                        memmove(names[m++], names[j], sizeof(*names));
                        }
                        free(s->domains);
                        s->domains = names;
                        s->ndomains = m;
                }
        }
        if ((v = json_object_get(obj, "expiry_days"))) {
                if (!json_is_array(v) || json_array_size(v) == 0 ||
                    json_array_size(v) > DM_ALERT_EXPIRY_MAX)
                        return fail(err, 400, "expiry_days", "an array of 1 to %d day counts",
                                    DM_ALERT_EXPIRY_MAX);
                unsigned days[DM_ALERT_EXPIRY_MAX];
                size_t n = 0, i;
                const json_t *e;
                json_array_foreach(v, i, e)
                {
                        if (!json_is_integer(e) || json_integer_value(e) < 1 ||
                            json_integer_value(e) > DM_ALERT_EXPIRY_DAYS_MAX)
                                return fail(err, 400, "expiry_days",
                                            "entry %zu is not a whole number of days in 1..%d", i,
                                            DM_ALERT_EXPIRY_DAYS_MAX);
                        days[n++] = (unsigned)json_integer_value(e);
                }
                qsort(days, n, sizeof(days[0]), cmp_desc);
                s->nexpiry = 0;
                for (size_t j = 0; j < n; j++) {
                        if (s->nexpiry == 0 || s->expiry_days[s->nexpiry - 1] != days[j])
                                s->expiry_days[s->nexpiry++] = days[j];
                }
        }
        if ((v = json_object_get(obj, "failing_scans"))) {
                if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                    json_integer_value(v) > DM_ALERT_FAILING_MAX)
                        return fail(err, 400, "failing_scans", "a whole number in 1..%d",
                                    DM_ALERT_FAILING_MAX);
                s->failing_scans = (unsigned)json_integer_value(v);
        }
        if ((v = json_object_get(obj, "quiet_period"))) {
                if (json_is_null(v)) {
                        s->quiet_ms = 0;
                } else if (json_is_integer(v) && json_integer_value(v) >= 0 &&
                           json_integer_value(v) <= DM_ALERT_QUIET_MAX_S) {
                        s->quiet_ms = json_integer_value(v) * 1000;
                } else {
                        return fail(err, 400, "quiet_period", "whole seconds in 0..%lld, or null",
                                    DM_ALERT_QUIET_MAX_S);
                }
        }
        return 0;
}

int dm_alert_spec_parse(const char *spec, struct dm_alert_spec *ret_spec)
{
        struct dm_alert_spec s = {.failing_scans = DEFAULT_FAILING_SCANS};
        struct dm_alert_error err;
        json_error_t jerr;
        json_t *obj = spec ? json_loads(spec, JSON_REJECT_DUPLICATES, &jerr) : NULL;

        if (!json_is_object(obj)) {
                json_decref(obj);
                return DM_EPARSE;
        }
        int ret = spec_read(obj, &s, &err);
        json_decref(obj);
        if (ret < 0) {
                dm_alert_spec_done(&s);
                return ret == DM_ENOMEM ? ret : DM_EPARSE;
        }
        *ret_spec = s;
        return 0;
}

/* ---- targets ---- */

static int check_webhook(const char *url, bool allow_private, struct dm_alert_error *err)
{
        CURLU *u = curl_url();
        char *scheme = NULL, *host = NULL, *user = NULL;
        int ret = 0;

        if (!u)
                return DM_ENOMEM;
        if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
                ret = fail(err, 400, "target", "not a URL");
                goto out;
        }
        if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
                ret = fail(err, 400, "target", "the URL must be http:// or https://");
                goto out;
        }
        if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
                ret = fail(err, 400, "target", "credentials in the URL are not accepted");
                goto out;
        }
        if (!allow_private && dm_alert_host_private(host))
                ret = fail(err, 422, "target",
                           "the URL names a private, loopback or link-local address");
out:
        curl_free(user);
        curl_free(host);
        curl_free(scheme);
        curl_url_cleanup(u);
        return ret;
}

static int check_email(const char *addr, struct dm_alert_error *err)
{
        const char *at = strrchr(addr, '@');
        struct dm_name nm;
        char why[128];

        if (!at || at == addr || at - addr > 64)
                return fail(err, 400, "target", "not an email address (local@domain)");
        for (const char *p = addr; p < at; p++) {
                unsigned char c = (unsigned char)*p;
                if (c <= ' ' || c >= 0x7f || strchr("<>()[]\\,;:\"@", c))
                        return fail(err, 400, "target", "not an email address (local@domain)");
        }
        if (dm_name_parse(at + 1, strlen(at + 1), why, sizeof(why), &nm) < 0)
                return fail(err, 400, "target", "the address's domain: %s", why);
        return 0;
}

static int check_phone(const char *s, struct dm_alert_error *err)
{
        size_t n = strlen(s);
        if (n < 9 || n > 16 || s[0] != '+' || s[1] == '0')
                return fail(err, 400, "target", "an E.164 number such as +14155550100");
        for (size_t i = 1; i < n; i++) {
                if (!isdigit((unsigned char)s[i]))
                        return fail(err, 400, "target", "an E.164 number such as +14155550100");
        }
        return 0;
}

/* ---- rules from the API ---- */

static const struct dm_json_field rule_fields[] = {
    {"name", DM_JSON_STRING, 0},
    {"channel", DM_JSON_STRING, 0},
    {"target", DM_JSON_STRING, 0},
    {"events", DM_JSON_ARRAY, 0},
    {"domains", DM_JSON_ARRAY, DM_JSON_NULLABLE},
    {"expiry_days", DM_JSON_ARRAY, 0},
    {"failing_scans", DM_JSON_INTEGER, 0},
    {"quiet_period", DM_JSON_INTEGER, DM_JSON_NULLABLE},
    {"secret", DM_JSON_STRING, 0},
    {NULL, 0, 0},
};

/* Text members: UTF-8 of bounded length with no control characters. */
static int text_member(const json_t *obj, const char *field, size_t max, char *dst,
                       struct dm_alert_error *err)
{
        const json_t *v = json_object_get(obj, field);
        if (!v)
                return 0;
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (n == 0 || n > max)
                return fail(err, 400, field, "1 to %zu bytes", max);
        for (size_t i = 0; i < n; i++) {
                if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                        return fail(err, 400, field, "control characters are not accepted");
        }
        memcpy(dst, s, n);
        dst[n] = '\0';
        return 0;
}

static bool secret_ok(const char *s)
{
        static const char b64[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
        size_t n = strlen(s);
        if (strncmp(s, "whsec_", 6) != 0 || n < 6 + 24 || n > DM_ALERT_SECRET_MAX)
                return false;
        return strspn(s + 6, b64) == n - 6;
}

int dm_alert_rule_apply(struct dm_alert_rule *rule, const json_t *body, bool create,
                        bool allow_private, struct dm_alert_error *ret_err)
{
        struct dm_alert_rule r = *rule;
        struct dm_alert_spec s = {.failing_scans = DEFAULT_FAILING_SCANS};
        struct dm_alert_error err = {.status = 400};
        struct dm_json_error jerr;
        int ret;

        if (!json_is_object(body)) {
                fail(ret_err, 400, "", "the body must be a JSON object");
                return DM_EINVAL;
        }
        if (dm_json_check_fields(body, rule_fields, &jerr) < 0) {
                fail(ret_err, 400, jerr.field, "%s", jerr.detail);
                return DM_EINVAL;
        }
        if (create) {
                memset(&r, 0, sizeof(r));
                memcpy(s.expiry_days, default_expiry, sizeof(default_expiry));
                s.nexpiry = sizeof(default_expiry) / sizeof(default_expiry[0]);
                static const char *const required[] = {"name", "channel", "target", "events"};
                for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
                        if (!json_object_get(body, required[i])) {
                                fail(ret_err, 400, required[i], "required");
                                return DM_EINVAL;
                        }
                }
        } else {
                ret = dm_alert_spec_parse(rule->spec, &s);
                if (ret < 0) {
                        fail(ret_err, 500, "", "the stored rule cannot be read");
                        return ret == DM_ENOMEM ? ret : DM_EINVAL;
                }
        }
        r.spec = NULL;

        char channel[16] = "";
        ret = text_member(body, "name", sizeof(r.name) - 1, r.name, &err);
        if (ret == 0)
                ret = text_member(body, "channel", sizeof(channel) - 1, channel, &err);
        if (ret == 0 && channel[0] && dm_alert_channel_parse(channel, &r.channel) < 0)
                ret = fail(&err, 400, "channel", "one of webhook, email, sms");
        if (ret == 0)
                ret = text_member(body, "target", sizeof(r.target) - 1, r.target, &err);
        if (ret == 0)
                ret = spec_read(body, &s, &err);
        const json_t *secret = json_object_get(body, "secret");
        if (ret == 0 && secret) {
                if (r.channel != DM_ALERT_WEBHOOK)
                        ret = fail(&err, 400, "secret", "only webhooks are signed");
                else if (!secret_ok(json_string_value(secret)))
                        ret = fail(&err, 400, "secret",
                                   "whsec_ followed by base64 of at least 18 bytes");
                else
                        snprintf(r.secret, sizeof(r.secret), "%s", json_string_value(secret));
        }
        /* The target is checked against the channel it ends with, also when only one of
         * the two changed. */
        if (ret == 0) {
                if (r.channel == DM_ALERT_WEBHOOK)
                        ret = check_webhook(r.target, allow_private, &err);
                else if (r.channel == DM_ALERT_EMAIL)
                        ret = check_email(r.target, &err);
                else
                        ret = check_phone(r.target, &err);
        }
        if (ret == 0) {
                if (r.channel != DM_ALERT_WEBHOOK)
                        r.secret[0] = '\0';
                else if (!r.secret[0] && dm_alert_secret_new(r.secret, sizeof(r.secret)) < 0)
                        ret = fail(&err, 500, "secret", "no randomness to make a secret");
        }
        if (ret == 0) {
                json_t *spec = spec_to_json(&s);
                r.spec = spec ? dm_json_dump(spec, NULL) : NULL;
                json_decref(spec);
                if (!r.spec)
                        ret = DM_ENOMEM;
        }
        dm_alert_spec_done(&s);
        if (ret < 0) {
                if (ret == DM_ENOMEM)
                        fail(&err, 500, "", "out of memory");
                *ret_err = err;
                return ret;
        }
        free(rule->spec);
        *rule = r;
        return 0;
}

json_t *dm_alert_rule_json(const struct dm_alert_rule *rule, bool with_secret)
{
        json_error_t jerr;
        json_t *spec = json_loads(rule->spec ? rule->spec : "", 0, &jerr);
        char a[DM_RFC3339_LEN], b[DM_RFC3339_LEN];

        if (!json_is_object(spec)) {
                json_decref(spec);
                return NULL;
        }
        json_t *o = json_pack(
            "{s:I, s:o, s:s, s:o, s:s, s:s}", "id", (json_int_t)rule->id, "name",
            dm_json_string_lossy(rule->name), "channel", dm_alert_channel_name(rule->channel),
            "target", dm_json_string_lossy(rule->target), "created_at",
            dm_time_format(rule->created_at, a), "updated_at", dm_time_format(rule->updated_at, b));
        if (!o || json_object_update(o, spec) < 0 ||
            (with_secret && rule->secret[0] &&
             json_object_set_new(o, "secret", json_string(rule->secret)) < 0)) {
                json_decref(o);
                o = NULL;
        }
        json_decref(spec);
        return o;
}

/* ---- events ---- */

int dm_alert_event_read(const char *routing_key, const char *body, size_t len,
                        struct dm_alert_event_info *ret_info)
{
        struct dm_alert_event_info info;
        memset(&info, 0, sizeof(info));
        json_error_t jerr;
        int ret = 0;

        if (!routing_key || !body)
                return DM_EINVAL;
        /* A key names a topic: printable ASCII, no spaces. Anything else (a broker carries
         * what it is given) would end up in mail headers and logs. */
        for (const char *p = routing_key; *p; p++) {
                if (*p <= ' ' || *p > '~')
                        return DM_EINVAL;
        }
        json_t *obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(obj)) {
                json_decref(obj);
                return DM_EPARSE;
        }
        const json_t *id = json_object_get(obj, "id");
        const json_t *domain = json_object_get(obj, "domain");
        int n;
        if (json_is_integer(id))
                n = snprintf(info.key, sizeof(info.key), "%s:%" JSON_INTEGER_FORMAT, routing_key,
                             json_integer_value(id));
        else if (json_is_string(id) && json_string_length(id) > 0 &&
                 strlen(json_string_value(id)) == json_string_length(id))
                n = snprintf(info.key, sizeof(info.key), "%s:%s", routing_key,
                             json_string_value(id));
        else {
                ret = DM_EPARSE;
                goto out;
        }
        if (n < 0 || (size_t)n >= sizeof(info.key)) {
                ret = DM_EINVAL;
                goto out;
        }
        if (domain) {
                struct dm_name nm;
                char why[64];
                if (!json_is_string(domain) ||
                    dm_name_parse(json_string_value(domain), json_string_length(domain), why,
                                  sizeof(why), &nm) < 0) {
                        ret = DM_EINVAL;
                        goto out;
                }
                memcpy(info.domain, nm.ascii, sizeof(nm.ascii));
        }
        if (strcmp(routing_key, "check.failing") == 0) {
                const char *st = json_string_value(json_object_get(obj, "state"));
                const json_t *nf = json_object_get(obj, "failed_scans");
                if (!st || !json_is_integer(nf) || json_integer_value(nf) < 0 ||
                    json_integer_value(nf) > UINT32_MAX) {
                        ret = DM_EPARSE;
                        goto out;
                }
                if (strcmp(st, "failing") == 0)
                        info.failing = DM_ALERT_FAILING;
                else if (strcmp(st, "recovered") == 0)
                        info.failing = DM_ALERT_RECOVERED;
                else {
                        ret = DM_EPARSE;
                        goto out;
                }
                info.failed_scans = (unsigned)json_integer_value(nf);
        }
        const json_t *before = json_object_get(obj, "before");
        info.initial = strncmp(routing_key, "change.", 7) == 0 && before && json_is_null(before);
        *ret_info = info;
out:
        json_decref(obj);
        return ret;
}

bool dm_alert_spec_matches(const struct dm_alert_spec *spec, const char *routing_key,
                           const struct dm_alert_event_info *ev)
{
        const char *domain = ev->domain;
        bool topic = false;

        if (strncmp(routing_key, "change.dns.", 11) == 0) {
                uint16_t t;
                topic = spec->events & DM_ALERT_EV_CHANGE_DNS;
                if (!topic && dm_rrtype_from_name(routing_key + 11, &t) == 0) {
                        for (size_t i = 0; i < spec->ndns_types && !topic; i++)
                                topic = spec->dns_types[i] == t;
                }
        } else {
                for (size_t i = 0; i < NEVENT_NAMES && !topic; i++)
                        topic = strcmp(routing_key, event_names[i].name) == 0 &&
                                (spec->events & event_names[i].bit) &&
                                event_names[i].bit != DM_ALERT_EV_CHANGE_DNS;
        }
        if (topic && strcmp(routing_key, "check.failing") == 0)
                topic = dm_alert_failing_fires(spec->failing_scans, ev->failing, ev->failed_scans);
        if (!topic)
                return false;
        if (spec->ndomains == 0)
                return true;
        if (!domain || !domain[0])
                return false;
        return bsearch(domain, spec->domains, spec->ndomains, sizeof(*spec->domains), cmp_name) !=
               NULL;
}
