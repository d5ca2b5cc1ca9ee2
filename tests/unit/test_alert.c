/* lib/alert: rule validation and matching, retries, the address policy, signing, grouping,
 * message rendering, expiry thresholds and failing checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dm/alert.h"
#include "dm/error.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS (86400LL * 1000)

static json_t *body_of(const char *text)
{
        json_error_t jerr;
        json_t *o = json_loads(text, 0, &jerr);
        assert_non_null(o);
        return o;
}

/* Applies `text` to `rule`; returns the result, with *err filled on failure. */
static int apply(struct dm_alert_rule *rule, const char *text, bool create, bool allow_private,
                 struct dm_alert_error *err)
{
        json_t *b = body_of(text);
        int r = dm_alert_rule_apply(rule, b, create, allow_private, err);
        json_decref(b);
        return r;
}

static void expect_field_error(const char *text, const char *field, unsigned status)
{
        struct dm_alert_rule rule = {0};
        struct dm_alert_error err;
        assert_int_equal(apply(&rule, text, true, false, &err), DM_EINVAL);
        assert_string_equal(err.field, field);
        assert_int_equal(err.status, status);
        assert_null(rule.spec);
}

/* An event of `rk` about `domain`, as the alert service reads it. */
static bool matches(const struct dm_alert_spec *spec, const char *rk, const char *domain)
{
        struct dm_alert_event_info ev;
        memset(&ev, 0, sizeof(ev));
        snprintf(ev.domain, sizeof(ev.domain), "%s", domain);
        return dm_alert_spec_matches(spec, rk, &ev);
}

static void test_rule_create_defaults(void **state)
{
        (void)state;
        struct dm_alert_rule rule = {0};
        struct dm_alert_error err;
        struct dm_alert_spec spec;

        assert_int_equal(apply(&rule,
                               "{\"name\": \"ops\", \"channel\": \"webhook\", \"target\": "
                               "\"https://hooks.example.com/x\", \"events\": [\"change.dns\"]}",
                               true, false, &err),
                         0);
        assert_string_equal(rule.name, "ops");
        assert_int_equal(rule.channel, DM_ALERT_WEBHOOK);
        assert_memory_equal(rule.secret, "whsec_", 6);
        assert_true(strlen(rule.secret) >= 30);
        assert_int_equal(dm_alert_spec_parse(rule.spec, &spec), 0);
        assert_int_equal(spec.events, DM_ALERT_EV_CHANGE_DNS);
        assert_int_equal(spec.ndomains, 0);
        assert_int_equal(spec.nexpiry, 4);
        assert_int_equal(spec.expiry_days[0], 30);
        assert_int_equal(spec.expiry_days[3], 1);
        assert_int_equal(spec.failing_scans, 3);
        assert_int_equal(spec.quiet_ms, 0);
        dm_alert_spec_done(&spec);

        json_t *o = dm_alert_rule_json(&rule, false);
        assert_non_null(o);
        assert_null(json_object_get(o, "secret"));
        assert_true(json_is_null(json_object_get(o, "domains")));
        json_decref(o);
        o = dm_alert_rule_json(&rule, true);
        assert_string_equal(json_string_value(json_object_get(o, "secret")), rule.secret);
        json_decref(o);
        dm_alert_rule_done(&rule);
}

static void test_rule_fields(void **state)
{
        (void)state;
        struct dm_alert_rule rule = {0};
        struct dm_alert_error err;
        struct dm_alert_spec spec;

        assert_int_equal(
            apply(&rule,
                  "{\"name\": \"n\", \"channel\": \"email\", \"target\": \"ops@example.com\", "
                  "\"events\": [\"change.dns.MX\", \"change.dns.a\", \"tls.expiring\", "
                  "\"change.dns.MX\"], \"domains\": [\"B\\u00fccher.example\", "
                  "\"xn--bcher-kva.example\", \"a.example\"], \"expiry_days\": [7, 60, 7, 1], "
                  "\"failing_scans\": 5, \"quiet_period\": 3600}",
                  true, false, &err),
            0);
        assert_string_equal(rule.secret, ""); /* only webhooks are signed */
        assert_int_equal(dm_alert_spec_parse(rule.spec, &spec), 0);
        assert_int_equal(spec.events, DM_ALERT_EV_TLS_EXPIRING);
        assert_int_equal(spec.ndns_types, 2);
        assert_int_equal(spec.ndomains, 2); /* Unicode and A-label are one name */
        assert_string_equal(spec.domains[0], "a.example");
        assert_string_equal(spec.domains[1], "xn--bcher-kva.example");
        assert_int_equal(spec.nexpiry, 3);
        assert_int_equal(spec.expiry_days[0], 60);
        assert_int_equal(spec.expiry_days[2], 1);
        assert_int_equal(spec.failing_scans, 5);
        assert_int_equal(spec.quiet_ms, 3600000);

        assert_true(matches(&spec, "change.dns.MX", "a.example"));
        assert_true(matches(&spec, "change.dns.A", "xn--bcher-kva.example"));
        assert_false(matches(&spec, "change.dns.TXT", "a.example"));
        assert_false(matches(&spec, "change.dns.MX", "other.example"));
        assert_false(matches(&spec, "change.dns.MX", ""));
        assert_true(matches(&spec, "tls.expiring", "a.example"));
        assert_false(matches(&spec, "change.tls", "a.example"));
        assert_false(matches(&spec, "domain.added", "a.example"));
        dm_alert_spec_done(&spec);
        dm_alert_rule_done(&rule);
}

