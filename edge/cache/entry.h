/* entry.h -- the on-disk encoding of one cached response (one LMDB value).
 *
 * Layout (all integers little-endian, fixed 72-byte header first):
 *   magic "MCE3" | status u16 | flags u16 | request_time i64 | response_time i64 |
 *   date i64 | age_value i64 | lifetime i32 | swr i32 | sie i32 | hdr_len u32 |
 *   tags_len u32 | crc u32 | body_len u64
 *   headers: hdr_len bytes of "name\0value\0" pairs (hop-by-hop already removed)
 *   tags:    tags_len bytes of "tag\0" strings (Surrogate-Key / Cache-Tag)
 *   body:    body_len bytes
 * The metadata and the body live in the same value (the store's "b" record,
 * cache.h), written in one LMDB transaction, so a crash can never leave a
 * header without its body.  crc is zlib's crc32 of every other byte of the
 * value (header, headers, tags, body): it lets the start-up check find
 * bytes that never reached the disk (entry_verify).  MCE2 (no crc, stored
 * under the URL) is not read: cache.c moves such a store aside.
 * Times are seconds since the epoch. */
#ifndef MINICDN_ENTRY_H
#define MINICDN_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#define ENTRY_HDR_SIZE 72
#define ENTRY_MAX_HEADERS 128

/* flags */
#define ENTRY_F_MUST_REVALIDATE 0x01 /* must-revalidate / proxy-revalidate / s-maxage */
#define ENTRY_F_NO_CACHE        0x02 /* stored, but always revalidated before use */
#define ENTRY_F_HEURISTIC       0x04 /* lifetime came from the Last-Modified heuristic */
#define ENTRY_F_SLICED          0x08 /* a large object's head: its bytes are in slices (slice.h) */

struct entry_header { /* borrowed views into the encoded value */
	const char *name;
	const char *value;
};

struct entry_meta {
	unsigned status;
	unsigned flags;
	int64_t request_time;  /* when the request that got this response was sent */
	int64_t response_time; /* when the response was received */
	int64_t date;          /* Date header value (response_time if absent) */
	int64_t age_value;     /* Age header value received (0 if absent) */
	int32_t lifetime;      /* freshness lifetime in seconds (freshness.c) */
	int32_t swr;           /* stale-while-revalidate seconds, -1 none */
	int32_t sie;           /* stale-if-error seconds, -1 none */
	uint64_t purge_seq;    /* not stored: cache_purge_seq() when the request was
	                        * sent, 0 if unknown (then request_time decides) */
};

/* A decoded entry: pointers borrowed from the encoded bytes (valid as long as
 * they are: for an LMDB value, until the read transaction ends). */
struct entry_view {
	struct entry_meta meta;
	const char *hdrs;  size_t hdrs_len;
	const char *tags;  size_t tags_len;
	const uint8_t *body; uint64_t body_len;
};

struct fresh_out;
/* The meta to store for a response evaluated as fo (freshness.h), received
 * at response_time for a request sent at request_time (seconds), with
 * status; purge_seq as cache_purge_seq() gave it when the request was sent. */
void entry_meta_from(const struct fresh_out *fo, int64_t request_time, int64_t response_time,
                     unsigned status, uint64_t purge_seq, struct entry_meta *m);

/* Bytes needed to encode an entry. */
size_t entry_size(size_t hdrs_len, size_t tags_len, uint64_t body_len);
/* Writes the encoding into dst (entry_size() bytes), checksum included.
 * hdrs/tags are the packed "a\0b\0" blocks described above; body may be
 * NULL if body_len is 0. */
void entry_write(void *dst, const struct entry_meta *m, const char *hdrs, size_t hdrs_len,
                 const char *tags, size_t tags_len, const void *body, uint64_t body_len);
/* Validates and decodes.  Returns 0, or -1 if the bytes are not a well-formed
 * entry (wrong magic, lengths past the end, unterminated strings). */
int entry_decode(const void *p, size_t len, struct entry_view *out);
/* Iterates over headers: *pos starts at 0; returns 1 and fills h, or 0 at the end. */
int entry_next_header(const struct entry_view *v, size_t *pos, struct entry_header *h);
/* First header with this name (case-insensitive), or NULL. */
const char *entry_get_header(const struct entry_view *v, const char *name);
/* Recomputes the checksum of an encoded value (len bytes, already decoded
 * once) and compares it with the stored one.  Returns 0 if they match, -1
 * if not.  Cost: reads every byte (crc32, a few GB/s). */
int entry_verify(const void *p, size_t len);

#endif
