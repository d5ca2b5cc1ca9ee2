/* lib/events: SSE framing, stable ids, topic filters, and the hub (ring, replay after
 * Last-Event-ID, resets, repeats, backlog and eviction drops, heartbeats, caps, shutdown).
 * The hub takes the time as an argument, so heartbeats are tested without waiting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dm/error.h"
#include "dm/events.h"

/* ---- helpers ---- */

static char *frame(const char *event, const char *id, const char *data, size_t len, int *ret)
{
        static char out[4096];
        struct dm_buf b;
        dm_buf_init(&b, sizeof(out) - 1);
        *ret = dm_sse_append_event(&b, event, id, data, len);
        snprintf(out, sizeof(out), "%s", b.data ? b.data : "");
        dm_buf_done(&b);
        return out;
}

static const char *frame_ok(const char *event, const char *id, const char *data)
{
        int r;
        const char *f = frame(event, id, data, strlen(data), &r);
        assert_int_equal(r, 0);
        return f;
}

/* The body of a change event with this id. */
static const char *body(long id)
{
        static char buf[128];
        snprintf(buf, sizeof(buf), "{\"id\":%ld,\"domain\":\"example.com\"}", id);
        return buf;
}

static void publish(struct dm_event_hub *h, const char *topic, long id)
{
        const char *b = body(id);
        assert_int_equal(dm_event_hub_publish(h, topic, b, strlen(b)), 0);
}

/* What one event of body(id) looks like on the wire. */
static const char *wire(const char *topic, long id)
{
        static char buf[512];
        snprintf(buf, sizeof(buf), "event: %s\nid: %s:%ld\ndata: %s\n\n", topic, topic, id,
                 body(id));
        return buf;
}

/* Everything a stream has to send now, read `chunk` bytes at a time. */
static char *drain(struct dm_event_stream *s, size_t chunk, int64_t now)
{
        static char out[65536];
        size_t n = 0;
        for (;;) {
                ssize_t r = dm_event_stream_read(s, out + n, chunk, now);
                assert_true(r >= 0);
                if (r == 0)
                        break;
                n += (size_t)r;
                assert_true(n + chunk < sizeof(out));
        }
        out[n] = '\0';
        return out;
}

struct probe {
        int wakes;
        int kills;
};

static void probe_wake(void *arg)
{
        ((struct probe *)arg)->wakes++;
}

static void probe_kill(void *arg)
{
        ((struct probe *)arg)->kills++;
}

static const struct dm_event_stream_ops probe_ops = {.wake = probe_wake, .kill = probe_kill};

static struct dm_event_hub *hub(size_t max_events, size_t max_bytes, size_t max_backlog)
{
        struct dm_event_hub_opts o = {
            .max_events = max_events,
            .max_bytes = max_bytes,
            .max_streams = 4,
            .max_backlog = max_backlog,
            .stall_ms = 5000,
            .heartbeat_ms = 15000,
        };
        struct dm_event_hub *h = NULL;
        assert_int_equal(dm_event_hub_new(&o, &h), 0);
        return h;
}

static struct dm_event_stream *open_stream(struct dm_event_hub *h, const char *topics,
                                           const char *last_id, struct probe *p)
{
        struct dm_event_filter *f = NULL;
        struct dm_event_stream *s = NULL;
        char err[256];
        if (topics)
                assert_int_equal(dm_event_filter_parse(topics, err, sizeof(err), &f), 0);
        assert_int_equal(dm_event_stream_open(h, f, last_id, 0, &s), 0);
        if (p)
                dm_event_stream_attach(s, &probe_ops, p);
        /* Every stream opens with a comment line. */
        char first[16] = {0};
        assert_int_equal(dm_event_stream_read(s, first, 6, 0), 6);
        assert_string_equal(first, ": ok\n\n");
        return s;
}

/* ---- framing ---- */

