/* Scan task messages: round trip and refusal of anything malformed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "dm/error.h"
#include "dm/task.h"

static void test_round_trip(void **state)
{
        (void)state;
        struct dm_scan_task in[2] = {0};
        in[0].domain_id = 7;
        memcpy(in[0].name, "example.com", 12);
        in[0].record_types[0] = DM_RR_A;
        in[0].record_types[1] = DM_RR_HTTPS;
        in[0].nrecord_types = 2;
        memset(in[0].dns_fp, 0xab, DM_FP_LEN);
        in[0].checks = DM_CHECKS_DNS | DM_CHECKS_TLS;
        in[0].tls_ports[0] = 8443;
        in[0].tls_ports[1] = 443;
        in[0].ntls_ports = 2;
        in[1].domain_id = 8;
        memcpy(in[1].name, "_dmarc.xn--bcher-kva.example", 29);

        struct dm_buf b;
        dm_buf_init(&b, DM_TASK_MSG_MAX);
        assert_int_equal(dm_scan_tasks_encode(in, 2, &b), 0);

        struct dm_scan_task *out = NULL;
        size_t n = 0;
        char why[200];
        assert_int_equal(dm_scan_tasks_decode(b.data, b.len, why, sizeof(why), &out, &n), 0);
        assert_int_equal(n, 2);
        assert_memory_equal(&out[0], &in[0], sizeof(in[0]));
        assert_memory_equal(&out[1], &in[1], sizeof(in[1]));
        free(out);
        dm_buf_done(&b);
}

/* A task without checks comes from a scheduler that knew only DNS. */
static void test_without_checks(void **state)
{
        (void)state;
        const char *body = "{\"tasks\":[{\"id\":1,\"name\":\"a.com\",\"types\":[],\"fp\":"
                           "\"00000000000000000000000000000000\"}]}";
        struct dm_scan_task *out = NULL;
        size_t n = 0;
        char why[200];
        assert_int_equal(dm_scan_tasks_decode(body, strlen(body), why, sizeof(why), &out, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(out[0].checks, DM_CHECKS_DNS);
        assert_int_equal(out[0].ntls_ports, 0);
        free(out);
}

static void expect_refused(const char *body, const char *mention)
{
        struct dm_scan_task *out = (struct dm_scan_task *)0x1;
        size_t n = 12345;
        char why[200] = "";
        int r = dm_scan_tasks_decode(body, strlen(body), why, sizeof(why), &out, &n);
        if (r >= 0)
                fail_msg("accepted: %s", body);
        assert_ptr_equal(out, (struct dm_scan_task *)0x1); /* nothing returned */
        assert_int_equal(n, 12345);
        if (!strstr(why, mention))
                fail_msg("reason for %s is \"%s\", expected it to mention \"%s\"", body, why,
                         mention);
}

#define FP "\"00000000000000000000000000000000\""

static void test_refusals(void **state)
{
        (void)state;
        expect_refused("", "");
        expect_refused("[]", "");
        expect_refused("{\"tasks\":[]}", "1 to");
        expect_refused("{\"tasks\":[1]}", "tasks[0]");
        expect_refused(
            "{\"tasks\":[{\"id\":1,\"name\":\"a.com\",\"types\":[],\"fp\":" FP "}],\"x\":1}", "x");
        expect_refused("{\"tasks\":[{\"id\":0,\"name\":\"a.com\",\"types\":[],\"fp\":" FP "}]}",
                       "id");
        expect_refused("{\"tasks\":[{\"id\":1,\"name\":\"A.com\",\"types\":[],\"fp\":" FP "}]}",
                       "name");
        /* A NUL inside a string is refused by the JSON reader itself. */
        expect_refused("{\"tasks\":[{\"id\":1,\"name\":\"a.com\\u0000x\",\"types\":[],\"fp\":" FP
                       "}]}",
                       "u0000");
        expect_refused("{\"tasks\":[{\"id\":1,\"name\":\"a..com\",\"types\":[],\"fp\":" FP "}]}",
                       "name");
        expect_refused("{\"tasks\":[{\"id\":1,\"name\":\"a.com\",\"types\":[\"ANY\"],\"fp\":" FP
                       "}]}",
                       "type");
        expect_refused("{\"tasks\":[{\"id\":1,\"name\":\"a.com\",\"types\":[1],\"fp\":" FP "}]}",
                       "type");
        expect_refused("{\"tasks\":[{\"id\":1,\"name\":\"a.com\",\"types\":[],\"fp\":\"00\"}]}",
                       "fp");
        expect_refused("{\"tasks\":[{\"id\":1,\"name\":\"a.com\",\"types\":[],\"fp\":" FP
                       ",\"checks\":[\"smtp\"]}]}",
                       "checks");
        expect_refused("{\"tasks\":[{\"id\":1,\"name\":\"a.com\",\"types\":[],\"fp\":" FP
                       ",\"tls_ports\":[0]}]}",
                       "tls_ports");
        expect_refused("{\"tasks\":[{\"id\":1,\"name\":\"a.com\",\"types\":[],\"fp\":" FP
                       ",\"tls_ports\":[443,443]}]}",
                       "tls_ports");
        expect_refused("{\"tasks\":[{\"id\":1,\"name\":\"a.com\",\"types\":[],\"fp\":" FP
                       ",\"tls_ports\":[1,2,3,4,5,6,7,8,9]}]}",
                       "tls_ports");
        /* One bad task refuses the whole message. */
        expect_refused("{\"tasks\":[{\"id\":1,\"name\":\"a.com\",\"types\":[],\"fp\":" FP
                       "},{\"id\":2,\"name\":\"-\",\"types\":[],\"fp\":" FP "}]}",
                       "tasks[1]");
}

static void test_limits(void **state)
{
        (void)state;
        struct dm_buf b;
        dm_buf_init(&b, 4u << 20);
        assert_int_equal(dm_buf_addstr(&b, "{\"tasks\":["), 0);
        for (int i = 0; i <= DM_TASKS_PER_MSG_MAX; i++)
                assert_int_equal(dm_buf_addf(&b,
                                             "%s{\"id\":%d,\"name\":\"a.com\",\"types\":[],"
                                             "\"fp\":" FP "}",
                                             i ? "," : "", i + 1),
                                 0);
        assert_int_equal(dm_buf_addstr(&b, "]}"), 0);
        struct dm_scan_task *out = NULL;
        size_t n = 0;
        char why[200];
        assert_int_equal(dm_scan_tasks_decode(b.data, b.len, why, sizeof(why), &out, &n),
                         DM_EINVAL);
        dm_buf_clear(&b);
        for (size_t i = 0; i < DM_TASK_MSG_MAX + 1; i++)
                assert_int_equal(dm_buf_addc(&b, ' '), 0);
        assert_int_equal(dm_scan_tasks_decode(b.data, b.len, why, sizeof(why), &out, &n), DM_E2BIG);
        dm_buf_done(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_round_trip),
            cmocka_unit_test(test_without_checks),
            cmocka_unit_test(test_refusals),
            cmocka_unit_test(test_limits),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