static void test_rule_errors(void **state)
{
        (void)state;
        const char *base = "\"name\": \"n\", \"channel\": \"webhook\", \"target\": "
                           "\"https://h.example/x\", \"events\": [\"change.dns\"]";
        char text[512];

        expect_field_error("{\"channel\": \"webhook\", \"target\": \"https://h.example/\", "
                           "\"events\": [\"change.dns\"]}",
                           "name", 400);
        expect_field_error("{\"name\": \"n\", \"channel\": \"pager\", \"target\": \"x\", "
                           "\"events\": [\"change.dns\"]}",
                           "channel", 400);
        snprintf(text, sizeof(text), "{%s, \"colour\": 1}", base);
        expect_field_error(text, "colour", 400);
        snprintf(text, sizeof(text), "{%s, \"domains\": [\"not a name\"]}", base);
        expect_field_error(text, "domains", 400);
        snprintf(text, sizeof(text), "{%s, \"expiry_days\": [0]}", base);
        expect_field_error(text, "expiry_days", 400);
        snprintf(text, sizeof(text), "{%s, \"failing_scans\": 0}", base);
        expect_field_error(text, "failing_scans", 400);
        snprintf(text, sizeof(text), "{%s, \"quiet_period\": -1}", base);
        expect_field_error(text, "quiet_period", 400);
        snprintf(text, sizeof(text), "{%s, \"secret\": \"plain\"}", base);
        expect_field_error(text, "secret", 400);
        expect_field_error("{\"name\": \"n\", \"channel\": \"webhook\", \"target\": "
                           "\"https://h.example/\", \"events\": [\"change.dns.NOPE\"]}",
                           "events", 400);
        expect_field_error("{\"name\": \"n\", \"channel\": \"webhook\", \"target\": "
                           "\"ftp://h.example/\", \"events\": [\"change.dns\"]}",
                           "target", 400);
        expect_field_error("{\"name\": \"n\", \"channel\": \"email\", \"target\": "
                           "\"ops\\r\\nBcc: x@example.com\", \"events\": [\"change.dns\"]}",
                           "target", 400);
        expect_field_error("{\"name\": \"n\", \"channel\": \"email\", \"target\": "
                           "\"no-at-sign\", \"events\": [\"change.dns\"]}",
                           "target", 400);
        expect_field_error("{\"name\": \"n\", \"channel\": \"sms\", \"target\": \"555-1234\", "
                           "\"events\": [\"change.dns\"]}",
                           "target", 400);
        /* Private targets: 422, naming the target. */
        static const char *const private_urls[] = {
            "http://127.0.0.1:8080/",
            "http://10.1.2.3/",
            "http://192.168.1.1/",
            "http://172.16.0.1/",
            "http://169.254.169.254/latest",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://localhost/",
            "http://[::ffff:127.0.0.1]/",
        };
        for (size_t i = 0; i < sizeof(private_urls) / sizeof(private_urls[0]); i++) {
                snprintf(text, sizeof(text),
                         "{\"name\": \"n\", \"channel\": \"webhook\", \"target\": \"%s\", "
                         "\"events\": [\"change.dns\"]}",
                         private_urls[i]);
                expect_field_error(text, "target", 422);
                struct dm_alert_rule rule = {0};
                struct dm_alert_error err;
                assert_int_equal(apply(&rule, text, true, true, &err), 0);
                dm_alert_rule_done(&rule);
        }
}

