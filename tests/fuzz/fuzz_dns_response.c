/* Fuzz target: a DNS response as the resolver would receive it for the query
 * "example.com <type>" (its id and type taken from the input). Exercises the message
 * parser (whole, and header and question only, as for a datagram cut short), owner and
 * RDATA presentation of every record in every section, answer extraction with CNAME chains
 * and the rules for empty replies (with and without the authoritative-only option), and
 * the JSON form of the resulting set. It must never crash, read out of bounds or leak; the
 * invariants checked below abort when broken. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dm/buf.h"
#include "dm/dnswire.h"
#include "dm/error.h"
#include "dm/rdata.h"
#include "dm/rrset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_records(const struct dm_dns_msg *m)
{
        struct dm_buf b;
        struct dm_dns_rr rr;
        size_t pos = m->an_off;
        size_t total = (size_t)m->ancount + m->nscount + m->arcount;

        dm_buf_init(&b, DM_RDATA_TEXT_MAX);
        for (size_t i = 0; i < total; i++) {
                /* The parser walked every record already: reading them again cannot fail. */
                if (dm_dns_rr_read(m, &pos, &rr))
                        abort();
                dm_buf_clear(&b);
                if (dm_dns_name_format(rr.owner, rr.owner_len, &b))
                        abort();
                size_t before = b.len;
                int ret = dm_rdata_format(rr.type, m->pkt, m->len, rr.rdata_off, rr.rdlen, &b);
                if (ret != 0 && b.len != before)
                        abort(); /* a failed format leaves the buffer as it was */
                /* Presentation is printable ASCII. */
                for (size_t k = 0; k < b.len; k++)
                        if ((unsigned char)b.data[k] < 0x20 || (unsigned char)b.data[k] > 0x7e)
                                abort();
        }
        dm_buf_done(&b);
}

static void fuzz_answer(const struct dm_dns_msg *m)
{
        uint8_t qname[DM_DNS_NAME_MAX];
        size_t qlen;
        struct dm_dns_answer a;

        if (dm_dns_name_from_text("example.com", qname, &qlen))
                abort();
        if (dm_dns_msg_check_reply(m, m->id, qname, qlen, m->qtype))
                return;
        if (dm_dns_msg_answer(m, m->qtype, 0, &a))
                return; /* out of memory */
        /* The option only turns an unproven authoritative empty reply into NODATA. */
        struct dm_dns_answer b;
        if (dm_dns_msg_answer(m, m->qtype, DM_DNS_ANSWER_AUTH_ONLY, &b) == 0) {
                bool same = a.status == b.status && a.err == b.err && a.nvalues == b.nvalues;
                bool relaxed = a.status == DM_RRS_ERROR && a.err == DM_ELAME &&
                               b.status == DM_RRS_NODATA && (m->flags & DM_DNS_FLAG_AA);
                if (!same && !relaxed)
                        abort();
                if (a.authoritative != b.authoritative ||
                    a.authoritative != ((m->flags & DM_DNS_FLAG_AA) != 0))
                        abort();
                dm_dns_answer_done(&b);
        }
        for (size_t i = 1; i < a.nvalues; i++)
                if (strcmp(a.values[i - 1], a.values[i]) >= 0)
                        abort(); /* not canonical */
        if (a.status != DM_RRS_OK && a.nvalues != 0)
                abort();
        char *json = NULL;
        if (dm_rrset_values_to_json(a.values, a.nvalues, &json) == 0) {
                char **back = NULL;
                size_t n = 0;
                if (dm_rrset_values_from_json(json, &back, &n))
                        abort();
                if (n != a.nvalues)
                        abort();
                for (size_t i = 0; i < n; i++)
                        if (strcmp(back[i], a.values[i]) != 0)
                                abort();
                dm_rrset_values_free(back, n);
                free(json);
        }
        dm_dns_answer_done(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct dm_dns_msg m;

        struct dm_dns_msg h;
        int head = dm_dns_msg_parse_header(data, size, &h);
        if (dm_dns_msg_parse(data, size, &m))
                return 0;
        /* What parses whole has a header and question that parse alone, the same. */
        if (head || h.id != m.id || h.flags != m.flags || h.qname_len != m.qname_len ||
            memcmp(h.qname, m.qname, m.qname_len) != 0 || h.qtype != m.qtype || h.ancount != 0)
                abort();
        fuzz_records(&m);
        fuzz_answer(&m);
        return 0;
}
