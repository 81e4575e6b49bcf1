/* h1resp.c -- strict incremental HTTP/1.1 response parser (RFC 9112): the
 * status line, field lines, and the body's framing (Content-Length, chunked,
 * close-delimited).  Pure: no I/O, no allocation, no locale.
 *
 * Head lines are taken one per call (each is one event), found with memchr;
 * a line is judged only once it is whole, except for its length, so feeding
 * the same bytes in any pieces gives the same events.  Anything that could
 * let an origin smuggle a second response into a first (two framings, a
 * folded or whitespace-padded field name, a stray CR) is an error: the edge
 * drops the connection rather than guess. */
#include "edge/upstream/h1resp.h"

#include <string.h>

enum {
	ST_STATUS,     /* a status line comes next */
	ST_FIELDS,     /* field lines until the empty line */
	ST_LENGTH,     /* Content-Length body: left bytes to come */
	ST_CLOSE,      /* body until the connection closes */
	ST_CHUNK_SIZE, /* a chunk-size line */
	ST_CHUNK_DATA, /* left bytes of chunk data */
	ST_CHUNK_END,  /* the CRLF after chunk data */
	ST_TRAILER,    /* trailer field lines until the empty line */
	ST_DONE,
	ST_ERROR,
};

/* Largest Content-Length taken: far beyond any object, and an int64_t. */
#define CL_MAX (UINT64_C(1) << 62)
/* Hex digits in a chunk size: 2^60 - 1 at most, no overflow. */
#define CHUNK_DIGITS 15

/* Byte classes (RFC 9110 5.6.2 tchar, 5.5 field-vchar plus SP/HTAB, HEXDIG). */
enum { C_TCHAR = 1, C_VALUE = 2, C_HEX = 4 };
static const unsigned char cls[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,  /* 0x00 */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 0x10 */
	2, 3, 2, 3, 3, 3, 3, 3, 2, 2, 3, 3, 2, 3, 3, 2,  /* 0x20 */
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2,  /* 0x30 */
	2, 7, 7, 7, 7, 7, 7, 3, 3, 3, 3, 3, 3, 3, 3, 3,  /* 0x40 */
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 3, 3,  /* 0x50 */
	3, 7, 7, 7, 7, 7, 7, 3, 3, 3, 3, 3, 3, 3, 3, 3,  /* 0x60 */
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 3, 2, 3, 0,  /* 0x70 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0x80 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0x90 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0xa0 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0xb0 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0xc0 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0xd0 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0xe0 */
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,  /* 0xf0 */
};

#define IS(c, k) (cls[(unsigned char)(c)] & (k))
#define OWS(c) ((c) == ' ' || (c) == '\t')

void h1resp_init(struct h1resp *p, bool head)
{
	memset(p, 0, sizeof *p);
	p->head = head;
	p->content_length = -1;
	p->state = ST_STATUS;
}

static enum h1resp_event fail(struct h1resp *p, const char *why)
{
	p->error = why;
	p->state = ST_ERROR;
	return H1R_ERROR;
}

/* The line at s[0..len): returns the bytes it takes with its line end (LF or
 * CRLF; 0 when no LF yet) and sets *n to its length without the line end.  A
 * CR elsewhere stays in the line, where no validator accepts it. */
static size_t line_get(const char *s, size_t len, size_t *n)
{
	const char *lf = memchr(s, '\n', len);
	if (!lf)
		return 0;
	size_t k = (size_t)(lf - s);
	*n = k && s[k - 1] == '\r' ? k - 1 : k;
	return k + 1;
}

/* ASCII case-insensitive s[0..n) == lit, whatever the locale.  lit is made
 * of lowercase letters and '-', and s of bytes a field name or value may hold
 * (no CR, no controls), so OR-ing 0x20 folds exactly: only 'A'..'Z' and
 * 'a'..'z' become a lowercase letter, only '-' (and a CR) becomes '-'. */
static bool ieq(const char *s, size_t n, const char *lit)
{
	size_t i = 0;
	for (; i < n && lit[i]; i++)
		if (((unsigned char)s[i] | 0x20) != (unsigned char)lit[i])
			return false;
	return i == n && !lit[i];
}

/* s[0..n) holds only field-value bytes (HTAB, SP, VCHAR, obs-text).  Eight
 * at a time: a word with no byte below 0x20 and none equal to 0x7F passes
 * whole (the "hasless"/"haszero" bit tricks: no false negatives); only a word
 * with a HTAB or a bad byte is looked at byte by byte.  Values are most of a
 * head's bytes: a third fewer instructions than a byte loop, 8 % fewer for a
 * whole nginx-like head (callgrind). */
