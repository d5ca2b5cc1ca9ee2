/* The outbox relay (lib/outbox/relay.c) with the in-process bus and a SQLite store in a
 * temporary directory: events go out in order and leave the outbox; an event the bus can
 * never take is dropped without blocking the rest; a bus outage keeps the events and is
 * counted once, until they go; claims of a relay that died are taken over once their lease
 * ends; two relays on one database publish every event once; stop publishes what is left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dm/bus.h"
#include "dm/error.h"
#include "dm/outbox.h"
#include "dm/store.h"
#include "dm/time.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REC_MAX 1024
#define WAIT_MS 10000
#define IDLE_POLL_MS 600000 /* relays in these tests run rounds when told to */

static void sleep_ms(int ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

/* ---- a store and a bus per test ---- */

struct fixture {
        char dir[64];
        char url[128];
        struct dm_store *st;
        struct dm_bus *bus;
};

static struct fixture *fixture_new(const char *bus_url)
{
        struct fixture *f = calloc(1, sizeof(*f));
        char err[256] = "";
        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/dm-test-outbox-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->url, sizeof(f->url), "sqlite://%s/relay.db", f->dir);
        assert_int_equal(dm_store_open(f->url, err, sizeof(err), &f->st), 0);
        assert_int_equal(dm_store_migrate(f->st, NULL), 0);
        assert_int_equal(dm_bus_open(bus_url, err, sizeof(err), &f->bus), 0);
        return f;
}

static void fixture_free(struct fixture *f)
{
        static const char *const files[] = {"relay.db", "relay.db-wal", "relay.db-shm"};
        char path[128];
        dm_bus_free(f->bus);
        dm_store_free(f->st);
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
                unlink(path);
        }
        rmdir(f->dir);
        free(f);
}

static size_t outbox_count(struct dm_store *st)
{
        size_t n = 0;
        assert_int_equal(dm_store_outbox_count(st, &n), 0);
        return n;
}

/* Waits until the outbox is empty (the delete follows the publish). */
static void wait_outbox_empty(struct dm_store *st)
{
        for (int waited = 0; outbox_count(st) > 0 && waited < WAIT_MS; waited += 10)
                sleep_ms(10);
        assert_int_equal(outbox_count(st), 0);
}

static void add_event(struct dm_store *st, const char *key, int id)
{
        char body[64];
        snprintf(body, sizeof(body), "{\"id\":%d}", id);
        assert_int_equal(dm_store_outbox_add(st, key, body), 0);
}

static struct dm_outbox_relay *relay_start(struct dm_store *st, struct dm_bus *bus, size_t batch,
                                           int64_t poll_ms)
{
        struct dm_outbox_relay_opts o = {
            .store = st, .bus = bus, .batch = batch, .poll_ms = poll_ms};
        struct dm_outbox_relay *r = NULL;
        assert_int_equal(dm_outbox_relay_start(&o, &r), 0);
        assert_non_null(r);
        return r;
}

/* ---- a consumer that records (the main thread alone asserts) ---- */

struct recorder {
        pthread_mutex_t mu;
        pthread_cond_t cond;
        struct dm_bus *bus;
        size_t n;
        char key[REC_MAX][64];
        char body[REC_MAX][64];
        int ack_errors;
};

static void rec_init(struct recorder *r, struct dm_bus *bus)
{
        memset(r, 0, sizeof(*r));
        pthread_mutex_init(&r->mu, NULL);
        pthread_cond_init(&r->cond, NULL);
        r->bus = bus;
}

static void rec_done(struct recorder *r)
{
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->mu);
}

static void rec_handler(void *arg, const struct dm_bus_msg *m)
{
        struct recorder *r = arg;
        pthread_mutex_lock(&r->mu);
        if (r->n < REC_MAX) {
                snprintf(r->key[r->n], sizeof(r->key[0]), "%s", m->routing_key);
                snprintf(r->body[r->n], sizeof(r->body[0]), "%.*s", (int)m->len,
                         (const char *)m->body);
                r->n++;
        }
        if (dm_bus_ack(r->bus, m->tag) != 0)
                r->ack_errors++;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->mu);
}

/* Waits until `want` messages arrived (or the time is up); returns how many did. */
static size_t rec_wait(struct recorder *r, size_t want, int ms)
{
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += ms / 1000;
        dl.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&r->mu);
        while (r->n < want && pthread_cond_timedwait(&r->cond, &r->mu, &dl) == 0)
                ;
        size_t n = r->n;
        pthread_mutex_unlock(&r->mu);
        return n;
}

/* ---- tests ---- */

