/* lib/registration: RDAP reader, WHOIS parser, bootstrap, registrable domain, the change
 * rule, text cleaning and the per-server limiter. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dm/embed.h"
#include "dm/error.h"
#include "dm/regchange.h"
#include "dm/registration.h"
#include "dm/time.h"

#include <stdio.h>
#include <string.h>

static int64_t t(const char *s)
{
        int64_t v = 0;
        assert_int_equal(dm_time_parse(s, &v), 0);
        return v;
}

static const char rdap_doc[] =
    "{\"objectClassName\":\"domain\",\"ldhName\":\"EXAMPLE.TEST\","
    "\"status\":[\"client transfer prohibited\",\"active\",\"client delete prohibited\","
    "\"active\"],"
    "\"nameservers\":[{\"objectClassName\":\"nameserver\",\"ldhName\":\"NS2.Example.NET.\"},"
    "{\"objectClassName\":\"nameserver\",\"ldhName\":\"ns1.example.net\"}],"
    "\"secureDNS\":{\"delegationSigned\":true},"
    "\"events\":[{\"eventAction\":\"last update of RDAP database\","
    "\"eventDate\":\"2026-11-29T10:00:00Z\"},"
    "{\"eventAction\":\"registration\",\"eventDate\":\"1995-08-14T04:00:00Z\"},"
    "{\"eventAction\":\"expiration\",\"eventDate\":\"2027-08-13T04:00:00.000Z\"},"
    "{\"eventAction\":\"last changed\",\"eventDate\":\"2026-08-14T07:01:38+02:00\"}],"
    "\"entities\":[{\"objectClassName\":\"entity\",\"roles\":[\"registrar\"],"
    "\"vcardArray\":[\"vcard\",[[\"version\",{},\"text\",\"4.0\"],"
    "[\"fn\",{},\"text\",\"Example Registrar, Inc.\"]]],"
    "\"entities\":[{\"roles\":[\"abuse\"],\"vcardArray\":[\"vcard\",[[\"fn\",{},\"text\","
    "\"Abuse desk\"]]]}]},"
    "{\"objectClassName\":\"entity\",\"roles\":[\"registrant\"],"
    "\"vcardArray\":[\"vcard\",[[\"version\",{},\"text\",\"4.0\"],"
    "[\"fn\",{},\"text\",\"REDACTED FOR PRIVACY\"],[\"org\",{},\"text\",\"Example Org\"],"
    "[\"adr\",{},\"text\",[\"\",\"\",\"\",\"\",\"\",\"\",\"NL\"]],"
    "[\"email\",{},\"text\",\"owner@example.test\"]]]}]}";

static void rdap_reads_the_fields(void **state)
{
        struct dm_reg_record r;
        char err[256];
        (void)state;

        assert_int_equal(dm_rdap_parse(rdap_doc, strlen(rdap_doc), &r, err, sizeof(err)), 0);
        assert_string_equal(r.registrar, "Example Registrar, Inc.");
        assert_true(r.created_at == t("1995-08-14T04:00:00Z"));
        assert_true(r.expires_at == t("2027-08-13T04:00:00Z"));
        /* last changed, never "last update of RDAP database" */
        assert_true(r.updated_at == t("2026-08-14T05:01:38Z"));
        assert_int_equal(r.nns, 2);
        assert_string_equal(r.name_servers[0], "ns1.example.net");
        assert_string_equal(r.name_servers[1], "ns2.example.net");
        assert_int_equal(r.nstatuses, 3);
        assert_string_equal(r.statuses[0], "active");
        assert_string_equal(r.statuses[1], "client delete prohibited");
        assert_string_equal(r.statuses[2], "client transfer prohibited");
        assert_int_equal(r.dnssec, 1);
        assert_string_equal(r.registrant.name, ""); /* redacted */
        assert_string_equal(r.registrant.organization, "Example Org");
        assert_string_equal(r.registrant.email, "owner@example.test");
        assert_string_equal(r.registrant.country, "NL");
}

