/* The outbox publisher: change events written with their change are handed to the bus and
 * deleted, oldest first; woken after each commit that wrote changes and every second. It
 * also writes the periodic stats line. */
#include "dns_int.h"

#include "dm/error.h"
#include "dm/log.h"
#include "dm/time.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void dm_dns_kick_outbox(struct dm_dns_service *svc)
{
        pthread_mutex_lock(&svc->outbox_mu);
        svc->outbox_kick = true;
        pthread_cond_signal(&svc->outbox_cond);
        pthread_mutex_unlock(&svc->outbox_mu);
}

static void dns_outbox_flush(struct dm_dns_service *svc)
{
        for (;;) {
                struct dm_outbox_event *ev = NULL;
                size_t n = 0, np = 0;
                int r = dm_store_outbox_claim(svc->store, 1, 60000, DM_DNS_OUTBOX_BATCH,
                                              dm_now_ms(), &ev, &n);
                if (r < 0) {
                        dm_dns_store_failed(svc, "outbox_fetch", r);
                        return;
                }
                if (n == 0)
                        return;
                int64_t *ids = malloc(n * sizeof(*ids));
                if (!ids) {
                        dm_outbox_events_free(ev, n);
                        return;
                }
                for (size_t i = 0; i < n; i++) {
                        r = dm_bus_publish(svc->bus, ev[i].routing_key, ev[i].body,
                                           strlen(ev[i].body));
                        if (r == DM_EINVAL) {
                                /* It can never be published: it must not block the rest. */
                                char q[64];
                                dm_log_warn(DM_DNS_SVC,
                                            "msg=\"dropped an outbox event the bus refuses\" "
                                            "id=%" PRId64 " routing_key=%s",
                                            ev[i].id,
                                            dm_log_quote(q, sizeof(q), ev[i].routing_key));
                        } else if (r < 0) {
                                if (!atomic_exchange(&svc->outbox_down, true))
                                        dm_log_error(DM_DNS_SVC,
                                                     "msg=\"cannot publish change events; they "
                                                     "wait in the outbox\" err=\"%s\"",
                                                     dm_strerror(r));
                                break;
                        } else if (atomic_exchange(&svc->outbox_down, false)) {
                                dm_log_info(DM_DNS_SVC, "msg=\"publishing change events again\"");
                        }
                        ids[np++] = ev[i].id;
                }
                if (np > 0) {
                        r = dm_store_outbox_delete(svc->store, 1, ids, np, NULL);
                        if (r < 0)
                                dm_dns_store_failed(svc, "outbox_delete", r);
                }
                free(ids);
                dm_outbox_events_free(ev, n);
                if (r < 0 || np < n || n < DM_DNS_OUTBOX_BATCH)
                        return;
        }
}

void dm_dns_stats_log(struct dm_dns_service *svc, bool final)
{
        int64_t now = dm_mono_ms();
        if (!final && now - svc->stats_at < DM_DNS_STATS_MS)
                return;
        struct dm_dns_totals t;
        dm_dns_sum_loops(svc, &t);
        uint64_t domains = atomic_load(&svc->domains), changes = atomic_load(&svc->changes);
        pthread_mutex_lock(&svc->mu);
        int64_t outstanding = svc->outstanding;
        pthread_mutex_unlock(&svc->mu);
        dm_log_info(DM_DNS_SVC,
                    "msg=\"%s\" domains=%" PRIu64 " lookups=%" PRIu64 " failures=%" PRIu64
                    " changes=%" PRIu64 " sent=%" PRIu64 " retransmits=%" PRIu64
                    " window=%d outstanding=%" PRId64 " seconds=%.1f",
                    final ? "scan stats (final)" : "scan stats", domains - svc->stats.domains,
                    t.lookups - svc->stats.lookups, t.failures - svc->stats.failures,
                    changes - svc->stats.changes, t.sent - svc->stats.sent,
                    t.retransmits - svc->stats.retransmits, t.window, outstanding,
                    (double)(now - svc->stats_at) / 1000.0);
        svc->stats_at = now;
        svc->stats = (struct dm_dns_stats_mark){
            .domains = domains,
            .lookups = t.lookups,
            .failures = t.failures,
            .changes = changes,
            .sent = t.sent,
            .retransmits = t.retransmits,
        };
}

void *dm_dns_outbox_main(void *arg)
{
        struct dm_dns_service *svc = arg;
        for (;;) {
                pthread_mutex_lock(&svc->outbox_mu);
                if (!svc->outbox_kick && !svc->outbox_stop)
                        dm_dns_cond_wait_ms(&svc->outbox_cond, &svc->outbox_mu, DM_DNS_OUTBOX_MS);
                bool stop = svc->outbox_stop;
                svc->outbox_kick = false;
                pthread_mutex_unlock(&svc->outbox_mu);

                dns_outbox_flush(svc);
                if (stop)
                        break;
                if (svc->mode == DM_DNS_MODE_SERVICE)
                        dm_dns_stats_log(svc, false);
        }
        return NULL;
}
