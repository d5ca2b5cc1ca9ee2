/* The scheduler: claims due domains and publishes them as task messages, within the
 * backpressure bound (task messages ready in the queue, counted by the bus for every
 * process; this process's own counts when that cannot be read), and not at all while the
 * store refuses results. At stop it hands back what it published and nobody consumed. */
#include "dns_int.h"

#include "dm/buf.h"
#include "dm/error.h"
#include "dm/log.h"
#include "dm/task.h"
#include "dm/time.h"

#include <stdlib.h>

/* Publishes claimed tasks, retrying while the bus refuses. On stop, the unpublished ones
 * are made due again so that the claim does not push them to their next slot. */
static void dns_publish_tasks(struct dm_dns_service *svc, const struct dm_scan_task *t, size_t n,
                              struct dm_buf *b)
{
        int r = dm_scan_tasks_encode(t, n, b);
        while (r == 0) {
                r = dm_bus_publish(svc->bus, svc->task_key, b->data, b->len);
                if (r == 0) {
                        if (atomic_exchange(&svc->bus_down, false))
                                dm_log_info(DM_DNS_SVC, "msg=\"publishing scan tasks again\"");
                        return;
                }
                if (!atomic_exchange(&svc->bus_down, true))
                        dm_log_error(DM_DNS_SVC,
                                     "msg=\"cannot publish scan tasks; retrying\" err=\"%s\"",
                                     dm_strerror(r));
                if (atomic_load(&svc->stopping))
                        break;
                dm_dns_sleep(svc, DM_DNS_IDLE_MS);
                r = 0;
        }
        int64_t now = dm_now_ms();
        for (size_t i = 0; i < n; i++)
                dm_store_domain_request_scan(svc->store, t[i].name, now);
        dm_dns_finish(svc, n, 1);
}

/* Room by this process's own counts: domains outstanding, and messages within the
 * consumer's prefetch (each holds up to DM_DNS_TASKS_PER_MSG, so this many cannot make
 * more messages than the prefetch has room for). Under mu. */
static int64_t dns_local_room(const struct dm_dns_service *svc)
{
        int64_t room = (int64_t)svc->max_outstanding - svc->outstanding;
        int64_t msg_room = ((int64_t)svc->prefetch - svc->outstanding_msgs) * DM_DNS_TASKS_PER_MSG;
        return msg_room < room ? msg_room : room;
}

/* Room by the task queue's depth, as the bus counts it for every process: messages ready
 * below max_ready_msgs, in domains. Returns the bus error when the depth cannot be read. */
static int dns_depth_room(struct dm_dns_service *svc, int64_t *ret_room)
{
        uint64_t ready = 0;
        int r = dm_bus_queue_depth(svc->bus, svc->queue, &ready, NULL);
        if (r < 0) {
                if (!svc->depth_down)
                        dm_log_warn(DM_DNS_SVC,
                                    "msg=\"cannot read the task queue depth; bounding by this "
                                    "process's count\" err=\"%s\"",
                                    dm_strerror(r));
                svc->depth_down = true;
                return r;
        }
        dm_metric_set(svc->m_depth, (double)ready);
        if (svc->depth_down)
                dm_log_info(DM_DNS_SVC, "msg=\"bounding by the task queue depth again\"");
        svc->depth_down = false;
        if (ready > svc->max_ready_msgs)
                ready = svc->max_ready_msgs;
        *ret_room = (int64_t)(svc->max_ready_msgs - ready) * DM_DNS_TASKS_PER_MSG;
        return 0;
}

/* How many domains the next claim may take: 0 once stopping. Waits while the store refuses
 * results, or while the task queue holds max_ready_msgs messages ready; only when its
 * depth cannot be read, while this process's own counts are at their bound. */
static size_t dns_claim_room(struct dm_dns_service *svc)
{
        for (;;) {
                pthread_mutex_lock(&svc->mu);
                while (!atomic_load(&svc->stopping) && atomic_load(&svc->paused)) {
                        dm_dns_cond_wait_ms(&svc->cond, &svc->mu, DM_DNS_ROOM_WAIT_MS);
                        /* A long wait (a store outage) still reports. */
                        if (svc->mode == DM_DNS_MODE_SERVICE) {
                                pthread_mutex_unlock(&svc->mu);
                                dm_dns_stats_log(svc, false);
                                pthread_mutex_lock(&svc->mu);
                        }
                }
                int64_t room = dns_local_room(svc);
                pthread_mutex_unlock(&svc->mu);
                if (atomic_load(&svc->stopping))
                        return 0;

                /* One round trip per claim: the queue is shared, so every process sees what
                 * all of them published and every consumer took. */
                bool by_depth = dns_depth_room(svc, &room) == 0;
                if (room > 0)
                        return room < (int64_t)svc->claim_max ? (size_t)room : svc->claim_max;

                if (by_depth) {
                        /* Consumers elsewhere make the room: look again shortly. */
                        dm_dns_pause(svc, DM_DNS_DEPTH_POLL_MS);
                } else {
                        pthread_mutex_lock(&svc->mu);
                        if (!atomic_load(&svc->stopping) && dns_local_room(svc) <= 0)
                                dm_dns_cond_wait_ms(&svc->cond, &svc->mu, DM_DNS_ROOM_WAIT_MS);
                        pthread_mutex_unlock(&svc->mu);
                }
                if (svc->mode == DM_DNS_MODE_SERVICE)
                        dm_dns_stats_log(svc, false);
        }
}

