/* Thin layer over jansson: strict reading of request bodies (one object, known fields of
 * the declared types, a field-level message for the first thing wrong) and compact dumping.
 * Thread-safety: none needed; functions only touch what they are given. */
#ifndef DM_JSON_H
#define DM_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "dm/buf.h"

enum dm_json_type {
        DM_JSON_STRING = 1,
        DM_JSON_INTEGER,
        DM_JSON_NUMBER, /* integer or real */
        DM_JSON_BOOL,
        DM_JSON_ARRAY,
        DM_JSON_OBJECT,
        DM_JSON_DURATION, /* integer seconds, or a string dm_duration_parse reads ("5m") */
};

#define DM_JSON_REQUIRED 1u /* absence is an error */
#define DM_JSON_NULLABLE 2u /* null is accepted as well as the type */

/* One accepted member of an object. Tables end with an entry whose name is NULL. */
struct dm_json_field {
        const char *name;
        enum dm_json_type type;
        unsigned flags;
};

/* What was wrong. `field` is empty when the problem is the document itself. Both strings
 * are valid UTF-8 (names from the input are cut at a character boundary). */
struct dm_json_error {
        char field[80];
        char detail[256];
};

/* Parses `len` bytes into a JSON object (*ret_obj, new reference). Duplicate keys, trailing
 * garbage and NUL characters are rejected. Returns 0, DM_EPARSE (not JSON; detail gives
 * line and column), DM_EINVAL (JSON but not an object), DM_ENOMEM. */
int dm_json_parse_object(const char *data, size_t len, struct dm_json_error *err, json_t **ret_obj);

/* Checks that `obj` holds only members listed in `fields`, each of its declared type, and
 * every required one. Returns 0 or DM_EINVAL with the first problem in *err. */
int dm_json_check_fields(const json_t *obj, const struct dm_json_field *fields,
                         struct dm_json_error *err);

/* "string", "integer", "number", "boolean", "array", "object", "null". */
const char *dm_json_type_name(enum dm_json_type t);
const char *dm_json_value_type_name(const json_t *v);

/* A DM_JSON_DURATION value in whole seconds: an integer as it is, a string through
 * dm_duration_parse, the parser of the command-line flags ("90", "90s", "10m", "2h", "1d").
 * Returns 0, or DM_EINVAL with a reason for the caller's field error in `why` (a string that
 * is not a duration, or one that is not a whole number of seconds). */
int dm_json_duration_s(const json_t *v, int64_t *ret_seconds, char *why, size_t whylen);

/* Compact serialization; malloc'd (free()), NULL on ENOMEM. */
char *dm_json_dump(const json_t *doc, size_t *ret_len);

/* Copies `s` into buf, cut to fit at a UTF-8 character boundary. Bytes that are not valid
 * UTF-8 or are control characters become '?'. Returns buf. */
const char *dm_json_safe_text(char *buf, size_t size, const char *s, size_t len);

/* A string value that is never NULL: json_string of `s`, or of a sanitized copy when `s`
 * is not valid UTF-8. NULL only on ENOMEM. */
json_t *dm_json_string_lossy(const char *s);

/* Appends s (NUL-terminated) to b as a JSON string literal: quotes, backslash and control
 * characters escaped; other bytes copied as they are (s is expected to be UTF-8).
 * Returns 0, DM_E2BIG or DM_ENOMEM. */
int dm_json_buf_add_string(struct dm_buf *b, const char *s);

#endif