static void test_sse_framing(void **state)
{
        int r;
        assert_string_equal(frame_ok("change.dns.A", "change.dns.A:7", "{\"id\":7}"),
                            "event: change.dns.A\nid: change.dns.A:7\ndata: {\"id\":7}\n\n");
        /* Every kind of line break ends a data line; none reaches the client inside one. */
        assert_string_equal(frame_ok(NULL, NULL, "a\nb\r\nc\rd"),
                            "data: a\ndata: b\ndata: c\ndata: d\n\n");
        assert_string_equal(frame_ok(NULL, NULL, "a\n"), "data: a\ndata: \n\n");
        assert_string_equal(frame_ok(NULL, NULL, "\r\n\n"), "data: \ndata: \ndata: \n\n");
        assert_string_equal(frame_ok(NULL, NULL, ""), "data: \n\n");
        assert_string_equal(frame_ok(NULL, NULL, " lead"), "data:  lead\n\n");
        assert_string_equal(frame_ok("reset", "", "{}"), "event: reset\nid:\ndata: {}\n\n");
        assert_string_equal(frame(NULL, NULL, NULL, 0, &r), "data: \n\n");
        assert_int_equal(r, 0);

        /* A field value with a line break would start a field nobody wrote. */
        frame("a\nid: forged", NULL, "x", 1, &r);
        assert_int_equal(r, DM_EINVAL);
        frame(NULL, "1\r", "x", 1, &r);
        assert_int_equal(r, DM_EINVAL);
        frame(NULL, NULL, "a\0b", 3, &r);
        assert_int_equal(r, DM_EINVAL);

        struct dm_buf b;
        dm_buf_init(&b, 64);
        assert_int_equal(dm_sse_append_comment(&b, "ping"), 0);
        assert_string_equal(b.data, ": ping\n\n");
        assert_int_equal(dm_sse_append_comment(&b, "a\nb"), DM_EINVAL);
        dm_buf_clear(&b);
        char big[100];
        memset(big, 'x', sizeof(big));
        assert_int_equal(dm_sse_append_event(&b, NULL, NULL, big, sizeof(big)), DM_E2BIG);
        dm_buf_done(&b);
}

static void test_event_id(void **state)
{
        char id[DM_EVENT_ID_MAX];
        const char *ok = "{\"domain\":\"a.test\",\"id\":1234}";
        assert_int_equal(dm_event_id("change.dns.A", ok, strlen(ok), id, sizeof(id)), 0);
        assert_string_equal(id, "change.dns.A:1234");
        assert_int_equal(dm_event_id("domain.added", "{\"id\":1}", 8, id, sizeof(id)), 0);
        assert_string_equal(id, "domain.added:1");

        static const char *const bad_bodies[] = {
            "{\"id\":0}",
            "{\"id\":-3}",
            "{\"id\":\"7\"}",
            "{\"id\":1.5}",
            "{\"x\":1}",
            "[1]",
            "7",
            "{\"id\":1",
            "{\"id\":1} x",
            "{\"id\":1,\"id\":2}",
            "",
            "{\"id\":1,\"t\":\"\xff\"}",
        };
        for (size_t i = 0; i < sizeof(bad_bodies) / sizeof(bad_bodies[0]); i++)
                assert_int_equal(
                    dm_event_id("t", bad_bodies[i], strlen(bad_bodies[i]), id, sizeof(id)),
                    DM_EINVAL);
        static const char *const bad_topics[] = {"",   "a..b", ".a",  "a.",  "a b",
                                                 "a*", "#",    "a.*", "a\nb"};
        for (size_t i = 0; i < sizeof(bad_topics) / sizeof(bad_topics[0]); i++)
                assert_int_equal(dm_event_id(bad_topics[i], "{\"id\":1}", 8, id, sizeof(id)),
                                 DM_EINVAL);
        assert_int_equal(dm_event_id("change.dns.A", ok, strlen(ok), id, 10), DM_E2BIG);
        assert_true(dm_event_topic_valid("change.dns.TYPE65"));
        assert_true(dm_event_topic_valid("tls.expiring"));
}

/* ---- filters ---- */

