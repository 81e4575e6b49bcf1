/* slicer.h -- large objects answered from slices (docs/edge.md, "Large
 * objects: slices"): the head record at the object's key, one entry per
 * slice, slices fetched from the origin by Range and collapsed per slice.
 *
 * The front hands a request here when it finds a head (an entry with
 * ENTRY_F_SLICED) or when a single-range GET misses; the answer is a
 * PROXY_SLICES (read its body with slice_stream_read), a PROXY_WAIT (the
 * first slice is on its way: proxy_resume continues here), or, when the
 * object turns out not to be sliced, whatever proxy_start answers.  Slice
 * arithmetic and checks are edge/cache/slice.c. */
#ifndef MINICDN_SLICER_H
#define MINICDN_SLICER_H

#include "edge/cache/entry.h"
#include "edge/upstream/proxy.h"
#include "edge/upstream/stream.h"
#include <sys/types.h>

/* The representation's length a head records (its Content-Length), or -1 if
 * v is not a well-formed head. */
int64_t slicer_head_length(const struct entry_view *v);

/* Starts answering pc from slices.  head: the stored head (NULL: the object
 * is not known, pc carries a single-range GET); usable: the head may be used
 * without asking the origin (fresh, or accepted stale by the request).
 * first: the first representation byte the client needs, -1 if none (HEAD,
 * 304, 416).  With a usable head whose first slice is stored the answer is
 * ready; otherwise the first slice is fetched (that unconditional ranged
 * request also revalidates the head) and pc waits for its headers. */
void slicer_start(struct proxy_call *pc, const struct entry_view *head, bool usable,
                  int64_t first, struct proxy_answer *a);

/* What the front calls instead of proxy_resume once a call that
 * slicer_start suspended (pc->sliced) is resumed. */
void slicer_resume(struct proxy_call *pc, struct proxy_answer *a);

/* Sets the representation bytes [off, off + len) a stream returns. */
void slice_stream_range(struct slice_stream *s, uint64_t off, uint64_t len);

/* Copies up to max bytes from stream position pos into out, slice by slice:
 * stored slices from the map, missing ones fetched (collapsed) and stored.
 * Returns the count, 0 when the client was suspended until bytes arrive,
 * PROXY_STREAM_END, or PROXY_STREAM_ERROR (the origin failed, or a slice
 * came from another version of the object than the response's headers
 * promised: the body must end short). */
ssize_t slice_stream_read(struct slice_stream *s, uint64_t pos, char *out, size_t max);

/* Frees the stream: releases its stored slice or leaves its fetch. */
void slice_stream_close(struct slice_stream *s);

#endif
