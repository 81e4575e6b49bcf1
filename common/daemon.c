/* daemon.c -- command line and signal handling shared by the daemons */
#include "common/daemon.h"
#include "common/version.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

static void usage(FILE *out, const char *prog, const char *summary, const char *default_config)
{
	fprintf(out,
	        "%s %s -- %s\n\n"
	        "Usage: %s [-c FILE] [-t]\n"
	        "  -c FILE      configuration file [%s]\n"
	        "  -t           check the configuration and exit (0 if valid)\n"
	        "  -h, --help   this help and the configuration reference\n"
	        "  -V, --version\n\n"
	        "Signals: SIGTERM/SIGINT stop cleanly, SIGHUP reloads.\n",
	        prog, MINICDN_VERSION, summary, prog, default_config);
}

enum daemon_args daemon_parse_args(int argc, char **argv, const char *prog, const char *summary,
                                   const char *default_config, const struct cfg_key *schema,
                                   struct daemon_opts *out)
{
	out->config_path = default_config;
	out->test_only = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout, prog, summary, default_config);
			if (schema) {
				printf("\nConfiguration keys (libconfig syntax, see README):\n");
				cfg_print_reference(schema, stdout);
			}
			return DAEMON_ARGS_EXIT_OK;
		} else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			printf("%s %s\n", prog, MINICDN_VERSION);
			return DAEMON_ARGS_EXIT_OK;
		} else if (!strcmp(a, "-t")) {
			out->test_only = true;
		} else if (!strcmp(a, "-c")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "%s: -c needs a file name\n", prog);
				return DAEMON_ARGS_USAGE;
			}
			out->config_path = argv[++i];
		} else {
			fprintf(stderr, "%s: unknown option '%s' (try --help)\n", prog, a);
			return DAEMON_ARGS_USAGE;
		}
	}
	return DAEMON_ARGS_RUN;
}

static sigset_t daemon_sigs;

void daemon_block_signals(void)
{
	sigemptyset(&daemon_sigs);
	sigaddset(&daemon_sigs, SIGTERM);
	sigaddset(&daemon_sigs, SIGINT);
	sigaddset(&daemon_sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &daemon_sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
}

enum daemon_event daemon_wait(int timeout_ms)
{
	for (;;) {
		int sig;
		if (timeout_ms < 0) {
			sig = sigwaitinfo(&daemon_sigs, NULL);
		} else {
			struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };
			sig = sigtimedwait(&daemon_sigs, NULL, &ts);
		}
		if (sig < 0) {
			if (errno == EAGAIN)
				return DAEMON_TICK;
			continue; /* EINTR */
		}
		return sig == SIGHUP ? DAEMON_RELOAD : DAEMON_STOP;
	}
}

void daemon_notify_ready(void)
{
	sd_notify(0, "READY=1\nSTATUS=running");
}

void daemon_notify_reloading(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu",
	           (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
}

void daemon_notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=finishing in-flight requests");
}

long long daemon_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long daemon_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