static void test_filter(void **state)
{
        struct dm_event_filter *f = NULL;
        char err[256];
        assert_int_equal(dm_event_filter_parse("change.dns.#,domain.*", err, sizeof(err), &f), 0);
        assert_true(dm_event_filter_match(f, "change.dns.A"));
        assert_true(dm_event_filter_match(f, "change.dns"));
        assert_true(dm_event_filter_match(f, "domain.added"));
        assert_false(dm_event_filter_match(f, "domain.added.x"));
        assert_false(dm_event_filter_match(f, "change.tls"));
        assert_false(dm_event_filter_match(f, "tls.expiring"));
        dm_event_filter_free(f);
        assert_true(dm_event_filter_match(NULL, "anything"));

        assert_int_equal(dm_event_filter_parse("#", err, sizeof(err), &f), 0);
        assert_true(dm_event_filter_match(f, "check.failing"));
        dm_event_filter_free(f);
        assert_int_equal(dm_event_filter_parse("*.*.MX", err, sizeof(err), &f), 0);
        assert_true(dm_event_filter_match(f, "change.dns.MX"));
        assert_false(dm_event_filter_match(f, "change.dns.A"));
        dm_event_filter_free(f);

        static const char *const bad[] = {
            "",     ",",    "a,", ",a", "a,,b", "a b", "a*",   "*a",
            "a.#b", "a..b", ".a", "a.", "**",   "a;b", "a\nb", "ch%41nge",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                f = NULL;
                err[0] = '\0';
                assert_int_equal(dm_event_filter_parse(bad[i], err, sizeof(err), &f), DM_EINVAL);
                assert_null(f);
                assert_true(err[0] != '\0');
        }
        /* At most DM_EVENT_FILTER_MAX patterns, each at most DM_EVENT_PATTERN_MAX bytes. */
        char many[256] = "";
        for (int i = 0; i < DM_EVENT_FILTER_MAX; i++)
                strcat(many, i ? ",a" : "a");
        assert_int_equal(dm_event_filter_parse(many, err, sizeof(err), &f), 0);
        dm_event_filter_free(f);
        strcat(many, ",a");
        assert_int_equal(dm_event_filter_parse(many, err, sizeof(err), &f), DM_EINVAL);
        char longp[DM_EVENT_PATTERN_MAX + 2];
        memset(longp, 'a', sizeof(longp) - 1);
        longp[sizeof(longp) - 1] = '\0';
        assert_int_equal(dm_event_filter_parse(longp, err, sizeof(err), &f), DM_EINVAL);
        longp[DM_EVENT_PATTERN_MAX] = '\0';
        assert_int_equal(dm_event_filter_parse(longp, err, sizeof(err), &f), 0);
        dm_event_filter_free(f);
}

/* ---- the hub ---- */

static void test_live_events(void **state)
{
        struct dm_event_hub *h = hub(100, 1 << 20, 1 << 20);
        struct probe p = {0};
        struct dm_event_stream *s = open_stream(h, NULL, NULL, &p);
        assert_string_equal(drain(s, 4096, 0), "");

        publish(h, "change.dns.A", 1);
        assert_int_equal(p.wakes, 1);
        publish(h, "domain.added", 2);
        char want[1024];
        snprintf(want, sizeof(want), "%s", wire("change.dns.A", 1));
        strcat(want, wire("domain.added", 2));
        assert_string_equal(drain(s, 4096, 0), want);

        /* Split across small reads, the bytes are the same. */
        publish(h, "change.dns.MX", 3);
        publish(h, "change.dns.TXT", 4);
        snprintf(want, sizeof(want), "%s", wire("change.dns.MX", 3));
        strcat(want, wire("change.dns.TXT", 4));
        assert_string_equal(drain(s, 7, 0), want);
        assert_int_equal(p.kills, 0);
        assert_int_equal(dm_event_stream_close(s), 0);
        dm_event_hub_free(h);
}

static void test_topic_filter(void **state)
{
        struct dm_event_hub *h = hub(100, 1 << 20, 1 << 20);
        struct probe p = {0};
        struct dm_event_stream *s = open_stream(h, "change.dns.#", NULL, &p);
        publish(h, "domain.added", 1);
        assert_int_equal(p.wakes, 0); /* not for this stream */
        publish(h, "change.dns.A", 2);
        publish(h, "check.failing", 3);
        assert_int_equal(p.wakes, 1);
        assert_string_equal(drain(s, 4096, 0), wire("change.dns.A", 2));
        dm_event_stream_close(s);
        dm_event_hub_free(h);
}

