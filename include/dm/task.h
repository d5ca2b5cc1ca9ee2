/* Scan task messages: what the scheduler publishes on "task.dns" and scanners consume.
 * A message may come from a broker that other programs can publish to, so decoding trusts
 * nothing: it checks every field and takes the whole message or none of it.
 *
 * Format: {"tasks":[{"id":1,"name":"example.com","types":["A","MX"],"fp":"<32 hex>",
 *            "checks":["dns","tls"],"tls_ports":[443]}]}
 * (`types` empty: the default set; `fp` all zeros: no state stored yet; `checks` absent or
 * empty: the configured default; `tls_ports` absent or empty: 443). */
#ifndef DM_TASK_H
#define DM_TASK_H

#include <stddef.h>

#include <stdint.h>

#include "dm/buf.h"
#include "dm/check.h"
#include "dm/name.h"
#include "dm/rrset.h"
#include "dm/rrtype.h"

/* What the scheduler hands a scanner: one due domain and its last known state. */
struct dm_scan_task {
        int64_t domain_id;
        char name[DM_NAME_MAX + 1];
        uint16_t record_types[DM_RRTYPE_MAX_PER_DOMAIN];
        size_t nrecord_types; /* 0: the default set */
        uint8_t dns_fp[DM_FP_LEN];
        unsigned checks; /* DM_CHECKS_* bits; 0: the configured default */
        uint16_t tls_ports[DM_TLS_PORTS_MAX];
        size_t ntls_ports; /* 0: DM_TLS_PORT_DEFAULT */
};

#define DM_TASKS_PER_MSG_MAX 1024  /* most tasks accepted in one message */
#define DM_TASK_MSG_MAX (1u << 20) /* most bytes accepted in one message */

/* Replaces b's contents with the message for t[0..n). Returns 0, DM_E2BIG (b's cap) or
 * DM_ENOMEM. */
int dm_scan_tasks_encode(const struct dm_scan_task *t, size_t n, struct dm_buf *b);

/* Decodes and validates a message: 1..DM_TASKS_PER_MSG_MAX tasks, each with a positive id,
 * a name in the stored form (dm_name_is_stored_form), known record types, and a 32-digit
 * fingerprint. On success *ret_tasks is a malloc'd array (free() it) of *ret_n tasks.
 * Otherwise returns DM_EINVAL, DM_EPARSE or DM_E2BIG with a one-line reason in `why`, and
 * nothing is returned. */
int dm_scan_tasks_decode(const void *body, size_t len, char *why, size_t whylen,
                         struct dm_scan_task **ret_tasks, size_t *ret_n);

#endif
