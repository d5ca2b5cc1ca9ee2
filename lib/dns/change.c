/* Change detection (docs/change-detection.md): a scan's outcome per record type, the
 * fingerprint of a domain's state, and the rows and history entries a moved state writes.
 * Pure functions over what they are given; the DNS service feeds them and persists what
 * they return. */
#include "dm/change.h"

#include "dm/dnswire.h"
#include "dm/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every answer the resolver lets through must fit a stored row: at most 2 bytes of JSON per
 * byte of text, the per-value overhead already counted in DM_DNS_ANSWER_TEXT_MAX, and the
 * brackets. */
_Static_assert(DM_RRSET_JSON_MAX >= 2ull * DM_DNS_ANSWER_TEXT_MAX + 2,
               "a set the resolver accepts must fit a stored row");

void dm_change_rr_done(struct dm_change_rr *rr)
{
        if (!rr)
                return;
        dm_rrset_values_free(rr->values, rr->nvalues);
        rr->values = NULL;
        rr->nvalues = 0;
        rr->server[0] = '\0';
}

void dm_change_rr_fail(struct dm_change_rr *rr, int err)
{
        dm_change_rr_done(rr);
        rr->status = DM_RRS_ERROR;
        rr->err = err < 0 ? err : DM_EDNS;
        rr->ttl = 0;
        rr->authoritative = false;
}

/* The bytes dm_rrset_values_to_json would write for these values, or 0 when a value holds a
 * byte outside ASCII presentation text (0x00..0x7e): such a value cannot be stored and read
 * back byte for byte, so the answer is broken. */
static size_t change_json_size(char *const *values, size_t n)
{
        size_t size = 2 + (n > 0 ? n - 1 : 0);
        for (size_t i = 0; i < n; i++) {
                size += 2;
                for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++) {
                        if (*p > 0x7e)
                                return 0;
                        if (*p == '"' || *p == '\\')
                                size += 2;
                        else if (*p < 0x20)
                                size += 6; /* \u00XX */
                        else
                                size += 1;
                }
        }
        return size;
}

void dm_change_rr_set(struct dm_change_rr *rr, const struct dm_dns_answer *a)
{
        char **v = NULL;
        size_t n = 0;

        dm_change_rr_done(rr);
        if (a->status == DM_RRS_ERROR) {
                dm_change_rr_fail(rr, a->err);
                return;
        }
        if (a->nvalues > 0) {
                v = calloc(a->nvalues, sizeof(*v));
                if (!v) {
                        dm_change_rr_fail(rr, DM_ENOMEM);
                        return;
                }
                for (; n < a->nvalues; n++) {
                        v[n] = strdup(a->values[n]);
                        if (!v[n]) {
                                dm_rrset_values_free(v, n);
                                dm_change_rr_fail(rr, DM_ENOMEM);
                                return;
                        }
                }
                size_t json = change_json_size(v, n);
                if (json == 0 || json > DM_RRSET_JSON_MAX) {
                        dm_rrset_values_free(v, n);
                        dm_change_rr_fail(rr, json == 0 ? DM_EPARSE : DM_E2BIG);
                        return;
                }
                /* The resolver's values are canonical already; order is never trusted. */
                dm_rrset_canonicalize(v, &n);
        }
        rr->status = a->status;
        rr->err = 0;
        rr->ttl = a->ttl;
        rr->authoritative = a->authoritative;
        rr->values = v;
        rr->nvalues = n;
}

int dm_change_fingerprint(const struct dm_change_rr *rrs, size_t n, uint8_t ret_fp[DM_FP_LEN])
{
        struct dm_fp fp;
        int r = dm_fp_init(&fp);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                const struct dm_change_rr *rr = &rrs[i];
                /* A resolver's TTL counts down from one query to the next: it would make
                 * every scan a write. The zone's own TTL (an authoritative answer) is state:
                 * when its owner changes it, the current row must show it. */
                int64_t ttl = rr->authoritative ? (int64_t)rr->ttl : DM_FP_NO_TTL;
                dm_fp_add(&fp, rr->type, rr->status, ttl, rr->values, rr->nvalues);
        }
        return dm_fp_final(&fp, ret_fp); /* reports any dm_fp_add error */
}

