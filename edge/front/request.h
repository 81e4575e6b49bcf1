/* request.h -- one client request as the front sees it, and its accessors.
 *
 * The front's modules (http.c dispatch, respond.c, control.c, script_http.c)
 * share struct edge_req.  Nothing outside front/ includes this header: the
 * origin side gets a struct proxy_call (upstream/proxy.h), embedded here as
 * pc, with plain strings and the connection callbacks below, so calls go one
 * way, front -> upstream -> cache. */
#ifndef MINICDN_REQUEST_H
#define MINICDN_REQUEST_H

#include "common/buf.h"
#include "edge/edge.h"
#include "edge/front/respond_plan.h"
#include "edge/upstream/proxy.h"
#include <microhttpd.h>
#include <stdbool.h>

enum req_state { RS_NEW = 0, RS_BODY, RS_READY, RS_DONE,
	         RS_WAIT,   /* suspended on the origin (proxy_call) */
	         RS_SCRIPT, /* a script waits for a subrequest (script_http.c) */
	         RS_STREAM, /* the body goes to the origin as it arrives (proxy_upload_*) */
	         RS_PURGE   /* suspended until a purge commits (control.c) */ };

/* One listening address: the handler's cls.  tls: HTTPS; control: the
 * control API's own listener (nothing else is served there). */
struct front_listener {
	struct edge *edge;               /* borrowed */
	struct MHD_Daemon *d;
	struct addr addr;                /* the Host of a request without one */
	bool tls, control;
};

/* One client request.  Allocated when MHD has the request line, freed when
 * MHD reports the request completed.  Strings are owned by the struct unless
 * marked borrowed. */
struct edge_req {
	struct edge *edge;               /* borrowed */
	const struct front_listener *lst;/* borrowed: where it arrived */
	const struct edge_site *site;    /* the site serving it (dispatch); borrowed from a
	                                    config snapshot, valid until exit */
	struct MHD_Connection *conn;     /* borrowed */
	const char *method;              /* borrowed from MHD, valid for the request */
	char *target;                    /* raw request-target as received */
	struct buf path;                 /* normalised path + "?" + raw query (to the origin) */
	struct buf host;                 /* normalised host[:port] */
	struct buf key;                  /* primary cache key: use edge_req_key() */
	const char *query;               /* into path.data after '?', "" if none */
	const struct sockaddr *client;   /* borrowed from MHD */
	bool is_head, is_get, is_unsafe, has_auth;
	enum req_state state;
	struct buf body;                 /* request body (unsafe methods), bounded by limits.max_body */
	size_t body_held;                /* counted in edge.body_bytes: the held body, or
	                                    a streamed body's window */
	uint64_t body_streamed;          /* bytes of a streamed body sent on so far */
	bool upload_over;                /* the origin ended before the streamed body did:
	                                    the rest is dropped, the connection closed after */
	enum reqcheck_reason uri_why;    /* the raw target's strict check (httpd_strict_uri) */
	struct plan_req cond;            /* conditionals and Range, found while validating
	                                    (borrowed from MHD) */
	struct proxy_call pc;            /* the origin side: edge_req_call() */
	struct script_task *script;      /* waiting script (RS_SCRIPT), owned */
	struct control_purge *purge;     /* the purge r waits for (RS_PURGE): control_release */
	uint64_t purge_seq;              /* cache_purge_seq() as the script began: its stores
	                                    lose to any purge made after that */
	/* for the access log (only kept when it is on) */
	const char *version;             /* "HTTP/1.1", borrowed from MHD */
	const char *log_result;          /* hit, uri-miss, ..., script; NULL: "-" */
	int64_t log_bytes;               /* body bytes queued; -1: unknown */
	long long start_us;              /* monotonic, when the request line arrived */
};

/* The request's primary cache key, joined from path and host on first use. */
const char *edge_req_key(struct edge_req *r);

/* Request header value (case-insensitive), borrowed from MHD; NULL if absent. */
const char *edge_req_header(const struct edge_req *r, const char *name);

/* Calls cb for each request header in order (values never NULL). */
void edge_req_each_header(const struct edge_req *r,
                          void (*cb)(void *arg, const char *name, const char *value), void *arg);

/* r->pc filled from r for a call into upstream (proxy_start, proxy_refresh);
 * what upstream keeps in it survives later calls. */
struct proxy_call *edge_req_call(struct edge_req *r);

/* Header access and suspend/resume for upstream; cls is the MHD connection. */
extern const struct proxy_client_ops edge_conn_ops;

#endif
