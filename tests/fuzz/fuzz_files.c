/* fuzz_files.c -- the origin's path resolution: a decoded request path
 * normalised (files_normalize).  Invariants: an accepted path starts with
 * '/', holds no ".." segment, NUL, backslash or "//", and normalises to itself. */
#include "origin/files.h"
#include "tests/fuzz/fuzz_util.h"

#include <limits.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	char out[FILES_PATH_MAX], again[FILES_PATH_MAX];
	enum files_result r = files_normalize(s, out, sizeof out);
	if (r == FILES_OK) {
		size_t n = strlen(out);
		FUZZ_CHECK(out[0] == '/');
		FUZZ_CHECK(!strstr(out, "/../") && !(n >= 3 && !strcmp(out + n - 3, "/..")));
		FUZZ_CHECK(!strstr(out, "//") && !strchr(out, '\\'));
		FUZZ_CHECK(files_normalize(out, again, sizeof again) == FILES_OK && !strcmp(out, again));
	}
	free(s);
	return 0;
}
