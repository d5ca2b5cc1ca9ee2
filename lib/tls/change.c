/* TLS change rules: what a round of probes means for a domain's stored TLS state. Pure: no
 * store, no clock, no I/O (include/dm/tls.h states the rules). */
#include "dm/tls.h"

#include "dm/error.h"
#include "dm/json.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int dm_tls_plan(const char *v4, bool v4_failed, const char *v6, bool v6_failed,
                const uint16_t *ports, size_t nports, struct dm_tls_result *ret_results,
                size_t *ret_n)
{
        static const uint16_t dflt[1] = {DM_TLS_PORT_DEFAULT};
        const char *addrs[2];
        size_t naddrs = 0, n = 0;

        if (v4_failed || v6_failed)
                return DM_EAGAIN;
        if (nports == 0) {
                ports = dflt;
                nports = 1;
        }
        if (nports > DM_TLS_PORTS_MAX)
                nports = DM_TLS_PORTS_MAX;
        if (v4 && *v4 && strlen(v4) < DM_TLS_ADDRESS_MAX)
                addrs[naddrs++] = v4;
        if (v6 && *v6 && strlen(v6) < DM_TLS_ADDRESS_MAX)
                addrs[naddrs++] = v6;
        for (size_t i = 0; i < nports; i++) {
                for (size_t j = 0; j < (naddrs ? naddrs : 1); j++) {
                        struct dm_tls_result *r = &ret_results[n++];
                        memset(r, 0, sizeof(*r));
                        r->port = ports[i];
                        if (naddrs) {
                                snprintf(r->address, sizeof(r->address), "%s", addrs[j]);
                        } else {
                                r->status = DM_TLS_ERROR;
                                snprintf(r->error, sizeof(r->error),
                                         "the name has no A or AAAA record");
                        }
                }
        }
        *ret_n = n;
        return 0;
}

static int result_cmp(const void *a, const void *b)
{
        const struct dm_tls_result *x = *(const struct dm_tls_result *const *)a;
        const struct dm_tls_result *y = *(const struct dm_tls_result *const *)b;
        if (x->port != y->port)
                return x->port < y->port ? -1 : 1;
        return strcmp(x->address, y->address);
}

static void digest_str(EVP_MD_CTX *md, const char *s)
{
        /* With its terminator, so that ("ab", "c") and ("a", "bc") differ. */
        EVP_DigestUpdate(md, s, strlen(s) + 1);
}

void dm_tls_fingerprint(const struct dm_tls_result *results, size_t n, uint8_t ret_fp[DM_FP_LEN])
{
        const struct dm_tls_result *sorted[DM_TLS_ENDPOINTS_MAX];
        unsigned char out[EVP_MAX_MD_SIZE];
        unsigned int outlen = 0;
        if (n > DM_TLS_ENDPOINTS_MAX)
                n = DM_TLS_ENDPOINTS_MAX;
        for (size_t i = 0; i < n; i++)
                sorted[i] = &results[i];
        qsort(sorted, n, sizeof(sorted[0]), result_cmp);

        EVP_MD_CTX *md = EVP_MD_CTX_new();
        memset(out, 0, sizeof(out));
        if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1) {
                EVP_DigestUpdate(md, "tls1", 5);
                for (size_t i = 0; i < n; i++) {
                        const struct dm_tls_result *r = sorted[i];
                        unsigned char head[4] = {
                            (unsigned char)(r->port >> 8), (unsigned char)(r->port & 0xff),
                            (unsigned char)r->status, (unsigned char)r->chain_valid};
                        EVP_DigestUpdate(md, head, sizeof(head));
                        digest_str(md, r->address);
                        digest_str(md, r->status == DM_TLS_ERROR ? r->error : "");
                        digest_str(md, r->status == DM_TLS_OK ? r->protocol : "");
                        digest_str(md, r->status == DM_TLS_OK ? r->chain_error : "");
                        digest_str(md, r->has_cert ? r->cert.sha256 : "");
                }
                EVP_DigestFinal_ex(md, out, &outlen);
        }
        EVP_MD_CTX_free(md);
        memcpy(ret_fp, out, DM_FP_LEN);
        /* All zero means "no state stored": never the fingerprint of a state. */
        if (dm_store_fp_is_zero(ret_fp))
                ret_fp[0] = 1;
}

bool dm_tls_needs_rows(const struct dm_tls_scan *scan)
{
        return memcmp(scan->fp, scan->task_fp, DM_FP_LEN) != 0 &&
               !dm_store_fp_is_zero(scan->task_fp);
}

static int family_of(const char *address)
{
        if (!address[0])
                return 0;
        return strchr(address, ':') ? AF_INET6 : AF_INET;
}

