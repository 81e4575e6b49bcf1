/* slicehead.h -- a large object's head record (docs/edge.md, "Large
 * objects: slices"): whether an origin response describes an object to
 * store in slices, the headers stored for a head or a slice, and writing the
 * head at the object's key.  Runs in the fetch thread (the hooks of
 * upstream/proxy.c and upstream/slicer.c). */
#ifndef MINICDN_SLICEHEAD_H
#define MINICDN_SLICEHEAD_H

#include "common/buf.h"
#include "edge/cache/freshness.h"
#include "edge/cache/slice.h"
#include "edge/edge.h"
#include "edge/upstream/fetch.h"
#include <stdbool.h>
#include <stdint.h>

/* A response's ETag, Last-Modified and Date from packed headers (borrowed
 * from hdrs). */
void slicehead_validators(const struct buf *hdrs, struct slice_validators *v);

/* Whether f's response (its headers in; storable as fo says) describes an
 * object of total bytes to slice: storable, no Vary, a strong validator, a
 * length the settings slice. */
bool slicehead_wanted(struct edge *e, const struct fetch *f, const struct fresh_out *fo,
                      uint64_t total);

/* Appends the headers stored for f's response to hdrs (tags: its
 * Surrogate-Key / Cache-Tag values): filtered, with a Date; for a head
 * (head true) without Content-Range and with total in Content-Length. */
void slicehead_headers(const struct fetch *f, bool head, uint64_t total, struct buf *hdrs,
                       struct buf *tags);

/* Writes the head of the object at key (total bytes) from f's response,
 * committed before it returns: a client answered from this response and
 * asking again finds the head it was promised.  Heads are written once per
 * object and on changes, so the fetch thread rarely waits for this. */
void slicehead_store(struct edge *e, const char *key, const struct fetch *f,
                     const struct fresh_out *fo, uint64_t purge_seq, uint64_t total);

/* A full GET's 200 too large to store whole (f in its on_headers): if the
 * object is one to slice, writes its head, so later requests are answered
 * from slices while this body streams through unstored. */
void slicehead_note_whole(struct edge *e, const char *key, const struct fetch *f,
                          const struct fresh_out *fo, uint64_t purge_seq);

#endif
