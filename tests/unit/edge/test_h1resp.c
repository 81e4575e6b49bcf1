/* test_h1resp.c -- the strict HTTP/1.1 response parser, from an origin
 * attacker's side: every case runs whole and in pieces (down to byte by
 * byte) through the driver the origin client uses, and must give the same
 * transcript each way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/upstream/h1resp.h"

/* ---- the driver: keeps the unconsumed tail, appends the next piece ---- */

#define DRV_CAP (H1RESP_MAX_HEAD * 2 + 8192)

struct drv {
	struct h1resp p;
	bool head;
	bool pipeline;   /* after DONE, parse the next response from the rest */
	bool over;       /* DONE (not pipelining) or ERROR reached */
	bool reinit;     /* DONE seen: a new response starts with the next byte */
	bool in_body;
	char *buf;
	size_t have;
	char *out;       /* the transcript, NUL-terminated */
	size_t outn;
};

static void out_add(struct drv *d, const char *s, size_t n)
{
	assert_true(d->outn + n < DRV_CAP);
	memcpy(d->out + d->outn, s, n);
	d->outn += n;
	d->out[d->outn] = '\0';
}

static void out_fmt(struct drv *d, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	out_add(d, tmp, (size_t)n);
}

/* One event into the transcript: S<status>, H<name>:<value>, E<framing><cl>,
 * B<body bytes, pieces joined>, D<k|c>, X:<error>. */
static void record(struct drv *d, enum h1resp_event ev, const char *in, size_t used)
{
	const struct h1resp *p = &d->p;
	if (ev == H1R_NEED_MORE)
		return;
	if (ev == H1R_BODY) {
		assert_true(p->data >= in && p->data + p->data_len <= in + used);
		assert_true(p->data_len > 0);
		if (!d->in_body)
			out_add(d, "B", 1);
		d->in_body = true;
		out_add(d, p->data, p->data_len);
		return;
	}
	if (d->in_body)
		out_add(d, "\n", 1);
	d->in_body = false;
	switch (ev) {
	case H1R_STATUS:
		out_fmt(d, "S%u\n", p->status);
		break;
	case H1R_HEADER:
		assert_true(p->name >= in && p->value + p->value_len <= in + used);
		out_add(d, "H", 1);
		out_add(d, p->name, p->name_len);
		out_add(d, ":", 1);
		out_add(d, p->value, p->value_len);
		out_add(d, "\n", 1);
		break;
	case H1R_HEADERS_END:
		out_fmt(d, "E%c%lld\n", "nlcx"[p->framing], (long long)p->content_length);
		break;
	case H1R_DONE:
		out_fmt(d, "D%c\n", p->keep_alive ? 'k' : 'c');
		break;
	default:
		out_fmt(d, "X:%s\n", p->error);
		break;
	}
}

static void drv_init(struct drv *d, bool head, bool pipeline)
{
	memset(d, 0, sizeof *d);
	d->buf = malloc(DRV_CAP);
	d->out = malloc(DRV_CAP);
	assert_non_null(d->buf);
	assert_non_null(d->out);
	d->out[0] = '\0';
	d->head = head;
	d->pipeline = pipeline;
	h1resp_init(&d->p, head);
}

static void drv_free(struct drv *d)
{
	free(d->buf);
	free(d->out);
}

static void drv_feed(struct drv *d, const char *s, size_t n)
{
	if (d->over)
		return;
	assert_true(d->have + n <= DRV_CAP);
	memcpy(d->buf + d->have, s, n);
	d->have += n;
	for (;;) {
		if (d->reinit) {
			if (!d->have)
				return;
			h1resp_init(&d->p, d->head);
			d->reinit = false;
		}
		size_t used = 12345;
		enum h1resp_event ev = h1resp_parse(&d->p, d->buf, d->have, &used);
		assert_true(used <= d->have);
		record(d, ev, d->buf, used);
		memmove(d->buf, d->buf + used, d->have - used);
		d->have -= used;
		if (ev == H1R_NEED_MORE)
			return;
		if (ev == H1R_ERROR || (ev == H1R_DONE && !d->pipeline)) {
			d->over = true;
			return;
		}
		if (ev == H1R_DONE)
			d->reinit = true;
	}
}

/* The connection closes. */
static void drv_eof(struct drv *d)
{
	if (d->over || d->reinit)
		return;
	record(d, h1resp_eof(&d->p), NULL, 0);
}

/* The transcript of s[0..n) fed in pieces of `piece` bytes (0: whole), then
 * EOF; the caller frees it. */
static char *run(const char *s, size_t n, bool head, bool pipeline, size_t piece)
{
	struct drv d;
	drv_init(&d, head, pipeline);
	size_t step = piece ? piece : n;
	for (size_t at = 0; at < n; at += step)
		drv_feed(&d, s + at, n - at < step ? n - at : step);
	if (n == 0)
		drv_feed(&d, "", 0);
	drv_eof(&d);
	char *t = strdup(d.out);
	drv_free(&d);
	return t;
}

