/* Canonical sets, diffs, fingerprints and the stored JSON form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dm/dnswire.h"
#include "dm/error.h"
#include "dm/rrset.h"
#include "dm/rrtype.h"
#include "dnspkt.h"

static char **strv(size_t n, const char *const *src)
{
        char **v = calloc(n ? n : 1, sizeof(*v));
        assert_non_null(v);
        for (size_t i = 0; i < n; i++) {
                v[i] = strdup(src[i]);
                assert_non_null(v[i]);
        }
        return v;
}

static void test_canonicalize(void **state)
{
        static const char *const in[] = {"b", "10 mx.example.", "a", "b", "A", "a", "2 mx."};
        size_t n = 7;
        char **v = strv(n, in);
        dm_rrset_canonicalize(v, &n);
        assert_int_equal(n, 5);
        assert_string_equal(v[0], "10 mx.example.");
        assert_string_equal(v[1], "2 mx."); /* bytes, not numbers */
        assert_string_equal(v[2], "A");
        assert_string_equal(v[3], "a");
        assert_string_equal(v[4], "b");
        dm_rrset_values_free(v, n);

        size_t zero = 0;
        dm_rrset_canonicalize(NULL, &zero);
        assert_int_equal(zero, 0);
        size_t one = 1;
        v = strv(1, in);
        dm_rrset_canonicalize(v, &one);
        assert_int_equal(one, 1);
        dm_rrset_values_free(v, one);
}

static void test_diff(void **state)
{
        static const char *const before_s[] = {"a", "b", "c", "e"};
        static const char *const after_s[] = {"b", "c", "d", "f"};
        char **before = strv(4, before_s);
        char **after = strv(4, after_s);
        struct dm_rrset_delta d;

        assert_int_equal(dm_rrset_diff(before, 4, after, 4, &d), 0);
        assert_int_equal(d.nadded, 2);
        assert_ptr_equal(d.added[0], after[2]);
        assert_ptr_equal(d.added[1], after[3]);
        assert_int_equal(d.nremoved, 2);
        assert_ptr_equal(d.removed[0], before[0]);
        assert_ptr_equal(d.removed[1], before[3]);
        dm_rrset_delta_done(&d);
        assert_null(d.added);

        /* Same sets: nothing. */
        assert_int_equal(dm_rrset_diff(before, 4, before, 4, &d), 0);
        assert_int_equal(d.nadded + d.nremoved, 0);
        dm_rrset_delta_done(&d);
        /* From nothing, to nothing. */
        assert_int_equal(dm_rrset_diff(NULL, 0, after, 4, &d), 0);
        assert_int_equal(d.nadded, 4);
        assert_int_equal(d.nremoved, 0);
        dm_rrset_delta_done(&d);
        assert_int_equal(dm_rrset_diff(before, 4, NULL, 0, &d), 0);
        assert_int_equal(d.nadded, 0);
        assert_int_equal(d.nremoved, 4);
        assert_string_equal(d.removed[3], "e");
        dm_rrset_delta_done(&d);
        dm_rrset_delta_done(NULL);

        dm_rrset_values_free(before, 4);
        dm_rrset_values_free(after, 4);
}

struct obs {
        uint16_t type;
        enum dm_rr_status status;
        const char *const *values;
        size_t n;
        int64_t ttl; /* set with_ttl to make it count */
        bool with_ttl;
};

static void fp_of(const struct obs *o, size_t n, uint8_t out[DM_FP_LEN])
{
        struct dm_fp fp;
        assert_int_equal(dm_fp_init(&fp), 0);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(dm_fp_add(&fp, o[i].type, o[i].status,
                                           o[i].with_ttl ? o[i].ttl : DM_FP_NO_TTL,
                                           (char *const *)o[i].values, o[i].n),
                                 0);
        assert_int_equal(dm_fp_final(&fp, out), 0);
        static const uint8_t zero[DM_FP_LEN];
        assert_memory_not_equal(out, zero, DM_FP_LEN);
}

