/* One registration check: the order of asking and the I/O (RDAP over libcurl, WHOIS over
 * TCP with deadlines). What the answers mean is decided in record.c, rdap.c and whois.c. */
#include "dm/reglookup.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dm/buf.h"
#include "dm/error.h"
#include "dm/time.h"

#define WHOIS_PORT "43"
#define WHOIS_CACHE_MAX 2048
#define WHOIS_CACHE_TTL_MS (24LL * 3600 * 1000)

static void set_error(struct dm_reg_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(struct dm_reg_result *r, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->error, sizeof(r->error), fmt, ap);
        va_end(ap);
}

/* ---- the TLD -> WHOIS server cache (answers of the root server) ---- */

struct whois_tld {
        char tld[64];
        char server[DM_NAME_MAX + 1]; /* "" : the root knows none */
        int64_t at;
};

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct whois_tld cache[WHOIS_CACHE_MAX];
static size_t ncache;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result;

static void lookup_init_once(void)
{
        init_result = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : DM_ENOMEM;
}

int dm_reg_lookup_init(void)
{
        pthread_once(&init_once, lookup_init_once);
        return init_result;
}

static bool cache_get(const char *tld, int64_t now, char *server, size_t size)
{
        bool found = false;
        pthread_mutex_lock(&cache_mu);
        for (size_t i = 0; i < ncache; i++) {
                if (strcmp(cache[i].tld, tld) == 0 && now - cache[i].at < WHOIS_CACHE_TTL_MS) {
                        snprintf(server, size, "%s", cache[i].server);
                        found = true;
                        break;
                }
        }
        pthread_mutex_unlock(&cache_mu);
        return found;
}

static void cache_put(const char *tld, const char *server, int64_t now)
{
        pthread_mutex_lock(&cache_mu);
        size_t slot = ncache < WHOIS_CACHE_MAX ? ncache++ : 0;
        for (size_t i = 0; i < ncache; i++) {
                if (strcmp(cache[i].tld, tld) == 0 || cache[i].at < cache[slot].at) {
                        slot = i;
                        if (strcmp(cache[i].tld, tld) == 0)
                                break;
                }
        }
        snprintf(cache[slot].tld, sizeof(cache[slot].tld), "%s", tld);
        snprintf(cache[slot].server, sizeof(cache[slot].server), "%s", server);
        cache[slot].at = now;
        pthread_mutex_unlock(&cache_mu);
}

/* ---- text ---- */

char *dm_reg_raw_clean(const char *s, size_t len)
{
        struct dm_buf b;
        size_t i = 0;

        dm_buf_init(&b, len * 3 + 1);
        while (i < len) {
                size_t end = i;
                while (end < len && s[end] != '\n')
                        end++;
                char line[4096];
                /* A line longer than the buffer is cleaned in pieces. */
                size_t n = end - i > 1024 ? 1024 : end - i;
                size_t out = dm_reg_text_clean(line, sizeof(line), s + i, n);
                if (dm_buf_add(&b, line, out) < 0)
                        goto fail;
                i += n;
                if (i == end && end < len) {
                        if (dm_buf_addc(&b, '\n') < 0)
                                goto fail;
                        i++;
                }
        }
        return dm_buf_detach(&b);
fail:
        dm_buf_done(&b);
        return NULL;
}

/* ---- "host[:port]" ---- */

static int split_host(const char *in, const char *default_port, char *host, size_t hsize,
                      char *port, size_t psize)
{
        const char *h = in, *p = NULL;
        size_t hl;

        if (in[0] == '[') {
                const char *close = strchr(in, ']');
                if (!close)
                        return DM_EINVAL;
                h = in + 1;
                hl = (size_t)(close - h);
                if (close[1] == ':')
                        p = close + 2;
                else if (close[1])
                        return DM_EINVAL;
        } else {
                const char *colon = strrchr(in, ':');
                if (colon && strchr(in, ':') == colon) {
                        hl = (size_t)(colon - in);
                        p = colon + 1;
                } else {
                        hl = strlen(in);
                }
        }
        if (hl == 0 || hl >= hsize)
                return DM_EINVAL;
        memcpy(host, h, hl);
        host[hl] = '\0';
        snprintf(port, psize, "%s", p && *p ? p : default_port);
        return 0;
}

