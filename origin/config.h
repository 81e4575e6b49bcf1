/* config.h -- minicdn-origin's configuration (schema in config.c).
 *
 *   name = "origin"; region = "eu";
 *   listen = "127.0.0.10:8080";
 *   root = "deploy/demo-site";
 *   default_cache_control = "public, max-age=60";
 *   rules = ( { match = "*.css"; cache_control = "public, max-age=86400"; surrogate_key = "static css"; } );
 *   control_secret = "local-demo-secret";
 *   push = { secret_key = "run/keys/origin.key"; state_dir = "run/origin";
 *            edges = ( { name = "edge-eu"; url = "http://127.0.0.11:8080"; } ); };
 */
#ifndef MINICDN_ORIGIN_CONFIG_H
#define MINICDN_ORIGIN_CONFIG_H

#include "common/addr.h"
#include "common/cfg.h"
#include "origin/rules.h"
#include <stdbool.h>
#include <stddef.h>

struct origin_edge_cfg {
	char *name;
	char *url;
};

struct origin_push_cfg {
	char *secret_key;   /* Ed25519 secret key file (bundle_key_read format); NULL = push disabled */
	char *state_dir;    /* bundle history, survives restarts */
	int timeout_ms;     /* per edge request */
	int retry_ms;       /* interval between retries of edges that lag behind */
	int retry_rejected_ms; /* a version an edge refused is re-sent after this */
	struct origin_edge_cfg *edges;
	size_t n_edges;
};

struct origin_config {
	char *name;
	char *region;
	struct addr listen;
	char *root;
	char *index;
	int threads;
	int capacity;          /* in-flight requests that make load 1.0 */
	char *default_cache_control;
	char *error_format;    /* "plain" or "json" */
	/* Accepted control secrets (none = control API disabled): the inline ones,
	 * then (origin_config_load) the contents of control_secret_file.  The
	 * first is also what the origin sends to the edges. */
	char **control_secret;
	size_t n_control_secret;
	char **control_secret_file;
	size_t n_control_secret_file;
	char *log_level;
	struct rule_cfg *rules;
	size_t n_rules;
	struct origin_push_cfg push;
};

extern const struct cfg_key origin_config_schema[];

/* cfg_load + the checks the schema cannot express (root is a directory,
 * error_format, log level, edge URLs, rules compile).  Returns 0 or -1 with
 * "FILE: reason" in err; on failure c is left zeroed. */
int origin_config_load(const char *path, struct origin_config *c, char *err, size_t errlen);
void origin_config_free(struct origin_config *c);

#endif
