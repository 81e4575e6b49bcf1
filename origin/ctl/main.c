/* main.c -- minicdnctl: the operator's command line for a minicdn fleet.
 *
 *   minicdnctl [-c FILE] [--json] COMMAND [ARGS...]
 *
 * The configuration lists the nodes (name, role, url), the control secret and
 * the origin's control URL.  Each subcommand lives in origin/ctl/cmd_<name>.c
 * and is registered by one line in CTL_COMMANDS below. */
#include "common/log.h"
#include "common/version.h"
#include "origin/ctl/ctl.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CTL_DEFAULT_CONFIG "/etc/minicdn/ctl.conf"

/* X(name, arguments, one-line help) -- one line per subcommand. */
#define CTL_COMMANDS(X) \
	X(status,   "[--json]",                     "health of every configured node (exit 1 if any is down)") \
	X(keygen,   "[--force] [PREFIX]",           "write PREFIX.key (secret, 0600) and PREFIX.pub [keys_dir/origin]") \
	X(push,     "[--json] [--version N] DIR|FILE", "have the origin sign a script bundle and push it to every edge") \
	X(scripts,  "[--json]",                     "bundles, the origin's current version and the version on each edge") \
	X(rollback, "[--json] NAME",                "re-activate the previous version of a bundle everywhere") \
	X(unpush,   "[--json] NAME",                "remove a bundle from every edge") \
	X(explain,  "[--json] NAME ADDRESS [A|AAAA]", "which edge(s) the DNS server answers NAME (A or AAAA) with for a client at ADDRESS, and why") \
	X(reload,   "",                             "make every DNS node reload config, zones and map (old data kept on error)") \
	X(purge,    "[--json] [--site S] URL|--prefix P|--tag T", "purge cached objects on every edge (exit 1 unless all edges purged)") \
	X(drain,    "[--json] EDGE...",             "take edges out of DNS answers (they keep serving; survives restarts)") \
	X(undrain,  "[--json] EDGE...",             "put drained edges back into DNS answers") \

#define X_DECL(n, a, h) int cmd_##n(struct ctl *ctl, int argc, char **argv);
CTL_COMMANDS(X_DECL)

struct ctl_cmd {
	const char *name;
	ctl_cmd_fn run;
	const char *args;
	const char *help;
};

#define X_ENTRY(n, a, h) { #n, cmd_##n, a, h },
static const struct ctl_cmd commands[] = { CTL_COMMANDS(X_ENTRY) };
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
	fprintf(out,
	        "minicdnctl %s -- control a minicdn fleet\n\n"
	        "Usage: minicdnctl [-c FILE] [-t] [--json] COMMAND [ARGS...]\n"
	        "  -c FILE      configuration [$MINICDNCTL_CONFIG or %s]\n"
	        "  -t           check the configuration and exit (no COMMAND needed)\n"
	        "  --json       machine-readable output\n"
	        "  -h, --help   this help and the configuration reference\n"
	        "  -V, --version\n\nCommands:\n",
	        MINICDN_VERSION, CTL_DEFAULT_CONFIG);
	for (size_t i = 0; i < N_COMMANDS; i++) {
		char head[96];
		snprintf(head, sizeof head, "%s %s", commands[i].name, commands[i].args);
		fprintf(out, "  %-44s %s\n", head, commands[i].help);
	}
}

int main(int argc, char **argv)
{
	struct ctl ctl;
	memset(&ctl, 0, sizeof ctl);
	log_init("minicdnctl", LOG_LVL_WARN);
	ctl.config_path = getenv("MINICDNCTL_CONFIG");
	bool explicit_config = ctl.config_path && *ctl.config_path;
	if (!explicit_config)
		ctl.config_path = CTL_DEFAULT_CONFIG;

	bool test_only = false; /* -t: check the configuration, run nothing */
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			printf("\nConfiguration keys (libconfig syntax, see README):\n");
			cfg_print_reference(ctl_config_schema, stdout);
			return 0;
		} else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			printf("minicdnctl %s\n", MINICDN_VERSION);
			return 0;
		} else if (!strcmp(a, "--json")) {
			ctl.json = true;
		} else if (!strcmp(a, "-c")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "minicdnctl: -c needs a file name\n");
				return 2;
			}
			ctl.config_path = argv[++i];
			explicit_config = true;
		} else if (!strcmp(a, "-t")) {
			test_only = true;
		} else if (!strcmp(a, "-v")) {
			log_set_level(LOG_LVL_DEBUG);
		} else {
			fprintf(stderr, "minicdnctl: unknown option '%s' (try --help)\n", a);
			return 2;
		}
	}
	if (i >= argc && !test_only) {
		usage(stderr);
		return 2;
	}
	const struct ctl_cmd *cmd = NULL;
	for (size_t k = 0; i < argc && k < N_COMMANDS; k++)
		if (!strcmp(commands[k].name, argv[i]))
			cmd = &commands[k];
	if (!cmd && !test_only) {
		fprintf(stderr, "minicdnctl: unknown command '%s' (try --help)\n", argv[i]);
		return 2;
	}

	/* Without -c or $MINICDNCTL_CONFIG a missing default file means an empty
	 * configuration: `keygen` needs none, the others then say what is missing. */
	char err[512];
	int rc_load;
	if (!explicit_config && access(ctl.config_path, F_OK) != 0)
		rc_load = cfg_load_string("", ctl.config_path, ctl_config_schema, &ctl.cfg, err, sizeof err);
	else
		rc_load = cfg_load(ctl.config_path, ctl_config_schema, &ctl.cfg, err, sizeof err);
	if (rc_load < 0) {
		fprintf(stderr, "minicdnctl: %s\n", err);
		return 2;
	}
	if (ctl_config_check(&ctl.cfg, err, sizeof err) < 0) {
		fprintf(stderr, "minicdnctl: %s: %s\n", ctl.config_path, err);
		cfg_free(ctl_config_schema, &ctl.cfg);
		return 2;
	}
	if (test_only) {
		printf("%s: configuration OK\n", ctl.config_path);
		cfg_free(ctl_config_schema, &ctl.cfg);
		return 0;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "minicdnctl: libcurl initialisation failed\n");
		cfg_free(ctl_config_schema, &ctl.cfg);
		return 1;
	}
	int rc = cmd->run(&ctl, argc - i, argv + i);
	curl_global_cleanup();
	cfg_free(ctl_config_schema, &ctl.cfg);
	return rc;
}
