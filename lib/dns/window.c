/* Congestion control for the queries to one DNS server. See dm/dnswindow.h for the contract
 * and docs/internals/dns-resolver.md ("The window", "Retry timing") for the measurements
 * behind the numbers. */
#include "dm/dnswindow.h"

#include <math.h>
#include <string.h>

/* Retry timeout */
#define WIN_RTO_INITIAL_US 200000 /* before the first RTT sample */
#define WIN_RTO_MIN_US 50000
#define WIN_RTO_MAX_US 1000000

/* RTT and queues */
#define WIN_MIN_RTT_SPAN_US 10000000 /* the minimum RTT is that of the last 10 s */
#define WIN_SS_ROUND_MIN 8           /* samples per slow-start round, at least */
#define WIN_SS_DELAY_MIN_US 250      /* bounds of the RTT rise that ends slow start */
#define WIN_SS_DELAY_MAX_US 16000
#define WIN_QUEUE_MIN_US 250 /* ... and of the rise that shows a standing queue */
#define WIN_QUEUE_CUT 0.5    /* a loss behind a standing queue halves the window */

/* Loss statistics */
#define WIN_DECAY_STEP_US 100000       /* they decay in steps of this ... */
#define WIN_HALF_LIFE_US 2000000       /* ... with this half-life */
#define WIN_BASE_HALF_LIFE_US 10000000 /* the loss rate at the smallest windows: 10 s */
#define WIN_BASE_BANDS 2               /* bands above the smallest one used that count for it */
#define WIN_RUN_SPAN 16                /* a run of sends lasts at most an RTO / 16 ... */
#define WIN_RUN_GRACE 4                /* ... and is counted an RTO + RTO / 4 after its last send */
#define WIN_BASELINE_MIN 32.0          /* sends at smaller windows before they are a baseline */
#define WIN_CHECK_MIN 128.0            /* ... and before a cut is checked against them */
#define WIN_LOSSY 0.25                 /* a loss rate random loss is not expected to reach */
#define WIN_PROBE_LOSS 0.1 /* a window losing this much is probed when nothing explains it */

/* Cuts */
#define WIN_CUT_MARGIN 0.8     /* a cut aims this far below the share that was answered */
#define WIN_CUT_MIN 0.125      /* a cut keeps at least this much of the window ... */
#define WIN_CUT_MAX 0.75       /* ... and at most this much ... */
#define WIN_CUT_SHARE_MAX 0.95 /* ... and after the first, grows back fast to at most this */
#define WIN_PIPE_GAIN 0.85     /* a cut keeps at least this much of what a round trip held */
#define WIN_RATE_DECAY 0.9     /* the highest delivery rate fades by this per round trip */
#define WIN_PROBE_MAX 0.7      /* a probe for a baseline keeps at most this much */
#define WIN_CHECK_GIVE_UP 8    /* RTOs after a probe without a baseline: it stays */
#define WIN_PROBE_WAIT 8       /* RTOs after a probe taken back before the next, doubling */
#define WIN_PROBE_WAIT_MAX 256

static int win_band(double cwnd)
{
        if (cwnd <= 1.0)
                return 0;
        int b = (int)floor(log2(cwnd) * DM_DNS_WINDOW_BANDS_PER_DOUBLING);
        return b < DM_DNS_WINDOW_BANDS ? b : DM_DNS_WINDOW_BANDS - 1;
}

/* The smallest window of band b. */
static double win_band_low(int b)
{
        return exp2((double)b / DM_DNS_WINDOW_BANDS_PER_DOUBLING);
}

/* ---- where a send belongs ---- */

/* The band a send made now counts for. Many events share one timestamp (a batch of answers
 * is read at one instant, and the sends they make room for go out at that instant too), and
 * a loss can only be placed by the time of its send: so every send of one instant counts
 * for the band of the window at the first of them. */
