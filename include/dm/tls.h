/* The TLS check: what a server's certificate is (the summariser), how one endpoint is
 * probed without ever blocking (the probe), and what a round of probes means for the stored
 * state (the change rules). docs/checks.md tells the rules; docs/internals/dns-service.md
 * how the scanner drives the probes.
 *
 * Thread-safety: no shared state. A probe belongs to the thread that steps it; a context
 * (dm_tls_ctx_new) may be shared by any number of threads. */
#ifndef DM_TLS_H
#define DM_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dm/store.h"

struct x509_st;
struct ssl_ctx_st;

#define DM_TLS_SANS_MAX 100  /* subject alternative names summarised, more are cut */
#define DM_TLS_TEXT_MAX 1024 /* bytes of a subject or issuer kept, more are cut */
#define DM_TLS_CERT_INPUT_MAX (64 * 1024)

/* One certificate, summarised. `json` is the certificate object of the API without
 * days_left: {"subject", "sans", "issuer", "serial", "sha256", "key_type", "key_bits",
 * "signature_algorithm", "not_before", "not_after"} (owned). Every string in it is valid
 * UTF-8 without control characters, whatever the certificate held. */
struct dm_tls_cert {
        char sha256[2 * 32 + 1]; /* lower-case hex of the SHA-256 of the DER */
        int64_t not_before;      /* unix ms */
        int64_t not_after;
        json_t *json;
};

/* Summarises a certificate. Returns 0, DM_ENOMEM, or DM_EPARSE when a field cannot be read
 * (a validity time that is not a time). *ret_cert is written only on success. */
int dm_tls_cert_summarize(struct x509_st *x, struct dm_tls_cert *ret_cert);
/* Reads one certificate, DER or PEM, of at most DM_TLS_CERT_INPUT_MAX bytes, and summarises
 * it. DM_EPARSE when it is neither. */
int dm_tls_cert_parse(const void *data, size_t len, struct dm_tls_cert *ret_cert);
void dm_tls_cert_done(struct dm_tls_cert *c);
/* Whole days from now to not_after, rounded down (negative once expired). */
int64_t dm_tls_days_left(int64_t not_after, int64_t now);

/* A client context for probes: chains are verified against `ca_file` (PEM) or, when NULL,
 * the system's trust store. Returns NULL with a reason in `err`. Free with dm_tls_ctx_free. */
struct ssl_ctx_st *dm_tls_ctx_new(const char *ca_file, char *err, size_t errlen);
void dm_tls_ctx_free(struct ssl_ctx_st *ctx);

/* What one probe of one endpoint saw. */
struct dm_tls_result {
        uint16_t port;
        char address[DM_TLS_ADDRESS_MAX]; /* numeric, "" when the name has none */
        enum dm_tls_status status;
        char error[DM_TLS_ERROR_MAX];       /* status error: why */
        char protocol[DM_TLS_PROTOCOL_MAX]; /* "TLSv1.3" */
        bool chain_valid;
        char chain_error[DM_TLS_ERROR_MAX]; /* "" when valid */
        bool has_cert;
        struct dm_tls_cert cert; /* has_cert: the leaf (owned) */
};

void dm_tls_result_done(struct dm_tls_result *r);

/* A non-blocking probe: TCP connect, TLS handshake with SNI, chain verified for `name`.
 * The caller polls dm_tls_probe_fd for dm_tls_probe_events and calls dm_tls_probe_step
 * when it is ready or the deadline is near; the step returns DM_EAGAIN until the probe is
 * over, then 0 and the result is final. Past `deadline` (dm_mono_ms) the probe ends with
 * an error, so a silent port costs at most the deadline. */
struct dm_tls_probe;
int dm_tls_probe_start(struct ssl_ctx_st *ctx, const char *name, const char *address, uint16_t port,
                       int64_t deadline, struct dm_tls_probe **ret_probe);
