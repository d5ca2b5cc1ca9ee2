/* The congestion window of lib/dns/window.c, driven two ways: by short synthetic sequences
 * that check one rule each, and by a small discrete-event simulation of a path (delay,
 * random loss each way) to a server (unlimited, rate-capped like a public resolver, or a
 * queue that overflows like a socket buffer) that checks what the rules add up to: random
 * loss costs no throughput, a rate cap is held near the cap, an overflowing queue is not
 * overrun. Simulated time only: nothing here depends on the speed of the machine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm/dnswindow.h"

#define MS 1000
#define SEC 1000000

/* ---- rules, one at a time ---- */

/* n answers in a row, each sent `rtt` before it arrives, `gap` apart. Returns the time after
 * the last. */
static int64_t answers(struct dm_dns_window *w, int64_t t, int n, int64_t rtt, int64_t gap)
{
        for (int i = 0; i < n; i++) {
                dm_dns_window_answer(w, t, t - rtt, rtt, DM_DNS_WINDOW_CLEAN);
                t += gap;
        }
        return t;
}

/* An open-loop driver: sends at a fixed rate with the window pinned at a size, loses a fixed
 * fraction (every 1/p-th send, so that the figures are exact), and delivers each outcome when
 * the resolver would see it: an answer one RTT after its send, a loss when its timer (the
 * window's RTO at the time of the send) fires. */
#define DRIVE_MAX 65536

struct drive {
        struct dm_dns_window w;
        int64_t t, rtt;
        double acc;
        struct {
                int64_t sent_at, due;
        } ans[DRIVE_MAX], lost[DRIVE_MAX];
        uint32_t ans_head, ans_tail, lost_head, lost_tail;
};

static struct drive *drive_new(uint32_t max, int64_t rtt)
{
        struct drive *d = calloc(1, sizeof(*d));
        assert_non_null(d);
        dm_dns_window_init(&d->w, max, 0);
        d->t = SEC;
        d->rtt = rtt;
        /* A few samples first: the RTO is then steady. */
        d->t = answers(&d->w, d->t, 8, rtt, 10);
        return d;
}

static void drive_deliver(struct drive *d)
{
        for (;;) {
                bool a = d->ans_head != d->ans_tail && d->ans[d->ans_head % DRIVE_MAX].due <= d->t;
                bool l =
                    d->lost_head != d->lost_tail && d->lost[d->lost_head % DRIVE_MAX].due <= d->t;
                if (a && (!l || d->ans[d->ans_head % DRIVE_MAX].due <=
                                    d->lost[d->lost_head % DRIVE_MAX].due)) {
                        int64_t sent = d->ans[d->ans_head++ % DRIVE_MAX].sent_at;
                        dm_dns_window_answer(&d->w, d->t, sent, d->t - sent, DM_DNS_WINDOW_CLEAN);
                } else if (l) {
                        int64_t sent = d->lost[d->lost_head++ % DRIVE_MAX].sent_at;
                        dm_dns_window_loss(&d->w, d->t, sent, 0);
                } else {
                        return;
                }
        }
}

/* `ms` milliseconds of `per_ms` sends each, a fraction `p` of them lost, with the window
 * pinned at `size` (0: left to itself). */
static void drive(struct drive *d, double size, int per_ms, double p, int ms)
{
        for (int i = 0; i < ms; i++) {
                if (size > 0)
                        d->w.cwnd = d->w.ssthresh = size;
                drive_deliver(d);
                for (int k = 0; k < per_ms; k++) {
                        dm_dns_window_sent(&d->w, d->t, 0);
                        d->acc += p;
                        if (d->acc >= 1.0) {
                                d->acc -= 1.0;
                                d->lost[d->lost_tail % DRIVE_MAX].sent_at = d->t;
                                d->lost[d->lost_tail++ % DRIVE_MAX].due =
                                    d->t + dm_dns_window_rto(&d->w);
                        } else {
                                d->ans[d->ans_tail % DRIVE_MAX].sent_at = d->t;
                                d->ans[d->ans_tail++ % DRIVE_MAX].due = d->t + d->rtt;
                        }
                }
                d->t += MS;
        }
}

/* Lets every outcome arrive and be counted, with a trickle of sends that all get answers:
 * the window only looks at its figures when something happens. */
static void drive_drain(struct drive *d)
{
        drive(d, 0, 1, 0, 300);
}

