/* log.h -- one line per event on stderr: timestamp, level, module, message.
 *
 * Under systemd (JOURNAL_STREAM set) each line is prefixed with the syslog
 * priority "<N>" so journald keeps the level and the timestamp is left out.
 * The macros cost one integer compare when the level is disabled. */
#ifndef MINICDN_LOG_H
#define MINICDN_LOG_H

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

extern enum log_level log_current_level;

/* Sets the process name printed on each line (borrowed, must outlive logging). */
void log_init(const char *progname, enum log_level level);
void log_set_level(enum log_level level);
/* Parses "error", "warn", "info", "debug"; returns -1 if unknown. */
int log_level_parse(const char *s, enum log_level *out);

void log_write(enum log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define LOG_AT(lvl, mod, ...) \
	do { if ((lvl) <= log_current_level) log_write((lvl), (mod), __VA_ARGS__); } while (0)
#define log_error(mod, ...) LOG_AT(LOG_LVL_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...)  LOG_AT(LOG_LVL_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...)  LOG_AT(LOG_LVL_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) LOG_AT(LOG_LVL_DEBUG, mod, __VA_ARGS__)

#endif