static void rdap_cleans_hostile_text(void **state)
{
        struct dm_reg_record r;
        char err[256];
        (void)state;

        const char *doc = "{\"objectClassName\":\"domain\",\"entities\":[{\"roles\":"
                          "[\"registrar\"],\"vcardArray\":[\"vcard\",[[\"fn\",{},\"text\","
                          "\"Evil\\u001b[31m\\u0085Reg\\u0007 <b>x</b>\"]]]}],"
                          "\"nameservers\":[{\"ldhName\":\"ns1..x\"},{\"ldhName\":\"a b\"},"
                          "{\"ldhName\":\"NS<b>.x\"},{\"ldhName\":\"ok.example\"}],"
                          "\"status\":[\"server\\u0000hold\"]}";
        /* NUL inside a string is refused by the JSON reader: the answer is an error. */
        assert_int_equal(dm_rdap_parse(doc, strlen(doc), &r, err, sizeof(err)), DM_EPARSE);
        const char *doc2 = "{\"objectClassName\":\"domain\",\"entities\":[{\"roles\":"
                           "[\"registrar\"],\"vcardArray\":[\"vcard\",[[\"fn\",{},\"text\","
                           "\"Evil\\u001b[31m\\u0085Reg\\u0007 <b>x</b>\"]]]}],"
                           "\"nameservers\":[{\"ldhName\":\"ns1..x\"},{\"ldhName\":\"a b\"},"
                           "{\"ldhName\":\"NS<b>.x\"},{\"ldhName\":\"ok.example\"}]}";
        assert_int_equal(dm_rdap_parse(doc2, strlen(doc2), &r, err, sizeof(err)), 0);
        assert_string_equal(r.registrar, "Evil [31m Reg <b>x</b>");
        /* Only host names are name servers ("a b" is "a", its first word). */
        assert_int_equal(r.nns, 2);
        assert_string_equal(r.name_servers[0], "a");
        assert_string_equal(r.name_servers[1], "ok.example");
        /* Not UTF-8: not JSON. */
        const char bad[] = "{\"objectClassName\":\"domain\",\"x\":\"\xff\"}";
        assert_int_equal(dm_rdap_parse(bad, sizeof(bad) - 1, &r, err, sizeof(err)), DM_EPARSE);
}

static void rdap_rejects_what_is_not_a_domain(void **state)
{
        struct dm_reg_record r;
        char err[256];
        (void)state;

        assert_int_equal(dm_rdap_parse("nope", 4, &r, err, sizeof(err)), DM_EPARSE);
        assert_int_equal(dm_rdap_parse("[1]", 3, &r, err, sizeof(err)), DM_EPARSE);
        const char *ent = "{\"objectClassName\":\"entity\"}";
        assert_int_equal(dm_rdap_parse(ent, strlen(ent), &r, err, sizeof(err)), DM_EINVAL);
        assert_non_null(strstr(err, "objectClassName"));
        /* A bare domain object is fine: nothing published. */
        const char *bare = "{\"objectClassName\":\"domain\",\"events\":[{\"eventAction\":"
                           "\"expiration\",\"eventDate\":\"not a date\"}],\"status\":[7]}";
        assert_int_equal(dm_rdap_parse(bare, strlen(bare), &r, err, sizeof(err)), 0);
        assert_true(dm_reg_record_is_empty(&r));
}

static const char whois_registry[] =
    "   Domain Name: EXAMPLE.ORG\r\n"
    "   Registry Domain ID: 2336799_DOMAIN_COM-VRSN\r\n"
    "   Registrar WHOIS Server: whois.registrar.test\r\n"
    "   Registrar URL: http://www.registrar.test\r\n"
    "   Updated Date: 2024-08-14T07:01:38Z\r\n"
    "   Creation Date: 1995-08-14T04:00:00Z\r\n"
    "   Registry Expiry Date: 2025-08-13T04:00:00Z\r\n"
    "   Registrar: RESERVED-Internet Assigned Numbers Authority\r\n"
    "   Domain Status: clientDeleteProhibited https://icann.org/epp#clientDeleteProhibited\r\n"
    "   Domain Status: clientTransferProhibited "
    "https://icann.org/epp#clientTransferProhibited\r\n"
    "   Domain Status: ok\r\n"
    "   Name Server: A.IANA-SERVERS.NET\r\n"
    "   Name Server: B.IANA-SERVERS.NET.\r\n"
    "   DNSSEC: signedDelegation\r\n"
    ">>> Last update of whois database: 2026-11-29T10:00:00Z <<<\r\n"
    "Registrant Name: after the end marker, ignored\r\n";

