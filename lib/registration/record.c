/* The registration record: cleaning server text, EPP status spelling, dates, the JSON form
 * the API and the store share, and the change rule. */
#include "dm/registration.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dm/error.h"
#include "dm/time.h"

void dm_reg_record_init(struct dm_reg_record *r)
{
        memset(r, 0, sizeof(*r));
        r->dnssec = -1;
}

bool dm_reg_registrant_is_empty(const struct dm_reg_registrant *p)
{
        return !p->name[0] && !p->organization[0] && !p->email[0] && !p->country[0];
}

bool dm_reg_record_is_empty(const struct dm_reg_record *r)
{
        return !r->registrar[0] && !r->created_at && !r->updated_at && !r->expires_at &&
               r->nns == 0 && r->nstatuses == 0 && r->dnssec < 0 &&
               dm_reg_registrant_is_empty(&r->registrant);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes there are not one
 * (overlong forms, surrogates and values past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s, size_t left, uint32_t *ret_cp)
{
        unsigned char c = s[0];
        size_t n;
        uint32_t cp, min;

        if (c < 0x80) {
                *ret_cp = c;
                return 1;
        }
        if ((c & 0xe0) == 0xc0) {
                n = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
                n = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
                n = 4, cp = c & 0x07, min = 0x10000;
        } else {
                return 0;
        }
        if (left < n)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        *ret_cp = cp;
        return n;
}

size_t dm_reg_text_clean(char *buf, size_t size, const char *s, size_t len)
{
        static const char replacement[] = "\xef\xbf\xbd";
        const unsigned char *p = (const unsigned char *)s;
        size_t out = 0, i = 0;
        bool space = false;

        if (size == 0)
                return 0;
        while (i < len) {
                uint32_t cp;
                size_t n = utf8_seq(p + i, len - i, &cp);
                const char *src = (const char *)p + i;
                size_t srclen = n;

                if (n == 0) {
                        src = replacement, srclen = 3, n = 1;
                } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
                        space = out > 0;
                        i += n;
                        continue;
                } else if (cp == ' ') {
                        space = out > 0;
                        i += n;
                        continue;
                }
                size_t need = srclen + (space ? 1 : 0);
                if (out + need >= size)
                        break;
                if (space)
                        buf[out++] = ' ';
                space = false;
                memcpy(buf + out, src, srclen);
                out += srclen;
                i += n;
        }
        buf[out] = '\0';
        return out;
}

static bool host_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

void dm_reg_add_name_server(struct dm_reg_record *r, const char *s, size_t len)
{
        char tmp[DM_NAME_MAX + 2];
        size_t n = 0;

        while (len > 0 && (s[0] == ' ' || s[0] == '\t'))
                s++, len--;
        /* "ns1.example.com 192.0.2.1": the name is the first word. */
        for (size_t i = 0; i < len; i++) {
                if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
                        len = i;
                        break;
                }
        }
        while (len > 0 && s[len - 1] == '.')
                len--;
        if (len == 0 || len > DM_NAME_MAX || r->nns >= DM_REG_MAX_NS)
                return;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (c >= 'A' && c <= 'Z')
                        c = (char)(c - 'A' + 'a');
                if (!host_char(c))
                        return;
                tmp[n++] = c;
        }
        tmp[n] = '\0';
        if (tmp[0] == '.' || strstr(tmp, ".."))
                return;
        memcpy(r->name_servers[r->nns++], tmp, n + 1);
}

