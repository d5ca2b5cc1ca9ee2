/* Change detection (lib/dns/change.c), one test per rule of docs/change-detection.md. Each
 * test drives a domain through scans against a small in-memory stand-in for the store that
 * keeps what dm_store_dns_commit keeps: the fingerprint, the current rows (with the class of
 * the last real answer through failures) and the history. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dm/change.h"
#include "dm/dnswire.h"
#include "dm/error.h"
#include "dm/rrset.h"
#include "dm/rrtype.h"
#include "dnspkt.h"

#define ROWS_MAX 8
#define HISTORY_MAX 32

/* One domain and what a store would hold for it. */
struct world {
        int64_t id;
        const char *name;
        int64_t now; /* the next scan's time */
        uint8_t fp[DM_FP_LEN];
        struct dm_rrset_row rows[ROWS_MAX];
        size_t nrows;
        struct dm_change history[HISTORY_MAX];
        size_t nhistory;
        size_t writes;    /* scans that wrote rows */
        size_t row_reads; /* scans that needed the stored rows */
};

static void world_init(struct world *w)
{
        memset(w, 0, sizeof(*w));
        w->id = 7;
        w->name = "example.com";
        w->now = 1700000000000;
}

static char *dup_or_null(const char *s)
{
        if (!s)
                return NULL;
        char *d = strdup(s);
        assert_non_null(d);
        return d;
}

static void rows_clear(struct world *w)
{
        for (size_t i = 0; i < w->nrows; i++) {
                free(w->rows[i].values);
                free(w->rows[i].error);
        }
        w->nrows = 0;
}

static void world_done(struct world *w)
{
        rows_clear(w);
        for (size_t i = 0; i < w->nhistory; i++) {
                free(w->history[i].before);
                free(w->history[i].after);
                free(w->history[i].added);
                free(w->history[i].removed);
        }
        w->nhistory = 0;
}

static const struct dm_rrset_row *stored_row(const struct world *w, uint16_t type)
{
        for (size_t i = 0; i < w->nrows; i++) {
                if (w->rows[i].type == type)
                        return &w->rows[i];
        }
        return NULL;
}

/* What dm_store_dns_commit does with an item whose compare-and-swap succeeds. */
static void world_apply(struct world *w, const struct dm_dns_commit *it)
{
        if (memcmp(it->old_fp, it->new_fp, DM_FP_LEN) == 0)
                return;
        assert_memory_equal(it->old_fp, w->fp, DM_FP_LEN); /* the compare-and-swap */
        struct dm_rrset_row next[ROWS_MAX];
        assert_true(it->nrows <= ROWS_MAX);
        for (size_t i = 0; i < it->nrows; i++) {
                const struct dm_rrset_row *r = &it->rows[i];
                const struct dm_rrset_row *old = stored_row(w, r->type);
                next[i] = *r;
                next[i].values = dup_or_null(r->values);
                next[i].error = dup_or_null(r->error);
                if (r->status == DM_RRS_ERROR)
                        next[i].answer_status = old ? old->answer_status : DM_RRS_OK;
                else
                        next[i].answer_status = r->status;
        }
        rows_clear(w);
        memcpy(w->rows, next, it->nrows * sizeof(next[0]));
        w->nrows = it->nrows;
        for (size_t i = 0; i < it->nchanges; i++) {
                assert_true(w->nhistory < HISTORY_MAX);
                struct dm_change *c = &w->history[w->nhistory++];
                *c = it->changes[i];
                c->before = dup_or_null(it->changes[i].before);
                c->after = dup_or_null(it->changes[i].after);
                c->added = dup_or_null(it->changes[i].added);
                c->removed = dup_or_null(it->changes[i].removed);
        }
        memcpy(w->fp, it->new_fp, DM_FP_LEN);
        w->writes++;
}

/* One scan of the domain with these outcomes (ascending type order): the fingerprint,
 * the stored rows when the rules need them, the item, then the write. The item is the
 * caller's to inspect and release. */
static struct dm_dns_commit world_scan(struct world *w, const struct dm_change_rr *rr, size_t n)
{
        struct dm_change_scan scan = {
            .domain_id = w->id,
            .name = w->name,
            .observed_at = w->now,
            .rr = rr,
            .nrr = n,
        };
        struct dm_dns_commit it;
        memcpy(scan.task_fp, w->fp, DM_FP_LEN);
        assert_int_equal(dm_change_fingerprint(rr, n, scan.fp), 0);
        bool rows = dm_change_needs_rows(&scan);
        if (rows)
                w->row_reads++;
        assert_int_equal(dm_change_build(&scan, rows ? w->rows : NULL, rows ? w->nrows : 0, &it),
                         0);
        world_apply(w, &it);
        w->now += 600000;
        return it;
}

/* Like world_scan, for the tests that only look at the world afterwards. */
static void world_scan_done(struct world *w, const struct dm_change_rr *rr, size_t n)
{
        struct dm_dns_commit it = world_scan(w, rr, n);
        dm_change_item_done(&it);
}

/* An answer as the resolver gives it. */
static void answer(struct dm_change_rr *rr, uint16_t type, enum dm_rr_status status, uint32_t ttl,
                   bool aa, const char *const *values, size_t n)
{
        struct dm_dns_answer a = {
            .status = status,
            .ttl = ttl,
            .authoritative = aa,
            .values = (char **)values,
            .nvalues = n,
        };
        rr->type = type;
        dm_change_rr_set(rr, &a);
}

static void failed(struct dm_change_rr *rr, uint16_t type, int err)
{
        rr->type = type;
        dm_change_rr_fail(rr, err);
}

static const char *const A1[] = {"192.0.2.1", "192.0.2.2"};
static const char *const A1_ROTATED[] = {"192.0.2.2", "192.0.2.1", "192.0.2.2"};
static const char *const A2[] = {"192.0.2.1", "192.0.2.3"};
static const char *const MX1[] = {"10 mail.example.com."};
static const char *const MX2[] = {"20 mail.example.com."};

