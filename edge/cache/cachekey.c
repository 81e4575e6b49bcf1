/* cachekey.c -- request target normalisation into cache keys */
#include "edge/cache/cachekey.h"
#include "common/glob.h"
#include "common/xmalloc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum query_mode cachekey_query_mode(const struct query_rule *rules, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++) {
		if (!glob_match_str(rules[i].path, path))
			continue;
		if (!strcmp(rules[i].mode, "sort"))
			return QUERY_SORT;
		if (!strcmp(rules[i].mode, "ignore"))
			return QUERY_IGNORE;
		return QUERY_KEEP;
	}
	return QUERY_KEEP;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

static int unreserved(int c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Percent-normalises path[0..len) into dst (room for len bytes).  Returns
 * the length written, or -1 on a byte or escape no path may carry. */
static long percent_normalize(const char *path, size_t len, char *dst)
{
	static const char hx[] = "0123456789ABCDEF"; /* a constant table */
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)path[i];
		if (c <= 0x20 || c >= 0x7f)
			return -1;
		if (c != '%') {
			dst[o++] = (char)c;
			continue;
		}
		if (i + 2 >= len)
			return -1;
		int h = hexval(path[i + 1]), l = hexval(path[i + 2]);
		if (h < 0 || l < 0 || (h | l) == 0)
			return -1;
		int v = h * 16 + l;
		if (unreserved(v)) {
			dst[o++] = (char)v;
		} else { /* never longer than the input: "%xx" stays three bytes */
			dst[o++] = '%';
			dst[o++] = hx[v >> 4];
			dst[o++] = hx[v & 15];
		}
		i += 2;
	}
	return (long)o;
}

int cachekey_normalize_path(const char *path, size_t len, struct buf *out)
{
	if (len == 0 || path[0] != '/')
		return -1;
	/* Pass 1 into a scratch copy (on the stack for ordinary paths): the
	 * output is never longer than the input. */
	char stack[1024];
	char *in = len <= sizeof stack ? stack : xmalloc(len);
	long n = percent_normalize(path, len, in);
	if (n < 0) {
		if (in != stack)
			free(in);
		return -1;
	}
	/* Pass 2: remove dot segments (RFC 3986 5.2.4) on whole segments.  An
	 * encoded "%2E" was already decoded above, so "/%2e%2e/" is caught too.
	 * Writes straight into out, reserved once. */
	buf_reserve(out, (size_t)n + 1);
	char *o = out->data;
	size_t start = out->len, w = start;
	size_t i = 0;
	while (i < (size_t)n) {
		/* in[i] == '/' always here */
		size_t j = i + 1;
		while (j < (size_t)n && in[j] != '/')
			j++;
		const char *seg = in + i + 1;
		size_t slen = j - i - 1;
		if (slen == 1 && seg[0] == '.') {
			if (j == (size_t)n)
				o[w++] = '/';
		} else if (slen == 2 && seg[0] == '.' && seg[1] == '.') {
			/* drop the last output segment, never above the root */
			while (w > start && o[w - 1] != '/')
				w--;
			if (w > start)
				w--;
			if (j == (size_t)n)
				o[w++] = '/';
		} else {
			memcpy(o + w, in + i, j - i);
			w += j - i;
		}
		i = j;
	}
	if (w == start)
		o[w++] = '/';
	o[w] = '\0';
	out->len = w;
	if (in != stack)
		free(in);
	return 0;
}

int cachekey_normalize_host(const char *host, size_t len, struct buf *out)
{
	if (len == 0 || len > 255)
		return -1;
	buf_reserve(out, len);
	char *o = out->data + out->len;
	/* One table lookup per character (this runs for every request) instead
	 * of the locale's ctype calls: 1 for the characters allowed in a host. */
	static const unsigned char host_char[256] = {
		['0' ... '9'] = 1, ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1,
		['-'] = 1, ['.'] = 1, [':'] = 1, ['['] = 1, [']'] = 1, ['_'] = 1,
	};
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)host[i];
		if (!host_char[c])
			return -1;
		o[i] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
	}
	/* Drop a trailing ":80" (default port) and a trailing dot of an FQDN. */
	if (len > 3 && !memcmp(o + len - 3, ":80", 3))
		len -= 3;
	if (len > 1 && o[len - 1] == '.')
		len--;
	if (len == 0)
		return -1;
	o[len] = '\0';
	out->len += len;
	return 0;
}

struct qparam { const char *p; size_t n; };

