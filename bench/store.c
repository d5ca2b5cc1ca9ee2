/* bench_store: what one scan cycle costs through the store alone, on the backend named by
 * the URL (no DNS: the results are made up, in the shape the DNS service writes them).
 *
 *   bench_store URL [DOMAINS]        (default 100000; the database must be empty)
 *
 * Steps, each timed:
 *   import     domain_insert_many in requests of 10,000 (the API's import)
 *   first      claim_due in batches of 1,000 (DM_SCAN_BATCH) and dns_commit of each batch:
 *              every domain new, so 4 current rows, 4 history entries and 4 outbox events
 *              each (the first cycle after an import)
 *   unchanged  the next cycle: claim and commit with the fingerprint unchanged
 *   rescan     request_scan_all (every domain due at one instant, as `domainmon scan` and
 *              bench/distributed make them), then claim and commit them all unchanged
 *   drain      outbox_claim + outbox_delete in rounds of 1,000 (the relay)
 * and printed as one line per step: `step=first seconds=... domains_per_s=... rows_per_s=...`
 * (rows: current rows + history entries + events written). bench/store runs it on SQLite
 * and PostgreSQL and prints the ratios. */
#include "dm/error.h"
#include "dm/store.h"
#include "dm/time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT_BATCH 10000
#define CLAIM_BATCH 1000
#define OUTBOX_BATCH 1000
#define BENCH_OWNER 1
#define BENCH_LEASE_MS 60000
#define TYPES 4
#define INTERVAL_MS 600000

static const uint16_t bench_types[TYPES] = {DM_RR_A, DM_RR_AAAA, DM_RR_MX, DM_RR_TXT};

static int die(const char *what, int err)
{
        fprintf(stderr, "bench_store: %s: %s\n", what, dm_strerror(err));
        exit(1);
}

/* Milliseconds the step being timed spent in claims and in commits (bench_cycle). */
static int64_t cycle_claim_ms, cycle_commit_ms;

static void report(const char *step, int64_t t0, size_t domains, size_t rows)
{
        double s = (double)(dm_mono_ms() - t0) / 1000.0;
        if (s <= 0)
                s = 0.001;
        printf("step=%s seconds=%.2f domains=%zu domains_per_s=%.0f rows=%zu rows_per_s=%.0f "
               "claim_s=%.2f commit_s=%.2f\n",
               step, s, domains, (double)domains / s, rows, (double)rows / s,
               (double)cycle_claim_ms / 1000.0, (double)cycle_commit_ms / 1000.0);
        cycle_claim_ms = cycle_commit_ms = 0;
        fflush(stdout);
}

/* An event body the size of the DNS service's. */
static char *bench_event(const struct dm_change *ch, void *arg)
{
        (void)arg;
        size_t size = 512 + strlen(ch->after);
        char *body = malloc(size);
        if (!body)
                return NULL;
        snprintf(body, size,
                 "{\"id\":\"%lld\",\"domain\":\"%s\",\"type\":\"%u\",\"status\":\"ok\","
                 "\"observed_at\":\"2026-01-01T00:00:00.000Z\",\"before\":null,\"after\":%s,"
                 "\"added\":%s,\"removed\":[]}",
                 (long long)ch->id, ch->domain, (unsigned)ch->type, ch->after, ch->after);
        return body;
}

/* The values a scan of domain i would find for type t (JSON arrays). */
static void bench_values(size_t i, int t, char *buf, size_t size)
{
        switch (t) {
        case 0:
                snprintf(buf, size, "[\"10.%zu.%zu.%zu\"]", (i >> 16) & 255, (i >> 8) & 255,
                         i & 255);
                break;
        case 1:
                snprintf(buf, size, "[\"2001:db8::%zx:%zx\"]", i >> 16, i & 0xffff);
                break;
        case 2:
                snprintf(buf, size, "[\"10 mx.bench.test.\"]");
                break;
        default:
                snprintf(buf, size, "[\"\\\"v=bench %zu\\\"\"]", i);
                break;
        }
}

struct cycle_buffers {
        struct dm_scan_task tasks[CLAIM_BATCH];
        struct dm_dns_commit items[CLAIM_BATCH];
        struct dm_rrset_row rows[CLAIM_BATCH][TYPES];
        struct dm_change changes[CLAIM_BATCH][TYPES];
        char values[CLAIM_BATCH][TYPES][64];
};