static void test_rule_update(void **state)
{
        (void)state;
        struct dm_alert_rule rule = {0};
        struct dm_alert_error err;
        struct dm_alert_spec spec;

        assert_int_equal(apply(&rule,
                               "{\"name\": \"n\", \"channel\": \"sms\", \"target\": "
                               "\"+14155550100\", \"events\": [\"check.failing\"]}",
                               true, false, &err),
                         0);
        char *before = strdup(rule.spec);
        /* A bad update leaves everything as it was. */
        assert_int_equal(apply(&rule, "{\"failing_scans\": \"x\"}", false, false, &err), DM_EINVAL);
        assert_string_equal(err.field, "failing_scans");
        assert_string_equal(rule.spec, before);
        assert_int_equal(apply(&rule, "{\"target\": \"https://h.example/\"}", false, false, &err),
                         DM_EINVAL); /* not a phone number for an sms rule */
        assert_string_equal(rule.target, "+14155550100");
        /* A good one changes what it names only. */
        assert_int_equal(apply(&rule, "{\"failing_scans\": 7, \"domains\": [\"a.example\"]}", false,
                               false, &err),
                         0);
        assert_int_equal(dm_alert_spec_parse(rule.spec, &spec), 0);
        assert_int_equal(spec.failing_scans, 7);
        assert_int_equal(spec.events, DM_ALERT_EV_CHECK_FAILING);
        assert_int_equal(spec.ndomains, 1);
        dm_alert_spec_done(&spec);
        /* Switching to a webhook makes a secret. */
        assert_int_equal(apply(&rule,
                               "{\"channel\": \"webhook\", \"target\": \"https://h.example/\"}",
                               false, false, &err),
                         0);
        assert_memory_equal(rule.secret, "whsec_", 6);
        assert_int_equal(apply(&rule, "{\"domains\": null}", false, false, &err), 0);
        assert_int_equal(dm_alert_spec_parse(rule.spec, &spec), 0);
        assert_int_equal(spec.ndomains, 0);
        dm_alert_spec_done(&spec);
        free(before);
        dm_alert_rule_done(&rule);
}

static void test_event_read(void **state)
{
        (void)state;
        struct dm_alert_event_info ev;
        const char *b = "{\"id\":1234,\"domain\":\"B\\u00fccher.example\",\"type\":\"A\"}";

        assert_int_equal(dm_alert_event_read("change.dns.A", b, strlen(b), &ev), 0);
        assert_string_equal(ev.key, "change.dns.A:1234");
        assert_string_equal(ev.domain, "xn--bcher-kva.example");
        assert_false(ev.initial);
        b = "{\"id\":9,\"domain\":\"a.example\",\"before\":null,\"after\":[]}";
        assert_int_equal(dm_alert_event_read("change.dns.A", b, strlen(b), &ev), 0);
        assert_true(ev.initial); /* a first observation: not an alert */
        b = "{\"id\":\"42-a\"}";
        assert_int_equal(dm_alert_event_read("alert.test", b, strlen(b), &ev), 0);
        assert_string_equal(ev.key, "alert.test:42-a");
        assert_string_equal(ev.domain, "");
        b = "{\"domain\":\"a.example\"}";
        assert_int_equal(dm_alert_event_read("change.tls", b, strlen(b), &ev), DM_EPARSE);
        b = "[1]";
        assert_int_equal(dm_alert_event_read("change.tls", b, strlen(b), &ev), DM_EPARSE);
        b = "{\"id\":1,\"domain\":\"not a name\"}";
        assert_int_equal(dm_alert_event_read("change.tls", b, strlen(b), &ev), DM_EINVAL);
        b = "{\"id\":1}";
        assert_int_equal(dm_alert_event_read("change.dns.A\r\nBcc: x", b, strlen(b), &ev),
                         DM_EINVAL);
        b = "{\"id\":1,\"domain\":7}";
        assert_int_equal(dm_alert_event_read("change.tls", b, strlen(b), &ev), DM_EINVAL);
}

static void test_backoff(void **state)
{
        (void)state;
        for (uint32_t rnd = 0; rnd < 2000; rnd += 97) {
                int64_t a = dm_alert_backoff_ms(1, 30000, rnd);
                assert_true(a >= 30000 && a <= 45000);
                int64_t b = dm_alert_backoff_ms(3, 30000, rnd);
                assert_true(b >= 120000 && b <= 180000);
                int64_t c = dm_alert_backoff_ms(60, 30000, rnd);
                assert_true(c >= DM_ALERT_BACKOFF_MAX_MS && c <= DM_ALERT_BACKOFF_MAX_MS * 3 / 2);
        }
        /* Jitter spreads retries. */
        assert_true(dm_alert_backoff_ms(2, 1000, 1) != dm_alert_backoff_ms(2, 1000, 700));

        struct dm_alert_delivery d = {.id = 1};
        dm_alert_delivery_outcome(&d, false, "HTTP 500", 1000, 1000, 3, 0);
        assert_int_equal(d.status, DM_ALERT_PENDING);
        assert_int_equal(d.attempts, 1);
        assert_string_equal(d.last_error, "HTTP 500");
        assert_int_equal(d.next_attempt_at, 2000);
        dm_alert_delivery_outcome(&d, false, "HTTP 500", 2000, 1000, 3, 0);
        assert_int_equal(d.next_attempt_at, 4000);
        dm_alert_delivery_outcome(&d, false, "HTTP 502", 4000, 1000, 3, 0);
        assert_int_equal(d.status, DM_ALERT_FAILED);
        assert_int_equal(d.attempts, 3);
        struct dm_alert_delivery e = {.id = 2};
        dm_alert_delivery_outcome(&e, true, NULL, 5000, 1000, 3, 0);
        assert_int_equal(e.status, DM_ALERT_DELIVERED);
        assert_int_equal(e.delivered_at, 5000);
}

