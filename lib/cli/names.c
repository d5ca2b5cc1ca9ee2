/* The reader behind `domainmon domains import FILE`: a plain list (one name a line) or one
 * column of a CSV file (RFC 4180 quoting), whichever the first line shows. The file comes
 * from anywhere (an export from a registrar, a spreadsheet), so every field is bounded and
 * every malformed line is named by number. */
#include "dm/cli.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dm/error.h"

#define FIELD_MAX 1024 /* longer than any name (253) with room for spaces and quotes */

struct csv_line {
        const char *p, *end; /* the line, without its line break */
};

/* Splits the text at `*pos` into the next line (CR, LF or CRLF ends it; a quoted field may
 * hold line breaks in CSV mode). Returns false at the end. */
static bool next_line(const char *data, size_t len, size_t *pos, bool csv, struct csv_line *ret)
{
        size_t i = *pos;
        bool quoted = false;
        if (i >= len)
                return false;
        size_t start = i;
        while (i < len) {
                char c = data[i];
                if (csv && c == '"')
                        quoted = !quoted;
                else if (!quoted && (c == '\n' || c == '\r'))
                        break;
                i++;
        }
        ret->p = data + start;
        ret->end = data + i;
        if (i < len && data[i] == '\r') {
                i++;
                if (i < len && data[i] == '\n')
                        i++;
        } else if (i < len && data[i] == '\n') {
                i++;
        }
        *pos = i;
        return true;
}

/* Field number `want` (0-based) of a CSV line, unquoted, into out. Returns its length,
 * -1 when the line has fewer fields, -2 for a bad quote, -3 when it is too long. */
static long csv_field(const struct csv_line *l, size_t want, char *out, size_t size)
{
        const char *p = l->p;
        size_t field = 0;
        for (;;) {
                size_t o = 0;
                bool take = field == want;
                while (p < l->end && (*p == ' ' || *p == '\t'))
                        p++;
                if (p < l->end && *p == '"') {
                        p++;
                        for (;;) {
                                if (p >= l->end)
                                        return -2;
                                if (*p == '"') {
                                        if (p + 1 < l->end && p[1] == '"') {
                                                p++;
                                        } else {
                                                p++;
                                                break;
                                        }
                                }
                                if (take) {
                                        if (o + 1 >= size)
                                                return -3;
                                        out[o++] = *p;
                                }
                                p++;
                        }
                        while (p < l->end && (*p == ' ' || *p == '\t'))
                                p++;
                        if (p < l->end && *p != ',')
                                return -2;
                } else {
                        while (p < l->end && *p != ',') {
                                if (*p == '"')
                                        return -2;
                                if (take) {
                                        if (o + 1 >= size)
                                                return -3;
                                        out[o++] = *p;
                                }
                                p++;
                        }
                }
                if (take) {
                        while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
                                o--;
                        out[o] = '\0';
                        return (long)o;
                }
                if (p >= l->end)
                        return -1;
                p++; /* the comma */
                field++;
        }
}

static bool is_blank_or_comment(const struct csv_line *l)
{
        const char *p = l->p;
        while (p < l->end && (*p == ' ' || *p == '\t'))
                p++;
        return p == l->end || *p == '#';
}

/* Which column holds the names: `column` as a 1-based number or a header name, else a
 * header "name" or "domain", else the first. *ret_header tells whether line 1 is a header. */
static int csv_pick_column(const struct csv_line *head, const char *column, size_t *ret_col,
                           bool *ret_header, char *err, size_t errlen)
{
        char f[FIELD_MAX];
        bool numeric = column && *column && strspn(column, "0123456789") == strlen(column);

        if (numeric) {
                long v = strtol(column, NULL, 10);
                if (v < 1 || v > 10000)
                        return dm_errorf(DM_EINVAL, err, errlen, "column %.20s: out of range",
                                         column);
                *ret_col = (size_t)v - 1;
        }
        *ret_header = false;
        for (size_t i = 0;; i++) {
                long n = csv_field(head, i, f, sizeof(f));
                if (n == -1)
                        break;
                if (n < 0)
                        return dm_errorf(DM_EINVAL, err, errlen, "line 1: malformed CSV field");
                bool match = column && !numeric
                                 ? strcasecmp(f, column) == 0
                                 : strcasecmp(f, "name") == 0 || strcasecmp(f, "domain") == 0;
                if (match) {
                        *ret_header = true;
                        if (!numeric) {
                                *ret_col = i;
                                return 0;
                        }
                }
        }
        if (column && !numeric)
                return dm_errorf(DM_EINVAL, err, errlen, "no column named '%.60s' in line 1",
                                 column);
        if (!numeric)
                *ret_col = 0;
        return 0;
}

int dm_cli_names_read(const char *data, size_t len, const char *column, dm_cli_name_fn fn,
                      void *arg, char *err, size_t errlen)
{
        size_t pos = 0, lineno = 0, col = 0;
        struct csv_line l;
        char f[FIELD_MAX];
        bool csv = false, header = false;
        int r;

        if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
                pos = 3;
        /* The first line that is not blank or a comment decides the format. */
        size_t probe = pos;
        while (next_line(data, len, &probe, false, &l)) {
                if (is_blank_or_comment(&l))
                        continue;
                csv = memchr(l.p, ',', (size_t)(l.end - l.p)) != NULL;
                break;
        }
        if (column && !csv && strcmp(column, "1") != 0)
                return dm_errorf(DM_EINVAL, err, errlen,
                                 "a column was asked for but the file is not CSV (no comma in "
                                 "its first line)");

        bool first = true;
        while (next_line(data, len, &pos, csv, &l)) {
                /* Line numbers count the breaks inside quoted fields too. */
                lineno++;
                for (const char *q = l.p; q < l.end; q++)
                        lineno += *q == '\n';
                if (is_blank_or_comment(&l))
                        continue;
                if (first && csv) {
                        first = false;
                        r = csv_pick_column(&l, column, &col, &header, err, errlen);
                        if (r < 0)
                                return r;
                        if (header)
                                continue;
                }
                first = false;
                long n;
                if (csv) {
                        n = csv_field(&l, col, f, sizeof(f));
                        if (n == -1)
                                return dm_errorf(DM_EINVAL, err, errlen, "line %zu: no column %zu",
                                                 lineno, col + 1);
                        if (n == -2)
                                return dm_errorf(DM_EINVAL, err, errlen,
                                                 "line %zu: malformed quoted field", lineno);
                } else {
                        const char *p = l.p, *e = l.end;
                        while (p < e && (*p == ' ' || *p == '\t'))
                                p++;
                        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
                                e--;
                        n = (size_t)(e - p) < sizeof(f) ? (long)(e - p) : -3;
                        if (n >= 0) {
                                memcpy(f, p, (size_t)n);
                                f[n] = '\0';
                        }
                }
                if (n == -3)
                        return dm_errorf(DM_EINVAL, err, errlen,
                                         "line %zu: longer than %d bytes, not a domain name",
                                         lineno, FIELD_MAX - 1);
                if (n == 0)
                        continue; /* an empty cell: nothing to add */
                if (memchr(f, '\0', (size_t)n))
                        return dm_errorf(DM_EINVAL, err, errlen,
                                         "line %zu: holds a NUL byte (not a text file?)", lineno);
                r = fn(arg, f, (size_t)n, lineno);
                if (r < 0)
                        return r;
        }
        return 0;
}
