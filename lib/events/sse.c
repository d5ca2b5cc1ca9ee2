/* Server-Sent Events framing (the WHATWG HTML "event stream" format) and the stable id of an
 * event. A field ends at the first CR or LF, and an empty line ends an event, so every
 * value written here is either refused when it holds a line break (event names, ids) or cut
 * into one "data:" line per line (data): nothing sent can start a field or an event the
 * sender did not write. */
#include "dm/events.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "dm/error.h"

static bool field_value_ok(const char *s)
{
        return s && !strpbrk(s, "\r\n");
}

int dm_sse_append_event(struct dm_buf *b, const char *event, const char *id, const char *data,
                        size_t len)
{
        int r = 0;

        if (!data || len == 0) {
                data = "";
                len = 0;
        }
        if ((event && !field_value_ok(event)) || (id && !field_value_ok(id)) ||
            (len > 0 && memchr(data, '\0', len)))
                return DM_EINVAL;
        if (event)
                r = dm_buf_addf(b, "event: %s\n", event);
        if (r == 0 && id && *id)
                r = dm_buf_addf(b, "id: %s\n", id);
        else if (r == 0 && id)
                r = dm_buf_addstr(b, "id:\n");
        /* One data line per line: n line breaks make n + 1 lines, the last one empty when the
         * data ends with a break, so the client gets the data back as it was (with LF for
         * CR and CRLF). */
        for (size_t i = 0; r == 0;) {
                size_t end = i;
                while (end < len && data[end] != '\r' && data[end] != '\n')
                        end++;
                r = dm_buf_add(b, "data: ", 6);
                if (r == 0)
                        r = dm_buf_add(b, data + i, end - i);
                if (r == 0)
                        r = dm_buf_addc(b, '\n');
                if (end == len)
                        break;
                if (data[end] == '\r' && end + 1 < len && data[end + 1] == '\n')
                        end++;
                i = end + 1;
        }
        if (r == 0)
                r = dm_buf_addc(b, '\n');
        return r;
}

int dm_sse_append_comment(struct dm_buf *b, const char *text)
{
        if (!field_value_ok(text))
                return DM_EINVAL;
        return dm_buf_addf(b, ": %s\n\n", text);
}

int dm_event_id(const char *topic, const void *body, size_t len, char *out, size_t size)
{
        json_error_t jerr;
        int r = DM_EINVAL;

        if (!dm_event_topic_valid(topic))
                return DM_EINVAL;
        json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc)
                return json_error_code(&jerr) == json_error_out_of_memory ? DM_ENOMEM : DM_EINVAL;
        json_t *id = json_is_object(doc) ? json_object_get(doc, "id") : NULL;
        if (json_is_integer(id) && json_integer_value(id) > 0) {
                int n =
                    snprintf(out, size, "%s:%" JSON_INTEGER_FORMAT, topic, json_integer_value(id));
                r = n >= 0 && (size_t)n < size ? 0 : DM_E2BIG;
        }
        json_decref(doc);
        return r;
}
