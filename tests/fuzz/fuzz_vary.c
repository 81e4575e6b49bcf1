/* fuzz_vary.c -- Vary matching: the variant key a response's Vary selects
 * for a request's headers.  Lines: Vary value, then "name: value" request
 * headers.  Invariants: the variant key starts with the primary key; the
 * same request headers always give the same variant; a request differing
 * in a header Vary does not name gets the same variant. */
#include "edge/cache/cache.h"
#include "tests/fuzz/fuzz_util.h"

#include <strings.h>

struct reqh {
	char **line;
	size_t n;
	const char *extra; /* a header Vary cannot name (has a space) */
};

static const char *lookup(void *cls, const char *name)
{
	struct reqh *r = cls;
	size_t nl = strlen(name);
	for (size_t i = 0; i < r->n; i++) {
		const char *l = r->line[i];
		if (!strncasecmp(l, name, nl) && l[nl] == ':')
			return l[nl + 1] == ' ' ? l + nl + 2 : l + nl + 1;
	}
	if (r->extra && !strcasecmp(name, "x fuzz"))
		return r->extra;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *l[17], *mem;
	size_t n = fuzz_split(data, size, l, 17, &mem);
	static const char key[] = "http://h/p";
	struct reqh r = { .line = l + 1, .n = n - 1 };
	struct buf a = BUF_INIT, b = BUF_INIT, c = BUF_INIT;
	cache_variant_key(key, l[0], lookup, &r, &a);
	cache_variant_key(key, l[0], lookup, &r, &b);
	r.extra = "other";
	cache_variant_key(key, l[0], lookup, &r, &c);
	FUZZ_CHECK(a.len >= sizeof key - 1 && !memcmp(a.data, key, sizeof key - 1));
	FUZZ_CHECK(a.len == b.len && !memcmp(a.data, b.data, a.len));
	FUZZ_CHECK(a.len == c.len && !memcmp(a.data, c.data, a.len));
	buf_free(&a);
	buf_free(&b);
	buf_free(&c);
	free(mem);
	return 0;
}
