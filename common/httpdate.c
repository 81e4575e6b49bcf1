/* httpdate.c -- HTTP dates: IMF-fixdate written, the three RFC 9110 forms read */
#include "common/httpdate.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const wday[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const wday_long[] = { "Sunday",   "Monday", "Tuesday", "Wednesday",
	                                 "Thursday", "Friday", "Saturday" };
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

static int month_days(int year, int m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	return days[m] + (m == 1 && leap);
}

static int digits(const char *p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/* Index of the 3-letter name at p in names, or -1.  RFC 9110 makes the
 * names case-sensitive, but RFC 9111 4.2 asks a cache to match dates
 * case-insensitively: "thu", "JAN" and "gmt" are read. */
static int name3(const char *p, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (!strncasecmp(p, names[i], 3))
			return i;
	return -1;
}

/* "08:49:37" at p: hour, minute, second (0..60 for a leap second). */
static int time_of_day(const char *p, int *h, int *mi, int *sec)
{
	if (p[2] != ':' || p[5] != ':')
		return -1;
	*h = digits(p, 2);
	*mi = digits(p + 3, 2);
	*sec = digits(p + 6, 2);
	return *h < 0 || *mi < 0 || *sec < 0 || *h > 23 || *mi > 59 || *sec > 60 ? -1 : 0;
}

static time_t to_time(int year, int m, int day, int h, int mi, int sec)
{
	if (m < 0 || year < 1970 || day < 1 || day > month_days(year, m))
		return -1;
	return (time_t)(days_from_civil(year, m + 1, day) * 86400L + h * 3600L + mi * 60L + sec);
}

/* IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT": the only form a sender may
 * generate, read by position (origins send one per response, and sscanf
 * cost more than the rest of the freshness arithmetic). */
static time_t parse_fixdate(const char *s, size_t n)
{
	int h, mi, sec;
	if (n != 29 || name3(s, wday, 7) < 0 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' ||
	    s[11] != ' ' || s[16] != ' ' || strncasecmp(s + 25, " GMT", 4) ||
	    time_of_day(s + 17, &h, &mi, &sec) < 0)
		return -1;
	int day = digits(s + 5, 2), year = digits(s + 12, 4);
	if (day < 0 || year < 0)
		return -1;
	return to_time(year, name3(s + 8, month, 12), day, h, mi, sec);
}

/* rfc850-date, "Sunday, 06-Nov-94 08:49:37 GMT".  RFC 9110 5.6.7: a year
 * that appears more than 50 years in the future is the most recent past
 * year with the same last two digits. */
static time_t parse_rfc850(const char *s, size_t n, time_t now)
{
	const char *c = memchr(s, ',', n);
	if (!c)
		return -1;
	size_t wl = (size_t)(c - s);
	int w = -1;
	for (int i = 0; i < 7; i++)
		if (strlen(wday_long[i]) == wl && !strncasecmp(s, wday_long[i], wl))
			w = i;
	const char *p = c + 1; /* " 06-Nov-94 08:49:37 GMT" */
	int h, mi, sec;
	if (w < 0 || (size_t)(s + n - p) != 23 || p[0] != ' ' || p[3] != '-' || p[7] != '-' ||
	    p[10] != ' ' || strncasecmp(p + 19, " GMT", 4) || time_of_day(p + 11, &h, &mi, &sec) < 0)
		return -1;
	int day = digits(p + 1, 2), yy = digits(p + 8, 2);
	if (day < 0 || yy < 0)
		return -1;
	struct tm tm;
	gmtime_r(&now, &tm);
	int this_year = tm.tm_year + 1900;
	int year = this_year - this_year % 100 + yy;
	if (year > this_year + 50)
		year -= 100;
	return to_time(year, name3(p + 4, month, 12), day, h, mi, sec);
}

/* asctime-date, "Sun Nov  6 08:49:37 1994": the day is two digits or a
 * space and one digit. */
static time_t parse_asctime(const char *s, size_t n)
{
	int h, mi, sec;
	if (n != 24 || name3(s, wday, 7) < 0 || s[3] != ' ' || s[7] != ' ' || s[10] != ' ' ||
	    s[19] != ' ' || time_of_day(s + 11, &h, &mi, &sec) < 0)
		return -1;
	int day = s[8] == ' ' ? digits(s + 9, 1) : digits(s + 8, 2);
	int year = digits(s + 20, 4);
	if (day < 0 || year < 0)
		return -1;
	return to_time(year, name3(s + 4, month, 12), day, h, mi, sec);
}

time_t httpdate_parse_at(const char *s, time_t now)
{
	if (!s)
		return -1;
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n == 29 && s[3] == ',')
		return parse_fixdate(s, n);
	if (n == 24 && s[3] == ' ')
		return parse_asctime(s, n);
	return parse_rfc850(s, n, now);
}

time_t httpdate_parse(const char *s)
{
	/* time() is a vDSO read; only an RFC 850 date uses it. */
	return httpdate_parse_at(s, time(NULL));
}
