/* slice.h -- large objects stored as fixed-size slices: slice geometry, the
 * slices' storage keys, the origin Range that fetches one, checking the
 * origin's 206 against the slice asked, and whether two responses' validators
 * tie them to the same representation (RFC 9111 3.3-3.4).
 *
 * Pure arithmetic and string work, no I/O.  docs/edge.md ("Large objects:
 * slices") describes how the edge uses it.  Tested in
 * tests/unit/edge/test_slice.c. */
#ifndef MINICDN_SLICE_H
#define MINICDN_SLICE_H

#include "common/buf.h"
#include <stdbool.h>
#include <stdint.h>

/* The marker after CACHEKEY_VARY_SEP in a slice's storage key.  It starts
 * with a control character no normalised key or header value the edge keys
 * variants on carries, so "key<SEP>\x1eslice=S/I" is never a variant of a
 * Vary'd response, and purging the key (which also deletes "key<SEP>...")
 * removes every slice with it. */
#define SLICE_KEY_MARK "\x1eslice="

/* Appends the storage key of slice index (of size bytes each) of the object
 * whose primary key is key: "key" SEP SLICE_KEY_MARK "size/index".  The size
 * is part of the key so that changing the configured slice size never mixes
 * geometries. */
void slice_key(const char *key, uint64_t size, uint64_t index, struct buf *out);

/* Whether a storage key is a slice's (as made by slice_key). */
bool slice_is_key(const char *storage_key);

/* The bytes of slice index: [*first, *last] of a representation of total
 * bytes (total < 0: not known yet, the slice's full size is assumed).
 * Returns false if the slice starts at or past the end (nothing to fetch). */
bool slice_bounds(uint64_t index, uint64_t size, int64_t total, uint64_t *first, uint64_t *last);

/* The slices [*i0, *i1] that the byte range [first, last] covers. */
void slice_span(uint64_t first, uint64_t last, uint64_t size, uint64_t *i0, uint64_t *i1);

/* The value of the Range header that asks the origin for slice index
 * (total < 0: not known yet), e.g. "bytes=1048576-2097151".  out: at least
 * SLICE_RANGE_LEN bytes.  Returns false as slice_bounds does. */
#define SLICE_RANGE_LEN 48
bool slice_range_header(uint64_t index, uint64_t size, int64_t total, char *out);

/* For a request on an object of unknown length: the first byte of a Range
 * header with exactly one int-range ("bytes=first-" or "bytes=first-last",
 * RFC 9110 14.1.2).  Returns false for anything else (absent, suffix ranges,
 * several ranges, syntax errors): such requests go the ordinary way. */
bool slice_first_byte(const char *range, uint64_t *first);

/* Parses a 206's Content-Range "bytes first-last/complete-length" (RFC 9110
 * 14.4) strictly: one space after the unit, no "*" length, first <= last <
 * length.  Returns false on anything else. */
bool slice_parse_content_range(const char *v, uint64_t *first, uint64_t *last, uint64_t *total);

enum slice_check {
	SLICE_MATCH = 0,     /* the 206 holds exactly the slice asked for */
	SLICE_WHOLE,         /* a 200: the origin ignored Range and sent everything */
	SLICE_BAD_RANGE,     /* a 206 for other bytes, or a malformed Content-Range */
	SLICE_NEW_LENGTH,    /* a 206 for the slice, but the length differs from known_total */
	SLICE_UNUSABLE       /* any other status (416, 304, errors): not a slice */
};

/* Checks the origin's answer to slice index's Range request: status and its
 * Content-Range value (NULL if absent) against the slice's bounds.
 * known_total: the representation's length as recorded (< 0: not known; the
 * 206 then sets it).  *total receives the 206's complete length. */
enum slice_check slice_check_response(unsigned status, const char *content_range, uint64_t index,
                                      uint64_t size, int64_t known_total, uint64_t *total);

/* A response's validators as they tie slices together (strings borrowed). */
struct slice_validators {
	const char *etag;           /* NULL: none */
	const char *last_modified;  /* NULL: none */
	const char *date;           /* the response's Date, NULL: none */
};

/* Whether the response has a strong validator (RFC 9110 8.8.1): a strong
 * ETag, or without an ETag a Last-Modified at least 60 seconds before its
 * Date (RFC 9110 8.8.2.2).  Only such an object is sliced: without one, a
 * slice fetched later could come from another version and nothing would
 * tell. */
bool slice_strong(const struct slice_validators *v);

/* RFC 9111 3.4: whether two responses may be combined -- both carry the same
 * strong validator (strong comparison of ETags; without ETags on either, the
 * same strong Last-Modified).  A weak or missing validator never matches. */
bool slice_validators_match(const struct slice_validators *a, const struct slice_validators *b);

/* Whether an object of total bytes is stored in slices: above min_size (the
 * configured threshold) and at most max_size (the separate limit for sliced
 * objects; 0: no limit).  size 0 disables slicing. */
bool slice_wanted(uint64_t total, uint64_t size, uint64_t min_size, uint64_t max_size);

#endif