static void whois_reads_the_common_spellings(void **state)
{
        struct dm_whois_result w;
        (void)state;

        dm_whois_parse(whois_registry, strlen(whois_registry), &w);
        assert_true(w.has_data);
        assert_false(w.not_found);
        assert_string_equal(w.referral, "whois.registrar.test");
        assert_string_equal(w.record.registrar, "RESERVED-Internet Assigned Numbers Authority");
        assert_true(w.record.created_at == t("1995-08-14T04:00:00Z"));
        assert_true(w.record.updated_at == t("2024-08-14T07:01:38Z"));
        assert_true(w.record.expires_at == t("2025-08-13T04:00:00Z"));
        assert_int_equal(w.record.nns, 2);
        assert_string_equal(w.record.name_servers[0], "a.iana-servers.net");
        assert_string_equal(w.record.name_servers[1], "b.iana-servers.net");
        assert_int_equal(w.record.nstatuses, 3);
        assert_string_equal(w.record.statuses[0], "active");
        assert_string_equal(w.record.statuses[1], "client delete prohibited");
        assert_string_equal(w.record.statuses[2], "client transfer prohibited");
        assert_int_equal(w.record.dnssec, 1);
        assert_true(dm_reg_registrant_is_empty(&w.record.registrant));
}

static void whois_reads_ripe_style_and_iana(void **state)
{
        struct dm_whois_result w;
        (void)state;

        const char *ru = "% By submitting a query you agree\n"
                         "domain:        EXAMPLE.RU\n"
                         "nserver:       ns1.example.ru. 192.0.2.1\n"
                         "nserver:       ns2.example.ru.\n"
                         "state:         REGISTERED, DELEGATED, VERIFIED\n"
                         "org:           Example LLC\n"
                         "registrar:     RU-CENTER-RU\n"
                         "created:       2004.06.02\n"
                         "paid-till:     2027-06-02T21:00:00Z\n"
                         "source:        TCI\n";
        dm_whois_parse(ru, strlen(ru), &w);
        assert_string_equal(w.record.registrar, "RU-CENTER-RU");
        assert_true(w.record.created_at == t("2004-06-02T00:00:00Z"));
        assert_true(w.record.expires_at == t("2027-06-02T21:00:00Z"));
        assert_int_equal(w.record.nns, 2);
        assert_string_equal(w.record.name_servers[0], "ns1.example.ru");
        assert_string_equal(w.record.registrant.organization, "Example LLC");
        assert_int_equal(w.record.dnssec, -1);

        const char *iana = "% IANA WHOIS server\n\nrefer:        whois.nic.test\n\n"
                           "domain:       TEST\n";
        dm_whois_parse(iana, strlen(iana), &w);
        assert_string_equal(w.referral, "whois.nic.test");

        const char *none = "No match for \"NOPE.TEST\".\r\n";
        dm_whois_parse(none, strlen(none), &w);
        assert_true(w.not_found);
        assert_false(w.has_data);

        const char *web = "Registrar WHOIS Server: https://www.registrar.test/whois\n";
        dm_whois_parse(web, strlen(web), &w);
        assert_string_equal(w.referral, "");
}

static void whois_cleans_hostile_text(void **state)
{
        struct dm_whois_result w;
        (void)state;

        const char text[] = "Registrar: Evil\x1b[31m Reg\x07istrar \xff\xfe Inc\x7f.\n"
                            "Registrant Name: <script>\xc3\x28</script>\n";
        dm_whois_parse(text, sizeof(text) - 1, &w);
        /* Controls gone, invalid bytes replaced, valid UTF-8 kept. */
        assert_string_equal(w.record.registrar,
                            "Evil [31m Reg istrar \xef\xbf\xbd\xef\xbf\xbd Inc .");
        assert_string_equal(w.record.registrant.name, "<script>\xef\xbf\xbd(</script>");
}

static void text_clean_keeps_utf8(void **state)
{
        char buf[16];
        (void)state;

        assert_int_equal(dm_reg_text_clean(buf, sizeof(buf), "  a\tb  ", 7), 3);
        assert_string_equal(buf, "a b");
        dm_reg_text_clean(buf, sizeof(buf),
                          "b\xc3\xbc"
                          "cher",
                          7);
        assert_string_equal(buf, "b\xc3\xbc"
                                 "cher");
        /* Overlong '/' and a surrogate are not UTF-8. */
        dm_reg_text_clean(buf, sizeof(buf), "\xc0\xaf\xed\xa0\x80", 5);
        assert_int_equal(buf[0], '\xef');
        /* C1 control (U+0085) removed; cut at a character boundary. */
        dm_reg_text_clean(buf, sizeof(buf), "x\xc2\x85y", 4);
        assert_string_equal(buf, "x y");
        char small[4];
        dm_reg_text_clean(small, sizeof(small), "a\xc3\xbc\xc3\xbc", 5);
        assert_string_equal(small, "a\xc3\xbc");
}

