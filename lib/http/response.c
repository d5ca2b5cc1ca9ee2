/* Building responses: JSON bodies, RFC 9457 problem documents, extra headers. A response
 * that cannot be built (out of memory) degrades to a static 500, never to nothing. */
#include "dm/http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "dm/error.h"
#include "dm/secret.h"
#include "dm/json.h"
#include "http/internal.h"

#define PROBLEM_DETAIL_MAX 512

const struct dm_http_problem_type dm_problem_invalid_json = {"invalid-json", "Malformed JSON"};
const struct dm_http_problem_type dm_problem_invalid_body = {"invalid-body",
                                                             "Invalid request body"};
const struct dm_http_problem_type dm_problem_invalid_parameter = {"invalid-parameter",
                                                                  "Invalid parameter"};
const struct dm_http_problem_type dm_problem_unauthorized = {"unauthorized",
                                                             "Missing or invalid API key"};
const struct dm_http_problem_type dm_problem_forbidden = {"forbidden", "Insufficient scope"};
const struct dm_http_problem_type dm_problem_not_found = {"not-found", "Resource not found"};
const struct dm_http_problem_type dm_problem_body_too_large = {"body-too-large",
                                                               "Request body too large"};
const struct dm_http_problem_type dm_problem_uri_too_long = {"uri-too-long",
                                                             "Request path too long"};
const struct dm_http_problem_type dm_problem_unsupported_media = {"unsupported-media-type",
                                                                  "Unsupported media type"};
const struct dm_http_problem_type dm_problem_unavailable = {"unavailable", "Service unavailable"};

static const char fallback_500[] =
    "{\"type\":\"about:blank\",\"title\":\"Internal Server Error\",\"status\":500}";

const char *dm_http_reason(unsigned status)
{
        switch (status) {
        case 200:
                return "OK";
        case 201:
                return "Created";
        case 202:
                return "Accepted";
        case 204:
                return "No Content";
        case 304:
                return "Not Modified";
        case 400:
                return "Bad Request";
        case 401:
                return "Unauthorized";
        case 403:
                return "Forbidden";
        case 404:
                return "Not Found";
        case 405:
                return "Method Not Allowed";
        case 406:
                return "Not Acceptable";
        case 409:
                return "Conflict";
        case 410:
                return "Gone";
        case 412:
                return "Precondition Failed";
        case 413:
                return "Content Too Large";
        case 414:
                return "URI Too Long";
        case 415:
                return "Unsupported Media Type";
        case 422:
                return "Unprocessable Content";
        case 429:
                return "Too Many Requests";
        case 500:
                return "Internal Server Error";
        case 501:
                return "Not Implemented";
        case 502:
                return "Bad Gateway";
        case 503:
                return "Service Unavailable";
        case 504:
                return "Gateway Timeout";
        }
        return "Unknown";
}

void dm_http_response_done(struct dm_http_response *res)
{
        if (!res)
                return;
        free(res->body);
        for (size_t i = 0; i < res->nheaders; i++) {
                free(res->headers[i].name);
                free(res->headers[i].value);
        }
        if (res->mhd)
                MHD_destroy_response(res->mhd);
        *res = (struct dm_http_response){0};
}

int dm_http_response_header(struct dm_http_response *res, const char *name, const char *value)
{
        if (res->nheaders == DM_HTTP_MAX_HEADERS)
                return DM_E2BIG;
        char *n = strdup(name), *v = strdup(value);
        if (!n || !v) {
                free(n);
                free(v);
                return DM_ENOMEM;
        }
        res->headers[res->nheaders++] = (struct dm_http_header){n, v};
        return 0;
}

static void set_fallback_500(struct dm_http_response *res)
{
        free(res->body);
        res->body = NULL;
        res->body_len = 0;
        res->status = 500;
        res->content_type = "application/problem+json";
        /* Static text: the one response that needs no memory. body stays NULL and the
         * server sends fallback_500 for it. */
}

const char *dm_http_fallback_body(size_t *ret_len)
{
        *ret_len = sizeof(fallback_500) - 1;
        return fallback_500;
}

int dm_http_respond(struct dm_http_response *res, unsigned status, const char *content_type,
                    const void *body, size_t len)
{
        char *copy = malloc(len + 1);
        if (!copy) {
                set_fallback_500(res);
                return DM_ENOMEM;
        }
        if (len)
                memcpy(copy, body, len);
        copy[len] = '\0';
        free(res->body);
        res->body = copy;
        res->body_len = len;
        res->status = status;
        res->content_type = content_type;
        return 0;
}