bool dm_change_needs_rows(const struct dm_change_scan *scan)
{
        if (memcmp(scan->task_fp, scan->fp, DM_FP_LEN) == 0)
                return false;
        if (!dm_store_fp_is_zero(scan->task_fp))
                return true;
        /* Nothing stored yet: there are no old values to keep, unless the task is stale and
         * a failed type must keep what another scan wrote meanwhile. */
        for (size_t i = 0; i < scan->nrr; i++) {
                if (scan->rr[i].status == DM_RRS_ERROR)
                        return true;
        }
        return false;
}

/* The same reason from the same server. */
static bool change_same_failure(const struct dm_change_rr *a, const struct dm_change_rr *b)
{
        return a->status == DM_RRS_ERROR && b->status == DM_RRS_ERROR && a->err == b->err &&
               strcmp(a->server, b->server) == 0;
}

/* "A, AAAA, MX: timed out from 192.0.2.1:53; TXT: DNS server failure (SERVFAIL) from
 * 192.0.2.2:53": the types that failed, grouped by reason and server in the order each
 * first appears, so that a server that does not answer reads as one reason rather than
 * eight, and says which server it is. NULL when no type failed (*ret_ok true) or
 * on ENOMEM (*ret_ok false). */
static char *change_status_error(const struct dm_change_scan *scan, bool *ret_ok)
{
        char buf[DM_CHANGE_STATUS_ERROR_MAX];
        size_t o = 0;
        bool failed = false;

        buf[0] = '\0';
        for (size_t i = 0; i < scan->nrr; i++) {
                const struct dm_change_rr *rr = &scan->rr[i];
                if (rr->status != DM_RRS_ERROR)
                        continue;
                failed = true;
                bool seen = false;
                for (size_t j = 0; j < i && !seen; j++)
                        seen = change_same_failure(&scan->rr[j], rr);
                if (seen)
                        continue;
                /* The types of one reason; a long list ends in "+N more" so that the
                 * reason itself always shows. */
                char types[96];
                size_t to = 0, more = 0;
                for (size_t j = i; j < scan->nrr; j++) {
                        const struct dm_change_rr *same = &scan->rr[j];
                        if (!change_same_failure(same, rr))
                                continue;
                        char tbuf[16];
                        const char *tname = dm_rrtype_name(same->type, tbuf);
                        if (more > 0 || to + strlen(tname) + 2 + 12 >= sizeof(types)) {
                                more++;
                                continue;
                        }
                        int w =
                            snprintf(types + to, sizeof(types) - to, "%s%s", to ? ", " : "", tname);
                        to += w < 0 ? 0 : (size_t)w;
                }
                if (more > 0)
                        snprintf(types + to, sizeof(types) - to, " +%zu more", more);
                int w0 = snprintf(buf + o, sizeof(buf) - o, "%s%s", o ? "; " : "", types);
                o = w0 < 0 ? o : o + (size_t)w0;
                if (o >= sizeof(buf))
                        o = sizeof(buf) - 1;
                int w = snprintf(buf + o, sizeof(buf) - o, ": %s%s%s", dm_strerror(rr->err),
                                 rr->server[0] ? " from " : "", rr->server);
                o = w < 0 ? o : o + (size_t)w;
                if (o >= sizeof(buf))
                        o = sizeof(buf) - 1;
        }
        if (!failed) {
                *ret_ok = true;
                return NULL;
        }
        char *s = strdup(buf);
        *ret_ok = s != NULL;
        return s;
}

/* The i-th space-separated field of s: its start and length. False when s has fewer. */
static bool soa_field(const char *s, int i, const char **ret_p, size_t *ret_n)
{
        for (int k = 0;; k++) {
                while (*s == ' ')
                        s++;
                if (!*s)
                        return false;
                size_t n = strcspn(s, " ");
                if (k == i) {
                        *ret_p = s;
                        *ret_n = n;
                        return true;
                }
                s += n;
        }
}

