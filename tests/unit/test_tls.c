/* lib/tls: the certificate summariser, endpoint planning, the fingerprint, the change rules
 * and the probe against a refused and a silent port. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dm/error.h"
#include "dm/time.h"
#include "dm/tls.h"

#define DAY_MS 86400000LL

/* 2026-01-01T00:00:00Z and 2026-04-01T00:00:00Z */
#define T_BEFORE 1767225600LL
#define T_AFTER 1775001600LL

static X509 *make_cert(const char *cn)
{
        EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        X509 *x = X509_new();
        assert_non_null(pk);
        assert_non_null(x);
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 0x0123abcd);
        ASN1_TIME_set(X509_getm_notBefore(x), (time_t)T_BEFORE);
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)T_AFTER);
        X509_NAME *n = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(n, "O", MBSTRING_UTF8, (const unsigned char *)"Ex\x01mple", -1,
                                   -1, 0);
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
        X509_set_issuer_name(x, n);
        X509_set_pubkey(x, pk);
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(
            NULL, &ctx, NID_subject_alt_name,
            "DNS:example.test,DNS:www.example.test,IP:192.0.2.1,email:a@example.test");
        assert_non_null(ext);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
        EVP_PKEY_free(pk);
        return x;
}

static void test_summarize(void **state)
{
        (void)state;
        X509 *x = make_cert("example.test");
        struct dm_tls_cert c;
        assert_int_equal(dm_tls_cert_summarize(x, &c), 0);
        assert_int_equal(strlen(c.sha256), 64);
        assert_int_equal(c.not_before, T_BEFORE * 1000);
        assert_int_equal(c.not_after, T_AFTER * 1000);
        json_t *j = c.json;
        /* A control character in a name is never passed on raw (RFC 2253 escapes it). */
        assert_string_equal(json_string_value(json_object_get(j, "subject")),
                            "CN=example.test,O=Ex\\01mple");
        assert_string_equal(json_string_value(json_object_get(j, "issuer")),
                            "CN=example.test,O=Ex\\01mple");
        assert_string_equal(json_string_value(json_object_get(j, "serial")), "0123abcd");
        assert_string_equal(json_string_value(json_object_get(j, "sha256")), c.sha256);
        assert_string_equal(json_string_value(json_object_get(j, "key_type")), "EC");
        assert_int_equal(json_integer_value(json_object_get(j, "key_bits")), 256);
        assert_string_equal(json_string_value(json_object_get(j, "signature_algorithm")),
                            "ecdsa-with-SHA256");
        assert_string_equal(json_string_value(json_object_get(j, "not_before")),
                            "2026-01-01T00:00:00.000Z");
        assert_string_equal(json_string_value(json_object_get(j, "not_after")),
                            "2026-04-01T00:00:00.000Z");
        json_t *sans = json_object_get(j, "sans");
        assert_int_equal(json_array_size(sans), 3); /* the e-mail name is no host */
        assert_string_equal(json_string_value(json_array_get(sans, 0)), "example.test");
        assert_string_equal(json_string_value(json_array_get(sans, 1)), "www.example.test");
        assert_string_equal(json_string_value(json_array_get(sans, 2)), "192.0.2.1");
        assert_null(json_object_get(j, "days_left"));

        /* The same certificate read back from DER and from PEM. */
        unsigned char *der = NULL;
        int dlen = i2d_X509(x, &der);
        assert_true(dlen > 0);
        struct dm_tls_cert c2;
        assert_int_equal(dm_tls_cert_parse(der, (size_t)dlen, &c2), 0);
        assert_string_equal(c2.sha256, c.sha256);
        assert_true(json_equal(c2.json, c.json));
        dm_tls_cert_done(&c2);
        BIO *b = BIO_new(BIO_s_mem());
        PEM_write_bio_X509(b, x);
        char *pem = NULL;
        long plen = BIO_get_mem_data(b, &pem);
        assert_int_equal(dm_tls_cert_parse(pem, (size_t)plen, &c2), 0);
        assert_string_equal(c2.sha256, c.sha256);
        dm_tls_cert_done(&c2);
        BIO_free(b);

        /* Garbage, a cut certificate, nothing: refused, nothing returned. */
        memset(&c2, 0x5a, sizeof(c2));
        assert_int_equal(dm_tls_cert_parse("hello", 5, &c2), DM_EPARSE);
        assert_int_equal(dm_tls_cert_parse(der, (size_t)dlen / 2, &c2), DM_EPARSE);
        assert_int_equal(dm_tls_cert_parse(der, 0, &c2), DM_EPARSE);
        assert_int_equal(c2.not_after, 0x5a5a5a5a5a5a5a5aLL);
        OPENSSL_free(der);
        dm_tls_cert_done(&c);
        X509_free(x);
}