static void test_init_and_limits(void **state)
{
        struct dm_dns_window w;
        dm_dns_window_init(&w, 1000, 0);
        assert_int_equal(dm_dns_window_size(&w), DM_DNS_WINDOW_START);
        assert_int_equal(dm_dns_window_rto(&w), 200 * MS); /* no sample yet */
        assert_true(dm_dns_window_loss_rate(&w) == 0.0);

        dm_dns_window_init(&w, 10, 0);
        assert_int_equal(dm_dns_window_size(&w), 10);
        answers(&w, 1 * SEC, 100, 5 * MS, 10);
        assert_int_equal(dm_dns_window_size(&w), 10); /* never above the maximum */

        dm_dns_window_init(&w, 0, 0);
        assert_int_equal(dm_dns_window_size(&w), 1);
}

static void test_slow_start_doubles(void **state)
{
        struct dm_dns_window w;
        dm_dns_window_init(&w, 100000, 0);
        int64_t t = 10 * MS;
        /* Every answer in slow start adds one: a window's worth of answers doubles it. */
        t = answers(&w, t, 64, 10 * MS, 10);
        assert_int_equal(dm_dns_window_size(&w), 128);
        t = answers(&w, t, 128, 10 * MS, 10);
        assert_int_equal(dm_dns_window_size(&w), 256);
        /* Above the threshold: one per window's worth. */
        w.ssthresh = 256;
        answers(&w, t, 256, 10 * MS, 10);
        assert_int_equal(dm_dns_window_size(&w), 256);
        assert_true(w.cwnd > 256.9 && w.cwnd < 257.1);
}

static void test_rto(void **state)
{
        struct dm_dns_window w;
        dm_dns_window_init(&w, 1000, 0);
        answers(&w, SEC, 50, 20 * MS, 10);
        /* Steady 20 ms: four round trips. */
        assert_int_equal(dm_dns_window_rto(&w), 80 * MS);

        dm_dns_window_init(&w, 1000, 0);
        answers(&w, SEC, 50, 1 * MS, 10);
        assert_int_equal(dm_dns_window_rto(&w), 50 * MS); /* the floor */

        dm_dns_window_init(&w, 1000, 0);
        answers(&w, SEC, 50, 2 * SEC, 10);
        assert_int_equal(dm_dns_window_rto(&w), 1 * SEC); /* the ceiling */

        /* Scattered samples: the deviation counts. */
        dm_dns_window_init(&w, 1000, 0);
        int64_t t = SEC;
        for (int i = 0; i < 200; i++, t += 10)
                dm_dns_window_answer(&w, t, t - (i % 2 ? 5 : 100) * MS, (i % 2 ? 5 : 100) * MS,
                                     DM_DNS_WINDOW_CLEAN);
        assert_true(dm_dns_window_rto(&w) > 4 * w.srtt);
}

/* The smallest RTT of a round rising by half ends slow start where it is; the same RTTs
 * scattered (slow answers among fast ones) do not. */
static void test_slow_start_exit_on_rtt_rise(void **state)
{
        struct dm_dns_window w;
        dm_dns_window_init(&w, 100000, 0);
        int64_t t = SEC;
        t = answers(&w, t, 64, 2 * MS, 10);
        t = answers(&w, t, 128, 2 * MS, 10);
        assert_true(w.cwnd < w.ssthresh);
        t = answers(&w, t, 600, 4 * MS, 10); /* every answer at 4 ms: a queue */
        assert_true(w.ssthresh < 100000);
        assert_true(w.ssthresh >= 256 && w.ssthresh <= 800);
        (void)t;

        dm_dns_window_init(&w, 100000, 0);
        t = SEC;
        for (int i = 0; i < 2000; i++, t += 10) {
                int64_t rtt = i % 3 ? 50 * MS : 2 * MS; /* cache misses among hits */
                dm_dns_window_answer(&w, t, t - rtt, rtt, DM_DNS_WINDOW_CLEAN);
        }
        assert_true(w.cwnd < w.ssthresh); /* still in slow start */
}

