/* Hand-built DNS packets for the DNS unit tests: bytes written exactly as a test wants
 * them, including the wrong ones. */
#ifndef DM_TEST_DNSPKT_H
#define DM_TEST_DNSPKT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PK_MAX 16384

struct pk {
        uint8_t b[PK_MAX];
        size_t n;
};

static inline void pk_init(struct pk *p)
{
        p->n = 0;
}

static inline void pk_u8(struct pk *p, uint8_t v)
{
        if (p->n < PK_MAX)
                p->b[p->n++] = v;
}

static inline void pk_u16(struct pk *p, uint16_t v)
{
        pk_u8(p, (uint8_t)(v >> 8));
        pk_u8(p, (uint8_t)v);
}

static inline void pk_u32(struct pk *p, uint32_t v)
{
        pk_u16(p, (uint16_t)(v >> 16));
        pk_u16(p, (uint16_t)v);
}

static inline void pk_bytes(struct pk *p, const void *data, size_t n)
{
        for (size_t i = 0; i < n; i++)
                pk_u8(p, ((const uint8_t *)data)[i]);
}

/* Labels of a dotted name, without the terminating root label. */
static inline void pk_labels(struct pk *p, const char *name)
{
        while (*name) {
                const char *dot = strchr(name, '.');
                size_t l = dot ? (size_t)(dot - name) : strlen(name);
                pk_u8(p, (uint8_t)l);
                pk_bytes(p, name, l);
                name += l;
                if (*name == '.')
                        name++;
        }
}

/* A whole uncompressed name ("" is the root). */
static inline void pk_name(struct pk *p, const char *name)
{
        pk_labels(p, name);
        pk_u8(p, 0);
}

static inline void pk_ptr(struct pk *p, uint16_t off)
{
        pk_u16(p, (uint16_t)(0xc000 | off));
}

static inline void pk_header(struct pk *p, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an,
                             uint16_t ns, uint16_t ar)
{
        pk_u16(p, id);
        pk_u16(p, flags);
        pk_u16(p, qd);
        pk_u16(p, an);
        pk_u16(p, ns);
        pk_u16(p, ar);
}

/* Type, class, TTL and a placeholder RDLENGTH after an owner the caller wrote; returns
 * where the RDLENGTH is, for pk_rr_end. */
static inline size_t pk_rr_begin(struct pk *p, uint16_t type, uint16_t rclass, uint32_t ttl)
{
        pk_u16(p, type);
        pk_u16(p, rclass);
        pk_u32(p, ttl);
        size_t at = p->n;
        pk_u16(p, 0);
        return at;
}

static inline void pk_rr_end(struct pk *p, size_t at)
{
        size_t len = p->n - at - 2;
        p->b[at] = (uint8_t)(len >> 8);
        p->b[at + 1] = (uint8_t)len;
}

#endif