static void test_days_left(void **state)
{
        (void)state;
        assert_int_equal(dm_tls_days_left(10 * DAY_MS, 0), 10);
        assert_int_equal(dm_tls_days_left(10 * DAY_MS - 1, 0), 9);
        assert_int_equal(dm_tls_days_left(0, 0), 0);
        assert_int_equal(dm_tls_days_left(0, 1), -1);
        assert_int_equal(dm_tls_days_left(0, DAY_MS), -1);
        assert_int_equal(dm_tls_days_left(0, DAY_MS + 1), -2);
}

static void test_plan(void **state)
{
        (void)state;
        struct dm_tls_result r[DM_TLS_ENDPOINTS_MAX];
        size_t n = 99;
        uint16_t ports[2] = {443, 8443};
        assert_int_equal(dm_tls_plan("192.0.2.1", false, "2001:db8::1", false, ports, 2, r, &n), 0);
        assert_int_equal(n, 4);
        assert_int_equal(r[0].port, 443);
        assert_string_equal(r[0].address, "192.0.2.1");
        assert_string_equal(r[1].address, "2001:db8::1");
        assert_int_equal(r[3].port, 8443);
        assert_int_equal(r[3].status, DM_TLS_OK);

        assert_int_equal(dm_tls_plan(NULL, false, "2001:db8::1", false, NULL, 0, r, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(r[0].port, DM_TLS_PORT_DEFAULT);

        /* No address at all: one error per port, nothing to connect to. */
        assert_int_equal(dm_tls_plan(NULL, false, NULL, false, ports, 2, r, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(r[1].status, DM_TLS_ERROR);
        assert_string_equal(r[1].address, "");
        assert_non_null(strstr(r[1].error, "no A or AAAA"));

        /* A failed lookup: addresses unknown, no round. */
        n = 99;
        assert_int_equal(dm_tls_plan("192.0.2.1", false, NULL, true, ports, 2, r, &n), DM_EAGAIN);
        assert_int_equal(dm_tls_plan(NULL, true, "2001:db8::1", false, ports, 2, r, &n), DM_EAGAIN);
        assert_int_equal(n, 99);
}

/* A result with a made-up certificate. */
static void fake_result(struct dm_tls_result *r, uint16_t port, const char *addr, char fpchar,
                        int64_t not_after, bool valid)
{
        memset(r, 0, sizeof(*r));
        r->port = port;
        snprintf(r->address, sizeof(r->address), "%s", addr);
        r->status = DM_TLS_OK;
        snprintf(r->protocol, sizeof(r->protocol), "TLSv1.3");
        r->chain_valid = valid;
        if (!valid)
                snprintf(r->chain_error, sizeof(r->chain_error), "certificate has expired");
        r->has_cert = true;
        memset(r->cert.sha256, fpchar, 64);
        r->cert.sha256[64] = '\0';
        r->cert.not_after = not_after;
        char ts[DM_RFC3339_LEN];
        r->cert.json = json_pack("{s:s, s:s}", "sha256", r->cert.sha256, "not_after",
                                 dm_time_format(not_after, ts));
}

static void fake_error(struct dm_tls_result *r, uint16_t port, const char *addr, const char *why)
{
        memset(r, 0, sizeof(*r));
        r->port = port;
        snprintf(r->address, sizeof(r->address), "%s", addr);
        r->status = DM_TLS_ERROR;
        snprintf(r->error, sizeof(r->error), "%s", why);
}

static void test_fingerprint(void **state)
{
        (void)state;
        struct dm_tls_result a[2], b[2];
        uint8_t fa[DM_FP_LEN], fb[DM_FP_LEN];
        fake_result(&a[0], 443, "192.0.2.1", 'a', 1000, true);
        fake_result(&a[1], 443, "2001:db8::1", 'b', 1000, true);
        fake_result(&b[0], 443, "2001:db8::1", 'b', 1000, true);
        fake_result(&b[1], 443, "192.0.2.1", 'a', 1000, true);
        dm_tls_fingerprint(a, 2, fa);
        dm_tls_fingerprint(b, 2, fb);
        assert_memory_equal(fa, fb, DM_FP_LEN); /* order is no state */
        assert_false(dm_store_fp_is_zero(fa));
        b[0].chain_valid = false;
        dm_tls_fingerprint(b, 2, fb);
        assert_memory_not_equal(fa, fb, DM_FP_LEN);
        b[0].chain_valid = true;
        b[0].cert.sha256[3] = 'c';
        dm_tls_fingerprint(b, 2, fb);
        assert_memory_not_equal(fa, fb, DM_FP_LEN);
        for (int i = 0; i < 2; i++) {
                dm_tls_result_done(&a[i]);
                dm_tls_result_done(&b[i]);
        }
        struct dm_tls_result e1, e2;
        fake_error(&e1, 443, "192.0.2.1", "connect: Connection refused");
        fake_error(&e2, 443, "192.0.2.1", "connect timed out");
        dm_tls_fingerprint(&e1, 1, fa);
        dm_tls_fingerprint(&e2, 1, fb);
        assert_memory_not_equal(fa, fb, DM_FP_LEN);
}

/* Runs the rules on results against rows; the item is the caller's to free. */
static void build(const struct dm_tls_result *res, size_t n, const struct dm_tls_endpoint *rows,
                  size_t nrows, struct dm_tls_commit *it)
{
        struct dm_tls_scan scan = {.domain_id = 7,
                                   .name = "example.test",
                                   .observed_at = 5000,
                                   .results = res,
                                   .nresults = n};
        memset(scan.task_fp, 0x11, DM_FP_LEN);
        dm_tls_fingerprint(res, n, scan.fp);
        assert_true(dm_tls_needs_rows(&scan));
        assert_int_equal(dm_tls_build(&scan, rows, nrows, it), 0);
}

/* The endpoint the item would store, as a stored row. */
static struct dm_tls_endpoint row_of(const struct dm_tls_endpoint *e)
{
        struct dm_tls_endpoint r = *e;
        r.cert = e->cert ? strdup(e->cert) : NULL;
        return r;
}

static void test_build_rules(void **state)
{
        (void)state;
        struct dm_tls_result r[2];
        struct dm_tls_commit it;

        /* First sight: a change with before NULL; expires_at the earliest not_after. */
        fake_result(&r[0], 443, "192.0.2.1", 'a', 9000, true);
        fake_result(&r[1], 443, "2001:db8::1", 'b', 7000, true);
        build(r, 2, NULL, 0, &it);
        assert_int_equal(it.nendpoints, 2);
        assert_int_equal(it.nchanges, 2);
        assert_null(it.changes[0].before);
        assert_non_null(strstr(it.changes[0].after, "aaaa"));
        assert_string_equal(it.changes[0].domain, "example.test");
        assert_int_equal(it.expires_at, 7000);
        assert_int_equal(it.endpoints[0].changed_at, 5000);
        struct dm_tls_endpoint rows[2] = {row_of(&it.endpoints[0]), row_of(&it.endpoints[1])};
        rows[0].changed_at = rows[1].changed_at = 100;
        dm_tls_item_done(&it);

        /* The same leaves: no change, the change time kept. */
        build(r, 2, rows, 2, &it);
        assert_int_equal(it.nchanges, 0);
        assert_int_equal(it.endpoints[0].changed_at, 100);
        dm_tls_item_done(&it);

        /* The IPv4 address moved: the same endpoint, no change. */
        dm_tls_result_done(&r[0]);
        fake_result(&r[0], 443, "192.0.2.99", 'a', 9000, true);
        build(r, 2, rows, 2, &it);
        assert_int_equal(it.nchanges, 0);
        assert_string_equal(it.endpoints[0].address, "192.0.2.99");
        dm_tls_item_done(&it);

        /* A renewal on IPv6: one change, before the old leaf. */
        dm_tls_result_done(&r[1]);
        fake_result(&r[1], 443, "2001:db8::1", 'c', 20000, true);
        build(r, 2, rows, 2, &it);
        assert_int_equal(it.nchanges, 1);
        assert_string_equal(it.changes[0].address, "2001:db8::1");
        assert_non_null(strstr(it.changes[0].before, "bbbb"));
        assert_non_null(strstr(it.changes[0].after, "cccc"));
        assert_int_equal(it.expires_at, 9000);
        dm_tls_item_done(&it);

        /* The same leaf, its chain no longer valid: a change. */
        dm_tls_result_done(&r[1]);
        fake_result(&r[1], 443, "2001:db8::1", 'b', 7000, false);
        build(r, 2, rows, 2, &it);
        assert_int_equal(it.nchanges, 1);
        assert_false(it.changes[0].chain_valid);
        assert_false(it.endpoints[1].chain_valid);
        assert_string_equal(it.endpoints[1].chain_error, "certificate has expired");
        dm_tls_item_done(&it);

        /* Refused, silent: errors that keep the last certificate and write no history. */
        dm_tls_result_done(&r[0]);
        dm_tls_result_done(&r[1]);
        fake_error(&r[0], 443, "192.0.2.1", "connect: Connection refused");
        fake_error(&r[1], 443, "2001:db8::1", "handshake timed out");
        build(r, 2, rows, 2, &it);
        assert_int_equal(it.nchanges, 0);
        assert_int_equal(it.endpoints[0].status, DM_TLS_ERROR);
        assert_string_equal(it.endpoints[0].error, "connect: Connection refused");
        assert_non_null(it.endpoints[0].cert);
        assert_non_null(strstr(it.endpoints[0].cert, "aaaa"));
        assert_string_equal(it.endpoints[1].sha256, rows[1].sha256);
        assert_true(it.endpoints[1].chain_valid);
        assert_int_equal(it.endpoints[1].changed_at, 100);
        assert_int_equal(it.expires_at, 7000);
        dm_tls_item_done(&it);

        /* No address any more: the port's last certificate is kept on its error row. */
        fake_error(&r[0], 443, "", "the name has no A or AAAA record");
        build(r, 1, rows, 2, &it);
        assert_int_equal(it.nendpoints, 1);
        assert_int_equal(it.nchanges, 0);
        assert_non_null(it.endpoints[0].cert);
        dm_tls_item_done(&it);

        /* Unchanged fingerprint: nothing but the check time. */
        struct dm_tls_scan scan = {.domain_id = 7, .name = "example.test", .observed_at = 9};
        memset(scan.task_fp, 0x22, DM_FP_LEN);
        memset(scan.fp, 0x22, DM_FP_LEN);
        assert_false(dm_tls_needs_rows(&scan));
        assert_int_equal(dm_tls_build(&scan, NULL, 0, &it), 0);
        assert_int_equal(it.nendpoints, 0);
        assert_int_equal(it.checked_at, 9);
        dm_tls_item_done(&it);

        free(rows[0].cert);
        free(rows[1].cert);
}

static void test_json(void **state)
{
        (void)state;
        struct dm_tls_endpoint e = {.port = 443, .status = DM_TLS_ERROR};
        snprintf(e.address, sizeof(e.address), "192.0.2.1");
        snprintf(e.error, sizeof(e.error), "connect: Connection refused");
        json_t *j = dm_tls_endpoint_json(&e, 0);
        assert_non_null(j);
        assert_true(json_is_null(json_object_get(j, "certificate")));
        assert_true(json_is_null(json_object_get(j, "chain_valid")));
        assert_string_equal(json_string_value(json_object_get(j, "status")), "error");
        json_decref(j);

        e.cert = strdup("{\"sha256\":\"ab\",\"not_after\":\"2026-04-01T00:00:00Z\"}");
        e.chain_valid = true;
        j = dm_tls_endpoint_json(&e, T_AFTER * 1000 - 10 * DAY_MS);
        json_t *c = json_object_get(j, "certificate");
        assert_int_equal(json_integer_value(json_object_get(c, "days_left")), 10);
        assert_true(json_is_true(json_object_get(j, "chain_valid")));
        assert_true(json_is_null(json_object_get(j, "chain_error")));
        json_decref(j);

        struct dm_tls_change ch = {.id = 3,
                                   .port = 443,
                                   .chain_valid = true,
                                   .observed_at = T_AFTER * 1000 + DAY_MS,
                                   .after = e.cert};
        snprintf(ch.domain, sizeof(ch.domain), "example.test");
        j = dm_tls_change_json(&ch, true);
        assert_string_equal(json_string_value(json_object_get(j, "domain")), "example.test");
        assert_true(json_is_null(json_object_get(j, "before")));
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(j, "after"), "days_left")), -1);
        json_decref(j);
        j = dm_tls_change_json(&ch, false);
        assert_null(json_object_get(j, "domain"));
        json_decref(j);
        free(e.cert);
}

/* Steps a probe until it ends; returns how long it took (ms). */
static int64_t run_probe(struct dm_tls_probe *p, struct dm_tls_result *r)
{
        int64_t t0 = dm_mono_ms();
        for (;;) {
                struct pollfd pfd = {.fd = dm_tls_probe_fd(p), .events = dm_tls_probe_events(p)};
                poll(&pfd, 1, 20);
                if (dm_tls_probe_step(p, dm_mono_ms()) == 0)
                        break;
                assert_true(dm_mono_ms() - t0 < 10000);
        }
        dm_tls_probe_take(p, r);
        return dm_mono_ms() - t0;
}

static int listen_loopback(uint16_t *ret_port, bool listening)
{
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sin);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
        if (listening)
                assert_int_equal(listen(fd, 8), 0);
        *ret_port = ntohs(sin.sin_port);
        return fd;
}