/* ---- the summary table ---- */

/* Same records, different order (and a duplicate): no history entry, and no write. */
static void test_order_is_not_a_change(void **state)
{
        (void)state;
        struct world w;
        struct dm_change_rr rr = {0};
        world_init(&w);
        answer(&rr, DM_RR_A, DM_RRS_OK, 300, false, A1, 2);
        world_scan_done(&w, &rr, 1);
        assert_int_equal(w.nhistory, 1);

        answer(&rr, DM_RR_A, DM_RRS_OK, 300, false, A1_ROTATED, 3);
        assert_int_equal(rr.nvalues, 2);
        assert_string_equal(rr.values[0], "192.0.2.1");
        struct dm_dns_commit it = world_scan(&w, &rr, 1);
        assert_memory_equal(it.old_fp, it.new_fp, DM_FP_LEN);
        assert_int_equal(it.nrows, 0);
        assert_int_equal(it.nchanges, 0);
        dm_change_item_done(&it);
        assert_int_equal(w.nhistory, 1);
        assert_int_equal(w.writes, 1);
        dm_change_rr_done(&rr);
        world_done(&w);
}

/* An MX answer for example.com whose exchange is spelled `exchange`. */
static void mx_reply(struct pk *p, const char *exchange)
{
        pk_init(p);
        pk_header(p, 1, 0x8580, 1, 1, 0, 0);
        pk_name(p, "example.com");
        pk_u16(p, DM_RR_MX);
        pk_u16(p, 1);
        pk_ptr(p, 12);
        size_t at = pk_rr_begin(p, DM_RR_MX, 1, 300);
        pk_u16(p, 10);
        pk_name(p, exchange);
        pk_rr_end(p, at);
}

static void rr_from_reply(struct dm_change_rr *rr, const struct pk *p, uint16_t type)
{
        struct dm_dns_msg m;
        struct dm_dns_answer a;
        assert_int_equal(dm_dns_msg_parse(p->b, p->n, &m), 0);
        assert_int_equal(dm_dns_msg_answer(&m, type, 0, &a), 0);
        rr->type = type;
        dm_change_rr_set(rr, &a);
        dm_dns_answer_done(&a);
}

/* Same records, different case in names: the canonical form lower-cases names, so the
 * state is the same. */
static void test_name_case_is_not_a_change(void **state)
{
        (void)state;
        struct world w;
        struct dm_change_rr rr = {0};
        struct pk p;
        world_init(&w);
        mx_reply(&p, "mail.example.com");
        rr_from_reply(&rr, &p, DM_RR_MX);
        assert_int_equal(rr.status, DM_RRS_OK);
        assert_true(rr.authoritative);
        assert_string_equal(rr.values[0], "10 mail.example.com.");
        world_scan_done(&w, &rr, 1);

        mx_reply(&p, "MAIL.Example.COM");
        rr_from_reply(&rr, &p, DM_RR_MX);
        assert_string_equal(rr.values[0], "10 mail.example.com.");
        world_scan_done(&w, &rr, 1);
        assert_int_equal(w.nhistory, 1);
        assert_int_equal(w.writes, 1);
        dm_change_rr_done(&rr);
        world_done(&w);
}

/* Same records, different TTL from a resolver (a cache counting down): no history entry
 * and no write at all, so an unchanged domain stays free. */
static void test_resolver_ttl_countdown_costs_nothing(void **state)
{
        (void)state;
        struct world w;
        struct dm_change_rr rr = {0};
        world_init(&w);
        answer(&rr, DM_RR_A, DM_RRS_OK, 300, false, A1, 2);
        world_scan_done(&w, &rr, 1);
        for (uint32_t ttl = 299; ttl > 290; ttl--) {
                answer(&rr, DM_RR_A, DM_RRS_OK, ttl, false, A1, 2);
                world_scan_done(&w, &rr, 1);
        }
        assert_int_equal(w.writes, 1);
        assert_int_equal(w.nhistory, 1);
        assert_int_equal(w.rows[0].ttl, 300); /* the TTL of the last write */
        dm_change_rr_done(&rr);
        world_done(&w);
}

/* Same records, different TTL from the zone's own server (AA): the current row takes the
 * new TTL at once, still without a history entry; the same TTL again writes nothing. */
static void test_authoritative_ttl_change_rewrites_row_without_history(void **state)
{
        (void)state;
        struct world w;
        struct dm_change_rr rr = {0};
        world_init(&w);
        answer(&rr, DM_RR_A, DM_RRS_OK, 3600, true, A1, 2);
        world_scan_done(&w, &rr, 1);
        int64_t first = w.rows[0].changed_at;

        answer(&rr, DM_RR_A, DM_RRS_OK, 60, true, A1, 2);
        struct dm_dns_commit it = world_scan(&w, &rr, 1);
        assert_memory_not_equal(it.old_fp, it.new_fp, DM_FP_LEN);
        assert_int_equal(it.nrows, 1);
        assert_int_equal(it.rows[0].ttl, 60);
        assert_int_equal(it.nchanges, 0);
        dm_change_item_done(&it);
        assert_int_equal(w.rows[0].ttl, 60);
        assert_int_equal(w.rows[0].changed_at, first); /* the set did not change */
        assert_int_equal(w.nhistory, 1);
        assert_int_equal(w.writes, 2);

        answer(&rr, DM_RR_A, DM_RRS_OK, 60, true, A1, 2);
        world_scan_done(&w, &rr, 1);
        assert_int_equal(w.writes, 2);
        dm_change_rr_done(&rr);
        world_done(&w);
}