static const size_t pieces[] = { 0, 1, 2, 3, 7, 64 };

/* s must give `want` whole and in every piece size. */
static void expect_n(const char *s, size_t n, bool head, bool pipeline, const char *want)
{
	for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
		char *t = run(s, n, head, pipeline, pieces[i]);
		if (strcmp(t, want) != 0) {
			print_error("piece %zu:\n got: %s\nwant: %s\n", pieces[i], t, want);
			free(t);
			fail();
		}
		free(t);
	}
}

#define EXPECT(s, want) expect_n(s, sizeof(s) - 1, false, false, want)

/* The response (s + "\r\n" ends its head) must end in the error `why`. */
static void expect_error_n(const char *s, size_t n, const char *why)
{
	char tail[128];
	snprintf(tail, sizeof tail, "X:%s\n", why);
	for (size_t i = 0; i < sizeof pieces / sizeof *pieces; i++) {
		char *t = run(s, n, false, false, pieces[i]);
		size_t tl = strlen(t), wl = strlen(tail);
		if (tl < wl || strcmp(t + tl - wl, tail) != 0) {
			print_error("piece %zu: %s\n got: %s\nwant: ...%s", pieces[i], s, t, tail);
			free(t);
			fail();
		}
		free(t);
	}
}

#define EXPECT_ERROR(s, why) expect_error_n(s, sizeof(s) - 1, why)

/* Parses s[0..n) with a fresh parser until the event `until` (nothing else
 * may stop it); returns where that call's input began, *used what it took. */
static size_t parse_until(struct h1resp *p, bool head, const char *s, size_t n, enum h1resp_event until,
                          size_t *used)
{
	size_t at = 0;
	enum h1resp_event ev;
	h1resp_init(p, head);
	while ((ev = h1resp_parse(p, s + at, n - at, used)) != until) {
		assert_int_not_equal(ev, H1R_ERROR);
		assert_int_not_equal(ev, H1R_NEED_MORE);
		assert_int_not_equal(ev, H1R_DONE);
		at += *used;
	}
	return at;
}

/* ---- framing ---- */

