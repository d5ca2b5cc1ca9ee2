/* Alert messages: the webhook body, the email's subject and text, the SMS. Event bodies come
 * from the bus and carry what DNS, TLS and registration servers said: every value is made
 * safe text (valid UTF-8, no control characters) before it is shown. */
#include "dm/alert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm/buf.h"
#include "dm/error.h"
#include "dm/json.h"
#include "dm/time.h"

#define EMAIL_MAX (1u << 20) /* a digest of many large TXT sets is cut here */
#define VALUE_SHOWN_MAX 512

static json_t *event_data(const struct dm_alert_delivery *d)
{
        json_error_t jerr;
        json_t *o = json_loads(d->body ? d->body : "", 0, &jerr);
        if (!json_is_object(o)) {
                json_decref(o);
                return json_object();
        }
        return o;
}

/* "DNS A changed", "certificate expires in 7 days", ... */
static const char *event_summary(const struct dm_alert_delivery *d, const json_t *data, char *buf,
                                 size_t size)
{
        const char *rk = d->routing_key;
        json_int_t days = json_integer_value(json_object_get(data, "days_left"));
        const char *state = json_string_value(json_object_get(data, "state"));

        if (strncmp(rk, "change.dns.", 11) == 0) {
                char type[32];
                dm_json_safe_text(type, sizeof(type), rk + 11, strlen(rk + 11));
                snprintf(buf, size, "DNS %s changed", type);
        } else if (strcmp(rk, "change.tls") == 0)
                snprintf(buf, size, "certificate changed");
        else if (strcmp(rk, "change.registration") == 0)
                snprintf(buf, size, "registration changed");
        else if (strcmp(rk, "tls.expiring") == 0 || strcmp(rk, "registration.expiring") == 0) {
                const char *what = rk[0] == 't' ? "certificate" : "registration";
                if (days <= 0)
                        snprintf(buf, size, "%s has expired", what);
                else
                        snprintf(buf, size, "%s expires in %lld day%s", what, (long long)days,
                                 days == 1 ? "" : "s");
        } else if (strcmp(rk, "check.failing") == 0)
                snprintf(buf, size, "%s",
                         state && strcmp(state, "recovered") == 0 ? "checks recovered"
                                                                  : "checks failing");
        else if (strcmp(rk, "alert.test") == 0)
                snprintf(buf, size, "test message");
        else
                dm_json_safe_text(buf, size, rk, strlen(rk));
        return buf;
}

/* ---- webhook ---- */

char *dm_alert_render_webhook(const struct dm_alert_message *m, int64_t now)
{
        char ts[DM_RFC3339_LEN];
        json_t *doc;

        dm_time_format(now, ts);
        if (m->n == 1 && !m->digest) {
                doc = json_pack("{s:s, s:s, s:o}", "type", m->items[0]->routing_key, "timestamp",
                                ts, "data", event_data(m->items[0]));
        } else {
                json_t *events = json_array(), *domains = json_array();
                for (size_t i = 0; events && domains && i < m->n; i++) {
                        const struct dm_alert_delivery *d = m->items[i];
                        bool seen = false;
                        for (size_t j = 0; j < i && !seen; j++)
                                seen = strcmp(m->items[j]->domain, d->domain) == 0;
                        if (!seen && d->domain[0])
                                json_array_append_new(domains, json_string(d->domain));
                        json_array_append_new(
                            events,
                            json_pack("{s:s, s:o}", "type", d->routing_key, "data", event_data(d)));
                }
                doc = json_pack("{s:s, s:s, s:{s:o, s:o}}", "type", "alert.digest", "timestamp", ts,
                                "data", "domains", domains, "events", events);
        }
        char *s = doc ? dm_json_dump(doc, NULL) : NULL;
        json_decref(doc);
        return s;
}

/* ---- email ---- */