static uint8_t win_hist_note(struct dm_dns_window *w, int64_t now)
{
        uint32_t last = (w->hist_next + DM_DNS_WINDOW_HISTORY - 1) % DM_DNS_WINDOW_HISTORY;
        if (w->hist_len > 0 && w->hist_at[last] == now)
                return w->hist_band[last];
        uint8_t b = (uint8_t)win_band(w->cwnd);
        if (w->hist_len > 0 && w->hist_band[last] == b)
                return b;
        w->hist_at[w->hist_next] = now;
        w->hist_band[w->hist_next] = b;
        w->hist_next = (w->hist_next + 1) % DM_DNS_WINDOW_HISTORY;
        if (w->hist_len < DM_DNS_WINDOW_HISTORY)
                w->hist_len++;
        return b;
}

/* The band of the sends made at time t; older than what is remembered: the oldest band. */
static int win_band_at(const struct dm_dns_window *w, int64_t t)
{
        for (uint32_t k = 0; k < w->hist_len; k++) {
                uint32_t i = (w->hist_next + DM_DNS_WINDOW_HISTORY - 1 - k) % DM_DNS_WINDOW_HISTORY;
                if (w->hist_at[i] <= t || k + 1 == w->hist_len)
                        return w->hist_band[i];
        }
        return win_band(w->cwnd);
}

/* The run holding the send made at time t, if it is not counted yet. */
static struct dm_dns_window_run *win_run_at(struct dm_dns_window *w, int64_t t)
{
        for (uint32_t k = w->runs_len; k-- > 0;) {
                struct dm_dns_window_run *run = &w->runs[(w->runs_first + k) % DM_DNS_WINDOW_RUNS];
                if (run->first <= t && t <= run->last)
                        return run;
        }
        return NULL;
}

/* ---- loss statistics ---- */

struct win_counts {
        double sent, lost;
};

/* The bands [from, to), clipped to those that exist. */
static struct win_counts win_sum(const struct dm_dns_window *w, int from, int to)
{
        struct win_counts c = {0, 0};
        if (from < 0)
                from = 0;
        if (to > DM_DNS_WINDOW_BANDS)
                to = DM_DNS_WINDOW_BANDS;
        for (int i = from; i < to; i++) {
                c.sent += (double)w->sent[i];
                c.lost += (double)w->lost[i];
        }
        return c;
}

static double win_rate(struct win_counts c)
{
        return c.sent > c.lost ? c.lost / c.sent : c.lost > 0 ? 1.0 : 0.0;
}

/* The RTT rise that tells a queue from noise: half the base RTT, within [lo, 16 ms]. */
static int64_t win_queue_delay(int64_t base, int64_t lo)
{
        int64_t eta = base / 2;
        if (eta < lo)
                eta = lo;
        if (eta > WIN_SS_DELAY_MAX_US)
                eta = WIN_SS_DELAY_MAX_US;
        return eta;
}

/* Whether a queue stands in front of the server: the smallest RTT of the last round is
 * clearly above the smallest of the last 10 s. Only a queue raises a minimum; slow answers
 * (a resolver's cache misses) and a loaded host raise the mean. */
static bool win_queue(const struct dm_dns_window *w)
{
        return w->min_rtt > 0 && w->last_round_min > 0 &&
               w->last_round_min >= w->min_rtt + win_queue_delay(w->min_rtt, WIN_QUEUE_MIN_US);
}

/* What the path held in one round trip: the highest delivery rate of the last round trips
 * times the smallest RTT (BBR's estimate of the pipe). A server that drops what exceeds a
 * rate still delivers that rate, and one overrun by a burst still delivers what it can
 * serve: cutting below this would leave it idle. 0 until measured. */
static double win_pipe(const struct dm_dns_window *w)
{
        return w->max_rate * (double)w->min_rtt;
}

/* A cut to `target` of a window that lost at `sent_with`, no deeper than what the path
 * held (unless that is not below `sent_with` * `most` either). */
