/* Domain name canonicalization. Pure-ASCII labels are checked here directly: libidn2
 * applies IDNA2008 rules to them that DNS does not (it refuses "ab--cd", and with STD3 rules
 * the underscore of "_dmarc"), and they need no mapping beyond lower-casing. Labels
 * with non-ASCII bytes go through UTS-46 non-transitional processing; "xn--" labels are
 * checked to decode to a valid U-label and to encode back to themselves, so every stored
 * A-label has exactly one spelling. The result is then validated as a whole on its A-label
 * form, which is what DNS limits apply to. */
#include "dm/name.h"

#include "dm/error.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DM_NAME_URL_HINT "looks like a URL; give the bare domain name (e.g. example.com)"

/* Raw input beyond this cannot be a name: even UTS-46 mappings that shrink text (full-width
 * forms, ignorables) do not turn a kilobyte into 253 octets in any sensible input. */
#define DM_NAME_INPUT_MAX DM_UNAME_MAX

static bool name_is_ascii(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if ((unsigned char)s[i] >= 0x80)
                        return false;
        }
        return true;
}

/* Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
static bool name_is_utf8(const unsigned char *s, size_t n)
{
        size_t i = 0;
        while (i < n) {
                unsigned char c = s[i];
                size_t k;
                unsigned lo = 0x80, hi = 0xbf;
                if (c < 0x80) {
                        i++;
                        continue;
                } else if (c >= 0xc2 && c <= 0xdf) {
                        k = 1;
                } else if (c >= 0xe0 && c <= 0xef) {
                        k = 2;
                        if (c == 0xe0)
                                lo = 0xa0;
                        else if (c == 0xed)
                                hi = 0x9f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        k = 3;
                        if (c == 0xf0)
                                lo = 0x90;
                        else if (c == 0xf4)
                                hi = 0x8f;
                } else {
                        return false;
                }
                if (n - i <= k)
                        return false;
                if (s[i + 1] < lo || s[i + 1] > hi)
                        return false;
                for (size_t j = 2; j <= k; j++) {
                        if (s[i + j] < 0x80 || s[i + j] > 0xbf)
                                return false;
                }
                i += k + 1;
        }
        return true;
}

static bool name_is_ip_literal(const char *s, size_t n)
{
        char tmp[64];
        unsigned char addr[16];

        if (n > 0 && s[0] == '[')
                return true;
        if (n >= sizeof(tmp))
                return false;
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        if (n > 0 && tmp[n - 1] == '.')
                tmp[n - 1] = '\0';
        return inet_pton(AF_INET, tmp, addr) == 1 || inet_pton(AF_INET6, tmp, addr) == 1;
}

/* Checks on the bytes as typed, before any mapping, so the reason names what the user
 * actually wrote. */
static int name_check_raw(const char *in, size_t len, char *err, size_t errlen)
{
        if (memchr(in, '\0', len))
                return dm_errorf(DM_EBADNAME, err, errlen, "contains a NUL byte");
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)in[i];
                if (c < 0x20 || c == 0x7f)
                        return dm_errorf(DM_EBADNAME, err, errlen, "contains control characters");
        }
        if (name_is_ip_literal(in, len))
                return dm_errorf(DM_EBADNAME, err, errlen, "IP addresses are not domain names");
        if (memchr(in, '@', len))
                return dm_errorf(DM_EBADNAME, err, errlen,
                                 "looks like an email address or URL; give the bare domain name");
        if (memchr(in, '/', len) || memchr(in, ':', len) || memchr(in, '?', len) ||
            memchr(in, '#', len))
                return dm_errorf(DM_EBADNAME, err, errlen, DM_NAME_URL_HINT);
        if (memchr(in, ' ', len))
                return dm_errorf(DM_EBADNAME, err, errlen, "contains spaces");
        if (memchr(in, '*', len))
                return dm_errorf(DM_EBADNAME, err, errlen,
                                 "wildcards are not allowed; give a concrete name");
        if (!name_is_utf8((const unsigned char *)in, len))
                return dm_errorf(DM_EBADNAME, err, errlen, "not valid UTF-8");
        return 0;
}