static void test_fingerprint(void **state)
{
        static const char *const a1[] = {"192.0.2.1", "192.0.2.2"};
        static const char *const a2[] = {"192.0.2.1", "192.0.2.3"};
        static const char *const mx[] = {"10 mx.example."};
        uint8_t f1[DM_FP_LEN], f2[DM_FP_LEN];

        struct obs base[] = {
            {DM_RR_A, DM_RRS_OK, a1, 2, 0, false},
            {DM_RR_MX, DM_RRS_OK, mx, 1, 0, false},
            {DM_RR_TXT, DM_RRS_NODATA, NULL, 0, 0, false},
            {DM_RR_AAAA, DM_RRS_ERROR, NULL, 0, 0, false},
        };
        fp_of(base, 4, f1);
        fp_of(base, 4, f2);
        assert_memory_equal(f1, f2, DM_FP_LEN);

        /* An ERROR set ignores whatever values came with it. */
        base[3].values = a1;
        base[3].n = 2;
        fp_of(base, 4, f2);
        assert_memory_equal(f1, f2, DM_FP_LEN);

        /* Any difference in values, status or types shows. */
        base[0].values = a2;
        fp_of(base, 4, f2);
        assert_memory_not_equal(f1, f2, DM_FP_LEN);
        base[0].values = a1;
        base[2].status = DM_RRS_NXDOMAIN;
        fp_of(base, 4, f2);
        assert_memory_not_equal(f1, f2, DM_FP_LEN);
        base[2].status = DM_RRS_NODATA;
        base[3].status = DM_RRS_NODATA;
        fp_of(base, 4, f2);
        assert_memory_not_equal(f1, f2, DM_FP_LEN);
        fp_of(base, 3, f2);
        assert_memory_not_equal(f1, f2, DM_FP_LEN);
        /* Framing: {"ab"} is not {"a","b"}. */
        static const char *const ab[] = {"ab"};
        static const char *const a_b[] = {"a", "b"};
        struct obs x[] = {{DM_RR_TXT, DM_RRS_OK, ab, 1, 0, false}};
        struct obs y[] = {{DM_RR_TXT, DM_RRS_OK, a_b, 2, 0, false}};
        fp_of(x, 1, f1);
        fp_of(y, 1, f2);
        assert_memory_not_equal(f1, f2, DM_FP_LEN);
}

static void test_fingerprint_misuse(void **state)
{
        static const char *const unsorted[] = {"b", "a"};
        static const char *const dup[] = {"a", "a"};
        uint8_t out[DM_FP_LEN] = {0};
        struct dm_fp fp;

        /* Types must ascend. */
        assert_int_equal(dm_fp_init(&fp), 0);
        assert_int_equal(dm_fp_add(&fp, DM_RR_MX, DM_RRS_NODATA, DM_FP_NO_TTL, NULL, 0), 0);
        assert_int_equal(dm_fp_add(&fp, DM_RR_A, DM_RRS_NODATA, DM_FP_NO_TTL, NULL, 0), DM_EINVAL);
        assert_int_equal(dm_fp_add(&fp, DM_RR_TXT, DM_RRS_NODATA, DM_FP_NO_TTL, NULL, 0),
                         DM_EINVAL);
        assert_int_equal(dm_fp_final(&fp, out), DM_EINVAL);
        assert_null(fp.ctx);

        assert_int_equal(dm_fp_init(&fp), 0);
        assert_int_equal(dm_fp_add(&fp, DM_RR_A, DM_RRS_NODATA, DM_FP_NO_TTL, NULL, 0), 0);
        assert_int_equal(dm_fp_add(&fp, DM_RR_A, DM_RRS_NODATA, DM_FP_NO_TTL, NULL, 0), DM_EINVAL);
        dm_fp_done(&fp);

        /* Values must be canonical. */
        assert_int_equal(dm_fp_init(&fp), 0);
        assert_int_equal(
            dm_fp_add(&fp, DM_RR_A, DM_RRS_OK, DM_FP_NO_TTL, (char *const *)unsorted, 2),
            DM_EINVAL);
        dm_fp_done(&fp);
        assert_int_equal(dm_fp_init(&fp), 0);
        assert_int_equal(dm_fp_add(&fp, DM_RR_A, DM_RRS_OK, DM_FP_NO_TTL, (char *const *)dup, 2),
                         DM_EINVAL);
        dm_fp_done(&fp);
        dm_fp_done(NULL);

        /* Type 0 and 65535 are valid positions in the order. */
        assert_int_equal(dm_fp_init(&fp), 0);
        assert_int_equal(dm_fp_add(&fp, 0, DM_RRS_NODATA, DM_FP_NO_TTL, NULL, 0), 0);
        assert_int_equal(dm_fp_add(&fp, 65535, DM_RRS_NODATA, DM_FP_NO_TTL, NULL, 0), 0);
        assert_int_equal(dm_fp_final(&fp, out), 0);
}

