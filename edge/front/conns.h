/* conns.h -- the edge's client connections and their deadlines: the whole
 * request head must arrive within head_timeout of the connection opening (or
 * of the previous response), a body within body_timeout of its head, however
 * slowly the bytes trickle; past max_connections less a headroom, the
 * connections idle longest (waiting for a head) are closed first.
 *
 * libmicrohttpd's own timeout is reset by every byte and it closes nothing
 * to make room, so a thread of its own sweeps the list a few times a second
 * and shuts the sockets down (MHD then sees the end of the stream and closes
 * the connection as usual). */
#ifndef MINICDN_EDGE_CONNS_H
#define MINICDN_EDGE_CONNS_H

#include <microhttpd.h>
#include <stdint.h>

struct conns;

struct conns_limits {
	int head_timeout_ms;   /* head deadline (connection open or previous response to full head) */
	int body_timeout_ms;   /* body deadline, from the end of the head */
	unsigned max;          /* connections in all; the oldest idle are closed near it */
};

/* Starts the sweeping thread.  NULL if it cannot start. */
struct conns *conns_new(const struct conns_limits *lim);
/* Stops the thread; call after the HTTP daemon stopped. */
void conns_free(struct conns *cs);

/* MHD_OPTION_NOTIFY_CONNECTION callback (cls: the conns). */
void conns_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                  enum MHD_ConnectionNotificationCode code);

enum conn_phase {
	CONN_HEAD, /* waiting for a request head: head deadline runs */
	CONN_BODY, /* reading a request body: body deadline runs */
	CONN_BUSY, /* being answered: no deadline here */
};
/* Moves c's connection to phase p, its deadline counted from now. */
void conns_phase(struct MHD_Connection *c, enum conn_phase p);

struct conns_stats {
	uint64_t open, head_timeouts, body_timeouts, closed_for_room;
};
void conns_stats(struct conns *cs, struct conns_stats *out);

#endif