static int name_idn2_fail(int rc, char *err, size_t errlen)
{
        switch (rc) {
        case IDN2_TOO_BIG_LABEL:
        case IDN2_PUNYCODE_BIG_OUTPUT:
                return dm_errorf(DM_EBADNAME, err, errlen, "label longer than 63 octets");
        case IDN2_TOO_BIG_DOMAIN:
                return dm_errorf(DM_EBADNAME, err, errlen, "name longer than 253 octets");
        case IDN2_HYPHEN_STARTEND:
                return dm_errorf(DM_EBADNAME, err, errlen, "label starts or ends with a hyphen");
        case IDN2_DISALLOWED:
                return dm_errorf(DM_EBADNAME, err, errlen,
                                 "contains a character not allowed in domain names (IDNA2008)");
        default:
                return dm_errorf(DM_EBADNAME, err, errlen, "invalid internationalized label: %s",
                                 idn2_strerror(rc));
        }
}

/* Appends `n` bytes to out[*olen], keeping room for the NUL. */
static bool name_append(char *out, size_t size, size_t *olen, const char *s, size_t n)
{
        if (n >= size - *olen)
                return false;
        memcpy(out + *olen, s, n);
        *olen += n;
        out[*olen] = '\0';
        return true;
}

/* Lower-cased input -> candidate A-label form. */
static int name_to_ascii(const char *s, size_t len, char *out, size_t size, char *err,
                         size_t errlen)
{
        size_t olen = 0;
        const char *p = s, *end = s + len;
        out[0] = '\0';

        while (p <= end) {
                const char *dot = memchr(p, '.', (size_t)(end - p));
                const char *lend = dot ? dot : end;
                size_t n = (size_t)(lend - p);

                if (name_is_ascii(p, n)) {
                        if (!name_append(out, size, &olen, p, n))
                                return dm_errorf(DM_EBADNAME, err, errlen,
                                                 "name longer than 253 octets");
                } else {
                        char label[DM_NAME_INPUT_MAX + 1];
                        uint8_t *a = NULL;
                        memcpy(label, p, n);
                        label[n] = '\0';
                        int rc = idn2_lookup_u8((const uint8_t *)label, &a,
                                                IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
                        if (rc != IDN2_OK)
                                return name_idn2_fail(rc, err, errlen);
                        bool ok =
                            name_append(out, size, &olen, (const char *)a, strlen((const char *)a));
                        idn2_free(a);
                        if (!ok)
                                return dm_errorf(DM_EBADNAME, err, errlen,
                                                 "name longer than 253 octets");
                }
                if (!dot)
                        break;
                if (!name_append(out, size, &olen, ".", 1))
                        return dm_errorf(DM_EBADNAME, err, errlen, "name longer than 253 octets");
                p = dot + 1;
        }
        return 0;
}

/* An "xn--" label must decode to a U-label that is valid IDNA2008 on its own (no UTS-46
 * mapping: "xn--lsh" decodes to U+2480, which mapping would turn into "(13)"), and that
 * label must encode back to exactly this A-label both strictly and through UTS-46, so the
 * Unicode form parses back to the same name. Writes the U-label into `out`. */
static int name_decode_alabel(const char *label, char *out, size_t size, char *err, size_t errlen)
{
        char *u = NULL;
        uint8_t *strict = NULL;
        uint8_t *mapped = NULL;
        int ret = 0;

        int rc = idn2_to_unicode_8z8z(label, &u, 0);
        if (rc != IDN2_OK) {
                ret = dm_errorf(DM_EBADNAME, err, errlen, "invalid xn-- label \"%s\": %s", label,
                                idn2_strerror(rc));
                goto out;
        }
        if (u[0] == '\0' || name_is_ascii(u, strlen(u))) {
                ret = dm_errorf(DM_EBADNAME, err, errlen,
                                "xn-- label \"%s\" does not encode a U-label", label);
                goto out_free_u;
        }
        rc = idn2_lookup_u8((const uint8_t *)u, &strict, IDN2_NO_TR46);
        if (rc != IDN2_OK) {
                ret = dm_errorf(DM_EBADNAME, err, errlen, "invalid xn-- label \"%s\": %s", label,
                                idn2_strerror(rc));
                goto out_free_u;
        }
        rc = idn2_lookup_u8((const uint8_t *)u, &mapped, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
        if (rc != IDN2_OK || strcmp((const char *)strict, label) != 0 ||
            strcmp((const char *)mapped, label) != 0) {
                ret = dm_errorf(DM_EBADNAME, err, errlen,
                                "xn-- label \"%s\" is not in canonical form", label);
                goto out_free_mapped;
        }
        if (strlen(u) >= size) {
                ret = dm_errorf(DM_EBADNAME, err, errlen, "name too long");
                goto out_free_mapped;
        }
        memcpy(out, u, strlen(u) + 1);

out_free_mapped:
        idn2_free(mapped);
        idn2_free(strict);
out_free_u:
        idn2_free(u);
out:
        return ret;
}

/* Validates the candidate A-label form and builds the U-label form. */
static int name_check_ascii(const char *ascii, char *unicode, size_t usize, char *err,
                            size_t errlen)
{
        size_t total = strlen(ascii);
        size_t ulen = 0;
        size_t nlabels = 0;
        bool tld_numeric = false;
        bool tld_underscore = false;
        const char *p = ascii;

        if (total == 0)
                return dm_errorf(DM_EBADNAME, err, errlen, "empty name");
        if (total > DM_NAME_MAX)
                return dm_errorf(DM_EBADNAME, err, errlen, "name longer than 253 octets");
        unicode[0] = '\0';

        for (;;) {
                const char *dot = strchr(p, '.');
                size_t n = dot ? (size_t)(dot - p) : strlen(p);
                char label[DM_LABEL_MAX + 1];

                if (n == 0)
                        return dm_errorf(DM_EBADNAME, err, errlen,
                                         "empty label (two dots in a row, or a "
                                         "leading or extra trailing dot)");
                if (n > DM_LABEL_MAX)
                        return dm_errorf(DM_EBADNAME, err, errlen, "label longer than 63 octets");
                memcpy(label, p, n);
                label[n] = '\0';

                bool numeric = true;
                for (size_t i = 0; i < n; i++) {
                        char c = label[i];
                        if (c >= '0' && c <= '9')
                                continue;
                        numeric = false;
                        if ((c >= 'a' && c <= 'z') || c == '-' || c == '_')
                                continue;
                        if (c == ' ')
                                return dm_errorf(DM_EBADNAME, err, errlen, "contains spaces");
                        if (c == '*')
                                return dm_errorf(DM_EBADNAME, err, errlen,
                                                 "wildcards are not allowed; give a concrete name");
                        if (c == '/' || c == ':' || c == '@')
                                return dm_errorf(DM_EBADNAME, err, errlen, DM_NAME_URL_HINT);
                        if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
                                return dm_errorf(DM_EBADNAME, err, errlen,
                                                 "contains control characters");
                        return dm_errorf(DM_EBADNAME, err, errlen,
                                         "invalid character '%c' (letters, digits, '-' and '_' "
                                         "only)",
                                         c);
                }
                if (label[0] == '-' || label[n - 1] == '-')
                        return dm_errorf(DM_EBADNAME, err, errlen,
                                         "label \"%s\" starts or ends with a hyphen", label);

                char ubuf[DM_UNAME_MAX + 1];
                const char *ulabel = label;
                if (n >= 4 && memcmp(label, "xn--", 4) == 0) {
                        /* IDNA2008 has no underscore; only plain DNS labels may use it. */
                        if (memchr(label, '_', n))
                                return dm_errorf(DM_EBADNAME, err, errlen,
                                                 "'_' is not allowed in internationalized labels");
                        int r = name_decode_alabel(label, ubuf, sizeof(ubuf), err, errlen);
                        if (r < 0)
                                return r;
                        ulabel = ubuf;
                }
                if ((nlabels > 0 && !name_append(unicode, usize, &ulen, ".", 1)) ||
                    !name_append(unicode, usize, &ulen, ulabel, strlen(ulabel)))
                        return dm_errorf(DM_EBADNAME, err, errlen, "name too long");

                nlabels++;
                tld_numeric = numeric;
                tld_underscore = memchr(label, '_', n) != NULL;
                if (!dot)
                        break;
                p = dot + 1;
        }

        if (nlabels < 2)
                return dm_errorf(DM_EBADNAME, err, errlen,
                                 "single-label names are not allowed (need e.g. example.com)");
        if (tld_numeric)
                return dm_errorf(DM_EBADNAME, err, errlen, "top-level domain is all numeric");
        /* Underscore labels name services and policies under a domain, never a TLD. */
        if (tld_underscore)
                return dm_errorf(DM_EBADNAME, err, errlen,
                                 "'_' is not allowed in the top-level domain");
        return 0;
}

int dm_name_parse(const char *in, size_t len, char *err, size_t errlen, struct dm_name *ret_name)
{
        /* Twice the A-label maximum: room to detect "too long" without truncating. */
        char lower[DM_NAME_INPUT_MAX + 1];
        char ascii[2 * DM_NAME_MAX + 2];
        struct dm_name name;

        if (err && errlen > 0)
                err[0] = '\0';
        if (!in || len == 0)
                return dm_errorf(DM_EBADNAME, err, errlen, "empty name");
        if (len > DM_NAME_INPUT_MAX)
                return dm_errorf(DM_EBADNAME, err, errlen, "name too long");

        int r = name_check_raw(in, len, err, errlen);
        if (r < 0)
                return r;

        for (size_t i = 0; i < len; i++) {
                char c = in[i];
                lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        /* Exactly one trailing dot is the fully-qualified spelling; more is an empty label,
         * reported by the label checks. */
        bool had_dot = lower[len - 1] == '.';
        if (had_dot)
                len--;
        if (len == 0)
                return dm_errorf(DM_EBADNAME, err, errlen, "empty name");
        lower[len] = '\0';

        r = name_to_ascii(lower, len, ascii, sizeof(ascii), err, errlen);
        if (r < 0)
                return r;
        /* UTS-46 maps e.g. U+3002 to '.', so a name typed with an ideographic full stop at
         * the end is the same fully-qualified spelling. */
        size_t alen = strlen(ascii);
        if (!had_dot && alen > 0 && ascii[alen - 1] == '.')
                ascii[alen - 1] = '\0';
        r = name_check_ascii(ascii, name.unicode, sizeof(name.unicode), err, errlen);
        if (r < 0)
                return r;

        memcpy(name.ascii, ascii, strlen(ascii) + 1);
        *ret_name = name;
        return 0;
}

bool dm_name_is_stored_form(const char *s)
{
        size_t len = strnlen(s, DM_NAME_MAX + 1), label = 0, labels = 1;
        if (len == 0 || len > DM_NAME_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (c == '.') {
                        if (label == 0 || s[i - 1] == '-')
                                return false;
                        label = 0;
                        labels++;
                        continue;
                }
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
                        return false;
                if (c == '-' && label == 0)
                        return false;
                if (++label > DM_LABEL_MAX)
                        return false;
        }
        return label > 0 && s[len - 1] != '-' && labels >= 2;
}
