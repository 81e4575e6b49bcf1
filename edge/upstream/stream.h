/* stream.h -- reading an origin response's body for one client while it
 * arrives (a fetch, edge/upstream/fetch.h).
 *
 * Each stream is a waiter on the fetch: when it has read everything there
 * is, it suspends the client (ops->suspend) and the fetch thread resumes it
 * (ops->resume) when more bytes, the end or a failure arrive.  The front
 * wraps proxy_stream_read in its HTTP server's body callback. */
#ifndef MINICDN_STREAM_H
#define MINICDN_STREAM_H

#include "edge/cache/range.h"
#include "edge/upstream/fetch.h"
#include "edge/upstream/proxy.h"
#include <sys/types.h>

struct proxy_stream;

/* Opens a stream of f's body bytes [off, off + len) (len UINT64_MAX: to the
 * end), or, with mp (taken; laid out for the body's length), of that
 * multipart/byteranges body -- only for a fetch that keeps the whole body,
 * since parts may ask for bytes in any order.  Takes its own reference on f
 * and registers as a waiter; ops/cls as in struct proxy_call. */
struct proxy_stream *proxy_stream_open(struct fetch *f, uint64_t off, uint64_t len,
                                       struct multipart *mp, const struct proxy_client_ops *ops,
                                       void *cls);

/* If f's response is over and its whole body held (not dropped as read),
 * takes a reference on f and returns the body's bytes [off, off + len)
 * (len UINT64_MAX: to the end; *len_out their count): stable until the
 * caller's fetch_unref, so it can be sent as one buffer, head and body in
 * one write.  NULL when the body is still arriving, was cut short or does
 * not cover the range. */
const char *proxy_stream_whole(struct fetch *f, uint64_t off, uint64_t len, size_t *len_out);

#define PROXY_STREAM_END ((ssize_t)-1)   /* all bytes read */
#define PROXY_STREAM_ERROR ((ssize_t)-2) /* the body ended short or was dropped */

/* Copies up to max bytes from stream position pos into out.  Returns the
 * count, 0 when none are there yet (the client was suspended: call again
 * once resumed), PROXY_STREAM_END or PROXY_STREAM_ERROR. */
ssize_t proxy_stream_read(struct proxy_stream *s, uint64_t pos, char *out, size_t max);

/* Unregisters and frees the stream, dropping its fetch reference. */
void proxy_stream_close(struct proxy_stream *s);

#endif
