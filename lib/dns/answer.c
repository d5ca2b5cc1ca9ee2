/* From a reply to what the monitor records: a status and a canonical value list. Kept
 * apart from the resolver's sockets so the fuzz target and the tests reach it directly. */
#include "dm/dnswire.h"

#include "dm/error.h"
#include "dm/rdata.h"
#include "dm/rrset.h"
#include "dm/rrtype.h"

#include <stdlib.h>
#include <string.h>

static int answer_rcode_error(uint16_t rcode)
{
        switch (rcode) {
        case DM_DNS_RCODE_SERVFAIL:
                return DM_ESERVFAIL;
        case DM_DNS_RCODE_REFUSED:
                return DM_EREFUSED;
        case DM_DNS_RCODE_FORMERR:
                return DM_EFORMERR;
        case DM_DNS_RCODE_NOTIMP:
                return DM_ENOTSUP;
        default:
                return DM_EDNS;
        }
}

/* Counts the answer records of `type` owned by `owner`; with `cname` non-NULL also
 * reports the target of a CNAME owned by `owner` (the last one, should there be several). */
static int answer_scan(const struct dm_dns_msg *m, const uint8_t *owner, size_t owner_len,
                       uint16_t type, size_t *ret_count, uint8_t *cname, size_t *cname_len)
{
        struct dm_dns_rr rr;
        size_t pos = m->an_off;
        size_t count = 0;

        for (uint16_t i = 0; i < m->ancount; i++) {
                if (dm_dns_rr_read(m, &pos, &rr))
                        return DM_EPARSE;
                if (rr.rclass != DM_DNS_CLASS_IN ||
                    !dm_dns_name_equal(rr.owner, rr.owner_len, owner, owner_len))
                        continue;
                if (rr.type == type) {
                        count++;
                } else if (cname && rr.type == DM_RR_CNAME) {
                        struct dm_cursor c;
                        dm_cursor_init(&c, m->pkt, rr.rdata_off + rr.rdlen);
                        c.pos = rr.rdata_off;
                        if (dm_dns_name_unpack(&c, true, cname, cname_len) ||
                            dm_cursor_left(&c) != 0)
                                return DM_EPARSE;
                }
        }
        *ret_count = count;
        return 0;
}

/* Formats the `count` records of `type` owned by `owner` into ans. */
static int answer_collect(const struct dm_dns_msg *m, const uint8_t *owner, size_t owner_len,
                          uint16_t type, size_t count, struct dm_dns_answer *ans)
{
        struct dm_dns_rr rr;
        size_t pos = m->an_off;

        ans->values = calloc(count, sizeof(*ans->values));
        if (!ans->values)
                return DM_ENOMEM;
        ans->ttl = UINT32_MAX;
        for (uint16_t i = 0; i < m->ancount && ans->nvalues < count; i++) {
                if (dm_dns_rr_read(m, &pos, &rr))
                        return DM_EPARSE;
                if (rr.type != type || rr.rclass != DM_DNS_CLASS_IN ||
                    !dm_dns_name_equal(rr.owner, rr.owner_len, owner, owner_len))
                        continue;
                int ret = dm_rdata_to_text(type, m->pkt, m->len, rr.rdata_off, rr.rdlen,
                                           &ans->values[ans->nvalues]);
                if (ret)
                        return ret;
                ans->nvalues++;
                if (rr.ttl < ans->ttl)
                        ans->ttl = rr.ttl;
        }
        dm_rrset_canonicalize(ans->values, &ans->nvalues);
        size_t text = 0;
        for (size_t i = 0; i < ans->nvalues; i++)
                text += strlen(ans->values[i]) + 3;
        return text > DM_DNS_ANSWER_TEXT_MAX ? DM_E2BIG : 0;
}

/* Looks in the authority section for an SOA and for NS records owned by `name` or one of
 * its ancestors: the zone's proof of an empty answer, or the servers a referral points to.
 * Records of other owners prove nothing about this name. */
static int answer_authority(const struct dm_dns_msg *m, const uint8_t *name, size_t name_len,
                            bool *ret_soa, bool *ret_ns)
{
        struct dm_dns_rr rr;
        size_t pos = m->ns_off;
        bool soa = false, ns = false;

        for (uint16_t i = 0; i < m->nscount; i++) {
                if (dm_dns_rr_read(m, &pos, &rr))
                        return DM_EPARSE;
                if (rr.rclass != DM_DNS_CLASS_IN || (rr.type != DM_RR_SOA && rr.type != DM_RR_NS))
                        continue;
                if (!dm_dns_name_is_subdomain(name, name_len, rr.owner, rr.owner_len))
                        continue;
                if (rr.type == DM_RR_SOA)
                        soa = true;
                else
                        ns = true;
        }
        *ret_soa = soa;
        *ret_ns = ns;
        return 0;
}