/* ---- WHOIS over TCP ---- */

static int64_t left_ms(int64_t deadline)
{
        int64_t l = deadline - dm_mono_ms();
        return l > 0 ? l : 0;
}

#define CANCEL_SLICE_MS 100 /* how soon a cancel (a stopping service) is seen */
#define POLL_CANCELED (-2)

static bool canceled(const atomic_bool *cancel)
{
        return cancel && atomic_load(cancel);
}

/* poll() until the deadline, in slices so that a cancel is seen soon: poll's result, 0 at
 * the deadline, POLL_CANCELED. */
static int poll_until(struct pollfd *pfd, int64_t deadline, const atomic_bool *cancel)
{
        for (;;) {
                if (canceled(cancel))
                        return POLL_CANCELED;
                int64_t left = left_ms(deadline);
                if (left <= 0)
                        return 0;
                int pr = poll(pfd, 1, (int)(left < CANCEL_SLICE_MS ? left : CANCEL_SLICE_MS));
                if (pr != 0)
                        return pr;
        }
}

static int tcp_connect(const char *host, const char *port, int64_t deadline,
                       const atomic_bool *cancel, char *why, size_t whylen)
{
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
        struct addrinfo *res = NULL;
        int gai = getaddrinfo(host, port, &hints, &res);
        if (gai != 0)
                return dm_errorf(DM_EIO, why, whylen, "cannot resolve %s: %s", host,
                                 gai_strerror(gai));
        int fd = -1, ret = DM_EIO;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        continue;
                if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
                        break;
                if (errno == EINPROGRESS) {
                        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                        int pr = poll_until(&pfd, deadline, cancel);
                        int soerr = 0;
                        socklen_t sl = sizeof(soerr);
                        if (pr == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
                            soerr == 0)
                                break;
                        if (pr == POLL_CANCELED) {
                                close(fd);
                                freeaddrinfo(res);
                                return dm_errorf(DM_ECANCELED, why, whylen, "canceled");
                        } else if (pr == 0) {
                                ret = dm_errorf(DM_ETIMEDOUT, why, whylen,
                                                "%s port %s: connect timed out", host, port);
                        } else {
                                ret = dm_errorf(soerr == ECONNREFUSED ? DM_ECONNREFUSED : DM_EIO,
                                                why, whylen, "%s port %s: %s", host, port,
                                                strerror(soerr ? soerr : errno));
                        }
                } else {
                        ret = dm_errorf(DM_EIO, why, whylen, "%s port %s: %s", host, port,
                                        strerror(errno));
                }
                close(fd);
                fd = -1;
        }
        freeaddrinfo(res);
        return fd >= 0 ? fd : ret;
}