static void test_length(void **state)
{
	EXPECT("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: \t b  c \t\r\n\r\nhello",
	       "S200\nHContent-Length:5\nHX-A:b  c\nEl5\nBhello\nDk\n");
	/* bare LF line ends (RFC 9112 2.2), an empty value, no reason phrase */
	EXPECT("HTTP/1.1 200\nX-Empty:\nContent-Length: 2\n\nok",
	       "S200\nHX-Empty:\nHContent-Length:2\nEl2\nBok\nDk\n");
	/* Content-Length 0: DONE right after the head */
	EXPECT("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "S200\nHContent-Length:0\nEl0\nDk\n");
	/* a body cut short */
	EXPECT("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", "S200\nHContent-Length:5\nEl5\nBhel\nX:truncated\n");
}

static void test_length_stops_at_end(void **state)
{
	/* Body bytes never cross into what follows, and DONE consumes nothing. */
	const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1";
	struct h1resp p;
	size_t used;
	size_t at = parse_until(&p, false, r, sizeof r - 1, H1R_BODY, &used);
	assert_int_equal(p.data_len, 3);
	assert_memory_equal(p.data, "abc", 3);
	at += used;
	assert_int_equal(h1resp_parse(&p, r + at, sizeof r - 1 - at, &used), H1R_DONE);
	assert_int_equal(used, 0);
	assert_string_equal(r + at, "HTTP/1.1");
	/* and keeps saying so, consuming nothing */
	assert_int_equal(h1resp_parse(&p, r + at, sizeof r - 1 - at, &used), H1R_DONE);
	assert_int_equal(used, 0);
	assert_int_equal(h1resp_eof(&p), H1R_DONE);
}

static const char chunked_resp[] =
	"HTTP/1.1 200 OK\r\n"
	"Transfer-Encoding: gzip\r\n"
	"transfer-encoding: CHUNKED\r\n"
	"\r\n"
	"5\r\nhello\r\n"
	"1A;name=\"quoted; value\" ; other\r\nabcdefghijklmnopqrstuvwxyz\r\n"
	"000000000000001\n!\n"
	"0\r\n"
	"Expires: never\r\n"
	"X-Trailer:  t \r\n"
	"\r\n";

static void test_chunked(void **state)
{
	/* Several TE lines form one list; chunk extensions skipped; trailers
	 * validated but not reported; byte by byte gives the same as whole. */
	expect_n(chunked_resp, sizeof chunked_resp - 1, false, false,
	         "S200\nHTransfer-Encoding:gzip\nHtransfer-encoding:CHUNKED\nEc-1\n"
	         "Bhelloabcdefghijklmnopqrstuvwxyz!\nDk\n");
	EXPECT("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	       "S200\nHTransfer-Encoding:chunked\nEc-1\nDk\n");
	/* a chunk-size line not whole yet: the framing bytes before it are consumed */
	struct h1resp p;
	size_t used;
	const char r[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
	h1resp_init(&p, false);
	assert_int_equal(h1resp_parse(&p, r, sizeof r - 1, &used), H1R_STATUS);
	assert_int_equal(h1resp_parse(&p, r + 17, sizeof r - 18, &used), H1R_HEADER);
	assert_int_equal(h1resp_parse(&p, "\r\n", 2, &used), H1R_HEADERS_END);
	assert_int_equal(h1resp_parse(&p, "2\r\nab\r\n1", 8, &used), H1R_BODY);
	assert_int_equal(used, 5);
	assert_int_equal(h1resp_parse(&p, "\r\n1", 3, &used), H1R_NEED_MORE);
	assert_int_equal(used, 2);
	assert_int_equal(h1resp_parse(&p, "1", 1, &used), H1R_NEED_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(h1resp_parse(&p, "1\r", 2, &used), H1R_NEED_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(h1resp_eof(&p), H1R_ERROR);
	assert_string_equal(p.error, "truncated");
}

static void test_chunked_bad(void **state)
{
#define TE "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	EXPECT_ERROR(TE "g\r\n", "bad chunk size");
	EXPECT_ERROR(TE "\r\n", "bad chunk size");
	EXPECT_ERROR(TE "-5\r\n", "bad chunk size");
	EXPECT_ERROR(TE "0x5\r\n", "bad chunk size");
	EXPECT_ERROR(TE " 5\r\n", "bad chunk size");
	EXPECT_ERROR(TE "5 \r\n", "bad chunk size");        /* BWS only before an extension */
	EXPECT_ERROR(TE "5;a\x01\r\n", "bad chunk size");   /* a control byte in an extension */
	EXPECT_ERROR(TE "5;a\0\r\n", "bad chunk size");
	EXPECT_ERROR(TE "5\r\r\n", "bad chunk size");       /* bare CR */
	EXPECT_ERROR(TE "1000000000000000\r\n", "bad chunk size"); /* 16 digits */
	EXPECT_ERROR(TE "5\r\nhelloX\r\n0\r\n\r\n", "no CRLF after chunk data");
	EXPECT_ERROR(TE "5\r\nhello\rX0\r\n\r\n", "no CRLF after chunk data");
	EXPECT_ERROR(TE "5\r\nhello\r\r\n0\r\n\r\n", "no CRLF after chunk data");
	EXPECT_ERROR(TE "3\r\nhello\r\n0\r\n\r\n", "no CRLF after chunk data"); /* size too small */
	/* trailers are fields: the same rules */
	EXPECT_ERROR(TE "0\r\nX : y\r\n\r\n", "whitespace after field name");
	EXPECT_ERROR(TE "0\r\nX: y\r\n z\r\n\r\n", "obs-fold line");
	EXPECT_ERROR(TE "0\r\nX: \x01\r\n\r\n", "bad byte in field value");
	EXPECT_ERROR(TE "0\r\nnocolon\r\n\r\n", "bad field name");
	EXPECT_ERROR(TE "0\r\n\r\r\n", "bad field name");
	EXPECT_ERROR(TE "5\r\nhel", "truncated");
	EXPECT_ERROR(TE "0\r\n", "truncated");
	/* 15 digits are fine (the size is then beyond any input: truncated) */
	EXPECT_ERROR(TE "fffffffffffffff\r\nab", "truncated");
	/* the largest size is reported as a chunk still to come */
	struct h1resp p;
	size_t used;
	const char r[] = TE "FFFFFFFFFFFFFFF;x\r\nab";
	parse_until(&p, false, r, sizeof r - 1, H1R_BODY, &used);
	assert_int_equal(p.left, (UINT64_C(1) << 60) - 1 - 2);
#undef TE
}

static void test_close_delimited(void **state)
{
	/* neither framing: the body runs to the close, never keep-alive */
	EXPECT("HTTP/1.1 200 OK\r\n\r\nsome body", "S200\nEx-1\nBsome body\nDc\n");
	EXPECT("HTTP/1.1 200 OK\r\n\r\n", "S200\nEx-1\nDc\n");
	/* a transfer coding that is not chunked: close-delimited too */
	EXPECT("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz",
	       "S200\nHTransfer-Encoding:gzip\nEx-1\nBzz\nDc\n");
}

static void test_no_body(void **state)
{
	/* HEAD: Content-Length is the representation's, no body follows; the
	 * next response's bytes stay in the buffer */
	const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
	expect_n(head, sizeof head - 1, true, true,
	         "S200\nHContent-Length:1000\nEn1000\nDk\nS204\nEn-1\nDk\n");
	EXPECT("HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\nETag: \"x\"\r\n\r\n",
	       "S304\nHContent-Length:1000\nHETag:\"x\"\nEn1000\nDk\n");
	EXPECT("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
	       "S204\nHTransfer-Encoding:chunked\nEn-1\nDk\n");
	/* without pipelining the driver stops at DONE: trailing bytes untouched */
	struct h1resp p;
	size_t used;
	const char r[] = "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello";
	size_t at = parse_until(&p, false, r, sizeof r - 1, H1R_DONE, &used);
	assert_int_equal(used, 0);
	assert_string_equal(r + at, "hello");
	assert_int_equal(p.framing, H1F_NONE);
}

static void test_interim(void **state)
{
	/* 1xx interims are reported, then the real status; their fields do not
	 * leak into the final response (Connection, Content-Length) */
	EXPECT("HTTP/1.1 100 Continue\r\n\r\n"
	       "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nConnection: close\r\n"
	       "Content-Length: 7\r\n\r\n"
	       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
	       "S100\nEn-1\nS103\nHLink:</a.css>; rel=preload\nHConnection:close\nHContent-Length:7\nEn7\n"
	       "S200\nHTransfer-Encoding:chunked\nEc-1\nBok\nDk\n");
	EXPECT_ERROR("HTTP/1.1 100 Continue\r\n\r\n", "truncated");
}

static void test_pipelined(void **state)
{
	const char two[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
	                   "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nnot\r\n0\r\n\r\n"
	                   "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n!";
	expect_n(two, sizeof two - 1, false, true,
	         "S200\nHContent-Length:3\nEl3\nBabc\nDk\n"
	         "S404\nHTransfer-Encoding:chunked\nEc-1\nBnot\nDk\n"
	         "S200\nHContent-Length:1\nHConnection:close\nEl1\nB!\nDc\n");
	/* the first response, parsed alone, consumes exactly its own bytes */
	struct h1resp p;
	size_t used;
	size_t at = parse_until(&p, false, two, sizeof two - 1, H1R_DONE, &used);
	assert_int_equal(used, 0);
	assert_int_equal(at, strlen("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"));
	/* a chunked one too (its DONE consumes the end of its trailers) */
	const char *second = two + at;
	size_t left = sizeof two - 1 - at;
	at = parse_until(&p, false, second, left, H1R_DONE, &used);
	assert_true(used > 0);
	at += used;
	const char third[] = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n";
	assert_memory_equal(second + at, third, sizeof third - 1);
}

static void test_keep_alive(void **state)
{
	EXPECT("HTTP/1.1 204 x\r\n\r\n", "S204\nEn-1\nDk\n");
	EXPECT("HTTP/1.1 204 x\r\nConnection: close\r\n\r\n", "S204\nHConnection:close\nEn-1\nDc\n");
	EXPECT("HTTP/1.1 204 x\r\nConnection: x-foo,\tCLOSE\r\n\r\n", "S204\nHConnection:x-foo,\tCLOSE\nEn-1\nDc\n");
	EXPECT("HTTP/1.1 204 x\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
	       "S204\nHConnection:keep-alive\nHConnection:close\nEn-1\nDc\n");
	EXPECT("HTTP/1.1 204 x\r\nConnection: closed\r\n\r\n", "S204\nHConnection:closed\nEn-1\nDk\n");
	EXPECT("HTTP/1.0 204 x\r\n\r\n", "S204\nEn-1\nDc\n");
	EXPECT("HTTP/1.0 204 x\r\nConnection: Keep-Alive\r\n\r\n", "S204\nHConnection:Keep-Alive\nEn-1\nDk\n");
	EXPECT("HTTP/1.0 200 x\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n.",
	       "S200\nHConnection:keep-alive\nHContent-Length:1\nEl1\nB.\nDk\n");
	/* names and tokens that differ in one byte, at either end of a word */
	EXPECT("HTTP/1.1 204 x\r\nConnectioN: Close\r\n\r\n", "S204\nHConnectioN:Close\nEn-1\nDc\n");
	EXPECT("HTTP/1.1 204 x\r\nConnectiom: close\r\nXonnection: close\r\n\r\n",
	       "S204\nHConnectiom:close\nHXonnection:close\nEn-1\nDk\n");
	EXPECT("HTTP/1.1 204 x\r\nConnection: clos, closf, xlose, keep-alivx\r\n\r\n",
	       "S204\nHConnection:clos, closf, xlose, keep-alivx\nEn-1\nDk\n");
	EXPECT("HTTP/1.0 204 x\r\nConnection: keep-alivE\r\n\r\n", "S204\nHConnection:keep-alivE\nEn-1\nDk\n");
	EXPECT("HTTP/1.0 204 x\r\nConnection: keep-alivf, Keep-Alive-\r\n\r\n",
	       "S204\nHConnection:keep-alivf, Keep-Alive-\nEn-1\nDc\n");
	EXPECT("HTTP/1.1 200 x\r\nContent-Lengtz: 1\r\nContent_Length: 1\r\n\r\nab",
	       "S200\nHContent-Lengtz:1\nHContent_Length:1\nEx-1\nBab\nDc\n");
	EXPECT("HTTP/1.1 200 x\r\nTransfer-EncodinG: chunked\r\n\r\n0\r\n\r\n",
	       "S200\nHTransfer-EncodinG:chunked\nEc-1\nDk\n");
	EXPECT("HTTP/1.1 200 x\r\nTransfer-Encodinh: chunked\r\nTransfer-Encoding: chunkeD\r\n\r\n0\r\n\r\n",
	       "S200\nHTransfer-Encodinh:chunked\nHTransfer-Encoding:chunkeD\nEc-1\nDk\n");
	EXPECT("HTTP/1.1 200 x\r\nTransfer-Encoding: chunkef\r\n\r\nab",
	       "S200\nHTransfer-Encoding:chunkef\nEx-1\nBab\nDc\n");
	/* close-delimited: never, whatever Connection says */
	EXPECT("HTTP/1.0 200 x\r\nConnection: keep-alive\r\n\r\n.", "S200\nHConnection:keep-alive\nEx-1\nB.\nDc\n");
}

/* ---- the status line ---- */

static void test_status_line(void **state)
{
	EXPECT("HTTP/1.0 599 \t x\x80\xff~\r\n\r\n", "S599\nEx-1\nDc\n");
	EXPECT("HTTP/1.1 100 \r\n\r\nHTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
	       "S100\nEn-1\nS200\nHContent-Length:0\nEl0\nDk\n");
	EXPECT_ERROR("HTTP/2.0 200 OK\r\n\r\n", "bad status line");
	EXPECT_ERROR("HTTP/1.2 200 OK\r\n\r\n", "bad status line");
	EXPECT_ERROR("HTTP/1.10 200 OK\r\n\r\n", "bad status line");
	EXPECT_ERROR("http/1.1 200 OK\r\n\r\n", "bad status line");
	EXPECT_ERROR("HTTP/1.1  200 OK\r\n\r\n", "bad status code");
	EXPECT_ERROR("HTTP/1.1\t200 OK\r\n\r\n", "bad status line");
	EXPECT_ERROR(" HTTP/1.1 200 OK\r\n\r\n", "bad status line");
	EXPECT_ERROR("\r\nHTTP/1.1 200 OK\r\n\r\n", "bad status line");
	EXPECT_ERROR("HTTP/1.1 20\r\n\r\n", "bad status line");
	EXPECT_ERROR("HTTP/1.1 20a OK\r\n\r\n", "bad status code");
	EXPECT_ERROR("HTTP/1.1 2000 OK\r\n\r\n", "bad status code");
	EXPECT_ERROR("HTTP/1.1 200OK\r\n\r\n", "bad status code");
	EXPECT_ERROR("HTTP/1.1 200\tOK\r\n\r\n", "bad status code");
	EXPECT_ERROR("HTTP/1.1 099 OK\r\n\r\n", "status code out of range");
	EXPECT_ERROR("HTTP/1.1 600 OK\r\n\r\n", "status code out of range");
	EXPECT_ERROR("HTTP/1.1 101 Switching Protocols\r\n\r\n", "101 Switching Protocols refused");
	EXPECT_ERROR("HTTP/1.1 200 O\x01K\r\n\r\n", "bad reason phrase");
	EXPECT_ERROR("HTTP/1.1 200 O\x7fK\r\n\r\n", "bad reason phrase");
	EXPECT_ERROR("HTTP/1.1 200 O\rK\r\n\r\n", "bad reason phrase");
	EXPECT_ERROR("HTTP/1.1 200 OK\r\r\n\r\n", "bad reason phrase");
	EXPECT_ERROR("HTTP/1.1 200\r\r\n\r\n", "bad status code");
	EXPECT_ERROR("HTTP/1.1 200 O\0K\r\n\r\n", "bad reason phrase");
	EXPECT_ERROR("HTTP/1.1 2\x00" "0 OK\r\n\r\n", "bad status code");
	EXPECT_ERROR("", "truncated");
	EXPECT_ERROR("HTTP/1.1 200 OK", "truncated");
}

/* ---- field lines ---- */

static void test_fields(void **state)
{
#define ST "HTTP/1.1 204 x\r\n"
	EXPECT(ST "!#$%&'*+-.^_`|~09azAZ: \x80 v\t\xff \r\n\r\n", "S204\nH!#$%&'*+-.^_`|~09azAZ:\x80 v\t\xff\nEn-1\nDk\n");
	EXPECT(ST "X:a:b\r\n\r\n", "S204\nHX:a:b\nEn-1\nDk\n");
	EXPECT(ST "X:   \t \r\n\r\n", "S204\nHX:\nEn-1\nDk\n");
	EXPECT_ERROR(ST "X : a\r\n\r\n", "whitespace after field name");
	EXPECT_ERROR(ST "X\t: a\r\n\r\n", "whitespace after field name");
	EXPECT_ERROR(ST "X: a\r\n b\r\n\r\n", "obs-fold line");
	EXPECT_ERROR(ST "X: a\r\n\tb\r\n\r\n", "obs-fold line");
	EXPECT_ERROR(ST " X: a\r\n\r\n", "obs-fold line");
	EXPECT_ERROR(ST ": a\r\n\r\n", "empty field name");
	EXPECT_ERROR(ST "X a\r\n\r\n", "whitespace after field name");
	EXPECT_ERROR(ST "Xa\r\n\r\n", "bad field name");
	EXPECT_ERROR(ST "X\r\n\r\n", "bad field name");
	EXPECT_ERROR(ST "X@: a\r\n\r\n", "bad field name");
	EXPECT_ERROR(ST "X\x80: a\r\n\r\n", "bad field name");
	EXPECT_ERROR(ST "X\r: a\r\n\r\n", "bad field name");
	EXPECT_ERROR(ST "X: a\x01" "b\r\n\r\n", "bad byte in field value");
	EXPECT_ERROR(ST "X: a\x1f\r\n\r\n", "bad byte in field value");
	EXPECT_ERROR(ST "X: a\x7f\r\n\r\n", "bad byte in field value");
	EXPECT_ERROR(ST "X: a\rb\r\n\r\n", "bad byte in field value");
	EXPECT_ERROR(ST "X: a\r\r\n\r\n", "bad byte in field value");
	EXPECT_ERROR(ST "X: a\r\n\r\r\n", "bad field name");
	EXPECT_ERROR(ST "X: a\0b\r\n\r\n", "bad byte in field value");
	EXPECT_ERROR(ST "X\0: a\r\n\r\n", "bad field name");
	EXPECT_ERROR(ST "X: a\r\n", "truncated");
#undef ST
}

/* Every byte in every position of values up to 40 bytes long (the check
 * goes eight bytes at a time): controls and DEL refused, HTAB, SP, VCHAR and
 * obs-text kept; the same for the reason phrase. */
static void test_value_bytes(void **state)
{
	static const unsigned char bad[] = { 0x00, 0x01, 0x08, 0x0b, 0x0d, 0x1f, 0x7f };
	static const unsigned char good[] = { 0x09, 0x20, 0x21, 0x7e, 0x80, 0xc3, 0xff };
	char line[64];
	struct h1resp p;
	size_t used;
	for (size_t len = 1; len <= 40; len++) {
		for (size_t pos = 0; pos < len; pos++) {
			for (size_t k = 0; k < sizeof bad + sizeof good; k++) {
				bool ok = k >= sizeof bad;
				unsigned char c = ok ? good[k - sizeof bad] : bad[k];
				/* a field line "X:a<len bytes>z\r\n" */
				memcpy(line, "X:a", 3);
				memset(line + 3, 'v', len);
				line[3 + pos] = (char)c;
				memcpy(line + 3 + len, "z\r\n", 3);
				h1resp_init(&p, false);
				assert_int_equal(h1resp_parse(&p, "HTTP/1.1 200 x\r\n", 16, &used), H1R_STATUS);
				enum h1resp_event ev = h1resp_parse(&p, line, len + 6, &used);
				assert_int_equal(ev, ok ? H1R_HEADER : H1R_ERROR);
				if (ok) {
					assert_int_equal(p.value_len, len + 2);
					assert_memory_equal(p.value, line + 2, len + 2);
				}
				/* a status line "HTTP/1.1 200 a<len bytes>z\r\n" */
				memcpy(line, "HTTP/1.1 200 a", 14);
				memset(line + 14, 'v', len);
				line[14 + pos] = (char)c;
				memcpy(line + 14 + len, "z\r\n", 3);
				h1resp_init(&p, false);
				ev = h1resp_parse(&p, line, len + 17, &used);
				assert_int_equal(ev, ok ? H1R_STATUS : H1R_ERROR);
			}
		}
	}
}

static void test_content_length(void **state)
{
#define ST "HTTP/1.1 200 x\r\n"
	EXPECT(ST "Content-Length: 3, 3 ,3\r\n\r\nabc", "S200\nHContent-Length:3, 3 ,3\nEl3\nBabc\nDk\n");
	EXPECT(ST "content-length: 003\r\nCONTENT-LENGTH: 3\r\n\r\nabc",
	       "S200\nHcontent-length:003\nHCONTENT-LENGTH:3\nEl3\nBabc\nDk\n");
	EXPECT_ERROR(ST "Content-Length: 3, 4\r\n\r\nabc", "conflicting Content-Length");
	EXPECT_ERROR(ST "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabc", "conflicting Content-Length");
	EXPECT_ERROR(ST "Content-Length: 3\r\nContent-Length: 0\r\n\r\nabc", "conflicting Content-Length");
	EXPECT_ERROR(ST "Content-Length:\r\n\r\n", "empty Content-Length");
	EXPECT_ERROR(ST "Content-Length: 3,\r\n\r\n", "empty Content-Length");
	EXPECT_ERROR(ST "Content-Length: ,3\r\n\r\n", "empty Content-Length");
	EXPECT_ERROR(ST "Content-Length: +3\r\n\r\n", "bad Content-Length");
	EXPECT_ERROR(ST "Content-Length: -1\r\n\r\n", "bad Content-Length");
	EXPECT_ERROR(ST "Content-Length: 0x3\r\n\r\n", "bad Content-Length");
	EXPECT_ERROR(ST "Content-Length: 3 3\r\n\r\n", "bad Content-Length");
	EXPECT_ERROR(ST "Content-Length: 3;\r\n\r\n", "bad Content-Length");
	EXPECT_ERROR(ST "Content-Length: 4611686018427387905\r\n\r\n", "Content-Length too large");
	EXPECT_ERROR(ST "Content-Length: 99999999999999999999999999\r\n\r\n", "Content-Length too large");
	EXPECT_ERROR(ST "Content-Length: 18446744073709551621\r\n\r\n", "Content-Length too large");
	/* 2^62 itself is taken */
	EXPECT_ERROR(ST "Content-Length: 4611686018427387904\r\n\r\nab", "truncated");
	struct h1resp p;
	size_t used;
	const char r[] = ST "Content-Length: 4611686018427387904\r\n\r\nab";
	parse_until(&p, false, r, sizeof r - 1, H1R_HEADERS_END, &used);
	assert_int_equal(p.content_length, INT64_C(4611686018427387904));
#undef ST
}

static void test_transfer_encoding(void **state)
{
#define ST "HTTP/1.1 200 x\r\n"
	EXPECT(ST "Transfer-Encoding: , gzip;q=\"1\" ,\tChunKed ,\r\n\r\n0\r\n\r\n",
	       "S200\nHTransfer-Encoding:, gzip;q=\"1\" ,\tChunKed ,\nEc-1\nDk\n");
	EXPECT_ERROR(ST "Transfer-Encoding: chunked, gzip\r\n\r\n", "chunked not the last transfer coding");
	EXPECT_ERROR(ST "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
	             "chunked not the last transfer coding");
	EXPECT_ERROR(ST "Transfer-Encoding: chunked, chunked\r\n\r\n", "chunked not the last transfer coding");
	EXPECT_ERROR(ST "Transfer-Encoding: chunked;x=1\r\n\r\n", "bad transfer coding");
	EXPECT_ERROR(ST "Transfer-Encoding: chunked x\r\n\r\n", "bad transfer coding");
	EXPECT_ERROR(ST "Transfer-Encoding: \"chunked\"\r\n\r\n", "bad transfer coding");
	EXPECT_ERROR(ST "Transfer-Encoding: \r\n\r\n", "empty Transfer-Encoding");
	EXPECT_ERROR(ST "Transfer-Encoding: , ,\r\n\r\n", "empty Transfer-Encoding");
	/* two framings: a smuggling attempt, whichever comes first */
	EXPECT_ERROR(ST "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
	             "both Transfer-Encoding and Content-Length");
	EXPECT_ERROR(ST "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
	             "both Transfer-Encoding and Content-Length");
	EXPECT_ERROR(ST "Content-Length: 3\r\nTransfer-Encoding: gzip\r\n\r\n",
	             "both Transfer-Encoding and Content-Length");
	EXPECT_ERROR("HTTP/1.0 200 x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "Transfer-Encoding in HTTP/1.0");
#undef ST
}

/* ---- bounds ---- */

/* A head of exactly `total` bytes: a status line, filler fields, the empty line. */
static size_t make_head(char *b, size_t total, size_t line)
{
	size_t n = (size_t)sprintf(b, "HTTP/1.1 204 x\r\n");
	while (total - n - 2 > 0) {
		size_t l = total - n - 2;
		if (l > line)
			l = line;
		if (l < 5) { /* "X:" + CRLF at least; widen the status line's reason instead */
			memmove(b + 14 + l, b + 14, n - 14);
			memset(b + 14, 'r', l);
			n += l;
			break;
		}
		memcpy(b + n, "X:", 2);
		memset(b + n + 2, 'v', l - 4);
		memcpy(b + n + l - 2, "\r\n", 2);
		n += l;
	}
	memcpy(b + n, "\r\n", 2);
	return n + 2;
}

static void test_head_limit(void **state)
{
	char *b = malloc(H1RESP_MAX_HEAD + 4096);
	assert_non_null(b);
	size_t n = make_head(b, H1RESP_MAX_HEAD, 1000);
	assert_int_equal(n, H1RESP_MAX_HEAD);
	char *t = run(b, n, false, false, 0);
	assert_string_equal(t + strlen(t) - 8, "En-1\nDk\n");
	free(t);
	t = run(b, n, false, false, 999);
	assert_string_equal(t + strlen(t) - 8, "En-1\nDk\n");
	free(t);
	n = make_head(b, H1RESP_MAX_HEAD + 1, 1000);
	expect_error_n(b, n, "response head too long");
	/* one huge line with no end: refused once it cannot fit, without a LF */
	memcpy(b, "HTTP/1.1 200 x\r\nX: ", 19);
	memset(b + 19, 'v', H1RESP_MAX_HEAD);
	expect_error_n(b, H1RESP_MAX_HEAD - 1, "truncated");
	expect_error_n(b, H1RESP_MAX_HEAD, "response head too long");
	/* 1xx interims count towards the same bound */
	n = (size_t)sprintf(b, "HTTP/1.1 100 x\r\n\r\n");
	n += make_head(b + n, H1RESP_MAX_HEAD - n + 1, 1000);
	expect_error_n(b, n, "response head too long");
	free(b);
}

static void test_line_limits(void **state)
{
	const char te[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
	size_t h = sizeof te - 1;
	char *b = malloc(h + H1RESP_MAX_HEAD + 8192);
	assert_non_null(b);
	memcpy(b, te, h);
	/* a chunk-size line of exactly H1RESP_MAX_LINE bytes (with CRLF) passes */
	size_t n = h;
	b[n++] = '1';
	b[n++] = ';';
	memset(b + n, 'e', H1RESP_MAX_LINE - 4);
	n += H1RESP_MAX_LINE - 4;
	memcpy(b + n, "\r\nz\r\n0\r\n\r\n", 10);
	expect_n(b, n + 10, false, false, "S200\nHTransfer-Encoding:chunked\nEc-1\nBz\nDk\n");
	/* one byte more is refused, whole or as soon as the part in cannot fit */
	memmove(b + n + 1, b + n, 10);
	b[n] = 'e';
	expect_error_n(b, n + 11, "chunk-size line too long");
	expect_error_n(b, n + 1, "truncated");
	expect_error_n(b, n + 2, "chunk-size line too long");
	/* trailer lines: each H1RESP_MAX_LINE, all of them H1RESP_MAX_HEAD */
	n = h;
	memcpy(b + n, "0\r\nX:", 5);
	n += 5;
	memset(b + n, 'v', H1RESP_MAX_LINE - 4);
	n += H1RESP_MAX_LINE - 4;
	memcpy(b + n, "\r\n\r\n", 4);
	expect_n(b, n + 4, false, false, "S200\nHTransfer-Encoding:chunked\nEc-1\nDk\n");
	b[n] = 'v';
	memcpy(b + n + 1, "\r\n\r\n", 4);
	expect_error_n(b, n + 5, "trailer line too long");
	expect_error_n(b, n + 1, "truncated");
	expect_error_n(b, n + 2, "trailer line too long");
	n = h + 3;
	for (size_t i = 0; i < H1RESP_MAX_HEAD / 1000 + 1; i++) {
		memcpy(b + n, "X:", 2);
		memset(b + n + 2, 'v', 996);
		memcpy(b + n + 998, "\r\n", 2);
		n += 1000;
	}
	memcpy(b + n, "\r\n", 2);
	expect_error_n(b, n + 2, "trailer line too long");
	free(b);
}

/* ---- after the end ---- */

static void test_sticky_end(void **state)
{
	struct h1resp p;
	size_t used = 99;
	h1resp_init(&p, false);
	const char bad[] = "HTTP/1.1 200 OK\r\nX : y\r\n\r\n";
	assert_int_equal(h1resp_parse(&p, bad, sizeof bad - 1, &used), H1R_STATUS);
	assert_int_equal(h1resp_parse(&p, bad + used, sizeof bad - 1 - used, &used), H1R_ERROR);
	assert_int_equal(used, 0);
	const char good[] = "HTTP/1.1 200 OK\r\n\r\n";
	assert_int_equal(h1resp_parse(&p, good, sizeof good - 1, &used), H1R_ERROR);
	assert_int_equal(used, 0);
	assert_int_equal(h1resp_eof(&p), H1R_ERROR);
	assert_string_equal(p.error, "whitespace after field name");
	/* no input at all (a caller with no buffer yet): more needed */
	h1resp_init(&p, false);
	assert_int_equal(h1resp_parse(&p, NULL, 0, &used), H1R_NEED_MORE);
	assert_int_equal(used, 0);
	/* eof before any byte: truncated */
	h1resp_init(&p, false);
	assert_int_equal(h1resp_eof(&p), H1R_ERROR);
	assert_string_equal(p.error, "truncated");
	assert_int_equal(h1resp_parse(&p, good, sizeof good - 1, &used), H1R_ERROR);
	/* close-delimited: eof ends it, and then it stays done */
	h1resp_init(&p, false);
	assert_int_equal(h1resp_parse(&p, good, sizeof good - 1, &used), H1R_STATUS);
	assert_int_equal(h1resp_parse(&p, "\r\n", 2, &used), H1R_HEADERS_END);
	assert_false(p.keep_alive);
	assert_int_equal(h1resp_parse(&p, "", 0, &used), H1R_NEED_MORE);
	assert_int_equal(h1resp_eof(&p), H1R_DONE);
	assert_false(p.keep_alive);
	assert_int_equal(h1resp_parse(&p, "x", 1, &used), H1R_DONE);
	assert_int_equal(used, 0);
	assert_int_equal(h1resp_eof(&p), H1R_DONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_length),
		cmocka_unit_test(test_length_stops_at_end),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_chunked_bad),
		cmocka_unit_test(test_close_delimited),
		cmocka_unit_test(test_no_body),
		cmocka_unit_test(test_interim),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_keep_alive),
		cmocka_unit_test(test_status_line),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_value_bytes),
		cmocka_unit_test(test_content_length),
		cmocka_unit_test(test_transfer_encoding),
		cmocka_unit_test(test_head_limit),
		cmocka_unit_test(test_line_limits),
		cmocka_unit_test(test_sticky_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
