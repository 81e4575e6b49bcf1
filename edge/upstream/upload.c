/* upload.c -- a request body streamed to the origin: the proxy side of
 * fetch_upload_* (proxy.h has the contract) */
#include "edge/upstream/proxy.h"

#include <string.h>

void proxy_upload_start(struct proxy_call *pc, int64_t length)
{
	struct edge *e = pc->edge;
	pc->upload_chunked = length < 0; /* origin_headers says chunked */
	struct fetch *f = proxy_pass_fetch(pc);
	fetch_upload_init(f, length, pc->ops->resume, pc->cls);
	/* The transfer lasts as long as the client takes to send the body:
	 * the body deadline on top of the origin's. */
	f->timeout_ms = e->cfg.upstream.timeout_ms + e->cfg.limits.body_timeout_ms;
	pc->f = f; /* proxy_pass_fetch's reference */
	pc->leader = true;
	fetch_submit(e->fetcher, f);
}

bool proxy_upload_put(struct proxy_call *pc, const char *p, size_t n, size_t *taken)
{
	return fetch_upload_put(pc->f, p, n, taken, pc->ops->suspend) == FETCH_PUT_OK;
}

void proxy_upload_end(struct proxy_call *pc, struct proxy_answer *a)
{
	struct fetch *f = pc->f;
	fetch_upload_end(f);
	memset(a, 0, sizeof *a);
	pthread_mutex_lock(&f->lock);
	if (f->state == F_PENDING) {
		proxy_wait(pc, f, a); /* keeps pc->f's reference */
		pthread_mutex_unlock(&f->lock);
		return;
	}
	pthread_mutex_unlock(&f->lock);
	proxy_resume(pc, a);
}