static double win_floor_pipe(const struct dm_dns_window *w, double target, double sent_with,
                             double most)
{
        double pipe = win_pipe(w) * WIN_PIPE_GAIN;
        if (pipe > sent_with * most)
                pipe = sent_with * most;
        return target > pipe ? target : pipe;
}

/* Whether `hi` lost a clearly larger fraction than `lo`: by at least three losses, by more
 * than 3.5 standard errors of the difference, and by enough to matter: a point, and half
 * again the rate of `lo` or a tenth of what `lo` delivered. Every counted run is a new look
 * at the same figures, so one look must almost never be wrong by chance; and with many
 * samples any difference becomes significant, so it must also be large. An overflow or an
 * exceeded rate cap loses tens of per cent more and passes within a few losses. */
static bool win_excess(struct win_counts hi, struct win_counts lo)
{
        if (hi.lost < 3.0 || lo.sent <= 0)
                return false;
        double hn = hi.sent > hi.lost ? hi.sent : hi.lost;
        double rh = hi.lost / hn, rl = win_rate(lo);
        double p = (hi.lost + lo.lost + 0.5) / (hn + lo.sent + 1.0);
        double se = sqrt(p * (1.0 - p) * (1.0 / hn + 1.0 / lo.sent));
        double floor = rl / 2 < (1.0 - rl) / 10 ? rl / 2 : (1.0 - rl) / 10;
        if (floor < 0.01)
                floor = 0.01;
        return rh - rl > 3.5 * se && rh - rl > floor;
}

/* The statistics around band b (b and its neighbours: windows within about 10 % of it) and
 * below it. */
static void win_split(const struct dm_dns_window *w, int b, struct win_counts *ret_hi,
                      struct win_counts *ret_lo)
{
        *ret_hi = win_sum(w, b - 1, b + 2);
        *ret_lo = win_sum(w, 0, b - 1);
}

/* ---- cuts ---- */

static void win_undo(struct dm_dns_window *w, int64_t now)
{
        if (w->undo_cwnd <= 0)
                return;
        if (w->undo_cwnd > w->cwnd)
                w->cwnd = w->undo_cwnd;
        if (w->undo_ssthresh > w->ssthresh)
                w->ssthresh = w->undo_ssthresh;
        w->undo_cwnd = 0;
        w->undo_ssthresh = 0;
        w->check_band = 0;
        w->undos++;
        /* The window was not the cause: probe less often. */
        w->probe_wait = w->probe_wait ? w->probe_wait * 2 : WIN_PROBE_WAIT;
        if (w->probe_wait > WIN_PROBE_WAIT_MAX)
                w->probe_wait = WIN_PROBE_WAIT_MAX;
        w->probe_after = now + w->probe_wait * dm_dns_window_rto(w);
}

/* Cuts the window to `target`, from where it grows back as in slow start up to `thresh`
 * (at least `target`), then by one per round trip. A probe (`band` >= 0: the band it was
 * made for) is checked later; a cut for excess loss is not, the evidence for it was
 * already significant. */
static void win_cut(struct dm_dns_window *w, int64_t now, double target, double thresh, int band)
{
        if (target < w->floor)
                target = w->floor;
        if (thresh < target)
                thresh = target;
        if (target >= w->cwnd) {
                /* Already below: only leave slow start. */
                if (w->ssthresh > w->cwnd)
                        w->ssthresh = w->cwnd;
                return;
        }
        if (thresh > w->cwnd)
                thresh = w->cwnd;
        w->undo_cwnd = w->cwnd;
        w->undo_ssthresh = w->ssthresh;
        w->cwnd = target;
        w->ssthresh = thresh;
        w->cut_at = now;
        w->check_band = band >= 0 ? band + 1 : 0;
        w->check_sent = 0;
        w->check_lost = 0;
        w->cuts++;
}

/* A cut not checked yet is checked against what the smaller window lost since: kept if that
 * is clearly less than what the band it was made for lost, taken back if it is about as
 * much (the window was not the cause), kept if in doubt. It waits for as many sends as the
 * band had, at least WIN_CHECK_MIN, at most eight times that; without them for
 * WIN_CHECK_GIVE_UP RTOs, the cut stays. */