bool dm_change_soa_serial_only(const char *before, const char *after)
{
        bool serial_differs = false;
        const char *a, *b;
        size_t na, nb;

        if (!before || !after)
                return false;
        for (int i = 0; i < 7; i++) {
                if (!soa_field(before, i, &a, &na) || !soa_field(after, i, &b, &nb))
                        return false;
                bool same = na == nb && memcmp(a, b, na) == 0;
                if (i == 2)
                        serial_differs = !same;
                else if (!same)
                        return false;
        }
        /* Exactly seven fields on both sides. */
        return serial_differs && !soa_field(before, 7, &a, &na) && !soa_field(after, 7, &b, &nb);
}

static bool change_values_equal(char *const *a, size_t na, char *const *b, size_t nb)
{
        if (na != nb)
                return false;
        for (size_t i = 0; i < na; i++) {
                if (strcmp(a[i], b[i]) != 0)
                        return false;
        }
        return true;
}

static const struct dm_rrset_row *change_find_row(const struct dm_rrset_row *rows, size_t n,
                                                  uint16_t type)
{
        for (size_t i = 0; i < n; i++) {
                if (rows[i].type == type)
                        return &rows[i];
        }
        return NULL;
}

/* The row of a failed lookup: what was stored stays, marked ERROR with the reason. */
static int change_error_row(const struct dm_change_scan *scan, const struct dm_change_rr *rr,
                            const struct dm_rrset_row *old, struct dm_rrset_row *row)
{
        row->status = DM_RRS_ERROR;
        row->ttl = old ? old->ttl : 0;
        row->values = strdup(old && old->values ? old->values : "[]");
        row->error = strdup(dm_strerror(rr->err));
        /* 0 while the type never answered: its first answer is then a first observation. */
        row->changed_at = old ? old->changed_at : 0;
        row->checked_at = scan->observed_at;
        return row->values && row->error ? 0 : DM_ENOMEM;
}

/* Row and, when the type's answer really changed, a history entry for one answered type.
 * `old` is the stored row, or NULL. *ret_changed tells whether `ch` was filled. */
static int change_answer_row(const struct dm_change_scan *scan, const struct dm_change_rr *rr,
                             const struct dm_rrset_row *old, struct dm_rrset_row *row,
                             struct dm_change *ch, bool *ret_changed)
{
        char **before = NULL;
        size_t nbefore = 0;
        struct dm_rrset_delta delta = {0};
        int r = dm_rrset_values_to_json(rr->values, rr->nvalues, &row->values);
        if (r < 0)
                return r;
        row->status = rr->status;
        row->ttl = rr->ttl;
        row->checked_at = scan->observed_at;
        *ret_changed = false;

        /* A row that never held a real answer (errors only so far) has no history to compare
         * with: its first real answer starts it, even an empty one. */
        bool first = !old || old->changed_at == 0 || !old->values;
        if (!first) {
                r = dm_rrset_values_from_json(old->values, &before, &nbefore);
                if (r == DM_EPARSE) {
                        first = true;
                        r = 0;
                } else if (r < 0) {
                        return r;
                } else {
                        dm_rrset_canonicalize(before, &nbefore);
                }
        }
        if (!first) {
                /* TTL is not compared. An ERROR row kept the set of its last answer and the
                 * store kept that answer's class: compare with both. */
                enum dm_rr_status was =
                    old->status == DM_RRS_ERROR ? old->answer_status : old->status;
                if (was == rr->status &&
                    change_values_equal(before, nbefore, rr->values, rr->nvalues)) {
                        row->changed_at = old->changed_at;
                        goto free_before;
                }
        }