/* Loss at the same rate at every window is not overload: no cut. */
static void test_random_loss_is_not_overload(void **state)
{
        struct drive *d = drive_new(1000, 20 * MS);
        /* 6 % lost (3 % each way) at 100, 200, 400, 800 in flight (5,000 .. 40,000 sends a
         * second). The first window has nothing smaller to compare with: it may be probed
         * once. Above 10 %, windows are probed now and then even when the smaller ones lost
         * as much; test_sim_random_loss sees those probes taken back. */
        drive(d, 100, 5, 0.06, 500);
        uint64_t probes = d->w.cuts;
        assert_true(probes <= 1);
        drive(d, 200, 10, 0.06, 500);
        drive(d, 400, 20, 0.06, 500);
        drive(d, 800, 40, 0.06, 1000);
        drive_drain(d);
        assert_int_equal(d->w.cuts, probes);
        double rate = dm_dns_window_loss_rate(&d->w);
        assert_true(rate > 0.05 && rate < 0.07);
        free(d);
}

/* Loss that appears at a window larger than those that did not lose: a cut, to about the
 * share of the window that was answered. */
static void test_loss_growing_with_window_cuts(void **state)
{
        struct drive *d = drive_new(1000, 20 * MS);
        drive(d, 100, 5, 0.01, 500);
        drive(d, 200, 10, 0.01, 500);
        uint64_t probes = d->w.cuts;
        drive(d, 400, 20, 0.40, 30);
        drive_drain(d); /* the losses are seen an RTO later */
        assert_int_equal(d->w.cuts, probes + 1);
        /* About 60 % of the window was answered (against 99 % at smaller windows), with
         * a margin: a cut to a bit over half of 400. */
        assert_true(d->w.cwnd > 400 * 0.45 && d->w.cwnd < 400 * 0.6);
        assert_true(d->w.ssthresh <= d->w.cwnd + 1);
        free(d);
}

/* Losses of queries sent before a cut belong to the overflow that caused it: one cut, however
 * long they take to come in. */
static void test_one_cut_per_episode(void **state)
{
        struct drive *d = drive_new(1000, 20 * MS);
        drive(d, 100, 5, 0.0, 500);
        drive(d, 400, 20, 0.5, 100);
        drive_drain(d);
        assert_int_equal(d->w.cuts, 1);
        free(d);
}

/* Drives at `size` until the window cuts (at most `ms` milliseconds). */
static void drive_until_cut(struct drive *d, double size, int per_ms, double p, int ms)
{
        uint64_t cuts = d->w.cuts;
        for (int i = 0; i < ms && d->w.cuts == cuts; i++)
                drive(d, size, per_ms, p, 1);
}

/* A window without smaller ones to compare with is probed: when the smaller window loses as
 * much, the cut is taken back, and the next probe waits. */
static void test_probe_taken_back(void **state)
{
        struct drive *d = drive_new(1000, 20 * MS);
        drive_until_cut(d, 400, 20, 0.05, 300);
        assert_int_equal(d->w.cuts, 1);
        assert_true(d->w.cwnd <= 400 * 0.7 + 1);
        /* The smaller window loses 5 % as well. */
        drive(d, 0, 14, 0.05, 500);
        assert_int_equal(d->w.undos, 1);
        assert_true(d->w.cwnd >= 400);
        assert_true(d->w.probe_after > d->t);
        free(d);
}

/* The same probe stays when the smaller window does not lose. */
static void test_probe_kept_when_smaller_is_clean(void **state)
{
        struct drive *d = drive_new(1000, 20 * MS);
        drive_until_cut(d, 400, 20, 0.2, 300);
        assert_int_equal(d->w.cuts, 1);
        assert_true(d->w.cwnd <= 400 * 0.7 + 1);
        drive(d, 0, 14, 0.0, 500);
        assert_int_equal(d->w.undos, 0);
        assert_int_equal(d->w.check_band, 0);    /* checked, and kept */
        assert_true(d->w.cwnd < 400 * 0.7 + 40); /* grown by one per round trip since */
        free(d);
}

/* An answer to a query taken as lost: the server was slow; the cut is taken back and the
 * loss struck from the statistics. */
static void test_late_answer_undoes_cut(void **state)
{
        struct drive *d = drive_new(1000, 20 * MS);
        drive(d, 100, 5, 0.0, 500);
        int64_t sent = d->t;
        drive(d, 300, 20, 0.5, 10);
        drive_drain(d);
        assert_int_equal(d->w.cuts, 1);
        assert_true(d->w.cwnd < 300);
        double rate = dm_dns_window_loss_rate(&d->w);
        dm_dns_window_late(&d->w, d->t, sent, 0);
        dm_dns_window_answer(&d->w, d->t, sent, -1, 0);
        assert_true(d->w.cwnd >= 300);
        assert_int_equal(d->w.undos, 1);
        assert_true(dm_dns_window_loss_rate(&d->w) < rate);
        free(d);
}