/* A record added, removed or changed: one history entry per record type with before,
 * after, added and removed (set differences: a changed MX preference is one removed and
 * one added value), observed at the scan's time. */
static void test_changed_sets_give_one_entry_per_type(void **state)
{
        (void)state;
        struct world w;
        struct dm_change_rr rr[3] = {{0}};
        static const char *const txt[] = {"\"v=spf1 -all\""};
        world_init(&w);
        answer(&rr[0], DM_RR_A, DM_RRS_OK, 300, false, A1, 2);
        answer(&rr[1], DM_RR_MX, DM_RRS_OK, 300, false, MX1, 1);
        answer(&rr[2], DM_RR_TXT, DM_RRS_OK, 300, false, txt, 1);
        world_scan_done(&w, rr, 3);
        assert_int_equal(w.nhistory, 3);

        int64_t at = w.now;
        answer(&rr[0], DM_RR_A, DM_RRS_OK, 300, false, A2, 2);
        answer(&rr[1], DM_RR_MX, DM_RRS_OK, 300, false, MX2, 1);
        struct dm_dns_commit it = world_scan(&w, rr, 3);
        assert_int_equal(it.nchanges, 2);
        assert_int_equal(it.status, DM_CHECK_OK);
        assert_null(it.status_error);
        const struct dm_change *a = &it.changes[0], *mx = &it.changes[1];
        assert_int_equal(a->type, DM_RR_A);
        assert_int_equal(a->domain_id, w.id);
        assert_string_equal(a->domain, "example.com");
        assert_int_equal(a->status, DM_RRS_OK);
        assert_int_equal(a->observed_at, at);
        assert_string_equal(a->before, "[\"192.0.2.1\",\"192.0.2.2\"]");
        assert_string_equal(a->after, "[\"192.0.2.1\",\"192.0.2.3\"]");
        assert_string_equal(a->added, "[\"192.0.2.3\"]");
        assert_string_equal(a->removed, "[\"192.0.2.2\"]");
        assert_int_equal(mx->type, DM_RR_MX);
        assert_string_equal(mx->added, "[\"20 mail.example.com.\"]");
        assert_string_equal(mx->removed, "[\"10 mail.example.com.\"]");
        /* The unchanged TXT row keeps its change time; the changed ones take the scan's. */
        assert_int_equal(it.rows[0].changed_at, at);
        assert_int_equal(it.rows[2].changed_at, at - 600000);
        dm_change_item_done(&it);
        assert_int_equal(w.nhistory, 5);
        for (size_t i = 0; i < 3; i++)
                dm_change_rr_done(&rr[i]);
        world_done(&w);
}

/* Records -> NXDOMAIN or NODATA: a change (after [], removed the old values, status
 * nxdomain or nodata), and the domain is fine: these are answers. */
static void test_records_to_nxdomain_or_nodata_is_a_change(void **state)
{
        (void)state;
        static const enum dm_rr_status gone[] = {DM_RRS_NXDOMAIN, DM_RRS_NODATA};
        for (size_t k = 0; k < 2; k++) {
                struct world w;
                struct dm_change_rr rr = {0};
                world_init(&w);
                answer(&rr, DM_RR_A, DM_RRS_OK, 300, false, A1, 2);
                world_scan_done(&w, &rr, 1);
                answer(&rr, DM_RR_A, gone[k], 0, false, NULL, 0);
                struct dm_dns_commit it = world_scan(&w, &rr, 1);
                assert_int_equal(it.status, DM_CHECK_OK);
                assert_int_equal(it.nchanges, 1);
                assert_int_equal(it.changes[0].status, gone[k]);
                assert_string_equal(it.changes[0].before, "[\"192.0.2.1\",\"192.0.2.2\"]");
                assert_string_equal(it.changes[0].after, "[]");
                assert_string_equal(it.changes[0].added, "[]");
                assert_string_equal(it.changes[0].removed, "[\"192.0.2.1\",\"192.0.2.2\"]");
                assert_int_equal(it.rows[0].status, gone[k]);
                assert_string_equal(it.rows[0].values, "[]");
                dm_change_item_done(&it);
                dm_change_rr_done(&rr);
                world_done(&w);
        }
}

/* NXDOMAIN -> NXDOMAIN on later scans: nothing. */
static void test_nxdomain_again_is_nothing(void **state)
{
        (void)state;
        struct world w;
        struct dm_change_rr rr = {0};
        world_init(&w);
        for (int i = 0; i < 4; i++) {
                answer(&rr, DM_RR_A, DM_RRS_NXDOMAIN, 0, false, NULL, 0);
                world_scan_done(&w, &rr, 1);
        }
        assert_int_equal(w.nhistory, 1); /* the first observation */
        assert_int_equal(w.writes, 1);
        dm_change_rr_done(&rr);
        world_done(&w);
}

/* Timeout, SERVFAIL, REFUSED, network error: no history entry, the stored values, TTL and
 * change time stay, the row is marked error with its reason, and the domain's status is
 * error with a summary naming every failed type. */