void *dm_dns_scheduler_main(void *arg)
{
        struct dm_dns_service *svc = arg;
        const struct dm_conf *conf = &svc->app->conf;
        struct dm_scan_task *tasks = calloc(svc->claim_max, sizeof(*tasks));
        struct dm_buf b;
        dm_buf_init(&b, DM_TASK_MSG_MAX);
        if (!tasks) {
                dm_log_error(DM_DNS_SVC, "msg=\"scheduler out of memory\"");
                goto out;
        }

        while (!atomic_load(&svc->stopping)) {
                if (svc->mode == DM_DNS_MODE_SERVICE)
                        dm_dns_stats_log(svc, false);
                size_t limit = dns_claim_room(svc);
                if (limit == 0)
                        continue; /* stopping, or woken with no room yet */

                struct dm_claim_opts opts = {
                    .now = svc->mode == DM_DNS_MODE_SCAN ? svc->scan_now : dm_now_ms(),
                    .limit = limit,
                    .default_interval_ms = conf->scan_interval_ms,
                    .min_interval_ms = conf->min_interval_ms,
                };
                size_t n = 0;
                int r = dm_store_claim_due(svc->store, &opts, tasks, &n);
                if (r < 0) {
                        dm_dns_store_failed(svc, "claim_due", r);
                        dm_dns_sleep(svc, DM_DNS_RETRY_MS);
                        continue;
                }
                dm_dns_store_ok(svc);
                if (n > 0) {
                        pthread_mutex_lock(&svc->mu);
                        svc->outstanding += (int64_t)n;
                        svc->outstanding_msgs +=
                            (int64_t)((n + DM_DNS_TASKS_PER_MSG - 1) / DM_DNS_TASKS_PER_MSG);
                        pthread_mutex_unlock(&svc->mu);
                        for (size_t i = 0; i < n; i += DM_DNS_TASKS_PER_MSG) {
                                size_t k =
                                    n - i < DM_DNS_TASKS_PER_MSG ? n - i : DM_DNS_TASKS_PER_MSG;
                                dns_publish_tasks(svc, tasks + i, k, &b);
                        }
                }
                if (n == opts.limit)
                        continue; /* a full batch: more may be due right now */
                if (svc->mode == DM_DNS_MODE_SCAN)
                        break; /* one pass: everything due at the start is claimed */
                dm_dns_sleep(svc, DM_DNS_IDLE_MS);
        }

out:
        /* Whatever ended the loop, the scan driver must not wait for more claims. */
        pthread_mutex_lock(&svc->mu);
        svc->sched_done = true;
        pthread_cond_broadcast(&svc->cond);
        pthread_mutex_unlock(&svc->mu);
        dm_buf_done(&b);
        free(tasks);
        return NULL;
}

struct dns_reclaim {
        struct dm_dns_service *svc;
        int64_t now;
        size_t domains;
        int err; /* first store error */
};

/* A task message nobody consumed: its domains become due again. Only our own messages
 * are in our queue, but it is checked like any other. */
static void dns_on_reclaimed(void *arg, const struct dm_bus_msg *m)
{
        struct dns_reclaim *rc = arg;
        struct dm_scan_task *tasks = NULL;
        size_t n = 0;
        char why[256];

        if (dm_scan_tasks_decode(m->body, m->len, why, sizeof(why), &tasks, &n) < 0)
                return;
        /* After the first failure the store is not asked again: each call would wait out
         * its timeout and hold up the stop. */
        for (size_t i = 0; i < n && rc->err == 0; i++) {
                int r = dm_store_domain_request_scan(rc->svc->store, tasks[i].name, rc->now);
                if (r == 0)
                        rc->domains++;
                else if (r != DM_ENOENT)
                        rc->err = r;
        }
        free(tasks);
}

size_t dm_dns_reclaim_tasks(struct dm_dns_service *svc)
{
        struct dns_reclaim rc = {.svc = svc, .now = dm_now_ms()};
        if (atomic_load(&svc->store_down))
                rc.err = DM_ESTORE;
        int n = dm_bus_reclaim(svc->bus, svc->queue, dns_on_reclaimed, &rc);
        if (n > 0 && rc.err < 0)
                dm_log_error(DM_DNS_SVC,
                             "msg=\"cannot make unconsumed tasks due again; they wait for "
                             "their next slot\" err=\"%s\"",
                             dm_strerror(rc.err));
        return rc.domains;
}