/* A TTL counts only when the caller says it belongs to the state, and then every value of it
 * shows, 0 included; an ERROR set never carries one. */
static void test_fingerprint_ttl(void **state)
{
        static const char *const a[] = {"192.0.2.1"};
        uint8_t none[DM_FP_LEN], t300[DM_FP_LEN], t60[DM_FP_LEN], t0[DM_FP_LEN], x[DM_FP_LEN];

        struct obs o = {DM_RR_A, DM_RRS_OK, a, 1, 0, false};
        fp_of(&o, 1, none);
        o.ttl = 12345; /* ignored without with_ttl */
        fp_of(&o, 1, x);
        assert_memory_equal(none, x, DM_FP_LEN);
        o.with_ttl = true;
        o.ttl = 300;
        fp_of(&o, 1, t300);
        o.ttl = 60;
        fp_of(&o, 1, t60);
        o.ttl = 0;
        fp_of(&o, 1, t0);
        assert_memory_not_equal(none, t300, DM_FP_LEN);
        assert_memory_not_equal(t300, t60, DM_FP_LEN);
        assert_memory_not_equal(t0, none, DM_FP_LEN);
        o.ttl = 300;
        fp_of(&o, 1, x);
        assert_memory_equal(t300, x, DM_FP_LEN);
        o.ttl = UINT32_MAX;
        fp_of(&o, 1, x);

        struct obs e = {DM_RR_A, DM_RRS_ERROR, NULL, 0, 300, true};
        fp_of(&e, 1, x);
        e.with_ttl = false;
        fp_of(&e, 1, t0);
        assert_memory_equal(x, t0, DM_FP_LEN);

        struct dm_fp fp;
        assert_int_equal(dm_fp_init(&fp), 0);
        assert_int_equal(dm_fp_add(&fp, DM_RR_A, DM_RRS_OK, -2, (char *const *)a, 1), DM_EINVAL);
        dm_fp_done(&fp);
        assert_int_equal(dm_fp_init(&fp), 0);
        assert_int_equal(
            dm_fp_add(&fp, DM_RR_A, DM_RRS_OK, (int64_t)UINT32_MAX + 1, (char *const *)a, 1),
            DM_EINVAL);
        assert_int_equal(dm_fp_final(&fp, x), DM_EINVAL);
}

/* Two replies for example.com A with the same records in another order and other TTLs. */
static void reply(struct pk *p, const char *const *addrs, const uint32_t *ttls, size_t n)
{
        pk_init(p);
        pk_header(p, 1, 0x8180, 1, (uint16_t)n, 0, 0);
        pk_name(p, "example.com");
        pk_u16(p, DM_RR_A);
        pk_u16(p, 1);
        for (size_t i = 0; i < n; i++) {
                pk_ptr(p, 12);
                size_t at = pk_rr_begin(p, DM_RR_A, 1, ttls[i]);
                pk_bytes(p, addrs[i], 4);
                pk_rr_end(p, at);
        }
}

