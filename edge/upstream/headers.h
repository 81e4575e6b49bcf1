/* headers.h -- which HTTP header fields cross the edge: hop-by-hop fields
 * (never forwarded either way) and the filter an origin response goes
 * through before it is stored or sent.  Pure; packed lists are
 * "name\0value\0..." (struct fetch's hdrs). */
#ifndef MINICDN_EDGE_HEADERS_H
#define MINICDN_EDGE_HEADERS_H

#include "common/buf.h"
#include <stdbool.h>

/* True for header names that are hop-by-hop (RFC 9110 7.6.1) -- the fixed
 * list, plus those named by connection_value (the message's Connection
 * header, may be NULL): never stored, never forwarded. */
bool headers_hop_by_hop(const char *name, const char *connection_value);

/* Appends to out the origin response headers in that are stored and sent:
 * drops hop-by-hop, Content-Length and Age, and collects Surrogate-Key /
 * Cache-Tag values into tags (packed "t\0", may be NULL), which are never
 * sent to clients. */
void headers_filter(const struct buf *in, struct buf *out, struct buf *tags);

/* Value of field name in the packed list hdrs with its repeated lines
 * combined with ", " (RFC 9110 5.3): borrowed from hdrs when the field
 * occurs once, else joined into tmp (the caller's).  NULL if absent. */
const char *headers_field(const struct buf *hdrs, const char *name, struct buf *tmp);

/* headers_field for n (at most HEADERS_FIELDS_MAX) distinct names in one walk
 * over hdrs: out[i] is names[i]'s value, joined into *tmp[i] (the caller's)
 * when it has several lines. */
#define HEADERS_FIELDS_MAX 16
void headers_fields(const struct buf *hdrs, size_t n, const char *const *names, const char **out,
                    struct buf *const *tmp);

/* Appends the packed list in to out with each field's repeated lines
 * combined into its first (RFC 9110 5.3).  O(n^2) in the number of lines,
 * which a request's bounded header size keeps small. */
void headers_combine(const struct buf *in, struct buf *out);

/* Calls cb(arg, name, value) for each header line of cls, in order. */
typedef void (*headers_each_fn)(void *cls, void (*cb)(void *arg, const char *name, const char *value),
                                void *arg);
/* Field name as each gives it, every line combined with ", ": borrowed from
 * cls's headers when there is one line, else joined into tmp.  NULL if absent. */
const char *headers_join_each(headers_each_fn each, void *cls, const char *name, struct buf *tmp);

#endif
