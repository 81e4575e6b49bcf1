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

time_t httpdate_parse(const char *s)
{
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