void dm_http_respond_empty(struct dm_http_response *res, unsigned status)
{
        free(res->body);
        res->body = NULL;
        res->body_len = 0;
        res->content_type = NULL;
        res->status = status;
}

static int respond_doc(struct dm_http_response *res, unsigned status, const char *content_type,
                       json_t *doc)
{
        size_t len;

        if (!doc) {
                set_fallback_500(res);
                return DM_ENOMEM;
        }
        char *text = dm_json_dump(doc, &len);
        json_decref(doc);
        if (!text) {
                set_fallback_500(res);
                return DM_ENOMEM;
        }
        free(res->body);
        res->body = text;
        res->body_len = len;
        res->status = status;
        res->content_type = content_type;
        return 0;
}

int dm_http_respond_json(struct dm_http_response *res, unsigned status, json_t *doc)
{
        return respond_doc(res, status, "application/json", doc);
}

json_t *dm_http_problem_new(unsigned status, const struct dm_http_problem_type *type,
                            const char *detail)
{
        char type_uri[160];
        json_t *p = json_object();

        if (!p)
                return NULL;
        if (type)
                snprintf(type_uri, sizeof(type_uri), "%s%s", DM_HTTP_PROBLEM_BASE, type->slug);
        else
                snprintf(type_uri, sizeof(type_uri), "about:blank");
        if (json_object_set_new(p, "type", json_string(type_uri)) < 0 ||
            json_object_set_new(p, "title",
                                json_string(type ? type->title : dm_http_reason(status))) < 0 ||
            json_object_set_new(p, "status", json_integer(status)) < 0)
                goto fail;
        if (detail) {
                char clean[PROBLEM_DETAIL_MAX], masked[PROBLEM_DETAIL_MAX];
                /* A detail may quote a library's error text, which may quote a URL. */
                dm_secret_mask(detail, masked, sizeof(masked));
                dm_json_safe_text(clean, sizeof(clean), masked, strlen(masked));
                if (json_object_set_new(p, "detail", json_string(clean)) < 0)
                        goto fail;
        }
        return p;
fail:
        json_decref(p);
        return NULL;
}

int dm_http_problem_add_error(json_t *problem, const char *field, const char *detail)
{
        char f[128], d[PROBLEM_DETAIL_MAX];
        json_t *errors = json_object_get(problem, "errors");

        if (!errors) {
                errors = json_array();
                if (!errors || json_object_set_new(problem, "errors", errors) < 0)
                        return DM_ENOMEM;
        }
        dm_json_safe_text(f, sizeof(f), field, strlen(field));
        dm_json_safe_text(d, sizeof(d), detail, strlen(detail));
        json_t *e = json_pack("{s:s, s:s}", "field", f, "detail", d);
        if (!e || json_array_append_new(errors, e) < 0)
                return DM_ENOMEM;
        return 0;
}

int dm_http_respond_problem_json(struct dm_http_response *res, json_t *problem)
{
        json_int_t status = problem ? json_integer_value(json_object_get(problem, "status")) : 0;
        if (status < 100 || status > 599)
                status = 500;
        return respond_doc(res, (unsigned)status, "application/problem+json", problem);
}

int dm_http_problem(struct dm_http_response *res, unsigned status,
                    const struct dm_http_problem_type *type, const char *fmt, ...)
{
        char detail[PROBLEM_DETAIL_MAX];

        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(detail, sizeof(detail), fmt, ap);
                va_end(ap);
        }
        return dm_http_respond_problem_json(res,
                                            dm_http_problem_new(status, type, fmt ? detail : NULL));
}

int dm_http_problem_field(struct dm_http_response *res, unsigned status,
                          const struct dm_http_problem_type *type, const char *field,
                          const char *message)
{
        char detail[PROBLEM_DETAIL_MAX];

        snprintf(detail, sizeof(detail), "%s: %s", field, message);
        json_t *p = dm_http_problem_new(status, type, detail);
        if (p && dm_http_problem_add_error(p, field, message) < 0) {
                json_decref(p);
                p = NULL;
        }
        return dm_http_respond_problem_json(res, p);
}