static bool value_ok(const char *s, size_t n)
{
	const uint64_t ones = UINT64_C(0x0101010101010101), highs = ones << 7;
	if (n < 8) {
		for (size_t i = 0; i < n; i++)
			if (!IS(s[i], C_VALUE))
				return false;
		return true;
	}
	/* the last word overlaps the one before it rather than a byte loop */
	for (size_t i = 0;; i += 8) {
		if (i > n - 8)
			i = n - 8;
		uint64_t w, d;
		memcpy(&w, s + i, 8);
		d = w ^ (ones * 0x7f);
		if ((((w - ones * 0x20) & ~w) | ((d - ones) & ~d)) & highs) {
			for (size_t k = i; k < i + 8; k++)
				if (!IS(s[k], C_VALUE))
					return false;
		}
		if (i == n - 8)
			return true;
	}
}

/* Next element of a comma list in s[*i..n), OWS trimmed: [*b, *e).  Returns
 * false at the end of the list.  Empty elements are reported (as b == e). */
static bool list_next(const char *s, size_t n, size_t *i, size_t *b, size_t *e)
{
	if (*i > n)
		return false;
	const char *c = memchr(s + *i, ',', n - *i);
	size_t end = c ? (size_t)(c - s) : n;
	size_t x = *i, y = end;
	while (x < y && OWS(s[x]))
		x++;
	while (y > x && OWS(s[y - 1]))
		y--;
	*b = x;
	*e = y;
	*i = end + 1;
	return true;
}

/* ---- the head ---- */

static enum h1resp_event status_line(struct h1resp *p, const char *s, size_t n)
{
	if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ')
		return fail(p, "bad status line");
	unsigned st = 0;
	for (size_t i = 9; i < 12; i++) {
		if (s[i] < '0' || s[i] > '9')
			return fail(p, "bad status code");
		st = st * 10 + (unsigned)(s[i] - '0');
	}
	if (n > 12 && s[12] != ' ')
		return fail(p, "bad status code");
	if (n > 13 && !value_ok(s + 13, n - 13))
		return fail(p, "bad reason phrase");
	if (st < 100 || st > 599)
		return fail(p, "status code out of range");
	if (st == 101)
		return fail(p, "101 Switching Protocols refused");
	p->status = st;
	p->minor = (unsigned)(s[7] - '0');
	p->content_length = -1;
	p->framing = H1F_NONE;
	p->saw_cl = p->saw_te = p->te_chunked = p->conn_close = p->conn_keep = false;
	p->state = ST_FIELDS;
	return H1R_STATUS;
}

/* A field line s[0..n) (not empty): name [*nb, *ne), value [*vb, *ve) with
 * OWS trimmed.  Returns NULL or why it is refused. */
static const char *field_split(const char *s, size_t n, size_t *ne, size_t *vb, size_t *ve)
{
	size_t i = 0;
	while (i < n && IS(s[i], C_TCHAR))
		i++;
	if (i == n || s[i] != ':') {
		if (i < n && OWS(s[i]))
			return i ? "whitespace after field name" : "obs-fold line";
		return "bad field name";
	}
	if (i == 0)
		return "empty field name";
	*ne = i;
	size_t b = i + 1, e = n;
	if (!value_ok(s + b, e - b))
		return "bad byte in field value";
	while (b < e && OWS(s[b]))
		b++;
	while (e > b && OWS(s[e - 1]))
		e--;
	*vb = b;
	*ve = e;
	return NULL;
}

/* Content-Length: 1*DIGIT or a list of identical ones (RFC 9110 8.6), equal
 * to any earlier line's. */
static const char *content_length(struct h1resp *p, const char *s, size_t n)
{
	size_t i = 0, b, e;
	while (list_next(s, n, &i, &b, &e)) {
		if (b == e)
			return "empty Content-Length";
		uint64_t v = 0;
		for (size_t k = b; k < e; k++) {
			if (s[k] < '0' || s[k] > '9')
				return "bad Content-Length";
			if (v > CL_MAX / 10)
				return "Content-Length too large";
			v = v * 10 + (uint64_t)(s[k] - '0');
			if (v > CL_MAX)
				return "Content-Length too large";
		}
		if (p->saw_cl && (uint64_t)p->content_length != v)
			return "conflicting Content-Length";
		p->saw_cl = true;
		p->content_length = (int64_t)v;
	}
	return NULL;
}