static void status_spelling(void **state)
{
        char buf[64];
        (void)state;

        assert_string_equal(dm_reg_status_rdap("clientTransferProhibited", 24, buf, sizeof(buf)),
                            "client transfer prohibited");
        assert_string_equal(dm_reg_status_rdap("serverHold", 10, buf, sizeof(buf)), "server hold");
        assert_string_equal(dm_reg_status_rdap("ok", 2, buf, sizeof(buf)), "active");
        assert_string_equal(dm_reg_status_rdap("pendingDelete", 13, buf, sizeof(buf)),
                            "pending delete");

        struct dm_reg_record r;
        dm_reg_record_init(&r);
        dm_reg_add_status(&r, "ACTIVE", 6);
        dm_reg_add_status(&r, "client transfer prohibited", 26);
        dm_reg_add_status(&r, "clientTransferProhibited (https://x)", 36);
        dm_reg_add_status(&r, "bad;status", 10);
        dm_reg_add_status(&r, "OK_", 3); /* "ok" however written is "active" */
        /* Too long for a status: dropped whole, never cut. */
        dm_reg_add_status(&r, "clientTransferProhibitedClientTransferProhibitedClientTransfer", 62);
        dm_reg_record_normalize(&r);
        assert_int_equal(r.nstatuses, 2);
        assert_string_equal(r.statuses[0], "active");
        assert_string_equal(r.statuses[1], "client transfer prohibited");
}

static void dates(void **state)
{
        int64_t v;
        (void)state;

        assert_int_equal(dm_reg_date_parse("2026-11-25", 10, &v), 0);
        assert_true(v == t("2026-11-25T00:00:00Z"));
        assert_int_equal(dm_reg_date_parse("25-Nov-2026", 11, &v), 0);
        assert_true(v == t("2026-11-25T00:00:00Z"));
        assert_int_equal(dm_reg_date_parse("25.11.2026", 10, &v), 0);
        assert_true(v == t("2026-11-25T00:00:00Z"));
        assert_int_equal(dm_reg_date_parse("2026/11/25 10:20:30 UTC", 23, &v), 0);
        assert_true(v == t("2026-11-25T10:20:30Z"));
        assert_int_equal(dm_reg_date_parse("2026-11-25T10:20:30.5-0130", 26, &v), 0);
        assert_true(v == t("2026-11-25T11:50:30.500Z"));
        assert_int_equal(dm_reg_date_parse("2026-02-30", 10, &v), DM_EINVAL);
        assert_int_equal(dm_reg_date_parse("2026-11-25X", 11, &v), DM_EINVAL);
        assert_int_equal(dm_reg_date_parse("soon", 4, &v), DM_EINVAL);
        assert_int_equal(dm_reg_date_parse("2026-11-25T25:00", 16, &v), DM_EINVAL);
}

static void diff_rule(void **state)
{
        struct dm_reg_record a, b;
        char err[256];
        int e;
        (void)state;

        assert_int_equal(dm_rdap_parse(rdap_doc, strlen(rdap_doc), &a, err, sizeof(err)), 0);
        /* First sight: every published field, before null. */
        json_t *d = dm_reg_diff(NULL, &a, &e);
        assert_non_null(d);
        assert_true(json_is_null(json_object_get(json_object_get(d, "registrar"), "before")));
        assert_int_equal(json_object_size(d), 8);
        json_decref(d);

        /* Same data: no change, whatever the order the servers used. */
        b = a;
        memcpy(b.name_servers[0], a.name_servers[1], sizeof(b.name_servers[0]));
        memcpy(b.name_servers[1], a.name_servers[0], sizeof(b.name_servers[0]));
        dm_reg_record_normalize(&b);
        assert_null(dm_reg_diff(&a, &b, &e));
        assert_int_equal(e, 0);

        /* Renewal: only expires_at. */
        b.expires_at += 365LL * 86400 * 1000;
        d = dm_reg_diff(&a, &b, &e);
        assert_non_null(d);
        assert_int_equal(json_object_size(d), 1);
        json_t *x = json_object_get(d, "expires_at");
        assert_string_equal(json_string_value(json_object_get(x, "before")),
                            "2027-08-13T04:00:00.000Z");
        assert_string_equal(json_string_value(json_object_get(x, "after")),
                            "2028-08-12T04:00:00.000Z");
        json_decref(d);

        /* The JSON form round-trips. */
        json_t *j = dm_reg_record_to_json(&a);
        struct dm_reg_record c;
        assert_int_equal(dm_reg_record_from_json(j, &c), 0);
        assert_null(dm_reg_diff(&a, &c, &e));
        json_decref(j);
}

