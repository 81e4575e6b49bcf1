/* sf.c -- Structured Field dictionaries (RFC 8941), validated in full first */
#include "common/sf.h"

#include <string.h>

struct sfp {
	const char *p, *end;
};

static bool at(const struct sfp *s, char c)
{
	return s->p < s->end && *s->p == c;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_lcalpha(char c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_alpha(char c)
{
	return is_lcalpha(c) || (c >= 'A' && c <= 'Z');
}

/* tchar of RFC 9110 5.6.2 */
static bool is_tchar(char c)
{
	return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* RFC 8941 4.2.3.3: lcalpha / "*" first, then lcalpha / DIGIT / "_-.*". */
static int parse_key(struct sfp *s, const char **key, size_t *klen)
{
	if (s->p >= s->end || !(is_lcalpha(*s->p) || *s->p == '*'))
		return -1;
	*key = s->p;
	while (s->p < s->end && (is_lcalpha(*s->p) || is_digit(*s->p) ||
	                           (*s->p && strchr("_-.*", *s->p))))
		s->p++;
	*klen = (size_t)(s->p - *key);
	return 0;
}

/* 4.2.4: at most 15 integer digits, or 12 + "." + 1..3 for a Decimal. */
static int parse_number(struct sfp *s, struct sf_item *v)
{
	int64_t sign = 1, ip = 0, fp = 0;
	int idig = 0, fdig = 0;
	if (at(s, '-')) {
		sign = -1;
		s->p++;
	}
	if (s->p >= s->end || !is_digit(*s->p))
		return -1;
	while (s->p < s->end && is_digit(*s->p)) {
		if (++idig > 15)
			return -1;
		ip = ip * 10 + (*s->p++ - '0');
	}
	if (!at(s, '.')) {
		v->type = SF_INTEGER;
		v->integer = sign * ip;
		return 0;
	}
	if (idig > 12)
		return -1;
	s->p++;
	while (s->p < s->end && is_digit(*s->p)) {
		if (++fdig > 3)
			return -1;
		fp = fp * 10 + (*s->p++ - '0');
	}
	if (fdig == 0)
		return -1;
	while (fdig++ < 3)
		fp *= 10;
	v->type = SF_DECIMAL;
	v->integer = sign * (ip * 1000 + fp);
	return 0;
}

/* 4.2.5: printable ASCII; only \" and \\ escaped. */
static int parse_string(struct sfp *s, struct sf_item *v)
{
	s->p++;
	v->type = SF_STRING;
	v->text = s->p;
	while (s->p < s->end) {
		char c = *s->p++;
		if (c == '\\') {
			if (s->p >= s->end || (*s->p != '"' && *s->p != '\\'))
				return -1;
			s->p++;
		} else if (c == '"') {
			v->len = (size_t)(s->p - 1 - v->text);
			return 0;
		} else if (c < 0x20 || c > 0x7e) {
			return -1;
		}
	}
	return -1; /* unterminated */
}

static int parse_bytes(struct sfp *s, struct sf_item *v)
{
	s->p++;
	v->type = SF_BYTES;
	v->text = s->p;
	while (s->p < s->end && *s->p != ':') {
		char c = *s->p++;
		if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '/' && c != '=')
			return -1;
	}
	if (!at(s, ':'))
		return -1;
	v->len = (size_t)(s->p++ - v->text);
	return 0;
}

static int parse_bare_item(struct sfp *s, struct sf_item *v)
{
	memset(v, 0, sizeof *v);
	if (s->p >= s->end)
		return -1;
	char c = *s->p;
	if (c == '-' || is_digit(c))
		return parse_number(s, v);
	if (c == '"')
		return parse_string(s, v);
	if (c == ':')
		return parse_bytes(s, v);
	if (c == '?') {
		if (s->p + 1 >= s->end || (s->p[1] != '0' && s->p[1] != '1'))
			return -1;
		v->type = SF_BOOLEAN;
		v->boolean = s->p[1] == '1';
		s->p += 2;
		return 0;
	}
	if (is_alpha(c) || c == '*') {
		v->type = SF_TOKEN;
		v->text = s->p;
		while (s->p < s->end && (is_tchar(*s->p) || *s->p == ':' || *s->p == '/'))
			s->p++;
		v->len = (size_t)(s->p - v->text);
		return 0;
	}
	return -1;
}

/* 4.2.3.2: *( ";" *SP key [ "=" bare-item ] ) */
static int parse_params(struct sfp *s)
{
	while (at(s, ';')) {
		s->p++;
		while (at(s, ' '))
			s->p++;
		const char *k;
		size_t kl;
		struct sf_item pv;
		if (parse_key(s, &k, &kl) < 0)
			return -1;
		if (at(s, '=')) {
			s->p++;
			if (parse_bare_item(s, &pv) < 0)
				return -1;
		}
	}
	return 0;
}

/* 4.2.1.2: "(" *SP [ item *( 1*SP item ) *SP ] ")" parameters */
static int parse_inner_list(struct sfp *s, struct sf_item *v)
{
	s->p++;
	memset(v, 0, sizeof *v);
	v->type = SF_INNER_LIST;
	for (;;) {
		while (at(s, ' '))
			s->p++;
		if (at(s, ')')) {
			s->p++;
			return parse_params(s);
		}
		struct sf_item it;
		if (parse_bare_item(s, &it) < 0 || parse_params(s) < 0)
			return -1;
		if (!at(s, ' ') && !at(s, ')'))
			return -1;
	}
}

/* One member: key, then "=" and an item or inner list, or Boolean true;
 * parameters either way. */
static int parse_member(struct sfp *s, const char **key, size_t *klen, struct sf_item *v)
{
	if (parse_key(s, key, klen) < 0)
		return -1;
	if (!at(s, '=')) {
		memset(v, 0, sizeof *v);
		v->type = SF_BOOLEAN;
		v->boolean = true;
		return parse_params(s);
	}
	s->p++;
	if (at(s, '('))
		return parse_inner_list(s, v);
	if (parse_bare_item(s, v) < 0)
		return -1;
	return parse_params(s);
}

/* Walks the dictionary; fn NULL only validates. */
static int walk(const char *field, size_t len, sf_member_fn fn, void *cls)
{
	struct sfp s = { field, field + len };
	/* 4.2: leading and trailing SP are discarded (SP only, not HTAB). */
	while (s.p < s.end && *s.p == ' ')
		s.p++;
	while (s.end > s.p && s.end[-1] == ' ')
		s.end--;
	while (s.p < s.end) {
		const char *key;
		size_t klen;
		struct sf_item v;
		if (parse_member(&s, &key, &klen, &v) < 0)
			return -1;
		if (fn)
			fn(cls, key, klen, &v);
		while (at(&s, ' ') || at(&s, '\t'))
			s.p++;
		if (s.p >= s.end)
			return 0;
		if (!at(&s, ','))
			return -1;
		s.p++;
		while (at(&s, ' ') || at(&s, '\t'))
			s.p++;
		if (s.p >= s.end)
			return -1; /* trailing comma */
	}
	return 0;
}

int sf_parse_dictionary(const char *field, size_t len, sf_member_fn fn, void *cls)
{
	/* Two passes so that a member is never reported from a field that
	 * turns out not to parse: the fields are short and this stays O(n). */
	if (walk(field, len, NULL, NULL) < 0)
		return -1;
	return walk(field, len, fn, cls);
}