static void test_failed_lookup_keeps_values_and_writes_no_history(void **state)
{
        (void)state;
        static const int errs[] = {DM_ETIMEDOUT, DM_ESERVFAIL, DM_EREFUSED, DM_ECONNREFUSED};
        for (size_t k = 0; k < sizeof(errs) / sizeof(errs[0]); k++) {
                struct world w;
                struct dm_change_rr rr[2] = {{0}};
                world_init(&w);
                answer(&rr[0], DM_RR_A, DM_RRS_OK, 300, false, A1, 2);
                answer(&rr[1], DM_RR_MX, DM_RRS_OK, 300, false, MX1, 1);
                world_scan_done(&w, rr, 2);
                int64_t changed = w.rows[0].changed_at;

                failed(&rr[0], DM_RR_A, errs[k]);
                failed(&rr[1], DM_RR_MX, DM_ESERVFAIL);
                struct dm_dns_commit it = world_scan(&w, rr, 2);
                assert_int_equal(it.nchanges, 0);
                assert_int_equal(it.status, DM_CHECK_ERROR);
                assert_non_null(it.status_error);
                char want[256];
                /* Types that failed for one reason share it. */
                if (errs[k] == DM_ESERVFAIL)
                        snprintf(want, sizeof(want), "A, MX: %s", dm_strerror(DM_ESERVFAIL));
                else
                        snprintf(want, sizeof(want), "A: %s; MX: %s", dm_strerror(errs[k]),
                                 dm_strerror(DM_ESERVFAIL));
                assert_string_equal(it.status_error, want);
                assert_int_equal(it.rows[0].status, DM_RRS_ERROR);
                assert_string_equal(it.rows[0].values, "[\"192.0.2.1\",\"192.0.2.2\"]");
                assert_string_equal(it.rows[0].error, dm_strerror(errs[k]));
                assert_int_equal(it.rows[0].ttl, 300);
                assert_int_equal(it.rows[0].changed_at, changed);
                assert_string_equal(it.rows[1].values, "[\"10 mail.example.com.\"]");
                dm_change_item_done(&it);
                assert_int_equal(w.nhistory, 2);

                /* Failing again the same way writes nothing more. */
                struct dm_dns_commit again = world_scan(&w, rr, 2);
                assert_memory_equal(again.old_fp, again.new_fp, DM_FP_LEN);
                assert_int_equal(again.status, DM_CHECK_ERROR);
                dm_change_item_done(&again);
                for (size_t i = 0; i < 2; i++)
                        dm_change_rr_done(&rr[i]);
                world_done(&w);
        }
}

/* The lookup works again after errors with the same records: no history entry; the row
 * is ok again with its old change time, and the domain's status is ok. */
static void test_recovery_with_same_records_is_no_change(void **state)
{
        (void)state;
        struct world w;
        struct dm_change_rr rr = {0};
        world_init(&w);
        answer(&rr, DM_RR_A, DM_RRS_OK, 300, false, A1, 2);
        world_scan_done(&w, &rr, 1);
        int64_t changed = w.rows[0].changed_at;
        for (int i = 0; i < 3; i++) {
                failed(&rr, DM_RR_A, DM_ETIMEDOUT);
                world_scan_done(&w, &rr, 1);
        }
        answer(&rr, DM_RR_A, DM_RRS_OK, 300, false, A1, 2);
        struct dm_dns_commit it = world_scan(&w, &rr, 1);
        assert_int_equal(it.status, DM_CHECK_OK);
        assert_int_equal(it.nchanges, 0);
        assert_int_equal(it.rows[0].status, DM_RRS_OK);
        assert_int_equal(it.rows[0].changed_at, changed);
        assert_null(it.rows[0].error);
        dm_change_item_done(&it);
        assert_int_equal(w.nhistory, 1);
        dm_change_rr_done(&rr);
        world_done(&w);
}

/* The first answer of each type: a history entry with before NULL and everything added,
 * empty answers included (one entry per type of a new domain). */
static void test_first_answer_is_a_first_observation(void **state)
{
        (void)state;
        struct world w;
        struct dm_change_rr rr[3] = {{0}};
        world_init(&w);
        answer(&rr[0], DM_RR_A, DM_RRS_OK, 300, false, A1, 2);
        answer(&rr[1], DM_RR_CNAME, DM_RRS_NODATA, 0, false, NULL, 0);
        answer(&rr[2], DM_RR_MX, DM_RRS_NXDOMAIN, 0, false, NULL, 0);
        struct dm_dns_commit it = world_scan(&w, rr, 3);
        assert_int_equal(w.row_reads, 0); /* nothing stored: nothing to read */
        assert_int_equal(it.nchanges, 3);
        for (size_t i = 0; i < 3; i++) {
                assert_null(it.changes[i].before);
                assert_string_equal(it.changes[i].added, it.changes[i].after);
                assert_string_equal(it.changes[i].removed, "[]");
                assert_int_equal(it.changes[i].status, rr[i].status);
        }
        assert_string_equal(it.changes[0].after, "[\"192.0.2.1\",\"192.0.2.2\"]");
        assert_string_equal(it.changes[1].after, "[]");
        dm_change_item_done(&it);
        for (size_t i = 0; i < 3; i++)
                dm_change_rr_done(&rr[i]);
        world_done(&w);
}

/* The same scan result delivered twice: the item carries the fingerprint its task started
 * from and the one observed, so the store's compare-and-swap writes it once; built again
 * from the same task it is the same item. */
static void test_redelivered_scan_is_written_once(void **state)
{
        (void)state;
        struct dm_change_rr rr = {0};
        struct dm_dns_commit one, two;
        answer(&rr, DM_RR_A, DM_RRS_OK, 300, false, A1, 2);
        struct dm_change_scan scan = {.domain_id = 1, .name = "x.example", .rr = &rr, .nrr = 1};
        memset(scan.task_fp, 0x42, DM_FP_LEN);
        assert_int_equal(dm_change_fingerprint(&rr, 1, scan.fp), 0);
        struct dm_rrset_row stored = {.type = DM_RR_A,
                                      .status = DM_RRS_OK,
                                      .values = (char *)"[\"192.0.2.9\"]",
                                      .changed_at = 5};
        assert_int_equal(dm_change_build(&scan, &stored, 1, &one), 0);
        assert_int_equal(dm_change_build(&scan, &stored, 1, &two), 0);
        assert_memory_equal(one.old_fp, scan.task_fp, DM_FP_LEN);
        assert_memory_equal(one.new_fp, scan.fp, DM_FP_LEN);
        assert_memory_equal(one.old_fp, two.old_fp, DM_FP_LEN);
        assert_memory_equal(one.new_fp, two.new_fp, DM_FP_LEN);
        assert_int_equal(one.nchanges, 1);
        assert_int_equal(two.nchanges, 1);
        assert_string_equal(one.changes[0].after, two.changes[0].after);
        dm_change_item_done(&one);
        dm_change_item_done(&two);
        dm_change_item_done(NULL);
        dm_change_rr_done(&rr);
}