/* Sends "query\r\n" and reads the answer to EOF, at most DM_REG_RAW_MAX bytes. */
static int whois_query(const char *host, const char *port, const char *query, int64_t timeout_ms,
                       const atomic_bool *cancel, char **ret_text, size_t *ret_len, char *why,
                       size_t whylen)
{
        int64_t deadline = dm_mono_ms() + timeout_ms;
        struct dm_buf b;
        char line[DM_NAME_MAX + 4];
        int ret;

        int fd = tcp_connect(host, port, deadline, cancel, why, whylen);
        if (fd < 0)
                return fd;
        int n = snprintf(line, sizeof(line), "%s\r\n", query);
        size_t sent = 0;
        while (sent < (size_t)n) {
                ssize_t w = send(fd, line + sent, (size_t)n - sent, MSG_NOSIGNAL);
                if (w > 0) {
                        sent += (size_t)w;
                        continue;
                }
                if (w < 0 && errno != EAGAIN && errno != EINTR) {
                        close(fd);
                        return dm_errorf(DM_EIO, why, whylen, "%s: send: %s", host,
                                         strerror(errno));
                }
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                int pr = poll_until(&pfd, deadline, cancel);
                if (pr <= 0) {
                        close(fd);
                        if (pr == POLL_CANCELED)
                                return dm_errorf(DM_ECANCELED, why, whylen, "canceled");
                        return dm_errorf(DM_ETIMEDOUT, why, whylen, "%s: send timed out", host);
                }
        }
        dm_buf_init(&b, DM_REG_RAW_MAX);
        for (;;) {
                char chunk[4096];
                ssize_t r = recv(fd, chunk, sizeof(chunk), 0);
                if (r > 0) {
                        if (dm_buf_add(&b, chunk, (size_t)r) < 0) {
                                ret = dm_errorf(DM_E2BIG, why, whylen,
                                                "%s: answer longer than %d bytes", host,
                                                DM_REG_RAW_MAX);
                                goto fail;
                        }
                        continue;
                }
                if (r == 0)
                        break;
                if (errno != EAGAIN && errno != EINTR) {
                        ret = dm_errorf(DM_EIO, why, whylen, "%s: %s", host, strerror(errno));
                        goto fail;
                }
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                int pr = poll_until(&pfd, deadline, cancel);
                if (pr == POLL_CANCELED) {
                        ret = dm_errorf(DM_ECANCELED, why, whylen, "canceled");
                        goto fail;
                }
                if (pr <= 0) {
                        ret = dm_errorf(DM_ETIMEDOUT, why, whylen,
                                        "%s port %s: no answer within %lld ms", host, port,
                                        (long long)timeout_ms);
                        goto fail;
                }
        }
        close(fd);
        if (b.len == 0) {
                dm_buf_done(&b);
                return dm_errorf(DM_EIO, why, whylen, "%s port %s: empty answer", host, port);
        }
        *ret_len = b.len;
        *ret_text = dm_buf_detach(&b);
        return *ret_text ? 0 : DM_ENOMEM;
fail:
        close(fd);
        dm_buf_done(&b);
        return ret;
}

/* ---- rate limit ---- */

/* 0 when a request to `server` may go (after a short sleep if need be), DM_EAGAIN when the
 * wait is longer than the lookup may sleep. */
static int limiter_wait(const struct dm_reg_lookup_conf *conf, const char *server,
                        struct dm_reg_result *ret)
{
        if (!conf->limiter)
                return 0;
        for (;;) {
                int64_t now = dm_now_ms();
                int64_t wait = dm_reg_limiter_take(conf->limiter, server, now);
                if (wait == 0)
                        return 0;
                if (wait > conf->max_wait_ms) {
                        ret->retry_at = now + wait;
                        return DM_EAGAIN;
                }
                /* Sleep in slices: a stopping service must not wait out the limit. */
                int64_t until = dm_mono_ms() + wait;
                while (dm_mono_ms() < until) {
                        if (canceled(conf->cancel))
                                return DM_ECANCELED;
                        struct timespec ts = {.tv_nsec = CANCEL_SLICE_MS * 1000000L};
                        nanosleep(&ts, NULL);
                }
        }
}

static void limiter_report(const struct dm_reg_lookup_conf *conf, const char *server, bool ok,
                           int64_t retry_after_ms)
{
        if (conf->limiter)
                dm_reg_limiter_report(conf->limiter, server, dm_now_ms(), ok, retry_after_ms);
}

static int whois_ask(const struct dm_reg_lookup_conf *conf, const char *host, const char *port,
                     const char *query, char **text, size_t *len, struct dm_reg_result *ret)
{
        int r = limiter_wait(conf, host, ret);
        if (r < 0)
                return r;
        r = whois_query(host, port, query, conf->timeout_ms, conf->cancel, text, len, ret->error,
                        sizeof(ret->error));
        if (r == DM_ECANCELED)
                return r;
        limiter_report(conf, host, r == 0, 0);
        return r;
}

/* The TLD's WHOIS server from the root server's "refer:" (cached a day). "" when it
 * names none. */
