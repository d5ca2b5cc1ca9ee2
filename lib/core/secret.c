/* Secret masking: one pass over the text, copying it and replacing what looks like a secret.
 * The rules are deliberately broad (a parameter named "key" is masked even where it is not
 * a secret): hiding a harmless value costs a little clarity, showing a password costs the
 * password. */
#include "dm/secret.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

static const char *const secret_params[] = {
    "password", "passwd",       "pass",    "pwd",    "secret", "secret_key",
    "token",    "access_token", "api_key", "apikey", NULL,
};

static bool is_name_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
}

/* Where a parameter value ends. */
static bool ends_value(char c)
{
        return c == '\0' || c == '&' || c == ';' || c == ' ' || c == '\t' || c == '"' ||
               c == '\'' || c == '#' || c == '\n' || c == '\r' || c == ',' || c == ')';
}

/* Where a URL's authority ends. */
static bool ends_authority(char c)
{
        return c == '\0' || c == '/' || c == '?' || c == '#' || c == ' ' || c == '\t' || c == '"' ||
               c == '\'' || c == '\n' || c == '\r' || c == '>' || c == ',';
}

/* At in[i], a secret parameter "name=": returns the length of "name=" or 0. */
static size_t secret_param_at(const char *in, size_t i)
{
        if (i > 0 && is_name_char(in[i - 1]))
                return 0;
        size_t n = 0;
        while (is_name_char(in[i + n]))
                n++;
        if (n == 0 || in[i + n] != '=')
                return 0;
        for (size_t k = 0; secret_params[k]; k++) {
                if (strlen(secret_params[k]) == n && strncasecmp(in + i, secret_params[k], n) == 0)
                        return n + 1;
        }
        return 0;
}

/* At in[i] == ':' of "://": the offsets of the password in the authority that follows, or
 * false. */
static bool url_password_at(const char *in, size_t i, size_t *ret_start, size_t *ret_end)
{
        size_t a = i + 3, e = a, at = 0, colon = 0;
        bool have_at = false, have_colon = false;

        while (!ends_authority(in[e]))
                e++;
        for (size_t k = a; k < e; k++) {
                if (in[k] == '@') {
                        at = k; /* the last '@' ends the userinfo */
                        have_at = true;
                }
        }
        if (!have_at)
                return false;
        for (size_t k = a; k < at; k++) {
                if (in[k] == ':') {
                        colon = k;
                        have_colon = true;
                        break;
                }
        }
        if (!have_colon)
                return false;
        *ret_start = colon + 1;
        *ret_end = at;
        return true;
}

char *dm_secret_mask(const char *in, char *out, size_t size)
{
        size_t o = 0, i = 0;

        if (size == 0)
                return out;
        if (!in)
                in = "";
#define PUT(c)                                                                                     \
        do {                                                                                       \
                if (o + 1 < size)                                                                  \
                        out[o++] = (c);                                                            \
        } while (0)
        while (in[i]) {
                size_t s, e, n;
                if (in[i] == ':' && in[i + 1] == '/' && in[i + 2] == '/' &&
                    url_password_at(in, i, &s, &e)) {
                        for (; i < s; i++)
                                PUT(in[i]);
                        for (const char *m = DM_SECRET_MASK; *m; m++)
                                PUT(*m);
                        i = e;
                        continue;
                }
                n = secret_param_at(in, i);
                if (n > 0) {
                        for (size_t k = 0; k < n; k++)
                                PUT(in[i + k]);
                        i += n;
                        if (!ends_value(in[i])) {
                                for (const char *m = DM_SECRET_MASK; *m; m++)
                                        PUT(*m);
                                while (!ends_value(in[i]))
                                        i++;
                        }
                        continue;
                }
                PUT(in[i]);
                i++;
        }
#undef PUT
        out[o] = '\0';
        return out;
}