static void test_publishes_in_order(void **state)
{
        (void)state;
        struct fixture *f = fixture_new("inproc:");
        struct recorder rec;
        rec_init(&rec, f->bus);
        assert_int_equal(dm_bus_declare(f->bus, "events", "#"), 0);
        assert_int_equal(dm_bus_consume(f->bus, "events", 16, rec_handler, &rec), 0);
        add_event(f->st, "change.dns.A", 7);
        add_event(f->st, "domain.added", 8);
        add_event(f->st, "domain.removed", 8);

        struct dm_outbox_relay *r = relay_start(f->st, f->bus, 0, IDLE_POLL_MS);
        dm_outbox_relay_kick(r);
        assert_int_equal(rec_wait(&rec, 3, WAIT_MS), 3);
        assert_string_equal(rec.key[0], "change.dns.A");
        assert_string_equal(rec.body[0], "{\"id\":7}");
        assert_string_equal(rec.key[1], "domain.added");
        assert_string_equal(rec.key[2], "domain.removed");
        wait_outbox_empty(f->st);

        /* Later events go on the next kick. */
        add_event(f->st, "change.dns.MX", 9);
        dm_outbox_relay_kick(r);
        assert_int_equal(rec_wait(&rec, 4, WAIT_MS), 4);
        assert_string_equal(rec.key[3], "change.dns.MX");
        wait_outbox_empty(f->st);

        struct dm_outbox_stats s;
        dm_outbox_relay_stats(r, &s);
        assert_int_equal(s.published, 4);
        assert_int_equal(s.dropped, 0);
        assert_int_equal(s.outages, 0);
        assert_false(s.bus_down);
        dm_outbox_relay_stop(r);
        assert_int_equal(rec.ack_errors, 0);
        fixture_free(f);
        rec_done(&rec);
}

/* A routing key the bus refuses can never go: it is dropped, the others are published. */
static void test_drops_what_the_bus_refuses(void **state)
{
        (void)state;
        struct fixture *f = fixture_new("inproc:");
        struct recorder rec;
        rec_init(&rec, f->bus);
        assert_int_equal(dm_bus_declare(f->bus, "events", "#"), 0);
        assert_int_equal(dm_bus_consume(f->bus, "events", 16, rec_handler, &rec), 0);
        add_event(f->st, "good.a", 1);
        add_event(f->st, "bad key", 2);
        add_event(f->st, "good.b", 3);

        struct dm_outbox_relay *r = relay_start(f->st, f->bus, 0, IDLE_POLL_MS);
        assert_int_equal(dm_outbox_relay_flush(r), 0);
        assert_int_equal(rec_wait(&rec, 2, WAIT_MS), 2);
        assert_string_equal(rec.key[0], "good.a");
        assert_string_equal(rec.key[1], "good.b");
        assert_int_equal(outbox_count(f->st), 0);
        struct dm_outbox_stats s;
        dm_outbox_relay_stats(r, &s);
        assert_int_equal(s.published, 2);
        assert_int_equal(s.dropped, 1);
        assert_int_equal(s.outages, 0);
        dm_outbox_relay_stop(r);
        fixture_free(f);
        rec_done(&rec);
}

/* A bus that refuses (here a full queue) keeps the events in the outbox; the outage counts
 * once however many rounds fail, and ends when they go, in order. */
static void test_bus_outage_keeps_events(void **state)
{
        (void)state;
        struct fixture *f = fixture_new("inproc:?max_messages=2");
        struct recorder rec;
        rec_init(&rec, f->bus);
        assert_int_equal(dm_bus_declare(f->bus, "events", "#"), 0);
        for (int i = 1; i <= 5; i++)
                add_event(f->st, "domain.added", i);

        struct dm_outbox_relay *r = relay_start(f->st, f->bus, 0, IDLE_POLL_MS);
        assert_int_equal(dm_outbox_relay_flush(r), DM_ENOSPC);
        assert_int_equal(dm_outbox_relay_flush(r), DM_ENOSPC);
        assert_int_equal(outbox_count(f->st), 3);
        struct dm_outbox_stats s;
        dm_outbox_relay_stats(r, &s);
        assert_int_equal(s.published, 2);
        assert_int_equal(s.outages, 1);
        assert_true(s.bus_down);
        assert_false(s.store_down);

        /* A consumer makes room: the rest goes, and the outage is over. */
        assert_int_equal(dm_bus_consume(f->bus, "events", 1, rec_handler, &rec), 0);
        for (int waited = 0; outbox_count(f->st) > 0 && waited < WAIT_MS; waited += 10) {
                (void)dm_outbox_relay_flush(r);
                sleep_ms(10);
        }
        assert_int_equal(outbox_count(f->st), 0);
        assert_int_equal(rec_wait(&rec, 5, WAIT_MS), 5);
        for (int i = 0; i < 5; i++) {
                char want[32];
                snprintf(want, sizeof(want), "{\"id\":%d}", i + 1);
                assert_string_equal(rec.body[i], want);
        }
        dm_outbox_relay_stats(r, &s);
        assert_int_equal(s.published, 5);
        assert_int_equal(s.outages, 1);
        assert_false(s.bus_down);
        dm_outbox_relay_stop(r);
        fixture_free(f);
        rec_done(&rec);
}