static int whois_server_for(const struct dm_reg_lookup_conf *conf, const char *tld, char *server,
                            size_t size, struct dm_reg_result *ret)
{
        char host[DM_NAME_MAX + 1], port[16];
        int64_t now = dm_now_ms();
        char *text = NULL;
        size_t len = 0;
        struct dm_whois_result w;

        if (cache_get(tld, now, server, size))
                return 0;
        if (split_host(conf->whois_root, WHOIS_PORT, host, sizeof(host), port, sizeof(port)) < 0)
                return dm_errorf(DM_EINVAL, ret->error, sizeof(ret->error),
                                 "bad WHOIS root server");
        int r = whois_ask(conf, host, port, tld, &text, &len, ret);
        if (r < 0)
                return r;
        dm_whois_parse(text, len, &w);
        free(text);
        snprintf(server, size, "%s", w.referral);
        cache_put(tld, server, now);
        return 0;
}

static int lookup_whois(const struct dm_reg_lookup_conf *conf, const char *tld,
                        struct dm_reg_result *ret)
{
        char host[DM_NAME_MAX + 1], port[16], server[DM_NAME_MAX + 1];
        char *text = NULL, *text2 = NULL;
        size_t len = 0, len2 = 0;
        struct dm_whois_result w, w2;
        int r;

        if (conf->whois_server) {
                if (split_host(conf->whois_server, WHOIS_PORT, host, sizeof(host), port,
                               sizeof(port)) < 0)
                        return dm_errorf(DM_EINVAL, ret->error, sizeof(ret->error),
                                         "bad DM_WHOIS_SERVER");
        } else {
                r = whois_server_for(conf, tld, server, sizeof(server), ret);
                if (r == DM_EAGAIN || r == DM_ECANCELED)
                        return r;
                if (r < 0) {
                        ret->status = DM_REG_ERROR;
                        return 0;
                }
                if (!server[0]) {
                        ret->status = DM_REG_UNSUPPORTED;
                        set_error(ret, "no RDAP service and no WHOIS server for .%s", tld);
                        return 0;
                }
                snprintf(host, sizeof(host), "%s", server);
                snprintf(port, sizeof(port), "%s", WHOIS_PORT);
        }
        ret->source = DM_REG_SRC_WHOIS;
        r = whois_ask(conf, host, port, ret->registrable, &text, &len, ret);
        if (r == DM_EAGAIN || r == DM_ENOMEM || r == DM_ECANCELED)
                return r;
        if (r < 0) {
                ret->status = DM_REG_ERROR;
                return 0;
        }
        dm_whois_parse(text, len, &w);
        if (!w.has_data) {
                free(text);
                ret->status = DM_REG_ERROR;
                set_error(ret, "%s: %s", host,
                          w.not_found ? "the domain is not registered (no match)"
                                      : "the answer holds no registration data");
                return 0;
        }
        /* The registrar's server, on the same port as the first (a test pair, or a relay,
         * serves both on one port). Its failure keeps the registry's data. */
        if (w.referral[0] && strcasecmp(w.referral, host) != 0) {
                char err2[256];
                snprintf(err2, sizeof(err2), "%s", ret->error);
                r = whois_ask(conf, w.referral, port, ret->registrable, &text2, &len2, ret);
                if (r == DM_ECANCELED) {
                        free(text);
                        return r;
                }
                if (r == 0) {
                        dm_whois_parse(text2, len2, &w2);
                        dm_reg_record_merge(&w.record, &w2.record);
                        dm_reg_record_normalize(&w.record);
                }
                set_error(ret, "%s", err2);
        }
        size_t total = len + (text2 ? len2 + 2 : 0);
        char *joined = malloc(total + 1);
        if (!joined) {
                free(text);
                free(text2);
                return DM_ENOMEM;
        }
        memcpy(joined, text, len);
        if (text2) {
                memcpy(joined + len, "\n\n", 2);
                memcpy(joined + len + 2, text2, len2);
        }
        joined[total] = '\0';
        free(text);
        free(text2);
        ret->raw = dm_reg_raw_clean(joined, total);
        free(joined);
        if (!ret->raw)
                return DM_ENOMEM;
        ret->record = w.record;
        ret->status = DM_REG_OK;
        ret->error[0] = '\0';
        return 0;
}

