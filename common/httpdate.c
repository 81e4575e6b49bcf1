/* httpdate.c -- HTTP dates */
#include "common/httpdate.h"

#include <stdio.h>
#include <string.h>

static const char *const wday[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const month[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

const char *httpdate_format(time_t t, char *out)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, HTTPDATE_LEN, "%s, %02d %s %04d %02d:%02d:%02d GMT", wday[tm.tm_wday], tm.tm_mday,
	         month[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return out;
}

static int month_index(const char *m)
{
	for (int i = 0; i < 12; i++)
		if (strncmp(m, month[i], 3) == 0)
			return i;
	return -1;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; m 1..12), as
 * timegm() counts them, without its normalisation machinery. */
static long days_from_civil(long y, int m, int d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int two_digits(const char *p)
{
	if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
		return -1;
	return (p[0] - '0') * 10 + (p[1] - '0');
}

/* IMF-fixdate, the only form a sender may generate (RFC 9110 5.6.7), read
 * by position: origins send one per response and sscanf cost more than
 * the rest of the freshness arithmetic.  -2: not in this form. */
static time_t parse_fixdate(const char *s)
{
	/* "Sun, 06 Nov 1994 08:49:37 GMT" */
	if (strlen(s) < 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
	    s[16] != ' ' || s[19] != ':' || s[22] != ':' || memcmp(s + 25, " GMT", 4))
		return -2;
	int day = two_digits(s + 5), c = two_digits(s + 12), yy = two_digits(s + 14);
	int h = two_digits(s + 17), mi = two_digits(s + 20), sec = two_digits(s + 23);
	int m = month_index(s + 8);
	if (day < 0 || c < 0 || yy < 0 || h < 0 || mi < 0 || sec < 0)
		return -2;
	int year = c * 100 + yy;
	if (m < 0 || day < 1 || day > 31 || h > 23 || mi > 59 || sec > 60 || year < 1970)
		return -1;
	return (time_t)(days_from_civil(year, m + 1, day) * 86400L + h * 3600L + mi * 60L + sec);
}

time_t httpdate_parse(const char *s)
{
	time_t t = parse_fixdate(s);
	if (t != -2)
		return t;
	struct tm tm;
	char mon[4], wd[16];
	int day, year, h, mi, sec, n = 0;
	memset(&tm, 0, sizeof tm);
	if (sscanf(s, "%3s, %2d %3s %4d %2d:%2d:%2d GMT%n", wd, &day, mon, &year, &h, &mi, &sec, &n) == 7 && n) {
		/* IMF-fixdate */
	} else if (sscanf(s, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d GMT%n", wd, &day, mon, &year, &h, &mi, &sec, &n) == 7 && n) {
		/* RFC 850: two-digit year, RFC 9110 says interpret within 50 years */
		year += year < 70 ? 2000 : 1900;
	} else if (sscanf(s, "%3s %3s %2d %2d:%2d:%2d %4d%n", wd, mon, &day, &h, &mi, &sec, &year, &n) == 7 && n) {
		/* asctime */
	} else {
		return -1;
	}
	int m = month_index(mon);
	if (m < 0 || day < 1 || day > 31 || h > 23 || mi > 59 || sec > 60 || year < 1970)
		return -1;
	tm.tm_year = year - 1900;
	tm.tm_mon = m;
	tm.tm_mday = day;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return timegm(&tm);
}
