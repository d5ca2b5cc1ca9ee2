/* History retention (DM_HISTORY_RETENTION): every round deletes the history entries older
 * than the retention, DM_DNS_PRUNE_BATCH to a transaction with a pause between two, so that
 * a large backlog never holds the store's writer for long and scan commits go in between.
 * Several dns-service processes may each run it: deleting is idempotent. */
#include "dns_int.h"

#include "dm/error.h"
#include "dm/log.h"
#include "dm/time.h"

#include <inttypes.h>

/* One round: everything older than the cutoff, batch by batch. */
static void dns_prune_round(struct dm_dns_service *svc, int64_t retention_ms)
{
        int64_t cutoff = dm_now_ms() - retention_ms;
        uint64_t total = 0;
        for (;;) {
                size_t n = 0;
                int r = dm_store_history_prune(svc->store, cutoff, DM_DNS_PRUNE_BATCH, &n);
                if (r < 0) {
                        dm_log_warn(DM_DNS_SVC,
                                    "msg=\"cannot prune history; tried again next round\" "
                                    "err=\"%s\"",
                                    dm_strerror(r));
                        break;
                }
                total += n;
                if (n < DM_DNS_PRUNE_BATCH || atomic_load(&svc->stopping))
                        break;
                dm_dns_pause(svc, DM_DNS_PRUNE_PAUSE_MS);
        }
        if (total > 0)
                dm_log_info(DM_DNS_SVC,
                            "msg=\"pruned history\" entries=%" PRIu64 " older_than_s=%" PRId64,
                            total, retention_ms / 1000);
}

void *dm_dns_retention_main(void *arg)
{
        struct dm_dns_service *svc = arg;
        int64_t retention_ms = svc->app->conf.history_retention_ms;
        while (!atomic_load(&svc->stopping)) {
                dns_prune_round(svc, retention_ms);
                dm_dns_pause(svc, DM_DNS_PRUNE_ROUND_MS);
        }
        return NULL;
}