static bool v4_private(const char *a)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        assert_int_equal(inet_pton(AF_INET, a, &sa.sin_addr), 1);
        return dm_alert_addr_private((struct sockaddr *)&sa);
}

static bool v6_private(const char *a)
{
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
        assert_int_equal(inet_pton(AF_INET6, a, &sa.sin6_addr), 1);
        return dm_alert_addr_private((struct sockaddr *)&sa);
}

static void test_addresses(void **state)
{
        (void)state;
        static const char *const priv4[] = {
            "127.0.0.1",       "10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.0.1",
            "169.254.169.254", "0.0.0.0",  "100.64.0.1", "224.0.0.1",      "255.255.255.255"};
        static const char *const pub4[] = {"192.0.2.1",  "8.8.8.8",     "172.32.0.1",
                                           "172.15.0.1", "100.128.0.1", "11.0.0.1"};
        static const char *const priv6[] = {
            "::1",    "::", "fe80::1", "fd12::1", "fc00::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1",
            "ff02::1"};
        static const char *const pub6[] = {"2001:db8::1", "2606:4700::1111", "::ffff:8.8.8.8"};
        for (size_t i = 0; i < sizeof(priv4) / sizeof(priv4[0]); i++)
                assert_true(v4_private(priv4[i]));
        for (size_t i = 0; i < sizeof(pub4) / sizeof(pub4[0]); i++)
                assert_false(v4_private(pub4[i]));
        for (size_t i = 0; i < sizeof(priv6) / sizeof(priv6[0]); i++)
                assert_true(v6_private(priv6[i]));
        for (size_t i = 0; i < sizeof(pub6) / sizeof(pub6[0]); i++)
                assert_false(v6_private(pub6[i]));
        assert_true(dm_alert_host_private("localhost"));
        assert_true(dm_alert_host_private("x.localhost"));
        assert_true(dm_alert_host_private("[::1]"));
        assert_true(dm_alert_host_private("127.0.0.1"));
        assert_true(dm_alert_host_private("127.1"));
        assert_true(dm_alert_host_private("0x7f000001"));
        assert_false(dm_alert_host_private("hooks.example.com"));
        assert_false(dm_alert_host_private("192.0.2.1"));
}

static void test_sign(void **state)
{
        (void)state;
        /* The Standard Webhooks reference vector. */
        char sig[DM_ALERT_SIGNATURE_MAX], secret[64];
        const char *body = "{\"test\": 2432232314}";
        assert_int_equal(dm_alert_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                       "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
                                       strlen(body), sig, sizeof(sig)),
                         0);
        assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_int_equal(dm_alert_sign("nope", "m", 1, body, strlen(body), sig, sizeof(sig)),
                         DM_EINVAL);
        assert_int_equal(dm_alert_sign("whsec_!!!!", "m", 1, body, strlen(body), sig, sizeof(sig)),
                         DM_EINVAL);
        assert_int_equal(dm_alert_secret_new(secret, sizeof(secret)), 0);
        assert_int_equal(dm_alert_sign(secret, "m", 1, body, strlen(body), sig, sizeof(sig)), 0);
}

static struct dm_alert_delivery delivery(int64_t id, const char *domain, const char *rk,
                                         const char *body)
{
        struct dm_alert_delivery d = {.id = id, .rule_id = 7, .body = (char *)body};
        snprintf(d.domain, sizeof(d.domain), "%s", domain);
        snprintf(d.routing_key, sizeof(d.routing_key), "%s", rk);
        snprintf(d.event_key, sizeof(d.event_key), "%s:%lld", rk, (long long)id);
        return d;
}

#define DNS_BODY                                                                                   \
        "{\"id\":5,\"domain\":\"a.example\",\"type\":\"A\",\"status\":\"ok\",\"observed_at\":"     \
        "\"2026-11-29T20:00:00.000Z\",\"before\":[\"192.0.2.1\"],\"after\":[\"192.0.2.2\"],"       \
        "\"added\":[\"192.0.2.2\"],\"removed\":[\"192.0.2.1\"]}"