/* NOERROR and nothing of the type: an answer only when the reply says so. A referral (a
 * server that is not authoritative pointing further down) and a lame reply (a server that
 * is neither authoritative nor recursive for the name) look the same on the wire as an
 * empty set; taking them for one would record every value as removed. */
static int answer_empty(const struct dm_dns_msg *m, bool chained, unsigned flags,
                        struct dm_dns_answer *ans)
{
        bool aa = (m->flags & DM_DNS_FLAG_AA) != 0;
        bool ra = (m->flags & DM_DNS_FLAG_RA) != 0;
        bool soa = false, ns = false;

        if (!chained) {
                int ret = answer_authority(m, m->qname, m->qname_len, &soa, &ns);
                if (ret)
                        return ret;
        }
        /* A CNAME chain in the answer is itself the server speaking for the name. */
        if ((aa || ra) && (chained || soa)) {
                ans->status = DM_RRS_NODATA;
        } else if (aa && (flags & DM_DNS_ANSWER_AUTH_ONLY)) {
                ans->status = DM_RRS_NODATA;
        } else {
                ans->status = DM_RRS_ERROR;
                ans->err = !aa && ns ? DM_EREFERRAL : DM_ELAME;
        }
        return 0;
}

int dm_dns_msg_answer(const struct dm_dns_msg *m, uint16_t qtype, unsigned flags,
                      struct dm_dns_answer *ret_answer)
{
        struct dm_dns_answer ans = {0};
        uint8_t owner[DM_DNS_NAME_MAX];
        size_t owner_len = m->qname_len;
        bool aa = (m->flags & DM_DNS_FLAG_AA) != 0;
        int ret;

        ans.authoritative = aa;
        if (m->rcode == DM_DNS_RCODE_NXDOMAIN) {
                /* The rcode states the absence outright; it needs a server entitled to. */
                if (aa || (m->flags & DM_DNS_FLAG_RA)) {
                        ans.status = DM_RRS_NXDOMAIN;
                } else {
                        ans.status = DM_RRS_ERROR;
                        ans.err = DM_ELAME;
                }
                goto done;
        }
        if (m->rcode != DM_DNS_RCODE_NOERROR) {
                ans.status = DM_RRS_ERROR;
                ans.err = answer_rcode_error(m->rcode);
                goto done;
        }
        if (owner_len == 0) {
                ans.status = DM_RRS_ERROR;
                ans.err = DM_EFORMERR;
                goto done;
        }
        memcpy(owner, m->qname, owner_len);

        bool chained = false;
        for (int step = 0; step <= DM_DNS_CNAME_MAX; step++) {
                uint8_t target[DM_DNS_NAME_MAX];
                size_t target_len = 0;
                size_t count;
                bool follow = qtype != DM_RR_CNAME && step < DM_DNS_CNAME_MAX;
                ret = answer_scan(m, owner, owner_len, qtype, &count, follow ? target : NULL,
                                  &target_len);
                if (ret)
                        goto fail;
                if (count > 0) {
                        ret = answer_collect(m, owner, owner_len, qtype, count, &ans);
                        if (ret)
                                goto fail;
                        ans.status = DM_RRS_OK;
                        goto done;
                }
                if (target_len == 0)
                        break;
                chained = true;
                memcpy(owner, target, target_len);
                owner_len = target_len;
        }
        ret = answer_empty(m, chained, flags, &ans);
        if (ret)
                goto fail;

done:
        *ret_answer = ans;
        return 0;

fail:
        dm_dns_answer_done(&ans);
        if (ret == DM_ENOMEM)
                return ret;
        ans.authoritative = aa;
        ans.status = DM_RRS_ERROR;
        ans.err = ret == DM_E2BIG ? DM_E2BIG : DM_EPARSE;
        *ret_answer = ans;
        return 0;
}

void dm_dns_answer_done(struct dm_dns_answer *a)
{
        if (!a)
                return;
        for (size_t i = 0; i < a->nvalues; i++)
                free(a->values[i]);
        free(a->values);
        memset(a, 0, sizeof(*a));
}
