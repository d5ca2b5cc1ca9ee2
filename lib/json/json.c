/* Strict JSON reading for request bodies: clients get told exactly which field is wrong,
 * and nothing unexpected slips through as silently ignored. */
#include "dm/json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm/error.h"
#include "dm/time.h"

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 when it is not valid.
 * Rejects overlong forms, surrogates and code points above U+10FFFF. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
        unsigned char c = s[0];
        size_t len;
        uint32_t cp;

        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf) {
                len = 2;
                cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                cp = c & 0x07;
        } else {
                return 0;
        }
        if (len > n)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                return 0;
        if (cp >= 0xd800 && cp <= 0xdfff)
                return 0;
        return len;
}

const char *dm_json_safe_text(char *buf, size_t size, const char *s, size_t len)
{
        const unsigned char *p = (const unsigned char *)s;
        size_t o = 0;

        if (size == 0)
                return buf;
        for (size_t i = 0; i < len;) {
                size_t n = utf8_seq_len(p + i, len - i);
                if (n == 0 || (n == 1 && (p[i] < 0x20 || p[i] == 0x7f))) {
                        if (o + 1 >= size)
                                break;
                        buf[o++] = '?';
                        i += n ? n : 1;
                        continue;
                }
                if (o + n >= size)
                        break;
                memcpy(buf + o, p + i, n);
                o += n;
                i += n;
        }
        buf[o] = '\0';
        return buf;
}

json_t *dm_json_string_lossy(const char *s)
{
        json_t *j = json_string(s ? s : "");
        if (j || !s)
                return j; /* no s: json_string("") failed only for want of memory */
        /* Invalid UTF-8: keep what can be shown rather than fail the whole response. */
        size_t len = strlen(s);
        char *clean = malloc(len + 1);
        if (!clean)
                return NULL;
        dm_json_safe_text(clean, len + 1, s, len);
        j = json_string(clean);
        free(clean);
        return j;
}

static void set_error(struct dm_json_error *err, const char *field, size_t field_len,
                      const char *detail)
{
        if (!err)
                return;
        dm_json_safe_text(err->field, sizeof(err->field), field ? field : "",
                          field ? field_len : 0);
        dm_json_safe_text(err->detail, sizeof(err->detail), detail, strlen(detail));
}

int dm_json_parse_object(const char *data, size_t len, struct dm_json_error *err, json_t **ret_obj)
{
        json_error_t jerr;
        char msg[256];

        /* DECODE_ANY so that a scalar body is reported as "not an object" rather than as a
         * syntax error. */
        json_t *doc = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!doc) {
                if (json_error_code(&jerr) == json_error_out_of_memory)
                        return DM_ENOMEM;
                if (len == 0)
                        snprintf(msg, sizeof(msg),
                                 "request body is empty; a JSON object is "
                                 "expected");
                else
                        snprintf(msg, sizeof(msg), "malformed JSON at line %d, column %d: %s",
                                 jerr.line, jerr.column, jerr.text);
                set_error(err, NULL, 0, msg);
                return DM_EPARSE;
        }
        if (!json_is_object(doc)) {
                snprintf(msg, sizeof(msg), "request body must be a JSON object, not %s %s",
                         json_is_array(doc) || json_is_integer(doc) ? "an" : "a",
                         dm_json_value_type_name(doc));
                set_error(err, NULL, 0, msg);
                json_decref(doc);
                return DM_EINVAL;
        }
        *ret_obj = doc;
        return 0;
}

const char *dm_json_type_name(enum dm_json_type t)
{
        switch (t) {
        case DM_JSON_STRING:
                return "string";
        case DM_JSON_INTEGER:
                return "integer";
        case DM_JSON_NUMBER:
                return "number";
        case DM_JSON_BOOL:
                return "boolean";
        case DM_JSON_ARRAY:
                return "array";
        case DM_JSON_OBJECT:
                return "object";
        case DM_JSON_DURATION:
                return "duration (seconds, or a string such as \"5m\")";
        }
        return "value";
}

const char *dm_json_value_type_name(const json_t *v)
{
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                return "object";
        case JSON_ARRAY:
                return "array";
        case JSON_STRING:
                return "string";
        case JSON_INTEGER:
                return "integer";
        case JSON_REAL:
                return "number";
        case JSON_TRUE:
        case JSON_FALSE:
                return "boolean";
        case JSON_NULL:
                return "null";
        }
        return "value";
}