/* ---- rules stated in the text ---- */

/* A failure keeps the class of the last real answer: NODATA, errors, then NXDOMAIN is one
 * change although the set is empty before and after; NODATA <-> NXDOMAIN directly too. */
static void test_answer_class_change_across_errors(void **state)
{
        (void)state;
        struct world w;
        struct dm_change_rr rr = {0};
        world_init(&w);
        answer(&rr, DM_RR_MX, DM_RRS_NODATA, 0, false, NULL, 0);
        world_scan_done(&w, &rr, 1);
        failed(&rr, DM_RR_MX, DM_ETIMEDOUT);
        world_scan_done(&w, &rr, 1);
        failed(&rr, DM_RR_MX, DM_ESERVFAIL);
        world_scan_done(&w, &rr, 1);
        assert_int_equal(w.nhistory, 1);
        answer(&rr, DM_RR_MX, DM_RRS_NXDOMAIN, 0, false, NULL, 0);
        world_scan_done(&w, &rr, 1);
        assert_int_equal(w.nhistory, 2);
        assert_int_equal(w.history[1].status, DM_RRS_NXDOMAIN);
        assert_string_equal(w.history[1].before, "[]");
        assert_string_equal(w.history[1].after, "[]");
        answer(&rr, DM_RR_MX, DM_RRS_NODATA, 0, false, NULL, 0);
        world_scan_done(&w, &rr, 1);
        assert_int_equal(w.nhistory, 3);
        assert_int_equal(w.history[2].status, DM_RRS_NODATA);
        dm_change_rr_done(&rr);
        world_done(&w);
}

/* If the first lookups of a type fail, nothing is written for it but an error row that
 * never held an answer; its first real answer, even after many failed scans, is a first
 * observation (before NULL), not a change from an empty set. */
static void test_first_answer_after_errors_is_a_first_observation(void **state)
{
        (void)state;
        struct world w;
        struct dm_change_rr rr[2] = {{0}};
        world_init(&w);
        for (int i = 0; i < 3; i++) {
                failed(&rr[0], DM_RR_A, DM_ESERVFAIL);
                failed(&rr[1], DM_RR_MX, DM_ETIMEDOUT);
                struct dm_dns_commit it = world_scan(&w, rr, 2);
                assert_int_equal(it.nchanges, 0);
                assert_int_equal(it.status, DM_CHECK_ERROR);
                if (i == 0) {
                        /* Nothing stored yet, but a failed type asks for the rows. */
                        assert_int_equal(it.nrows, 2);
                        assert_int_equal(it.rows[0].changed_at, 0);
                        assert_string_equal(it.rows[0].values, "[]");
                }
                dm_change_item_done(&it);
        }
        assert_int_equal(w.nhistory, 0);
        assert_int_equal(w.rows[0].changed_at, 0);

        /* A answers first, MX still fails; then MX answers too. */
        answer(&rr[0], DM_RR_A, DM_RRS_OK, 300, false, A1, 2);
        world_scan_done(&w, rr, 2);
        answer(&rr[1], DM_RR_MX, DM_RRS_NODATA, 0, false, NULL, 0);
        world_scan_done(&w, rr, 2);
        assert_int_equal(w.nhistory, 2);
        for (size_t i = 0; i < 2; i++) {
                assert_null(w.history[i].before);
                assert_string_equal(w.history[i].removed, "[]");
        }
        assert_int_equal(w.history[0].type, DM_RR_A);
        assert_string_equal(w.history[0].added, "[\"192.0.2.1\",\"192.0.2.2\"]");
        assert_int_equal(w.history[1].type, DM_RR_MX);
        assert_string_equal(w.history[1].after, "[]");
        for (size_t i = 0; i < 2; i++)
                dm_change_rr_done(&rr[i]);
        world_done(&w);
}

/* A stored row that cannot be read back starts the history again rather than failing the
 * scan. */
static void test_unreadable_stored_row_is_a_first_observation(void **state)
{
        (void)state;
        struct dm_change_rr rr = {0};
        struct dm_dns_commit it;
        answer(&rr, DM_RR_A, DM_RRS_OK, 300, false, A1, 2);
        struct dm_change_scan scan = {.domain_id = 1, .name = "x.example", .rr = &rr, .nrr = 1};
        memset(scan.task_fp, 0x42, DM_FP_LEN);
        assert_int_equal(dm_change_fingerprint(&rr, 1, scan.fp), 0);
        struct dm_rrset_row stored = {
            .type = DM_RR_A, .status = DM_RRS_OK, .values = (char *)"{broken", .changed_at = 5};
        assert_int_equal(dm_change_build(&scan, &stored, 1, &it), 0);
        assert_int_equal(it.nchanges, 1);
        assert_null(it.changes[0].before);
        dm_change_item_done(&it);
        dm_change_rr_done(&rr);
}

/* Unchanged domains cost no write: an equal fingerprint needs no stored rows and gives an
 * item that only moves the check time and status. */
