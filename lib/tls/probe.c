/* The TLS probe: a non-blocking TCP connect and TLS handshake, stepped by its owner's event
 * loop, with one deadline for both. The chain is verified but never trusted for the
 * handshake (SSL_VERIFY_NONE): an expired or wrong-name certificate is still read and
 * summarised, and the verification's outcome is reported beside it. */
#include "dm/tls.h"

#include "dm/error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum probe_state { PROBE_CONNECTING, PROBE_HANDSHAKE, PROBE_DONE };

struct dm_tls_probe {
        SSL_CTX *ctx;
        SSL *ssl;
        int fd;
        enum probe_state state;
        short events;
        int64_t deadline;
        char name[DM_NAME_MAX + 1];
        struct dm_tls_result result;
};

SSL_CTX *dm_tls_ctx_new(const char *ca_file, char *err, size_t errlen)
{
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx) {
                dm_errorf(DM_ENOMEM, err, errlen, "cannot make a TLS context");
                return NULL;
        }
        /* Monitoring reads what servers serve, old protocols and weak keys included. */
        SSL_CTX_set_security_level(ctx, 0);
        SSL_CTX_set_min_proto_version(ctx, 0);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                         : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
                char why[160];
                ERR_error_string_n(ERR_get_error(), why, sizeof(why));
                ERR_clear_error();
                dm_errorf(DM_ECONFIG, err, errlen, "cannot load the trust store %s: %s",
                          ca_file ? ca_file : "(system)", why);
                SSL_CTX_free(ctx);
                return NULL;
        }
        return ctx;
}

void dm_tls_ctx_free(SSL_CTX *ctx)
{
        SSL_CTX_free(ctx);
}

void dm_tls_result_done(struct dm_tls_result *r)
{
        if (!r)
                return;
        dm_tls_cert_done(&r->cert);
        r->has_cert = false;
}

__attribute__((format(printf, 2, 3))) static int probe_fail(struct dm_tls_probe *p, const char *fmt,
                                                            ...)
{
        va_list ap;
        va_start(ap, fmt);
        p->result.status = DM_TLS_ERROR;
        vsnprintf(p->result.error, sizeof(p->result.error), fmt, ap);
        va_end(ap);
        p->state = PROBE_DONE;
        p->events = 0;
        ERR_clear_error();
        return 0;
}

int dm_tls_probe_start(SSL_CTX *ctx, const char *name, const char *address, uint16_t port,
                       int64_t deadline, struct dm_tls_probe **ret_probe)
{
        struct sockaddr_storage ss;
        socklen_t sslen;
        memset(&ss, 0, sizeof(ss));
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, address, &sin->sin_addr) == 1) {
                sin->sin_family = AF_INET;
                sin->sin_port = htons(port);
                sslen = sizeof(*sin);
        } else if (inet_pton(AF_INET6, address, &sin6->sin6_addr) == 1) {
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons(port);
                sslen = sizeof(*sin6);
        } else {
                return DM_EINVAL;
        }
        if (strlen(name) > DM_NAME_MAX)
                return DM_EINVAL;

        struct dm_tls_probe *p = calloc(1, sizeof(*p));
        if (!p)
                return DM_ENOMEM;
        p->ctx = ctx;
        p->fd = -1;
        p->deadline = deadline;
        memcpy(p->name, name, strlen(name) + 1);
        p->result.port = port;
        snprintf(p->result.address, sizeof(p->result.address), "%s", address);

        p->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->fd < 0) {
                probe_fail(p, "cannot open a socket: %s", strerror(errno));
        } else if (connect(p->fd, (struct sockaddr *)&ss, sslen) == 0 || errno == EINPROGRESS) {
                p->state = PROBE_CONNECTING;
                p->events = POLLOUT;
        } else {
                probe_fail(p, "connect: %s", strerror(errno));
        }
        *ret_probe = p;
        return 0;
}

int dm_tls_probe_fd(const struct dm_tls_probe *p)
{
        return p->fd;
}

