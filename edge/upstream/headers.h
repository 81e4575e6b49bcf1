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

#endif
