/* cache.h -- the LMDB object store: lookup, store, update, purge, eviction.
 *
 * One environment, five named databases:
 *   e  storage key -> reference (body id + last access) or a Vary record
 *      ("MCV1" + header names): small records, dozens per page
 *   b  body id -> entry (entry.h: meta, headers, tags, body, crc32); ids only
 *      grow and are appended (MDB_APPEND), so pages fill sequentially
 *   l  be64(access) + storage key -> "" (oldest first: the eviction order)
 *   t  tag -> storage key (dupsort), for purge by Surrogate-Key / Cache-Tag
 *   m  "bytes" accounted size, "format" (store layout), "clean" (set only by
 *      cache_close after the final sync: the next start skips body checksums)
 * Each store/update/purge is one write transaction (the writer thread: one
 * transaction for a batch of stores, 304 updates and purges, in queue
 * order), so readers and crashes only ever see whole entries.  Thread-safe:
 * any thread may call anything.
 *
 * Keys longer than LMDB's 511-byte limit are stored as their first 400 bytes
 * plus a hash, so prefix purges look at most at the first 400 bytes.
 *
 * The code is split by concern (open/close, read side, writer, purges,
 * records and eviction, start-up check); store_int.h, private to
 * edge/cache/, lists the files and which way they call. */
#ifndef MINICDN_CACHE_H
#define MINICDN_CACHE_H

#include "common/buf.h"
#include "edge/cache/entry.h"
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

struct cache;
struct cache_ref; /* a held read transaction: keeps a hit's bytes valid */

struct cache_opts {
	const char *path;     /* directory, created if missing */
	uint64_t map_size;    /* bytes */
	unsigned max_readers; /* concurrent zero-copy hits in flight */
	double high_water;    /* evict when accounted bytes exceed this fraction of the map */
	double low_water;     /* ... down to this fraction */
	int64_t check_ms;     /* after an unclean stop, how long the start waits for body
	                         checksums before verifying the rest in the background;
	                         0 = until they are all verified */
	uint64_t verify_rate; /* that background pass's bytes per second, 0 = no limit */
};

/* Opens (creating) the store.  Returns NULL with the reason in err. */
struct cache *cache_open(const struct cache_opts *o, char *err, size_t errlen);
/* Flushes pending LRU touches and closes the environment.  Every cache_ref
 * must have been released before. */
void cache_close(struct cache *c);

/* Returns the request header value for name (lower-case), or NULL. */
typedef const char *(*cache_header_fn)(void *cls, const char *name);

enum cache_result { CACHE_MISS = 0, CACHE_HIT, CACHE_VARY_MISS };

/* Looks up the primary key (cachekey.h).  On CACHE_HIT, *ref holds a read
 * transaction and out points into the map (zero-copy) until
 * cache_ref_release(*ref); storage_key (optional) receives the key of the
 * variant found.  On a miss *ref is NULL.  Vary records are resolved with
 * hdr(cls, name).  Cost: two B-tree lookups, "e" then "b" (three for a
 * Vary'd object). */
enum cache_result cache_lookup(struct cache *c, const char *key, cache_header_fn hdr, void *cls,
                               struct cache_ref **ref, struct entry_view *out,
                               struct buf *storage_key);
/* Ends the read transaction of a hit; may be called from any thread. */
void cache_ref_release(struct cache *c, struct cache_ref *ref);

/* Builds the storage key of the variant selected by vary (a Vary header value,
 * may be NULL) for a request. */
void cache_variant_key(const char *key, const char *vary, cache_header_fn hdr, void *cls,
                       struct buf *out);

/* Stores a response as if it came from the origin (also used by scripts):
 * key is the primary key, vary the response's Vary value (or NULL); the
 * bytes are copied.  Evicts LRU entries first when the store is near full;
 * returns 0, or -1 if it could not be stored (never fatal for the request). */
int cache_store(struct cache *c, const char *key, const char *vary, cache_header_fn hdr, void *cls,
                const struct entry_meta *m, const char *hdrs, size_t hdrs_len, const char *tags,
                size_t tags_len, const void *body, uint64_t body_len);

