/* log.h -- one line per event on stderr: timestamp, level, module, message.
 *
 * Under systemd (JOURNAL_STREAM set) each line is prefixed with the syslog
 * priority "<N>" so journald keeps the level and the timestamp is left out.
 * The macros cost one integer compare when the level is disabled. */
#ifndef MINICDN_LOG_H
#define MINICDN_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

extern enum log_level log_current_level;

/* Sets the process name printed on each line (borrowed, must outlive logging). */
void log_init(const char *progname, enum log_level level);
void log_set_level(enum log_level level);
/* Parses "error", "warn", "info", "debug"; returns -1 if unknown. */
int log_level_parse(const char *s, enum log_level *out);

/* Formats one line and writes it with one write().  Every byte of the
 * message below 0x20 or above 0x7e comes out as \xHH, so text from a client,
 * an origin or a script (CR, LF, ANSI escapes) cannot forge or break a line
 * whatever the call site passed.  Lines longer than 2 KiB are cut. */
void log_write(enum log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copies src[0..len) (NULs included) into dst as printable ASCII: bytes below
 * 0x20, above 0x7e and the backslash become \xHH, so the copy reads back
 * unambiguously.  Cut at a whole escape to fit dstlen (> 0); always
 * NUL-terminated.  Returns dst.  For foreign text whose length is known
 * (Lua strings may hold NULs); log_write escapes the rest. */
char *log_escape(char *dst, size_t dstlen, const void *src, size_t len);

/* A rate limit for one kind of line that a client can repeat at will
 * (refused control requests): at most per_sec lines a second, so guessing
 * secrets cannot flood the log.  Zero-initialised; owned by whoever owns the
 * server that logs, shared by its threads. */
struct log_limit {
	_Atomic long long sec;     /* the current one-second window */
	atomic_int count;          /* lines asked for in that window */
	atomic_uint dropped;       /* left out since the last line allowed */
};

/* True when one more line may be written now (now_ms: a monotonic clock).
 * *dropped gets the number of lines left out since the last one allowed, to
 * be said in the line ("N more not logged"). */
bool log_limit_allow(struct log_limit *l, int per_sec, long long now_ms, unsigned *dropped);

#define LOG_AT(lvl, mod, ...) \
	do { if ((lvl) <= log_current_level) log_write((lvl), (mod), __VA_ARGS__); } while (0)
#define log_error(mod, ...) LOG_AT(LOG_LVL_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...)  LOG_AT(LOG_LVL_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...)  LOG_AT(LOG_LVL_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) LOG_AT(LOG_LVL_DEBUG, mod, __VA_ARGS__)

#endif
