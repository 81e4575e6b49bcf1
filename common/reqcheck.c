/* reqcheck.c -- strict HTTP/1.x request-head checks (RFC 9112), no I/O */
#include "common/reqcheck.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

static const char *const names[REQCHECK_N] = {
	"ok", "method", "target", "version", "name", "value", "fold", "host", "length", "cl_te", "te", "parse",
};

const char *reqcheck_name(enum reqcheck_reason why)
{
	return (unsigned)why < REQCHECK_N ? names[why] : "?";
}

unsigned reqcheck_status(enum reqcheck_reason why)
{
	return why == REQCHECK_TE ? 501 : 400;
}

/* tchar of RFC 9110 §5.6.2 (digits, letters and !#$%&'*+-.^_`|~) as a
 * 256-bit map: every request's method and header names go through it. */
static const uint64_t TCHAR[4] = { 0x03ff6cfa00000000ull, 0x57ffffffc7fffffeull, 0, 0 };

static inline bool is_tchar(unsigned char c)
{
	return (TCHAR[c >> 6] >> (c & 63)) & 1;
}

static bool is_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)s[i]))
			return false;
	return true;
}

enum reqcheck_reason reqcheck_target(const char *t, size_t len)
{
	if (len == 0)
		return REQCHECK_TARGET;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c <= 0x20 || c == 0x7f)
			return REQCHECK_TARGET; /* NUL, controls, space: never in a target */
	}
	if (t[0] == '/')
		return REQCHECK_OK;
	if (len == 1 && t[0] == '*')
		return REQCHECK_OK;
	if ((len > 7 && !strncasecmp(t, "http://", 7)) || (len > 8 && !strncasecmp(t, "https://", 8)))
		return REQCHECK_OK;
	return REQCHECK_TARGET;
}

static bool name_is(const struct reqcheck_hdr *h, const char *n)
{
	size_t l = strlen(n);
	return h->name_len == l && !strncasecmp(h->name, n, l);
}

/* Content-Length: 1*DIGIT, nothing else (no sign, list or spaces inside). */
static bool plain_length(const char *v, size_t n)
{
	if (n == 0 || n > 19)
		return false;
	for (size_t i = 0; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return false;
	return true;
}

static enum reqcheck_reason check_header(const struct reqcheck_hdr *h)
{
	if (h->folded)
		return REQCHECK_FOLD;
	if (!is_token(h->name, h->name_len))
		return REQCHECK_NAME;
	for (size_t i = 0; i < h->value_len; i++) {
		unsigned char c = (unsigned char)h->value[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return REQCHECK_VALUE;
	}
	return REQCHECK_OK;
}

enum reqcheck_reason reqcheck_head(const struct reqcheck_head *r)
{
	if (!is_token(r->method, strlen(r->method)))
		return REQCHECK_METHOD;
	enum reqcheck_reason why = reqcheck_target(r->target, r->target_len);
	if (why)
		return why;
	bool v11 = !strcmp(r->version, "HTTP/1.1");
	if (!v11 && strcmp(r->version, "HTTP/1.0") != 0)
		return REQCHECK_VERSION;
	int hosts = 0, cls = 0, tes = 0;
	bool te_ok = true;
	for (size_t i = 0; i < r->nh; i++) {
		const struct reqcheck_hdr *h = &r->h[i];
		if ((why = check_header(h)))
			return why;
		if (name_is(h, "Host")) {
			hosts++;
		} else if (name_is(h, "Content-Length")) {
			if (++cls > 1 || !plain_length(h->value, h->value_len))
				return REQCHECK_LENGTH;
		} else if (name_is(h, "Transfer-Encoding")) {
			/* Only "chunked" alone is understood; anything else would be
			 * read as no body by one parser and as a body by another. */
			tes++;
			te_ok = te_ok && h->value_len == 7 && !strncasecmp(h->value, "chunked", 7);
		}
	}
	if (hosts > 1 || (v11 && hosts == 0))
		return REQCHECK_HOST;
	if (cls && tes)
		return REQCHECK_CL_TE;
	if (tes && (!v11 || tes > 1 || !te_ok))
		return REQCHECK_TE;
	return REQCHECK_OK;
}
