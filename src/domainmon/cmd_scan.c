/* `domainmon scan`: every enabled domain made due, then one pass through the DNS service's
 * own scheduler, bus, loops and committer (on a queue of its own), and a line of figures.
 * `--resolve-only` feeds the loops straight from the domain list and stores nothing: the
 * pipeline's baseline. */
#include "dns_int.h"

#include "dm/error.h"
#include "dm/log.h"
#include "dm/time.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* --resolve-only: every enabled domain straight to the loops, nothing stored. */
static int dns_feed_all(struct dm_dns_service *svc)
{
        struct dm_domain *page = calloc(DM_DNS_PAGE, sizeof(*page));
        char after[DM_NAME_MAX + 1] = "";
        int r = 0;
        if (!page)
                return DM_ENOMEM;
        for (;;) {
                struct dm_domain_query q = {.after = after[0] ? after : NULL, .limit = DM_DNS_PAGE};
                size_t n = 0;
                r = dm_store_domain_list(svc->store, &q, page, &n);
                if (r < 0)
                        break;
                for (size_t i = 0; i < n; i++) {
                        if (!page[i].enabled)
                                continue;
                        pthread_mutex_lock(&svc->mu);
                        while (svc->outstanding >= (int64_t)svc->max_outstanding)
                                dm_dns_cond_wait_ms(&svc->cond, &svc->mu, DM_DNS_ROOM_WAIT_MS);
                        svc->outstanding++;
                        pthread_mutex_unlock(&svc->mu);
                        struct dm_dns_scan *d =
                            dm_dns_scan_new(svc, page[i].id, page[i].name, page[i].record_types,
                                            page[i].nrecord_types, NULL, DM_CHECKS_DNS);
                        if (!d) {
                                dm_dns_finish(svc, 1, 0);
                                r = DM_ENOMEM;
                                goto out;
                        }
                        dm_dns_dispatch(svc, d);
                }
                if (n < DM_DNS_PAGE)
                        break;
                snprintf(after, sizeof(after), "%s", page[n - 1].name);
        }
out:
        free(page);
        return r;
}

int dm_cmd_scan(struct dm_app *app, int argc, char **argv)
{
        bool resolve_only = false;
        struct dm_dns_service *svc = NULL;
        size_t due = 0;
        int r;

        for (int i = 0; i < argc; i++) {
                if (strcmp(argv[i], "--resolve-only") == 0) {
                        resolve_only = true;
                } else {
                        fprintf(stderr,
                                "domainmon scan: unknown option '%s' (only --resolve-only)\n",
                                argv[i]);
                        return 2;
                }
        }
        if (!app || !app->store || !app->bus)
                return 1;

        int64_t t0 = dm_mono_ms();
        if (!resolve_only) {
                r = dm_store_domain_request_scan_all(app->store, dm_now_ms(), &due);
                if (r < 0) {
                        fprintf(stderr, "domainmon scan: cannot make the domains due: %s\n",
                                dm_strerror(r));
                        return 1;
                }
        }
        int64_t t1 = dm_mono_ms();
        if (!resolve_only)
                dm_log_info(DM_DNS_SVC, "msg=\"made every enabled domain due\" domains=%zu", due);
        r = dm_dns_start(app, resolve_only ? DM_DNS_MODE_RESOLVE : DM_DNS_MODE_SCAN, &svc);
        if (r < 0) {
                fprintf(stderr, "domainmon scan: cannot start the scanners: %s\n", dm_strerror(r));
                return 1;
        }
        if (resolve_only) {
                r = dns_feed_all(svc);
                if (r < 0)
                        fprintf(stderr, "domainmon scan: cannot list the domains: %s\n",
                                dm_strerror(r));
                pthread_mutex_lock(&svc->mu);
                svc->sched_done = true;
                pthread_mutex_unlock(&svc->mu);
        }
        pthread_mutex_lock(&svc->mu);
        while (!svc->sched_done || svc->outstanding > 0)
                dm_dns_cond_wait_ms(&svc->cond, &svc->mu, DM_DNS_ROOM_WAIT_MS);
        pthread_mutex_unlock(&svc->mu);
        int64_t t2 = dm_mono_ms();

        dm_dns_stop(svc);
        dm_dns_stats_log(svc, true);
        struct dm_dns_totals t;
        dm_dns_sum_loops(svc, &t);
        uint64_t lookups = t.lookups, failures = t.failures;
        uint64_t domains = atomic_load(&svc->domains), changes = atomic_load(&svc->changes);
        dm_dns_free(svc);

        struct rusage ru;
        long peak_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
        double secs = (double)(t2 - t1) / 1000.0;
        printf("domains=%" PRIu64 " lookups=%" PRIu64 " failed=%" PRIu64
               " seconds=%.2f lookups_per_s=%.0f changes=%" PRIu64
               " peak_rss_mb=%ld prepare_seconds=%.2f\n",
               domains, lookups, failures, secs, secs > 0 ? (double)lookups / secs : 0.0, changes,
               peak_kb / 1024, (double)(t1 - t0) / 1000.0);
        fflush(stdout);
        return r < 0 ? 1 : 0;
}