static void add_values(struct dm_buf *b, const json_t *arr, char sign)
{
        size_t i;
        const json_t *v;
        char safe[VALUE_SHOWN_MAX];
        json_array_foreach(arr, i, v)
        {
                if (json_is_string(v))
                        dm_json_safe_text(safe, sizeof(safe), json_string_value(v),
                                          json_string_length(v));
                else {
                        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                        dm_json_safe_text(safe, sizeof(safe), t ? t : "?", t ? strlen(t) : 1);
                        free(t);
                }
                dm_buf_addf(b, "  %c %s\n", sign, safe);
        }
}

static void add_event_text(struct dm_buf *b, const struct dm_alert_delivery *d)
{
        json_t *data = event_data(d);
        char what[96], when[DM_RFC3339_LEN + 8] = "";
        const char *at = json_string_value(json_object_get(data, "observed_at"));

        if (at)
                dm_json_safe_text(when, sizeof(when), at, strlen(at));
        dm_buf_addf(b, "%s: %s%s%s\n", d->domain[0] ? d->domain : "-",
                    event_summary(d, data, what, sizeof(what)), when[0] ? " at " : "", when);
        const json_t *added = json_object_get(data, "added");
        const json_t *removed = json_object_get(data, "removed");
        if (json_is_array(added) || json_is_array(removed)) {
                add_values(b, removed, '-');
                add_values(b, added, '+');
                const json_t *after = json_object_get(data, "after");
                if (json_is_array(after)) {
                        dm_buf_addstr(b, "  now:\n");
                        add_values(b, after, ' ');
                }
        } else if (strcmp(d->routing_key, "tls.expiring") == 0 ||
                   strcmp(d->routing_key, "registration.expiring") == 0) {
                const char *exp = json_string_value(json_object_get(data, "expires_at"));
                char safe[DM_RFC3339_LEN + 8];
                dm_json_safe_text(safe, sizeof(safe), exp ? exp : "?", exp ? strlen(exp) : 1);
                dm_buf_addf(b, "  expires at: %s\n", safe);
                dm_buf_addf(b, "  days left: %lld\n",
                            (long long)json_integer_value(json_object_get(data, "days_left")));
                dm_buf_addf(b, "  threshold crossed: %lld days\n",
                            (long long)json_integer_value(json_object_get(data, "threshold")));
        } else {
                /* Other events: their fields as JSON, one per line, made safe. */
                const char *key;
                const json_t *v;
                json_object_foreach(data, key, v)
                {
                        if (strcmp(key, "id") == 0 || strcmp(key, "domain") == 0)
                                continue;
                        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                        char safe[VALUE_SHOWN_MAX], k[64];
                        dm_json_safe_text(safe, sizeof(safe), t ? t : "?", t ? strlen(t) : 1);
                        dm_json_safe_text(k, sizeof(k), key, strlen(key));
                        dm_buf_addf(b, "  %s: %s\n", k, safe);
                        free(t);
                }
        }
        dm_buf_addc(b, '\n');
        json_decref(data);
}