static void test_probe_refused_and_silent(void **state)
{
        (void)state;
        char why[200];
        struct ssl_ctx_st *ctx = dm_tls_ctx_new(NULL, why, sizeof(why));
        assert_non_null(ctx);
        struct dm_tls_probe *p = NULL;
        struct dm_tls_result r;

        /* Bound, not listening: refused. */
        uint16_t port;
        int fd = listen_loopback(&port, false);
        assert_int_equal(
            dm_tls_probe_start(ctx, "example.test", "127.0.0.1", port, dm_mono_ms() + 5000, &p), 0);
        run_probe(p, &r);
        assert_int_equal(r.status, DM_TLS_ERROR);
        assert_non_null(strstr(r.error, "refused"));
        assert_false(r.has_cert);
        dm_tls_probe_free(p);
        close(fd);

        /* Listening, never answering (the kernel completes the connect): the deadline. */
        fd = listen_loopback(&port, true);
        assert_int_equal(
            dm_tls_probe_start(ctx, "example.test", "127.0.0.1", port, dm_mono_ms() + 300, &p), 0);
        int64_t took = run_probe(p, &r);
        assert_int_equal(r.status, DM_TLS_ERROR);
        assert_non_null(strstr(r.error, "timed out"));
        assert_in_range(took, 250, 3000);
        dm_tls_probe_free(p);
        close(fd);

        assert_int_equal(dm_tls_probe_start(ctx, "example.test", "not-an-address", 443, 0, &p),
                         DM_EINVAL);
        dm_tls_ctx_free(ctx);

        assert_null(dm_tls_ctx_new("/nonexistent/ca.pem", why, sizeof(why)));
        assert_non_null(strstr(why, "/nonexistent/ca.pem"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_summarize),
            cmocka_unit_test(test_days_left),
            cmocka_unit_test(test_plan),
            cmocka_unit_test(test_fingerprint),
            cmocka_unit_test(test_build_rules),
            cmocka_unit_test(test_json),
            cmocka_unit_test(test_probe_refused_and_silent),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
