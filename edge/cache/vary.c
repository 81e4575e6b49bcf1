/* vary.c -- Vary: "*" detection and normalised selecting header values */
#include "edge/cache/vary.h"
#include "common/encoding.h"

#include <string.h>
#include <strings.h>

/* One list member: [s, s + n) with surrounding whitespace trimmed. */
struct span {
	const char *s;
	size_t n;
};

static bool ows(char c)
{
	return c == ' ' || c == '\t';
}

static struct span trim(const char *s, size_t n)
{
	while (n && ows(*s)) {
		s++;
		n--;
	}
	while (n && ows(s[n - 1]))
		n--;
	return (struct span){ s, n };
}

/* Next element of a sep-separated list at *p (stops at end), quoted
 * strings (with backslash escapes) kept whole.  Returns false at the end. */
static bool next_elem(const char **p, const char *end, char sep, struct span *out)
{
	if (*p > end)
		return false;
	const char *s = *p, *q = s;
	bool quoted = false;
	while (q < end && (quoted || *q != sep)) {
		if (*q == '\\' && quoted && q + 1 < end)
			q++;
		else if (*q == '"')
			quoted = !quoted;
		q++;
	}
	*out = trim(s, (size_t)(q - s));
	*p = q + 1;
	return true;
}

bool vary_has_star(const char *vary)
{
	if (!vary)
		return false;
	const char *p = vary, *end = vary + strlen(vary);
	struct span m;
	while (next_elem(&p, end, ',', &m))
		if (m.n == 1 && m.s[0] == '*')
			return true;
	return false;
}

/* ---------- Accept-like fields ---------- */

/* qvalue (RFC 9110 12.4.2) in thousandths, or -1 if not one. */
static int qvalue(struct span v)
{
	if (v.n == 0 || (v.s[0] != '0' && v.s[0] != '1') || v.n > 5)
		return -1;
	int q = (v.s[0] - '0') * 1000;
	if (v.n == 1)
		return q;
	if (v.s[1] != '.')
		return -1;
	int scale = 100;
	for (size_t i = 2; i < v.n; i++, scale /= 10) {
		if (v.s[i] < '0' || v.s[i] > '9')
			return -1;
		q += (v.s[i] - '0') * scale;
	}
	return q > 1000 ? -1 : q;
}

static void append_lower(struct buf *out, const char *s, size_t n)
{
	size_t at = out->len;
	buf_append(out, s, n);
	for (size_t i = at; i < out->len; i++)
		if (out->data[i] >= 'A' && out->data[i] <= 'Z')
			out->data[i] = (char)(out->data[i] + 32);
}

/* Writes one member's normalised text to out; returns its q (1000 when
 * none or not a valid qvalue). */
static int accept_member(struct span m, struct buf *out)
{
	const char *p = m.s, *end = m.s + m.n;
	struct span part;
	int q = 1000;
	next_elem(&p, end, ';', &part);
	append_lower(out, part.s, part.n); /* media range, charset or language tag */
	while (next_elem(&p, end, ';', &part)) {
		const char *eq = memchr(part.s, '=', part.n);
		struct span name = trim(part.s, eq ? (size_t)(eq - part.s) : part.n);
		struct span val = eq ? trim(eq + 1, (size_t)(part.s + part.n - eq - 1)) : (struct span){ "", 0 };
		if (name.n == 1 && (name.s[0] == 'q' || name.s[0] == 'Q') && qvalue(val) >= 0) {
			q = qvalue(val);
			continue;
		}
		buf_append(out, ";", 1);
		append_lower(out, name.s, name.n);
		if (eq) {
			buf_append(out, "=", 1);
			buf_append(out, val.s, val.n);
		}
	}
	if (q < 1000) {
		/* canonical: "0", or "0." and the digits without trailing zeros */
		char qs[8] = "0.";
		int d = q, n = 2;
		for (int scale = 100; d && scale; scale /= 10) {
			qs[n++] = (char)('0' + d / scale);
			d %= scale;
		}
		buf_append(out, ";q=", 3);
		buf_append(out, qs, q ? (size_t)n : 1);
	}
	return q;
}

#define VARY_MAX_MEMBERS 32

struct member {
	size_t off, len;
	int q;
};

static void accept_like(const char *v, bool order_free, struct buf *out)
{
	struct buf text = BUF_INIT;
	struct member mem[VARY_MAX_MEMBERS];
	size_t n = 0;
	const char *p = v, *end = v + strlen(v);
	struct span m;
	while (next_elem(&p, end, ',', &m)) {
		if (!m.n)
			continue;
		if (n == VARY_MAX_MEMBERS) {
			/* Longer than any browser sends: kept whole, not reordered. */
			buf_free(&text);
			struct span all = trim(v, strlen(v));
			buf_append(out, all.s, all.n);
			return;
		}
		mem[n].off = text.len;
		mem[n].q = accept_member(m, &text);
		mem[n].len = text.len - mem[n].off;
		n++;
	}
	/* Insertion sort, stable: q descending, then (order_free) by text. */
	for (size_t i = 1; i < n; i++) {
		struct member x = mem[i];
		size_t j = i;
		while (j > 0) {
			const struct member *y = &mem[j - 1];
			int c = x.q != y->q ? (x.q > y->q ? -1 : 1) : 0;
			if (!c && order_free) {
				size_t l = x.len < y->len ? x.len : y->len;
				c = memcmp(text.data + x.off, text.data + y->off, l);
				if (!c)
					c = x.len < y->len ? -1 : x.len > y->len;
			}
			if (c >= 0)
				break;
			mem[j] = mem[j - 1];
			j--;
		}
		mem[j] = x;
	}
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf_append(out, ",", 1);
		buf_append(out, text.data + mem[i].off, mem[i].len);
	}
	buf_free(&text);
}

/* Members trimmed and empty ones dropped; nothing else is known about them. */
static void plain_list(const char *v, struct buf *out)
{
	const char *p = v, *end = v + strlen(v);
	struct span m;
	bool first = true;
	while (next_elem(&p, end, ',', &m)) {
		if (!m.n)
			continue;
		if (!first)
			buf_append(out, ",", 1);
		buf_append(out, m.s, m.n);
		first = false;
	}
}

void vary_normalize(const char *name, const char *value, struct buf *out)
{
	static const char *const lists[] = { "cache-control", "if-match", "if-none-match", "te",
		                             "via", "forwarded", "prefer", "content-language",
		                             "content-encoding", "expect", "upgrade", NULL };
	if (!strcasecmp(name, "accept-encoding")) {
		if (encoding_accepts_gzip(value))
			buf_puts(out, "gzip");
		return;
	}
	if (!value)
		return;
	if (!strcasecmp(name, "accept") || !strcasecmp(name, "accept-charset")) {
		accept_like(value, true, out);
		return;
	}
	if (!strcasecmp(name, "accept-language")) {
		accept_like(value, false, out);
		return;
	}
	for (size_t i = 0; lists[i]; i++)
		if (!strcasecmp(name, lists[i])) {
			plain_list(value, out);
			return;
		}
	struct span all = trim(value, strlen(value));
	buf_append(out, all.s, all.n);
}
