/* Congestion control for the queries to one DNS server: how many may be in flight, and how
 * long to wait for an answer before a query is taken as lost.
 *
 * A pure state machine: no sockets, no clock of its own. The caller passes the time (in
 * microseconds, any monotonic origin) with every event, so every rule can be driven by a
 * synthetic sequence of sends, answers and losses. One struct dm_dns_window per server; it
 * holds no pointers and needs no freeing. Not thread-safe: it belongs to the loop that owns
 * the resolver.
 *
 * What it does, in short (docs/internals/dns-resolver.md has the figures behind each rule):
 * the window grows like TCP's (doubling per round trip in slow start, one per round trip
 * after); slow start ends when the smallest RTT of a round rises (a queue is filling). A
 * loss is held against the window only when the loss rate at the window the query was sent
 * with is clearly above the loss rate seen at smaller windows, or when it happens behind a
 * standing queue. Random loss, which does not grow with the window, then costs
 * retransmissions but no throughput; a server that overflows, or that drops what exceeds a
 * rate cap, loses more as the window grows and is backed off, to about the share of the
 * window it answered, never much below what the path delivered in a round trip. */
#ifndef DM_DNSWINDOW_H
#define DM_DNSWINDOW_H

#include <stdbool.h>
#include <stdint.h>

#define DM_DNS_WINDOW_START 64 /* initial window (or the maximum, if smaller) */
#define DM_DNS_WINDOW_FLOOR 8  /* never cut below (or the maximum, if smaller) */
/* Loss statistics are kept per band of window sizes, eight bands per doubling
 * (9 % apart), for windows of 1 to 2^16. */
#define DM_DNS_WINDOW_BANDS_PER_DOUBLING 8
#define DM_DNS_WINDOW_BANDS (16 * DM_DNS_WINDOW_BANDS_PER_DOUBLING)
#define DM_DNS_WINDOW_HISTORY 64 /* band changes remembered, to place a send in its band */
#define DM_DNS_WINDOW_RUNS 64    /* runs of sends whose outcome is not complete yet */

/* The answer was to a query sent only once, to this server, and not taken as lost: its RTT
 * is a clean sample of the path (slow start watches these). */
#define DM_DNS_WINDOW_CLEAN 1u
/* The transmission is a retransmission. Its timer is backed off, so its loss is seen later
 * than an RTO after it: it is left out of the loss statistics, which would otherwise count
 * it as answered for a while (right after a cut, the smaller window carries mostly
 * retransmissions and would look better than it is). */
#define DM_DNS_WINDOW_RETRY 2u

/* Sends in one band, close in time, whose losses are not all known yet. */
struct dm_dns_window_run {
        int64_t first, last; /* us; its first and last send */
        int64_t due;         /* us; its sends' timers have all fired by then */
        float sent, lost;
        uint8_t band;
};

struct dm_dns_window {
        double max;      /* the window never exceeds this (the resolver's concurrency) */
        double floor;    /* ... and is never cut below this */
        double cwnd;     /* queries allowed in flight */
        double ssthresh; /* below: +1 per answer (doubling per round trip); above: +1/cwnd */

        /* RTT, in microseconds; 0 until the first sample. */
        int64_t srtt, rttvar;
        int64_t min_rtt, min_rtt_at;       /* smallest sample of the last 10 s, and when */
        int64_t round_min, last_round_min; /* smallest clean sample of this and the last round */
        uint32_t round_left;               /* clean samples left in this round */

        /* Delivery rate: answers counted since rate_at, and the highest rate of the recent
         * round trips (answers per us). */
        int64_t rate_at;
        uint32_t rate_answers;
        double max_rate;