static void test_replay_after_last_event_id(void **state)
{
        struct dm_event_hub *h = hub(100, 1 << 20, 1 << 20);
        for (long i = 1; i <= 5; i++)
                publish(h, i % 2 ? "change.dns.A" : "domain.added", i);

        /* Exactly what came after the given event, in order. */
        struct dm_event_stream *s = open_stream(h, NULL, "domain.added:2", NULL);
        char want[2048] = "";
        strcat(want, wire("change.dns.A", 3));
        strcat(want, wire("domain.added", 4));
        strcat(want, wire("change.dns.A", 5));
        assert_string_equal(drain(s, 4096, 0), want);
        /* Then new events. */
        publish(h, "change.dns.A", 6);
        assert_string_equal(drain(s, 4096, 0), wire("change.dns.A", 6));
        dm_event_stream_close(s);

        /* With a filter: only the matching ones after it. */
        s = open_stream(h, "domain.*", "change.dns.A:1", NULL);
        snprintf(want, sizeof(want), "%s", wire("domain.added", 2));
        strcat(want, wire("domain.added", 4));
        assert_string_equal(drain(s, 4096, 0), want);
        dm_event_stream_close(s);

        /* The newest event: nothing missed, nothing replayed. */
        s = open_stream(h, NULL, "change.dns.A:6", NULL);
        assert_string_equal(drain(s, 4096, 0), "");
        dm_event_stream_close(s);
        dm_event_hub_free(h);
}

static void test_reset_when_not_held(void **state)
{
        struct dm_event_hub *h = hub(3, 1 << 20, 1 << 20);
        /* An empty hub: the reset's id is empty, which clears the client's. */
        struct dm_event_stream *s = open_stream(h, NULL, "change.dns.A:1", NULL);
        const char *out = drain(s, 4096, 0);
        assert_non_null(
            strstr(out, "event: reset\nid:\ndata: {\"reason\":\"unknown_last_event_id\""));
        dm_event_stream_close(s);

        for (long i = 1; i <= 5; i++)
                publish(h, "change.dns.A", i);
        /* Event 1 is gone (3 held: 3, 4, 5): say so, with the newest id, then go on live. */
        s = open_stream(h, NULL, "change.dns.A:1", NULL);
        out = drain(s, 4096, 0);
        assert_true(strncmp(out, "event: reset\nid: change.dns.A:5\ndata: {", 39) == 0);
        assert_non_null(strstr(out, "unknown_last_event_id"));
        assert_int_equal(out[strlen(out) - 1], '\n');
        assert_int_equal(out[strlen(out) - 2], '\n');
        assert_null(strstr(out, "change.dns.A:3"));
        publish(h, "change.dns.A", 6);
        assert_string_equal(drain(s, 4096, 0), wire("change.dns.A", 6));
        dm_event_stream_close(s);

        /* An id from somewhere else entirely, or garbage. */
        s = open_stream(h, NULL, "no such id \x01", NULL);
        assert_non_null(strstr(drain(s, 4096, 0), "event: reset\n"));
        dm_event_stream_close(s);
        dm_event_hub_free(h);
}

static void test_reset_when_replay_too_large(void **state)
{
        size_t one = strlen(wire("change.dns.A", 10));
        struct dm_event_hub *h = hub(100, 1 << 20, 2 * one);
        for (long i = 10; i < 20; i++)
                publish(h, "change.dns.A", i);
        struct dm_event_stream *s = open_stream(h, NULL, "change.dns.A:10", NULL);
        const char *out = drain(s, 4096, 0);
        assert_non_null(strstr(out, "event: reset\nid: change.dns.A:19\n"));
        assert_non_null(strstr(out, "replay_too_large"));
        assert_null(strstr(out, "change.dns.A:11"));
        dm_event_stream_close(s);
        /* Two missed fit. */
        s = open_stream(h, NULL, "change.dns.A:17", NULL);
        char want[1024];
        snprintf(want, sizeof(want), "%s", wire("change.dns.A", 18));
        strcat(want, wire("change.dns.A", 19));
        assert_string_equal(drain(s, 4096, 0), want);
        dm_event_stream_close(s);
        dm_event_hub_free(h);
}