static void test_plan(void **state)
{
        (void)state;
        struct dm_alert_delivery items[6];
        const struct dm_alert_delivery *order[6];
        struct dm_alert_message msgs[6];
        const char *domains[] = {"a.example", "b.example", "a.example",
                                 "c.example", "b.example", "d.example"};
        for (int i = 0; i < 6; i++)
                items[i] = delivery(10 + i, domains[i], "change.dns.A", DNS_BODY);

        size_t n = dm_alert_plan(items, 6, 10, order, msgs);
        assert_int_equal(n, 4);
        assert_int_equal(msgs[0].n, 2);
        assert_string_equal(msgs[0].items[0]->domain, "a.example");
        assert_int_equal(msgs[0].items[1]->id, 12);
        assert_int_equal(msgs[1].n, 2);
        assert_string_equal(msgs[1].items[0]->domain, "b.example");
        assert_int_equal(msgs[3].n, 1);
        assert_false(msgs[0].digest);
        char id[64];
        dm_alert_message_id(&msgs[1], id, sizeof(id));
        assert_string_equal(id, "msg_7_11");

        n = dm_alert_plan(items, 6, 3, order, msgs); /* 4 domains > 3: a digest */
        assert_int_equal(n, 1);
        assert_true(msgs[0].digest);
        assert_int_equal(msgs[0].n, 6);
}

static void test_render(void **state)
{
        (void)state;
        struct dm_alert_delivery d = delivery(5, "a.example", "change.dns.A", DNS_BODY);
        const struct dm_alert_delivery *one[1] = {&d};
        struct dm_alert_message m = {.items = one, .n = 1};

        char *w = dm_alert_render_webhook(&m, 1000);
        json_error_t jerr;
        json_t *o = json_loads(w, 0, &jerr);
        assert_non_null(o);
        assert_string_equal(json_string_value(json_object_get(o, "type")), "change.dns.A");
        assert_string_equal(json_string_value(json_object_get(o, "timestamp")),
                            "1970-01-01T00:00:01.000Z");
        json_t *data = json_object_get(o, "data");
        assert_string_equal(json_string_value(json_object_get(data, "domain")), "a.example");
        assert_string_equal(json_string_value(json_array_get(json_object_get(data, "added"), 0)),
                            "192.0.2.2");
        json_decref(o);
        free(w);

        char *subject = NULL, *text = NULL;
        assert_int_equal(dm_alert_render_email(&m, "ops", &subject, &text), 0);
        assert_string_equal(subject, "[domainmon] a.example: DNS A changed");
        assert_non_null(strstr(text, "  - 192.0.2.1\n"));
        assert_non_null(strstr(text, "  + 192.0.2.2\n"));
        free(subject);
        free(text);

        char sms[DM_ALERT_SMS_MAX + 1];
        dm_alert_render_sms(&m, sms, sizeof(sms));
        assert_string_equal(sms, "domainmon: a.example DNS A changed +192.0.2.2 -192.0.2.1");

        /* Control characters from a TXT record never reach a mail or an SMS. */
        struct dm_alert_delivery t =
            delivery(6, "a.example", "change.dns.TXT",
                     "{\"id\":6,\"added\":[\"evil\\r\\nBcc: x@example.com\"],\"removed\":[]}");
        one[0] = &t;
        assert_int_equal(dm_alert_render_email(&m, "ops", &subject, &text), 0);
        assert_null(strstr(text, "\r\nBcc"));
        assert_null(strchr(subject, '\n'));
        free(subject);
        free(text);
        dm_alert_render_sms(&m, sms, sizeof(sms));
        assert_null(strchr(sms, '\r'));

        /* A long SMS is one segment, cut with a pointer to the domain. */
        char big[4096];
        int k = snprintf(big, sizeof(big), "{\"id\":7,\"added\":[");
        for (int i = 0; i < 40; i++)
                k +=
                    snprintf(big + k, sizeof(big) - (size_t)k, "%s\"192.0.2.%d\"", i ? "," : "", i);
        snprintf(big + k, sizeof(big) - (size_t)k, "],\"removed\":[]}");
        struct dm_alert_delivery l = delivery(7, "long.example", "change.dns.A", big);
        one[0] = &l;
        dm_alert_render_sms(&m, sms, sizeof(sms));
        assert_int_equal(strlen(sms), DM_ALERT_SMS_MAX);
        assert_non_null(strstr(sms, "... see long.example"));

        /* A digest lists its domains. */
        struct dm_alert_delivery a = delivery(8, "a.example", "change.dns.A", DNS_BODY);
        struct dm_alert_delivery b = delivery(9, "b.example", "change.dns.MX", "{\"id\":9}");
        const struct dm_alert_delivery *two[2] = {&a, &b};
        struct dm_alert_message dg = {.items = two, .n = 2, .digest = true};
        w = dm_alert_render_webhook(&dg, 1000);
        o = json_loads(w, 0, &jerr);
        assert_string_equal(json_string_value(json_object_get(o, "type")), "alert.digest");
        data = json_object_get(o, "data");
        assert_int_equal(json_array_size(json_object_get(data, "domains")), 2);
        assert_int_equal(json_array_size(json_object_get(data, "events")), 2);
        json_decref(o);
        free(w);
        assert_int_equal(dm_alert_render_email(&dg, "ops", &subject, &text), 0);
        assert_string_equal(subject, "[domainmon] 2 domains: 2 alerts");
        assert_non_null(strstr(text, "b.example: DNS MX changed"));
        free(subject);
        free(text);
}

