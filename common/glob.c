/* glob.c -- wildcard matching ('*' and '?') */
#include "common/glob.h"

#include <ctype.h>

bool glob_match(const char *pat, const char *s, size_t slen, bool nocase)
{
	const char *star = NULL; /* pattern position just after the last '*' */
	size_t si = 0, star_si = 0;
	while (si < slen) {
		if (*pat == '*') {
			star = ++pat;
			star_si = si;
			continue;
		}
		if (*pat && (*pat == '?' || *pat == s[si] ||
		             (nocase && tolower((unsigned char)*pat) == tolower((unsigned char)s[si])))) {
			pat++;
			si++;
			continue;
		}
		if (!star)
			return false;
		/* Let the last '*' swallow one more character and retry. */
		pat = star;
		si = ++star_si;
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}