static void win_check(struct dm_dns_window *w, int64_t now)
{
        struct win_counts hi = win_sum(w, w->check_band - 2, w->check_band + 1);
        struct win_counts post = {w->check_sent, w->check_lost};
        double need = hi.sent < WIN_CHECK_MIN ? WIN_CHECK_MIN : hi.sent;
        if (need > 8 * WIN_CHECK_MIN)
                need = 8 * WIN_CHECK_MIN;
        if (post.sent < need) {
                if (now >= w->cut_at + WIN_CHECK_GIVE_UP * dm_dns_window_rto(w)) {
                        w->check_band = 0;
                        w->undo_cwnd = 0;
                }
                return;
        }
        bool undo = !win_excess(hi, post) && win_rate(post) >= win_rate(hi) * 0.75;
        if (undo) {
                win_undo(w, now);
                return;
        }
        w->check_band = 0;
        w->undo_cwnd = 0;
        w->probe_wait = 0;
}

/* A run with losses was counted: did its window lose more than smaller windows do? */
static void win_judge(struct dm_dns_window *w, int64_t now, int b)
{
        if (w->cwnd <= w->floor)
                return;
        struct win_counts hi, lo;
        win_split(w, b, &hi, &lo);
        /* When the smaller windows lose more than the smallest ones did over the last
         * seconds, they were overrun too (two loops sharing a server, each seeing at its
         * smaller windows the overflow the other one causes): compare with the smallest. */
        struct win_counts base = {w->base_sent, w->base_lost};
        if (b >= w->base_band + WIN_BASE_BANDS && base.sent >= WIN_CHECK_MIN &&
            (lo.sent < WIN_BASELINE_MIN || win_rate(base) < win_rate(lo)))
                lo = base;
        /* A server that takes only so much (a rate cap, a buffer) answers about as many
         * queries whatever the window: what it delivered at this window, over what it
         * delivers at smaller ones (the random loss no window avoids), is about the share
         * of the window it has room for. */
        double keep, share, most = WIN_CUT_MAX;
        int probe = -1;
        if (lo.sent >= WIN_BASELINE_MIN && win_excess(hi, lo)) {
                /* A baseline that loses heavily is overrun itself (two loops sharing a
                 * server, a cap below the first window): do not count on it. */
                double random = win_rate(lo) < WIN_LOSSY ? win_rate(lo) : 0.0;
                share = (1.0 - win_rate(hi)) / (1.0 - random);
                keep = share * WIN_CUT_MARGIN;
        } else {
                /* Nothing smaller to compare with, or a window losing much that smaller
                 * ones lost as much at (a server overrun from the first window on, or two
                 * loops sharing a cap, each finding its smaller windows as lossy as its
                 * current one): try a smaller window to learn its loss rate. If it loses
                 * about as much, the cut is taken back (win_check), and the next probe waits
                 * twice as long. Only for losses at about the current window: a band far
                 * below it is one probed before, or one slow start passed through while the
                 * baselines built up. */
                if (lo.sent >= WIN_BASELINE_MIN && win_rate(hi) < WIN_PROBE_LOSS)
                        return;
                if (w->check_band || hi.lost < 3.0 || b < win_band(w->cwnd) - 2 ||
                    now < w->probe_after)
                        return;
                share = 0;
                keep = (1.0 - win_rate(hi)) * WIN_CUT_MARGIN;
                most = WIN_PROBE_MAX;
                probe = b;
        }
        if (keep < WIN_CUT_MIN)
                keep = WIN_CUT_MIN;
        if (keep > most)
                keep = most;
        double sent_with = win_band_low(b);
        if (sent_with > w->cwnd)
                sent_with = w->cwnd;
        double target = sent_with * keep;
        if (probe < 0)
                target = win_floor_pipe(w, target, sent_with, most);
        /* The first cut ends slow start, whose doubling overruns small buffers in bursts:
         * its losses say less about the server's rate than later ones. Back quickly to the
         * share it answered, or to what the path held in a round trip, then by one per
         * round trip. After later cuts, by one per round trip from the start: near a rate
         * cap, time spent near it is loss. */
        if (share > WIN_CUT_SHARE_MAX)
                share = WIN_CUT_SHARE_MAX;
        double back = 0;
        if (w->cuts == 0) {
                back = sent_with * share;
                if (win_pipe(w) * WIN_PIPE_GAIN > back)
                        back = win_pipe(w) * WIN_PIPE_GAIN;
        }
        win_cut(w, now, target, back, probe);
}

