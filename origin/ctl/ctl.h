/* ctl.h -- what minicdnctl's subcommands share: the configuration (nodes,
 * control secret, origin URL), the command signature, and HTTP helpers that
 * fan a request out to many nodes in parallel (libcurl multi).
 *
 * Adding a subcommand: write origin/ctl/cmd_<name>.c containing
 *     #include "origin/ctl/ctl.h"
 *     CTL_COMMAND(name) { ... return 0 on success, 1 on failure, 2 on bad usage; }
 * and add one X(...) line to CTL_COMMANDS in origin/ctl/main.c. */
#ifndef MINICDN_CTL_H
#define MINICDN_CTL_H

#include "common/buf.h"
#include "common/cfg.h"
#include "common/fanout.h"
#include <stdbool.h>
#include <stddef.h>

struct ctl_node {
	char *name;
	char *role;   /* "dns", "edge" or "origin" */
	char *url;    /* base URL, e.g. "http://127.0.0.11:8080" (no trailing slash needed) */
};

struct ctl_config {
	char *control_secret;   /* sent as Authorization: Bearer ... (read from
	                           control_secret_file by ctl_config_check) */
	char *control_secret_file;
	char *origin;           /* the origin's control URL (push, scripts, rollback, unpush) */
	int timeout_ms;         /* per-request timeout for fan-outs */
	char *keys_dir;         /* where `keygen` writes by default */
	struct ctl_node *nodes;
	size_t n_nodes;
};

/* Checks what the schema cannot: roles, URL schemes, unique names; reads
 * control_secret_file into control_secret.  Returns 0, or -1 with the reason
 * in err. */
int ctl_config_check(struct ctl_config *c, char *err, size_t errlen);

/* The ctl configuration schema (drives parsing and `minicdnctl --help`). */
extern const struct cfg_key ctl_config_schema[];

struct ctl {
	struct ctl_config cfg;
	const char *config_path;
	bool json;              /* global --json: machine-readable output where supported */
};

/* Every subcommand: argv[0] is the subcommand name.  Returns the exit code
 * (0 ok, 1 failure such as a node down or a rejected push, 2 usage error). */
typedef int (*ctl_cmd_fn)(struct ctl *ctl, int argc, char **argv);

/* Declares and defines cmd_<name> in one go (the declaration keeps
 * -Wmissing-prototypes quiet without a header line per command). */
#define CTL_COMMAND(name) \
	int cmd_##name(struct ctl *ctl, int argc, char **argv); \
	int cmd_##name(struct ctl *ctl, int argc, char **argv)

/* ---------- HTTP ---------- */

/* Requests are common/fanout.h's: fill method, url (malloc'd, e.g. from
 * ctl_url), body, auth; read status, resp, error, latency_ms after the run. */
#define ctl_req fanout_req
#define ctl_req_clear fanout_req_clear
#define ctl_url fanout_url

/* fanout_run() with the configured timeout and secret passed by the caller. */
int ctl_http_run(struct fanout_req *reqs, size_t n, int timeout_ms, const char *secret);

/* One request to the origin's control API (cfg.origin + path, Bearer secret,
 * a generous timeout since the origin contacts every edge first).  Returns 0
 * when an HTTP answer came back (any status; r filled, caller clears it), -1
 * after printing why not. */
int ctl_origin_call(struct ctl *ctl, const char *method, const char *path, const char *body,
                    struct fanout_req *r);
/* Prints an origin push/rollback/unpush answer (table, or the JSON with
 * --json); returns the exit code: 0 only if every edge activated it. */
int ctl_push_report(struct ctl *ctl, const char *what, struct fanout_req *r);

/* Nodes with the given role (NULL = all), as indices into cfg.nodes; the
 * array is malloc'd, its length in *n. */
size_t *ctl_nodes_with_role(const struct ctl *ctl, const char *role, size_t *n);

#endif