int dm_tls_probe_fd(const struct dm_tls_probe *p);
short dm_tls_probe_events(const struct dm_tls_probe *p);
int64_t dm_tls_probe_deadline(const struct dm_tls_probe *p);
int dm_tls_probe_step(struct dm_tls_probe *p, int64_t now);
/* The result, moved out (the probe keeps nothing of it). Only after a step returned 0. */
void dm_tls_probe_take(struct dm_tls_probe *p, struct dm_tls_result *ret_result);
/* Closes the connection and frees. NULL-safe. */
void dm_tls_probe_free(struct dm_tls_probe *p);

/* ---- change rules ---- */

/* The endpoints of a round: on each port, the first IPv4 and the first IPv6 address the
 * name's A and AAAA lookups found (v4[0], v6[0]: canonical order, so the same address
 * while the set stays the same); a name with neither gets one endpoint per port without an
 * address, an error "no A or AAAA record". A failed lookup of either family (v4_failed,
 * v6_failed) means the addresses are unknown: DM_EAGAIN, and the round is not made (its
 * stored state stays, as a failed DNS lookup is never a removal). ret_results is
 * caller-allocated (DM_TLS_ENDPOINTS_MAX) and zeroed here; nports 0 means
 * DM_TLS_PORT_DEFAULT. */
int dm_tls_plan(const char *v4, bool v4_failed, const char *v6, bool v6_failed,
                const uint16_t *ports, size_t nports, struct dm_tls_result *ret_results,
                size_t *ret_n);

/* The fingerprint of a round of results, in any order: per endpoint its port, address,
 * status, error, protocol, chain validity and reason and the leaf's fingerprint. Equal
 * fingerprints mean nothing to write but the check time. */
void dm_tls_fingerprint(const struct dm_tls_result *results, size_t n, uint8_t ret_fp[DM_FP_LEN]);

/* One finished round of one domain. Nothing is owned. */
struct dm_tls_scan {
        int64_t domain_id;
        const char *name;
        int64_t observed_at;
        uint8_t task_fp[DM_FP_LEN];
        uint8_t fp[DM_FP_LEN]; /* dm_tls_fingerprint of results */
        const struct dm_tls_result *results;
        size_t nresults;
};

/* Whether dm_tls_build needs the stored endpoints: when the fingerprint moved. */
bool dm_tls_needs_rows(const struct dm_tls_scan *scan);

/* Fills *ret_item for dm_store_tls_commit from the round and the stored endpoints (any
 * order). The rules:
 *   - an endpoint is matched with the stored one of the same port and address, else of the
 *     same port and address family (a name that moved to another address is the same
 *     endpoint), else, for a failed probe, any stored one of the same port with a
 *     certificate;
 *   - a failed probe (refused, silent, failed handshake, no address) is an error with its
 *     reason that keeps the matched endpoint's certificate, protocol and chain validity,
 *     and writes no history;
 *   - a probe that read a certificate writes a history entry when the leaf's fingerprint
 *     or the chain's validity differs from the matched endpoint's, or when there was no
 *     certificate before (before: NULL);
 *   - expires_at is the earliest not_after over the endpoints that hold a certificate.
 * The item owns what it points to: release with dm_tls_item_done. Returns 0 or DM_ENOMEM
 * (the item is then empty). */
int dm_tls_build(const struct dm_tls_scan *scan, const struct dm_tls_endpoint *rows, size_t nrows,
                 struct dm_tls_commit *ret_item);
void dm_tls_item_done(struct dm_tls_commit *item);

/* ---- the API's objects ---- */

/* The certificate object of a stored one (JSON text, as dm_tls_cert made it) with
 * days_left as of `at`. NULL when `stored` is NULL or unreadable, or on ENOMEM. */
json_t *dm_tls_cert_object(const char *stored, int64_t at);
/* An endpoint of GET /api/v1/domains/{name}/tls: {"port", "address", "status", "error",
 * "protocol", "chain_valid", "chain_error", "certificate"} with days_left as of `now`.
 * NULL on ENOMEM. */
json_t *dm_tls_endpoint_json(const struct dm_tls_endpoint *e, int64_t now);
/* A history entry: {"id", "port", "address", "chain_valid", "observed_at", "before",
 * "after"} (and "domain" first with `with_domain`: the change.tls event), certificates with
 * days_left as of the change. NULL on ENOMEM. */
json_t *dm_tls_change_json(const struct dm_tls_change *ch, bool with_domain);

#endif