/* ---- RDAP over HTTP(S) ---- */

struct http_body {
        struct dm_buf b;
        bool too_big;
};

static size_t http_write(char *p, size_t size, size_t n, void *arg)
{
        struct http_body *body = arg;
        if (dm_buf_add(&body->b, p, size * n) < 0) {
                body->too_big = true;
                return 0;
        }
        return size * n;
}

/* http:// only to a loopback host: anything else must be https. */
static bool url_allowed(const char *url, char *host, size_t size)
{
        const char *h;
        if (strncasecmp(url, "https://", 8) == 0)
                h = url + 8;
        else if (strncasecmp(url, "http://", 7) == 0)
                h = url + 7;
        else
                return false;
        size_t hl = h[0] == '[' ? strcspn(h, "]") + 1 : strcspn(h, ":/?#");
        if (hl == 0 || hl >= size)
                return false;
        memcpy(host, h, hl);
        host[hl] = '\0';
        if (h == url + 8)
                return true;
        return strncmp(host, "127.", 4) == 0 || strcmp(host, "localhost") == 0 ||
               strcmp(host, "[::1]") == 0;
}

static int http_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                         curl_off_t ulnow)
{
        (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
        return canceled(arg) ? 1 : 0;
}

static int http_get(const char *url, int64_t timeout_ms, const atomic_bool *cancel, long *ret_code,
                    int64_t *ret_retry_ms, struct http_body *body, char *why, size_t whylen)
{
        CURL *c = curl_easy_init();
        struct curl_slist *hdr = NULL;
        char errbuf[CURL_ERROR_SIZE] = "";
        int ret = 0;

        if (!c)
                return DM_ENOMEM;
        hdr = curl_slist_append(hdr, "Accept: application/rdap+json, application/json");
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "domainmon/" DM_VERSION);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        if (cancel) {
                curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
                curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, http_progress);
                curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)cancel);
        }
        CURLcode cr = curl_easy_perform(c);
        if (cr != CURLE_OK) {
                if (cr == CURLE_ABORTED_BY_CALLBACK)
                        ret = dm_errorf(DM_ECANCELED, why, whylen, "canceled");
                else if (body->too_big)
                        ret = dm_errorf(DM_E2BIG, why, whylen, "answer longer than %zu bytes",
                                        body->b.max);
                else
                        ret = dm_errorf(cr == CURLE_OPERATION_TIMEDOUT ? DM_ETIMEDOUT : DM_EIO, why,
                                        whylen, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cr));
        } else {
                curl_off_t retry = 0;
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, ret_code);
                if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &retry) == CURLE_OK && retry > 0)
                        *ret_retry_ms = (int64_t)retry * 1000;
        }
        curl_slist_free_all(hdr);
        curl_easy_cleanup(c);
        return ret;
}

static int lookup_rdap(const struct dm_reg_lookup_conf *conf, const char *base,
                       struct dm_reg_result *ret)
{
        char url[1024], host[DM_NAME_MAX + 8];
        struct http_body body;
        long code = 0;
        int64_t retry_ms = 0;