/* ---- keeping the statistics current ---- */

static void win_decay(struct dm_dns_window *w, int64_t now)
{
        if (now - w->decay_at < WIN_DECAY_STEP_US)
                return;
        float f = (float)exp2(-(double)(now - w->decay_at) / WIN_HALF_LIFE_US);
        for (int i = 0; i < DM_DNS_WINDOW_BANDS; i++) {
                w->sent[i] *= f;
                w->lost[i] *= f;
        }
        double g = exp2(-(double)(now - w->decay_at) / WIN_BASE_HALF_LIFE_US);
        w->base_sent *= g;
        w->base_lost *= g;
        w->decay_at = now;
}

/* Adds a run to the statistics and judges it. */
static void win_count_run(struct dm_dns_window *w, int64_t now, const struct dm_dns_window_run *run)
{
        w->sent[run->band] += run->sent;
        w->lost[run->band] += run->lost;
        if (w->base_band == 0 || run->band + 1 < w->base_band)
                w->base_band = run->band + 1;
        if (run->band < w->base_band + WIN_BASE_BANDS) {
                w->base_sent += run->sent;
                w->base_lost += run->lost;
        }
        if (w->check_band && run->first >= w->cut_at && run->band < w->check_band - 2) {
                w->check_sent += run->sent;
                w->check_lost += run->lost;
        }
        if (w->check_band)
                win_check(w, now);
        if (run->lost > 0 && run->first >= w->cut_at)
                win_judge(w, now, run->band);
}

/* Counts the runs whose timers have all fired. Runs are in the order of their sends, which
 * is not always that of their due times (the RTO shrinks after the first samples): every run
 * is looked at. */
static void win_update(struct dm_dns_window *w, int64_t now)
{
        win_decay(w, now);
        if (w->runs_len > 0 && now >= w->runs_due) {
                uint32_t kept = 0, len = w->runs_len;
                w->runs_due = INT64_MAX;
                for (uint32_t k = 0; k < len; k++) {
                        struct dm_dns_window_run run =
                            w->runs[(w->runs_first + k) % DM_DNS_WINDOW_RUNS];
                        if (now >= run.due) {
                                win_count_run(w, now, &run);
                                continue;
                        }
                        if (run.due < w->runs_due)
                                w->runs_due = run.due;
                        w->runs[(w->runs_first + kept++) % DM_DNS_WINDOW_RUNS] = run;
                }
                w->runs_len = kept;
        }
        if (w->check_band && now >= w->cut_at + WIN_CHECK_GIVE_UP * dm_dns_window_rto(w))
                win_check(w, now);
}

/* ---- RTT ---- */

/* Slow start ends when the smallest RTT of a round (about a window's worth of answers)
 * rises clearly above the last round's, by half (as in RFC 9406, which takes an eighth but
 * at least 4 ms: too coarse for a server on the same host, whose queue overflows within a
 * millisecond or two): the server's queue is filling, before it overflows. The minimum is
 * blind to slow answers (a resolver's cache misses); only a queue raises it. */