static void fp_of_reply(const struct pk *p, uint8_t out[DM_FP_LEN], uint32_t *ret_ttl)
{
        struct dm_dns_msg m;
        struct dm_dns_answer a;
        struct dm_fp fp;
        assert_int_equal(dm_dns_msg_parse(p->b, p->n, &m), 0);
        assert_int_equal(dm_dns_msg_answer(&m, DM_RR_A, 0, &a), 0);
        assert_int_equal(dm_fp_init(&fp), 0);
        assert_int_equal(dm_fp_add(&fp, DM_RR_A, a.status, DM_FP_NO_TTL, a.values, a.nvalues), 0);
        assert_int_equal(dm_fp_final(&fp, out), 0);
        *ret_ttl = a.ttl;
        dm_dns_answer_done(&a);
}

static void test_fingerprint_order_and_ttl(void **state)
{
        static const char *const order1[] = {"\1\1\1\1", "\2\2\2\2", "\3\3\3\3"};
        static const char *const order2[] = {"\3\3\3\3", "\1\1\1\1", "\2\2\2\2", "\1\1\1\1"};
        static const uint32_t ttl1[] = {300, 300, 300};
        static const uint32_t ttl2[] = {17, 299, 3600, 5};
        struct pk p;
        uint8_t f1[DM_FP_LEN], f2[DM_FP_LEN];
        uint32_t t1, t2;

        reply(&p, order1, ttl1, 3);
        fp_of_reply(&p, f1, &t1);
        reply(&p, order2, ttl2, 4);
        fp_of_reply(&p, f2, &t2);
        assert_int_equal(t1, 300);
        assert_int_equal(t2, 5);
        assert_memory_equal(f1, f2, DM_FP_LEN);
}

static void test_json(void **state)
{
        static const char *const src[] = {"192.0.2.1", "\"quoted\" \\ back",
                                          "tab\there\x01\x1f\x7f", "<b>&amp;</b>", ""};
        char **v = strv(5, src);
        char *json = NULL;

        assert_int_equal(dm_rrset_values_to_json(v, 5, &json), 0);
        assert_string_equal(json, "[\"192.0.2.1\",\"\\\"quoted\\\" \\\\ back\","
                                  "\"tab\\u0009here\\u0001\\u001f\\u007f\",\"<b>&amp;</b>\",\"\"]");
        char **back = NULL;
        size_t n = 0;
        assert_int_equal(dm_rrset_values_from_json(json, &back, &n), 0);
        assert_int_equal(n, 5);
        for (size_t i = 0; i < 5; i++)
                assert_string_equal(back[i], src[i]);
        dm_rrset_values_free(back, n);
        free(json);

        assert_int_equal(dm_rrset_values_to_json(NULL, 0, &json), 0);
        assert_string_equal(json, "[]");
        assert_int_equal(dm_rrset_values_from_json(json, &back, &n), 0);
        assert_int_equal(n, 0);
        assert_null(back);
        free(json);

        /* Presentation format is ASCII: anything else cannot round-trip and is refused. */
        static const char *const high[] = {"caf\xc3\xa9"};
        char **hv = strv(1, high);
        json = NULL;
        assert_int_equal(dm_rrset_values_to_json(hv, 1, &json), DM_EINVAL);
        assert_null(json);
        dm_rrset_values_free(hv, 1);

        static const char *const bad[] = {
            "", "{}", "[1]", "[\"a\",null]", "[\"a\\u0000b\"]", "not json", "[\"a\"", "\"a\""};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                back = (char **)&n;
                assert_int_equal(dm_rrset_values_from_json(bad[i], &back, &n), DM_EPARSE);
                assert_ptr_equal(back, (char **)&n); /* untouched */
        }
        dm_rrset_values_free(v, 5);
        dm_rrset_values_free(NULL, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_canonicalize),
            cmocka_unit_test(test_diff),
            cmocka_unit_test(test_fingerprint),
            cmocka_unit_test(test_fingerprint_misuse),
            cmocka_unit_test(test_fingerprint_order_and_ttl),
            cmocka_unit_test(test_fingerprint_ttl),
            cmocka_unit_test(test_json),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