/* Transfer-Encoding: codings over any number of lines; chunked only last. */
static const char *transfer_encoding(struct h1resp *p, const char *s, size_t n)
{
	size_t i = 0, b, e;
	bool any = false;
	while (list_next(s, n, &i, &b, &e)) {
		if (b == e)
			continue;
		size_t t = b;
		while (t < e && IS(s[t], C_TCHAR))
			t++;
		if (t == b)
			return "bad transfer coding";
		bool chunked = ieq(s + b, t - b, "chunked");
		while (t < e && OWS(s[t]))
			t++;
		if (t < e && (s[t] != ';' || chunked))
			return "bad transfer coding";
		if (p->te_chunked)
			return "chunked not the last transfer coding";
		p->te_chunked = chunked;
		any = true;
	}
	if (!any)
		return "empty Transfer-Encoding";
	p->saw_te = true;
	return NULL;
}

static void connection(struct h1resp *p, const char *s, size_t n)
{
	size_t i = 0, b, e;
	while (list_next(s, n, &i, &b, &e)) {
		if (ieq(s + b, e - b, "close"))
			p->conn_close = true;
		else if (ieq(s + b, e - b, "keep-alive"))
			p->conn_keep = true;
	}
}

static enum h1resp_event field_line(struct h1resp *p, const char *s, size_t n)
{
	size_t ne, vb, ve;
	const char *err = field_split(s, n, &ne, &vb, &ve);
	if (err)
		return fail(p, err);
	const char *v = s + vb;
	size_t vn = ve - vb;
	/* the length switch keeps the common fields from three compares each */
	if (ne == 14 && ieq(s, ne, "content-length"))
		err = content_length(p, v, vn);
	else if (ne == 17 && ieq(s, ne, "transfer-encoding"))
		err = transfer_encoding(p, v, vn);
	else if (ne == 10 && ieq(s, ne, "connection"))
		connection(p, v, vn);
	if (err)
		return fail(p, err);
	p->name = s;
	p->name_len = ne;
	p->value = v;
	p->value_len = vn;
	return H1R_HEADER;
}

/* The empty line: decide the framing (RFC 9112 6.3). */
static enum h1resp_event head_end(struct h1resp *p)
{
	if (p->saw_te && p->saw_cl)
		return fail(p, "both Transfer-Encoding and Content-Length");
	/* RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing */
	if (p->saw_te && p->minor == 0)
		return fail(p, "Transfer-Encoding in HTTP/1.0");
	p->keep_alive = !p->conn_close && (p->minor == 1 || p->conn_keep);
	p->framing = H1F_NONE;
	if (p->status < 200) {
		p->state = ST_STATUS;
	} else if (p->head || p->status == 204 || p->status == 304) {
		p->state = ST_DONE;
	} else if (p->te_chunked) {
		p->framing = H1F_CHUNKED;
		p->state = ST_CHUNK_SIZE;
	} else if (p->saw_cl) {
		p->framing = H1F_LENGTH;
		p->left = (uint64_t)p->content_length;
		p->state = p->left ? ST_LENGTH : ST_DONE;
	} else {
		p->framing = H1F_CLOSE;
		p->keep_alive = false;
		p->state = ST_CLOSE;
	}
	return H1R_HEADERS_END;
}

/* One head line (status or field, or the empty line ending the head). */
static enum h1resp_event head_line(struct h1resp *p, const char *in, size_t len, size_t *used)
{
	size_t n, step = line_get(in, len, &n);
	if (!step) {
		/* the line will be at least one byte longer (its LF) */
		if (p->head_bytes + len >= H1RESP_MAX_HEAD)
			return fail(p, "response head too long");
		return H1R_NEED_MORE;
	}
	p->head_bytes += step;
	if (p->head_bytes > H1RESP_MAX_HEAD)
		return fail(p, "response head too long");
	*used = step;
	if (p->state == ST_STATUS)
		return status_line(p, in, n);
	if (n == 0)
		return head_end(p);
	return field_line(p, in, n);
}

/* ---- the body ---- */

static enum h1resp_event body_plain(struct h1resp *p, const char *in, size_t len, size_t *used)
{
	size_t n = len;
	if (p->state == ST_LENGTH) {
		if (n > p->left)
			n = (size_t)p->left;
		p->left -= n;
		if (!p->left)
			p->state = ST_DONE;
	}
	p->data = in;
	p->data_len = n;
	*used = n;
	return H1R_BODY;
}

/* chunk-size [ BWS ";" chunk-ext ] (RFC 9112 7.1); the extension is skipped
 * but must be made of field-value bytes. */