/* The threshold an expiry alert is about at each moment, and the key that makes it fire once:
 * the same key at every scan until the next threshold, a new one after a renewal. */
static const char *expiry_key(int64_t exp, int64_t now, char *buf, size_t size)
{
        const unsigned th[] = {30, 14, 7, 1};
        struct dm_alert_delivery d;
        unsigned t = dm_alert_expiry_threshold(th, 4, exp, now, NULL);
        if (t == 0)
                return "";
        assert_int_equal(
            dm_alert_expiry_event(DM_ALERT_EXPIRY_TLS, 7, "a.example", exp, now, t, &d), 0);
        snprintf(buf, size, "%s", d.event_key);
        free(d.body);
        return buf;
}

static void test_expiry(void **state)
{
        (void)state;
        const unsigned th[] = {30, 14, 7, 1};
        int64_t exp = 1000 * DAY_MS, days = -1;

        assert_int_equal(dm_alert_expiry_threshold(th, 4, exp, exp - 40 * DAY_MS, &days), 0);
        assert_int_equal(days, -1); /* not written */
        assert_int_equal(dm_alert_expiry_threshold(th, 4, exp, exp - 31 * DAY_MS + 1, &days), 0);
        assert_int_equal(dm_alert_expiry_threshold(th, 4, exp, exp - 30 * DAY_MS, &days), 30);
        assert_int_equal(days, 30);
        assert_int_equal(dm_alert_expiry_threshold(th, 4, exp, exp - 20 * DAY_MS, NULL), 30);
        /* Several crossed at once: the nearest alone. */
        assert_int_equal(dm_alert_expiry_threshold(th, 4, exp, exp - 10 * DAY_MS, &days), 14);
        assert_int_equal(days, 10);
        assert_int_equal(dm_alert_expiry_threshold(th, 4, exp, exp - 5 * DAY_MS, NULL), 7);
        /* Rounded up: 6 days and an hour left is 7 days. */
        assert_int_equal(dm_alert_expiry_threshold(th, 4, exp, exp - 6 * DAY_MS - 3600000, &days),
                         7);
        assert_int_equal(days, 7);
        assert_int_equal(dm_alert_expiry_threshold(th, 4, exp, exp - DAY_MS / 2, NULL), 1);
        /* Expired: every threshold crossed, the nearest is still 1 (the same alert). */
        assert_int_equal(dm_alert_expiry_threshold(th, 4, exp, exp + DAY_MS, &days), 1);
        assert_int_equal(days, 0);
        /* Unknown expiry, no thresholds: nothing. */
        assert_int_equal(dm_alert_expiry_threshold(th, 4, 0, exp, NULL), 0);
        assert_int_equal(dm_alert_expiry_threshold(th, 0, exp, exp, NULL), 0);

        /* Keys: one per threshold and date. */
        char k1[DM_ALERT_EVENT_KEY_MAX], k2[DM_ALERT_EVENT_KEY_MAX];
        assert_string_equal(expiry_key(exp, exp - 10 * DAY_MS, k1, sizeof(k1)),
                            expiry_key(exp, exp - 9 * DAY_MS, k2, sizeof(k2)));
        assert_string_equal(k1, "tls.expiring:7-86400000-14");
        assert_string_not_equal(expiry_key(exp, exp - 7 * DAY_MS, k2, sizeof(k2)), k1);
        int64_t renewed = exp + 90 * DAY_MS;
        assert_string_equal(expiry_key(renewed, renewed - 80 * DAY_MS, k2, sizeof(k2)), "");
        assert_string_not_equal(expiry_key(renewed, renewed - 10 * DAY_MS, k2, sizeof(k2)), k1);

        /* The body says the domain, the kind, the date, the days left and the threshold. */
        struct dm_alert_delivery d;
        assert_int_equal(dm_alert_expiry_event(DM_ALERT_EXPIRY_REGISTRATION, 3, "b.example", exp,
                                               exp - 10 * DAY_MS + 1, 14, &d),
                         0);
        assert_string_equal(d.routing_key, "registration.expiring");
        assert_string_equal(d.domain, "b.example");
        assert_string_equal(d.event_key, "registration.expiring:3-86400000-14");
        assert_string_equal(d.body, "{\"id\":\"3-86400000-14\",\"domain\":\"b.example\","
                                    "\"kind\":\"registration\",\"expires_at\":"
                                    "\"1972-09-27T00:00:00.000Z\",\"days_left\":10,"
                                    "\"threshold\":14}");
        /* ... and reads well. */
        const struct dm_alert_delivery *items[] = {&d};
        struct dm_alert_message m = {.items = items, .n = 1};
        char sms[DM_ALERT_SMS_MAX + 1], *subject = NULL, *text = NULL;
        dm_alert_render_sms(&m, sms, sizeof(sms));
        assert_string_equal(sms, "domainmon: b.example registration expires in 10 days "
                                 "(1972-09-27T00:00:00.000Z)");
        assert_int_equal(dm_alert_render_email(&m, "expiry", &subject, &text), 0);
        assert_string_equal(subject, "[domainmon] b.example: registration expires in 10 days");
        assert_non_null(strstr(text, "b.example: registration expires in 10 days\n"));
        assert_non_null(strstr(text, "  expires at: 1972-09-27T00:00:00.000Z\n"));
        assert_non_null(strstr(text, "  threshold crossed: 14 days\n"));
        free(subject);
        free(text);
        free(d.body);

        assert_int_equal(dm_alert_expiry_event(DM_ALERT_EXPIRY_TLS, 3, "", exp, exp, 14, &d),
                         DM_EINVAL);
        assert_int_equal(dm_alert_expiry_event(DM_ALERT_EXPIRY_TLS, 3, "a.example", 0, exp, 14, &d),
                         DM_EINVAL);
        assert_int_equal(
            dm_alert_expiry_event(DM_ALERT_EXPIRY_TLS, 3, "a.example", exp, exp, 0, &d), DM_EINVAL);
}