static bool type_ok(const json_t *v, enum dm_json_type t)
{
        switch (t) {
        case DM_JSON_STRING:
                return json_is_string(v);
        case DM_JSON_INTEGER:
                return json_is_integer(v);
        case DM_JSON_NUMBER:
                return json_is_number(v);
        case DM_JSON_BOOL:
                return json_is_boolean(v);
        case DM_JSON_ARRAY:
                return json_is_array(v);
        case DM_JSON_OBJECT:
                return json_is_object(v);
        case DM_JSON_DURATION:
                return json_is_integer(v) || json_is_string(v);
        }
        return false;
}

static const char *article(enum dm_json_type t)
{
        return t == DM_JSON_INTEGER || t == DM_JSON_ARRAY || t == DM_JSON_OBJECT ? "an" : "a";
}

int dm_json_check_fields(const json_t *obj, const struct dm_json_field *fields,
                         struct dm_json_error *err)
{
        const char *key;
        json_t *value;
        char msg[160];

        /* Unknown members first, in document order, so the first mistake is the one told. */
        json_object_foreach((json_t *)obj, key, value)
        {
                const struct dm_json_field *f = fields;
                while (f->name && strcmp(f->name, key) != 0)
                        f++;
                if (!f->name) {
                        set_error(err, key, strlen(key), "unknown field");
                        return DM_EINVAL;
                }
                if (json_is_null(value) && (f->flags & DM_JSON_NULLABLE))
                        continue;
                if (!type_ok(value, f->type)) {
                        snprintf(msg, sizeof(msg), "must be %s %s%s, not %s", article(f->type),
                                 dm_json_type_name(f->type),
                                 (f->flags & DM_JSON_NULLABLE) ? " or null" : "",
                                 dm_json_value_type_name(value));
                        set_error(err, key, strlen(key), msg);
                        return DM_EINVAL;
                }
        }
        for (const struct dm_json_field *f = fields; f->name; f++) {
                if ((f->flags & DM_JSON_REQUIRED) && !json_object_get(obj, f->name)) {
                        set_error(err, f->name, strlen(f->name), "is required");
                        return DM_EINVAL;
                }
        }
        return 0;
}

int dm_json_duration_s(const json_t *v, int64_t *ret_seconds, char *why, size_t whylen)
{
        int64_t ms;

        if (json_is_integer(v)) {
                *ret_seconds = (int64_t)json_integer_value(v);
                return 0;
        }
        const char *s = json_string_value(v);
        if (!s || strlen(s) != json_string_length(v) || dm_duration_parse(s, &ms) < 0) {
                snprintf(why, whylen,
                         "is not a duration: use seconds (300) or a number with a unit: "
                         "\"90s\", \"5m\", \"2h\", \"1d\"");
                return DM_EINVAL;
        }
        if (ms % 1000 != 0) {
                snprintf(why, whylen, "must be a whole number of seconds");
                return DM_EINVAL;
        }
        *ret_seconds = ms / 1000;
        return 0;
}

char *dm_json_dump(const json_t *doc, size_t *ret_len)
{
        char *s = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!s)
                return NULL;
        if (ret_len)
                *ret_len = strlen(s);
        return s;
}

int dm_json_buf_add_string(struct dm_buf *b, const char *s)
{
        int r = dm_buf_addc(b, '"');
        while (r == 0 && *s) {
                /* Plain runs are copied in one call: this is on the scanner's write path. */
                size_t run = 0;
                while (s[run] && (unsigned char)s[run] >= 0x20 && s[run] != 0x7f && s[run] != '"' &&
                       s[run] != '\\')
                        run++;
                if (run) {
                        r = dm_buf_add(b, s, run);
                        s += run;
                        continue;
                }
                unsigned char c = (unsigned char)*s++;
                if (c == '"' || c == '\\')
                        r = dm_buf_addf(b, "\\%c", c);
                else
                        r = dm_buf_addf(b, "\\u%04x", c);
        }
        if (r == 0)
                r = dm_buf_addc(b, '"');
        return r;
}
