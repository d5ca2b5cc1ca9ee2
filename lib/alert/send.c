/* Alert channels over libcurl. Each try is one easy handle, made and freed in the call: alerts
 * are rare next to their cost, and a handle shared between threads would need a lock. */
#include "dm/alert_send.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dm/alert.h"
#include "dm/buf.h"
#include "dm/error.h"

#define RESPONSE_KEPT 512 /* bytes of a receiver's answer kept for the error message */

int dm_alert_send_init(void)
{
        return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : DM_EIO;
}

struct try_state {
        bool allow_private;
        bool refused; /* the connection was refused by the address policy */
        char body[RESPONSE_KEPT];
        size_t len;
};

/* Every socket curl opens goes through here: the address it is about to connect to is the
 * one checked, so a name that resolves to a private address (or is re-pointed to one after
 * the rule was made) is refused too. */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
        struct try_state *t = arg;
        (void)purpose;
        if (!t->allow_private && dm_alert_addr_private(&addr->addr)) {
                t->refused = true;
                return CURL_SOCKET_BAD;
        }
        return socket(addr->family, addr->socktype, addr->protocol);
}

static size_t keep_response(char *data, size_t size, size_t nmemb, void *arg)
{
        struct try_state *t = arg;
        size_t n = size * nmemb;
        size_t room = sizeof(t->body) - 1 - t->len;
        size_t take = n < room ? n : room;
        memcpy(t->body + t->len, data, take);
        t->len += take;
        t->body[t->len] = '\0';
        return n;
}

static void common_opts(CURL *h, const struct dm_alert_send_opts *o, struct try_state *t)
{
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(o->timeout_ms > 0 ? o->timeout_ms : 10000));
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                         (long)(o->timeout_ms > 0 ? o->timeout_ms : 10000));
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_response);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "domainmon/" DM_VERSION);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https,smtp,smtps");
}

static int curl_failed(CURLcode rc, const struct try_state *t, const char *what, char *err,
                       size_t errlen)
{
        if (t->refused) {
                snprintf(err, errlen, "%s: refused: the address is private, loopback or link-local",
                         what);
                return DM_EACCES;
        }
        snprintf(err, errlen, "%s: %s", what, curl_easy_strerror(rc));
        return rc == CURLE_OPERATION_TIMEDOUT ? DM_ETIMEDOUT : DM_EIO;
}

/* The first line of a receiver's answer, made printable, for last_error. */
static void answer_excerpt(const struct try_state *t, char *buf, size_t size)
{
        size_t n = 0;
        for (size_t i = 0; i < t->len && n + 1 < size && n < 120; i++) {
                unsigned char c = (unsigned char)t->body[i];
                if (c == '\n' || c == '\r')
                        break;
                buf[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
        buf[n] = '\0';
}

int dm_alert_send_webhook(const struct dm_alert_send_opts *opts, const char *url,
                          const char *secret, const char *msg_id, int64_t timestamp,
                          const char *body, char *err, size_t errlen)
{
        struct try_state t = {.allow_private = opts->allow_private};
        char sig[DM_ALERT_SIGNATURE_MAX], h_id[256], h_ts[64], h_sig[128];
        struct curl_slist *hdr = NULL, *tmp;
        int ret;

        ret = dm_alert_sign(secret, msg_id, timestamp, body, strlen(body), sig, sizeof(sig));
        if (ret < 0) {
                snprintf(err, errlen, "webhook: cannot sign: %s", dm_strerror(ret));
                return ret;
        }
        snprintf(h_id, sizeof(h_id), "webhook-id: %s", msg_id);
        snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %lld", (long long)timestamp);
        snprintf(h_sig, sizeof(h_sig), "webhook-signature: %s", sig);
        const char *lines[] = {"Content-Type: application/json", h_id, h_ts, h_sig, "Expect:"};
        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
                tmp = curl_slist_append(hdr, lines[i]);
                if (!tmp) {
                        curl_slist_free_all(hdr);
                        return DM_ENOMEM;
                }
                hdr = tmp;
        }
        CURL *h = curl_easy_init();
        if (!h) {
                curl_slist_free_all(hdr);
                return DM_ENOMEM;
        }
        common_opts(h, opts, &t);
        curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
        curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &t);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        CURLcode rc = curl_easy_perform(h);
        long code = 0;
        if (rc != CURLE_OK) {
                ret = curl_failed(rc, &t, "webhook", err, errlen);
        } else {
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
                if (code >= 200 && code < 300) {
                        ret = 0;
                } else {
                        char ex[128];
                        answer_excerpt(&t, ex, sizeof(ex));
                        snprintf(err, errlen, "webhook: HTTP %ld%s%s", code, ex[0] ? ": " : "", ex);
                        ret = DM_EIO;
                }
        }
        curl_easy_cleanup(h);
        curl_slist_free_all(hdr);
        return ret;
}

/* ---- email ---- */

struct upload {
        const char *data;
        size_t len, pos;
};