/* A cut never goes much below what the path held in a round trip (the highest delivery rate
 * times the smallest RTT): a burst that overran a buffer does not say the server serves
 * less. */
static void test_cut_keeps_what_the_path_held(void **state)
{
        struct drive *d = drive_new(1000, 20 * MS);
        drive(d, 100, 40, 0.0, 300); /* 40,000 answers a second over 20 ms: 800 */
        drive(d, 400, 40, 0.9, 30);
        drive(d, 0, 1, 0.0, 130);
        assert_int_equal(d->w.cuts, 1);
        /* The rates alone would keep an eighth of 395; the pipe, most of it. */
        assert_true(d->w.cwnd >= 395 * 0.75 - 1);
        assert_true(d->w.cwnd < 400);
        free(d);
}

/* The first cut ends slow start: the window grows back as in slow start to the share that
 * was answered, then by one per round trip. Later cuts grow back by one per round trip. */
static void test_first_cut_grows_back_fast(void **state)
{
        struct drive *d = drive_new(100000, 20 * MS);
        drive(d, 100, 5, 0.0, 300);
        drive(d, 400, 20, 0.3, 30);
        drive(d, 0, 1, 0.0, 130);
        assert_int_equal(d->w.cuts, 1);
        assert_true(d->w.ssthresh > d->w.cwnd + 10);
        double before = d->w.cwnd;
        answers(&d->w, d->t, 10, 20 * MS, 10);
        assert_true(d->w.cwnd >= before + 9.9);

        drive(d, 400, 20, 0.3, 30);
        drive(d, 0, 1, 0.0, 130);
        assert_int_equal(d->w.cuts, 2);
        assert_true(d->w.ssthresh <= d->w.cwnd + 1);
        free(d);
}

/* Smaller windows that lose as much as this one do not hide an overload when the smallest
 * windows used lost nothing: two loops sharing a server each see the other's overflow at
 * their smaller windows. With the same loss at the smallest windows, it is random: no cut. */
static void test_baseline_of_the_smallest_windows(void **state)
{
        struct drive *d = drive_new(1000, 20 * MS);
        drive(d, 40, 4, 0.0, 1000);
        drive(d, 70, 5, 0.2, 4000); /* the band below 100 loses 20 % */
        drive(d, 40, 1, 0.0, 300);  /* its last runs are counted */
        uint64_t cuts = d->w.cuts;
        drive(d, 100, 5, 0.22, 300);
        drive(d, 0, 1, 0.0, 130);
        assert_true(d->w.cuts > cuts);
        free(d);

        d = drive_new(1000, 20 * MS);
        drive(d, 40, 4, 0.2, 1000);
        uint64_t probes = d->w.cuts;
        drive(d, 100, 5, 0.2, 200);
        drive(d, 0, 1, 0.0, 130);
        assert_int_equal(d->w.cuts, probes);
        free(d);
}

/* Retransmissions are left out of the loss statistics: their timers are backed off, and
 * their losses would be counted after their sends. */
static void test_retransmissions_not_counted(void **state)
{
        struct dm_dns_window w;
        dm_dns_window_init(&w, 1000, 0);
        int64_t t = answers(&w, SEC, 8, 20 * MS, 10);
        for (int i = 0; i < 1000; i++, t += 100) {
                dm_dns_window_sent(&w, t, DM_DNS_WINDOW_RETRY);
                dm_dns_window_loss(&w, t, t - 160 * MS, DM_DNS_WINDOW_RETRY);
        }
        dm_dns_window_answer(&w, t + SEC, t, 20 * MS, DM_DNS_WINDOW_CLEAN);
        assert_true(dm_dns_window_loss_rate(&w) == 0.0);
        assert_int_equal(w.cuts, 0);
}

/* Nothing takes the window below the floor. */
static void test_floor(void **state)
{
        struct drive *d = drive_new(1000, 20 * MS);
        drive(d, 8, 1, 0.0, 1000);
        for (int k = 0; k < 20; k++)
                drive(d, 0, 10, 0.95, 200);
        assert_true(d->w.cuts > 0);
        assert_true(d->w.cwnd >= DM_DNS_WINDOW_FLOOR);
        free(d);
}

/* ---- the simulation ---- */

enum { TX_PENDING, TX_ANSWERED, TX_LOST };
enum { EV_ANSWER, EV_TIMER };