static void test_repeats_dropped(void **state)
{
        struct dm_event_hub *h = hub(100, 1 << 20, 1 << 20);
        struct dm_event_stream *s = open_stream(h, NULL, NULL, NULL);
        publish(h, "change.dns.A", 1);
        const char *b = body(1);
        assert_int_equal(dm_event_hub_publish(h, "change.dns.A", b, strlen(b)), DM_EEXIST);
        /* The same id under another topic is another event. */
        publish(h, "change.dns.MX", 1);
        char want[1024];
        snprintf(want, sizeof(want), "%s", wire("change.dns.A", 1));
        strcat(want, wire("change.dns.MX", 1));
        assert_string_equal(drain(s, 4096, 0), want);
        assert_int_equal(dm_event_hub_publish(h, "change.dns.A", "{\"id\":0}", 8), DM_EINVAL);
        assert_int_equal(dm_event_hub_publish(h, "task.dns", "{\"tasks\":[]}", 12), DM_EINVAL);
        struct dm_event_hub_stats st;
        dm_event_hub_stats(h, &st);
        assert_int_equal(st.published, 2);
        assert_int_equal(st.repeats, 1);
        assert_int_equal(st.events, 2);
        dm_event_stream_close(s);
        dm_event_hub_free(h);
}

/* A stream whose unsent events stay above the cap for stall_ms is dropped; one that was
 * above it in a burst and caught up is not. The ring, not the streams, holds the bytes. */
static void test_slow_stream_dropped(void **state)
{
        size_t one = strlen(wire("change.dns.A", 100));
        struct dm_event_hub *h = hub(1000, 1 << 20, 5 * one);
        struct probe slow = {0}, quick = {0};
        struct dm_event_stream *s = open_stream(h, NULL, NULL, &slow);
        struct dm_event_stream *q = open_stream(h, NULL, NULL, &quick);
        for (long i = 100; i < 110; i++)
                publish(h, "change.dns.A", i); /* a burst of 10: both are above the cap */
        assert_int_equal(dm_event_hub_tick(h, 1000), 5000);
        assert_int_equal(slow.kills + quick.kills, 0);
        drain(q, 4096, 2000); /* the quick one catches up */
        assert_int_equal(dm_event_hub_tick(h, 5999), 1);
        assert_int_equal(slow.kills + quick.kills, 0);
        dm_event_hub_tick(h, 6000);
        assert_int_equal(slow.kills, 1);
        assert_int_equal(quick.kills, 0);
        char buf[64];
        assert_int_equal(dm_event_stream_read(s, buf, sizeof(buf), 6000), DM_ECANCELED);
        publish(h, "change.dns.A", 110);
        dm_event_hub_tick(h, 20000);
        assert_int_equal(slow.kills, 1);
        assert_int_equal(quick.kills, 0);
        assert_string_equal(drain(q, 4096, 20000), wire("change.dns.A", 110));
        struct dm_event_hub_stats st;
        dm_event_hub_stats(h, &st);
        assert_int_equal(st.streams_dropped, 1);
        assert_int_equal(dm_event_stream_close(s), DM_ECANCELED);

        /* Going below the cap starts the grace over. */
        for (long i = 111; i < 118; i++)
                publish(h, "change.dns.A", i);
        dm_event_hub_tick(h, 21000);
        char part[400];
        assert_true(dm_event_stream_read(q, part, 3 * one, 24000) > 0); /* 4 left: below */
        for (long i = 118; i < 121; i++)
                publish(h, "change.dns.A", i);
        dm_event_hub_tick(h, 25000); /* above again, since now */
        dm_event_hub_tick(h, 29999);
        assert_int_equal(quick.kills, 0);
        dm_event_hub_tick(h, 30000);
        assert_int_equal(quick.kills, 1);
        assert_int_equal(dm_event_stream_close(q), DM_ECANCELED);

        /* One event larger than the cap reaches a stream that keeps up. */
        struct dm_event_hub *h2 = hub(10, 1 << 20, 64);
        struct probe p = {0};
        s = open_stream(h2, NULL, NULL, &p);
        char big[2048];
        int n = snprintf(big, sizeof(big), "{\"id\":1,\"pad\":\"%0900d\"}", 0);
        assert_int_equal(dm_event_hub_publish(h2, "change.dns.TXT", big, (size_t)n), 0);
        assert_int_equal(p.kills, 0);
        assert_non_null(strstr(drain(s, 100, 0), "id: change.dns.TXT:1\n"));
        dm_event_stream_close(s);
        dm_event_hub_free(h2);
        dm_event_hub_free(h);
}

