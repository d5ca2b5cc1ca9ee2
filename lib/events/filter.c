/* Topic filters of the event stream (?topics=): a short list of bus patterns, parsed and
 * checked once when the stream opens and matched with the bus's own rule, so a filter means
 * on the stream what the same pattern means in a queue binding. */
#include "dm/events.h"

#include <stdlib.h>
#include <string.h>

#include "dm/bus.h"
#include "dm/error.h"

const char *const dm_event_topic_patterns[] = {
    "domain.*", "change.#", "tls.*", "registration.*", "check.*", NULL,
};

struct dm_event_filter {
        size_t n;
        const char *patterns[DM_EVENT_FILTER_MAX]; /* point into text */
        char text[];                               /* the patterns, NUL-separated */
};

static bool word_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_';
}

/* `len` bytes of dot-separated words; wildcards are whole words only when allowed. A '*'
 * inside a word ("A*") would be a literal character to a broker, never what was meant. */
static bool words_valid(const char *s, size_t len, bool wildcards)
{
        size_t wlen = 0;
        bool wild = false;

        if (len == 0 || len > DM_EVENT_PATTERN_MAX)
                return false;
        for (size_t i = 0; i <= len; i++) {
                char c = i < len ? s[i] : '.';
                if (c == '.') {
                        if (wlen == 0)
                                return false;
                        wlen = 0;
                        wild = false;
                        continue;
                }
                if (wildcards && (c == '*' || c == '#')) {
                        if (wlen > 0)
                                return false;
                        wild = true;
                } else if (!word_char(c) || wild) {
                        return false;
                }
                wlen++;
        }
        return true;
}

bool dm_event_topic_valid(const char *topic)
{
        return topic && words_valid(topic, strnlen(topic, DM_EVENT_PATTERN_MAX + 1), false);
}

int dm_event_filter_parse(const char *text, char *err, size_t errlen,
                          struct dm_event_filter **ret_filter)
{
        size_t max = DM_EVENT_FILTER_MAX * (DM_EVENT_PATTERN_MAX + 1);
        size_t len = strnlen(text, max + 1);

        if (len == 0)
                return dm_errorf(DM_EINVAL, err, errlen, "must name at least one topic pattern");
        if (len > max)
                return dm_errorf(DM_EINVAL, err, errlen, "is longer than %zu bytes", max);
        struct dm_event_filter *f = calloc(1, sizeof(*f) + len + 1);
        if (!f)
                return DM_ENOMEM;
        memcpy(f->text, text, len + 1);
        char *p = f->text;
        for (;;) {
                char *comma = strchrnul(p, ',');
                size_t plen = (size_t)(comma - p);
                bool last = *comma == '\0';
                if (f->n == DM_EVENT_FILTER_MAX) {
                        dm_errorf(DM_EINVAL, err, errlen, "holds more than %d patterns",
                                  DM_EVENT_FILTER_MAX);
                        goto fail;
                }
                if (!words_valid(p, plen, true)) {
                        dm_errorf(DM_EINVAL, err, errlen,
                                  "pattern %zu is not a topic pattern: words of letters, digits, "
                                  "'-' and '_', or '*' (one word) and '#' (any words), "
                                  "separated by dots, at most %d bytes",
                                  f->n + 1, DM_EVENT_PATTERN_MAX);
                        goto fail;
                }
                *comma = '\0';
                f->patterns[f->n++] = p;
                if (last)
                        break;
                p = comma + 1;
        }
        *ret_filter = f;
        return 0;
fail:
        free(f);
        return DM_EINVAL;
}

void dm_event_filter_free(struct dm_event_filter *f)
{
        free(f);
}

bool dm_event_filter_match(const struct dm_event_filter *f, const char *topic)
{
        if (!f)
                return true;
        for (size_t i = 0; i < f->n; i++) {
                if (dm_bus_topic_match(f->patterns[i], topic))
                        return true;
        }
        return false;
}