#define SIM_TX (1u << 20) /* transmissions remembered (ring) */
#define SIM_EVENTS (1u << 18)
#define SIM_CLIENTS 4

struct sim_tx {
        int64_t sent_at;
        uint8_t state;
        uint8_t client;
};

struct sim_ev {
        int64_t at;
        uint32_t tx;
        uint8_t kind;
};

struct sim_path {
        int64_t delay;           /* one way, us */
        double loss_up, loss_dn; /* random loss each way */
        double cap;              /* answers per second the server lets through; 0: any */
        double cap_burst;        /* tokens the cap's bucket holds */
        double service;          /* queries per second a queue serves; 0: no queue */
        int queue_limit;         /* queries the queue holds; beyond, dropped */
};

struct sim {
        struct sim_path path;
        struct dm_dns_window win[SIM_CLIENTS];
        uint32_t inflight[SIM_CLIENTS];
        int nclients;
        struct sim_tx *tx;
        uint32_t ntx;
        struct sim_ev *heap;
        size_t nheap;
        uint64_t rng;
        double tokens;
        int64_t tokens_at;
        int64_t busy_until; /* the queue is served until then */
        int64_t now;
        /* measured from `measure_from` on */
        int64_t measure_from;
        uint64_t answers, sent, losses;
        double cwnd_sum;
        uint64_t cwnd_n;
};

static double sim_rand(struct sim *s)
{
        s->rng ^= s->rng << 13;
        s->rng ^= s->rng >> 7;
        s->rng ^= s->rng << 17;
        return (double)(s->rng >> 11) / 9007199254740992.0;
}

static void sim_push(struct sim *s, int64_t at, uint32_t tx, uint8_t kind)
{
        assert_true(s->nheap < SIM_EVENTS);
        size_t i = s->nheap++;
        struct sim_ev e = {.at = at, .tx = tx, .kind = kind};
        while (i > 0 && s->heap[(i - 1) / 2].at > at) {
                s->heap[i] = s->heap[(i - 1) / 2];
                i = (i - 1) / 2;
        }
        s->heap[i] = e;
}

static struct sim_ev sim_pop(struct sim *s)
{
        struct sim_ev top = s->heap[0], last = s->heap[--s->nheap];
        size_t i = 0;
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= s->nheap)
                        break;
                if (c + 1 < s->nheap && s->heap[c + 1].at < s->heap[c].at)
                        c++;
                if (last.at <= s->heap[c].at)
                        break;
                s->heap[i] = s->heap[c];
                i = c;
        }
        if (s->nheap > 0)
                s->heap[i] = last;
        return top;
}

/* One query through the path: when its answer reaches the client, or 0 if it is lost. */
static int64_t sim_path(struct sim *s, int64_t t)
{
        if (sim_rand(s) < s->path.loss_up)
                return 0;
        t += s->path.delay;
        if (s->path.service > 0) {
                double per = SEC / s->path.service;
                int64_t start = s->busy_until > t ? s->busy_until : t;
                if ((double)(start - t) / per >= s->path.queue_limit)
                        return 0;
                s->busy_until = start + (int64_t)per;
                t = s->busy_until;
        }
        if (s->path.cap > 0) {
                s->tokens += (double)(t - s->tokens_at) * s->path.cap / SEC;
                if (s->tokens > s->path.cap_burst)
                        s->tokens = s->path.cap_burst;
                s->tokens_at = t;
                if (s->tokens < 1.0)
                        return 0;
                s->tokens -= 1.0;
        }
        if (sim_rand(s) < s->path.loss_dn)
                return 0;
        return t + s->path.delay;
}

static void sim_fill(struct sim *s)
{
        for (int c = 0; c < s->nclients; c++) {
                while (s->inflight[c] < dm_dns_window_size(&s->win[c])) {
                        uint32_t id = s->ntx++;
                        struct sim_tx *x = &s->tx[id % SIM_TX];
                        x->sent_at = s->now;
                        x->state = TX_PENDING;
                        x->client = (uint8_t)c;
                        s->inflight[c]++;
                        dm_dns_window_sent(&s->win[c], s->now, 0);
                        if (s->now >= s->measure_from)
                                s->sent++;
                        int64_t at = sim_path(s, s->now);
                        if (at)
                                sim_push(s, at, id, EV_ANSWER);
                        sim_push(s, s->now + dm_dns_window_rto(&s->win[c]), id, EV_TIMER);
                }
        }
}

