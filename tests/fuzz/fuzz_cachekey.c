/* fuzz_cachekey.c -- request target + Host to cache key.  Lines: target,
 * Host.  Invariants: a key is built only for a target that splits; the
 * normalised path starts with '/' and has no dot segment, NUL or control
 * byte; normalising it again changes nothing. */
#include "edge/cache/cachekey.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *l[2], *mem;
	size_t n = fuzz_split(data, size, l, 2, &mem);
	struct query_rule rules[] = { { "/s/*", "sort" }, { "/i/*", "ignore" } };
	struct buf key = BUF_INIT, path = BUF_INIT, host = BUF_INIT;
	int rc = cachekey_build("http", l[0], n > 1 ? l[1] : NULL, rules, 2, &key, &path, &host);
	if (rc == 0) {
		FUZZ_CHECK(path.len > 0 && path.data[0] == '/');
		FUZZ_CHECK(memchr(path.data, '\0', path.len) == NULL);
		/* The path part (before '?'; the query is kept raw) has no dot
		 * segment and normalises to itself. */
		size_t plen = path.len;
		const char *q = memchr(path.data, '?', path.len);
		if (q)
			plen = (size_t)(q - path.data);
		FUZZ_CHECK(!memmem(path.data, plen, "/../", 4) && !memmem(path.data, plen, "/./", 3));
		FUZZ_CHECK(!(plen >= 3 && !memcmp(path.data + plen - 3, "/..", 3)));
		struct buf again = BUF_INIT;
		FUZZ_CHECK(cachekey_normalize_path(path.data, plen, &again) == 0);
		FUZZ_CHECK(again.len == plen && !memcmp(again.data, path.data, plen));
		buf_free(&again);
	}
	struct buf p2 = BUF_INIT;
	(void)cachekey_normalize_path((const char *)data, size, &p2);
	(void)cachekey_normalize_host((const char *)data, size, &p2);
	buf_free(&p2);
	buf_free(&key);
	buf_free(&path);
	buf_free(&host);
	free(mem);
	return 0;
}
