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

/* Appends the concatenation of the strings (up to a NULL) to l as one header
 * line; curl copies it.  Built on the stack unless unusually long: a miss
 * builds five or more of these. */
static struct curl_slist *slist_cat(struct curl_slist *l, ...)
{
	char stack[512];
	size_t len = 0;
	va_list ap;
	va_start(ap, l);
	for (const char *p; (p = va_arg(ap, const char *));)
		len += strlen(p);
	va_end(ap);
	char *line = len < sizeof stack ? stack : xmalloc(len + 1);
	size_t at = 0;
	va_start(ap, l);
	for (const char *p; (p = va_arg(ap, const char *));) {
		size_t n = strlen(p);
		memcpy(line + at, p, n);
		at += n;
	}
	va_end(ap);
	line[at] = '\0';
	l = curl_slist_append(l, line);
	if (line != stack)
		free(line);
	return l;
}

struct hdr_build {
	struct curl_slist *l;
	bool pass; /* a request passed through (not a fill): conditionals and ranges go too */
	const char *conn;
	bool had_accept;
	const char *via, *xff;
};

static void add_req_hdr(void *arg, const char *k, const char *v)
{
	struct hdr_build *b = arg;
	static const char *const never[] = { "Host", "Content-Length", "Expect", "Via",
		                             "X-Forwarded-For", NULL };
	static const char *const cond[] = { "Range", "If-Range", "If-None-Match", "If-Modified-Since",
		                            "If-Match", "If-Unmodified-Since", NULL };
	if (headers_hop_by_hop(k, b->conn))
		return;
	for (int i = 0; never[i]; i++)
		if (!strcasecmp(k, never[i]))
			return;
	if (!b->pass)
		for (int i = 0; cond[i]; i++)
			if (!strcasecmp(k, cond[i]))
				return;
	if (!strcasecmp(k, "Accept"))
		b->had_accept = true;
	if (!b->pass && !strcasecmp(k, "Accept-Encoding")) {
		/* Normalised as the cache keys its variants (cache.c): a response
		 * stored for "gzip" must be what every gzip client may get. */
		if (encoding_accepts_gzip(v))
			b->l = slist_cat(b->l, "Accept-Encoding: gzip", NULL);
		return;
	}
	b->l = *v ? slist_cat(b->l, k, ": ", v, NULL) : slist_cat(b->l, k, ";", NULL);
}

struct curl_slist *origin_req_headers(struct proxy_call *pc, bool pass, const char *etag,
                                      const char *lm)
{
	struct edge *e = pc->edge;
	struct hdr_build b = { NULL, pass, pc->ops->header(pc->cls, "Connection"), false, NULL, NULL };
	b.l = slist_cat(b.l, "Host: ", pc->site->origin_host ? pc->site->origin_host : pc->host, NULL);
	pc->ops->each_header(pc->cls, add_req_hdr, &b);
	const char *via = pc->ops->header(pc->cls, "Via");
	b.l = via ? slist_cat(b.l, "Via: ", via, ", 1.1 ", e->cfg.name, NULL)
	          : slist_cat(b.l, "Via: 1.1 ", e->cfg.name, NULL);
	char ip[ADDR_STRLEN] = "unknown";
	if (pc->client)
		addr_format_ip(pc->client, ip, sizeof ip);
	const char *xff = pc->ops->header(pc->cls, "X-Forwarded-For");
	b.l = xff ? slist_cat(b.l, "X-Forwarded-For: ", xff, ", ", ip, NULL)
	          : slist_cat(b.l, "X-Forwarded-For: ", ip, NULL);
	if (etag)
		b.l = slist_cat(b.l, "If-None-Match: ", etag, NULL);
	if (lm)
		b.l = slist_cat(b.l, "If-Modified-Since: ", lm, NULL);
	if (!b.had_accept)
		b.l = curl_slist_append(b.l, "Accept:"); /* no curl default */
	b.l = curl_slist_append(b.l, "Expect:");
	if (pc->upload_chunked && pass)
		b.l = curl_slist_append(b.l, "Transfer-Encoding: chunked"); /* length unknown */
	return b.l;
}