/* The same, done by the cache's writer thread, which commits up to 64 queued
 * stores per transaction (group commit: one commit's page writes serve many
 * entries).  Every pointer is borrowed until done(cls, rc) runs in the
 * writer thread once the entry is committed (rc 0) or given up (rc -1).
 * Each entry is still atomic: readers see it whole or not at all.  Stores
 * queued when cache_close() is called are written first. */
void cache_store_async(struct cache *c, const char *key, const char *vary, cache_header_fn hdr,
                       void *hcls, const struct entry_meta *m, const char *hdrs, size_t hdrs_len,
                       const char *tags, size_t tags_len, const void *body, uint64_t body_len,
                       void (*done)(void *cls, int rc), void *cls);

/* After a 304: replaces the meta and headers of the entry at storage_key,
 * keeping tags and body (the "b" record is rewritten under the same id: the
 * body is copied once).  Returns 0, or -1 if the entry is gone. */
int cache_update(struct cache *c, const char *storage_key, const struct entry_meta *m,
                 const char *hdrs, size_t hdrs_len);

/* The same, done by the writer thread in its next group commit, so a
 * revalidation costs no transaction of its own and never waits for the
 * write lock.  storage_key, m and hdrs are borrowed until done(cls, rc)
 * runs in the writer thread: rc 0 once committed, -1 if the entry is gone
 * or the write failed.  In queue order with stores and purges: a purge
 * queued after it removes what it wrote.  Until done, readers see the old
 * meta and headers (same body). */
void cache_update_async(struct cache *c, const char *storage_key, const struct entry_meta *m,
                        const char *hdrs, size_t hdrs_len, void (*done)(void *cls, int rc),
                        void *cls);

/* The purge sequence: record it in entry_meta.purge_seq when a request to
 * the origin is sent; a store of its response is then dropped if any purge
 * covering it ran after that moment, however close (without it, request
 * times in whole seconds leave a one-second window). */
uint64_t cache_purge_seq(struct cache *c);

/* Purges; each returns the number of entries removed (variants count one
 * each), or -1.  A purge is queued behind the stores already queued by
 * cache_store_async and the caller waits for its commit, so a store queued
 * before the purge is never committed after it.  The last 128 purges are
 * also remembered: a later store of a response whose meta.request_time is
 * an earlier second than a purge covering it (same key, prefix or tag: a
 * fetch still running when the purge came) is dropped (rc -1).  From the
 * writer thread itself (a done callback) a purge runs at once. */
long cache_purge_key(struct cache *c, const char *key);     /* the key and its variants */
/* prefix: "scope://host/p", "/p" (any host, any scope) or "scope:///p"
 * (any host of that scope).  tag: "T", or "scope://" CACHEKEY_VARY_SEP "T"
 * for the entries of that scope tagged T (scopes: cachekey.h). */
long cache_purge_prefix(struct cache *c, const char *prefix);
long cache_purge_tag(struct cache *c, const char *tag);

/* What a purge matches (0 is never a kind). */
enum cache_purge_kind { CACHE_PURGE_KEY = 1, CACHE_PURGE_PREFIX, CACHE_PURGE_TAG };

/* The same purges without waiting: arg is copied, the purge is queued
 * behind the stores already queued, and done(cls, n) runs once it is
 * committed (n as above, -1 on failure) -- in the writer thread, so done
 * must not block and must not purge or store synchronously; or before this
 * returns when no writer runs, or when called from the writer itself.  A
 * caller serving other requests (an MHD worker thread) uses this: waiting
 * for the writer would stall every connection it serves. */
void cache_purge_async(struct cache *c, enum cache_purge_kind kind, const char *arg,
                       void (*done)(void *cls, long n), void *cls);

/* Records an access for the LRU (cheap: queued, written by cache_maintain);
 * storage_key is copied. */
void cache_touch(struct cache *c, const char *storage_key);
/* Writes queued touches; call about once a second from one thread. */
void cache_maintain(struct cache *c);

struct cache_stats {
	uint64_t entries, bytes, map_size, evicted, store_failed;
	bool unverified;     /* bodies from before an unclean stop still being verified */
	uint64_t bad_bodies; /* of those, found with a bad checksum (never served) */
};
void cache_get_stats(struct cache *c, struct cache_stats *s);

#endif
