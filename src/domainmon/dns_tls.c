/* The TLS probes of a scanner loop: each scan whose lookups are in gets its endpoints from
 * dm_tls_plan and waits in the loop's queue; up to DM_DNS_TLS_INFLIGHT probes run at once,
 * polled with the resolver's socket, each bounded by DM_TLS_TIMEOUT from its start. The
 * rules (which addresses, what a result means) are lib/tls's; this file only drives them. */
#include "dns_int.h"

#include "dm/error.h"
#include "dm/log.h"
#include "dm/time.h"

#include <stdlib.h>
#include <string.h>

/* The first value of a lookup, and whether it failed. */
static const char *dns_first_address(const struct dm_dns_scan *d, uint16_t type, bool *ret_failed)
{
        for (size_t i = 0; i < d->nrr + d->naddr; i++) {
                const struct dm_change_rr *rr = &d->rr[i];
                if (rr->type != type)
                        continue;
                *ret_failed = rr->status == DM_RRS_ERROR;
                return rr->status == DM_RRS_OK && rr->nvalues > 0 ? rr->values[0] : NULL;
        }
        *ret_failed = true; /* not looked up: unknown */
        return NULL;
}

bool dm_dns_tls_begin(struct dm_dns_loop *l, struct dm_dns_scan *d)
{
        bool v4_failed, v6_failed;
        const char *v4 = dns_first_address(d, DM_RR_A, &v4_failed);
        const char *v6 = dns_first_address(d, DM_RR_AAAA, &v6_failed);
        d->tls = calloc(DM_TLS_ENDPOINTS_MAX, sizeof(*d->tls));
        if (!d->tls) {
                d->tls_skip = true;
                return false;
        }
        int r = dm_tls_plan(v4, v4_failed, v6, v6_failed, d->tls_ports, d->ntls_ports, d->tls,
                            &d->ntls);
        if (r < 0) {
                d->tls_skip = true; /* addresses unknown: the stored state stays */
                return false;
        }
        d->tls_next = 0;
        d->tls_pending = 0;
        for (size_t i = 0; i < d->ntls; i++) {
                if (d->tls[i].address[0])
                        d->tls_pending++;
        }
        if (d->tls_pending == 0) {
                d->tls_observed_at = dm_now_ms();
                dm_tls_fingerprint(d->tls, d->ntls, d->tls_fp);
                return false;
        }
        d->tls_wait_next = NULL;
        if (l->tls_wait_tail)
                l->tls_wait_tail->tls_wait_next = d;
        else
                l->tls_wait_head = d;
        l->tls_wait_tail = d;
        return true;
}

/* A queued scan always has an address on every endpoint (dm_tls_plan gives address-less
 * endpoints only when there is no address at all, and such a scan is never queued). */
static void dns_tls_start_waiting(struct dm_dns_loop *l,
                                  void (*finished)(struct dm_dns_loop *l, struct dm_dns_scan *d))
{
        struct dm_dns_service *svc = l->svc;
        int64_t timeout = svc->app->conf.tls_timeout_ms;
        while (l->tls_wait_head && l->nprobes < DM_DNS_TLS_INFLIGHT) {
                struct dm_dns_scan *d = l->tls_wait_head;
                size_t i = d->tls_next++;
                if (d->tls_next >= d->ntls) {
                        l->tls_wait_head = d->tls_wait_next;
                        if (!l->tls_wait_head)
                                l->tls_wait_tail = NULL;
                }
                struct dm_tls_result *r = &d->tls[i];
                struct dm_tls_probe *p = NULL;
                int rc = dm_tls_probe_start(svc->tls_ctx, d->name, r->address, r->port,
                                            dm_mono_ms() + timeout, &p);
                if (rc == 0) {
                        l->probes[l->nprobes++] =
                            (struct dm_dns_probe){.probe = p, .scan = d, .index = i};
                        continue;
                }
                r->status = DM_TLS_ERROR;
                snprintf(r->error, sizeof(r->error), "cannot probe: %s", dm_strerror(rc));
                if (--d->tls_pending == 0) {
                        d->tls_observed_at = dm_now_ms();
                        dm_tls_fingerprint(d->tls, d->ntls, d->tls_fp);
                        finished(l, d);
                }
        }
}

size_t dm_dns_tls_poll(struct dm_dns_loop *l, struct pollfd *pfd,
                       void (*finished)(struct dm_dns_loop *l, struct dm_dns_scan *d))
{
        if (!l->probes) {
                if (!l->tls_wait_head)
                        return 0;
                l->probes = calloc(DM_DNS_TLS_INFLIGHT, sizeof(*l->probes));
                if (!l->probes)
                        return 0;
        }
        dns_tls_start_waiting(l, finished);
        for (size_t i = 0; i < l->nprobes; i++) {
                pfd[i] = (struct pollfd){.fd = dm_tls_probe_fd(l->probes[i].probe),
                                         .events = dm_tls_probe_events(l->probes[i].probe)};
        }
        return l->nprobes;
}

void dm_dns_tls_run(struct dm_dns_loop *l, const struct pollfd *pfd, size_t n,
                    void (*finished)(struct dm_dns_loop *l, struct dm_dns_scan *d))
{
        int64_t now = dm_mono_ms();
        size_t keep = 0;
        for (size_t i = 0; i < l->nprobes; i++) {
                struct dm_dns_probe pr = l->probes[i];
                bool ready = i < n && pfd[i].revents != 0;
                if ((!ready && now < dm_tls_probe_deadline(pr.probe)) ||
                    dm_tls_probe_step(pr.probe, now) == DM_EAGAIN) {
                        l->probes[keep++] = pr;
                        continue;
                }
                struct dm_dns_scan *d = pr.scan;
                struct dm_tls_result *r = &d->tls[pr.index];
                dm_tls_probe_take(pr.probe, r);
                dm_tls_probe_free(pr.probe);
                atomic_fetch_add_explicit(&l->probes_done, 1, memory_order_relaxed);
                if (r->status == DM_TLS_ERROR)
                        atomic_fetch_add_explicit(&l->probe_errors, 1, memory_order_relaxed);
                if (--d->tls_pending > 0)
                        continue;
                d->tls_observed_at = dm_now_ms();
                dm_tls_fingerprint(d->tls, d->ntls, d->tls_fp);
                finished(l, d);
        }
        l->nprobes = keep;
}

void dm_dns_tls_abandon(struct dm_dns_loop *l)
{
        for (size_t i = 0; i < l->nprobes; i++)
                dm_tls_probe_free(l->probes[i].probe);
        l->nprobes = 0;
        l->tls_wait_head = l->tls_wait_tail = NULL;
}