/* When the ring drops an event a stream still owes (all or part of it), that stream is
 * dropped; events it would not have sent do not count. */
static void test_eviction_drops_owing_streams(void **state)
{
        struct dm_event_hub *h = hub(3, 1 << 20, 1 << 20);
        struct probe a = {0}, dns = {0}, part = {0};
        struct dm_event_stream *sa = open_stream(h, NULL, NULL, &a);
        struct dm_event_stream *sd = open_stream(h, "change.#", NULL, &dns);
        struct dm_event_stream *sp = open_stream(h, NULL, NULL, &part);
        publish(h, "domain.added", 1);
        char buf[16];
        assert_int_equal(dm_event_stream_read(sp, buf, 10, 0), 10); /* part of event 1 */
        publish(h, "domain.added", 2);
        publish(h, "domain.added", 3);
        assert_int_equal(a.kills + dns.kills + part.kills, 0);
        publish(h, "domain.added", 4); /* evicts 1 */
        assert_int_equal(a.kills, 1);
        assert_int_equal(part.kills, 1);
        assert_int_equal(dns.kills, 0); /* it never wanted event 1 */
        publish(h, "change.dns.A", 5);
        assert_string_equal(drain(sd, 4096, 0), wire("change.dns.A", 5));
        assert_int_equal(dm_event_stream_close(sa), DM_ECANCELED);
        assert_int_equal(dm_event_stream_close(sd), 0);
        assert_int_equal(dm_event_stream_close(sp), DM_ECANCELED);
        dm_event_hub_free(h);
}

static void test_ring_bounded_by_bytes(void **state)
{
        size_t one = strlen(wire("change.dns.A", 10));
        struct dm_event_hub *h = hub(1000, 3 * one, 1 << 20);
        for (long i = 10; i < 20; i++)
                publish(h, "change.dns.A", i);
        struct dm_event_hub_stats st;
        dm_event_hub_stats(h, &st);
        assert_int_equal(st.events, 3);
        assert_int_equal(st.bytes, 3 * one);
        assert_int_equal(st.evicted, 7);
        /* Larger than the whole ring: refused rather than emptying it. */
        char big[1024];
        int n = snprintf(big, sizeof(big), "{\"id\":1,\"pad\":\"%0400d\"}", 0);
        assert_int_equal(dm_event_hub_publish(h, "change.dns.TXT", big, (size_t)n), DM_E2BIG);
        dm_event_hub_stats(h, &st);
        assert_int_equal(st.events, 3);
        dm_event_hub_free(h);
}