        row->changed_at = scan->observed_at;
        ch->domain_id = scan->domain_id;
        snprintf(ch->domain, sizeof(ch->domain), "%s", scan->name ? scan->name : "");
        ch->type = rr->type;
        ch->status = rr->status;
        ch->observed_at = scan->observed_at;
        *ret_changed = true; /* from here on ch holds memory for the caller to free */
        ch->after = strdup(row->values);
        if (!ch->after) {
                r = DM_ENOMEM;
                goto free_before;
        }
        if (first) {
                ch->added = strdup(row->values);
                ch->removed = strdup("[]");
                if (!ch->added || !ch->removed)
                        r = DM_ENOMEM;
                goto free_before;
        }
        r = dm_rrset_diff(before, nbefore, rr->values, rr->nvalues, &delta);
        if (r == 0)
                r = dm_rrset_values_to_json(before, nbefore, &ch->before);
        if (r == 0)
                r = dm_rrset_values_to_json(delta.added, delta.nadded, &ch->added);
        if (r == 0)
                r = dm_rrset_values_to_json(delta.removed, delta.nremoved, &ch->removed);
        dm_rrset_delta_done(&delta);
        /* One SOA record before and after: only its serial may differ. */
        if (r == 0 && rr->type == DM_RR_SOA && nbefore == 1 && rr->nvalues == 1)
                ch->serial_only = dm_change_soa_serial_only(before[0], rr->values[0]);

free_before:
        dm_rrset_values_free(before, nbefore);
        return r;
}

int dm_change_build(const struct dm_change_scan *scan, const struct dm_rrset_row *rows,
                    size_t nrows, struct dm_dns_commit *ret_item)
{
        struct dm_dns_commit *it = ret_item;
        bool ok = false;
        int r = 0;

        memset(it, 0, sizeof(*it));
        it->domain_id = scan->domain_id;
        it->checked_at = scan->observed_at;
        memcpy(it->old_fp, scan->task_fp, DM_FP_LEN);
        memcpy(it->new_fp, scan->fp, DM_FP_LEN);
        it->status_error = change_status_error(scan, &ok);
        if (!ok)
                return DM_ENOMEM;
        it->status = it->status_error ? DM_CHECK_ERROR : DM_CHECK_OK;
        if (memcmp(scan->task_fp, scan->fp, DM_FP_LEN) == 0)
                return 0; /* the same state: only the check time and status move */

        size_t n = scan->nrr > 0 ? scan->nrr : 1;
        it->rows = calloc(n, sizeof(*it->rows));
        it->changes = calloc(n, sizeof(*it->changes));
        if (!it->rows || !it->changes) {
                r = DM_ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < scan->nrr; i++) {
                const struct dm_change_rr *rr = &scan->rr[i];
                const struct dm_rrset_row *old = change_find_row(rows, rows ? nrows : 0, rr->type);
                struct dm_rrset_row *row = &it->rows[it->nrows++];
                row->type = rr->type;
                if (rr->status == DM_RRS_ERROR) {
                        r = change_error_row(scan, rr, old, row);
                        if (r < 0)
                                goto fail;
                        continue;
                }
                bool changed = false;
                r = change_answer_row(scan, rr, old, row, &it->changes[it->nchanges], &changed);
                if (changed)
                        it->nchanges++;
                if (r < 0)
                        goto fail;
        }
        return 0;

fail:
        dm_change_item_done(it);
        return r;
}

void dm_change_item_done(struct dm_dns_commit *it)
{
        if (!it)
                return;
        for (size_t i = 0; i < it->nrows; i++) {
                free(it->rows[i].values);
                free(it->rows[i].error);
        }
        free(it->rows);
        for (size_t i = 0; i < it->nchanges; i++) {
                free(it->changes[i].before);
                free(it->changes[i].after);
                free(it->changes[i].added);
                free(it->changes[i].removed);
        }
        free(it->changes);
        free(it->status_error);
        memset(it, 0, sizeof(*it));
}

enum dm_change_move dm_change_status_move(const struct dm_change_scan *scan,
                                          const struct dm_rrset_row *rows, size_t nrows)
{
        bool now_error = false, was_error = false;

        if (memcmp(scan->task_fp, scan->fp, DM_FP_LEN) == 0)
                return DM_CHANGE_MOVE_NONE;
        for (size_t i = 0; i < scan->nrr; i++)
                now_error = now_error || scan->rr[i].status == DM_RRS_ERROR;
        for (size_t i = 0; rows && i < nrows; i++)
                was_error = was_error || rows[i].status == DM_RRS_ERROR;
        if (now_error && !was_error)
                return DM_CHANGE_MOVE_TO_ERROR;
        if (!now_error && was_error)
                return DM_CHANGE_MOVE_FROM_ERROR;
        return DM_CHANGE_MOVE_NONE;
}
