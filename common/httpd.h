/* httpd.h -- a libmicrohttpd listener with the options every minicdn server
 * uses, and small reply helpers.  The handler is a plain MHD access handler. */
#ifndef MINICDN_HTTPD_H
#define MINICDN_HTTPD_H

#include "common/addr.h"
#include "common/buf.h"
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

struct httpd_opts {
	const struct addr *listen;
	unsigned threads;        /* MHD thread pool size; 0 = one polling thread */
	unsigned extra_flags;    /* e.g. MHD_ALLOW_SUSPEND_RESUME */
	unsigned conn_limit;     /* 0 = MHD default */
	unsigned conn_timeout_s; /* idle connection timeout, 0 = 30 s */
	MHD_AccessHandlerCallback handler;
	void *handler_cls;
	MHD_RequestCompletedCallback completed; /* may be NULL */
	void *completed_cls;
	/* Optional: MHD_OPTION_URI_LOG_CALLBACK, sees the raw request-target
	 * before MHD decodes it; its return value becomes *con_cls. */
	void *(*uri_log)(void *cls, const char *uri, struct MHD_Connection *c);
	void *uri_log_cls;
	size_t conn_memory_limit; /* per-connection buffer (bounds request line + headers); 0 = MHD default */
	unsigned per_ip_limit;    /* connections from one client address; 0 = no limit */
	/* Optional: MHD_OPTION_NOTIFY_CONNECTION, told when a connection opens
	 * and closes (before its socket is closed). */
	MHD_NotifyConnectionCallback notify_conn;
	void *notify_conn_cls;
};

/* Starts listening.  Returns the daemon, or NULL with the reason in err. */
struct MHD_Daemon *httpd_start(const struct httpd_opts *o, char *err, size_t errlen);
/* Stops accepting, lets in-flight requests finish, frees the daemon. */
void httpd_stop(struct MHD_Daemon *d);

/* Queues a response with a body copied from body/len.  Returns the MHD result. */
enum MHD_Result httpd_reply(struct MHD_Connection *c, unsigned status, const char *content_type,
                            const void *body, size_t len);
/* Queues b's contents as application/json (b is left untouched). */
enum MHD_Result httpd_reply_json(struct MHD_Connection *c, unsigned status, const struct buf *b);
/* Queues {"error": msg} as JSON. */
enum MHD_Result httpd_reply_error(struct MHD_Connection *c, unsigned status, const char *msg);

/* ---------- the control APIs' Bearer token (all three daemons) ---------- */

/* True if authorization (an Authorization header value; NULL if absent) is
 * "Bearer <secret>", the scheme in any case.  Both tokens are hashed
 * (BLAKE2b) and the digests compared with sodium_memcmp, so the time taken
 * says nothing about the secret's content or length.  A NULL or empty
 * secret never matches. */
bool httpd_bearer_ok(const char *authorization, const char *secret);
/* httpd_bearer_ok against each of secrets[0..n) (a rotation lists the old and
 * the new one): true if any matches.  All are compared, so the time does not
 * tell which one did. */
bool httpd_bearer_any(const char *authorization, char *const *secrets, size_t n);
/* Queues 401 with WWW-Authenticate: Bearer and {"error": msg} as JSON. */
enum MHD_Result httpd_reply_unauthorized(struct MHD_Connection *c, const char *msg);

#endif
