/* daemon.h -- what every minicdn daemon shares: command line, signals.
 *
 * Signal model: daemon_block_signals() is called before any thread starts, so
 * every thread inherits a mask with SIGTERM/SIGINT/SIGHUP blocked; the main
 * thread then sits in daemon_wait(), which turns signals into events.  No
 * async-signal-safety puzzles, and worker threads are never interrupted. */
#ifndef MINICDN_DAEMON_H
#define MINICDN_DAEMON_H

#include "common/cfg.h"
#include <stdbool.h>

struct daemon_opts {
	const char *config_path; /* borrowed from argv or the default */
	bool test_only;          /* -t: check the config and exit */
};

enum daemon_args { DAEMON_ARGS_RUN = 0, DAEMON_ARGS_EXIT_OK = 1, DAEMON_ARGS_USAGE = 2 };

/* Parses -c FILE, -t, -h/--help, -V/--version.  --help prints usage and the
 * configuration reference from schema.  Returns DAEMON_ARGS_RUN to go on,
 * DAEMON_ARGS_EXIT_OK after --help/--version, DAEMON_ARGS_USAGE on a bad
 * option (message already printed); main() decides the exit code. */
enum daemon_args daemon_parse_args(int argc, char **argv, const char *prog, const char *summary,
                                   const char *default_config, const struct cfg_key *schema,
                                   struct daemon_opts *out);

/* Blocks SIGTERM, SIGINT, SIGHUP in the calling thread (and threads it
 * creates afterwards) and ignores SIGPIPE. */
void daemon_block_signals(void);

enum daemon_event { DAEMON_TICK, DAEMON_STOP, DAEMON_RELOAD };

/* Waits up to timeout_ms for a signal (forever if < 0).  SIGTERM/SIGINT give
 * DAEMON_STOP, SIGHUP DAEMON_RELOAD, a timeout DAEMON_TICK. */
enum daemon_event daemon_wait(int timeout_ms);

/* systemd's readiness protocol (Type=notify), through libsystemd's sd_notify:
 * no-ops when $NOTIFY_SOCKET is unset (not started by systemd, or another
 * Type=).  ready: listeners bound and stores open, or a reload finished;
 * reloading: a SIGHUP reload starts (with MONOTONIC_USEC, which systemd 253+
 * requires to match the reload to the request); stopping: draining began. */
void daemon_notify_ready(void);
void daemon_notify_reloading(void);
void daemon_notify_stopping(void);

/* Monotonic and wall clocks in milliseconds. */
long long daemon_now_ms(void);
long long daemon_wall_ms(void);

#endif
