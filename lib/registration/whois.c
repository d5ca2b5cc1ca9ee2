/* WHOIS text (RFC 3912 gives no format): "Key: value" lines in the spellings registries
 * and registrars commonly use. Lines are read through a bounded cursor; unknown ones are
 * ignored. */
#include "dm/registration.h"

#include <string.h>
#include <strings.h>

#include "dm/buf.h"

enum whois_field {
        F_NONE,
        F_REGISTRAR,
        F_CREATED,
        F_UPDATED,
        F_EXPIRES,
        F_NS,
        F_STATUS,
        F_DNSSEC,
        F_REG_NAME,
        F_REG_ORG,
        F_REG_EMAIL,
        F_REG_COUNTRY,
        F_REFERRAL,
};

struct whois_key {
        const char *key; /* compared case-insensitively, after trimming */
        enum whois_field field;
};

static const struct whois_key whois_keys[] = {
    {"registrar", F_REGISTRAR},
    {"registrar name", F_REGISTRAR},
    {"sponsoring registrar", F_REGISTRAR},
    {"creation date", F_CREATED},
    {"created", F_CREATED},
    {"created on", F_CREATED},
    {"registered on", F_CREATED},
    {"registration date", F_CREATED},
    {"domain registration date", F_CREATED},
    {"registration time", F_CREATED},
    {"updated date", F_UPDATED},
    {"last updated", F_UPDATED},
    {"last modified", F_UPDATED},
    {"changed", F_UPDATED},
    {"modified", F_UPDATED},
    {"registry expiry date", F_EXPIRES},
    {"registrar registration expiration date", F_EXPIRES},
    {"expiration date", F_EXPIRES},
    {"expiry date", F_EXPIRES},
    {"expires", F_EXPIRES},
    {"expires on", F_EXPIRES},
    {"paid-till", F_EXPIRES},
    {"expiration time", F_EXPIRES},
    {"domain expiration date", F_EXPIRES},
    {"name server", F_NS},
    {"nameserver", F_NS},
    {"nameservers", F_NS},
    {"nserver", F_NS},
    {"domain status", F_STATUS},
    {"status", F_STATUS},
    {"state", F_STATUS},
    {"dnssec", F_DNSSEC},
    {"registrant name", F_REG_NAME},
    {"registrant", F_REG_NAME},
    {"registrant organization", F_REG_ORG},
    {"registrant organisation", F_REG_ORG},
    {"org", F_REG_ORG},
    {"registrant email", F_REG_EMAIL},
    {"registrant country", F_REG_COUNTRY},
    {"registrar whois server", F_REFERRAL},
    {"whois server", F_REFERRAL},
    {"refer", F_REFERRAL},
    {"whois", F_REFERRAL},
};

static enum whois_field lookup_key(const char *k, size_t len)
{
        for (size_t i = 0; i < sizeof(whois_keys) / sizeof(whois_keys[0]); i++) {
                if (strlen(whois_keys[i].key) == len && strncasecmp(whois_keys[i].key, k, len) == 0)
                        return whois_keys[i].field;
        }
        return F_NONE;
}

/* Phrases with which registries say a name is free. */
static bool says_not_found(const char *line, size_t len)
{
        static const char *const phrases[] = {
            "no match for", "not found",        "no data found",   "no entries found",
            "status: free", "domain not found", "no object found", NULL};
        char low[128];
        size_t n = len < sizeof(low) - 1 ? len : sizeof(low) - 1;
        for (size_t i = 0; i < n; i++)
                low[i] = (char)((line[i] >= 'A' && line[i] <= 'Z') ? line[i] + 32 : line[i]);
        low[n] = '\0';
        for (size_t i = 0; phrases[i]; i++)
                if (strstr(low, phrases[i]))
                        return true;
        return false;
}

static void set_text(char *dst, const char *v, size_t len, bool *has_data)
{
        char tmp[DM_REG_TEXT_MAX];
        if (dst[0])
                return; /* the first occurrence wins */
        dm_reg_text_clean(tmp, sizeof(tmp), v, len);
        if (!tmp[0] || strcasestr(tmp, "redacted") || strcasestr(tmp, "not disclosed") ||
            strcasestr(tmp, "withheld"))
                return;
        memcpy(dst, tmp, strlen(tmp) + 1);
        *has_data = true;
}

static void set_date(int64_t *dst, const char *v, size_t len, bool *has_data)
{
        int64_t t;
        if (*dst)
                return;
        if (dm_reg_date_parse(v, len, &t) == 0) {
                *dst = t;
                *has_data = true;
        }
}