static void win_slow_start_check(struct dm_dns_window *w, int64_t sample)
{
        if (w->round_min == 0 || sample < w->round_min)
                w->round_min = sample;
        if (w->round_left > 0 && --w->round_left > 0)
                return;
        if (w->cwnd < w->ssthresh && w->last_round_min > 0 &&
            w->round_min >=
                w->last_round_min + win_queue_delay(w->last_round_min, WIN_SS_DELAY_MIN_US))
                w->ssthresh = w->cwnd;
        w->last_round_min = w->round_min;
        w->round_min = 0;
        w->round_left = w->cwnd > WIN_SS_ROUND_MIN ? (uint32_t)w->cwnd : WIN_SS_ROUND_MIN;
}

static void win_rtt_sample(struct dm_dns_window *w, int64_t now, int64_t sample, bool clean)
{
        if (clean) {
                win_slow_start_check(w, sample);
                if (w->min_rtt == 0 || sample <= w->min_rtt ||
                    now - w->min_rtt_at > WIN_MIN_RTT_SPAN_US) {
                        w->min_rtt = sample;
                        w->min_rtt_at = now;
                }
        }
        if (w->srtt == 0) {
                w->srtt = sample;
                w->rttvar = sample / 2;
                return;
        }
        int64_t dev = sample > w->srtt ? sample - w->srtt : w->srtt - sample;
        w->rttvar = (3 * w->rttvar + dev) / 4;
        w->srtt = (7 * w->srtt + sample) / 8;
}

/* Answers per microsecond over a round trip at least; the highest of the recent round trips
 * is kept, fading slowly. */
static void win_rate_sample(struct dm_dns_window *w, int64_t now)
{
        w->rate_answers++;
        if (w->rate_at == 0) {
                w->rate_at = now;
                return;
        }
        int64_t span = now - w->rate_at;
        if (w->srtt == 0 || span < w->srtt)
                return;
        double rate = (double)w->rate_answers / (double)span;
        w->max_rate *= WIN_RATE_DECAY;
        if (rate > w->max_rate)
                w->max_rate = rate;
        w->rate_at = now;
        w->rate_answers = 0;
}

/* ---- the interface ---- */

void dm_dns_window_init(struct dm_dns_window *w, uint32_t max, int64_t now)
{
        memset(w, 0, sizeof(*w));
        w->max = max > 0 ? (double)max : 1.0;
        w->floor = DM_DNS_WINDOW_FLOOR < w->max ? DM_DNS_WINDOW_FLOOR : w->max;
        w->cwnd = DM_DNS_WINDOW_START < w->max ? DM_DNS_WINDOW_START : w->max;
        w->ssthresh = w->max;
        w->decay_at = now;
}

uint32_t dm_dns_window_size(const struct dm_dns_window *w)
{
        double c = w->cwnd < w->max ? w->cwnd : w->max;
        return c >= 1.0 ? (uint32_t)c : 1;
}

int64_t dm_dns_window_rto(const struct dm_dns_window *w)
{
        if (w->srtt == 0)
                return WIN_RTO_INITIAL_US;
        /* Four round trips, or more when the samples scatter (a loaded host, a resolver
         * mixing cache hits and misses): a late answer is not a lost one. */
        int64_t rto = w->srtt * 4;
        if (w->srtt + 4 * w->rttvar > rto)
                rto = w->srtt + 4 * w->rttvar;
        if (rto < WIN_RTO_MIN_US)
                rto = WIN_RTO_MIN_US;
        if (rto > WIN_RTO_MAX_US)
                rto = WIN_RTO_MAX_US;
        return rto;
}

