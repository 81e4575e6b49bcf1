/* server.h -- minicdn-origin's HTTP side: static files with caching headers,
 * /healthz, /metrics, and the /.minicdn/ control API.
 *
 * The served "site" (resolved root, index name, rules, error format) is an
 * immutable snapshot behind a read-write lock; server_reload builds a new one
 * and swaps it in, so a request sees either the old or the new rules, never a
 * mix. */
#ifndef MINICDN_ORIGIN_SERVER_H
#define MINICDN_ORIGIN_SERVER_H

#include "origin/config.h"
#include <stddef.h>

struct server;
struct push;

/* Builds the server from cfg (borrowed: only copied values are kept).  push
 * may be NULL (control API for scripts disabled); borrowed, must outlive the
 * server.  Returns NULL with the reason in err. */
struct server *server_new(const struct origin_config *cfg, struct push *push, char *err, size_t errlen);
/* Starts listening on cfg->listen. */
int server_start(struct server *s, const struct origin_config *cfg, char *err, size_t errlen);
/* Swaps in root, index, rules, error format, secret, name/region from cfg.
 * Returns 0, or -1 with the reason (the old site stays). */
int server_reload(struct server *s, const struct origin_config *cfg, char *err, size_t errlen);
/* Stops accepting, lets in-flight requests finish, frees everything. */
void server_free(struct server *s);

#endif
