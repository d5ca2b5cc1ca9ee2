/* The committer: finished scans in batches -> lib/dns/change.c (rows and history) -> one
 * dm_store_dns_commit -> the task messages settled. A batch the store cannot take is kept,
 * unacked, and tried again after a pause that doubles (DM_DNS_BACKOFF_MIN_MS up to
 * DM_DNS_BACKOFF_MAX_MS); meanwhile the service takes no new work, so an outage costs no
 * lookups, only the wait. */
#include "dns_int.h"

#include "dm/buf.h"
#include "dm/error.h"
#include "dm/json.h"
#include "dm/log.h"
#include "dm/rrtype.h"
#include "dm/time.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

void dm_dns_hand_off(struct dm_dns_service *svc, struct dm_dns_scan *d)
{
        if (!d->abandoned)
                atomic_fetch_add_explicit(&svc->domains, 1, memory_order_relaxed);
        if (svc->mode == DM_DNS_MODE_RESOLVE) {
                dm_dns_scan_free(d);
                dm_dns_finish(svc, 1, 0);
                return;
        }
        d->next = NULL;
        pthread_mutex_lock(&svc->commit_mu);
        if (svc->done_tail)
                svc->done_tail->next = d;
        else
                svc->done_head = d;
        svc->done_tail = d;
        if (++svc->ndone == 1)
                svc->done_since = dm_mono_ms();
        if (svc->ndone == 1 || svc->ndone >= DM_DNS_COMMIT_MAX)
                pthread_cond_signal(&svc->commit_cond);
        pthread_mutex_unlock(&svc->commit_mu);
}

void dm_dns_dispose(struct dm_dns_service *svc, struct dm_dns_scan *d, bool requeue)
{
        struct dm_dns_msg *msg = d->msg;
        if (requeue && atomic_load(&svc->stopping) && !atomic_load(&svc->store_down)) {
                /* The consumer is gone and an in-process queue dies with us: make sure the
                 * domain is claimed again soon whatever happens to the message. A store
                 * known to fail is not asked (each call would wait out its timeout). */
                int r = dm_store_domain_request_scan(svc->store, d->name, dm_now_ms());
                if (r < 0 && r != DM_ENOENT)
                        dm_dns_store_failed(svc, "request_scan", r);
        }
        dm_dns_scan_free(d);
        if (!msg)
                return;
        if (requeue)
                msg->requeue = true;
        if (--msg->remaining > 0)
                return;
        int r;
        if (msg->requeue) {
                r = dm_bus_nack(svc->bus, msg->tag, true);
        } else {
                r = dm_bus_ack(svc->bus, msg->tag);
                dm_dns_finish(svc, msg->ndomains, 1);
        }
        if (r < 0)
                dm_log_warn(DM_DNS_SVC, "msg=\"cannot settle a scan task message\" err=\"%s\"",
                            dm_strerror(r));
        free(msg);
}

/* The outbox body of a change, called by the store inside the commit's transaction. */
static char *dns_event_json(const struct dm_change *ch, void *arg)
{
        (void)arg;
        char tbuf[16], ts[DM_RFC3339_LEN];
        struct dm_buf b;
        dm_buf_init(&b, DM_DNS_EVENT_MAX);
        int r = dm_buf_addf(&b, "{\"id\":%" PRId64 ",\"domain\":", ch->id);
        if (r == 0)
                r = dm_json_buf_add_string(&b, ch->domain);
        if (r == 0)
                r = dm_buf_addf(&b,
                                ",\"type\":\"%s\",\"status\":\"%s\",\"observed_at\":\"%s\","
                                "\"before\":%s,\"after\":%s,\"added\":%s,\"removed\":%s}",
                                dm_rrtype_name(ch->type, tbuf), dm_rr_status_name(ch->status),
                                dm_time_format(ch->observed_at, ts),
                                ch->before ? ch->before : "null", ch->after ? ch->after : "[]",
                                ch->added ? ch->added : "[]", ch->removed ? ch->removed : "[]");
        if (r < 0) {
                dm_buf_done(&b);
                return NULL;
        }
        return dm_buf_detach(&b);
}

/* The commit item of one finished scan: the stored rows when the change rules need them,
 * then lib/dns/change.c. A failure here is the store's (or memory's): retried later. */
static int dns_build_item(struct dm_dns_service *svc, const struct dm_dns_scan *d,
                          struct dm_dns_commit *it, const char **ret_op)
{
        struct dm_change_scan scan = {
            .domain_id = d->id,
            .name = d->name,
            .observed_at = d->observed_at,
            .rr = d->rr,
            .nrr = d->nrr,
        };
        struct dm_rrset_row *rows = NULL;
        size_t nrows = 0;
        memcpy(scan.task_fp, d->task_fp, DM_FP_LEN);
        memcpy(scan.fp, d->fp, DM_FP_LEN);
        if (dm_change_needs_rows(&scan)) {
                int r = dm_store_dns_current(svc->store, d->id, &rows, &nrows);
                if (r < 0) {
                        *ret_op = "dns_current";
                        return r;
                }
        }
        int r = dm_change_build(&scan, rows, nrows, it);
        dm_rrset_rows_free(rows, nrows);
        if (r == DM_EINVAL) {
                /* Outcomes the change rules refuse can never be written: record the check
                 * alone rather than stall every other result behind this one. */
                dm_log_warn(DM_DNS_SVC, "msg=\"scan result cannot be recorded\" domain=%s",
                            d->name);
                memcpy(scan.fp, scan.task_fp, DM_FP_LEN);
                r = dm_change_build(&scan, NULL, 0, it);
        }
        if (r < 0)
                *ret_op = "change_build";
        return r;
}