static void test_unchanged_domain_reads_and_writes_nothing(void **state)
{
        (void)state;
        struct world w;
        struct dm_change_rr rr[2] = {{0}};
        world_init(&w);
        answer(&rr[0], DM_RR_A, DM_RRS_OK, 300, true, A1, 2);
        answer(&rr[1], DM_RR_MX, DM_RRS_OK, 300, true, MX1, 1);
        world_scan_done(&w, rr, 2);
        for (int i = 0; i < 5; i++) {
                struct dm_dns_commit it = world_scan(&w, rr, 2);
                assert_int_equal(it.nrows, 0);
                assert_int_equal(it.nchanges, 0);
                assert_int_equal(it.checked_at, w.now - 600000);
                assert_int_equal(it.status, DM_CHECK_OK);
                dm_change_item_done(&it);
        }
        assert_int_equal(w.row_reads, 0);
        assert_int_equal(w.writes, 1);
        for (size_t i = 0; i < 2; i++)
                dm_change_rr_done(&rr[i]);
        world_done(&w);
}

/* The fingerprint: status and canonical values of every type; the TTL only when the
 * answer is authoritative; a failed type only as "failed". */
static void test_fingerprint_rules(void **state)
{
        (void)state;
        struct dm_change_rr rr = {0};
        uint8_t f1[DM_FP_LEN], f2[DM_FP_LEN];

        answer(&rr, DM_RR_A, DM_RRS_OK, 300, false, A1, 2);
        assert_int_equal(dm_change_fingerprint(&rr, 1, f1), 0);
        answer(&rr, DM_RR_A, DM_RRS_OK, 17, false, A1, 2);
        assert_int_equal(dm_change_fingerprint(&rr, 1, f2), 0);
        assert_memory_equal(f1, f2, DM_FP_LEN);
        answer(&rr, DM_RR_A, DM_RRS_OK, 300, true, A1, 2);
        assert_int_equal(dm_change_fingerprint(&rr, 1, f2), 0);
        assert_memory_not_equal(f1, f2, DM_FP_LEN);
        answer(&rr, DM_RR_A, DM_RRS_OK, 17, true, A1, 2);
        assert_int_equal(dm_change_fingerprint(&rr, 1, f1), 0);
        assert_memory_not_equal(f1, f2, DM_FP_LEN);

        failed(&rr, DM_RR_A, DM_ETIMEDOUT);
        assert_int_equal(dm_change_fingerprint(&rr, 1, f1), 0);
        failed(&rr, DM_RR_A, DM_ESERVFAIL);
        assert_int_equal(dm_change_fingerprint(&rr, 1, f2), 0);
        assert_memory_equal(f1, f2, DM_FP_LEN);
        answer(&rr, DM_RR_A, DM_RRS_NODATA, 0, false, NULL, 0);
        assert_int_equal(dm_change_fingerprint(&rr, 1, f2), 0);
        assert_memory_not_equal(f1, f2, DM_FP_LEN); /* a failure is not an empty set */

        /* Types in ascending order only. */
        struct dm_change_rr two[2] = {{0}};
        answer(&two[0], DM_RR_MX, DM_RRS_OK, 300, false, MX1, 1);
        answer(&two[1], DM_RR_A, DM_RRS_OK, 300, false, A1, 2);
        assert_int_equal(dm_change_fingerprint(two, 2, f1), DM_EINVAL);
        for (size_t i = 0; i < 2; i++)
                dm_change_rr_done(&two[i]);
        dm_change_rr_done(&rr);
}

/* Bounded sets: a set whose stored form would pass DM_RRSET_JSON_MAX, or one that is not
 * ASCII presentation text, is a failed lookup (kept values, no history), not a change. An
 * ERROR answer without a reason gets one. */
static void test_unrecordable_answers_are_errors(void **state)
{
        (void)state;
        struct dm_change_rr rr = {0};
        /* Each value: 98 characters, two of them quotes the JSON escapes, in quotes, and a
         * comma: 103 bytes of the stored form, plus the brackets, less one comma. */
        size_t fit = (DM_RRSET_JSON_MAX - 1) / 103, n = fit + 1;
        char **big = calloc(n, sizeof(*big));
        assert_non_null(big);
        for (size_t i = 0; i < n; i++) {
                big[i] = malloc(100);
                assert_non_null(big[i]);
                snprintf(big[i], 100, "\"%06zu%090d\"", i, 0);
        }
        answer(&rr, DM_RR_TXT, DM_RRS_OK, 300, false, (const char *const *)big, n);
        assert_int_equal(rr.status, DM_RRS_ERROR);
        assert_int_equal(rr.err, DM_E2BIG);
        assert_null(rr.values);
        /* Just under the cap it is an answer. */
        answer(&rr, DM_RR_TXT, DM_RRS_OK, 300, false, (const char *const *)big, fit);
        assert_int_equal(rr.status, DM_RRS_OK);
        char *json = NULL;
        assert_int_equal(dm_rrset_values_to_json(rr.values, rr.nvalues, &json), 0);
        assert_true(strlen(json) <= DM_RRSET_JSON_MAX);
        free(json);
        for (size_t i = 0; i < n; i++)
                free(big[i]);
        free(big);

        static const char *const high[] = {"caf\xc3\xa9"};
        answer(&rr, DM_RR_TXT, DM_RRS_OK, 300, false, high, 1);
        assert_int_equal(rr.status, DM_RRS_ERROR);
        assert_int_equal(rr.err, DM_EPARSE);

        struct dm_dns_answer a = {.status = DM_RRS_ERROR};
        dm_change_rr_set(&rr, &a);
        assert_int_equal(rr.err, DM_EDNS);
        dm_change_rr_fail(&rr, 0);
        assert_int_equal(rr.err, DM_EDNS);

        /* In the scan it behaves as any failure: the stored set stays. */
        struct world w;
        static const char *const txt[] = {"\"one\""};
        world_init(&w);
        answer(&rr, DM_RR_TXT, DM_RRS_OK, 300, false, txt, 1);
        world_scan_done(&w, &rr, 1);
        answer(&rr, DM_RR_TXT, DM_RRS_OK, 300, false, high, 1);
        world_scan_done(&w, &rr, 1);
        assert_int_equal(w.nhistory, 1);
        assert_int_equal(w.rows[0].status, DM_RRS_ERROR);
        assert_string_equal(w.rows[0].values, "[\"\\\"one\\\"\"]");
        dm_change_rr_done(&rr);
        dm_change_rr_done(NULL);
        world_done(&w);
}