static int parse_spec(const char *text, struct dm_alert_spec *ret_spec)
{
        struct dm_alert_rule rule = {0};
        struct dm_alert_error err;
        int r = apply(&rule, text, true, false, &err);
        if (r == 0)
                r = dm_alert_spec_parse(rule.spec, ret_spec);
        dm_alert_rule_done(&rule);
        return r;
}

/* A rule's say on expiry: its events, its domains, its thresholds. */
static void test_expiry_check(void **state)
{
        (void)state;
        struct dm_alert_spec tls, reg, other;
        int64_t exp = 1000 * DAY_MS;
        struct dm_alert_delivery d;

        assert_int_equal(parse_spec("{\"name\": \"t\", \"channel\": \"webhook\", \"target\": "
                                    "\"https://h.example/\", \"events\": [\"tls.expiring\"], "
                                    "\"expiry_days\": [14, 60]}",
                                    &tls),
                         0);
        assert_int_equal(parse_spec("{\"name\": \"r\", \"channel\": \"webhook\", \"target\": "
                                    "\"https://h.example/\", \"events\": "
                                    "[\"registration.expiring\"], \"domains\": [\"b.example\"]}",
                                    &reg),
                         0);
        assert_int_equal(parse_spec("{\"name\": \"o\", \"channel\": \"webhook\", \"target\": "
                                    "\"https://h.example/\", \"events\": [\"change.tls\"]}",
                                    &other),
                         0);
        assert_int_equal(dm_alert_spec_expiry_window(&tls), 60);
        assert_int_equal(dm_alert_spec_expiry_window(&reg), 30);
        assert_int_equal(dm_alert_spec_expiry_window(&other), 0);

        /* Its own thresholds, its own event. */
        assert_int_equal(dm_alert_expiry_check(&tls, DM_ALERT_EXPIRY_TLS, 1, "a.example", exp,
                                               exp - 40 * DAY_MS, &d),
                         1);
        assert_string_equal(d.event_key, "tls.expiring:1-86400000-60");
        free(d.body);
        assert_int_equal(dm_alert_expiry_check(&tls, DM_ALERT_EXPIRY_TLS, 1, "a.example", exp,
                                               exp - 10 * DAY_MS, &d),
                         1);
        assert_string_equal(d.event_key, "tls.expiring:1-86400000-14");
        free(d.body);
        assert_int_equal(dm_alert_expiry_check(&tls, DM_ALERT_EXPIRY_TLS, 1, "a.example", exp,
                                               exp - 70 * DAY_MS, &d),
                         0);
        assert_int_equal(dm_alert_expiry_check(&tls, DM_ALERT_EXPIRY_REGISTRATION, 1, "a.example",
                                               exp, exp - 10 * DAY_MS, &d),
                         0);
        assert_int_equal(
            dm_alert_expiry_check(&tls, DM_ALERT_EXPIRY_TLS, 1, "a.example", 0, exp, &d), 0);
        /* Its own domains. */
        assert_int_equal(dm_alert_expiry_check(&reg, DM_ALERT_EXPIRY_REGISTRATION, 1, "a.example",
                                               exp, exp - 10 * DAY_MS, &d),
                         0);
        assert_int_equal(dm_alert_expiry_check(&reg, DM_ALERT_EXPIRY_REGISTRATION, 2, "b.example",
                                               exp, exp - 10 * DAY_MS, &d),
                         1);
        assert_string_equal(d.event_key, "registration.expiring:2-86400000-14");
        free(d.body);
        assert_int_equal(dm_alert_expiry_check(&other, DM_ALERT_EXPIRY_TLS, 1, "a.example", exp,
                                               exp - 10 * DAY_MS, &d),
                         0);
        dm_alert_spec_done(&tls);
        dm_alert_spec_done(&reg);
        dm_alert_spec_done(&other);
}

