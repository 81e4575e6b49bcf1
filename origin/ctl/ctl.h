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
#include <stdbool.h>
#include <stddef.h>

struct ctl_node {
	char *name;
	char *role;   /* "dns", "edge" or "origin" */
	char *url;    /* base URL, e.g. "http://127.0.0.11:8080" (no trailing slash needed) */
};

struct ctl_config {
	char *control_secret;   /* sent as Authorization: Bearer ... */
	char *origin;           /* the origin's control URL (push, scripts, rollback, unpush) */
	int timeout_ms;         /* per-request timeout for fan-outs */
	char *keys_dir;         /* where `keygen` writes by default */
	struct ctl_node *nodes;
	size_t n_nodes;
};

/* Checks what the schema cannot: roles, URL schemes, unique names.
 * Returns 0, or -1 with the reason in err. */
int ctl_config_check(const struct ctl_config *c, char *err, size_t errlen);

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

/* One request of a fan-out.  Fill method/url/body/auth; the rest is output. */
struct ctl_req {
	const char *method;       /* "GET", "POST", "DELETE"; borrowed */
	char *url;                /* owned by the caller (freed by ctl_req_clear) */
	const char *body;         /* borrowed, may be NULL */
	size_t body_len;
	const char *content_type; /* borrowed, default application/json when body set */
	bool auth;                /* send Authorization: Bearer <control_secret> */
	/* results */
	long status;              /* HTTP status, 0 if no response */
	struct buf resp;          /* response body (owned, freed by ctl_req_clear) */
	char error[256];          /* transport error ("connection refused", "timeout") */
	double latency_ms;        /* total time */
};

/* Runs every request in reqs concurrently, each bounded by timeout_ms, and
 * returns when all have finished.  secret may be NULL (then auth is ignored).
 * Returns 0 (per-request outcome is in each ctl_req), -1 if libcurl failed to
 * initialise. */
int ctl_http_run(struct ctl_req *reqs, size_t n, int timeout_ms, const char *secret);
/* Frees the url and the response body of one request. */
void ctl_req_clear(struct ctl_req *r);

/* Joins a base URL and a path ("/healthz") into a malloc'd string, avoiding "//". */
char *ctl_url(const char *base, const char *path);

/* Nodes with the given role (NULL = all), as indices into cfg.nodes; the
 * array is malloc'd, its length in *n. */
size_t *ctl_nodes_with_role(const struct ctl *ctl, const char *role, size_t *n);

#endif
