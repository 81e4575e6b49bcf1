/* encoding.c -- reading Accept-Encoding */
#include "common/encoding.h"

#include <string.h>
#include <strings.h>

/* One coding's q value: "gzip;q=0.5" -> 0.5; no q means 1.  Parameters
 * other than q are ignored (RFC 9110 12.4.2 weights are 0 to 1, three
 * decimals). */
static double coding_q(const char *params, size_t len)
{
	const char *p = params, *end = params + len;
	while (p < end) {
		while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
			p++;
		if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
			p += 2;
			double q = 0, scale = 1;
			bool frac = false;
			for (; p < end && ((*p >= '0' && *p <= '9') || *p == '.'); p++) {
				if (*p == '.') {
					frac = true;
				} else if (frac) {
					scale /= 10;
					q += (*p - '0') * scale;
				} else {
					q = q * 10 + (*p - '0');
				}
			}
			return q;
		}
		while (p < end && *p != ';')
			p++;
	}
	return 1;
}

bool encoding_accepts_gzip(const char *ae)
{
	if (!ae)
		return false;
	double gzip = -1, star = -1; /* -1: not listed */
	const char *p = ae;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *tok = p;
		while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
			p++;
		size_t tl = (size_t)(p - tok);
		const char *params = p;
		while (*p && *p != ',')
			p++;
		if (!tl)
			continue;
		double q = coding_q(params, (size_t)(p - params));
		if ((tl == 4 && !strncasecmp(tok, "gzip", 4)) || (tl == 6 && !strncasecmp(tok, "x-gzip", 6)))
			gzip = q;
		else if (tl == 1 && *tok == '*')
			star = q;
	}
	/* An explicit gzip entry wins over "*" (gzip;q=0, * -> no). */
	return gzip >= 0 ? gzip > 0 : star > 0;
}
