/* query.h -- the DNS protocol core: one query's wire bytes and the client's
 * address in, the answer's wire bytes out.  No I/O, no locks, no allocation
 * on the normal path (only the optional query log allocates), so the fuzzer,
 * unit tests, the UDP workers and the TCP thread all call the same code. */
#ifndef MINICDN_QUERY_H
#define MINICDN_QUERY_H

#include "common/buf.h"
#include "dns/counters.h"
#include "dns/snap.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct query_env {
	const struct view *view;  /* borrowed; valid for the call (caller is in a QSBR section) */
	struct counters *stats;   /* the calling thread's counters, may be NULL */
	uint64_t rng;             /* weighted-choice state, per thread */
};

#define QUERY_MIN_OUT 512

/* Processes one message of len bytes from client (AF_INET/AF_INET6).  Writes
 * the reply into out (cap >= QUERY_MIN_OUT; a UDP reply is further limited to
 * the size the client advertised, TCP uses all of cap up to 65535).  Returns
 * the reply length, or 0 when the message must be dropped (a response, or too
 * short to answer). */
size_t query_process(struct query_env *env, const uint8_t *pkt, size_t len, const struct sockaddr *client,
                     bool tcp, uint8_t *out, size_t cap);

/* Answers "which edges would NAME get for a client at ADDRESS" for a query of
 * type qtype (DNS_T_A or DNS_T_AAAA) as JSON into b (no DNS sent): zone,
 * match, location, candidates, choice and reason.  Returns 0, or -1 with
 * {"error":...} in b for a bad name, address or type. */
int query_explain(const struct view *v, const char *name, const char *address, uint16_t qtype, uint64_t *rng,
                  struct buf *b);

#endif
