/* slicehead.c -- a large object's head: whether a response describes an
 * object to slice, and writing the head from it */
#include "edge/upstream/slicehead.h"
#include "edge/upstream/headers.h"
#include "edge/cache/cache.h"
#include "common/hdrlist.h"
#include "common/httpdate.h"
#include "common/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void slicehead_validators(const struct buf *hdrs, struct slice_validators *v)
{
	v->etag = hdrlist_get(hdrs, "ETag");
	v->last_modified = hdrlist_get(hdrs, "Last-Modified");
	v->date = hdrlist_get(hdrs, "Date");
}

/* The origin's headers as stored: filtered, without Content-Range for the
 * head (which records the length in Content-Length instead), with a Date. */
void slicehead_headers(const struct fetch *f, bool head, uint64_t total, struct buf *hdrs,
                       struct buf *tags)
{
	struct buf all = BUF_INIT;
	headers_filter(&f->hdrs, &all, tags);
	struct hdrlist_iter it;
	const char *n, *v;
	hdrlist_init(&it, &all);
	while (hdrlist_next(&it, &n, &v)) {
		if (head && !strcasecmp(n, "Content-Range"))
			continue;
		buf_append(hdrs, n, strlen(n) + 1);
		buf_append(hdrs, v, strlen(v) + 1);
	}
	buf_free(&all);
	if (!hdrlist_get(hdrs, "Date")) {
		char d[HTTPDATE_LEN];
		buf_append(hdrs, "Date", 5);
		httpdate_format((time_t)f->response_time, d);
		buf_append(hdrs, d, strlen(d) + 1);
	}
	if (head) {
		char len[24];
		snprintf(len, sizeof len, "%" PRIu64, total);
		buf_append(hdrs, "Content-Length", 15);
		buf_append(hdrs, len, strlen(len) + 1);
	}
}

/* Writes the head at the object's key from slice response f.  Committed
 * before any client sees this response, so a request that follows one
 * answered from it finds the head it promised; heads are written once per
 * object and on changes, so the fetch thread rarely waits for this. */
void slicehead_store(struct edge *e, const char *key, const struct fetch *f,
                     const struct fresh_out *fo, uint64_t purge_seq, uint64_t total)
{
	struct buf hdrs = BUF_INIT, tags = BUF_INIT;
	slicehead_headers(f, true, total, &hdrs, &tags);
	struct entry_meta m;
	entry_meta_from(fo, f->request_time, f->response_time, 200, purge_seq, &m);
	m.flags |= ENTRY_F_SLICED;
	log_debug("slicehead", "head %s length %" PRIu64, key, total);
	cache_store(e->cache, key, NULL, NULL, NULL, &m, hdrs.data, hdrs.len,
	            tags.data ? tags.data : "", tags.len, NULL, 0);
	buf_free(&hdrs);
	buf_free(&tags);
}

/* Whether a response (storable as fo says) describes an object to slice. */
bool slicehead_wanted(struct edge *e, const struct fetch *f, const struct fresh_out *fo,
                      uint64_t total)
{
	const struct edge_config *live = edge_live(e);
	struct slice_validators v;
	slicehead_validators(&f->hdrs, &v);
	return fo->storable && !hdrlist_get(&f->hdrs, "Vary") && slice_strong(&v) &&
	       slice_wanted(total, live->cache.slice_size, live->cache.slice_min,
	                    live->cache.max_sliced_object_size);
}

void slicehead_note_whole(struct edge *e, const char *key, const struct fetch *f,
                          const struct fresh_out *fo, uint64_t purge_seq)
{
	if (f->content_length >= 0 && slicehead_wanted(e, f, fo, (uint64_t)f->content_length))
		slicehead_store(e, key, f, fo, purge_seq, (uint64_t)f->content_length);
}