/* The stored rows are read only when the state moved, and for a domain with nothing
 * stored only when a type failed. */
static void test_rows_are_read_only_when_needed(void **state)
{
        (void)state;
        struct dm_change_rr rr = {0};
        struct dm_change_scan scan = {.rr = &rr, .nrr = 1};
        answer(&rr, DM_RR_A, DM_RRS_OK, 300, false, A1, 2);
        assert_int_equal(dm_change_fingerprint(&rr, 1, scan.fp), 0);
        assert_false(dm_change_needs_rows(&scan)); /* nothing stored, nothing failed */
        memcpy(scan.task_fp, scan.fp, DM_FP_LEN);
        assert_false(dm_change_needs_rows(&scan)); /* unchanged */
        scan.task_fp[0] ^= 1;
        assert_true(dm_change_needs_rows(&scan)); /* moved */
        memset(scan.task_fp, 0, DM_FP_LEN);
        failed(&rr, DM_RR_A, DM_ETIMEDOUT);
        assert_int_equal(dm_change_fingerprint(&rr, 1, scan.fp), 0);
        assert_true(dm_change_needs_rows(&scan)); /* a failure keeps what may be stored */
        dm_change_rr_done(&rr);
}

/* The domain's summary is cut to its column, never overrun. */
static void test_status_summary_is_bounded(void **state)
{
        (void)state;
        struct dm_change_rr rr[DM_RRTYPE_MAX_PER_DOMAIN] = {{0}};
        for (size_t i = 0; i < DM_RRTYPE_MAX_PER_DOMAIN; i++)
                failed(&rr[i], (uint16_t)(1000 + i), DM_ETIMEDOUT);
        struct dm_change_scan scan = {.rr = rr, .nrr = DM_RRTYPE_MAX_PER_DOMAIN};
        struct dm_dns_commit it;
        assert_int_equal(dm_change_build(&scan, NULL, 0, &it), 0);
        assert_int_equal(it.status, DM_CHECK_ERROR);
        assert_true(strlen(it.status_error) < DM_CHANGE_STATUS_ERROR_MAX);
        /* One reason for all: the list of types is cut, the reason shows whole. */
        assert_memory_equal(it.status_error, "TYPE1000, TYPE1001, ", 20);
        assert_non_null(strstr(it.status_error, " more: "));
        assert_non_null(strstr(it.status_error, dm_strerror(DM_ETIMEDOUT)));
        dm_change_item_done(&it);
        for (size_t i = 0; i < DM_RRTYPE_MAX_PER_DOMAIN; i++)
                dm_change_rr_done(&rr[i]);
}

/* The status summary groups the types by reason, in the order each reason first shows. */
static void test_status_summary_groups_reasons(void **state)
{
        (void)state;
        struct world w;
        struct dm_change_rr rr[4] = {{0}};
        world_init(&w);
        failed(&rr[0], DM_RR_A, DM_ETIMEDOUT);
        answer(&rr[1], DM_RR_NS, DM_RRS_OK, 300, false, MX1, 1);
        failed(&rr[2], DM_RR_MX, DM_ESERVFAIL);
        failed(&rr[3], DM_RR_AAAA, DM_ETIMEDOUT);
        struct dm_dns_commit it = world_scan(&w, rr, 4);
        char want[256];
        snprintf(want, sizeof(want), "A, AAAA: %s; MX: %s", dm_strerror(DM_ETIMEDOUT),
                 dm_strerror(DM_ESERVFAIL));
        assert_string_equal(it.status_error, want);
        dm_change_item_done(&it);

        /* The server that failed is named, and two servers failing alike are two reasons. */
        failed(&rr[0], DM_RR_A, DM_ETIMEDOUT);
        snprintf(rr[0].server, sizeof(rr[0].server), "192.0.2.53:53");
        failed(&rr[2], DM_RR_MX, DM_ETIMEDOUT);
        snprintf(rr[2].server, sizeof(rr[2].server), "192.0.2.53:53");
        failed(&rr[3], DM_RR_AAAA, DM_ETIMEDOUT);
        snprintf(rr[3].server, sizeof(rr[3].server), "[2001:db8::53]:53");
        it = world_scan(&w, rr, 4);
        snprintf(want, sizeof(want),
                 "A, MX: %s from 192.0.2.53:53; AAAA: %s from [2001:db8::53]:53",
                 dm_strerror(DM_ETIMEDOUT), dm_strerror(DM_ETIMEDOUT));
        assert_string_equal(it.status_error, want);
        dm_change_item_done(&it);
        /* A new outcome clears the server. */
        failed(&rr[0], DM_RR_A, DM_ETIMEDOUT);
        assert_string_equal(rr[0].server, "");
        for (size_t i = 0; i < 4; i++)
                dm_change_rr_done(&rr[i]);
        world_done(&w);
}

/* The move the scan makes, computed as the committer does: before the write. */
static enum dm_change_move world_move(struct world *w, const struct dm_change_rr *rr, size_t n)
{
        struct dm_change_scan scan = {.domain_id = w->id, .name = w->name, .rr = rr, .nrr = n};
        memcpy(scan.task_fp, w->fp, DM_FP_LEN);
        assert_int_equal(dm_change_fingerprint(rr, n, scan.fp), 0);
        bool rows = dm_change_needs_rows(&scan);
        return dm_change_status_move(&scan, rows ? w->rows : NULL, rows ? w->nrows : 0);
}

/* Entering and leaving `error` are seen once each; staying in either is no move, and a
 * first scan that answers is no recovery. */