static const struct dm_tls_endpoint *match(const struct dm_tls_result *r,
                                           const struct dm_tls_endpoint *rows, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (rows[i].port == r->port && strcmp(rows[i].address, r->address) == 0)
                        return &rows[i];
        }
        for (size_t i = 0; i < n; i++) {
                if (rows[i].port == r->port && r->address[0] &&
                    family_of(rows[i].address) == family_of(r->address))
                        return &rows[i];
        }
        if (r->status == DM_TLS_ERROR) {
                for (size_t i = 0; i < n; i++) {
                        if (rows[i].port == r->port && rows[i].cert)
                                return &rows[i];
                }
        }
        return NULL;
}

static char *dup_or_null(const char *s, bool *oom)
{
        if (!s)
                return NULL;
        char *d = strdup(s);
        if (!d)
                *oom = true;
        return d;
}

int dm_tls_build(const struct dm_tls_scan *scan, const struct dm_tls_endpoint *rows, size_t nrows,
                 struct dm_tls_commit *ret_item)
{
        struct dm_tls_commit it = {.domain_id = scan->domain_id, .checked_at = scan->observed_at};
        bool oom = false;
        memcpy(it.old_fp, scan->task_fp, DM_FP_LEN);
        memcpy(it.new_fp, scan->fp, DM_FP_LEN);
        memset(ret_item, 0, sizeof(*ret_item));
        if (memcmp(scan->fp, scan->task_fp, DM_FP_LEN) == 0) {
                *ret_item = it;
                return 0;
        }
        size_t n = scan->nresults > DM_TLS_ENDPOINTS_MAX ? DM_TLS_ENDPOINTS_MAX : scan->nresults;
        it.endpoints = calloc(n ? n : 1, sizeof(*it.endpoints));
        it.changes = calloc(n ? n : 1, sizeof(*it.changes));
        if (!it.endpoints || !it.changes) {
                dm_tls_item_done(&it);
                return DM_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                const struct dm_tls_result *r = &scan->results[i];
                const struct dm_tls_endpoint *prev = match(r, rows, nrows);
                struct dm_tls_endpoint *e = &it.endpoints[it.nendpoints++];
                e->port = r->port;
                memcpy(e->address, r->address, sizeof(e->address));
                e->status = r->status;
                e->checked_at = scan->observed_at;
                if (r->status == DM_TLS_OK && r->has_cert) {
                        memcpy(e->protocol, r->protocol, sizeof(e->protocol));
                        e->chain_valid = r->chain_valid;
                        memcpy(e->chain_error, r->chain_error, sizeof(e->chain_error));
                        memcpy(e->sha256, r->cert.sha256, sizeof(e->sha256));
                        e->not_after = r->cert.not_after;
                        e->cert = dm_json_dump(r->cert.json, NULL);
                        if (!e->cert) {
                                oom = true;
                                break;
                        }
                        bool changed = !prev || !prev->cert || !prev->sha256[0] ||
                                       strcmp(prev->sha256, e->sha256) != 0 ||
                                       prev->chain_valid != e->chain_valid;
                        e->changed_at = changed ? scan->observed_at : prev->changed_at;
                        if (!changed)
                                continue;
                        struct dm_tls_change *c = &it.changes[it.nchanges++];
                        c->domain_id = scan->domain_id;
                        snprintf(c->domain, sizeof(c->domain), "%s", scan->name);
                        c->port = e->port;
                        memcpy(c->address, e->address, sizeof(c->address));
                        c->chain_valid = e->chain_valid;
                        c->observed_at = scan->observed_at;
                        c->before = prev ? dup_or_null(prev->cert, &oom) : NULL;
                        c->after = dup_or_null(e->cert, &oom);
                } else {
                        /* A failure is never a change: the last certificate seen stays. */
                        e->status = DM_TLS_ERROR;
                        memcpy(e->error, r->error, sizeof(e->error));
                        if (!e->error[0])
                                snprintf(e->error, sizeof(e->error), "no certificate read");
                        if (prev) {
                                memcpy(e->protocol, prev->protocol, sizeof(e->protocol));
                                e->chain_valid = prev->chain_valid;
                                memcpy(e->chain_error, prev->chain_error, sizeof(e->chain_error));
                                memcpy(e->sha256, prev->sha256, sizeof(e->sha256));
                                e->not_after = prev->not_after;
                                e->cert = dup_or_null(prev->cert, &oom);
                                e->changed_at = prev->changed_at;
                        }
                }
                if (oom)
                        break;
        }
        if (oom) {
                dm_tls_item_done(&it);
                return DM_ENOMEM;
        }
        for (size_t i = 0; i < it.nendpoints; i++) {
                const struct dm_tls_endpoint *e = &it.endpoints[i];
                if (e->cert && e->not_after && (!it.expires_at || e->not_after < it.expires_at))
                        it.expires_at = e->not_after;
        }
        *ret_item = it;
        return 0;
}

void dm_tls_item_done(struct dm_tls_commit *item)
{
        if (!item)
                return;
        dm_tls_endpoints_free(item->endpoints, item->nendpoints);
        dm_tls_changes_free(item->changes, item->nchanges);
        memset(item, 0, sizeof(*item));
}
