/* range.c -- Range header parsing and multipart/byteranges layout; no I/O */
#include "edge/cache/range.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---------- parsing (RFC 9110 14.1.2) ---------- */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* 1*DIGIT, saturating at 2^62 (far past any object we hold).  Returns false
 * if there is no digit. */
static bool parse_pos(const char **pp, uint64_t *v)
{
	const char *p = *pp;
	if (!is_digit(*p))
		return false;
	uint64_t x = 0;
	for (; is_digit(*p); p++)
		if (x < (1ull << 62))
			x = x * 10 + (uint64_t)(*p - '0');
	*v = x > (1ull << 62) ? (1ull << 62) : x;
	*pp = p;
	return true;
}

static const char *ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

enum range_result range_parse(const char *h, uint64_t len, struct byte_range *out, unsigned *n)
{
	*n = 0;
	if (!h || strncasecmp(h, "bytes=", 6))
		return RANGE_IGNORE;
	const char *p = ows(h + 6);
	unsigned specs = 0;
	uint64_t sum = 0;
	for (;;) {
		p = ows(p);
		if (*p == ',') { /* empty list element (RFC 9110 5.6.1) */
			p++;
			continue;
		}
		if (!*p)
			break;
		if (++specs > RANGE_MAX)
			goto ignore;
		uint64_t a, b;
		bool sat;
		if (*p == '-') { /* suffix-range: the last b bytes */
			p++;
			if (!parse_pos(&p, &b))
				goto ignore;
			sat = b > 0 && len > 0;
			a = sat && b < len ? len - b : 0;
			b = len ? len - 1 : 0;
		} else {
			if (!parse_pos(&p, &a) || *p++ != '-')
				goto ignore;
			bool has_last = parse_pos(&p, &b);
			if (has_last && b < a)
				goto ignore; /* an invalid int-range invalidates the header */
			sat = a < len;
			if (!has_last || b >= len)
				b = len ? len - 1 : 0;
		}
		p = ows(p);
		if (*p && *p != ',')
			goto ignore;
		if (!sat)
			continue;
		out[*n].first = a;
		out[*n].last = b;
		(*n)++;
		sum += b - a + 1;
	}
	if (!specs)
		goto ignore; /* "bytes=" with no range-spec: not a valid header */
	if (!*n)
		return RANGE_UNSATISFIABLE;
	/* Overlapping or repeated ranges asking for more than the object: the
	 * whole object is the cheaper honest answer (RFC 9110 14.2). */
	if (sum > len)
		goto ignore;
	return RANGE_OK;
ignore:
	*n = 0;
	return RANGE_IGNORE;
}

/* ---------- multipart/byteranges (RFC 9110 14.6) ---------- */

void range_multipart_init(struct multipart *m, const char *boundary, const char *content_type,
                          const struct byte_range *r, unsigned n, uint64_t len)
{
	memset(m, 0, sizeof *m);
	m->n = n > RANGE_MAX ? RANGE_MAX : n;
	memcpy(m->r, r, m->n * sizeof *r);
	for (unsigned i = 0; i <= m->n; i++) {
		m->seg_off[i] = m->text.len;
		if (i)
			buf_puts(&m->text, "\r\n");
		buf_printf(&m->text, "--%s", boundary);
		if (i == m->n) {
			buf_puts(&m->text, "--\r\n");
		} else {
			buf_puts(&m->text, "\r\n");
			if (content_type)
				buf_printf(&m->text, "Content-Type: %s\r\n", content_type);
			buf_printf(&m->text, "Content-Range: bytes %llu-%llu/%llu\r\n\r\n",
			           (unsigned long long)r[i].first, (unsigned long long)r[i].last,
			           (unsigned long long)len);
		}
		m->seg_len[i] = m->text.len - m->seg_off[i];
		m->total += m->seg_len[i];
		if (i < m->n)
			m->total += r[i].last - r[i].first + 1;
	}
}

void range_multipart_free(struct multipart *m)
{
	buf_free(&m->text);
}

/* Copies the overlap of [pos, pos + max) with the segment [at, at + slen)
 * whose bytes are src. */
static size_t copy_seg(uint64_t at, const void *src, uint64_t slen, uint64_t pos, char *out,
                       size_t max, size_t done)
{
	uint64_t want = pos + done; /* next body offset to fill */
	if (want >= at + slen || want < at || done >= max)
		return 0;
	uint64_t off = want - at, k = slen - off;
	if (k > max - done)
		k = max - done;
	memcpy(out + done, (const char *)src + off, (size_t)k);
	return (size_t)k;
}

size_t range_multipart_read(const struct multipart *m, const uint8_t *body, uint64_t pos, char *out,
                            size_t max)
{
	size_t done = 0;
	uint64_t at = 0;
	for (unsigned i = 0; i <= m->n && done < max; i++) {
		done += copy_seg(at, m->text.data + m->seg_off[i], m->seg_len[i], pos, out, max, done);
		at += m->seg_len[i];
		if (i == m->n)
			break;
		uint64_t plen = m->r[i].last - m->r[i].first + 1;
		done += copy_seg(at, body + m->r[i].first, plen, pos, out, max, done);
		at += plen;
	}
	return done;
}

uint64_t range_multipart_locate(const struct multipart *m, uint64_t pos, const char **text,
                                uint64_t *body_off)
{
	uint64_t at = 0;
	for (unsigned i = 0; i <= m->n; i++) {
		if (pos < at + m->seg_len[i]) {
			*text = m->text.data + m->seg_off[i] + (pos - at);
			return at + m->seg_len[i] - pos;
		}
		at += m->seg_len[i];
		if (i == m->n)
			break;
		uint64_t plen = m->r[i].last - m->r[i].first + 1;
		if (pos < at + plen) {
			*text = NULL;
			*body_off = m->r[i].first + (pos - at);
			return at + plen - pos;
		}
		at += plen;
	}
	return 0;
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void range_boundary(char out[33], uint64_t seed)
{
	/* Process-wide on purpose: boundaries must differ between any two
	 * responses, whichever thread or cache builds them; atomic, so any
	 * thread may call this without a lock.  Not state a caller could own. */
	static _Atomic uint64_t counter;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t c = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
	uint64_t a = splitmix64(c ^ seed), b = splitmix64(((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ a);
	snprintf(out, 33, "minicdn-%08llx%016llx", (unsigned long long)(a >> 32), (unsigned long long)b);
}
