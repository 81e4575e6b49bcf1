/* stats.h -- the DNS server's HTTP listener: GET /healthz, /stats (JSON),
 * /metrics (Prometheus text), /explain?name=N&addr=A[&type=A|AAAA], and
 * POST /reload (needs "Authorization: Bearer <control_secret>" when the
 * configuration sets control_secret). */
#ifndef MINICDN_STATS_H
#define MINICDN_STATS_H

#include "common/addr.h"
#include "common/buf.h"
#include "dns/server.h"
#include <stddef.h>

/* Starts listening on a (borrowed).  config_path is borrowed for reloads;
 * srv (may be NULL) for connection counts.  Returns 0 or -1 with err. */
int stats_start(const struct addr *a, const char *config_path, struct server *srv, char *err, size_t errlen);
void stats_stop(void);
/* Writes the /stats JSON document into b. */
void stats_json(struct buf *b);
/* Writes the /metrics text into b. */
void stats_prometheus(struct buf *b);

#endif