/* One pass over everything due at `now`. first: every domain gets its first state. */
static size_t bench_cycle(struct dm_store *st, struct cycle_buffers *b, int64_t now, bool first,
                          size_t *ret_rows)
{
        cycle_claim_ms = cycle_commit_ms = 0;
        struct dm_claim_opts opts = {.now = now,
                                     .limit = CLAIM_BATCH,
                                     .default_interval_ms = INTERVAL_MS,
                                     .min_interval_ms = 60000};
        size_t total = 0, rows = 0;
        for (;;) {
                size_t n = 0;
                int64_t t0 = dm_mono_ms();
                int r = dm_store_claim_due(st, &opts, b->tasks, &n);
                cycle_claim_ms += dm_mono_ms() - t0;
                if (r < 0)
                        die("claim_due", r);
                if (n == 0)
                        break;
                for (size_t k = 0; k < n; k++) {
                        const struct dm_scan_task *t = &b->tasks[k];
                        struct dm_dns_commit *it = &b->items[k];
                        size_t i = (size_t)t->domain_id;
                        memset(it, 0, sizeof(*it));
                        it->domain_id = t->domain_id;
                        it->checked_at = now;
                        it->status = DM_CHECK_OK;
                        memcpy(it->old_fp, t->dns_fp, DM_FP_LEN);
                        memset(it->new_fp, 0x5a, DM_FP_LEN);
                        memcpy(it->new_fp, &i, sizeof(i));
                        if (!first)
                                continue;
                        for (int ty = 0; ty < TYPES; ty++) {
                                struct dm_rrset_row *row = &b->rows[k][ty];
                                struct dm_change *ch = &b->changes[k][ty];
                                bench_values(i, ty, b->values[k][ty], sizeof(b->values[k][ty]));
                                memset(row, 0, sizeof(*row));
                                row->type = bench_types[ty];
                                row->status = DM_RRS_OK;
                                row->ttl = 300;
                                row->values = b->values[k][ty];
                                memset(ch, 0, sizeof(*ch));
                                ch->type = bench_types[ty];
                                ch->status = DM_RRS_OK;
                                ch->after = b->values[k][ty];
                                ch->added = b->values[k][ty];
                                ch->removed = (char *)"[]";
                        }
                        it->rows = b->rows[k];
                        it->nrows = TYPES;
                        it->changes = b->changes[k];
                        it->nchanges = TYPES;
                }
                t0 = dm_mono_ms();
                r = dm_store_dns_commit(st, b->items, n, bench_event, NULL);
                cycle_commit_ms += dm_mono_ms() - t0;
                if (r < 0)
                        die("dns_commit", r);
                for (size_t k = 0; k < n; k++) {
                        if (b->items[k].result != 0)
                                die("dns_commit item", b->items[k].result);
                }
                total += n;
                rows += first ? n * TYPES * 3 : 0;
        }
        *ret_rows = rows;
        return total;
}

int main(int argc, char **argv)
{
        if (argc < 2 || argc > 3) {
                fprintf(stderr, "usage: bench_store URL [DOMAINS]\n");
                return 2;
        }
        size_t n = argc == 3 ? strtoul(argv[2], NULL, 10) : 100000;
        if (n == 0) {
                fprintf(stderr, "bench_store: DOMAINS must be a positive number\n");
                return 2;
        }
        char err[512];
        struct dm_store *st = NULL;
        int r = dm_store_open(argv[1], err, sizeof(err), &st);
        if (r < 0) {
                fprintf(stderr, "bench_store: %s\n", err);
                return 1;
        }
        r = dm_store_migrate(st, NULL);
        if (r < 0)
                die("migrate", r);
        size_t existing = 0;
        r = dm_store_domain_count(st, &existing);
        if (r < 0)
                die("domain_count", r);
        if (existing > 0) {
                fprintf(stderr,
                        "bench_store: the database holds %zu domains; give it an "
                        "empty one\n",
                        existing);
                return 1;
        }
        printf("backend=%s domains=%zu\n", dm_store_backend(st), n);

        struct dm_domain *ds = calloc(IMPORT_BATCH, sizeof(*ds));
        int *res = calloc(IMPORT_BATCH, sizeof(*res));
        struct cycle_buffers *b = calloc(1, sizeof(*b));
        if (!ds || !res || !b)
                die("calloc", DM_ENOMEM);

        int64_t t0 = dm_mono_ms();
        for (size_t done = 0; done < n;) {
                size_t k = n - done < IMPORT_BATCH ? n - done : IMPORT_BATCH;
                for (size_t i = 0; i < k; i++) {
                        struct dm_domain *d = &ds[i];
                        memset(d, 0, sizeof(*d));
                        snprintf(d->name, sizeof(d->name), "n%06zu.bench.test", done + i + 1);
                        d->enabled = true;
                        memcpy(d->record_types, bench_types, sizeof(bench_types));
                        d->nrecord_types = TYPES;
                }
                r = dm_store_domain_insert_many(st, ds, k, NULL, NULL, res);
                if (r < 0)
                        die("domain_insert_many", r);
                done += k;
        }
        report("import", t0, n, n);

        size_t rows = 0;
        int64_t now = dm_now_ms() + 1000;
        t0 = dm_mono_ms();
        size_t claimed = bench_cycle(st, b, now, true, &rows);
        report("first", t0, claimed, rows);

        t0 = dm_mono_ms();
        /* Claimed off its slot, a domain's next slot is within (iv/2, 3iv/2] from then: one
         * and a half intervals later every domain is due once. */
        claimed = bench_cycle(st, b, now + INTERVAL_MS * 3 / 2, false, &rows);
        report("unchanged", t0, claimed, 0);

        t0 = dm_mono_ms();
        int64_t again = now + INTERVAL_MS * 3 / 2 + 1000;
        size_t due = 0;
        r = dm_store_domain_request_scan_all(st, again, &due);
        if (r < 0)
                die("request_scan_all", r);
        claimed = bench_cycle(st, b, again, false, &rows);
        report("rescan", t0, claimed, 0);

        t0 = dm_mono_ms();
        size_t drained = 0;
        for (;;) {
                struct dm_outbox_event *ev = NULL;
                int64_t ids[OUTBOX_BATCH];
                size_t m = 0;
                r = dm_store_outbox_claim(st, BENCH_OWNER, BENCH_LEASE_MS, OUTBOX_BATCH,
                                          dm_now_ms(), &ev, &m);
                if (r < 0)
                        die("outbox_claim", r);
                for (size_t i = 0; i < m; i++)
                        ids[i] = ev[i].id;
                dm_outbox_events_free(ev, m);
                if (m == 0)
                        break;
                r = dm_store_outbox_delete(st, BENCH_OWNER, ids, m, NULL);
                if (r < 0)
                        die("outbox_delete", r);
                drained += m;
        }
        report("drain", t0, n, drained);

        free(b);
        free(res);
        free(ds);
        dm_store_free(st);
        return 0;
}
