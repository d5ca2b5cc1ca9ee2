/* HTTP for the command-line client, over libcurl (the project's HTTP client library):
 * requests with a JSON body and a capped answer, problem details made one line, and the
 * live event stream fed to the SSE reader as it arrives. */
#include "dm/cli_client.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "dm/buf.h"
#include "dm/error.h"
#include "dm/json.h"

#define CONNECT_TIMEOUT_S 10L
#define REQUEST_TIMEOUT_S 300L /* an import of 10,000 names on a busy store */

struct dm_cli_client {
        CURL *curl;
        char *base;
        char *auth; /* "Authorization: Bearer <key>" or NULL */
};

int dm_cli_client_new(const char *base_url, const char *key, struct dm_cli_client **ret_client)
{
        if (!base_url ||
            (strncasecmp(base_url, "http://", 7) != 0 && strncasecmp(base_url, "https://", 8) != 0))
                return DM_EINVAL;
        struct dm_cli_client *c = calloc(1, sizeof(*c));
        if (!c)
                return DM_ENOMEM;
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                goto nomem;
        c->curl = curl_easy_init();
        c->base = strdup(base_url);
        if (!c->curl || !c->base)
                goto nomem;
        size_t n = strlen(c->base);
        while (n > 0 && c->base[n - 1] == '/')
                c->base[--n] = '\0';
        if (key && *key) {
                size_t size = strlen(key) + 32;
                c->auth = malloc(size);
                if (!c->auth)
                        goto nomem;
                snprintf(c->auth, size, "Authorization: Bearer %s", key);
        }
        *ret_client = c;
        return 0;
nomem:
        dm_cli_client_free(c);
        return DM_ENOMEM;
}

void dm_cli_client_free(struct dm_cli_client *c)
{
        if (!c)
                return;
        if (c->curl)
                curl_easy_cleanup(c->curl);
        free(c->base);
        if (c->auth)
                explicit_bzero(c->auth, strlen(c->auth));
        free(c->auth);
        free(c);
        curl_global_cleanup();
}

void dm_cli_response_done(struct dm_cli_response *res)
{
        if (!res)
                return;
        json_decref(res->doc);
        memset(res, 0, sizeof(*res));
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
        struct dm_buf *b = arg;
        return dm_buf_add(b, p, size * n) == 0 ? size * n : 0;
}

static int setup(struct dm_cli_client *c, const char *path, struct curl_slist **hdrs,
                 const char *extra_header, char *url, size_t urlsize)
{
        curl_easy_reset(c->curl);
        if ((size_t)snprintf(url, urlsize, "%s%s", c->base, path) >= urlsize)
                return DM_E2BIG;
        *hdrs = NULL;
        struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
        if (h && c->auth)
                h = curl_slist_append(h, c->auth);
        if (h && extra_header)
                h = curl_slist_append(h, extra_header);
        if (!h)
                return DM_ENOMEM;
        *hdrs = h;
        curl_easy_setopt(c->curl, CURLOPT_URL, url);
        curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
        curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "domainmon/" DM_VERSION);
        /* Only the service's own scheme: never follow a redirect elsewhere with the key. */
        curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
        return 0;
}

static void network_error(CURLcode cc, const char *errbuf, const char *url, char *err,
                          size_t errlen)
{
        char shown[300];
        dm_cli_safe(shown, sizeof(shown), url);
        snprintf(err, errlen, "cannot reach %s: %s", shown,
                 errbuf[0] ? errbuf : curl_easy_strerror(cc));
}

int dm_cli_request(struct dm_cli_client *c, const char *method, const char *path,
                   const json_t *body, struct dm_cli_response *res, char *err, size_t errlen)
{
        char url[4096], errbuf[CURL_ERROR_SIZE] = "";
        struct curl_slist *hdrs = NULL;
        struct dm_buf b;
        char *data = NULL;
        int ret;

        memset(res, 0, sizeof(*res));
        dm_buf_init(&b, DM_CLI_BODY_MAX);
        ret =
            setup(c, path, &hdrs, body ? "Content-Type: application/json" : NULL, url, sizeof(url));
        if (ret < 0) {
                dm_errorf(ret, err, errlen, "request too long");
                goto out;
        }
        if (body) {
                data = dm_json_dump(body, NULL);
                if (!data) {
                        ret = dm_errorf(DM_ENOMEM, err, errlen, "out of memory");
                        goto out;
                }
                curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, data);
        }
        curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
        if (strcmp(method, "HEAD") == 0)
                curl_easy_setopt(c->curl, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, REQUEST_TIMEOUT_S);
        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
        CURLcode cc = curl_easy_perform(c->curl);
        if (cc != CURLE_OK) {
                if (cc == CURLE_WRITE_ERROR)
                        snprintf(errbuf, sizeof(errbuf), "the answer is larger than %u bytes",
                                 DM_CLI_BODY_MAX);
                network_error(cc, errbuf, url, err, errlen);
                ret = DM_EIO;
                goto out;
        }
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &res->status);
        const char *ctype = NULL;
        curl_easy_getinfo(c->curl, CURLINFO_CONTENT_TYPE, &ctype);
        if (b.len > 0 && ctype && strstr(ctype, "json"))
                res->doc = json_loadb(b.data, b.len, 0, NULL);
        ret = 0;