/* Builds and writes the batch once. 0: written, and every scan settled. Otherwise nothing
 * was written, the scans are untouched and *ret_op names what failed. */
static int dns_commit_once(struct dm_dns_service *svc, struct dm_dns_scan **ds, size_t n,
                           struct dm_dns_commit *items, const char **ret_op)
{
        size_t ni = 0;
        int r = 0;

        for (; ni < n; ni++) {
                r = dns_build_item(svc, ds[ni], &items[ni], ret_op);
                if (r < 0)
                        goto free_items;
        }
        r = dm_store_dns_commit(svc->store, items, n, dns_event_json, svc);
        if (r < 0) {
                *ret_op = "dns_commit";
                goto free_items;
        }
        uint64_t changes = 0;
        for (size_t i = 0; i < n; i++) {
                const struct dm_dns_commit *it = &items[i];
                if (it->result == 0) {
                        if (memcmp(it->old_fp, it->new_fp, DM_FP_LEN) != 0)
                                changes += it->nchanges;
                } else if (it->result == DM_ECONFLICT) {
                        atomic_fetch_add_explicit(&svc->conflicts, 1, memory_order_relaxed);
                        dm_log_debug(DM_DNS_SVC,
                                     "msg=\"result dropped: the domain was written by another "
                                     "scan first\" domain=%s",
                                     ds[i]->name);
                } else if (it->result == DM_ENOENT) {
                        dm_log_debug(DM_DNS_SVC, "msg=\"result dropped: domain deleted\" domain=%s",
                                     ds[i]->name);
                } else {
                        dm_log_warn(DM_DNS_SVC, "msg=\"result not written\" domain=%s err=\"%s\"",
                                    ds[i]->name, dm_strerror(it->result));
                }
                dm_dns_dispose(svc, ds[i], false);
                ds[i] = NULL;
        }
        if (changes > 0) {
                atomic_fetch_add_explicit(&svc->changes, changes, memory_order_relaxed);
                dm_outbox_relay_kick(svc->app->relay);
        }

free_items:
        for (size_t i = 0; i < ni; i++)
                dm_change_item_done(&items[i]);
        return r;
}

/* Writes one batch of finished scans. While the store fails the results are kept and their
 * messages stay unacked: the batch is tried again after a growing pause and the service
 * takes no new work meanwhile, instead of handing the tasks back to be resolved again at
 * once. Stopping gives up after one more try: the tasks are requeued and made due. */
static void dns_commit_batch(struct dm_dns_service *svc, struct dm_dns_scan *list, size_t n)
{
        struct dm_dns_commit *items = calloc(n, sizeof(*items));
        struct dm_dns_scan **ds = calloc(n, sizeof(*ds));
        size_t nd = 0;
        int64_t delay = DM_DNS_BACKOFF_MIN_MS;

        if (!items || !ds) {
                /* Nothing can be written without memory: hand the tasks back. */
                while (list) {
                        struct dm_dns_scan *next = list->next;
                        dm_dns_dispose(svc, list, true);
                        list = next;
                }
                goto free_arrays;
        }
        while (list) {
                struct dm_dns_scan *d = list;
                list = d->next;
                if (d->abandoned)
                        dm_dns_dispose(svc, d, true);
                else if (!(d->checks & DM_CHECKS_DNS))
                        dm_dns_dispose(svc, d, false); /* no DNS check: nothing of it to write */
                else
                        ds[nd++] = d;
        }
        while (nd > 0) {
                const char *op = "dns_commit";
                int r = dns_commit_once(svc, ds, nd, items, &op);
                if (r == 0) {
                        dm_dns_store_ok(svc);
                        if (atomic_load(&svc->paused))
                                dm_dns_resume(svc);
                        break;
                }
                dm_dns_store_failed(svc, op, r);
                atomic_store(&svc->paused, true);
                if (atomic_load(&svc->stopping)) {
                        for (size_t i = 0; i < nd; i++)
                                dm_dns_dispose(svc, ds[i], true);
                        break;
                }
                dm_dns_pause(svc, delay);
                delay = delay * 2 > DM_DNS_BACKOFF_MAX_MS ? DM_DNS_BACKOFF_MAX_MS : delay * 2;
        }

free_arrays:
        free(items);
        free(ds);
}

void *dm_dns_commit_main(void *arg)
{
        struct dm_dns_service *svc = arg;
        for (;;) {
                pthread_mutex_lock(&svc->commit_mu);
                for (;;) {
                        if (svc->ndone >= DM_DNS_COMMIT_MAX || svc->loops_finished)
                                break;
                        if (svc->ndone == 0) {
                                pthread_cond_wait(&svc->commit_cond, &svc->commit_mu);
                                continue;
                        }
                        int64_t wait = svc->done_since + DM_DNS_COMMIT_MS - dm_mono_ms();
                        if (wait <= 0)
                                break;
                        dm_dns_cond_wait_ms(&svc->commit_cond, &svc->commit_mu, wait);
                }
                if (svc->ndone == 0 && svc->loops_finished) {
                        pthread_mutex_unlock(&svc->commit_mu);
                        break;
                }
                struct dm_dns_scan *list = svc->done_head, *last = NULL;
                size_t k = 0;
                for (struct dm_dns_scan *d = list; d && k < DM_DNS_COMMIT_MAX; d = d->next) {
                        last = d;
                        k++;
                }
                svc->done_head = last->next;
                if (!svc->done_head)
                        svc->done_tail = NULL;
                last->next = NULL;
                svc->ndone -= k;
                svc->done_since = dm_mono_ms();
                pthread_mutex_unlock(&svc->commit_mu);

                dns_commit_batch(svc, list, k);
        }
        return NULL;
}