static void whois_merge(void **state)
{
        struct dm_whois_result reg, rr;
        (void)state;

        dm_whois_parse(whois_registry, strlen(whois_registry), &reg);
        const char *registrar = "Registrar: Other Name\nRegistrant Name: Jane Doe\n"
                                "Registrant Country: NL\n";
        dm_whois_parse(registrar, strlen(registrar), &rr);
        dm_reg_record_merge(&reg.record, &rr.record);
        assert_string_equal(reg.record.registrar, "RESERVED-Internet Assigned Numbers Authority");
        assert_string_equal(reg.record.registrant.name, "Jane Doe");
        assert_string_equal(reg.record.registrant.country, "NL");
}

static void bootstrap(void **state)
{
        struct dm_rdap_bootstrap *bs;
        char err[256];
        (void)state;

        const char *doc = "{\"publication\":\"2026-01-01T00:00:00Z\",\"services\":["
                          "[[\"test\",\"Example\"],[\"http://127.0.0.1:1/rdap\","
                          "\"https://rdap.example/rdap/\"]],"
                          "[[\"co.test\"],[\"http://127.0.0.1:2/\"]]]}";
        assert_int_equal(dm_rdap_bootstrap_parse(doc, strlen(doc), err, sizeof(err), &bs), 0);
        assert_int_equal(dm_rdap_bootstrap_count(bs), 3);
        assert_string_equal(dm_rdap_bootstrap_publication(bs), "2026-01-01T00:00:00Z");
        assert_string_equal(dm_rdap_bootstrap_lookup(bs, "a.b.test"), "https://rdap.example/rdap/");
        assert_string_equal(dm_rdap_bootstrap_lookup(bs, "x.co.test"), "http://127.0.0.1:2/");
        assert_string_equal(dm_rdap_bootstrap_lookup(bs, "x.EXAMPLE"),
                            "https://rdap.example/rdap/");
        assert_null(dm_rdap_bootstrap_lookup(bs, "x.other"));
        assert_null(dm_rdap_bootstrap_lookup(bs, "xtest"));
        dm_rdap_bootstrap_free(bs);

        const char *one = "{\"services\":[[[\"t\"],[\"http://127.0.0.1:9/x\"]]]}";
        assert_int_equal(dm_rdap_bootstrap_parse(one, strlen(one), err, sizeof(err), &bs), 0);
        assert_string_equal(dm_rdap_bootstrap_lookup(bs, "a.t"), "http://127.0.0.1:9/x/");
        dm_rdap_bootstrap_free(bs);

        static const char *const bad[] = {
            "{}",
            "{\"services\":[]}",
            "{\"services\":[[[\"com\"],[\"ftp://x/\"]]]}",
            "{\"services\":[[[\"c m\"],[\"https://x/\"]]]}",
            "{\"services\":[[[\"com\"],[]]]}",
            "{\"services\":[[[\"com\"],[\"https://a/\"]],[[\"COM\"],[\"https://b/\"]]]}",
            "[1]",
            NULL,
        };
        for (size_t i = 0; bad[i]; i++) {
                err[0] = '\0';
                int r = dm_rdap_bootstrap_parse(bad[i], strlen(bad[i]), err, sizeof(err), &bs);
                assert_true(r == DM_EINVAL || r == DM_EPARSE);
                assert_true(err[0] != '\0');
        }
}