static bool chunk_size(struct h1resp *p, const char *s, size_t n)
{
	size_t i = 0;
	uint64_t v = 0;
	for (; i < n && IS(s[i], C_HEX); i++) {
		if (i == CHUNK_DIGITS)
			return false;
		unsigned char c = (unsigned char)s[i];
		v = v << 4 | (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	if (i == 0)
		return false;
	size_t j = i;
	while (j < n && OWS(s[j]))
		j++;
	if (j == n && j != i)
		return false;
	if (j < n && s[j] != ';')
		return false;
	for (; j < n; j++)
		if (!IS(s[j], C_VALUE))
			return false;
	p->left = v;
	return true;
}

/* A trailer line at in[0..len): 0 when not whole yet, else the bytes taken;
 * *last when it was the empty line. */
static size_t trailer_line(struct h1resp *p, const char *in, size_t len, bool *last)
{
	size_t n, step = line_get(in, len, &n), ne, vb, ve;
	if (!step) {
		if (len >= H1RESP_MAX_LINE || p->head_bytes + len >= H1RESP_MAX_HEAD)
			fail(p, "trailer line too long");
		return 0;
	}
	p->head_bytes += step;
	if (step > H1RESP_MAX_LINE || p->head_bytes > H1RESP_MAX_HEAD) {
		fail(p, "trailer line too long");
		return 0;
	}
	*last = n == 0;
	const char *err = n ? field_split(in, n, &ne, &vb, &ve) : NULL;
	if (err) {
		fail(p, err);
		return 0;
	}
	return step;
}

/* Runs the chunked framing over as many lines as it can until chunk data
 * (reported), the end of the trailers (DONE) or the end of the input. */
static enum h1resp_event body_chunked(struct h1resp *p, const char *in, size_t len, size_t *used)
{
	size_t pos = 0, n, step;
	bool last;
	for (;;) {
		switch (p->state) {
		case ST_CHUNK_SIZE:
			step = line_get(in + pos, len - pos, &n);
			if (!step && len - pos < H1RESP_MAX_LINE)
				goto more;
			if (!step || step > H1RESP_MAX_LINE)
				return fail(p, "chunk-size line too long");
			if (!chunk_size(p, in + pos, n))
				return fail(p, "bad chunk size");
			pos += step;
			p->state = p->left ? ST_CHUNK_DATA : ST_TRAILER;
			p->head_bytes = 0; /* the trailer's own bound */
			break;
		case ST_CHUNK_DATA:
			if (pos == len)
				goto more;
			n = len - pos;
			if (n > p->left)
				n = (size_t)p->left;
			p->left -= n;
			if (!p->left)
				p->state = ST_CHUNK_END;
			p->data = in + pos;
			p->data_len = n;
			*used = pos + n;
			return H1R_BODY;
		case ST_CHUNK_END:
			if (pos == len || (in[pos] == '\r' && pos + 1 == len))
				goto more;
			if (in[pos] == '\r' && in[pos + 1] == '\n')
				pos++;
			if (in[pos] != '\n')
				return fail(p, "no CRLF after chunk data");
			pos++;
			p->state = ST_CHUNK_SIZE;
			break;
		default: /* ST_TRAILER */
			step = trailer_line(p, in + pos, len - pos, &last);
			if (p->state == ST_ERROR)
				return H1R_ERROR;
			if (!step)
				goto more;
			pos += step;
			if (last) {
				p->state = ST_DONE;
				*used = pos;
				return H1R_DONE;
			}
			break;
		}
	}
more:
	*used = pos;
	return H1R_NEED_MORE;
}

enum h1resp_event h1resp_parse(struct h1resp *p, const char *in, size_t len, size_t *used)
{
	enum h1resp_event ev;
	*used = 0;
	if (p->state == ST_DONE)
		return H1R_DONE;
	if (p->state == ST_ERROR)
		return H1R_ERROR;
	if (!len) /* every other state needs a byte; keeps (NULL, 0) from memchr */
		return H1R_NEED_MORE;
	switch (p->state) {
	case ST_STATUS:
	case ST_FIELDS:
		ev = head_line(p, in, len, used);
		break;
	case ST_LENGTH:
	case ST_CLOSE:
		ev = body_plain(p, in, len, used);
		break;
	default:
		ev = body_chunked(p, in, len, used);
		break;
	}
	if (ev == H1R_ERROR)
		*used = 0;
	return ev;
}

enum h1resp_event h1resp_eof(struct h1resp *p)
{
	if (p->state == ST_CLOSE) /* keep_alive already false */
		p->state = ST_DONE;
	else if (p->state != ST_DONE && p->state != ST_ERROR)
		fail(p, "truncated");
	return p->state == ST_DONE ? H1R_DONE : H1R_ERROR;
}
