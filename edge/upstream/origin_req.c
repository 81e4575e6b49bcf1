/* origin_req.c -- the header lines of a request to the origin: the client's
 * less hop-by-hop fields and those the edge sets itself, then Host, Via,
 * X-Forwarded-For and a revalidation's validators.  Called by proxy.c as it
 * builds a fetch; calls nothing of upstream's but headers.c. */
#include "edge/upstream/origin_req.h"
#include "edge/upstream/headers.h"
#include "edge/edge.h"
#include "common/addr.h"
#include "common/encoding.h"
#include "common/xmalloc.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The lines are gathered NUL-terminated in one buffer and handed over as a
 * single block (see origin_req.h): a miss sends ten or so lines, which as a
 * curl_slist_append list cost two allocations and two frees each. */
struct hdr_build {
	struct buf text;
	size_t n;
	bool pass; /* a request passed through (not a fill): conditionals and ranges go too */
	const char *conn;
	bool had_accept;
};

/* Appends the concatenation of the strings (up to a NULL) as one line. */
static void line_cat(struct hdr_build *b, ...)
{
	va_list ap;
	va_start(ap, b);
	for (const char *p; (p = va_arg(ap, const char *));)
		buf_append(&b->text, p, strlen(p));
	va_end(ap);
	buf_append(&b->text, "", 1);
	b->n++;
}

/* Takes the lines as a curl_slist whose nodes and text share one block. */
static struct curl_slist *lines_block(struct hdr_build *b)
{
	if (!b->n)
		return NULL;
	size_t nodes = b->n * sizeof(struct curl_slist);
	char *blk = xmalloc(nodes + b->text.len);
	struct curl_slist *l = (struct curl_slist *)(void *)blk;
	char *t = blk + nodes;
	memcpy(t, b->text.data, b->text.len);
	for (size_t i = 0; i < b->n; i++) {
		l[i].data = t;
		l[i].next = i + 1 < b->n ? &l[i + 1] : NULL;
		t += strlen(t) + 1;
	}
	buf_free(&b->text);
	return l;
}

/* Is name (len bytes) one of the NULL-terminated list?  Lengths first: most
 * names match none, and a length compare is cheaper than strcasecmp. */
static bool name_in(const char *name, size_t len, const char *const *list)
{
	for (int i = 0; list[i]; i++)
		if (strlen(list[i]) == len && !strcasecmp(name, list[i]))
			return true;
	return false;
}

static void add_req_hdr(void *arg, const char *k, const char *v)
{
	struct hdr_build *b = arg;
	static const char *const never[] = { "Host", "Content-Length", "Expect", "Via",
		                             "X-Forwarded-For", NULL };
	static const char *const cond[] = { "Range", "If-Range", "If-None-Match", "If-Modified-Since",
		                            "If-Match", "If-Unmodified-Since", NULL };
	size_t kl = strlen(k);
	if (headers_hop_by_hop(k, b->conn) || name_in(k, kl, never))
		return;
	if (!b->pass && name_in(k, kl, cond))
		return;
	if (kl == 6 && !strcasecmp(k, "Accept"))
		b->had_accept = true;
	if (!b->pass && kl == 15 && !strcasecmp(k, "Accept-Encoding")) {
		/* Normalised as the cache keys its variants (cache.c): a response
		 * stored for "gzip" must be what every gzip client may get. */
		if (encoding_accepts_gzip(v))
			line_cat(b, "Accept-Encoding: gzip", NULL);
		return;
	}
	if (*v)
		line_cat(b, k, ": ", v, NULL);
	else
		line_cat(b, k, ";", NULL);
}

struct curl_slist *origin_req_headers(struct proxy_call *pc, bool pass, const char *etag,
                                      const char *lm)
{
	struct edge *e = pc->edge;
	struct hdr_build b = { BUF_INIT, 0, pass, pc->ops->header(pc->cls, "Connection"), false };
	line_cat(&b, "Host: ", pc->site->origin_host ? pc->site->origin_host : pc->host, NULL);
	pc->ops->each_header(pc->cls, add_req_hdr, &b);
	const char *via = pc->ops->header(pc->cls, "Via");
	if (via)
		line_cat(&b, "Via: ", via, ", 1.1 ", e->cfg.name, NULL);
	else
		line_cat(&b, "Via: 1.1 ", e->cfg.name, NULL);
	char ip[ADDR_STRLEN] = "unknown";
	if (pc->client)
		addr_format_ip(pc->client, ip, sizeof ip);
	const char *xff = pc->ops->header(pc->cls, "X-Forwarded-For");
	if (xff)
		line_cat(&b, "X-Forwarded-For: ", xff, ", ", ip, NULL);
	else
		line_cat(&b, "X-Forwarded-For: ", ip, NULL);
	if (etag)
		line_cat(&b, "If-None-Match: ", etag, NULL);
	if (lm)
		line_cat(&b, "If-Modified-Since: ", lm, NULL);
	if (!b.had_accept)
		line_cat(&b, "Accept:", NULL); /* no curl default */
	if (pass) /* fills are GETs, which libcurl never sends an Expect with */
		line_cat(&b, "Expect:", NULL); /* a body goes at once, no 100-continue round trip */
	if (pc->upload_chunked && pass)
		line_cat(&b, "Transfer-Encoding: chunked", NULL); /* length unknown */
	return lines_block(&b);
}