void dm_dns_window_sent(struct dm_dns_window *w, int64_t now, unsigned flags)
{
        win_update(w, now);
        uint8_t b = win_hist_note(w, now);
        if (flags & DM_DNS_WINDOW_RETRY)
                return;
        int64_t rto = dm_dns_window_rto(w);
        if (w->runs_len > 0) {
                struct dm_dns_window_run *last =
                    &w->runs[(w->runs_first + w->runs_len - 1) % DM_DNS_WINDOW_RUNS];
                if (last->band == b && now - last->first < rto / WIN_RUN_SPAN) {
                        last->sent += 1.0f;
                        last->last = now;
                        /* Later: runs_due may now be early, which costs one look. */
                        if (last->due < now + rto + rto / WIN_RUN_GRACE)
                                last->due = now + rto + rto / WIN_RUN_GRACE;
                        return;
                }
        }
        if (w->runs_len == DM_DNS_WINDOW_RUNS) {
                /* Full (the band changing at nearly every send): count the oldest early. */
                struct dm_dns_window_run run = w->runs[w->runs_first];
                w->runs_first = (w->runs_first + 1) % DM_DNS_WINDOW_RUNS;
                w->runs_len--;
                win_count_run(w, now, &run);
        }
        struct dm_dns_window_run *run =
            &w->runs[(w->runs_first + w->runs_len++) % DM_DNS_WINDOW_RUNS];
        *run = (struct dm_dns_window_run){
            .first = now,
            .last = now,
            .due = now + rto + rto / WIN_RUN_GRACE,
            .sent = 1.0f,
            .band = b,
        };
        if (w->runs_len == 1 || run->due < w->runs_due)
                w->runs_due = run->due;
}

void dm_dns_window_answer(struct dm_dns_window *w, int64_t now, int64_t sent_at, int64_t rtt,
                          unsigned flags)
{
        win_update(w, now);
        if (rtt >= 0)
                win_rtt_sample(w, now, rtt > 0 ? rtt : 1, (flags & DM_DNS_WINDOW_CLEAN) != 0);
        win_rate_sample(w, now);
        /* Answers to what was sent before a cut say nothing about the smaller window. */
        if (sent_at < w->cut_at)
                return;
        if (w->cwnd < w->ssthresh)
                w->cwnd += 1.0;
        else
                w->cwnd += 1.0 / w->cwnd;
        if (w->cwnd > w->max)
                w->cwnd = w->max;
}

void dm_dns_window_loss(struct dm_dns_window *w, int64_t now, int64_t sent_at, unsigned flags)
{
        win_update(w, now);
        bool retry = (flags & DM_DNS_WINDOW_RETRY) != 0;
        struct dm_dns_window_run *run = retry ? NULL : win_run_at(w, sent_at);
        int b = run ? run->band : win_band_at(w, sent_at);
        if (sent_at >= w->cut_at && win_queue(w) && w->cwnd > w->floor) {
                /* Lost behind a standing queue: the server's buffer overflowed. No need to
                 * wait for the loss rates; this is what TCP does with every loss. */
                double sent_with = win_band_low(b);
                if (sent_with > w->cwnd)
                        sent_with = w->cwnd;
                win_cut(w, now,
                        win_floor_pipe(w, sent_with * WIN_QUEUE_CUT, sent_with, WIN_CUT_MAX), 0,
                        -1);
        }
        if (retry)
                return;
        if (run) {
                run->lost += 1.0f;
                return;
        }
        /* Seen after its run was counted (the RTO shrank since, or the loop was late). */
        w->lost[b] += 1.0f;
        if (sent_at < w->cut_at)
                return;
        if (w->check_band && b < w->check_band - 2)
                w->check_lost += 1.0;
        win_judge(w, now, b);
}

void dm_dns_window_late(struct dm_dns_window *w, int64_t now, int64_t sent_at, unsigned flags)
{
        win_update(w, now);
        if (!(flags & DM_DNS_WINDOW_RETRY)) {
                struct dm_dns_window_run *run = win_run_at(w, sent_at);
                float *lost = run ? &run->lost : &w->lost[win_band_at(w, sent_at)];
                *lost = *lost > 1.0f ? *lost - 1.0f : 0.0f;
        }
        win_undo(w, now);
}

double dm_dns_window_loss_rate(const struct dm_dns_window *w)
{
        return win_rate(win_sum(w, 0, DM_DNS_WINDOW_BANDS));
}