/* "whois.example.net", "whois://whois.example.net", "http://whois.example.net/" -> host. */
static void set_referral(char *dst, size_t size, const char *v, size_t len)
{
        char tmp[DM_NAME_MAX + 16];
        size_t n = dm_reg_text_clean(tmp, sizeof(tmp), v, len);
        const char *h = tmp;
        const char *sep = strstr(tmp, "://");

        if (dst[0] || n == 0)
                return;
        if (sep) {
                /* A web address is not a WHOIS server. */
                if (strncasecmp(tmp, "whois://", 8) != 0)
                        return;
                h = sep + 3;
        }
        size_t hl = strcspn(h, "/: ");
        if (hl == 0 || hl >= size)
                return;
        for (size_t i = 0; i < hl; i++) {
                char c = h[i];
                if (c >= 'A' && c <= 'Z')
                        c = (char)(c + 32);
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
                        return;
                dst[i] = c;
        }
        dst[hl] = '\0';
}

static void whois_line(const char *line, size_t len, struct dm_whois_result *res)
{
        struct dm_reg_record *r = &res->record;
        const char *colon = memchr(line, ':', len);
        size_t klen, vstart;

        if (says_not_found(line, len) && !res->has_data)
                res->not_found = true;
        if (!colon)
                return;
        klen = (size_t)(colon - line);
        while (klen > 0 && (line[0] == ' ' || line[0] == '\t'))
                line++, klen--, len--, colon = line + klen;
        while (klen > 0 &&
               (line[klen - 1] == ' ' || line[klen - 1] == '\t' || line[klen - 1] == '.'))
                klen--;
        vstart = (size_t)(colon - line) + 1;
        const char *v = line + vstart;
        size_t vlen = len - vstart;
        while (vlen > 0 && (v[0] == ' ' || v[0] == '\t'))
                v++, vlen--;
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t' || v[vlen - 1] == '\r'))
                vlen--;
        if (vlen == 0)
                return;

        switch (lookup_key(line, klen)) {
        case F_REGISTRAR:
                set_text(r->registrar, v, vlen, &res->has_data);
                break;
        case F_CREATED:
                set_date(&r->created_at, v, vlen, &res->has_data);
                break;
        case F_UPDATED:
                set_date(&r->updated_at, v, vlen, &res->has_data);
                break;
        case F_EXPIRES:
                set_date(&r->expires_at, v, vlen, &res->has_data);
                break;
        case F_NS: {
                size_t before = r->nns;
                dm_reg_add_name_server(r, v, vlen);
                if (r->nns > before)
                        res->has_data = true;
                break;
        }
        case F_STATUS: {
                size_t before = r->nstatuses;
                dm_reg_add_status(r, v, vlen);
                if (r->nstatuses > before)
                        res->has_data = true;
                break;
        }
        case F_DNSSEC:
                if (r->dnssec < 0) {
                        bool signed_ = (vlen >= 6 && strncasecmp(v, "signed", 6) == 0) ||
                                       (vlen >= 3 && strncasecmp(v, "yes", 3) == 0) ||
                                       (vlen >= 4 && strncasecmp(v, "true", 4) == 0) ||
                                       (vlen >= 6 && strncasecmp(v, "signedDelegation", 6) == 0);
                        bool unsigned_ = (vlen >= 8 && strncasecmp(v, "unsigned", 8) == 0) ||
                                         (vlen == 2 && strncasecmp(v, "no", 2) == 0) ||
                                         (vlen == 5 && strncasecmp(v, "false", 5) == 0) ||
                                         (vlen >= 8 && strncasecmp(v, "inactive", 8) == 0);
                        if (signed_ || unsigned_) {
                                r->dnssec = signed_ ? 1 : 0;
                                res->has_data = true;
                        }
                }
                break;
        case F_REG_NAME:
                set_text(r->registrant.name, v, vlen, &res->has_data);
                break;
        case F_REG_ORG:
                set_text(r->registrant.organization, v, vlen, &res->has_data);
                break;
        case F_REG_EMAIL:
                set_text(r->registrant.email, v, vlen, &res->has_data);
                break;
        case F_REG_COUNTRY:
                set_text(r->registrant.country, v, vlen, &res->has_data);
                break;
        case F_REFERRAL:
                set_referral(res->referral, sizeof(res->referral), v, vlen);
                break;
        default:
                break;
        }
}

void dm_whois_parse(const char *text, size_t len, struct dm_whois_result *ret)
{
        struct dm_cursor c;
        const uint8_t *line;

        memset(ret, 0, sizeof(*ret));
        dm_reg_record_init(&ret->record);
        dm_cursor_init(&c, text, len);
        while (dm_cursor_left(&c) > 0) {
                size_t left = dm_cursor_left(&c);
                const uint8_t *start = c.data + c.pos;
                const uint8_t *nl = memchr(start, '\n', left);
                size_t n = nl ? (size_t)(nl - start) : left;

                if (dm_cursor_bytes(&c, n, &line) != 0)
                        break;
                if (nl)
                        dm_cursor_skip(&c, 1);
                /* ">>> Last update of WHOIS database: ..." ends the data; legal text follows. */
                if (n >= 3 && memcmp(line, ">>>", 3) == 0)
                        break;
                if (n > 0 && (line[0] == '%' || line[0] == '#'))
                        continue;
                whois_line((const char *)line, n, ret);
        }
        if (ret->has_data)
                ret->not_found = false;
        dm_reg_record_normalize(&ret->record);
}
