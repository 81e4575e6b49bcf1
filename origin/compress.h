/* compress.h -- gzip content coding for the origin's text files (RFC 9110
 * sections 8.4 and 12.5.3).
 *
 * The origin compresses a text file when the client accepts gzip, and says
 * so with Vary: Accept-Encoding on every response for such a file, so that
 * caches keep the two representations apart.  The gzip representation has
 * its own ETag (the file's with "-gz" inside the quotes).  Compression is
 * done per request: behind the CDN only edge misses reach the origin. */
#ifndef MINICDN_COMPRESS_H
#define MINICDN_COMPRESS_H

#include "common/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COMPRESS_MIN_SIZE 256         /* smaller files gain nothing */
#define COMPRESS_MAX_SIZE (16u << 20) /* larger ones are sent as they are */

/* Whether a file of this media type and size gets a gzip representation:
 * text, JSON, JavaScript, XML, SVG and WebAssembly, COMPRESS_MIN_SIZE to
 * COMPRESS_MAX_SIZE bytes. */
bool compress_eligible(const char *media_type, uint64_t size);

/* The gzip representation's ETag from the file's ("\"x\"" -> "\"x-gz\""),
 * into out (outlen bytes).  Returns -1 if it does not fit. */
int compress_etag(const char *etag, char *out, size_t outlen);

/* Compresses len bytes of in as a gzip member appended to out.  Returns 0,
 * or -1 (out unchanged in length) if zlib fails. */
int compress_gzip(const void *in, size_t len, struct buf *out);

#endif