static int qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	size_t n = x->n < y->n ? x->n : y->n;
	int c = memcmp(x->p, y->p, n);
	return c ? c : (x->n < y->n ? -1 : x->n > y->n);
}

static void append_query(struct buf *k, const char *q, size_t qlen, enum query_mode mode)
{
	if (mode == QUERY_IGNORE || qlen == 0)
		return;
	buf_append(k, "?", 1);
	if (mode == QUERY_KEEP) {
		buf_append(k, q, qlen);
		return;
	}
	size_t cnt = 1;
	for (size_t i = 0; i < qlen; i++)
		cnt += q[i] == '&';
	struct qparam *ps = xmalloc(cnt * sizeof *ps);
	size_t np = 0, s = 0;
	for (size_t i = 0; i <= qlen; i++) {
		if (i == qlen || q[i] == '&') {
			if (i > s)
				ps[np++] = (struct qparam){ q + s, i - s };
			s = i + 1;
		}
	}
	qsort(ps, np, sizeof *ps, qparam_cmp);
	for (size_t i = 0; i < np; i++) {
		if (i)
			buf_append(k, "&", 1);
		buf_append(k, ps[i].p, ps[i].n);
	}
	free(ps);
}

int cachekey_split(const char *target, const char *host_hdr, struct buf *path_out, struct buf *host_out)
{
	const char *p = target;
	const char *host = host_hdr;
	size_t hlen = host_hdr ? strlen(host_hdr) : 0;
	if (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0) {
		p += p[4] == 's' || p[4] == 'S' ? 8 : 7;
		const char *e = p + strcspn(p, "/?#");
		host = p;
		hlen = (size_t)(e - p);
		if (memchr(p, '@', hlen))
			return -1; /* userinfo: never part of a key */
		p = e;
		if (*p == '\0')
			p = "/";
	}
	if (!host || hlen == 0 || *p != '/')
		return -1;
	if (strlen(target) > CACHEKEY_MAX)
		return -1;
	const char *q = strchr(p, '?');
	const char *hash = strchr(p, '#');
	if (hash && (!q || hash < q))
		return -1; /* fragments are never sent by conforming clients */
	size_t plen = q ? (size_t)(q - p) : strlen(p);
	const char *qs = q ? q + 1 : "";
	size_t qlen = strlen(qs);
	if (hash)
		qlen = (size_t)(hash - qs);
	for (size_t i = 0; i < qlen; i++)
		if ((unsigned char)qs[i] <= 0x20 || (unsigned char)qs[i] >= 0x7f)
			return -1;
	if (cachekey_normalize_host(host, hlen, host_out) < 0)
		return -1;
	/* Sized once: the normalised path is never longer than the raw one. */
	buf_reserve(path_out, plen + qlen + 2);
	if (cachekey_normalize_path(p, plen, path_out) < 0)
		return -1;
	if (qlen) {
		buf_append(path_out, "?", 1);
		buf_append(path_out, qs, qlen);
	}
	return 0;
}

void cachekey_join(const char *scope, const char *host, size_t hlen, const char *path_query,
                   size_t len, const struct query_rule *rules, size_t nrules, struct buf *key)
{
	/* A normalised path has no '?' (an encoded one stays "%3F"). */
	const char *q = memchr(path_query, '?', len);
	size_t plen = q ? (size_t)(q - path_query) : len;
	size_t sl = strlen(scope);
	buf_reserve(key, sl + 3 + len + hlen + 1);
	buf_append(key, scope, sl);
	buf_append(key, "://", 3);
	buf_append(key, host, hlen);
	size_t pstart = key->len;
	buf_append(key, path_query, plen);
	/* key->data + pstart is the NUL-terminated normalised path here. */
	enum query_mode mode = nrules ? cachekey_query_mode(rules, nrules, key->data + pstart)
	                              : QUERY_KEEP;
	if (q)
		append_query(key, q + 1, len - plen - 1, mode);
}

int cachekey_build(const char *scope, const char *target, const char *host_hdr,
                   const struct query_rule *rules, size_t nrules, struct buf *key,
                   struct buf *path_out, struct buf *host_out)
{
	struct buf path = BUF_INIT, host = BUF_INIT;
	struct buf *pb = path_out ? path_out : &path, *hb = host_out ? host_out : &host;
	size_t p0 = pb->len, h0 = hb->len;
	int rc = cachekey_split(target, host_hdr, pb, hb);
	if (rc == 0)
		cachekey_join(scope, hb->data + h0, hb->len - h0, pb->data + p0, pb->len - p0, rules,
		              nrules, key);
	buf_free(&path);
	buf_free(&host);
	return rc;
}
