/* httpdate.h -- HTTP dates (RFC 9110 section 5.6.7) */
#ifndef MINICDN_HTTPDATE_H
#define MINICDN_HTTPDATE_H

#include <time.h>

#define HTTPDATE_LEN 32 /* "Sun, 06 Nov 1994 08:49:37 GMT" + NUL, rounded up */

/* Writes t as IMF-fixdate into out (HTTPDATE_LEN bytes). */
const char *httpdate_format(time_t t, char *out);

/* Parses exactly the three forms of RFC 9110 5.6.7 -- IMF-fixdate, the
 * obsolete RFC 850 form and asctime() -- with their single spaces,
 * two-digit fields, zone GMT and in-range values (a leap second is allowed,
 * a day past its month's end is not); names match case-insensitively, as
 * RFC 9111 4.2 asks of caches.  Surrounding spaces and tabs
 * are tolerated; any other byte is not.  Returns -1 on anything else, which
 * callers treat as invalid (an invalid Expires means already expired, RFC
 * 9111 5.3), and for dates before 1970.  An RFC 850 two-digit year is read
 * against the current clock; httpdate_parse_at takes that clock. */
time_t httpdate_parse(const char *s);
time_t httpdate_parse_at(const char *s, time_t now);

#endif
