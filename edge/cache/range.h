/* range.h -- byte ranges (RFC 9110 14): parsing a Range header against a
 * representation and laying out multipart/byteranges bodies.
 *
 * No I/O: the multipart body is produced piece by piece from the
 * representation's bytes (range_multipart_read), so a response callback
 * can serve it straight from a cached body without assembling a copy.
 * Tested in tests/unit/edge/test_range.c. */
#ifndef MINICDN_RANGE_H
#define MINICDN_RANGE_H

#include "common/buf.h"
#include <stddef.h>
#include <stdint.h>

/* More ranges than this in one request: the Range header is ignored (200 with
 * the whole object), as servers do against range abuse (RFC 9110 14.2). */
#define RANGE_MAX 16

struct byte_range {
	uint64_t first, last; /* inclusive, last < the representation's length */
};

enum range_result {
	RANGE_IGNORE = 0,        /* serve the whole representation (200) */
	RANGE_OK = 1,            /* *n satisfiable ranges in out[], in request order */
	RANGE_UNSATISFIABLE = -1 /* no range overlaps the representation: 416 */
};

/* Parses a Range header value (NULL = absent) against len bytes.  Ignored:
 * absent, a unit other than bytes, any syntax error (including last < first),
 * more than RANGE_MAX ranges, or satisfiable ranges that add up to more than
 * len bytes (overlapping or repeated ranges used to amplify the response).
 * Unsatisfiable ranges among satisfiable ones are dropped; a last-pos past
 * the end is clamped; a suffix range longer than len selects all of it. */
enum range_result range_parse(const char *h, uint64_t len, struct byte_range *out, unsigned *n);

/* A multipart/byteranges body (RFC 9110 14.6) for n >= 2 ranges:
 *   "--B\r\n" [Content-Type: T\r\n] "Content-Range: bytes a-b/len\r\n\r\n" DATA
 *   "\r\n--B\r\n" ... DATA "\r\n--B--\r\n"
 * The framing text is kept once; the parts' bytes are read from the body. */
struct multipart {
	struct buf text;                     /* all framing strings, concatenated */
	size_t seg_off[RANGE_MAX + 1];       /* framing before part i, i = n: the closing one */
	size_t seg_len[RANGE_MAX + 1];
	struct byte_range r[RANGE_MAX];
	unsigned n;
	uint64_t total;                      /* the body's length (Content-Length) */
};

/* Lays out the body.  boundary: 1..70 characters from RFC 2046's bchars
 * without space; content_type may be NULL (no per-part Content-Type).  Owns
 * m->text until range_multipart_free(). */
void range_multipart_init(struct multipart *m, const char *boundary, const char *content_type,
                          const struct byte_range *r, unsigned n, uint64_t len);
void range_multipart_free(struct multipart *m);

/* Copies up to max bytes of the multipart body starting at pos into out,
 * taking the parts' bytes from body (the whole representation, borrowed).
 * Returns the number of bytes copied (0 at or past the end).  Cost: a walk
 * over at most 2n+1 segments per call. */
size_t range_multipart_read(const struct multipart *m, const uint8_t *body, uint64_t pos, char *out,
                            size_t max);

/* For a body that is still arriving: where byte pos of the multipart body
 * comes from.  Returns how many bytes from pos on stay in the same segment
 * (0 at or past the end); sets *text to the framing bytes at pos, or to NULL
 * with *body_off the representation offset of pos. */
uint64_t range_multipart_locate(const struct multipart *m, uint64_t pos, const char **text,
                                uint64_t *body_off);

/* Writes a boundary of 32 characters (plus NUL) into out: "minicdn-" and 24
 * hex digits from a per-process counter mixed with the time and seed, so two
 * responses rarely share one and a body is unlikely to contain it. */
void range_boundary(char out[33], uint64_t seed);

#endif