/* A consumer that keeps the tags of what it is handed, unsettled, for the test to ack. */
struct holder {
        pthread_mutex_t mu;
        uint64_t tags[8];
        size_t n;
};

static void hold_handler(void *arg, const struct dm_bus_msg *msg)
{
        struct holder *h = arg;
        pthread_mutex_lock(&h->mu);
        if (h->n < 8)
                h->tags[h->n++] = msg->tag;
        pthread_mutex_unlock(&h->mu);
}

static size_t held(struct holder *h)
{
        pthread_mutex_lock(&h->mu);
        size_t n = h->n;
        pthread_mutex_unlock(&h->mu);
        return n;
}

/* In process, an event leaves the outbox only once the consumer of its durable queue has
 * acked it: a crash between the publish and the consumer's work loses nothing. */
static void test_deleted_only_once_consumed(void **state)
{
        (void)state;
        struct fixture *f = fixture_new("inproc:");
        struct holder h = {.n = 0};
        pthread_mutex_init(&h.mu, NULL);
        assert_int_equal(dm_bus_declare(f->bus, "events", "#"), 0);
        assert_int_equal(dm_bus_consume(f->bus, "events", 8, hold_handler, &h), 0);
        add_event(f->st, "change.a", 1);
        add_event(f->st, "change.b", 2);

        struct dm_outbox_relay *r = relay_start(f->st, f->bus, 0, IDLE_POLL_MS);
        dm_outbox_relay_kick(r);
        for (int waited = 0; held(&h) < 2 && waited < WAIT_MS; waited += 10)
                sleep_ms(10);
        assert_int_equal(held(&h), 2);
        sleep_ms(200);
        assert_int_equal(outbox_count(f->st), 2); /* handed over, not yet consumed */
        assert_int_equal(dm_bus_ack(f->bus, h.tags[0]), 0);
        sleep_ms(200);
        assert_int_equal(outbox_count(f->st), 2); /* a batch goes when all of it is consumed */
        assert_int_equal(dm_bus_ack(f->bus, h.tags[1]), 0);
        wait_outbox_empty(f->st);
        struct dm_outbox_stats s;
        dm_outbox_relay_stats(r, &s);
        assert_int_equal(s.published, 2);
        assert_int_equal(s.outages, 0);
        dm_outbox_relay_stop(r);
        fixture_free(f);
        pthread_mutex_destroy(&h.mu);
}

/* Events a relay claimed before it died wait for its lease, then another relay publishes
 * them; the dead relay's late delete removes nothing. */
static void test_takes_over_expired_claims(void **state)
{
        (void)state;
        struct fixture *f = fixture_new("inproc:");
        struct recorder rec;
        rec_init(&rec, f->bus);
        assert_int_equal(dm_bus_declare(f->bus, "events", "#"), 0);
        assert_int_equal(dm_bus_consume(f->bus, "events", 16, rec_handler, &rec), 0);
        add_event(f->st, "domain.added", 1);
        add_event(f->st, "domain.added", 2);
        struct dm_outbox_event *ev = NULL;
        size_t n = 0;
        const int64_t dead = 4242;
        assert_int_equal(dm_store_outbox_claim(f->st, dead, 300, 10, dm_now_ms(), &ev, &n), 0);
        assert_int_equal(n, 2);
        int64_t ids[2] = {ev[0].id, ev[1].id};
        dm_outbox_events_free(ev, n);
        add_event(f->st, "domain.added", 3);

        struct dm_outbox_relay *r = relay_start(f->st, f->bus, 0, IDLE_POLL_MS);
        assert_int_equal(dm_outbox_relay_flush(r), 0);
        assert_int_equal(rec_wait(&rec, 1, WAIT_MS), 1);
        assert_string_equal(rec.body[0], "{\"id\":3}");
        assert_int_equal(outbox_count(f->st), 2); /* the dead relay's, still held */

        sleep_ms(350);
        assert_int_equal(dm_outbox_relay_flush(r), 0);
        assert_int_equal(rec_wait(&rec, 3, WAIT_MS), 3);
        assert_string_equal(rec.body[1], "{\"id\":1}");
        assert_string_equal(rec.body[2], "{\"id\":2}");
        assert_int_equal(outbox_count(f->st), 0);
        size_t deleted = 9;
        assert_int_equal(dm_store_outbox_delete(f->st, dead, ids, 2, &deleted), 0);
        assert_int_equal(deleted, 0);
        dm_outbox_relay_stop(r);
        fixture_free(f);
        rec_done(&rec);
}