        /* Transmissions by the band of the window they were sent with, and how many of
         * them were taken as lost, decayed with a half-life of 2 s. A run of sends enters
         * them only once its timers have all fired, with its losses: answers come after an
         * RTT and losses after an RTO, so counting sends any earlier would make the newest
         * band look better than it is. */
        float sent[DM_DNS_WINDOW_BANDS];
        float lost[DM_DNS_WINDOW_BANDS];
        int64_t decay_at;
        /* Transmissions at the smallest windows used (base_band - 1, the lowest band a run
         * was counted in, and the next ones), decayed with a half-life of 10 s: the loss
         * that is not the window's doing, remembered longer than the bands are. */
        double base_sent, base_lost;
        int base_band;
        struct dm_dns_window_run runs[DM_DNS_WINDOW_RUNS]; /* oldest first, from runs_first */
        uint32_t runs_first, runs_len;
        int64_t runs_due; /* no run is due before this */

        /* The band of the sends of each instant, from the last changes: places a loss seen
         * after its run was counted (a retransmission's longer timer) in its band. */
        int64_t hist_at[DM_DNS_WINDOW_HISTORY];
        uint8_t hist_band[DM_DNS_WINDOW_HISTORY];
        uint32_t hist_next, hist_len;

        /* The last cut. Runs sent before cut_at belong to the episode it answered: they do
         * not cut again, and their answers do not grow the window. Until it is checked
         * (check_band != 0) it can be taken back: by a late answer to a query taken as
         * lost, or when the smaller window turns out to lose about as much as the one it
         * left. */
        int64_t cut_at;
        double undo_cwnd, undo_ssthresh; /* before the last cut; 0: nothing to undo */
        int check_band;                  /* 1 + band the cut was made for; 0: none pending */
        double check_sent, check_lost;   /* counted at smaller windows since the cut */
        /* A probe (a cut made to learn the loss rate of a smaller window) waits until
         * probe_after; probe_wait RTOs, doubled by every cut taken back. */
        int64_t probe_after;
        int64_t probe_wait;

        uint64_t cuts, undos; /* counters since init */
};

/* Sets up a window for a server. `max` >= 1: the most queries the caller will ever allow in
 * flight. */
void dm_dns_window_init(struct dm_dns_window *w, uint32_t max, int64_t now);

/* Queries allowed in flight now: at least 1, at most `max`. */
uint32_t dm_dns_window_size(const struct dm_dns_window *w);

/* How long to wait for the answer to a first transmission before taking it as lost (us).
 * Callers back off from it for retransmissions. */
int64_t dm_dns_window_rto(const struct dm_dns_window *w);

/* A transmission is being sent; `flags`: DM_DNS_WINDOW_RETRY or 0. */
void dm_dns_window_sent(struct dm_dns_window *w, int64_t now, unsigned flags);

/* An answer arrived for a query whose last transmission was at `sent_at`. `rtt`: the RTT
 * to account (us; 0 counts as 1; negative: none); `flags`: DM_DNS_WINDOW_CLEAN or 0. Grows
 * the window, unless the query was sent before the last cut. */
void dm_dns_window_answer(struct dm_dns_window *w, int64_t now, int64_t sent_at, int64_t rtt,
                          unsigned flags);

/* The retry timer of the transmission made at `sent_at` fired: it is taken as lost. May
 * cut the window. `flags`: DM_DNS_WINDOW_RETRY if it was a retransmission, or 0. */
void dm_dns_window_loss(struct dm_dns_window *w, int64_t now, int64_t sent_at, unsigned flags);

/* An answer arrived after all for the transmission made at `sent_at`, taken as lost
 * earlier: the server was slow, not overflowing (an overflowing server drops, it does not
 * answer late). The loss is struck from the statistics and the last cut taken back. Call
 * dm_dns_window_answer for the answer as well (on whichever window it counts for).
 * `flags`: DM_DNS_WINDOW_RETRY if that transmission was a retransmission, or 0. */
void dm_dns_window_late(struct dm_dns_window *w, int64_t now, int64_t sent_at, unsigned flags);

/* The fraction of transmissions taken as lost, over the last few seconds (0 .. 1). */
double dm_dns_window_loss_rate(const struct dm_dns_window *w);

#endif
