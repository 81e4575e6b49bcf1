/* fuzz_util.h -- small helpers shared by the libFuzzer targets: the input cut
 * into NUL-terminated pieces, and a check that traps when an invariant fails
 * (libFuzzer keeps the input as a crash). */
#ifndef MINICDN_FUZZ_UTIL_H
#define MINICDN_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

/* Splits data at '\n' into up to max NUL-terminated strings (one heap copy,
 * *mem, freed by the caller).  Returns the number of pieces. */
static inline size_t fuzz_split(const uint8_t *data, size_t size, char **piece, size_t max, char **mem)
{
	char *m = malloc(size + 1);
	memcpy(m, data, size);
	m[size] = '\0';
	*mem = m;
	size_t n = 0;
	char *p = m;
	while (n < max) {
		piece[n++] = p;
		char *nl = memchr(p, '\n', (size_t)(m + size - p));
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	return n;
}

#endif