static void test_status_move(void **state)
{
        (void)state;
        struct world w;
        struct dm_change_rr rr[2] = {{0}};
        world_init(&w);
        answer(&rr[0], DM_RR_A, DM_RRS_OK, 300, false, A1, 2);
        answer(&rr[1], DM_RR_MX, DM_RRS_OK, 300, false, MX1, 1);
        assert_int_equal(world_move(&w, rr, 2), DM_CHANGE_MOVE_NONE);
        world_scan_done(&w, rr, 2);
        assert_int_equal(world_move(&w, rr, 2), DM_CHANGE_MOVE_NONE);

        failed(&rr[1], DM_RR_MX, DM_ETIMEDOUT);
        assert_int_equal(world_move(&w, rr, 2), DM_CHANGE_MOVE_TO_ERROR);
        world_scan_done(&w, rr, 2);
        assert_int_equal(world_move(&w, rr, 2), DM_CHANGE_MOVE_NONE);
        /* Another type fails too: still in error. */
        failed(&rr[0], DM_RR_A, DM_ETIMEDOUT);
        assert_int_equal(world_move(&w, rr, 2), DM_CHANGE_MOVE_NONE);
        world_scan_done(&w, rr, 2);

        answer(&rr[0], DM_RR_A, DM_RRS_OK, 300, false, A2, 2);
        answer(&rr[1], DM_RR_MX, DM_RRS_OK, 300, false, MX1, 1);
        assert_int_equal(world_move(&w, rr, 2), DM_CHANGE_MOVE_FROM_ERROR);
        world_scan_done(&w, rr, 2);
        assert_int_equal(world_move(&w, rr, 2), DM_CHANGE_MOVE_NONE);
        for (size_t i = 0; i < 2; i++)
                dm_change_rr_done(&rr[i]);
        world_done(&w);

        /* A new domain whose first scan fails enters error. */
        world_init(&w);
        failed(&rr[0], DM_RR_A, DM_ETIMEDOUT);
        assert_int_equal(world_move(&w, rr, 1), DM_CHANGE_MOVE_TO_ERROR);
        dm_change_rr_done(&rr[0]);
        world_done(&w);
}

static void test_soa_serial_only(void **state)
{
        (void)state;
        const char *a = "ns1.example.com. hostmaster.example.com. 1 3600 900 604800 300";
        const char *b = "ns1.example.com. hostmaster.example.com. 2 3600 900 604800 300";
        const char *c = "ns2.example.com. hostmaster.example.com. 2 3600 900 604800 300";
        const char *d = "ns1.example.com. hostmaster.example.com. 2 3600 900 604800 60";
        assert_true(dm_change_soa_serial_only(a, b));
        assert_false(dm_change_soa_serial_only(a, a)); /* no change at all */
        assert_false(dm_change_soa_serial_only(a, c)); /* mname too */
        assert_false(dm_change_soa_serial_only(a, d)); /* minimum too */
        assert_false(dm_change_soa_serial_only(a, "ns1. host. 2 3600 900 604800"));
        assert_false(dm_change_soa_serial_only(a, "ns1.example.com. hostmaster.example.com. 2 "
                                                  "3600 900 604800 300 extra"));
        assert_false(dm_change_soa_serial_only(NULL, b));

        /* Through the change rules: the entry is kept, marked serial_only; an SOA change in
         * anything else is not marked. */
        struct world w;
        struct dm_change_rr rr = {0};
        world_init(&w);
        answer(&rr, DM_RR_SOA, DM_RRS_OK, 300, false, &a, 1);
        world_scan_done(&w, &rr, 1);
        answer(&rr, DM_RR_SOA, DM_RRS_OK, 300, false, &b, 1);
        struct dm_dns_commit it = world_scan(&w, &rr, 1);
        assert_int_equal(it.nchanges, 1);
        assert_true(it.changes[0].serial_only);
        dm_change_item_done(&it);
        answer(&rr, DM_RR_SOA, DM_RRS_OK, 300, false, &c, 1);
        it = world_scan(&w, &rr, 1);
        assert_int_equal(it.nchanges, 1);
        assert_false(it.changes[0].serial_only);
        dm_change_item_done(&it);
        /* A first observation is never serial-only. */
        assert_false(w.history[0].serial_only);
        dm_change_rr_done(&rr);
        world_done(&w);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_order_is_not_a_change),
            cmocka_unit_test(test_name_case_is_not_a_change),
            cmocka_unit_test(test_resolver_ttl_countdown_costs_nothing),
            cmocka_unit_test(test_authoritative_ttl_change_rewrites_row_without_history),
            cmocka_unit_test(test_changed_sets_give_one_entry_per_type),
            cmocka_unit_test(test_records_to_nxdomain_or_nodata_is_a_change),
            cmocka_unit_test(test_nxdomain_again_is_nothing),
            cmocka_unit_test(test_failed_lookup_keeps_values_and_writes_no_history),
            cmocka_unit_test(test_recovery_with_same_records_is_no_change),
            cmocka_unit_test(test_first_answer_is_a_first_observation),
            cmocka_unit_test(test_redelivered_scan_is_written_once),
            cmocka_unit_test(test_answer_class_change_across_errors),
            cmocka_unit_test(test_first_answer_after_errors_is_a_first_observation),
            cmocka_unit_test(test_unreadable_stored_row_is_a_first_observation),
            cmocka_unit_test(test_unchanged_domain_reads_and_writes_nothing),
            cmocka_unit_test(test_fingerprint_rules),
            cmocka_unit_test(test_unrecordable_answers_are_errors),
            cmocka_unit_test(test_rows_are_read_only_when_needed),
            cmocka_unit_test(test_status_summary_is_bounded),
            cmocka_unit_test(test_status_summary_groups_reasons),
            cmocka_unit_test(test_status_move),
            cmocka_unit_test(test_soa_serial_only),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
