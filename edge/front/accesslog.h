/* accesslog.h -- the edge's access log: one line per request, appended to a
 * file in large writes.
 *
 * Each worker thread fills its own buffer (no lock shared between
 * workers on the request path); a buffer is written when it passes
 * ACCESSLOG_CHUNK bytes, and every buffer at least once a second by
 * accesslog_flush() from the main loop, so a line reaches the file within
 * about a second.  Writes use O_APPEND: lines from different threads never
 * interleave.  accesslog_reopen() follows a rotation (SIGHUP). */
#ifndef MINICDN_ACCESSLOG_H
#define MINICDN_ACCESSLOG_H

#include <stddef.h>

#define ACCESSLOG_CHUNK (32u << 10)

struct accesslog;

/* Opens (creating, mode 0640) path for appending.  NULL with the reason in err. */
struct accesslog *accesslog_open(const char *path, char *err, size_t errlen);
/* One request's fields; NULL strings are logged as "-". */
struct accesslog_entry {
	const char *client, *method, *target, *version;
	unsigned status;
	long long bytes;          /* body bytes, -1: unknown */
	const char *referer, *user_agent;
	const char *result;       /* hit, uri-miss, ..., script */
	long long us;             /* time taken */
	const char *node;         /* the edge's name */
	const char *site;         /* the site's name; NULL: none (control, 421) */
	int aborted;              /* the client went away */
};

/* Formats e as one line -- nginx's combined format, then result, seconds
 * node and site:
 *   IP - - [27/Nov/2026:00:42:30 +0000] "GET /x HTTP/1.1" 200 1234 "ref" "ua" hit 0.000123 edge-eu shop
 * with quotes, backslashes and bytes outside printable ASCII in the client's
 * strings as \xHH -- and appends it to the calling thread's buffer. */
void accesslog_request(struct accesslog *al, const struct accesslog_entry *e);
/* Appends one line (len bytes, ending in '\n') to the calling thread's buffer. */
void accesslog_add(struct accesslog *al, const char *line, size_t len);
/* Writes every thread's buffered lines (main loop, once a second). */
void accesslog_flush(struct accesslog *al);
/* Flushes, then opens the path again (the old file was moved away).
 * Returns 0, or -1 with errno (the old file stays in use). */
int accesslog_reopen(struct accesslog *al);
/* Flushes and closes; no thread may add lines any more. */
void accesslog_close(struct accesslog *al);

#endif