        ret->source = DM_REG_SRC_RDAP;
        snprintf(url, sizeof(url), "%sdomain/%s", base, ret->registrable);
        if (!url_allowed(url, host, sizeof(host))) {
                ret->status = DM_REG_ERROR;
                set_error(ret, "RDAP server %s refused: plain http is allowed to loopback only",
                          base);
                return 0;
        }
        int r = limiter_wait(conf, host, ret);
        if (r < 0)
                return r;
        dm_buf_init(&body.b, DM_REG_RDAP_MAX);
        body.too_big = false;
        char why[200];
        r = http_get(url, conf->timeout_ms, conf->cancel, &code, &retry_ms, &body, why,
                     sizeof(why));
        if (r == DM_ENOMEM || r == DM_ECANCELED) {
                dm_buf_done(&body.b);
                return r;
        }
        bool server_ok = r == 0 && code != 429 && code < 500;
        limiter_report(conf, host, server_ok, retry_ms);
        ret->status = DM_REG_ERROR;
        if (r < 0) {
                set_error(ret, "RDAP %s: %s", host, why);
        } else if (code == 404) {
                set_error(ret, "RDAP %s: the domain is not registered (HTTP 404)", host);
        } else if (code == 429) {
                set_error(ret, "RDAP %s: rate limited (HTTP 429), backing off", host);
        } else if (code != 200) {
                set_error(ret, "RDAP %s: HTTP %ld", host, code);
        } else {
                char err[200];
                struct dm_reg_record rec;
                const char *data = body.b.data ? body.b.data : "";
                r = dm_rdap_parse(data, body.b.len, &rec, err, sizeof(err));
                if (r == 0) {
                        ret->record = rec;
                        ret->status = DM_REG_OK;
                } else {
                        set_error(ret, "RDAP %s: %s", host, err);
                }
        }
        dm_buf_done(&body.b);
        return 0;
}

int dm_reg_lookup(const struct dm_reg_lookup_conf *conf, const char *name,
                  struct dm_reg_result *ret)
{
        memset(ret, 0, sizeof(*ret));
        dm_reg_record_init(&ret->record);
        ret->status = DM_REG_ERROR;
        int r = dm_reg_lookup_init();
        if (r < 0)
                return r;
        if (dm_reg_registrable(name, ret->registrable, sizeof(ret->registrable)) < 0) {
                set_error(ret, "%s is a public suffix: nothing to look up", name);
                ret->status = DM_REG_UNSUPPORTED;
                return 0;
        }
        const char *base = dm_rdap_bootstrap_lookup(conf->bootstrap, ret->registrable);
        if (base)
                return lookup_rdap(conf, base, ret);
        return lookup_whois(conf, dm_reg_tld(ret->registrable), ret);
}

void dm_reg_result_done(struct dm_reg_result *r)
{
        if (!r)
                return;
        free(r->raw);
        r->raw = NULL;
}

/* ---- bootstrap file from a path or a URL ---- */

int dm_rdap_bootstrap_fetch(const char *src, int64_t timeout_ms, char **ret, size_t *ret_len,
                            char *err, size_t errlen)
{
        struct http_body body;
        char *data;
        size_t len;
        int r;

        dm_buf_init(&body.b, DM_REG_RDAP_MAX * 4);
        body.too_big = false;
        if (strncasecmp(src, "http://", 7) == 0 || strncasecmp(src, "https://", 8) == 0) {
                long code = 0;
                int64_t retry = 0;
                r = dm_reg_lookup_init();
                if (r == 0)
                        r = http_get(src, timeout_ms, NULL, &code, &retry, &body, err, errlen);
                if (r == 0 && code != 200)
                        r = dm_errorf(DM_EIO, err, errlen, "HTTP %ld", code);
        } else {
                FILE *f = fopen(src, "rb");
                if (!f) {
                        r = dm_errorf(DM_EIO, err, errlen, "%s", strerror(errno));
                } else {
                        char chunk[8192];
                        size_t n;
                        r = 0;
                        while (r == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
                                if (dm_buf_add(&body.b, chunk, n) < 0)
                                        r = dm_errorf(DM_E2BIG, err, errlen, "too large");
                        if (r == 0 && ferror(f))
                                r = dm_errorf(DM_EIO, err, errlen, "read error");
                        fclose(f);
                }
        }
        if (r < 0) {
                dm_buf_done(&body.b);
                return r;
        }
        len = body.b.len;
        data = dm_buf_detach(&body.b);
        if (!data)
                return DM_ENOMEM;
        struct dm_rdap_bootstrap *bs = NULL;
        r = dm_rdap_bootstrap_parse(data, len, err, errlen, &bs);
        dm_rdap_bootstrap_free(bs);
        if (r < 0) {
                free(data);
                return r;
        }
        *ret = data;
        *ret_len = len;
        return 0;
}