const char *dm_reg_status_rdap(const char *code, size_t len, char *buf, size_t size)
{
        size_t out = 0;

        if (size == 0)
                return buf;
        /* A status that does not fit is no EPP status: dropped whole, never cut (a cut one
         * would read differently the next time). */
        for (size_t i = 0; i < len; i++) {
                char c = code[i];
                bool space_first = false;
                if (c >= 'A' && c <= 'Z') {
                        space_first = out > 0 && buf[out - 1] != ' ';
                        c = (char)(c - 'A' + 'a');
                } else if (c == '_' || c == '-') {
                        c = ' ';
                }
                if (c == ' ' && (out == 0 || buf[out - 1] == ' '))
                        continue;
                if (out + (space_first ? 2 : 1) + 1 > size) {
                        buf[0] = '\0';
                        return buf;
                }
                if (space_first)
                        buf[out++] = ' ';
                buf[out++] = c;
        }
        while (out > 0 && buf[out - 1] == ' ')
                out--;
        buf[out] = '\0';
        /* RFC 8056: EPP "ok" is RDAP "active". */
        if (strcmp(buf, "ok") == 0 || strcmp(buf, "o k") == 0)
                snprintf(buf, size, "active");
        return buf;
}

void dm_reg_add_status(struct dm_reg_record *r, const char *s, size_t len)
{
        char clean[DM_REG_STATUS_MAX * 2], spelled[DM_REG_STATUS_MAX];
        size_t n;

        n = dm_reg_text_clean(clean, sizeof(clean), s, len);
        /* "clientTransferProhibited https://icann.org/epp#..." and "ACTIVE (ok)": keep the
         * words before any URL or parenthesis. An RDAP value is already words. */
        char *cut = strstr(clean, "http");
        if (cut)
                *cut = '\0';
        cut = strchr(clean, '(');
        if (cut)
                *cut = '\0';
        n = strlen(clean);
        while (n > 0 && clean[n - 1] == ' ')
                n--;
        if (n == 0 || r->nstatuses >= DM_REG_MAX_STATUSES)
                return;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)clean[i];
                if (c >= 0x80 || !(c == ' ' || c == '-' || c == '_' || (c >= 'a' && c <= 'z') ||
                                   (c >= 'A' && c <= 'Z')))
                        return;
        }
        /* Already spaced words ("client transfer prohibited", "ACTIVE") are lower-cased; a
         * camel-cased code is split at its capitals. */
        bool spaced = memchr(clean, ' ', n) != NULL;
        bool upper = true;
        for (size_t i = 0; i < n; i++)
                if (clean[i] >= 'a' && clean[i] <= 'z')
                        upper = false;
        if (spaced || upper) {
                for (size_t i = 0; i < n; i++)
                        if (clean[i] >= 'A' && clean[i] <= 'Z')
                                clean[i] = (char)(clean[i] - 'A' + 'a');
        }
        dm_reg_status_rdap(clean, n, spelled, sizeof(spelled));
        if (spelled[0] == '\0')
                return;
        memcpy(r->statuses[r->nstatuses++], spelled, strlen(spelled) + 1);
}

static int cmp_ns(const void *a, const void *b)
{
        return strcmp(a, b);
}

void dm_reg_record_normalize(struct dm_reg_record *r)
{
        size_t j = 0;

        qsort(r->name_servers, r->nns, sizeof(r->name_servers[0]), cmp_ns);
        for (size_t i = 0; i < r->nns; i++)
                if (j == 0 || strcmp(r->name_servers[j - 1], r->name_servers[i]) != 0)
                        memmove(r->name_servers[j++], r->name_servers[i],
                                sizeof(r->name_servers[0]));
        r->nns = j;
        qsort(r->statuses, r->nstatuses, sizeof(r->statuses[0]), cmp_ns);
        j = 0;
        for (size_t i = 0; i < r->nstatuses; i++)
                if (j == 0 || strcmp(r->statuses[j - 1], r->statuses[i]) != 0)
                        memmove(r->statuses[j++], r->statuses[i], sizeof(r->statuses[0]));
        r->nstatuses = j;
}

/* ---- dates ---- */

static bool digits(const char *s, size_t len, size_t at, size_t n, int *ret)
{
        int v = 0;
        if (at + n > len)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[at + i];
                if (c < '0' || c > '9')
                        return false;
                v = v * 10 + (c - '0');
        }
        *ret = v;
        return true;
}