static void sim_run(struct sim *s, int64_t until)
{
        sim_fill(s);
        while (s->nheap > 0 && s->heap[0].at <= until) {
                struct sim_ev e = sim_pop(s);
                struct sim_tx *x = &s->tx[e.tx % SIM_TX];
                struct dm_dns_window *w = &s->win[x->client];
                s->now = e.at;
                if (e.kind == EV_ANSWER) {
                        if (x->state == TX_ANSWERED)
                                continue;
                        if (x->state == TX_LOST) {
                                dm_dns_window_late(w, s->now, x->sent_at, 0);
                                dm_dns_window_answer(w, s->now, x->sent_at, -1, 0);
                        } else {
                                s->inflight[x->client]--;
                                dm_dns_window_answer(w, s->now, x->sent_at, s->now - x->sent_at,
                                                     DM_DNS_WINDOW_CLEAN);
                        }
                        x->state = TX_ANSWERED;
                        if (s->now >= s->measure_from) {
                                s->answers++;
                                s->cwnd_sum += w->cwnd;
                                s->cwnd_n++;
                        }
                } else if (x->state == TX_PENDING) {
                        x->state = TX_LOST;
                        s->inflight[x->client]--;
                        dm_dns_window_loss(w, s->now, x->sent_at, 0);
                        if (s->now >= s->measure_from)
                                s->losses++;
                }
                sim_fill(s);
        }
        s->now = until;
}

struct sim_result {
        double answers_per_s; /* from measure_from to the end */
        double loss;          /* transmissions lost */
        double cwnd;          /* mean window (per client) at answers */
        uint64_t cuts, undos;
};

static struct sim_result simulate(const struct sim_path *path, int nclients, uint32_t max,
                                  int64_t warmup, int64_t measure, uint64_t seed)
{
        struct sim *s = calloc(1, sizeof(*s));
        assert_non_null(s);
        s->tx = calloc(SIM_TX, sizeof(*s->tx));
        s->heap = calloc(SIM_EVENTS, sizeof(*s->heap));
        assert_non_null(s->tx);
        assert_non_null(s->heap);
        s->path = *path;
        s->nclients = nclients;
        s->rng = seed * 0x9e3779b97f4a7c15ull + 1;
        s->tokens = path->cap_burst;
        for (int c = 0; c < nclients; c++)
                dm_dns_window_init(&s->win[c], max, 0);
        s->measure_from = warmup;
        sim_run(s, warmup + measure);
        struct sim_result r = {
            .answers_per_s = (double)s->answers * SEC / (double)measure,
            .loss = s->sent ? (double)s->losses / (double)s->sent : 0,
            .cwnd = s->cwnd_n ? s->cwnd_sum / (double)s->cwnd_n : 0,
        };
        for (int c = 0; c < nclients; c++) {
                r.cuts += s->win[c].cuts;
                r.undos += s->win[c].undos;
        }
        free(s->tx);
        free(s->heap);
        free(s);
        return r;
}

static void sim_print(const char *what, const struct sim_result *r)
{
        print_message("%-34s %9.0f answers/s  loss %5.2f %%  window %7.1f  cuts %llu  undos "
                      "%llu\n",
                      what, r->answers_per_s, r->loss * 100, r->cwnd, (unsigned long long)r->cuts,
                      (unsigned long long)r->undos);
}

/* 10 ms each way and random loss: the windows grow to the maximum whatever the loss rate,
 * so throughput is the maximum over the RTT, less what the losses hold up. */
static void test_sim_random_loss(void **state)
{
        const double losses[] = {0.0, 0.01, 0.03, 0.10};
        for (size_t i = 0; i < sizeof(losses) / sizeof(losses[0]); i++) {
                struct sim_path p = {.delay = 10 * MS, .loss_up = losses[i], .loss_dn = losses[i]};
                struct sim_result r = simulate(&p, 2, 1000, 2 * SEC, 3 * SEC, i + 1);
                char what[64];
                snprintf(what, sizeof(what), "random loss %.0f %% each way", losses[i] * 100);
                sim_print(what, &r);
                assert_true(r.cwnd > 900);
                assert_int_equal(r.cuts, r.undos); /* probes at most, all taken back */
                /* 2 x 1000 in flight over 20 ms: 100,000/s without loss; a lost query holds
                 * its slot for an RTO (80 ms) instead of an RTT. */
                double q = 1 - (1 - losses[i]) * (1 - losses[i]);
                double ideal = 2000.0 / (0.020 * (1 - q) + 0.080 * q) * (1 - q);
                assert_true(r.answers_per_s > 0.9 * ideal);
        }
}

