/* stream.c -- one client's read position in an origin response still arriving */
#include "edge/upstream/stream.h"
#include "common/xmalloc.h"

#include <stdlib.h>
#include <string.h>

struct proxy_stream {
	struct fetch_waiter w;  /* first: the wake callback casts back */
	struct fetch *f;        /* a reference */
	const struct proxy_client_ops *ops;
	void *cls;
	uint64_t off, len;      /* len = UINT64_MAX: to the end */
	struct multipart *mp;   /* several ranges of a body being kept whole, or NULL */
};

static void wake_stream(struct fetch_waiter *w)
{
	struct proxy_stream *s = (struct proxy_stream *)w;
	s->ops->resume(s->cls);
}

struct proxy_stream *proxy_stream_open(struct fetch *f, uint64_t off, uint64_t len,
                                       struct multipart *mp, const struct proxy_client_ops *ops,
                                       void *cls)
{
	struct proxy_stream *s = xcalloc(1, sizeof *s);
	s->f = f;
	fetch_ref(f);
	s->ops = ops;
	s->cls = cls;
	s->off = off;
	s->len = len;
	s->mp = mp;
	s->w.wake = wake_stream;
	s->w.pos = mp ? 0 : off;
	pthread_mutex_lock(&f->lock);
	fetch_add_waiter(f, &s->w);
	pthread_mutex_unlock(&f->lock);
	return s;
}

/* Under f->lock: nothing to read yet; the fetch thread resumes the client. */
static ssize_t stream_wait(struct proxy_stream *s)
{
	s->w.waiting = true;
	s->ops->suspend(s->cls);
	pthread_mutex_unlock(&s->f->lock);
	return 0;
}

static ssize_t read_plain(struct proxy_stream *s, uint64_t pos, char *out, size_t max)
{
	struct fetch *f = s->f;
	if (s->len != UINT64_MAX && pos >= s->len)
		return PROXY_STREAM_END;
	uint64_t abs = s->off + pos;
	pthread_mutex_lock(&f->lock);
	uint64_t end = f->body_base + f->body.len;
	if (abs < f->body_base) {
		pthread_mutex_unlock(&f->lock);
		return PROXY_STREAM_ERROR;
	}
	if (abs < end) {
		uint64_t n = end - abs;
		if (n > max)
			n = max;
		if (s->len != UINT64_MAX && n > s->len - pos)
			n = s->len - pos;
		memcpy(out, f->body.data + (abs - f->body_base), (size_t)n);
		s->w.pos = abs + n;
		fetch_consumed(f);
		pthread_mutex_unlock(&f->lock);
		return (ssize_t)n;
	}
	if (f->state == F_DONE || f->state == F_FAILED) {
		bool ok = f->state == F_DONE && f->complete;
		pthread_mutex_unlock(&f->lock);
		return ok ? PROXY_STREAM_END : PROXY_STREAM_ERROR;
	}
	/* Waiting for bytes far into a body that is not kept (a range deep in
	 * a large object): what arrived before them is no one's, so drop it,
	 * or the transfer pauses on that backlog and never reaches them. */
	fetch_consumed(f);
	return stream_wait(s);
}

/* multipart/byteranges while the body arrives: waits for bytes not there yet. */
static ssize_t read_multipart(struct proxy_stream *s, uint64_t pos, char *out, size_t max)
{
	struct fetch *f = s->f;
	size_t done = 0;
	pthread_mutex_lock(&f->lock);
	while (done < max) {
		const char *text;
		uint64_t boff, left = range_multipart_locate(s->mp, pos + done, &text, &boff);
		if (!left)
			break;
		if (left > max - done)
			left = max - done;
		if (text) {
			memcpy(out + done, text, (size_t)left);
			done += (size_t)left;
			continue;
		}
		uint64_t end = f->body_base + f->body.len;
		if (boff < f->body_base) {
			pthread_mutex_unlock(&f->lock);
			return PROXY_STREAM_ERROR;
		}
		if (boff >= end) {
			if (done)
				break;
			if (f->state == F_DONE || f->state == F_FAILED) {
				pthread_mutex_unlock(&f->lock);
				return PROXY_STREAM_ERROR; /* short body */
			}
			return stream_wait(s);
		}
		if (left > end - boff)
			left = end - boff;
		memcpy(out + done, f->body.data + (boff - f->body_base), (size_t)left);
		done += (size_t)left;
	}
	pthread_mutex_unlock(&f->lock);
	return done ? (ssize_t)done : PROXY_STREAM_END;
}

const char *proxy_stream_whole(struct fetch *f, uint64_t off, uint64_t len, size_t *len_out)
{
	const char *p = NULL;
	pthread_mutex_lock(&f->lock);
	/* After F_DONE nothing writes to or trims a kept body any more. */
	if (f->state == F_DONE && f->complete && !f->discard && f->body_base == 0 &&
	    off <= f->body.len && (len == UINT64_MAX || len <= f->body.len - off)) {
		*len_out = (size_t)(len == UINT64_MAX ? f->body.len - off : len);
		p = f->body.data ? f->body.data + off : "";
		fetch_ref(f);
	}
	pthread_mutex_unlock(&f->lock);
	return p;
}

ssize_t proxy_stream_read(struct proxy_stream *s, uint64_t pos, char *out, size_t max)
{
	return s->mp ? read_multipart(s, pos, out, max) : read_plain(s, pos, out, max);
}

void proxy_stream_close(struct proxy_stream *s)
{
	if (s->mp) {
		range_multipart_free(s->mp);
		free(s->mp);
	}
	pthread_mutex_lock(&s->f->lock);
	fetch_remove_waiter(s->f, &s->w);
	pthread_mutex_unlock(&s->f->lock);
	fetch_unref(s->f);
	free(s);
}