static int64_t days_from_civil(int y, int m, int d)
{
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        int64_t yoe = y - era * 400;
        int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

static bool valid_date(int y, int m, int d)
{
        static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        if (y < 1970 || y > 9999 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
                return false;
        if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
                return false;
        return true;
}

int dm_reg_date_parse(const char *in, size_t inlen, int64_t *ret_unix_ms)
{
        static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                             "jul", "aug", "sep", "oct", "nov", "dec"};
        char s[64];
        size_t len;
        int y = 0, m = 0, d = 0, hh = 0, mm = 0, ss = 0, ms = 0;
        size_t at;
        int64_t offset_min = 0;

        len = dm_reg_text_clean(s, sizeof(s), in, inlen);
        /* Trailing zone words some registries add. */
        static const char *const tails[] = {" (UTC)", " UTC", " GMT", " Z", NULL};
        for (size_t t = 0; tails[t]; t++) {
                size_t tl = strlen(tails[t]);
                if (len > tl && strcmp(s + len - tl, tails[t]) == 0) {
                        len -= tl;
                        s[len] = '\0';
                }
        }
        if (len < 8)
                return DM_EINVAL;
        if (digits(s, len, 0, 4, &y) && (s[4] == '-' || s[4] == '.' || s[4] == '/') &&
            digits(s, len, 5, 2, &m) && s[7] == s[4] && digits(s, len, 8, 2, &d)) {
                at = 10;
        } else if (digits(s, len, 0, 2, &d) && s[2] == '-' && len >= 11 && s[6] == '-' &&
                   digits(s, len, 7, 4, &y)) {
                char mon[4] = {0};
                for (int i = 0; i < 3; i++)
                        mon[i] =
                            (char)((s[3 + i] >= 'A' && s[3 + i] <= 'Z') ? s[3 + i] + 32 : s[3 + i]);
                for (int i = 0; i < 12; i++)
                        if (strcmp(mon, months[i]) == 0)
                                m = i + 1;
                at = 11;
        } else if (digits(s, len, 0, 2, &d) && s[2] == '.' && digits(s, len, 3, 2, &m) &&
                   s[5] == '.' && digits(s, len, 6, 4, &y)) {
                at = 10;
        } else {
                return DM_EINVAL;
        }
        if (!valid_date(y, m, d))
                return DM_EINVAL;
        if (at < len) {
                if (s[at] != 'T' && s[at] != 't' && s[at] != ' ')
                        return DM_EINVAL;
                at++;
                if (!digits(s, len, at, 2, &hh) || at + 2 >= len || s[at + 2] != ':' ||
                    !digits(s, len, at + 3, 2, &mm))
                        return DM_EINVAL;
                at += 5;
                if (at < len && s[at] == ':') {
                        if (!digits(s, len, at + 1, 2, &ss))
                                return DM_EINVAL;
                        at += 3;
                }
                if (at < len && s[at] == '.') {
                        int scale = 100;
                        at++;
                        if (at >= len || s[at] < '0' || s[at] > '9')
                                return DM_EINVAL;
                        while (at < len && s[at] >= '0' && s[at] <= '9') {
                                ms += (s[at] - '0') * scale;
                                scale /= 10;
                                at++;
                        }
                }
                if (hh > 23 || mm > 59 || ss > 60)
                        return DM_EINVAL;
                if (at < len && (s[at] == 'Z' || s[at] == 'z')) {
                        at++;
                } else if (at < len && (s[at] == '+' || s[at] == '-')) {
                        int oh, om;
                        int sign = s[at] == '-' ? -1 : 1;
                        at++;
                        if (!digits(s, len, at, 2, &oh))
                                return DM_EINVAL;
                        at += 2;
                        if (at < len && s[at] == ':')
                                at++;
                        if (!digits(s, len, at, 2, &om))
                                return DM_EINVAL;
                        at += 2;
                        if (oh > 23 || om > 59)
                                return DM_EINVAL;
                        offset_min = sign * (oh * 60 + om);
                }
                if (at != len)
                        return DM_EINVAL;
        }
        int64_t secs =
            days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss - offset_min * 60;
        if (secs <= 0)
                return DM_EINVAL;
        *ret_unix_ms = secs * 1000 + ms;
        return 0;
}

/* ---- JSON ---- */

static json_t *time_json(int64_t ms)
{
        char buf[DM_RFC3339_LEN];
        if (!ms)
                return json_null();
        return json_string(dm_time_format(ms, buf));
}

static json_t *text_json(const char *s)
{
        return s[0] ? json_string(s) : json_null();
}

static json_t *registrant_json(const struct dm_reg_registrant *p)
{
        if (dm_reg_registrant_is_empty(p))
                return json_null();
        json_t *o = json_object();
        if (!o)
                return NULL;
        if (json_object_set_new(o, "name", text_json(p->name)) ||
            json_object_set_new(o, "organization", text_json(p->organization)) ||
            json_object_set_new(o, "email", text_json(p->email)) ||
            json_object_set_new(o, "country", text_json(p->country))) {
                json_decref(o);
                return NULL;
        }
        return o;
}

static json_t *list_json(const char *base, size_t stride, size_t n)
{
        json_t *a = json_array();
        if (!a)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (json_array_append_new(a, json_string(base + i * stride))) {
                        json_decref(a);
                        return NULL;
                }
        }
        return a;
}

