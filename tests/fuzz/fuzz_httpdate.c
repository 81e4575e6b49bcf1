/* fuzz_httpdate.c -- HTTP date parsing (IMF-fixdate, RFC 850, asctime).
 * Invariant: a date that parses formats as an IMF-fixdate which parses back
 * to the same second. */
#include "common/httpdate.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	time_t t = httpdate_parse(s);
	if (t >= 0 && t < (time_t)253402300799) { /* up to year 9999: four-digit years */
		char out[64];
		const char *f = httpdate_format(t, out);
		FUZZ_CHECK(f != NULL);
		FUZZ_CHECK(httpdate_parse(f) == t);
	}
	free(s);
	return 0;
}
