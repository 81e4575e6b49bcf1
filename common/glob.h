/* glob.h -- the one wildcard matcher of minicdn: origin rules, edge query
 * rules and script routes all use it.
 *
 * '*' matches any run of characters (including '/' and none), '?' exactly one
 * character; everything else matches itself (ASCII case-insensitively when
 * nocase).  Greedy with a single backtrack point: O(len(pat) * len(s)) at
 * worst, no recursion, so a hostile pattern cannot blow the stack. */
#ifndef MINICDN_GLOB_H
#define MINICDN_GLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* s need not be NUL-terminated: slen bytes are matched.  pat is a C string. */
bool glob_match(const char *pat, const char *s, size_t slen, bool nocase);

static inline bool glob_match_str(const char *pat, const char *s)
{
	return glob_match(pat, s, strlen(s), false);
}

#endif