/* A server that lets through so many answers per second and drops the rest, as public
 * resolvers do: the two windows settle so that the sum is near the cap. The lower the cap
 * per loop, the more the windows sit near their floor and each other's losses blur what
 * each one sees: at 1,000 a second over 20 ms, 10 queries per loop, the cap is still held,
 * with more losses. */
static void test_sim_rate_cap(void **state)
{
        const struct {
                double cap, loss, max_lost;
        } runs[] = {
            {1000, 0, 0.40},  {2000, 0, 0.25},    {5000, 0, 0.05},
            {20000, 0, 0.05}, {5000, 0.01, 0.08}, {5000, 0.03, 0.15},
        };
        for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
                struct sim_path p = {.delay = 10 * MS,
                                     .loss_up = runs[i].loss,
                                     .loss_dn = runs[i].loss,
                                     .cap = runs[i].cap,
                                     .cap_burst = runs[i].cap / 20};
                struct sim_result r = simulate(&p, 2, 1000, 3 * SEC, 5 * SEC, i + 7);
                char what[64];
                snprintf(what, sizeof(what), "rate cap %.0f/s, %.0f %% loss", runs[i].cap,
                         runs[i].loss * 100);
                sim_print(what, &r);
                assert_true(r.answers_per_s > 0.85 * runs[i].cap * (1 - runs[i].loss));
                assert_true(r.loss < runs[i].max_lost);
        }
}

/* A server on the same host: 50,000 queries per second, a buffer of 200 queries, 0.1 ms
 * each way. The windows must keep it busy without overrunning its buffer. */
static void test_sim_overflowing_queue(void **state)
{
        struct sim_path p = {.delay = 100, .service = 50000, .queue_limit = 200};
        struct sim_result r = simulate(&p, 2, 10000, 2 * SEC, 3 * SEC, 21);
        sim_print("queue 50,000/s, 200 deep", &r);
        assert_true(r.answers_per_s > 0.9 * 50000);
        assert_true(r.loss < 0.05);

        /* The same with 3 % random loss each way: it still gets backed off when it
         * overflows. A loss behind a standing queue counts as overflow, so the windows stay
         * near where the queue starts; and a lost query holds its slot for an RTO (50 ms,
         * 250 round trips here), so they keep it a little less busy. No such path was
         * seen: loopback does not lose at random. */
        p.loss_up = p.loss_dn = 0.03;
        r = simulate(&p, 2, 10000, 2 * SEC, 3 * SEC, 22);
        sim_print("queue 50,000/s, 200 deep, 3 % loss", &r);
        assert_true(r.answers_per_s > 0.55 * 50000);
        assert_true(r.loss < 0.15);

        /* Behind 10 ms each way. */
        p = (struct sim_path){.delay = 10 * MS, .service = 30000, .queue_limit = 200};
        r = simulate(&p, 2, 1000, 3 * SEC, 5 * SEC, 23);
        sim_print("queue 30,000/s, 200 deep, 10 ms", &r);
        assert_true(r.answers_per_s > 0.85 * 30000);
        assert_true(r.loss < 0.05);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_init_and_limits),
            cmocka_unit_test(test_slow_start_doubles),
            cmocka_unit_test(test_rto),
            cmocka_unit_test(test_slow_start_exit_on_rtt_rise),
            cmocka_unit_test(test_random_loss_is_not_overload),
            cmocka_unit_test(test_loss_growing_with_window_cuts),
            cmocka_unit_test(test_one_cut_per_episode),
            cmocka_unit_test(test_probe_taken_back),
            cmocka_unit_test(test_probe_kept_when_smaller_is_clean),
            cmocka_unit_test(test_late_answer_undoes_cut),
            cmocka_unit_test(test_cut_keeps_what_the_path_held),
            cmocka_unit_test(test_first_cut_grows_back_fast),
            cmocka_unit_test(test_baseline_of_the_smallest_windows),
            cmocka_unit_test(test_retransmissions_not_counted),
            cmocka_unit_test(test_floor),
            cmocka_unit_test(test_sim_random_loss),
            cmocka_unit_test(test_sim_rate_cap),
            cmocka_unit_test(test_sim_overflowing_queue),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
