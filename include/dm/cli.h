/* The command-line client's pure parts: argument parsing, human tables, the one-line form
 * of a change, the reader of name lists and CSV files, and an incremental Server-Sent Events
 * reader. Nothing here does I/O except the table and help printers, which write to the FILE
 * they are given; the HTTP side is lib/cli/client.c (dm/cli_client.h).
 *
 * Thread-safety: none needed; functions only touch what they are given. */
#ifndef DM_CLI_H
#define DM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "dm/buf.h"

/* Exit codes of every command. */
#define DM_CLI_EXIT_OK 0
#define DM_CLI_EXIT_FAIL 1  /* the server refused, or the network failed */
#define DM_CLI_EXIT_USAGE 2 /* the command line was wrong: nothing was sent */

/* ---- arguments ---- */

#define DM_CLI_MAX_OPTS 8
#define DM_CLI_MAX_POSITIONAL 4096

/* One option a command takes: "--since" with a value, or "--json" alone. `shortname`
 * ('h') may be 0. */
struct dm_cli_opt {
        const char *name; /* "--since" */
        char shortname;   /* 'v' for -v; 0: none */
        bool takes_value;
};

/* What dm_cli_parse found. Values point into argv. */
struct dm_cli_args {
        const char *values[DM_CLI_MAX_OPTS]; /* by index in the option table; NULL: absent */
        bool present[DM_CLI_MAX_OPTS];
        const char *positional[DM_CLI_MAX_POSITIONAL];
        size_t npositional;
        bool help; /* -h or --help was given (always accepted) */
};

/* Parses argv[0..argc) against `opts` (at most DM_CLI_MAX_OPTS, ended by a NULL name).
 * "--opt value", "--opt=value", "-v"; "--" ends the options. -h/--help sets `help` and
 * stops the parse there (so `cmd --help --bad` is still help). Returns 0, or DM_EINVAL with
 * a one-line reason in err (unknown option, missing value, a value given to a flag,
 * more than DM_CLI_MAX_POSITIONAL arguments). */
int dm_cli_parse(int argc, char **argv, const struct dm_cli_opt *opts, struct dm_cli_args *ret,
                 char *err, size_t errlen);

/* The API the client talks to: `api_url` (DM_API_URL) when set, else http:// and `listen`
 * (DM_LISTEN) with an unspecified address (0.0.0.0, [::], *, empty) read as loopback.
 * Returns buf. */
const char *dm_cli_base_url(const char *api_url, const char *listen, char *buf, size_t size);

/* ---- text shown on a terminal ---- */

/* Copies `s` for a terminal into buf: control characters (C0, DEL, C1) become '?' and
 * invalid UTF-8 bytes '?', cut at a character boundary to fit. Returns buf. */
const char *dm_cli_safe(char *buf, size_t size, const char *s);

/* Columns of a UTF-8 string as a terminal shows it (one per code point). */
size_t dm_cli_width(const char *s);

/* A table of text cells, printed with columns padded to their widest cell. Cells are copied
 * (and made safe with dm_cli_safe), so callers may pass temporaries. */
struct dm_cli_table {
        size_t ncols;
        size_t nrows; /* header included */
        char **cells; /* nrows * ncols, owned */
        size_t cap;   /* rows allocated */
};

/* `ncols` columns named by `header`. Returns 0 or DM_ENOMEM (nothing to free then). */
int dm_cli_table_init(struct dm_cli_table *t, size_t ncols, const char *const *header);
/* Adds a row of ncols cells (NULL cells print as "-"). Returns 0 or DM_ENOMEM. */
int dm_cli_table_add(struct dm_cli_table *t, const char *const *cells);
/* Columns separated by two spaces; the last column is not padded. */
void dm_cli_table_print(const struct dm_cli_table *t, FILE *out);
void dm_cli_table_done(struct dm_cli_table *t);

/* ---- changes ---- */

#define DM_CLI_COLOR 1u  /* ANSI colours: green additions, red removals */
#define DM_CLI_UTC 2u    /* times in UTC rather than local time */
#define DM_CLI_FULLTS 4u /* "2026-11-29 17:07:34" rather than "17:07:34" */