static void test_failing(void **state)
{
        (void)state;
        /* failing_scans 3: the third failure in a row fires, and the end of a run of three
         * or more; nothing else does. */
        assert_false(dm_alert_failing_fires(3, DM_ALERT_FAILING, 1));
        assert_false(dm_alert_failing_fires(3, DM_ALERT_FAILING, 2));
        assert_true(dm_alert_failing_fires(3, DM_ALERT_FAILING, 3));
        assert_false(dm_alert_failing_fires(3, DM_ALERT_FAILING, 4));
        assert_true(dm_alert_failing_fires(3, DM_ALERT_RECOVERED, 3));
        assert_true(dm_alert_failing_fires(3, DM_ALERT_RECOVERED, 40));
        assert_false(dm_alert_failing_fires(3, DM_ALERT_RECOVERED, 2));
        assert_false(dm_alert_failing_fires(3, DM_ALERT_NOT_FAILING, 3));

        /* Through the event and the rule. */
        struct dm_alert_rule rule = {0};
        struct dm_alert_error err;
        struct dm_alert_spec spec;
        struct dm_alert_event_info ev;
        assert_int_equal(apply(&rule,
                               "{\"name\": \"n\", \"channel\": \"sms\", \"target\": "
                               "\"+14155550100\", \"events\": [\"check.failing\"], "
                               "\"failing_scans\": 2}",
                               true, false, &err),
                         0);
        assert_int_equal(dm_alert_spec_parse(rule.spec, &spec), 0);
        const char *b = "{\"id\":\"4-100\",\"domain\":\"a.example\",\"state\":\"failing\","
                        "\"failed_scans\":2,\"error\":\"timed out\"}";
        assert_int_equal(dm_alert_event_read("check.failing", b, strlen(b), &ev), 0);
        assert_int_equal(ev.failing, DM_ALERT_FAILING);
        assert_int_equal(ev.failed_scans, 2);
        assert_true(dm_alert_spec_matches(&spec, "check.failing", &ev));
        b = "{\"id\":\"4-90\",\"domain\":\"a.example\",\"state\":\"failing\","
            "\"failed_scans\":1}";
        assert_int_equal(dm_alert_event_read("check.failing", b, strlen(b), &ev), 0);
        assert_false(dm_alert_spec_matches(&spec, "check.failing", &ev));
        b = "{\"id\":\"4-200\",\"domain\":\"a.example\",\"state\":\"recovered\","
            "\"failed_scans\":5}";
        assert_int_equal(dm_alert_event_read("check.failing", b, strlen(b), &ev), 0);
        assert_true(dm_alert_spec_matches(&spec, "check.failing", &ev));
        b = "{\"id\":\"4-1\",\"domain\":\"a.example\",\"state\":\"bored\","
            "\"failed_scans\":5}";
        assert_int_equal(dm_alert_event_read("check.failing", b, strlen(b), &ev), DM_EPARSE);
        b = "{\"id\":\"4-1\",\"domain\":\"a.example\",\"state\":\"failing\"}";
        assert_int_equal(dm_alert_event_read("check.failing", b, strlen(b), &ev), DM_EPARSE);
        dm_alert_spec_done(&spec);
        dm_alert_rule_done(&rule);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_rule_create_defaults),
            cmocka_unit_test(test_rule_fields),
            cmocka_unit_test(test_rule_errors),
            cmocka_unit_test(test_rule_update),
            cmocka_unit_test(test_event_read),
            cmocka_unit_test(test_backoff),
            cmocka_unit_test(test_addresses),
            cmocka_unit_test(test_sign),
            cmocka_unit_test(test_plan),
            cmocka_unit_test(test_render),
            cmocka_unit_test(test_expiry),
            cmocka_unit_test(test_expiry_check),
            cmocka_unit_test(test_failing),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