/* Two relays on two handles of one database, as two processes have, while events keep
 * being written: each event is published once. */
static void test_two_relays_publish_once(void **state)
{
        (void)state;
        enum { N = 300 };
        struct fixture *f = fixture_new("inproc:");
        struct dm_store *st2 = NULL;
        char err[256];
        assert_int_equal(dm_store_open(f->url, err, sizeof(err), &st2), 0);
        struct recorder rec;
        rec_init(&rec, f->bus);
        assert_int_equal(dm_bus_declare(f->bus, "events", "#"), 0);
        assert_int_equal(dm_bus_consume(f->bus, "events", 64, rec_handler, &rec), 0);

        struct dm_outbox_relay *a = relay_start(f->st, f->bus, 7, 5);
        struct dm_outbox_relay *b = relay_start(st2, f->bus, 7, 5);
        for (int i = 1; i <= N; i++) {
                add_event(f->st, "domain.added", i);
                if (i % 20 == 0)
                        dm_outbox_relay_kick(i % 40 ? a : b);
        }
        assert_int_equal(rec_wait(&rec, N, WAIT_MS), N);
        wait_outbox_empty(f->st);
        sleep_ms(50); /* nothing more arrives */
        pthread_mutex_lock(&rec.mu);
        assert_int_equal(rec.n, N);
        static bool seen[N + 1];
        memset(seen, 0, sizeof(seen));
        for (size_t i = 0; i < rec.n; i++) {
                int id = atoi(rec.body[i] + strlen("{\"id\":"));
                assert_true(id >= 1 && id <= N);
                assert_false(seen[id]);
                seen[id] = true;
        }
        pthread_mutex_unlock(&rec.mu);
        struct dm_outbox_stats sa, sb;
        dm_outbox_relay_stats(a, &sa);
        dm_outbox_relay_stats(b, &sb);
        assert_int_equal(sa.published + sb.published, N);
        dm_outbox_relay_stop(a);
        dm_outbox_relay_stop(b);
        dm_store_free(st2);
        fixture_free(f);
        rec_done(&rec);
}

/* Stop runs a last round: nothing written before it stays behind. */
static void test_stop_publishes_what_is_left(void **state)
{
        (void)state;
        struct fixture *f = fixture_new("inproc:");
        struct recorder rec;
        rec_init(&rec, f->bus);
        assert_int_equal(dm_bus_declare(f->bus, "events", "#"), 0);
        assert_int_equal(dm_bus_consume(f->bus, "events", 16, rec_handler, &rec), 0);
        struct dm_outbox_relay *r = relay_start(f->st, f->bus, 0, IDLE_POLL_MS);
        add_event(f->st, "domain.added", 1);
        add_event(f->st, "domain.removed", 1);
        dm_outbox_relay_stop(r);
        assert_int_equal(outbox_count(f->st), 0);
        assert_int_equal(rec_wait(&rec, 2, WAIT_MS), 2);
        fixture_free(f);
        rec_done(&rec);
}

static void test_bad_arguments(void **state)
{
        (void)state;
        struct fixture *f = fixture_new("inproc:");
        struct dm_outbox_relay *r = NULL;
        struct dm_outbox_relay_opts o = {.store = f->st};
        assert_int_equal(dm_outbox_relay_start(&o, &r), DM_EINVAL);
        o = (struct dm_outbox_relay_opts){.bus = f->bus};
        assert_int_equal(dm_outbox_relay_start(&o, &r), DM_EINVAL);
        o = (struct dm_outbox_relay_opts){.store = f->st, .bus = f->bus, .lease_ms = -1};
        assert_int_equal(dm_outbox_relay_start(&o, &r), DM_EINVAL);
        assert_int_equal(dm_outbox_relay_start(NULL, &r), DM_EINVAL);
        assert_null(r);
        assert_int_equal(dm_outbox_relay_flush(NULL), DM_EINVAL);
        dm_outbox_relay_kick(NULL);
        dm_outbox_relay_stop(NULL);
        fixture_free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_publishes_in_order),
            cmocka_unit_test(test_drops_what_the_bus_refuses),
            cmocka_unit_test(test_bus_outage_keeps_events),
            cmocka_unit_test(test_deleted_only_once_consumed),
            cmocka_unit_test(test_takes_over_expired_claims),
            cmocka_unit_test(test_two_relays_publish_once),
            cmocka_unit_test(test_stop_publishes_what_is_left),
            cmocka_unit_test(test_bad_arguments),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