static json_t *field_json(const struct dm_reg_record *r, int field)
{
        switch (field) {
        case 0:
                return text_json(r->registrar);
        case 1:
                return time_json(r->created_at);
        case 2:
                return time_json(r->updated_at);
        case 3:
                return time_json(r->expires_at);
        case 4:
                return list_json(&r->name_servers[0][0], sizeof(r->name_servers[0]), r->nns);
        case 5:
                return list_json(&r->statuses[0][0], sizeof(r->statuses[0]), r->nstatuses);
        case 6:
                return r->dnssec < 0 ? json_null() : json_boolean(r->dnssec);
        default:
                return registrant_json(&r->registrant);
        }
}

static const char *const field_names[] = {"registrar",    "created_at", "updated_at", "expires_at",
                                          "name_servers", "statuses",   "dnssec",     "registrant"};
#define NFIELDS (sizeof(field_names) / sizeof(field_names[0]))

json_t *dm_reg_record_to_json(const struct dm_reg_record *r)
{
        json_t *o = json_object();
        if (!o)
                return NULL;
        for (size_t f = 0; f < NFIELDS; f++) {
                json_t *v = field_json(r, (int)f);
                if (!v || json_object_set_new(o, field_names[f], v)) {
                        json_decref(o);
                        return NULL;
                }
        }
        return o;
}

static void copy_text(char *dst, size_t size, const json_t *v)
{
        dst[0] = '\0';
        if (json_is_string(v))
                dm_reg_text_clean(dst, size, json_string_value(v), json_string_length(v));
}

static int time_from(const json_t *v, int64_t *ret)
{
        *ret = 0;
        if (json_is_null(v) || !v)
                return 0;
        if (!json_is_string(v))
                return DM_EINVAL;
        return dm_time_parse(json_string_value(v), ret);
}

