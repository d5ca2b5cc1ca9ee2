/* The certificate summariser: one X509 -> the certificate object of the API. Everything in
 * a certificate is the server's choice: names are cut to DM_TLS_TEXT_MAX, the list of names
 * to DM_TLS_SANS_MAX, and every string goes through dm_json_safe_text (valid UTF-8, no
 * control characters) before it is stored or shown. */
#include "dm/tls.h"

#include "dm/error.h"
#include "dm/hex.h"
#include "dm/json.h"
#include "dm/time.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* A JSON string of untrusted bytes: cut, made valid UTF-8 without control characters. */
static json_t *safe_string(const char *s, size_t len)
{
        char buf[DM_TLS_TEXT_MAX];
        return json_string(dm_json_safe_text(buf, sizeof(buf), s, len));
}

/* RFC 2253 form, UTF-8 kept as UTF-8 (the summariser cleans it after). */
static json_t *name_json(const X509_NAME *name)
{
        BIO *b = BIO_new(BIO_s_mem());
        json_t *j = NULL;
        if (!b)
                return NULL;
        unsigned long flags = XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB;
        if (X509_NAME_print_ex(b, name, 0, flags) >= 0) {
                char *data = NULL;
                long len = BIO_get_mem_data(b, &data);
                j = safe_string(data ? data : "", len > 0 ? (size_t)len : 0);
        }
        BIO_free(b);
        return j;
}

static json_t *sans_json(X509 *x)
{
        json_t *list = json_array();
        GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
        if (!list)
                goto out;
        for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && i < DM_TLS_SANS_MAX; i++) {
                const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
                json_t *v = NULL;
                if (gn->type == GEN_DNS) {
                        const ASN1_IA5STRING *s = gn->d.dNSName;
                        v = safe_string((const char *)ASN1_STRING_get0_data(s),
                                        (size_t)ASN1_STRING_length(s));
                } else if (gn->type == GEN_IPADD) {
                        const ASN1_OCTET_STRING *s = gn->d.iPAddress;
                        char text[INET6_ADDRSTRLEN];
                        int len = ASN1_STRING_length(s);
                        int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
                        if (af && inet_ntop(af, ASN1_STRING_get0_data(s), text, sizeof(text)))
                                v = json_string(text);
                } else {
                        continue; /* e-mail, URI and the rest name no host */
                }
                if (v && json_array_append_new(list, v) < 0) {
                        json_decref(list);
                        list = NULL;
                        goto out;
                }
        }
out:
        GENERAL_NAMES_free(names);
        return list;
}

static json_t *serial_json(X509 *x)
{
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
        char *hex = bn ? BN_bn2hex(bn) : NULL;
        json_t *j = NULL;
        if (hex) {
                for (char *p = hex; *p; p++) {
                        if (*p >= 'A' && *p <= 'F')
                                *p = (char)(*p - 'A' + 'a');
                }
                j = json_string(hex);
        }
        OPENSSL_free(hex);
        BN_free(bn);
        return j;
}

static int time_ms(const ASN1_TIME *t, int64_t *ret_ms)
{
        struct tm tm;
        if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
                return DM_EPARSE;
        *ret_ms = (int64_t)timegm(&tm) * 1000;
        return 0;
}

static const char *key_type_name(const EVP_PKEY *pk)
{
        switch (EVP_PKEY_get_base_id(pk)) {
        case EVP_PKEY_RSA:
        case EVP_PKEY_RSA_PSS:
                return "RSA";
        case EVP_PKEY_EC:
                return "EC";
        case EVP_PKEY_ED25519:
                return "Ed25519";
        case EVP_PKEY_ED448:
                return "Ed448";
        case EVP_PKEY_DSA:
                return "DSA";
        default:
                return "unknown";
        }
}

int dm_tls_cert_summarize(X509 *x, struct dm_tls_cert *ret_cert)
{
        struct dm_tls_cert c = {0};
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        char ts1[DM_RFC3339_LEN], ts2[DM_RFC3339_LEN];

        if (!x)
                return DM_EINVAL;
        if (time_ms(X509_get0_notBefore(x), &c.not_before) < 0 ||
            time_ms(X509_get0_notAfter(x), &c.not_after) < 0)
                return DM_EPARSE;
        if (!X509_digest(x, EVP_sha256(), md, &mdlen) || mdlen != 32)
                return DM_EPARSE;
        dm_hex_encode(md, 32, c.sha256);

        EVP_PKEY *pk = X509_get0_pubkey(x);
        int sig_nid = X509_get_signature_nid(x);
        const char *sig = sig_nid != NID_undef ? OBJ_nid2ln(sig_nid) : NULL;
        /* "o" steals each reference, also on failure; a NULL one fails the pack. */
        c.json = json_pack("{s:o, s:o, s:o, s:o, s:s, s:s, s:I, s:s, s:s, s:s}", "subject",
                           name_json(X509_get_subject_name(x)), "sans", sans_json(x), "issuer",
                           name_json(X509_get_issuer_name(x)), "serial", serial_json(x), "sha256",
                           c.sha256, "key_type", pk ? key_type_name(pk) : "unknown", "key_bits",
                           (json_int_t)(pk ? EVP_PKEY_get_bits(pk) : 0), "signature_algorithm",
                           sig ? sig : "unknown", "not_before", dm_time_format(c.not_before, ts1),
                           "not_after", dm_time_format(c.not_after, ts2));
        if (!c.json)
                return DM_ENOMEM;
        *ret_cert = c;
        return 0;
}

int dm_tls_cert_parse(const void *data, size_t len, struct dm_tls_cert *ret_cert)
{
        if (len == 0 || len > DM_TLS_CERT_INPUT_MAX)
                return DM_EPARSE;
        const unsigned char *p = data;
        X509 *x = d2i_X509(NULL, &p, (long)len);
        if (!x) {
                BIO *b = BIO_new_mem_buf(data, (int)len);
                if (!b)
                        return DM_ENOMEM;
                x = PEM_read_bio_X509(b, NULL, NULL, NULL);
                BIO_free(b);
        }
        ERR_clear_error();
        if (!x)
                return DM_EPARSE;
        int r = dm_tls_cert_summarize(x, ret_cert);
        X509_free(x);
        return r;
}

void dm_tls_cert_done(struct dm_tls_cert *c)
{
        if (!c)
                return;
        json_decref(c->json);
        memset(c, 0, sizeof(*c));
}

int64_t dm_tls_days_left(int64_t not_after, int64_t now)
{
        int64_t d = not_after - now;
        const int64_t day = 86400000;
        return d >= 0 ? d / day : -((-d + day - 1) / day);
}