/* One change (a history entry: "domain", "type", "added", "removed", "observed_at", "status")
 * as one line, appended to `out` without a newline:
 *     17:07:34 example.test A +192.0.2.12 -192.0.2.11
 * A first observation (no "before") reads "new"; a change to NXDOMAIN or NODATA names the
 * status; values are made terminal-safe. `domain` overrides the entry's (NULL: the entry's).
 * Returns 0, DM_EINVAL (not an object with a type), DM_E2BIG, DM_ENOMEM. */
int dm_cli_change_line(const json_t *change, const char *domain, unsigned flags,
                       struct dm_buf *out);

/* A live event (topic and data, as the stream sends them) as one line in `out`:
 * change.dns.* as dm_cli_change_line; domain.added / domain.removed as
 * "17:07:34 example.test added". Returns 0, DM_ENOENT for an event not shown (pings,
 * other topics), DM_EINVAL for data that is not what the topic promises, DM_E2BIG,
 * DM_ENOMEM. */
int dm_cli_event_line(const char *topic, const char *data, size_t len, unsigned flags,
                      struct dm_buf *out);

/* "2026-11-29T17:07:34.120Z" -> "17:07:34" (with flags as above) into buf (>= 32 bytes);
 * text that is not an RFC 3339 time is copied as it is (made safe). Returns buf. */
const char *dm_cli_time(const char *rfc3339, unsigned flags, char *buf, size_t size);

/* One line of `scan -v` into buf (no newline): the name, its status, the changes the scan
 * recorded and, for a domain in error, the first reason of its status_error ("A: timed
 * out; MX: ..." -> "A: timed out"), all made terminal-safe:
 *     example.test error changes=0 first_error="A: timed out" */
const char *dm_cli_scan_line(const char *name, const char *status, size_t changes,
                             const char *status_error, char *buf, size_t size);

/* ---- name lists ---- */

/* Reads a list of domain names: one a line, or a CSV file whose header names a column
 * "name" or "domain" (any case), or whose column is given: `column` is a header name or a
 * 1-based number as text (NULL: the first of those names, else the first column). A file
 * is CSV when its first line holds a comma. Blank lines and lines starting with '#' are
 * skipped; fields may be double-quoted ("a ""b"""), a BOM is dropped, CRLF accepted.
 * Each name is trimmed and handed to `fn` with its 1-based line number; fn returns 0 to
 * go on or a negative code to stop (returned as is). Returns 0, DM_EINVAL with a reason in
 * err (column not found, unterminated quote, a line without that column, a NUL byte), or
 * fn's code.
 * `len` bytes of `data` need not be NUL-terminated. */
typedef int (*dm_cli_name_fn)(void *arg, const char *name, size_t len, size_t line);
int dm_cli_names_read(const char *data, size_t len, const char *column, dm_cli_name_fn fn,
                      void *arg, char *err, size_t errlen);

/* ---- progress ---- */

/* "[#########           ]  450/1000  45%" into buf for a terminal of `width` columns. */
const char *dm_cli_progress(size_t done, size_t total, size_t width, char *buf, size_t size);

/* ---- Server-Sent Events reader ---- */

/* Fed bytes as they arrive, it calls `fn` once per complete event (after its blank line)
 * with the event name ("message" when none), the id (NULL when the event has none: the
 * last id seen stays in `last_id`) and the data lines joined with '\n'. Comment lines (":
 * ping") and unknown fields are ignored; CR, LF and CRLF end lines; a BOM at the very start
 * is dropped. Lines longer than `max_line` and events larger than `max_event` make feed
 * fail with DM_E2BIG (the stream is then unusable). fn returns 0, or a negative code that
 * feed returns at once. */
typedef int (*dm_sse_event_fn)(void *arg, const char *event, const char *id, const char *data,
                               size_t len);
struct dm_sse_reader {
        dm_sse_event_fn fn;
        void *arg;
        struct dm_buf line;
        struct dm_buf data;
        char event[128];
        char id[256];
        char last_id[256];
        bool has_id;
        bool has_data;
        bool skip_lf;  /* the previous chunk ended with CR */
        bool bom_done; /* the start of the stream was seen */
};

void dm_sse_reader_init(struct dm_sse_reader *r, size_t max_line, size_t max_event,
                        dm_sse_event_fn fn, void *arg);
int dm_sse_reader_feed(struct dm_sse_reader *r, const char *p, size_t n);
void dm_sse_reader_done(struct dm_sse_reader *r);

#endif