int dm_alert_render_email(const struct dm_alert_message *m, const char *rule_name,
                          char **ret_subject, char **ret_body)
{
        struct dm_buf subj, body;
        char name[DM_ALERT_NAME_MAX];
        size_t ndomains = 0;

        dm_buf_init(&subj, 512);
        dm_buf_init(&body, EMAIL_MAX);
        for (size_t i = 0; i < m->n; i++) {
                bool seen = false;
                for (size_t j = 0; j < i && !seen; j++)
                        seen = strcmp(m->items[j]->domain, m->items[i]->domain) == 0;
                ndomains += !seen;
        }
        dm_json_safe_text(name, sizeof(name), rule_name ? rule_name : "",
                          strlen(rule_name ? rule_name : ""));
        if (m->digest || ndomains > 1) {
                dm_buf_addf(&subj, "[domainmon] %zu domains: %zu alerts", ndomains, m->n);
        } else {
                const struct dm_alert_delivery *d = m->items[0];
                dm_buf_addf(&subj, "[domainmon] %s: ", d->domain[0] ? d->domain : "-");
                for (size_t i = 0; i < m->n; i++) {
                        json_t *data = event_data(m->items[i]);
                        char what[96];
                        dm_buf_addf(&subj, "%s%s", i ? ", " : "",
                                    event_summary(m->items[i], data, what, sizeof(what)));
                        json_decref(data);
                        if (subj.len > 200) {
                                dm_buf_addstr(&subj, ", ...");
                                break;
                        }
                }
        }
        dm_buf_addf(&body, "Rule: %s\n\n", name);
        for (size_t i = 0; i < m->n; i++) {
                add_event_text(&body, m->items[i]);
                if (body.len > EMAIL_MAX - 1024) {
                        dm_buf_addf(&body, "(%zu more alerts not shown)\n", m->n - i - 1);
                        break;
                }
        }
        char *s = dm_buf_detach(&subj), *t = dm_buf_detach(&body);
        if (!s || !t) {
                free(s);
                free(t);
                return DM_ENOMEM;
        }
        *ret_subject = s;
        *ret_body = t;
        return 0;
}

/* ---- SMS ---- */

const char *dm_alert_render_sms(const struct dm_alert_message *m, char *buf, size_t size)
{
        char text[1024], what[96], tail[DM_NAME_MAX + 16];
        size_t max = size - 1 < DM_ALERT_SMS_MAX ? size - 1 : DM_ALERT_SMS_MAX;
        const struct dm_alert_delivery *d = m->items[0];
        size_t n = 0;

        if (m->digest) {
                n = (size_t)snprintf(text, sizeof(text), "domainmon: %zu alerts on several domains",
                                     m->n);
                snprintf(tail, sizeof(tail), " (see %s)", d->domain[0] ? d->domain : "the API");
        } else {
                json_t *data = event_data(d);
                n = (size_t)snprintf(text, sizeof(text), "domainmon: %s %s",
                                     d->domain[0] ? d->domain : "-",
                                     event_summary(d, data, what, sizeof(what)));
                const json_t *added = json_object_get(data, "added");
                const json_t *removed = json_object_get(data, "removed");
                size_t i;
                const json_t *v;
                json_array_foreach(added, i, v)
                {
                        if (json_is_string(v) && n < sizeof(text))
                                n += (size_t)snprintf(text + n, sizeof(text) - n, " +%s",
                                                      json_string_value(v));
                }
                json_array_foreach(removed, i, v)
                {
                        if (json_is_string(v) && n < sizeof(text))
                                n += (size_t)snprintf(text + n, sizeof(text) - n, " -%s",
                                                      json_string_value(v));
                }
                const char *exp = json_string_value(json_object_get(data, "expires_at"));
                if (exp && n < sizeof(text))
                        n += (size_t)snprintf(text + n, sizeof(text) - n, " (%.*s)", DM_RFC3339_LEN,
                                              exp);
                if (m->n > 1 && n < sizeof(text))
                        n += (size_t)snprintf(text + n, sizeof(text) - n, " (+%zu more)", m->n - 1);
                json_decref(data);
                snprintf(tail, sizeof(tail), "... see %s", d->domain[0] ? d->domain : "the API");
        }
        if (n >= sizeof(text))
                n = sizeof(text) - 1;
        /* GSM 03.38 shares printable ASCII; anything else would make the message UCS-2 and cut
         * a segment to 70 characters. */
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)text[i];
                if (c < 0x20 || c > 0x7e)
                        text[i] = '?';
        }
        if (n <= max) {
                memcpy(buf, text, n);
                buf[n] = '\0';
                return buf;
        }
        size_t tl = strlen(tail);
        size_t keep = max > tl ? max - tl : 0;
        memcpy(buf, text, keep);
        memcpy(buf + keep, tail, max - keep);
        buf[max] = '\0';
        return buf;
}
