/* The store contract for alerts: rules and deliveries, run against every backend built (a
 * fresh SQLite file per test, and the PostgreSQL database of DM_TEST_PG_URL when set, emptied
 * before each test), as tests/unit/test_store.c does for the rest of the store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dm/error.h"
#include "dm/store.h"
#include "dm/time.h"
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OWNER_A 11
#define OWNER_B 22
#define LEASE_MS 60000

struct backend {
        const char *label;
        const char *url; /* NULL: a fresh SQLite file per test */
};

static struct backend backends[2];
static size_t nbackends;
static const struct backend *cur_backend;

struct fixture {
        char dir[64];
        char url[128];
        struct dm_store *st;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        char err[256] = "";
        assert_non_null(f);
        if (cur_backend->url) {
                snprintf(f->url, sizeof(f->url), "%s", cur_backend->url);
        } else {
                snprintf(f->dir, sizeof(f->dir), "/tmp/dm-test-alert-XXXXXX");
                assert_non_null(mkdtemp(f->dir));
                snprintf(f->url, sizeof(f->url), "sqlite://%s/store.db", f->dir);
        }
        assert_int_equal(dm_store_open(f->url, err, sizeof(err), &f->st), 0);
        assert_int_equal(dm_store_migrate(f->st, NULL), 0);
        if (cur_backend->url)
                assert_int_equal(dm_store_wipe(f->st), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char path[128];
        dm_store_free(f->st);
        if (f->dir[0]) {
                static const char *const files[] = {"store.db", "store.db-wal", "store.db-shm"};
                for (size_t i = 0; i < 3; i++) {
                        snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
                        unlink(path);
                }
                rmdir(f->dir);
        }
        free(f);
        return 0;
}

static struct dm_alert_rule make_rule(const char *name, enum dm_alert_channel ch,
                                      const char *target)
{
        struct dm_alert_rule r;
        memset(&r, 0, sizeof(r));
        snprintf(r.name, sizeof(r.name), "%s", name);
        r.channel = ch;
        snprintf(r.target, sizeof(r.target), "%s", target);
        r.spec = (char *)"{\"events\":[\"change.dns\"]}";
        return r;
}

static int64_t add_rule(struct dm_store *st, const char *name)
{
        struct dm_alert_rule r = make_rule(name, DM_ALERT_WEBHOOK, "https://h.example/");
        snprintf(r.secret, sizeof(r.secret), "whsec_abc");
        assert_int_equal(dm_store_alert_rule_insert(st, &r), 0);
        assert_true(r.id > 0);
        return r.id;
}

static struct dm_alert_delivery make_delivery(int64_t rule_id, const char *key, const char *domain,
                                              int64_t due)
{
        struct dm_alert_delivery d;
        memset(&d, 0, sizeof(d));
        d.rule_id = rule_id;
        snprintf(d.event_key, sizeof(d.event_key), "%s", key);
        snprintf(d.routing_key, sizeof(d.routing_key), "change.dns.A");
        snprintf(d.domain, sizeof(d.domain), "%s", domain);
        d.body = (char *)"{\"id\":1}";
        d.next_attempt_at = due;
        return d;
}

static void test_rules(void **state)
{
        struct fixture *f = *state;
        struct dm_alert_rule r = make_rule("ops", DM_ALERT_EMAIL, "ops@example.com"), got;

        assert_int_equal(dm_store_alert_rule_insert(f->st, &r), 0);
        assert_true(r.id > 0 && r.created_at > 0 && r.updated_at == r.created_at);
        assert_int_equal(dm_store_alert_rule_get(f->st, r.id, &got), 0);
        assert_string_equal(got.name, "ops");
        assert_int_equal(got.channel, DM_ALERT_EMAIL);
        assert_string_equal(got.target, "ops@example.com");
        assert_string_equal(got.secret, "");
        assert_string_equal(got.spec, r.spec);
        dm_alert_rule_done(&got);

        r.channel = DM_ALERT_SMS;
        snprintf(r.target, sizeof(r.target), "+14155550100");
        r.spec = (char *)"{\"events\":[\"check.failing\"]}";
        assert_int_equal(dm_store_alert_rule_update(f->st, &r), 0);
        assert_int_equal(dm_store_alert_rule_get(f->st, r.id, &got), 0);
        assert_int_equal(got.channel, DM_ALERT_SMS);
        assert_string_equal(got.spec, "{\"events\":[\"check.failing\"]}");
        assert_true(got.updated_at >= got.created_at);
        dm_alert_rule_done(&got);

        int64_t second = add_rule(f->st, "second");
        int64_t third = add_rule(f->st, "third");
        struct dm_alert_rule *rules = NULL;
        size_t n = 0;
        assert_int_equal(dm_store_alert_rule_list(f->st, 0, 2, &rules, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(rules[0].id, r.id);
        assert_int_equal(rules[1].id, second);
        assert_string_equal(rules[1].secret, "whsec_abc");
        dm_alert_rules_free(rules, n);
        assert_int_equal(dm_store_alert_rule_list(f->st, second, 10, &rules, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(rules[0].id, third);
        dm_alert_rules_free(rules, n);

        assert_int_equal(dm_store_alert_rule_delete(f->st, second), 0);
        assert_int_equal(dm_store_alert_rule_delete(f->st, second), DM_ENOENT);
        assert_int_equal(dm_store_alert_rule_get(f->st, second, &got), DM_ENOENT);
        struct dm_alert_rule gone = make_rule("x", DM_ALERT_EMAIL, "a@example.com");
        gone.id = second;
        assert_int_equal(dm_store_alert_rule_update(f->st, &gone), DM_ENOENT);
        /* Bad arguments never reach a backend. */
        struct dm_alert_rule bad = make_rule("", DM_ALERT_EMAIL, "a@example.com");
        assert_int_equal(dm_store_alert_rule_insert(f->st, &bad), DM_EINVAL);
        bad = make_rule("x", DM_ALERT_CHANNEL_NONE, "a@example.com");
        assert_int_equal(dm_store_alert_rule_insert(f->st, &bad), DM_EINVAL);
}

static void test_delivery_unique(void **state)
{
        struct fixture *f = *state;
        int64_t rule = add_rule(f->st, "r"), other = add_rule(f->st, "o");
        int64_t now = dm_now_ms();
        struct dm_alert_delivery d = make_delivery(rule, "change.dns.A:1", "a.example", now);

        assert_int_equal(dm_store_alert_delivery_add(f->st, &d, now, 0), 0);
        assert_true(d.id > 0);
        assert_int_equal(d.status, DM_ALERT_PENDING);
        /* The same event again: nothing new. */
        struct dm_alert_delivery again = make_delivery(rule, "change.dns.A:1", "a.example", now);
        assert_int_equal(dm_store_alert_delivery_add(f->st, &again, now, 0), DM_EEXIST);
        /* The same event for another rule is another delivery. */
        struct dm_alert_delivery o = make_delivery(other, "change.dns.A:1", "a.example", now);
        assert_int_equal(dm_store_alert_delivery_add(f->st, &o, now, 0), 0);

        struct dm_alert_delivery *ds = NULL;
        size_t n = 0;
        assert_int_equal(dm_store_alert_delivery_list(f->st, rule, 0, 10, &ds, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(ds[0].event_key, "change.dns.A:1");
        assert_string_equal(ds[0].domain, "a.example");
        assert_string_equal(ds[0].body, "{\"id\":1}");
        assert_int_equal(ds[0].attempts, 0);
        dm_alert_deliveries_free(ds, n);

        /* A deleted rule takes its deliveries along. */
        assert_int_equal(dm_store_alert_rule_delete(f->st, rule), 0);
        assert_int_equal(dm_store_alert_delivery_list(f->st, rule, 0, 10, &ds, &n), 0);
        assert_int_equal(n, 0);
        dm_alert_deliveries_free(ds, n);
}

static void test_delivery_group_and_quiet(void **state)
{
        struct fixture *f = *state;
        int64_t rule = add_rule(f->st, "r");
        int64_t t0 = 1000000;

        /* The first event opens a group due at t0 + 10 s; later ones join it. */
        struct dm_alert_delivery a = make_delivery(rule, "k:1", "a.example", t0 + 10000);
        assert_int_equal(dm_store_alert_delivery_add(f->st, &a, t0, 0), 0);
        assert_int_equal(a.next_attempt_at, t0 + 10000);
        struct dm_alert_delivery b = make_delivery(rule, "k:2", "b.example", t0 + 15000);
        assert_int_equal(dm_store_alert_delivery_add(f->st, &b, t0 + 5000, 0), 0);
        assert_int_equal(b.next_attempt_at, t0 + 10000);

        /* Sent: the group is closed; the next event opens a new one. */
        struct dm_alert_delivery *ds = NULL;
        size_t n = 0;
        assert_int_equal(
            dm_store_alert_delivery_claim(f->st, OWNER_A, LEASE_MS, 10, t0 + 10000, &ds, &n), 0);
        assert_int_equal(n, 2);
        for (size_t i = 0; i < n; i++) {
                ds[i].status = DM_ALERT_DELIVERED;
                ds[i].attempts = 1;
                ds[i].delivered_at = t0 + 10000;
                assert_int_equal(dm_store_alert_delivery_finish(f->st, OWNER_A, &ds[i]), 0);
        }
        dm_alert_deliveries_free(ds, n);
        struct dm_alert_delivery c = make_delivery(rule, "k:3", "c.example", t0 + 30000);
        assert_int_equal(dm_store_alert_delivery_add(f->st, &c, t0 + 20000, 0), 0);
        assert_int_equal(c.next_attempt_at, t0 + 30000);

        /* A quiet period holds a domain's next alert until it has passed since the last. */
        struct dm_alert_delivery q =
            make_delivery(rule, "k:4", "a.example", t0 + 25000); /* would join c's group */
        assert_int_equal(dm_store_alert_delivery_add(f->st, &q, t0 + 20000, 3600000), 0);
        assert_int_equal(q.next_attempt_at, t0 + 10000 + 3600000);
        struct dm_alert_delivery r2 = make_delivery(rule, "k:5", "d.example", t0 + 25000);
        assert_int_equal(dm_store_alert_delivery_add(f->st, &r2, t0 + 20000, 3600000), 0);
        assert_int_equal(r2.next_attempt_at, t0 + 30000); /* no earlier alert for d.example */
        /* Due now (a test message): not held for the open group. */
        struct dm_alert_delivery now = make_delivery(rule, "k:6", "", t0 + 20000);
        assert_int_equal(dm_store_alert_delivery_add(f->st, &now, t0 + 20000, 0), 0);
        assert_int_equal(now.next_attempt_at, t0 + 20000);
}

static void test_delivery_claim(void **state)
{
        struct fixture *f = *state;
        int64_t r1 = add_rule(f->st, "r1"), r2 = add_rule(f->st, "r2");
        int64_t now = 5000000;
        char key[32];

        for (int i = 0; i < 4; i++) {
                snprintf(key, sizeof(key), "k:%d", i);
                struct dm_alert_delivery d =
                    make_delivery(i % 2 ? r2 : r1, key, "a.example", now - 1);
                assert_int_equal(dm_store_alert_delivery_add(f->st, &d, now - 1000, 0), 0);
        }
        struct dm_alert_delivery later = make_delivery(r1, "k:later", "a.example", now + 60000);
        assert_int_equal(dm_store_alert_delivery_add(f->st, &later, now + 50000, 0), 0);

        struct dm_alert_delivery *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        assert_int_equal(dm_store_alert_delivery_claim(f->st, OWNER_A, LEASE_MS, 3, now, &a, &na),
                         0);
        assert_int_equal(na, 3);
        /* Ordered by rule, then id. */
        assert_int_equal(a[0].rule_id, r1);
        assert_int_equal(a[1].rule_id, r1);
        assert_true(a[0].id < a[1].id);
        /* Another sender gets what is left, never what A holds; nothing not yet due. */
        assert_int_equal(dm_store_alert_delivery_claim(f->st, OWNER_B, LEASE_MS, 10, now, &b, &nb),
                         0);
        assert_int_equal(nb, 1);
        for (size_t i = 0; i < na; i++)
                assert_true(a[i].id != b[0].id);
        b[0].status = DM_ALERT_DELIVERED;
        b[0].attempts = 1;
        b[0].delivered_at = now;
        assert_int_equal(dm_store_alert_delivery_finish(f->st, OWNER_B, &b[0]), 0);
        dm_alert_deliveries_free(b, nb);

        /* A failed try: pending again later, with its error; the claim is let go. */
        a[0].attempts = 1;
        snprintf(a[0].last_error, sizeof(a[0].last_error), "HTTP 500");
        a[0].next_attempt_at = now + 1000;
        assert_int_equal(dm_store_alert_delivery_finish(f->st, OWNER_A, &a[0]), 0);
        /* B never held it: its finish is refused. */
        assert_int_equal(dm_store_alert_delivery_finish(f->st, OWNER_B, &a[1]), DM_ENOENT);
        assert_int_equal(
            dm_store_alert_delivery_claim(f->st, OWNER_B, LEASE_MS, 10, now + 1000, &b, &nb), 0);
        assert_int_equal(nb, 1);
        assert_int_equal(b[0].id, a[0].id);
        assert_int_equal(b[0].attempts, 1);
        assert_string_equal(b[0].last_error, "HTTP 500");
        dm_alert_deliveries_free(b, nb);

        /* A dead sender's claims come back once its lease ends (B takes back its own at
         * once). */
        assert_int_equal(dm_store_alert_delivery_claim(f->st, OWNER_B, LEASE_MS, 10,
                                                       now + LEASE_MS - 1, &b, &nb),
                         0);
        assert_int_equal(nb, 1);
        dm_alert_deliveries_free(b, nb);
        assert_int_equal(
            dm_store_alert_delivery_claim(f->st, OWNER_B, LEASE_MS, 10, now + LEASE_MS, &b, &nb),
            0);
        assert_int_equal(nb, 4); /* its own, a[1], a[2] and the later one, due by then */
        dm_alert_deliveries_free(b, nb);

        /* Delivered and failed ones are never claimed again. */
        a[1].status = DM_ALERT_FAILED;
        a[1].attempts = 10;
        assert_int_equal(dm_store_alert_delivery_finish(f->st, OWNER_A, &a[1]), DM_ENOENT);
        dm_alert_deliveries_free(a, na);

        struct dm_alert_delivery *all = NULL;
        size_t nall = 0;
        assert_int_equal(dm_store_alert_delivery_list(f->st, r1, 0, 1, &all, &nall), 0);
        assert_int_equal(nall, 1);
        int64_t newest = all[0].id;
        dm_alert_deliveries_free(all, nall);
        assert_int_equal(dm_store_alert_delivery_list(f->st, r1, newest, 10, &all, &nall), 0);
        assert_int_equal(nall, 2);
        assert_true(all[0].id < newest && all[1].id < all[0].id);
        dm_alert_deliveries_free(all, nall);
}

static void test_delivery_finish_states(void **state)
{
        struct fixture *f = *state;
        int64_t rule = add_rule(f->st, "r");
        int64_t now = 7000000;
        struct dm_alert_delivery d = make_delivery(rule, "k:1", "", now);
        assert_int_equal(dm_store_alert_delivery_add(f->st, &d, now, 0), 0);
        struct dm_alert_delivery *c = NULL;
        size_t n = 0;
        assert_int_equal(dm_store_alert_delivery_claim(f->st, OWNER_A, LEASE_MS, 10, now, &c, &n),
                         0);
        assert_int_equal(n, 1);
        c[0].status = DM_ALERT_FAILED;
        c[0].attempts = 3;
        snprintf(c[0].last_error, sizeof(c[0].last_error), "HTTP 503");
        assert_int_equal(dm_store_alert_delivery_finish(f->st, OWNER_A, &c[0]), 0);
        dm_alert_deliveries_free(c, n);
        assert_int_equal(dm_store_alert_delivery_claim(f->st, OWNER_A, LEASE_MS, 10,
                                                       now + 10 * LEASE_MS, &c, &n),
                         0);
        assert_int_equal(n, 0);
        dm_alert_deliveries_free(c, n);
        assert_int_equal(dm_store_alert_delivery_list(f->st, rule, 0, 10, &c, &n), 0);
        assert_int_equal(c[0].status, DM_ALERT_FAILED);
        assert_int_equal(c[0].attempts, 3);
        assert_string_equal(c[0].last_error, "HTTP 503");
        assert_int_equal(c[0].delivered_at, 0);
        dm_alert_deliveries_free(c, n);
}

/* One scan of the domain written with `status` at `at`, with no state change. */
static void scan(struct dm_store *st, int64_t id, int64_t at, enum dm_check_status status)
{
        struct dm_dns_commit it;
        memset(&it, 0, sizeof(it));
        it.domain_id = id;
        it.checked_at = at;
        it.status = status;
        it.status_error = status == DM_CHECK_ERROR ? (char *)"timed out" : NULL;
        assert_int_equal(dm_store_dns_commit(st, &it, 1, NULL, NULL), 0);
        assert_int_equal(it.result, 0);
}

/* The check.failing events in the outbox, oldest first, as "state/failed_scans" strings;
 * they are taken out. */
static size_t failing_events(struct dm_store *st, char out[][32], size_t max)
{
        struct dm_outbox_event *ev = NULL;
        size_t n = 0, k = 0;
        int64_t ids[256];
        assert_int_equal(dm_store_outbox_claim(st, OWNER_A, LEASE_MS, 256, dm_now_ms(), &ev, &n),
                         0);
        for (size_t i = 0; i < n; i++) {
                ids[i] = ev[i].id;
                if (strcmp(ev[i].routing_key, "check.failing") != 0)
                        continue;
                const char *state = strstr(ev[i].body, "\"recovered\"") ? "recovered" : "failing";
                const char *nf = strstr(ev[i].body, "\"failed_scans\"");
                assert_non_null(nf);
                nf += strlen("\"failed_scans\"");
                while (*nf == ' ' || *nf == ':')
                        nf++;
                assert_non_null(strstr(ev[i].body, "\"domain\""));
                assert_true(k < max);
                snprintf(out[k++], 32, "%s/%ld", state, strtol(nf, NULL, 10));
        }
        assert_int_equal(dm_store_outbox_delete(st, OWNER_A, ids, n, NULL), 0);
        dm_outbox_events_free(ev, n);
        return k;
}

static void test_failed_scans_counted(void **state)
{
        struct fixture *f = *state;
        struct dm_domain d;
        char got[8][32];
        memset(&d, 0, sizeof(d));
        snprintf(d.name, sizeof(d.name), "fail.example");
        snprintf(d.unicode_name, sizeof(d.unicode_name), "fail.example");
        d.enabled = true;
        assert_int_equal(dm_store_domain_insert(f->st, &d, NULL, NULL), 0);
        int64_t t = 1000000;

        scan(f->st, d.id, t += 1000, DM_CHECK_OK);
        assert_int_equal(failing_events(f->st, got, 8), 0); /* nothing failed */
        scan(f->st, d.id, t += 1000, DM_CHECK_ERROR);
        scan(f->st, d.id, t += 1000, DM_CHECK_ERROR);
        /* A late result of an older scan is not a scan in the run. */
        scan(f->st, d.id, t - 500, DM_CHECK_ERROR);
        scan(f->st, d.id, t += 1000, DM_CHECK_ERROR);
        assert_int_equal(failing_events(f->st, got, 8), 3);
        assert_string_equal(got[0], "failing/1");
        assert_string_equal(got[1], "failing/2");
        assert_string_equal(got[2], "failing/3");
        scan(f->st, d.id, t += 1000, DM_CHECK_OK);
        scan(f->st, d.id, t += 1000, DM_CHECK_OK);
        assert_int_equal(failing_events(f->st, got, 8), 1);
        assert_string_equal(got[0], "recovered/3");
        /* A new run counts from one. */
        scan(f->st, d.id, t += 1000, DM_CHECK_ERROR);
        assert_int_equal(failing_events(f->st, got, 8), 1);
        assert_string_equal(got[0], "failing/1");
}

static int64_t expiry_domain(struct dm_store *st, const char *name, bool enabled)
{
        struct dm_domain d;
        memset(&d, 0, sizeof(d));
        snprintf(d.name, sizeof(d.name), "%s", name);
        snprintf(d.unicode_name, sizeof(d.unicode_name), "%s", name);
        d.enabled = enabled;
        assert_int_equal(dm_store_domain_insert(st, &d, NULL, NULL), 0);
        return d.id;
}

/* old, new: the fingerprint bytes before and after (0: none yet), for the compare-and-swap. */
static void set_tls_expiry(struct dm_store *st, int64_t id, int64_t at, int old, int new)
{
        struct dm_tls_commit it = {.domain_id = id, .checked_at = 1000, .expires_at = at};
        memset(it.old_fp, old, DM_FP_LEN);
        memset(it.new_fp, new, DM_FP_LEN);
        assert_int_equal(dm_store_tls_commit(st, &it, 1, NULL, NULL), 0);
        assert_int_equal(it.result, 0);
}

static void set_reg_expiry(struct dm_store *st, int64_t id, int64_t at)
{
        struct dm_reg_commit c = {.domain_id = id,
                                  .checked_at = 1000,
                                  .status = 1,
                                  .source = 1,
                                  .registrable = "x.example",
                                  .data = "{}",
                                  .expires_at = at};
        assert_int_equal(dm_store_reg_commit(st, &c, NULL, NULL, NULL), 0);
}

/* Domains within the expiry window: either date counts, unknown dates and disabled domains
 * do not, paged by id. */
static void test_domain_expiring(void **state)
{
        struct fixture *f = *state;
        int64_t day = 86400000, now = 1000 * day;
        int64_t tls = expiry_domain(f->st, "tls.example", true);
        int64_t reg = expiry_domain(f->st, "reg.example", true);
        int64_t far = expiry_domain(f->st, "far.example", true);
        expiry_domain(f->st, "none.example", true);
        int64_t off = expiry_domain(f->st, "off.example", false);
        set_tls_expiry(f->st, tls, now + 10 * day, 0, 1);
        set_reg_expiry(f->st, reg, now - day); /* already expired: still listed */
        set_tls_expiry(f->st, far, now + 90 * day, 0, 1);
        set_reg_expiry(f->st, far, now + 60 * day);
        set_tls_expiry(f->st, off, now + 2 * day, 0, 1);

        struct dm_domain_expiry *e = NULL;
        size_t n = 0;
        assert_int_equal(dm_store_domain_expiring(f->st, now + 30 * day, 0, 10, &e, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(e[0].id, tls);
        assert_string_equal(e[0].name, "tls.example");
        assert_int_equal(e[0].tls_expires_at, now + 10 * day);
        assert_int_equal(e[0].registration_expires_at, 0);
        assert_int_equal(e[1].id, reg);
        assert_int_equal(e[1].tls_expires_at, 0);
        assert_int_equal(e[1].registration_expires_at, now - day);
        free(e);

        /* Paged; both dates come with a domain that matched by one. */
        assert_int_equal(dm_store_domain_expiring(f->st, now + 60 * day, 0, 1, &e, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(e[0].id, tls);
        free(e);
        assert_int_equal(dm_store_domain_expiring(f->st, now + 60 * day, tls, 10, &e, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(e[1].id, far);
        assert_int_equal(e[1].tls_expires_at, now + 90 * day);
        assert_int_equal(e[1].registration_expires_at, now + 60 * day);
        free(e);

        /* A renewal moves a domain out of the window. */
        set_tls_expiry(f->st, tls, now + 365 * day, 1, 2);
        assert_int_equal(dm_store_domain_expiring(f->st, now + 30 * day, 0, 10, &e, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(e[0].id, reg);
        free(e);
        assert_int_equal(dm_store_domain_expiring(f->st, now, 0, 0, &e, &n), DM_EINVAL);

        /* What fired is remembered by the delivery's key, across stores opened on the same
         * database (another alert service, or the next start): a second insert is refused. */
        int64_t rule = add_rule(f->st, "expiry");
        struct dm_alert_delivery d =
            make_delivery(rule, "tls.expiring:7-86400000-14", "tls.example", now);
        assert_int_equal(dm_store_alert_delivery_add(f->st, &d, now, 0), 0);
        struct dm_store *other = NULL;
        char err[256] = "";
        assert_int_equal(dm_store_open(f->url, err, sizeof(err), &other), 0);
        struct dm_alert_delivery again =
            make_delivery(rule, "tls.expiring:7-86400000-14", "tls.example", now);
        assert_int_equal(dm_store_alert_delivery_add(other, &again, now, 0), DM_EEXIST);
        struct dm_alert_delivery next =
            make_delivery(rule, "tls.expiring:7-86400000-7", "tls.example", now);
        assert_int_equal(dm_store_alert_delivery_add(other, &next, now, 0), 0);
        dm_store_free(other);
}

static void test_names(void **state)
{
        (void)state;
        enum dm_alert_channel ch;
        enum dm_alert_status s;
        assert_int_equal(dm_alert_channel_parse("sms", &ch), 0);
        assert_int_equal(ch, DM_ALERT_SMS);
        assert_int_equal(dm_alert_channel_parse("none", &ch), DM_EINVAL);
        assert_string_equal(dm_alert_channel_name(DM_ALERT_WEBHOOK), "webhook");
        assert_int_equal(dm_alert_status_parse("delivered", &s), 0);
        assert_int_equal(s, DM_ALERT_DELIVERED);
        assert_int_equal(dm_alert_status_parse("x", &s), DM_EINVAL);
        assert_string_equal(dm_alert_status_name(DM_ALERT_FAILED), "failed");
}

#define CONTRACT(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
        const struct CMUnitTest contract[] = {
            CONTRACT(test_rules),
            CONTRACT(test_delivery_unique),
            CONTRACT(test_delivery_group_and_quiet),
            CONTRACT(test_delivery_claim),
            CONTRACT(test_delivery_finish_states),
            CONTRACT(test_failed_scans_counted),
            CONTRACT(test_domain_expiring),
        };
        const struct CMUnitTest front[] = {cmocka_unit_test(test_names)};
        int failed = 0;

        backends[nbackends++] = (struct backend){.label = "alert store: sqlite", .url = NULL};
        const char *pg = getenv("DM_TEST_PG_URL");
        if (pg && *pg) {
                struct dm_store *st = NULL;
                char err[256] = "";
                if (dm_store_open(pg, err, sizeof(err), &st) < 0) {
                        fprintf(stderr, "DM_TEST_PG_URL cannot be used: %s\n", err);
                        failed++;
                } else {
                        dm_store_free(st);
                        backends[nbackends++] =
                            (struct backend){.label = "alert store: postgres", .url = pg};
                }
        }
        failed += cmocka_run_group_tests_name("alert store front", front, NULL, NULL);
        for (size_t i = 0; i < nbackends; i++) {
                cur_backend = &backends[i];
                failed += cmocka_run_group_tests_name(backends[i].label, contract, NULL, NULL);
        }
        return failed;
}
