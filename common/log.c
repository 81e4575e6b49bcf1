/* log.c -- leveled logging to stderr */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level log_current_level = LOG_LVL_INFO;
static const char *log_prog = "minicdn";
static int log_journal = -1;

static const char *const level_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };
static const int level_syslog[] = { 3, 4, 6, 7 };

void log_init(const char *progname, enum log_level level)
{
	log_prog = progname;
	log_current_level = level;
	log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_level(enum log_level level)
{
	log_current_level = level;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i <= LOG_LVL_DEBUG; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOG_LVL_WARN;
		return 0;
	}
	return -1;
}

/* Copies src into dst[0..room), escaping bytes outside 0x20..0x7e (and the
 * backslash when esc_bs) as \xHH; stops before an escape that does not fit.
 * Returns the bytes written (no terminator). */
static size_t esc_copy(char *dst, size_t room, const unsigned char *src, size_t len, int esc_bs)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = src[i];
		if (c >= 0x20 && c < 0x7f && !(esc_bs && c == '\\')) {
			if (n + 1 > room)
				break;
			dst[n++] = (char)c;
			continue;
		}
		if (n + 4 > room)
			break;
		dst[n++] = '\\';
		dst[n++] = 'x';
		dst[n++] = hex[c >> 4];
		dst[n++] = hex[c & 15];
	}
	return n;
}

char *log_escape(char *dst, size_t dstlen, const void *src, size_t len)
{
	size_t n = esc_copy(dst, dstlen - 1, src, len, 1);
	dst[n] = '\0';
	return dst;
}

void log_write(enum log_level level, const char *module, const char *fmt, ...)
{
	char line[2048], msg[2048];
	size_t n = 0;
	if (log_journal == -1)
		log_journal = getenv("JOURNAL_STREAM") != NULL;
	if (log_journal) {
		n = (size_t)snprintf(line, sizeof line, "<%d>%s %s: ", level_syslog[level],
		                     level_names[level], module);
	} else {
		struct timeval tv;
		struct tm tm;
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %s %s %s: ",
		                      (long)(tv.tv_usec / 1000), level_names[level], log_prog, module);
	}
	if (n >= sizeof line - 1)
		n = sizeof line - 2;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (m > 0) {
		size_t ml = (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
		/* One byte kept for the '\n': a cut line is still one line. */
		n += esc_copy(line + n, sizeof line - 1 - n, (const unsigned char *)msg, ml, 0);
	}
	line[n++] = '\n';
	/* One write() per line so lines from several threads never interleave. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

bool log_limit_allow(struct log_limit *l, int per_sec, long long now_ms, unsigned *dropped)
{
	long long sec = now_ms / 1000;
	long long w = atomic_load(&l->sec);
	if (w != sec && atomic_compare_exchange_strong(&l->sec, &w, sec))
		atomic_store(&l->count, 0);
	if (atomic_fetch_add(&l->count, 1) >= per_sec) {
		atomic_fetch_add(&l->dropped, 1);
		return false;
	}
	*dropped = atomic_exchange(&l->dropped, 0);
	return true;
}