/* Many events through a small ring: the id index finds exactly what is held. */
static void test_index_churn(void **state)
{
        static const char *const topics[] = {"change.dns.A", "change.dns.MX", "domain.added",
                                             "domain.removed", "check.failing"};
        struct dm_event_hub *h = hub(7, 1 << 20, 1 << 20);
        long n = 0;
        for (long i = 1; i <= 3000; i++) {
                publish(h, topics[(i * 7) % 5], i % 977 + 1 + (i / 977) * 1000);
                n = i;
        }
        /* The 7 newest are held: resuming after any of them gives no reset. */
        for (long i = n; i > n - 7; i--) {
                char id[64];
                snprintf(id, sizeof(id), "%s:%ld", topics[(i * 7) % 5],
                         i % 977 + 1 + (i / 977) * 1000);
                struct dm_event_stream *s = open_stream(h, NULL, id, NULL);
                const char *out = drain(s, 4096, 0);
                assert_null(strstr(out, "event: reset"));
                dm_event_stream_close(s);
        }
        char id[64];
        long i = n - 7;
        snprintf(id, sizeof(id), "%s:%ld", topics[(i * 7) % 5], i % 977 + 1 + (i / 977) * 1000);
        struct dm_event_stream *s = open_stream(h, NULL, id, NULL);
        assert_non_null(strstr(drain(s, 4096, 0), "event: reset"));
        dm_event_stream_close(s);
        dm_event_hub_free(h);
}

static void test_heartbeat(void **state)
{
        struct dm_event_hub *h = hub(10, 1 << 20, 1 << 20);
        struct probe p = {0};
        struct dm_event_stream *s = open_stream(h, NULL, NULL, &p);
        assert_int_equal(dm_event_hub_tick(h, 5000), 10000);
        assert_int_equal(p.wakes, 0);
        assert_int_equal(dm_event_stream_read(s, (char[16]){0}, 16, 14999), 0);
        assert_int_equal(dm_event_hub_tick(h, 15000), 15000);
        assert_int_equal(p.wakes, 1);
        assert_string_equal(drain(s, 4096, 15000), ": ping\n\n");
        assert_int_equal(dm_event_hub_tick(h, 20000), 10000);
        /* Sending an event counts as traffic. */
        publish(h, "change.dns.A", 1);
        drain(s, 4096, 29000);
        assert_string_equal(drain(s, 4096, 30000), "");
        assert_int_equal(dm_event_hub_tick(h, 30000), 14000);
        dm_event_stream_close(s);
        dm_event_hub_free(h);
}

static void test_stream_cap_and_shutdown(void **state)
{
        struct dm_event_hub *h = hub(10, 1 << 20, 1 << 20);
        struct probe p[4] = {{0}};
        struct dm_event_stream *s[4];
        for (int i = 0; i < 4; i++)
                s[i] = open_stream(h, NULL, NULL, &p[i]);
        struct dm_event_stream *extra = NULL;
        assert_int_equal(dm_event_stream_open(h, NULL, NULL, 0, &extra), DM_ENOSPC);
        assert_null(extra);
        dm_event_stream_close(s[1]);
        s[1] = open_stream(h, NULL, NULL, &p[1]);

        dm_event_hub_shutdown(h);
        for (int i = 0; i < 4; i++) {
                assert_true(p[i].wakes >= 1);
                char buf[16];
                assert_int_equal(dm_event_stream_read(s[i], buf, sizeof(buf), 0), DM_ESHUTDOWN);
        }
        assert_int_equal(dm_event_hub_publish(h, "change.dns.A", body(1), strlen(body(1))),
                         DM_ESHUTDOWN);
        dm_event_stream_close(s[0]);
        assert_int_equal(dm_event_stream_open(h, NULL, NULL, 0, &extra), DM_ESHUTDOWN);
        for (int i = 1; i < 4; i++)
                dm_event_stream_close(s[i]);
        dm_event_hub_free(h);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_sse_framing),
            cmocka_unit_test(test_event_id),
            cmocka_unit_test(test_filter),
            cmocka_unit_test(test_live_events),
            cmocka_unit_test(test_topic_filter),
            cmocka_unit_test(test_replay_after_last_event_id),
            cmocka_unit_test(test_reset_when_not_held),
            cmocka_unit_test(test_reset_when_replay_too_large),
            cmocka_unit_test(test_repeats_dropped),
            cmocka_unit_test(test_slow_stream_dropped),
            cmocka_unit_test(test_eviction_drops_owing_streams),
            cmocka_unit_test(test_ring_bounded_by_bytes),
            cmocka_unit_test(test_index_churn),
            cmocka_unit_test(test_heartbeat),
            cmocka_unit_test(test_stream_cap_and_shutdown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