int dm_reg_record_from_json(const json_t *obj, struct dm_reg_record *ret)
{
        struct dm_reg_record r;
        const json_t *v;
        size_t i;

        if (!json_is_object(obj))
                return DM_EINVAL;
        dm_reg_record_init(&r);
        copy_text(r.registrar, sizeof(r.registrar), json_object_get(obj, "registrar"));
        if (time_from(json_object_get(obj, "created_at"), &r.created_at) ||
            time_from(json_object_get(obj, "updated_at"), &r.updated_at) ||
            time_from(json_object_get(obj, "expires_at"), &r.expires_at))
                return DM_EINVAL;
        json_array_foreach(json_object_get(obj, "name_servers"), i, v)
        {
                if (json_is_string(v))
                        dm_reg_add_name_server(&r, json_string_value(v), json_string_length(v));
        }
        json_array_foreach(json_object_get(obj, "statuses"), i, v)
        {
                if (json_is_string(v))
                        dm_reg_add_status(&r, json_string_value(v), json_string_length(v));
        }
        v = json_object_get(obj, "dnssec");
        if (json_is_boolean(v))
                r.dnssec = json_is_true(v) ? 1 : 0;
        v = json_object_get(obj, "registrant");
        if (json_is_object(v)) {
                copy_text(r.registrant.name, DM_REG_TEXT_MAX, json_object_get(v, "name"));
                copy_text(r.registrant.organization, DM_REG_TEXT_MAX,
                          json_object_get(v, "organization"));
                copy_text(r.registrant.email, DM_REG_TEXT_MAX, json_object_get(v, "email"));
                copy_text(r.registrant.country, DM_REG_TEXT_MAX, json_object_get(v, "country"));
        }
        dm_reg_record_normalize(&r);
        *ret = r;
        return 0;
}

json_t *dm_reg_diff(const struct dm_reg_record *before, const struct dm_reg_record *after,
                    int *ret_err)
{
        json_t *fields = NULL;

        *ret_err = 0;
        for (size_t f = 0; f < NFIELDS; f++) {
                json_t *a = field_json(after, (int)f);
                json_t *b = before ? field_json(before, (int)f) : json_null();
                json_t *entry = NULL;
                bool differ;

                if (!a || !b)
                        goto nomem_ab;
                if (before) {
                        differ = !json_equal(a, b);
                } else {
                        /* First sight: what was published. */
                        differ = !json_is_null(a) && !(json_is_array(a) && json_array_size(a) == 0);
                }
                if (!differ) {
                        json_decref(a);
                        json_decref(b);
                        continue;
                }
                if (!fields && !(fields = json_object()))
                        goto nomem_ab;
                entry = json_pack("{soso}", "before", b, "after", a);
                if (!entry)
                        goto nomem;
                if (json_object_set_new(fields, field_names[f], entry))
                        goto nomem;
                continue;
        nomem_ab:
                json_decref(a);
                json_decref(b);
        nomem:
                json_decref(fields);
                *ret_err = DM_ENOMEM;
                return NULL;
        }
        return fields;
}

void dm_reg_record_merge(struct dm_reg_record *into, const struct dm_reg_record *from)
{
        if (!into->registrar[0])
                memcpy(into->registrar, from->registrar, sizeof(into->registrar));
        if (!into->created_at)
                into->created_at = from->created_at;
        if (!into->updated_at)
                into->updated_at = from->updated_at;
        if (!into->expires_at)
                into->expires_at = from->expires_at;
        if (into->nns == 0) {
                memcpy(into->name_servers, from->name_servers, sizeof(into->name_servers));
                into->nns = from->nns;
        }
        if (into->nstatuses == 0) {
                memcpy(into->statuses, from->statuses, sizeof(into->statuses));
                into->nstatuses = from->nstatuses;
        }
        if (into->dnssec < 0)
                into->dnssec = from->dnssec;
        if (dm_reg_registrant_is_empty(&into->registrant))
                into->registrant = from->registrant;
}

const char *dm_reg_status_name(enum dm_reg_status s)
{
        switch (s) {
        case DM_REG_OK:
                return "ok";
        case DM_REG_UNSUPPORTED:
                return "unsupported";
        case DM_REG_ERROR:
                return "error";
        default:
                return "pending";
        }
}

const char *dm_reg_source_name(enum dm_reg_source s)
{
        switch (s) {
        case DM_REG_SRC_RDAP:
                return "rdap";
        case DM_REG_SRC_WHOIS:
                return "whois";
        default:
                return NULL;
        }
}