static size_t read_upload(char *buf, size_t size, size_t nmemb, void *arg)
{
        struct upload *u = arg;
        size_t room = size * nmemb, left = u->len - u->pos;
        size_t n = left < room ? left : room;
        memcpy(buf, u->data + u->pos, n);
        u->pos += n;
        return n;
}

int dm_alert_send_email(const struct dm_alert_send_opts *opts, const char *to, const char *msg_id,
                        const char *subject, const char *text, char *err, size_t errlen)
{
        struct try_state t = {.allow_private = true}; /* the operator's own server */
        struct dm_buf m;
        char date[64], from[320], rcpt[320];
        struct curl_slist *rcpts = NULL;
        int ret;

        if (!opts->smtp_url || !opts->smtp_from) {
                snprintf(err, errlen, "email: DM_SMTP_URL and DM_SMTP_FROM are not set");
                return DM_ENOTSUP;
        }
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
        dm_buf_init(&m, 4u << 20);
        ret = dm_buf_addf(
            &m,
            "Date: %s\r\nFrom: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@domainmon>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\nAuto-Submitted: auto-generated\r\n\r\n",
            date, opts->smtp_from, to, subject, msg_id);
        for (const char *p = text; *p && ret == 0; p++) {
                if (*p == '\n')
                        ret = dm_buf_addstr(&m, "\r\n");
                else if (*p != '\r')
                        ret = dm_buf_addc(&m, *p);
        }
        if (ret < 0) {
                dm_buf_done(&m);
                return ret;
        }
        snprintf(from, sizeof(from), "<%s>", opts->smtp_from);
        snprintf(rcpt, sizeof(rcpt), "<%s>", to);
        rcpts = curl_slist_append(NULL, rcpt);
        CURL *h = rcpts ? curl_easy_init() : NULL;
        if (!h) {
                curl_slist_free_all(rcpts);
                dm_buf_done(&m);
                return DM_ENOMEM;
        }
        struct upload u = {.data = (const char *)m.data, .len = m.len};
        common_opts(h, opts, &t);
        curl_easy_setopt(h, CURLOPT_URL, opts->smtp_url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
        /* STARTTLS when the server offers it; smtps:// is TLS from the start. */
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
        if (opts->smtp_user) {
                curl_easy_setopt(h, CURLOPT_USERNAME, opts->smtp_user);
                curl_easy_setopt(h, CURLOPT_PASSWORD,
                                 opts->smtp_password ? opts->smtp_password : "");
        }
        curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
        curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpts);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, read_upload);
        curl_easy_setopt(h, CURLOPT_READDATA, &u);
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        CURLcode rc = curl_easy_perform(h);
        ret = rc == CURLE_OK ? 0 : curl_failed(rc, &t, "email", err, errlen);
        curl_easy_cleanup(h);
        curl_slist_free_all(rcpts);
        dm_buf_done(&m);
        return ret;
}

/* ---- SMS ---- */

int dm_alert_send_sms(const struct dm_alert_send_opts *opts, const char *to, const char *text,
                      char *err, size_t errlen)
{
        struct try_state t = {.allow_private = true}; /* the operator's own gateway */
        int ret;

        if (!opts->sms_url || !opts->sms_from) {
                snprintf(err, errlen, "sms: DM_SMS_URL and DM_SMS_FROM are not set");
                return DM_ENOTSUP;
        }
        CURL *h = curl_easy_init();
        if (!h)
                return DM_ENOMEM;
        char *eto = curl_easy_escape(h, to, 0);
        char *efrom = curl_easy_escape(h, opts->sms_from, 0);
        char *ebody = curl_easy_escape(h, text, 0);
        struct dm_buf form;
        dm_buf_init(&form, 8192);
        ret = eto && efrom && ebody ? dm_buf_addf(&form, "To=%s&From=%s&Body=%s", eto, efrom, ebody)
                                    : DM_ENOMEM;
        curl_free(eto);
        curl_free(efrom);
        curl_free(ebody);
        if (ret < 0) {
                dm_buf_done(&form);
                curl_easy_cleanup(h);
                return DM_ENOMEM;
        }
        common_opts(h, opts, &t);
        curl_easy_setopt(h, CURLOPT_URL, opts->sms_url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *)form.data);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)form.len);
        if (opts->sms_user) {
                curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
                curl_easy_setopt(h, CURLOPT_USERNAME, opts->sms_user);
                curl_easy_setopt(h, CURLOPT_PASSWORD, opts->sms_password ? opts->sms_password : "");
        }
        CURLcode rc = curl_easy_perform(h);
        if (rc != CURLE_OK) {
                ret = curl_failed(rc, &t, "sms", err, errlen);
        } else {
                long code = 0;
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
                if (code >= 200 && code < 300) {
                        ret = 0;
                } else {
                        char ex[128];
                        answer_excerpt(&t, ex, sizeof(ex));
                        snprintf(err, errlen, "sms: HTTP %ld%s%s", code, ex[0] ? ": " : "", ex);
                        ret = DM_EIO;
                }
        }
        curl_easy_cleanup(h);
        dm_buf_done(&form);
        return ret;
}
