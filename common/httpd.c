/* httpd.c -- libmicrohttpd listener set-up and reply helpers */
#include "common/httpd.h"
#include "common/log.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void httpd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_debug("httpd", "%s", msg);
}

void httpd_tls_notify(struct tls_store *s, struct MHD_Connection *c,
                      enum MHD_ConnectionNotificationCode code)
{
	if (code != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (i && i->tls_session)
		tls_session_start(s, i->tls_session);
}

static void httpd_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                         enum MHD_ConnectionNotificationCode code)
{
	httpd_tls_notify(cls, c, code);
}

struct MHD_Daemon *httpd_start(const struct httpd_opts *o, char *err, size_t errlen)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | o->extra_flags;
	/* TLS listeners poll(2) rather than epoll.  libmicrohttpd 0.9.75's epoll
	 * loop keeps a connection whose handshake waits for the client's next
	 * flight on its ready list (a handshake's EAGAIN does not clear the
	 * read-ready mark), so the worker calls recv() in a loop until the client
	 * answers: dozens of failed recv() per handshake here, twice nginx's CPU
	 * per full or resumed handshake.  poll() sleeps until the socket is
	 * readable.  The price is a scan of all the worker's connections per
	 * wake-up: with 1,000 idle TLS connections open, a keep-alive request
	 * costs about 190 us of edge CPU instead of 45 (epoll).
	 * MHD_USE_TURBO stays off.  Without it libmicrohttpd shuts a connection
	 * down (TLS: close_notify, then shutdown) the moment it decides to end
	 * it.  With it, 0.9.75 leaves that to the close(2) in its clean-up,
	 * and a connection ended from its idle step -- a streamed body whose
	 * origin failed mid-way, noticed as the client resumes -- is marked
	 * closed without being queued for clean-up: under epoll nothing looks
	 * at it again until another event or its timeout, so the client waited
	 * for a transfer that was over.  OpenSSL 3 clients also drop a session
	 * whose server closed without close_notify, so their TLS 1.3 tickets
	 * would never be used. */
	flags |= o->tls ? MHD_USE_POLL : MHD_USE_EPOLL;
	if (o->listen->ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	struct MHD_OptionItem opts[16];
	int n = 0;
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)httpd_log, NULL };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, (void *)&o->listen->ss };
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT,
		                             o->conn_timeout_s ? o->conn_timeout_s : 30, NULL };
	if (o->threads > 1)
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, o->threads, NULL };
	if (o->conn_limit)
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, o->conn_limit, NULL };
	if (o->completed)
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)o->completed,
			                             o->completed_cls };
	if (o->uri_log)
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)o->uri_log,
			                             o->uri_log_cls };
	if (o->conn_memory_limit)
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT,
			                             (intptr_t)o->conn_memory_limit, NULL };
	if (o->per_ip_limit)
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->per_ip_limit, NULL };
	if (o->notify_conn)
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)o->notify_conn,
			                             o->notify_conn_cls };
	if (o->tls) {
		flags |= MHD_USE_TLS;
		opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0,
			                             (void *)TLS_PRIORITIES };
		if (!o->notify_conn)
			opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_CONNECTION,
				                             (intptr_t)httpd_notify, o->tls };
	}
	opts[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };

	/* The certificate callback goes outside the array: libmicrohttpd
	 * 0.9.75 does not take MHD_OPTION_HTTPS_CERT_CALLBACK2 from one. */
	struct MHD_Daemon *d = o->tls
		? MHD_start_daemon(flags, (uint16_t)addr_port(o->listen), NULL, NULL, o->handler,
		                   o->handler_cls, MHD_OPTION_ARRAY, opts,
		                   MHD_OPTION_HTTPS_CERT_CALLBACK2, tls_cert_callback, MHD_OPTION_END)
		: MHD_start_daemon(flags, (uint16_t)addr_port(o->listen), NULL, NULL, o->handler,
		                   o->handler_cls, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (!d) {
		char a[ADDR_STRLEN];
		snprintf(err, errlen, "cannot listen on %s (address in use or not local?)",
		         addr_format(o->listen, a, sizeof a));
	}
	return d;
}

void httpd_stop(struct MHD_Daemon *d)
{
	if (!d)
		return;
	/* Close the listening socket first so no new connection arrives while
	 * MHD_stop_daemon waits for in-flight requests. */
	MHD_quiesce_daemon(d);
	MHD_stop_daemon(d);
}

enum MHD_Result httpd_reply(struct MHD_Connection *c, unsigned status, const char *content_type,
                            const void *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	if (content_type)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result httpd_reply_json(struct MHD_Connection *c, unsigned status, const struct buf *b)
{
	return httpd_reply(c, status, "application/json", b->data ? b->data : "", b->len);
}

static void error_json(struct buf *b, const char *msg)
{
	buf_puts(b, "{\"error\":");
	buf_json_str(b, msg);
	buf_puts(b, "}\n");
}

enum MHD_Result httpd_reply_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	struct buf b = BUF_INIT;
	error_json(&b, msg);
	enum MHD_Result r = httpd_reply_json(c, status, &b);
	buf_free(&b);
	return r;
}

/* ---------- Bearer token ---------- */

bool httpd_bearer_ok(const char *authorization, const char *secret)
{
	if (!authorization || !secret || !secret[0] || strncasecmp(authorization, "Bearer ", 7) != 0)
		return false;
	const char *tok = authorization + 7;
	/* Fixed-size digests: a plain compare would either leak the secret's
	 * length or read past the shorter string. */
	unsigned char a[crypto_generichash_BYTES], b[crypto_generichash_BYTES];
	crypto_generichash(a, sizeof a, (const unsigned char *)tok, strlen(tok), NULL, 0);
	crypto_generichash(b, sizeof b, (const unsigned char *)secret, strlen(secret), NULL, 0);
	return sodium_memcmp(a, b, sizeof a) == 0;
}

bool httpd_bearer_any(const char *authorization, char *const *secrets, size_t n)
{
	bool ok = false;
	for (size_t i = 0; i < n; i++)
		ok |= httpd_bearer_ok(authorization, secrets[i]);
	return ok;
}

enum MHD_Result httpd_reply_unauthorized(struct MHD_Connection *c, const char *msg)
{
	struct buf b = BUF_INIT;
	error_json(&b, msg);
	struct MHD_Response *r = MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_COPY);
	buf_free(&b);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	enum MHD_Result ret = MHD_queue_response(c, 401, r);
	MHD_destroy_response(r);
	return ret;
}
