/* httpdate.h -- HTTP dates (RFC 9110 section 5.6.7) */
#ifndef MINICDN_HTTPDATE_H
#define MINICDN_HTTPDATE_H

#include <time.h>

#define HTTPDATE_LEN 32 /* "Sun, 06 Nov 1994 08:49:37 GMT" + NUL, rounded up */

/* Writes t as IMF-fixdate into out (HTTPDATE_LEN bytes). */
const char *httpdate_format(time_t t, char *out);
/* Parses IMF-fixdate, the obsolete RFC 850 form and asctime(); returns -1
 * (a date the caller treats as invalid, i.e. "in the past") on anything else. */
time_t httpdate_parse(const char *s);

#endif