static void shipped_bootstrap_file(void **state)
{
        const struct dm_embed_file *f = dm_embed_find(dm_embed_rdap, "dns.json");
        struct dm_rdap_bootstrap *bs;
        char err[256];
        (void)state;

        assert_non_null(f);
        assert_int_equal(
            dm_rdap_bootstrap_parse((const char *)f->data, f->len, err, sizeof(err), &bs), 0);
        assert_true(dm_rdap_bootstrap_count(bs) > 1000);
        assert_string_equal(dm_rdap_bootstrap_lookup(bs, "www.example.com"),
                            "https://rdap.verisign.com/com/v1/");
        dm_rdap_bootstrap_free(bs);
}

static void registrable(void **state)
{
        char buf[DM_NAME_MAX + 1];
        (void)state;

        assert_int_equal(dm_reg_registrable("www.example.co.uk", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "example.co.uk");
        assert_int_equal(dm_reg_registrable("a.b.example.com", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "example.com");
        assert_int_equal(dm_reg_registrable("example.test", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "example.test");
        assert_int_equal(dm_reg_registrable("www.sub.example.test", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "example.test");
        assert_int_equal(dm_reg_registrable("co.uk", buf, sizeof(buf)), DM_EINVAL);
        assert_string_equal(dm_reg_tld("example.co.uk"), "uk");
}

static void limiter(void **state)
{
        struct dm_reg_limiter *l;
        (void)state;

        assert_int_equal(dm_reg_limiter_new(500, 8000, &l), 0);
        assert_true(dm_reg_limiter_take(l, "a", 1000) == 0);
        assert_true(dm_reg_limiter_take(l, "a", 1100) == 400);
        assert_true(dm_reg_limiter_take(l, "b", 1100) == 0); /* per server */
        assert_true(dm_reg_limiter_take(l, "a", 1500) == 0);
        /* Failures double the pause from 1 s up to the cap. */
        dm_reg_limiter_report(l, "a", 2000, false, 0);
        assert_true(dm_reg_limiter_take(l, "a", 2000) == 1000);
        dm_reg_limiter_report(l, "a", 3000, false, 0);
        assert_true(dm_reg_limiter_take(l, "a", 3000) == 2000);
        dm_reg_limiter_report(l, "a", 5000, false, 0);
        dm_reg_limiter_report(l, "a", 5000, false, 0);
        dm_reg_limiter_report(l, "a", 5000, false, 0);
        assert_true(dm_reg_limiter_take(l, "a", 5000) == 8000);
        /* Retry-After longer than the back-off wins. */
        dm_reg_limiter_report(l, "b", 5000, false, 60000);
        assert_true(dm_reg_limiter_take(l, "b", 5000) == 60000);
        /* Success resets the back-off. */
        dm_reg_limiter_report(l, "a", 20000, true, 0);
        assert_true(dm_reg_limiter_take(l, "a", 20000) == 0);
        dm_reg_limiter_report(l, "a", 20000, false, 0);
        assert_true(dm_reg_limiter_take(l, "a", 20000) == 1000);
        dm_reg_limiter_free(l);
}

static void commit_build(void **state)
{
        struct dm_reg_result res;
        struct dm_reg_commit c;
        struct dm_reg_commit_bufs owned;
        char err[256];
        (void)state;

        memset(&res, 0, sizeof(res));
        res.status = DM_REG_OK;
        res.source = DM_REG_SRC_RDAP;
        snprintf(res.registrable, sizeof(res.registrable), "example.test");
        assert_int_equal(dm_rdap_parse(rdap_doc, strlen(rdap_doc), &res.record, err, sizeof(err)),
                         0);

        /* First sight: data and every field. */
        assert_int_equal(dm_reg_commit_build(7, 1000, NULL, &res, &c, &owned), 0);
        assert_int_equal(c.domain_id, 7);
        assert_int_equal(c.status, DM_REG_OK);
        assert_non_null(c.data);
        assert_non_null(c.fields);
        assert_true(c.expires_at == res.record.expires_at);
        assert_int_equal(c.old_changed_at, 0);

        /* Same data stored: no fields; a renewal: expires_at only. */
        struct dm_reg_state st = {.domain_id = 7, .status = 1, .changed_at = 1000};
        st.data = owned.data;
        struct dm_reg_commit c2;
        struct dm_reg_commit_bufs owned2;
        assert_int_equal(dm_reg_commit_build(7, 2000, &st, &res, &c2, &owned2), 0);
        assert_null(c2.fields);
        assert_int_equal(c2.old_changed_at, 1000);
        dm_reg_commit_bufs_done(&owned2);
        res.record.expires_at += 86400000LL * 365;
        assert_int_equal(dm_reg_commit_build(7, 3000, &st, &res, &c2, &owned2), 0);
        assert_non_null(c2.fields);
        json_t *f = json_loads(c2.fields, 0, NULL);
        assert_int_equal(json_object_size(f), 1);
        assert_non_null(json_object_get(f, "expires_at"));
        json_decref(f);

        /* The event body: the entry plus the domain. */
        struct dm_reg_change ch = {.id = 42, .observed_at = 3000, .fields = owned2.fields};
        snprintf(ch.domain, sizeof(ch.domain), "example.test");
        char *ev = dm_reg_change_event_json(&ch);
        assert_non_null(ev);
        json_t *e = json_loads(ev, 0, NULL);
        assert_int_equal(json_integer_value(json_object_get(e, "id")), 42);
        assert_string_equal(json_string_value(json_object_get(e, "domain")), "example.test");
        assert_string_equal(json_string_value(json_object_get(e, "observed_at")),
                            "1970-01-01T00:00:03.000Z");
        assert_non_null(json_object_get(json_object_get(e, "fields"), "expires_at"));
        json_decref(e);
        free(ev);
        dm_reg_commit_bufs_done(&owned2);

        /* A failed lookup carries no data: the stored data stays. */
        struct dm_reg_result fail;
        memset(&fail, 0, sizeof(fail));
        fail.status = DM_REG_ERROR;
        snprintf(fail.error, sizeof(fail.error), "timed out");
        assert_int_equal(dm_reg_commit_build(7, 4000, &st, &fail, &c2, &owned2), 0);
        assert_null(c2.data);
        assert_null(c2.fields);
        assert_string_equal(c2.error, "timed out");

        /* The API object keeps the last data with the error. */
        st.status = DM_REG_ERROR;
        st.error = "timed out";
        st.source = DM_REG_SRC_RDAP;
        st.checked_at = 4000;
        snprintf(st.registrable, sizeof(st.registrable), "example.test");
        json_t *o = dm_reg_state_json("www.example.test", &st);
        assert_string_equal(json_string_value(json_object_get(o, "status")), "error");
        assert_string_equal(json_string_value(json_object_get(o, "error")), "timed out");
        assert_string_equal(json_string_value(json_object_get(o, "source")), "rdap");
        assert_string_equal(json_string_value(json_object_get(o, "registrable_domain")),
                            "example.test");
        assert_string_equal(json_string_value(json_object_get(o, "registrar")),
                            "Example Registrar, Inc.");
        json_decref(o);
        o = dm_reg_state_json("new.test", NULL);
        assert_string_equal(json_string_value(json_object_get(o, "status")), "pending");
        assert_true(json_is_null(json_object_get(o, "registrar")));
        assert_true(json_is_null(json_object_get(o, "checked_at")));
        assert_int_equal(json_array_size(json_object_get(o, "name_servers")), 0);
        json_decref(o);
        dm_reg_commit_bufs_done(&owned);
}

static void raw_clean(void **state)
{
        (void)state;
        char *s = dm_reg_raw_clean("a:\x01"
                                   "b\r\nc\xff\n\n",
                                   10);
        assert_string_equal(s, "a: b\nc\xef\xbf\xbd\n\n");
        free(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(rdap_reads_the_fields),
            cmocka_unit_test(rdap_rejects_what_is_not_a_domain),
            cmocka_unit_test(rdap_cleans_hostile_text),
            cmocka_unit_test(whois_reads_the_common_spellings),
            cmocka_unit_test(whois_reads_ripe_style_and_iana),
            cmocka_unit_test(whois_cleans_hostile_text),
            cmocka_unit_test(text_clean_keeps_utf8),
            cmocka_unit_test(status_spelling),
            cmocka_unit_test(dates),
            cmocka_unit_test(diff_rule),
            cmocka_unit_test(whois_merge),
            cmocka_unit_test(bootstrap),
            cmocka_unit_test(shipped_bootstrap_file),
            cmocka_unit_test(registrable),
            cmocka_unit_test(limiter),
            cmocka_unit_test(commit_build),
            cmocka_unit_test(raw_clean),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
