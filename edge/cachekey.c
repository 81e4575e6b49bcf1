/* cachekey.c -- request target normalisation into cache keys */
#include "edge/cachekey.h"
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

int cachekey_normalize_path(const char *path, size_t len, struct buf *out)
{
	if (len == 0 || path[0] != '/')
		return -1;
	/* Pass 1: percent-normalise into tmp. */
	struct buf tmp = BUF_INIT;
	buf_reserve(&tmp, len + 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)path[i];
		if (c <= 0x20 || c >= 0x7f)
			goto fail;
		if (c == '%') {
			if (i + 2 >= len)
				goto fail;
			int h = hexval(path[i + 1]), l = hexval(path[i + 2]);
			if (h < 0 || l < 0)
				goto fail;
			int v = h * 16 + l;
			if (v == 0)
				goto fail;
			if (unreserved(v)) {
				char ch = (char)v;
				buf_append(&tmp, &ch, 1);
			} else {
				static const char hx[] = "0123456789ABCDEF";
				char e[3] = { '%', hx[v >> 4], hx[v & 15] };
				buf_append(&tmp, e, 3);
			}
			i += 2;
		} else {
			buf_append(&tmp, &path[i], 1);
		}
	}
	/* Pass 2: remove dot segments (RFC 3986 5.2.4) on whole segments.  An
	 * encoded "%2E" was already decoded above, so "/%2e%2e/" is caught too. */
	const char *in = tmp.data;
	size_t n = tmp.len;
	size_t start = out->len;
	size_t i = 0;
	while (i < n) {
		/* in[i] == '/' always here */
		size_t j = i + 1;
		while (j < n && in[j] != '/')
			j++;
		const char *seg = in + i + 1;
		size_t slen = j - i - 1;
		if (slen == 1 && seg[0] == '.') {
			if (j == n)
				buf_append(out, "/", 1);
		} else if (slen == 2 && seg[0] == '.' && seg[1] == '.') {
			/* drop the last output segment, never above the root */
			while (out->len > start && out->data[out->len - 1] != '/')
				out->len--;
			if (out->len > start)
				out->len--;
			if (j == n)
				buf_append(out, "/", 1);
		} else {
			buf_append(out, in + i, j - i);
		}
		i = j;
	}
	if (out->len == start)
		buf_append(out, "/", 1);
	out->data[out->len] = '\0';
	buf_free(&tmp);
	return 0;
fail:
	buf_free(&tmp);
	return -1;
}

int cachekey_normalize_host(const char *host, size_t len, struct buf *out)
{
	if (len == 0 || len > 255)
		return -1;
	size_t start = out->len;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)host[i];
		if (!(isalnum(c) || c == '-' || c == '.' || c == ':' || c == '[' || c == ']' || c == '_'))
			return -1;
		char l = (char)tolower(c);
		buf_append(out, &l, 1);
	}
	/* Drop a trailing ":80" (default port) and a trailing dot of an FQDN. */
	if (out->len - start > 3 && !memcmp(out->data + out->len - 3, ":80", 3))
		out->len -= 3;
	if (out->len - start > 1 && out->data[out->len - 1] == '.')
		out->len--;
	if (out->len == start)
		return -1;
	out->data[out->len] = '\0';
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

int cachekey_build(const char *target, const char *host_hdr, const struct query_rule *rules,
                   size_t nrules, struct buf *key, struct buf *path_out, struct buf *host_out)
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

	struct buf path = BUF_INIT;
	if (cachekey_normalize_path(p, plen, &path) < 0) {
		buf_free(&path);
		return -1;
	}
	buf_puts(key, "http://");
	size_t hstart = key->len;
	if (cachekey_normalize_host(host, hlen, key) < 0) {
		buf_free(&path);
		return -1;
	}
	if (host_out)
		buf_append(host_out, key->data + hstart, key->len - hstart);
	buf_append(key, path.data, path.len);
	enum query_mode mode = cachekey_query_mode(rules, nrules, path.data);
	append_query(key, qs, qlen, mode);
	if (path_out) {
		buf_append(path_out, path.data, path.len);
		if (qlen) {
			buf_append(path_out, "?", 1);
			buf_append(path_out, qs, qlen);
		}
	}
	buf_free(&path);
	return 0;
}