out:
        free(data);
        curl_slist_free_all(hdrs);
        dm_buf_done(&b);
        return ret;
}

const char *dm_cli_problem_line(const struct dm_cli_response *res, char *buf, size_t size)
{
        const char *text = NULL;
        if (json_is_object(res->doc)) {
                const json_t *d = json_object_get(res->doc, "detail");
                const json_t *t = json_object_get(res->doc, "title");
                text = json_is_string(d)   ? json_string_value(d)
                       : json_is_string(t) ? json_string_value(t)
                                           : NULL;
        }
        char safe[512];
        if (text)
                snprintf(buf, size, "%s (HTTP %ld)", dm_cli_safe(safe, sizeof(safe), text),
                         res->status);
        else
                snprintf(buf, size, "the server answered HTTP %ld", res->status);
        return buf;
}

const char *dm_cli_escape(const char *s, char *buf, size_t size)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t o = 0;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                             (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
                             *p == '~';
                if (o + (plain ? 1 : 3) + 1 > size)
                        return NULL;
                if (plain) {
                        buf[o++] = (char)*p;
                } else {
                        buf[o++] = '%';
                        buf[o++] = hex[*p >> 4];
                        buf[o++] = hex[*p & 15];
                }
        }
        if (size == 0)
                return NULL;
        buf[o] = '\0';
        return buf;
}

struct stream_ctx {
        struct dm_cli_client *c;
        struct dm_sse_reader *reader;
        struct dm_buf refused; /* the body of an answer other than 200 */
        long status;
        int cb_ret;
};

static size_t on_stream(char *p, size_t size, size_t n, void *arg)
{
        struct stream_ctx *s = arg;
        size_t len = size * n;
        if (s->status == 0)
                curl_easy_getinfo(s->c->curl, CURLINFO_RESPONSE_CODE, &s->status);
        if (s->status != 200)
                return dm_buf_add(&s->refused, p, len) == 0 ? len : 0;
        int r = dm_sse_reader_feed(s->reader, p, len);
        if (r < 0) {
                s->cb_ret = r;
                return 0;
        }
        return len;
}

int dm_cli_stream(struct dm_cli_client *c, const char *path, const char *last_event_id,
                  struct dm_sse_reader *reader, char *err, size_t errlen)
{
        char url[4096], errbuf[CURL_ERROR_SIZE] = "", idh[300];
        struct curl_slist *hdrs = NULL;
        struct stream_ctx s = {.c = c, .reader = reader};
        int ret;

        dm_buf_init(&s.refused, 64 * 1024);
        if (last_event_id && *last_event_id && !strpbrk(last_event_id, "\r\n"))
                snprintf(idh, sizeof(idh), "Last-Event-ID: %s", last_event_id);
        else
                idh[0] = '\0';
        ret = setup(c, path, &hdrs, idh[0] ? idh : NULL, url, sizeof(url));
        if (ret < 0) {
                dm_errorf(ret, err, errlen, "request too long");
                goto out;
        }
        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_stream);
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
        /* No overall timeout; a server that goes silent for longer than its heartbeats is
         * gone: under 1 byte/s for 60 s ends the transfer. */
        curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, 60L);
        curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPALIVE, 1L);
        CURLcode cc = curl_easy_perform(c->curl);
        if (s.cb_ret < 0) {
                ret = s.cb_ret;
                dm_errorf(ret, err, errlen, "the event stream could not be read: %s",
                          dm_strerror(ret));
                goto out;
        }
        if (cc != CURLE_OK && s.status != 0 && s.status != 200)
                cc = CURLE_OK; /* the refusal's body was cut: its status says enough */
        if (cc != CURLE_OK) {
                network_error(cc, errbuf, url, err, errlen);
                ret = DM_EIO;
                goto out;
        }
        if (s.status == 0)
                curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &s.status);
        if (s.status != 200) {
                struct dm_cli_response res = {.status = s.status};
                if (s.refused.len > 0)
                        res.doc = json_loadb(s.refused.data, s.refused.len, 0, NULL);
                dm_cli_problem_line(&res, err, errlen);
                dm_cli_response_done(&res);
                ret = DM_EINVAL;
                goto out;
        }
        ret = 0;
out:
        curl_slist_free_all(hdrs);
        dm_buf_done(&s.refused);
        return ret;
}