short dm_tls_probe_events(const struct dm_tls_probe *p)
{
        return p->events;
}

int64_t dm_tls_probe_deadline(const struct dm_tls_probe *p)
{
        return p->deadline;
}

/* The handshake is over: what the server showed. */
static void probe_read_peer(struct dm_tls_probe *p)
{
        struct dm_tls_result *r = &p->result;
        X509 *leaf = SSL_get0_peer_certificate(p->ssl);
        snprintf(r->protocol, sizeof(r->protocol), "%s", SSL_get_version(p->ssl));
        if (!leaf) {
                probe_fail(p, "%s", "the server sent no certificate");
                return;
        }
        int sr = dm_tls_cert_summarize(leaf, &r->cert);
        if (sr < 0) {
                probe_fail(p, "unreadable certificate: %s", dm_strerror(sr));
                return;
        }
        r->has_cert = true;
        long v = SSL_get_verify_result(p->ssl);
        r->chain_valid = v == X509_V_OK;
        if (!r->chain_valid)
                snprintf(r->chain_error, sizeof(r->chain_error), "%s",
                         X509_verify_cert_error_string(v));
        r->status = DM_TLS_OK;
        p->state = PROBE_DONE;
        p->events = 0;
}

static int probe_handshake(struct dm_tls_probe *p)
{
        ERR_clear_error();
        int rc = SSL_do_handshake(p->ssl);
        if (rc == 1) {
                probe_read_peer(p);
                return 0;
        }
        int e = SSL_get_error(p->ssl, rc);
        if (e == SSL_ERROR_WANT_READ) {
                p->events = POLLIN;
                return DM_EAGAIN;
        }
        if (e == SSL_ERROR_WANT_WRITE) {
                p->events = POLLOUT;
                return DM_EAGAIN;
        }
        unsigned long code = ERR_peek_last_error();
        if (code) {
                char why[200];
                ERR_error_string_n(code, why, sizeof(why));
                return probe_fail(p, "handshake failed: %s", why);
        }
        if (e == SSL_ERROR_SYSCALL && errno)
                return probe_fail(p, "handshake failed: %s", strerror(errno));
        return probe_fail(p, "handshake failed: %s", "the server closed the connection");
}

int dm_tls_probe_step(struct dm_tls_probe *p, int64_t now)
{
        if (p->state == PROBE_DONE)
                return 0;
        if (now >= p->deadline)
                return probe_fail(p, p->state == PROBE_CONNECTING
                                         ? "connect timed out"
                                         : "handshake timed out: the server did not answer");
        if (p->state == PROBE_CONNECTING) {
                struct pollfd pfd = {.fd = p->fd, .events = POLLOUT};
                if (poll(&pfd, 1, 0) <= 0)
                        return DM_EAGAIN;
                int soerr = 0;
                socklen_t len = sizeof(soerr);
                if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
                        soerr = errno;
                if (soerr)
                        return probe_fail(p, "connect: %s", strerror(soerr));
                p->ssl = SSL_new(p->ctx);
                if (!p->ssl || SSL_set_fd(p->ssl, p->fd) != 1 ||
                    SSL_set_tlsext_host_name(p->ssl, p->name) != 1 ||
                    SSL_set1_host(p->ssl, p->name) != 1)
                        return probe_fail(p, "%s", "cannot start TLS: out of memory");
                SSL_set_connect_state(p->ssl);
                p->state = PROBE_HANDSHAKE;
        }
        return probe_handshake(p);
}

void dm_tls_probe_take(struct dm_tls_probe *p, struct dm_tls_result *ret_result)
{
        *ret_result = p->result;
        memset(&p->result, 0, sizeof(p->result));
}

void dm_tls_probe_free(struct dm_tls_probe *p)
{
        if (!p)
                return;
        SSL_free(p->ssl);
        if (p->fd >= 0)
                close(p->fd);
        dm_tls_result_done(&p->result);
        free(p);
}
