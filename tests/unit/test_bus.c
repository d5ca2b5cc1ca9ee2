/* The bus contract on the in-process backend: topic matching, routing, acks, prefetch,
 * requeue, fan-out, bounded queues, and no loss or duplicates under many threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dm/bus.h"
#include "dm/error.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REC_MAX 64

struct rec_msg {
        char key[64];
        char body[64];
        uint64_t tag;
        bool redelivered;
};

/* Collects deliveries for the main thread, which alone runs cmocka assertions. */
struct recorder {
        pthread_mutex_t mu;
        pthread_cond_t cond;
        struct rec_msg msgs[REC_MAX];
        size_t n;
        struct dm_bus *bus;
        int mode; /* what the handler does on its own */
};

enum { REC_KEEP = 0, REC_ACK = 1, REC_NACK_FIRST = 2 };

static void rec_init(struct recorder *r, struct dm_bus *bus, int mode)
{
        memset(r, 0, sizeof(*r));
        pthread_mutex_init(&r->mu, NULL);
        pthread_cond_init(&r->cond, NULL);
        r->bus = bus;
        r->mode = mode;
}

static void rec_done(struct recorder *r)
{
        pthread_cond_destroy(&r->cond);
        pthread_mutex_destroy(&r->mu);
}

static void rec_handler(void *arg, const struct dm_bus_msg *msg)
{
        struct recorder *r = arg;
        pthread_mutex_lock(&r->mu);
        if (r->n < REC_MAX) {
                struct rec_msg *m = &r->msgs[r->n++];
                snprintf(m->key, sizeof(m->key), "%s", msg->routing_key);
                snprintf(m->body, sizeof(m->body), "%.*s", (int)msg->len, (const char *)msg->body);
                m->tag = msg->tag;
                m->redelivered = msg->redelivered;
        }
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->mu);
        if (r->mode == REC_ACK)
                dm_bus_ack(r->bus, msg->tag);
        else if (r->mode == REC_NACK_FIRST)
                dm_bus_nack(r->bus, msg->tag, !msg->redelivered);
}

/* Waits until at least `want` messages arrived or `ms` passed; returns the count. */
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
        while (r->n < want) {
                if (pthread_cond_timedwait(&r->cond, &r->mu, &dl) != 0)
                        break;
        }
        size_t n = r->n;
        pthread_mutex_unlock(&r->mu);
        return n;
}

