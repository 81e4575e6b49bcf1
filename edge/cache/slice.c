/* slice.c -- slice geometry, keys, Content-Range checks, validators; no I/O */
#include "edge/cache/slice.h"
#include "edge/cache/cachekey.h"
#include "common/httpdate.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---------- keys ---------- */

void slice_key(const char *key, uint64_t size, uint64_t index, struct buf *out)
{
	buf_printf(out, "%s%c%s%" PRIu64 "/%" PRIu64, key, CACHEKEY_VARY_SEP, SLICE_KEY_MARK, size,
	           index);
}

bool slice_is_key(const char *storage_key)
{
	const char *sep = strchr(storage_key, CACHEKEY_VARY_SEP);
	return sep && !strncmp(sep + 1, SLICE_KEY_MARK, strlen(SLICE_KEY_MARK));
}

/* ---------- geometry ---------- */

bool slice_bounds(uint64_t index, uint64_t size, int64_t total, uint64_t *first, uint64_t *last)
{
	if (!size || index > UINT64_MAX / size - 1)
		return false;
	*first = index * size;
	*last = *first + size - 1;
	if (total >= 0) {
		if (*first >= (uint64_t)total)
			return false;
		if (*last >= (uint64_t)total)
			*last = (uint64_t)total - 1;
	}
	return true;
}

void slice_span(uint64_t first, uint64_t last, uint64_t size, uint64_t *i0, uint64_t *i1)
{
	*i0 = first / size;
	*i1 = last / size;
}

bool slice_range_header(uint64_t index, uint64_t size, int64_t total, char *out)
{
	uint64_t a, b;
	if (!slice_bounds(index, size, total, &a, &b))
		return false;
	snprintf(out, SLICE_RANGE_LEN, "bytes=%" PRIu64 "-%" PRIu64, a, b);
	return true;
}

/* ---------- the origin's answer ---------- */

/* 1*DIGIT without overflow (at most 19 digits: below 2^63). */
static bool digits(const char **pp, uint64_t *v)
{
	const char *p = *pp;
	uint64_t x = 0;
	int n = 0;
	for (; *p >= '0' && *p <= '9'; p++, n++) {
		if (n == 19)
			return false;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	if (!n)
		return false;
	*v = x;
	*pp = p;
	return true;
}

static const char *ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

bool slice_first_byte(const char *range, uint64_t *first)
{
	if (!range || strncasecmp(range, "bytes=", 6))
		return false;
	const char *p = ows(range + 6);
	uint64_t last;
	if (!digits(&p, first) || *p++ != '-')
		return false;
	if (digits(&p, &last) && last < *first)
		return false;
	return !*ows(p);
}

bool slice_parse_content_range(const char *v, uint64_t *first, uint64_t *last, uint64_t *total)
{
	if (!v || strncasecmp(v, "bytes ", 6))
		return false;
	const char *p = v + 6;
	if (!digits(&p, first) || *p++ != '-' || !digits(&p, last) || *p++ != '/' ||
	    !digits(&p, total))
		return false;
	return !*ows(p) && *first <= *last && *last < *total;
}

enum slice_check slice_check_response(unsigned status, const char *content_range, uint64_t index,
                                      uint64_t size, int64_t known_total, uint64_t *total)
{
	if (status == 200)
		return SLICE_WHOLE;
	if (status != 206)
		return SLICE_UNUSABLE;
	uint64_t a, b, want_a, want_b;
	if (!slice_parse_content_range(content_range, &a, &b, total))
		return SLICE_BAD_RANGE;
	if (known_total >= 0 && *total != (uint64_t)known_total) {
		/* Another length is another representation; the slice is only
		 * usable if it is right for the new length. */
		if (slice_bounds(index, size, (int64_t)*total, &want_a, &want_b) && a == want_a &&
		    b == want_b)
			return SLICE_NEW_LENGTH;
		return SLICE_BAD_RANGE;
	}
	if (!slice_bounds(index, size, (int64_t)*total, &want_a, &want_b))
		return SLICE_BAD_RANGE;
	return a == want_a && b == want_b ? SLICE_MATCH : SLICE_BAD_RANGE;
}

/* ---------- validators (RFC 9110 8.8, RFC 9111 3.4) ---------- */

static bool etag_strong(const char *e)
{
	size_t n = e ? strlen(e) : 0;
	return n >= 2 && e[0] == '"' && e[n - 1] == '"';
}

bool slice_strong(const struct slice_validators *v)
{
	if (v->etag)
		return etag_strong(v->etag);
	if (!v->last_modified || !v->date)
		return false;
	time_t lm = httpdate_parse(v->last_modified), d = httpdate_parse(v->date);
	return lm >= 0 && d >= 0 && d - lm >= 60;
}

bool slice_validators_match(const struct slice_validators *a, const struct slice_validators *b)
{
	if (a->etag || b->etag)
		return etag_strong(a->etag) && etag_strong(b->etag) && !strcmp(a->etag, b->etag);
	if (!slice_strong(a) || !slice_strong(b))
		return false;
	return httpdate_parse(a->last_modified) == httpdate_parse(b->last_modified);
}

bool slice_wanted(uint64_t total, uint64_t size, uint64_t min_size, uint64_t max_size)
{
	return size && total > min_size && (!max_size || total <= max_size);
}