static void sleep_ms(int ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

static struct dm_bus *open_bus(const char *url)
{
        char err[256];
        struct dm_bus *bus = NULL;
        int r = dm_bus_open(url, err, sizeof(err), &bus);
        if (r != 0)
                print_error("dm_bus_open(%s): %s\n", url ? url : "NULL", err);
        assert_int_equal(r, 0);
        assert_non_null(bus);
        return bus;
}

static void test_topic_match(void **state)
{
        static const struct {
                const char *pattern, *key;
                bool match;
        } cases[] = {
            {"task.dns", "task.dns", true},
            {"task.dns", "task.tls", false},
            {"task.dns", "task.dns.x", false},
            {"task.dns", "task", false},
            {"task.*", "task.dns", true},
            {"task.*", "task", false},
            {"task.*", "task.dns.x", false},
            {"*.dns", "task.dns", true},
            {"*", "task", true},
            {"*", "", false},
            {"*.*", "a.b", true},
            {"*.*", "a", false},
            {"#", "", true},
            {"#", "a", true},
            {"#", "a.b.c", true},
            {"change.dns.#", "change.dns", true},
            {"change.dns.#", "change.dns.A", true},
            {"change.dns.#", "change.dns.A.x", true},
            {"change.dns.#", "change.tls.A", false},
            {"change.#.A", "change.A", true},
            {"change.#.A", "change.dns.tls.A", true},
            {"change.#.A", "change.dns.AAAA", false},
            {"#.A", "change.dns.A", true},
            {"#.#", "a", true},
            {"#.*.#", "", false},
            {"#.*.#", "a.b", true},
            {"a.#.b.#.c", "a.x.b.y.c", true},
            {"a.#.b.#.c", "a.b.c", true},
            {"a.#.b.#.c", "a.c.b", false},
            {"*.#", "a", true},
            {"*.#", "", false},
            {"a.*.c", "a..c", true},
            {"a..c", "a..c", true},
            {"", "", true},
            {"", "a", false},
            {"abc", "ab", false},
            {"ab", "abc", false},
            {"A", "a", false},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                bool got = dm_bus_topic_match(cases[i].pattern, cases[i].key);
                if (got != cases[i].match)
                        print_error("pattern '%s' key '%s': got %d\n", cases[i].pattern,
                                    cases[i].key, got);
                assert_int_equal(got, cases[i].match);
        }
        assert_false(dm_bus_topic_match(NULL, "a"));
        assert_false(dm_bus_topic_match("a", NULL));

        /* Many '#' on a long key: must answer at once rather than backtrack forever. */
        char pat[256], key[256];
        size_t pn = 0, kn = 0;
        while (pn + 4 < sizeof(pat))
                pn += (size_t)snprintf(pat + pn, sizeof(pat) - pn, "#.a.");
        pat[pn - 1] = 'z';
        while (kn + 3 < sizeof(key))
                kn += (size_t)snprintf(key + kn, sizeof(key) - kn, "a.");
        key[kn - 1] = '\0';
        assert_false(dm_bus_topic_match(pat, key));

        /* Empty words count: 255 dots are 256 words, the most a valid key or pattern has. */
        char dots[256], dots2[256];
        memset(dots, '.', 255);
        dots[255] = '\0';
        memcpy(dots2, dots, sizeof(dots2));
        dots2[0] = 'a';
        assert_true(dm_bus_topic_match("#", dots));
        assert_true(dm_bus_topic_match(dots, dots));
        assert_false(dm_bus_topic_match(dots, dots2));
        assert_true(dm_bus_topic_match("*.#", dots2));
}

static void test_open_urls(void **state)
{
        char err[256];
        struct dm_bus *bus = NULL;

        bus = open_bus(NULL);
        assert_string_equal(dm_bus_backend(bus), "inproc");
        dm_bus_free(bus);
        bus = open_bus("inproc:");
        dm_bus_free(bus);
        bus = open_bus("INPROC://?max_messages=10&max_bytes=1000");
        dm_bus_free(bus);

        bus = NULL;
        err[0] = '\0';
        assert_int_equal(dm_bus_open("amqp://guest:guest@127.0.0.1:5672/", err, sizeof(err), &bus),
                         DM_ENOBACKEND);
        assert_null(bus);
        assert_non_null(strstr(err, "amqp"));
        assert_int_equal(dm_bus_open("amqps://h/", err, sizeof(err), &bus), DM_ENOBACKEND);
        assert_int_equal(dm_bus_open("kafka://h/", err, sizeof(err), &bus), DM_EINVAL);
        assert_int_equal(dm_bus_open("nocolon", err, sizeof(err), &bus), DM_EINVAL);
        assert_int_equal(dm_bus_open("inproc:?max_messages=abc", err, sizeof(err), &bus),
                         DM_EINVAL);
        assert_int_equal(dm_bus_open("inproc:?max_messages=0", err, sizeof(err), &bus), DM_EINVAL);
        assert_int_equal(dm_bus_open("inproc:?colour=blue", err, sizeof(err), &bus), DM_EINVAL);
        assert_null(bus);
        dm_bus_free(NULL);
}

static void test_bad_arguments(void **state)
{
        struct dm_bus *bus = open_bus(NULL);
        struct recorder r;
        rec_init(&r, bus, REC_ACK);
        assert_int_equal(dm_bus_declare(bus, "", "a"), DM_EINVAL);
        assert_int_equal(dm_bus_declare(bus, "q", NULL), DM_EINVAL);
        assert_int_equal(dm_bus_declare(bus, "bad name", "a"), DM_EINVAL);
        assert_int_equal(dm_bus_consume(bus, "missing", 1, rec_handler, &r), DM_ENOENT);
        assert_int_equal(dm_bus_consume(bus, "q", 1, NULL, &r), DM_EINVAL);
        assert_int_equal(dm_bus_publish(bus, "a", NULL, 3), DM_EINVAL);
        assert_int_equal(dm_bus_ack(bus, 12345), DM_ENOENT);
        assert_int_equal(dm_bus_nack(bus, 0, true), DM_ENOENT);
        assert_int_equal(dm_bus_publish(bus, "a", NULL, 0), 0);
        dm_bus_free(bus);
        rec_done(&r);
}

static void test_publish_consume_ack(void **state)
{
        struct dm_bus *bus = open_bus(NULL);
        struct recorder r;
        rec_init(&r, bus, REC_KEEP);
        assert_int_equal(dm_bus_declare(bus, "work", "task.*"), 0);
        assert_int_equal(dm_bus_declare(bus, "work", "task.*"), 0); /* idempotent */
        assert_int_equal(dm_bus_consume(bus, "work", 10, rec_handler, &r), 0);
        assert_int_equal(dm_bus_publish(bus, "task.dns", "hello", 5), 0);
        assert_int_equal(rec_wait(&r, 1, 2000), 1);
        assert_string_equal(r.msgs[0].key, "task.dns");
        assert_string_equal(r.msgs[0].body, "hello");
        assert_false(r.msgs[0].redelivered);
        assert_int_equal(dm_bus_ack(bus, r.msgs[0].tag), 0);
        assert_int_equal(dm_bus_ack(bus, r.msgs[0].tag), DM_ENOENT);
        assert_int_equal(dm_bus_nack(bus, r.msgs[0].tag, true), DM_ENOENT);

        /* The idempotent declare must not have made two copies. */
        sleep_ms(50);
        assert_int_equal(rec_wait(&r, 2, 0), 1);

        /* Empty body is a message too. */
        assert_int_equal(dm_bus_publish(bus, "task.empty", "", 0), 0);
        assert_int_equal(rec_wait(&r, 2, 2000), 2);
        assert_string_equal(r.msgs[1].body, "");
        assert_int_equal(dm_bus_ack(bus, r.msgs[1].tag), 0);
        dm_bus_free(bus);
        rec_done(&r);
}

static void test_prefetch_limit(void **state)
{
        struct dm_bus *bus = open_bus(NULL);
        struct recorder r;
        rec_init(&r, bus, REC_KEEP);
        assert_int_equal(dm_bus_declare(bus, "q", "#"), 0);
        assert_int_equal(dm_bus_consume(bus, "q", 3, rec_handler, &r), 0);
        for (int i = 0; i < 10; i++) {
                char body[16];
                int n = snprintf(body, sizeof(body), "m%d", i);
                assert_int_equal(dm_bus_publish(bus, "k", body, (size_t)n), 0);
        }
        assert_int_equal(rec_wait(&r, 3, 2000), 3);
        sleep_ms(100);
        assert_int_equal(rec_wait(&r, 4, 0), 3);

        assert_int_equal(dm_bus_ack(bus, r.msgs[1].tag), 0);
        assert_int_equal(rec_wait(&r, 4, 2000), 4);
        sleep_ms(50);
        assert_int_equal(rec_wait(&r, 5, 0), 4);
        /* Order is kept. */
        for (int i = 0; i < 4; i++) {
                char want[16];
                snprintf(want, sizeof(want), "m%d", i);
                assert_string_equal(r.msgs[i].body, want);
        }
        /* Freeing with messages unacked and queued must not leak or hang. */
        dm_bus_free(bus);
        rec_done(&r);
}

static void test_nack_requeue(void **state)
{
        struct dm_bus *bus = open_bus(NULL);
        struct recorder r;
        rec_init(&r, bus, REC_KEEP);
        assert_int_equal(dm_bus_declare(bus, "q", "a.b"), 0);
        assert_int_equal(dm_bus_consume(bus, "q", 1, rec_handler, &r), 0);
        assert_int_equal(dm_bus_publish(bus, "a.b", "x", 1), 0);
        assert_int_equal(rec_wait(&r, 1, 2000), 1);
        assert_false(r.msgs[0].redelivered);
        assert_int_equal(dm_bus_nack(bus, r.msgs[0].tag, true), 0);
        assert_int_equal(rec_wait(&r, 2, 2000), 2);
        assert_true(r.msgs[1].redelivered);
        assert_string_equal(r.msgs[1].body, "x");
        assert_true(r.msgs[1].tag != r.msgs[0].tag);
        /* The first tag is settled: it can no longer touch the redelivered message. */
        assert_int_equal(dm_bus_ack(bus, r.msgs[0].tag), DM_ENOENT);

        /* Rejected without requeue: gone. */
        assert_int_equal(dm_bus_nack(bus, r.msgs[1].tag, false), 0);
        sleep_ms(50);
        assert_int_equal(rec_wait(&r, 3, 0), 2);

        /* A requeued message goes before those waiting behind it. */
        assert_int_equal(dm_bus_publish(bus, "a.b", "1", 1), 0);
        assert_int_equal(rec_wait(&r, 3, 2000), 3);
        assert_int_equal(dm_bus_publish(bus, "a.b", "2", 1), 0);
        sleep_ms(20);
        assert_int_equal(dm_bus_nack(bus, r.msgs[2].tag, true), 0);
        assert_int_equal(rec_wait(&r, 4, 2000), 4);
        assert_string_equal(r.msgs[3].body, "1");
        assert_true(r.msgs[3].redelivered);
        assert_int_equal(dm_bus_ack(bus, r.msgs[3].tag), 0);
        assert_int_equal(rec_wait(&r, 5, 2000), 5);
        assert_string_equal(r.msgs[4].body, "2");
        assert_false(r.msgs[4].redelivered);
        assert_int_equal(dm_bus_ack(bus, r.msgs[4].tag), 0);
        dm_bus_free(bus);
        rec_done(&r);
}

static void test_nack_from_handler(void **state)
{
        struct dm_bus *bus = open_bus(NULL);
        struct recorder r;
        rec_init(&r, bus, REC_NACK_FIRST);
        assert_int_equal(dm_bus_declare(bus, "q", "#"), 0);
        assert_int_equal(dm_bus_consume(bus, "q", 4, rec_handler, &r), 0);
        assert_int_equal(dm_bus_publish(bus, "k", "body", 4), 0);
        assert_int_equal(rec_wait(&r, 2, 2000), 2);
        assert_false(r.msgs[0].redelivered);
        assert_true(r.msgs[1].redelivered);
        assert_string_equal(r.msgs[1].body, "body");
        dm_bus_free(bus);
        rec_done(&r);
}

static void test_cancel(void **state)
{
        struct dm_bus *bus = open_bus(NULL);
        struct recorder r1, r2;
        rec_init(&r1, bus, REC_KEEP);
        rec_init(&r2, bus, REC_KEEP);
        assert_int_equal(dm_bus_declare(bus, "q", "#"), 0);
        assert_int_equal(dm_bus_consume(bus, "q", 4, rec_handler, &r1), 0);
        assert_int_equal(dm_bus_publish(bus, "k", "first", 5), 0);
        assert_int_equal(rec_wait(&r1, 1, 2000), 1);
        assert_int_equal(dm_bus_cancel(bus, "q", rec_handler, &r1), 0);
        assert_int_equal(dm_bus_cancel(bus, "q", rec_handler, &r1), DM_ENOENT);
        assert_int_equal(dm_bus_cancel(bus, "q", rec_handler, &r2), DM_ENOENT);

        assert_int_equal(dm_bus_publish(bus, "k", "second", 6), 0);
        sleep_ms(50);
        assert_int_equal(rec_wait(&r1, 2, 0), 1);
        /* What the cancelled consumer holds can still be settled. */
        assert_int_equal(dm_bus_nack(bus, r1.msgs[0].tag, true), 0);

        assert_int_equal(dm_bus_consume(bus, "q", 4, rec_handler, &r2), 0);
        assert_int_equal(rec_wait(&r2, 2, 2000), 2);
        assert_string_equal(r2.msgs[0].body, "first");
        assert_true(r2.msgs[0].redelivered);
        assert_string_equal(r2.msgs[1].body, "second");
        assert_int_equal(rec_wait(&r1, 2, 0), 1);
        dm_bus_free(bus);
        rec_done(&r1);
        rec_done(&r2);
}

/* What a cancelled consumer never took comes back on reclaim, in order, once; what it holds
 * unacked is still its own to settle, and a nack with requeue makes it reclaimable too.
 * A bounded queue has room again afterwards. */
static void test_reclaim(void **state)
{
        struct dm_bus *bus = open_bus("inproc:?max_messages=4");
        struct recorder r, back;
        rec_init(&r, bus, REC_KEEP);
        rec_init(&back, bus, REC_KEEP);
        assert_int_equal(dm_bus_reclaim(bus, "nope", rec_handler, &back), DM_ENOENT);
        assert_int_equal(dm_bus_reclaim(bus, "bad name", rec_handler, &back), DM_EINVAL);
        assert_int_equal(dm_bus_reclaim(bus, "q", NULL, &back), DM_EINVAL);
        assert_int_equal(dm_bus_declare(bus, "q", "#"), 0);
        assert_int_equal(dm_bus_reclaim(bus, "q", rec_handler, &back), 0);

        assert_int_equal(dm_bus_consume(bus, "q", 1, rec_handler, &r), 0);
        const char *bodies[] = {"held", "m1", "m2", "m3", "m4"};
        assert_int_equal(dm_bus_publish(bus, "task.x", bodies[0], strlen(bodies[0])), 0);
        assert_int_equal(rec_wait(&r, 1, 2000), 1);
        for (size_t i = 1; i < 5; i++)
                assert_int_equal(dm_bus_publish(bus, "task.x", bodies[i], strlen(bodies[i])), 0);
        assert_int_equal(dm_bus_cancel(bus, "q", rec_handler, &r), 0);
        assert_int_equal(dm_bus_publish(bus, "task.x", "full", 4), DM_ENOSPC);

        assert_int_equal(dm_bus_reclaim(bus, "q", rec_handler, &back), 4);
        assert_int_equal(back.n, 4);
        for (size_t i = 0; i < 4; i++) {
                assert_string_equal(back.msgs[i].body, bodies[i + 1]);
                assert_string_equal(back.msgs[i].key, "task.x");
                assert_int_equal(back.msgs[i].tag, 0);
        }
        assert_int_equal(dm_bus_reclaim(bus, "q", rec_handler, &back), 0);
        assert_int_equal(dm_bus_publish(bus, "task.x", "room", 4), 0);

        /* The held message is settled as before; requeued, it is reclaimable as well. */
        assert_int_equal(dm_bus_nack(bus, r.msgs[0].tag, true), 0);
        assert_int_equal(dm_bus_reclaim(bus, "q", rec_handler, &back), 2);
        assert_string_equal(back.msgs[4].body, "held");
        assert_true(back.msgs[4].redelivered);
        assert_string_equal(back.msgs[5].body, "room");
        dm_bus_free(bus);
        rec_done(&r);
        rec_done(&back);
}

static void test_fanout_and_unbound(void **state)
{
        struct dm_bus *bus = open_bus(NULL);
        struct recorder r1, r2;
        rec_init(&r1, bus, REC_ACK);
        rec_init(&r2, bus, REC_ACK);
        assert_int_equal(dm_bus_declare(bus, "q1", "change.#"), 0);
        assert_int_equal(dm_bus_declare(bus, "q2", "#.A"), 0);
        /* Two matching bindings of one queue still give it one copy. */
        assert_int_equal(dm_bus_declare(bus, "q2", "change.*.A"), 0);
        assert_int_equal(dm_bus_consume(bus, "q1", 8, rec_handler, &r1), 0);
        assert_int_equal(dm_bus_consume(bus, "q2", 8, rec_handler, &r2), 0);

        assert_int_equal(dm_bus_publish(bus, "nobody.listens", "x", 1), 0);
        assert_int_equal(dm_bus_publish(bus, "change.dns.A", "both", 4), 0);
        assert_int_equal(dm_bus_publish(bus, "change.dns.MX", "one", 3), 0);
        assert_int_equal(rec_wait(&r1, 2, 2000), 2);
        assert_int_equal(rec_wait(&r2, 1, 2000), 1);
        sleep_ms(50);
        assert_int_equal(rec_wait(&r1, 3, 0), 2);
        assert_int_equal(rec_wait(&r2, 2, 0), 1);
        assert_string_equal(r1.msgs[0].body, "both");
        assert_string_equal(r1.msgs[1].body, "one");
        assert_string_equal(r2.msgs[0].body, "both");

        /* A queue bound later does not see what was dropped before. */
        struct recorder r3;
        rec_init(&r3, bus, REC_ACK);
        assert_int_equal(dm_bus_declare(bus, "q3", "nobody.#"), 0);
        assert_int_equal(dm_bus_consume(bus, "q3", 8, rec_handler, &r3), 0);
        sleep_ms(50);
        assert_int_equal(rec_wait(&r3, 1, 0), 0);
        dm_bus_free(bus);
        rec_done(&r1);
        rec_done(&r2);
        rec_done(&r3);
}

static void test_queue_bounded(void **state)
{
        struct dm_bus *bus = open_bus("inproc:?max_messages=5&max_bytes=64");
        assert_int_equal(dm_bus_declare(bus, "small", "#"), 0);
        assert_int_equal(dm_bus_declare(bus, "other", "x"), 0);
        for (int i = 0; i < 5; i++)
                assert_int_equal(dm_bus_publish(bus, "y", "1234", 4), 0);
        assert_int_equal(dm_bus_publish(bus, "y", "1234", 4), DM_ENOSPC);
        /* "small" is full, so a fan-out to both reaches neither rather than one of two. */
        assert_int_equal(dm_bus_publish(bus, "x", "1234", 4), DM_ENOSPC);
        struct recorder ro;
        rec_init(&ro, bus, REC_ACK);
        assert_int_equal(dm_bus_consume(bus, "other", 1, rec_handler, &ro), 0);
        sleep_ms(50);
        assert_int_equal(rec_wait(&ro, 1, 0), 0);

        struct dm_bus *b2 = open_bus("inproc:?max_bytes=16");
        assert_int_equal(dm_bus_declare(b2, "q", "#"), 0);
        assert_int_equal(dm_bus_publish(b2, "k", "0123456789", 10), 0);
        assert_int_equal(dm_bus_publish(b2, "k", "0123456789", 10), DM_ENOSPC);
        assert_int_equal(dm_bus_publish(b2, "k", "0123456789abcdefghij", 20), DM_ENOSPC);

        /* Draining makes room again. */
        struct recorder r;
        rec_init(&r, b2, REC_ACK);
        assert_int_equal(dm_bus_consume(b2, "q", 1, rec_handler, &r), 0);
        assert_int_equal(rec_wait(&r, 1, 2000), 1);
        sleep_ms(20);
        assert_int_equal(dm_bus_publish(b2, "k", "0123456789", 10), 0);
        assert_int_equal(rec_wait(&r, 2, 2000), 2);
        dm_bus_free(bus);
        dm_bus_free(b2);
        rec_done(&r);
        rec_done(&ro);
}

/* Many producers and consumers: every message acked exactly once. */
#define STRESS_PRODUCERS 4
#define STRESS_CONSUMERS 4
#define STRESS_PER_PRODUCER 25000
#define STRESS_TOTAL (STRESS_PRODUCERS * STRESS_PER_PRODUCER)

struct stress {
        struct dm_bus *bus;
        atomic_uint acked[STRESS_TOTAL];
        atomic_uint delivered[STRESS_TOTAL];
        atomic_uint total_acked;
        atomic_uint bad;
        atomic_uint publish_retries;
};

struct stress_producer {
        struct stress *s;
        unsigned base;
};

static void *stress_produce(void *arg)
{
        struct stress_producer *p = arg;
        for (unsigned i = 0; i < STRESS_PER_PRODUCER; i++) {
                char body[16];
                int n = snprintf(body, sizeof(body), "%u", p->base + i);
                for (;;) {
                        int r = dm_bus_publish(p->s->bus, "stress.msg", body, (size_t)n);
                        if (r == 0)
                                break;
                        if (r != DM_ENOSPC) {
                                atomic_fetch_add(&p->s->bad, 1);
                                break;
                        }
                        atomic_fetch_add(&p->s->publish_retries, 1);
                        sleep_ms(1);
                }
        }
        return NULL;
}

static void stress_handler(void *arg, const struct dm_bus_msg *msg)
{
        struct stress *s = arg;
        char buf[16];
        if (msg->len == 0 || msg->len >= sizeof(buf)) {
                atomic_fetch_add(&s->bad, 1);
                return;
        }
        memcpy(buf, msg->body, msg->len);
        buf[msg->len] = '\0';
        unsigned long id = strtoul(buf, NULL, 10);
        if (id >= STRESS_TOTAL) {
                atomic_fetch_add(&s->bad, 1);
                return;
        }
        unsigned prior = atomic_fetch_add(&s->delivered[id], 1);
        /* Every 97th message is refused once, to mix redeliveries into the traffic. */
        if (id % 97 == 0 && prior == 0) {
                if (msg->redelivered)
                        atomic_fetch_add(&s->bad, 1);
                if (dm_bus_nack(s->bus, msg->tag, true) != 0)
                        atomic_fetch_add(&s->bad, 1);
                return;
        }
        if (dm_bus_ack(s->bus, msg->tag) != 0) {
                atomic_fetch_add(&s->bad, 1);
                return;
        }
        atomic_fetch_add(&s->acked[id], 1);
        atomic_fetch_add(&s->total_acked, 1);
}

static void test_many_threads(void **state)
{
        struct stress *s = calloc(1, sizeof(*s));
        assert_non_null(s);
        /* A small queue cap makes producers meet DM_ENOSPC and retry. */
        s->bus = open_bus("inproc:?max_messages=2000");
        assert_int_equal(dm_bus_declare(s->bus, "stress", "stress.*"), 0);
        for (int i = 0; i < STRESS_CONSUMERS; i++)
                assert_int_equal(dm_bus_consume(s->bus, "stress", 64, stress_handler, s), 0);

        pthread_t th[STRESS_PRODUCERS];
        struct stress_producer prod[STRESS_PRODUCERS];
        for (int i = 0; i < STRESS_PRODUCERS; i++) {
                prod[i].s = s;
                prod[i].base = (unsigned)i * STRESS_PER_PRODUCER;
                assert_int_equal(pthread_create(&th[i], NULL, stress_produce, &prod[i]), 0);
        }
        for (int i = 0; i < STRESS_PRODUCERS; i++)
                pthread_join(th[i], NULL);
        for (int waited = 0; waited < 60000; waited += 10) {
                if (atomic_load(&s->total_acked) == STRESS_TOTAL)
                        break;
                sleep_ms(10);
        }
        dm_bus_free(s->bus);

        assert_int_equal(atomic_load(&s->bad), 0);
        assert_int_equal(atomic_load(&s->total_acked), STRESS_TOTAL);
        for (unsigned i = 0; i < STRESS_TOTAL; i++) {
                assert_int_equal(atomic_load(&s->acked[i]), 1);
                assert_int_equal(atomic_load(&s->delivered[i]), i % 97 == 0 ? 2 : 1);
        }
        free(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_topic_match),        cmocka_unit_test(test_open_urls),
            cmocka_unit_test(test_bad_arguments),      cmocka_unit_test(test_publish_consume_ack),
            cmocka_unit_test(test_prefetch_limit),     cmocka_unit_test(test_nack_requeue),
            cmocka_unit_test(test_nack_from_handler),  cmocka_unit_test(test_cancel),
            cmocka_unit_test(test_fanout_and_unbound), cmocka_unit_test(test_queue_bounded),
            cmocka_unit_test(test_many_threads),       cmocka_unit_test(test_reclaim),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
