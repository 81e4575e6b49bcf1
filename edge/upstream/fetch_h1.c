/* fetch_h1.c -- the edge's own HTTP/1.1 client, for the transfers a miss
 * makes: GET and HEAD to a plain-http origin given by its address.
 *
 * Why not libcurl for these too: on a 1 KiB miss libcurl cost about 65k
 * instructions and two poll() calls (a liveness check before reusing a
 * connection, a readability check after sending), a third of the miss.
 * Here a kept-alive connection is registered once, edge-triggered, for
 * reading and writing, and a miss costs one send() and one recv() on it.
 * Anything else (https, bodies, other methods, host names, odd URLs or
 * header lines) goes to libcurl unchanged (fetch_h1_start says no).
 *
 * Connections: per origin address at most max_connections, reused
 * newest-first; a fetch that finds them all busy waits in the origin's
 * queue.  An idle connection the origin closes (or writes to) is dropped when
 * epoll says so.  A GET or HEAD that fails on a reused connection before any
 * byte of the response came back is sent once more on a new connection (the
 * origin may have closed the idle one while the request was on its way),
 * as libcurl does. */
#include "edge/upstream/fetch_int.h"
#include "edge/upstream/h1resp.h"
#include "common/addr.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define H1_ORIGINS 64
#define H1_AUTH_MAX 80
/* Room for the largest head the parser accepts, and a line on top. */
#define H1_IN_CAP (H1RESP_MAX_HEAD + 2 * H1RESP_MAX_LINE)
#define H1_TICK_MS 100 /* deadlines are checked this often */
/* Bytes read from one connection before the others get their turn: a large
 * body at loopback speed would otherwise hold the fetch thread (and every
 * other miss) until it is all in. */
#define H1_READ_TURN (256u << 10)

struct h1_wait { /* a fetch waiting for a connection */
	struct fetch *f;
	int64_t deadline;
	struct h1_wait *next;
};

struct h1_origin {
	struct addr addr;
	char authority[H1_AUTH_MAX]; /* "host:port" as the URL has it (Host) */
	size_t authlen;
	struct h1_conn *idle;        /* most recently used first */
	unsigned open;               /* connections, busy and idle */
	struct h1_wait *wait_head, *wait_tail;
};

struct h1_conn {
	int fd;
	struct h1_origin *o;
	struct fetch *f;             /* NULL: idle (on o->idle) */
	struct h1_conn *next, *prev; /* the pool's busy list, o->idle, or the dead list */
	bool connecting, reused, got_byte, paused, dead;
	bool hup;                    /* the origin closed its side (seen on an edge) */
	bool more;                   /* on the pool's more list */
	struct h1_conn *more_next;
	struct buf out;              /* the request */
	size_t out_off;              /* ... sent so far */
	char *in;                    /* received, not yet parsed */
	size_t in_len;
	size_t pend_off, pend_len;   /* body bytes the fetch could not take yet (paused) */
	struct h1resp rp;
	int64_t deadline, connect_deadline;
};

struct h1_pool {
	struct fetcher *fr;
	unsigned max_conn;
	struct h1_origin origin[H1_ORIGINS];
	unsigned norigin;
	struct h1_conn *busy;        /* connections with a transfer */
	struct h1_conn *dead;        /* closed this round, freed after it */
	struct h1_conn *more;        /* ended a turn with bytes left to read */
	unsigned waiting;            /* fetches in the origins' queues */
	int64_t next_tick;
};

static const char *curl_text(CURLcode c)
{
	/* libcurl's wording, so a failure reads the same whichever client ran it. */
	return curl_easy_strerror(c);
}

/* ---------- which fetches are ours ---------- */

/* The origin of url ("http://ADDR[:PORT]/path"), found or added; *path set
 * to the request target.  NULL for anything libcurl should have. */
static struct h1_origin *origin_for(struct h1_pool *p, const char *url, const char **path)
{
	if (strncmp(url, "http://", 7))
		return NULL;
	const char *a = url + 7, *slash = strchr(a, '/');
	if (!slash || (size_t)(slash - a) >= H1_AUTH_MAX || slash == a)
		return NULL;
	size_t alen = (size_t)(slash - a);
	for (unsigned i = 0; i < p->norigin; i++)
		if (p->origin[i].authlen == alen && !memcmp(p->origin[i].authority, a, alen)) {
			*path = slash;
			return &p->origin[i];
		}
	if (p->norigin == H1_ORIGINS)
		return NULL;
	/* "ip:port" or "[ip6]:port" for addr_parse; without a port, 80.  A
	 * port must be digits only (addr_parse's strtol would take " +80"). */
	const char *host_end = memchr(a, ']', alen);
	if (!host_end)
		host_end = a;
	const char *colon = memchr(host_end, ':', (size_t)(slash - host_end));
	if (colon && (colon + 1 == slash ||
	              strspn(colon + 1, "0123456789") != (size_t)(slash - colon - 1)))
		return NULL;
	char hp[H1_AUTH_MAX + 4], err[96];
	snprintf(hp, sizeof hp, "%.*s%s", (int)alen, a, colon ? "" : ":80");
	struct addr ad;
	if (addr_parse(hp, &ad, err, sizeof err) < 0)
		return NULL; /* a host name: libcurl resolves it (and caches the answer) */
	struct h1_origin *o = &p->origin[p->norigin];
	memset(o, 0, sizeof *o);
	o->addr = ad;
	memcpy(o->authority, a, alen);
	o->authlen = alen;
	p->norigin++;
	*path = slash;
	return o;
}

/* A request target and header lines this client sends as they are. */
static bool plain_request(const struct fetch *f, const char *path)
{
	for (const unsigned char *c = (const unsigned char *)path; *c; c++)
		if (*c <= 0x20 || *c >= 0x7f || *c == '#')
			return false;
	for (const struct curl_slist *l = f->req_headers; l; l = l->next)
		if (strpbrk(l->data, "\r\n"))
			return false;
	return true;
}

#define APPEND_LIT(b, lit) buf_append((b), (lit), sizeof(lit) - 1)

/* The request in c->out.  Header lines follow libcurl's conventions, which
 * the callers write for: "Name:" with no value removes a field the client
 * would add, "Name;" sends it empty. */
static void request_build(struct h1_conn *c, const struct fetch *f, const char *path)
{
	struct buf *b = &c->out;
	buf_reset(b);
	c->out_off = 0;
	buf_reserve(b, 512);
	buf_append(b, f->method, strlen(f->method));
	APPEND_LIT(b, " ");
	buf_append(b, path, strlen(path));
	APPEND_LIT(b, " HTTP/1.1\r\n");
	bool host = false, accept = false;
	for (const struct curl_slist *l = f->req_headers; l; l = l->next) {
		const char *s = l->data, *colon = strchr(s, ':');
		size_t n = strlen(s);
		if (colon) {
			size_t nl = (size_t)(colon - s);
			host |= nl == 4 && !strncasecmp(s, "Host", 4);
			accept |= nl == 6 && !strncasecmp(s, "Accept", 6);
			const char *v = colon + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			if (!*v)
				continue;
			buf_append(b, s, n);
		} else if (n && s[n - 1] == ';') {
			buf_append(b, s, n - 1);
			APPEND_LIT(b, ":");
		} else {
			continue; /* not a field line */
		}
		APPEND_LIT(b, "\r\n");
	}
	if (!host) {
		APPEND_LIT(b, "Host: ");
		buf_append(b, c->o->authority, c->o->authlen);
		APPEND_LIT(b, "\r\n");
	}
	if (!accept)
		APPEND_LIT(b, "Accept: */*\r\n");
	APPEND_LIT(b, "\r\n");
}

/* ---------- connections ---------- */

static void list_push(struct h1_conn **head, struct h1_conn *c)
{
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
}

static void list_del(struct h1_conn **head, struct h1_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

/* Closes c (off every list); freed after this round's events. */
static void conn_close(struct h1_pool *p, struct h1_conn *c)
{
	if (c->more) { /* off the more list before it can be freed */
		struct h1_conn **m = &p->more;
		while (*m != c)
			m = &(*m)->more_next;
		*m = c->more_next;
		c->more = false;
	}
	close(c->fd);
	c->fd = -1;
	c->dead = true;
	c->o->open--;
	c->next = p->dead;
	p->dead = c;
}

static struct h1_conn *conn_open(struct h1_pool *p, struct h1_origin *o, int *err)
{
	int fd = socket(o->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err = errno;
		return NULL;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct h1_conn *c = xcalloc(1, sizeof *c);
	c->fd = fd;
	c->o = o;
	c->connecting = true;
	c->in = xmalloc(H1_IN_CAP);
	/* Registered once for good: edge-triggered, so neither reading nor
	 * writing ever changes the registration. */
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c };
	if (epoll_ctl(p->fr->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ||
	    (connect(fd, (struct sockaddr *)&o->addr.ss, o->addr.len) < 0 && errno != EINPROGRESS)) {
		*err = errno;
		close(fd);
		free(c->in);
		free(c);
		return NULL;
	}
	o->open++;
	return c;
}

static void conn_send(struct h1_pool *p, struct h1_conn *c);
static void conn_read(struct h1_pool *p, struct h1_conn *c);
static void start_on(struct h1_pool *p, struct h1_origin *o, struct fetch *f, int64_t deadline,
                     bool fresh);

/* Puts f on c: request written, parser ready, deadlines set. */
static void conn_begin(struct h1_pool *p, struct h1_conn *c, struct fetch *f, int64_t deadline)
{
	const char *path;
	origin_for(p, f->url, &path);
	c->f = f;
	f->h1 = c;
	c->got_byte = c->paused = false;
	c->in_len = c->pend_len = 0;
	request_build(c, f, path);
	h1resp_init(&c->rp, !strcmp(f->method, "HEAD"));
	long tmo, ctmo;
	fetch_timeouts(p->fr, f, &tmo, &ctmo);
	int64_t now = fetch_now_ms();
	c->deadline = deadline ? deadline : now + tmo;
	c->connect_deadline = now + ctmo;
	list_push(&p->busy, c);
	if (!c->connecting)
		conn_send(p, c);
}

/* The next fetch waiting for o, on c (a connection, or NULL: a new one). */
static bool next_waiter(struct h1_pool *p, struct h1_origin *o, struct h1_conn *c)
{
	struct h1_wait *w = o->wait_head;
	if (!w)
		return false;
	o->wait_head = w->next;
	if (!o->wait_head)
		o->wait_tail = NULL;
	p->waiting--;
	struct fetch *f = w->f;
	int64_t deadline = w->deadline;
	free(w);
	if (c)
		conn_begin(p, c, f, deadline);
	else
		start_on(p, o, f, deadline, true);
	return true;
}

/* c's transfer is over (f already ended or handed on): keep c for the next
 * request when it may carry one, else close it. */
static void conn_release(struct h1_pool *p, struct h1_conn *c, bool reusable)
{
	list_del(&p->busy, c);
	struct h1_origin *o = c->o;
	c->f = NULL;
	if (!reusable) {
		conn_close(p, c);
		next_waiter(p, o, NULL);
		return;
	}
	if (c->hup) { /* its close is already in: it would only fail the next request */
		conn_close(p, c);
		next_waiter(p, o, NULL);
		return;
	}
	c->reused = true;
	if (!next_waiter(p, o, c))
		list_push(&o->idle, c);
}

/* Ends c's transfer with an error.  A request that got nothing back on a
 * reused connection goes once more, on a new one. */
static void conn_fail(struct h1_pool *p, struct h1_conn *c, CURLcode code, bool retry)
{
	struct fetch *f = c->f;
	struct h1_origin *o = c->o;
	int64_t deadline = c->deadline;
	bool again = retry && c->reused && !c->got_byte;
	f->h1 = NULL;
	list_del(&p->busy, c);
	c->f = NULL;
	conn_close(p, c);
	if (again) {
		start_on(p, o, f, deadline, true);
		return;
	}
	fetch_end(f, curl_text(code), code == CURLE_OPERATION_TIMEDOUT, false);
	next_waiter(p, o, NULL);
}

static void conn_send(struct h1_pool *p, struct h1_conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return; /* EPOLLOUT comes when there is room */
		conn_fail(p, c, CURLE_SEND_ERROR, true);
		return;
	}
}

/* ---------- the response ---------- */

enum step { STEP_MORE, STEP_STOP };

/* Ends c's transfer well and lets c go on. */
static void conn_done(struct h1_pool *p, struct h1_conn *c, bool rest)
{
	struct fetch *f = c->f;
	f->h1 = NULL;
	/* Bytes after the response were never asked for: not a connection to trust. */
	conn_release(p, c, c->rp.keep_alive && !rest);
	fetch_end(f, NULL, false, false);
}

/* Body bytes to the fetch; STEP_STOP when it paused or refused them. */
static enum step give_body(struct h1_pool *p, struct h1_conn *c, size_t off, size_t len)
{
	switch (fetch_got_body(c->f, c->in + off, len)) {
	case FETCH_TAKEN:
		return STEP_MORE;
	case FETCH_PAUSE:
		c->paused = true;
		c->pend_off = off;
		c->pend_len = len;
		return STEP_STOP;
	case FETCH_TOO_BIG:
		break;
	}
	conn_fail(p, c, CURLE_WRITE_ERROR, false);
	return STEP_STOP;
}

/* Parses what c->in holds and hands it to the fetch.  STEP_MORE: read
 * on; STEP_STOP: the transfer ended, failed or paused. */
static enum step conn_parse(struct h1_pool *p, struct h1_conn *c)
{
	size_t off = 0;
	for (;;) {
		size_t used;
		enum h1resp_event ev = h1resp_parse(&c->rp, c->in + off, c->in_len - off, &used);
		size_t at = off;
		off += used;
		struct h1resp *r = &c->rp;
		switch (ev) {
		case H1R_NEED_MORE:
			memmove(c->in, c->in + off, c->in_len - off);
			c->in_len -= off;
			if (c->in_len == H1_IN_CAP) {
				conn_fail(p, c, CURLE_WEIRD_SERVER_REPLY, false);
				return STEP_STOP;
			}
			return STEP_MORE;
		case H1R_STATUS:
			fetch_got_status(c->f, r->status);
			break;
		case H1R_HEADER:
			if (!fetch_got_field(c->f, r->name, r->name_len, r->value, r->value_len)) {
				conn_fail(p, c, CURLE_WEIRD_SERVER_REPLY, false);
				return STEP_STOP;
			}
			break;
		case H1R_HEADERS_END:
			if (r->status >= 200)
				fetch_got_head(c->f, r->content_length);
			break;
		case H1R_BODY:
			if (give_body(p, c, (size_t)(r->data - c->in), r->data_len) == STEP_STOP) {
				if (c->paused) { /* keep the unparsed rest behind the held bytes */
					c->pend_off -= at;
					memmove(c->in, c->in + at, c->in_len - at);
					c->in_len -= at;
				}
				return STEP_STOP;
			}
			break;
		case H1R_DONE:
			conn_done(p, c, off < c->in_len);
			return STEP_STOP;
		case H1R_ERROR:
			log_info("fetch", "%s %s: malformed response from the origin: %s", c->f->method,
			         c->f->url, r->error);
			conn_fail(p, c, CURLE_WEIRD_SERVER_REPLY, false);
			return STEP_STOP;
		}
	}
}

/* The origin closed its side: the end of a body delimited by the close, or
 * a response cut short. */
static void conn_eof(struct h1_pool *p, struct h1_conn *c)
{
	if (h1resp_eof(&c->rp) == H1R_DONE) {
		conn_done(p, c, true);
		return;
	}
	conn_fail(p, c, c->got_byte ? CURLE_PARTIAL_FILE : CURLE_GOT_NOTHING, true);
}

/* Reads until the socket is drained, the transfer is over or paused, or
 * its turn is up: then it goes on the more list, read again next round
 * (edge-triggered: the bytes left raise no new edge). */
static void conn_read(struct h1_pool *p, struct h1_conn *c)
{
	size_t turn = 0;
	while (c->f && !c->paused) {
		if (turn >= H1_READ_TURN) {
			if (!c->more) {
				c->more = true;
				c->more_next = p->more;
				p->more = c;
			}
			return;
		}
		size_t room = H1_IN_CAP - c->in_len;
		ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
		if (n > 0) {
			c->in_len += (size_t)n;
			c->got_byte = true;
			turn += (size_t)n;
			if (conn_parse(p, c) == STEP_STOP)
				return;
			/* A short read drained the socket: more bytes (or the close)
			 * raise a new edge.  A body that ends with the close reads
			 * on, since that close may be what this edge was for. */
			if ((size_t)n < room && c->rp.framing != H1F_CLOSE && !c->hup)
				return;
			continue;
		}
		if (n == 0) {
			conn_eof(p, c);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			conn_fail(p, c, CURLE_RECV_ERROR, true);
		return;
	}
}

/* ---------- the fetch thread's calls ---------- */

/* Runs f on a connection to o: an idle one, a new one, or later. */
static void start_on(struct h1_pool *p, struct h1_origin *o, struct fetch *f, int64_t deadline,
                     bool fresh)
{
	struct h1_conn *c = fresh ? NULL : o->idle;
	if (c) {
		list_del(&o->idle, c);
		conn_begin(p, c, f, deadline);
		return;
	}
	if (o->open >= p->max_conn) {
		struct h1_wait *w = xmalloc(sizeof *w);
		long tmo, ctmo;
		fetch_timeouts(p->fr, f, &tmo, &ctmo);
		w->f = f;
		w->deadline = deadline ? deadline : fetch_now_ms() + tmo;
		w->next = NULL;
		if (o->wait_tail)
			o->wait_tail->next = w;
		else
			o->wait_head = w;
		o->wait_tail = w;
		p->waiting++;
		return;
	}
	int err = 0;
	c = conn_open(p, o, &err);
	if (!c) {
		log_info("fetch", "connecting to %.*s: %s", (int)o->authlen, o->authority, strerror(err));
		fetch_end(f, curl_text(CURLE_COULDNT_CONNECT), false, false);
		return;
	}
	conn_begin(p, c, f, deadline);
}

bool fetch_h1_start(struct h1_pool *p, struct fetch *f)
{
	bool head = !strcmp(f->method, "HEAD");
	if ((!head && strcmp(f->method, "GET")) || f->up || f->req_body_len)
		return false;
	const char *path;
	struct h1_origin *o = origin_for(p, f->url, &path);
	if (!o || !plain_request(f, path))
		return false;
	start_on(p, o, f, 0, false);
	return true;
}

void fetch_h1_event(struct h1_pool *p, void *conn, uint32_t events)
{
	struct h1_conn *c = conn;
	if (c->dead)
		return;
	if (!c->f) {
		/* Idle: the origin closed it, or sent what no request asked for. */
		if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
			list_del(&c->o->idle, c);
			conn_close(p, c);
		}
		return;
	}
	if (c->connecting) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		int soerr = 0;
		socklen_t sl = sizeof soerr;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
			log_info("fetch", "connecting to %.*s: %s", (int)c->o->authlen, c->o->authority,
			         strerror(soerr ? soerr : errno));
			conn_fail(p, c, CURLE_COULDNT_CONNECT, false);
			return;
		}
		c->connecting = false;
		conn_send(p, c);
		return; /* the answer raises its own edge */
	}
	if ((events & EPOLLOUT) && c->out_off < c->out.len) {
		conn_send(p, c);
		if (c->dead || !c->f)
			return;
	}
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->hup = true;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		conn_read(p, c);
}

void fetch_h1_unpause(struct h1_pool *p, struct fetch *f)
{
	struct h1_conn *c = f->h1;
	if (!c || !c->paused)
		return;
	c->paused = false;
	if (give_body(p, c, c->pend_off, c->pend_len) == STEP_STOP)
		return;
	/* The held bytes are in; parse what came after them, then read on
	 * (edge-triggered: what arrived while paused raised no new edge). */
	size_t rest = c->pend_off + c->pend_len;
	memmove(c->in, c->in + rest, c->in_len - rest);
	c->in_len -= rest;
	c->pend_len = 0;
	/* Parsed even with nothing left: the held bytes may have been the
	 * body's last, and only the parser's next call says the response is done. */
	if (conn_parse(p, c) == STEP_STOP)
		return;
	conn_read(p, c);
}

int fetch_h1_wait_ms(struct h1_pool *p, int64_t now)
{
	if (p->more)
		return 0;
	if (!p->busy && !p->waiting)
		return -1;
	int64_t d = p->next_tick - now;
	return d < 0 ? 0 : d > H1_TICK_MS ? H1_TICK_MS : (int)d;
}

static void free_dead(struct h1_pool *p)
{
	while (p->dead) {
		struct h1_conn *c = p->dead;
		p->dead = c->next;
		buf_free(&c->out);
		free(c->in);
		free(c);
	}
}

/* Ends the transfers past their deadline: running ones, and those still
 * waiting for a connection. */
static void expire_due(struct h1_pool *p, int64_t now)
{
	for (struct h1_conn *c = p->busy, *next; c; c = next) {
		next = c->next;
		if (now >= c->deadline || (c->connecting && now >= c->connect_deadline))
			conn_fail(p, c, CURLE_OPERATION_TIMEDOUT, false);
	}
	for (unsigned i = 0; i < p->norigin; i++) {
		struct h1_origin *o = &p->origin[i];
		for (struct h1_wait **w = &o->wait_head; *w;) {
			struct h1_wait *x = *w;
			if (now < x->deadline) {
				o->wait_tail = x;
				w = &x->next;
				continue;
			}
			*w = x->next;
			p->waiting--;
			fetch_end(x->f, curl_text(CURLE_OPERATION_TIMEDOUT), true, false);
			free(x);
		}
		if (!o->wait_head)
			o->wait_tail = NULL;
	}
}

/* Another turn for each connection that ended its last one with bytes
 * left; those that fill this turn too go on a new list. */
static void read_more(struct h1_pool *p)
{
	struct h1_conn *list = p->more;
	p->more = NULL;
	for (struct h1_conn *c = list; c; c = c->more_next)
		c->more = false; /* off the list: conn_close has nothing to unlink */
	for (struct h1_conn *c = list, *next; c; c = next) {
		next = c->more_next; /* conn_read may put c on the new list */
		if (!c->dead) /* closed this round: freed after it, not before */
			conn_read(p, c);
	}
}

void fetch_h1_expire(struct h1_pool *p, int64_t now)
{
	read_more(p);
	if (now >= p->next_tick) {
		p->next_tick = now + H1_TICK_MS;
		expire_due(p, now);
	}
	free_dead(p);
}

void fetch_h1_abort_all(struct h1_pool *p)
{
	for (unsigned i = 0; i < p->norigin; i++) { /* waiters first: no new connection for them */
		struct h1_origin *o = &p->origin[i];
		while (o->wait_head) {
			struct h1_wait *w = o->wait_head;
			o->wait_head = w->next;
			p->waiting--;
			fetch_end(w->f, curl_text(CURLE_ABORTED_BY_CALLBACK), false, false);
			free(w);
		}
		o->wait_tail = NULL;
		while (o->idle) {
			struct h1_conn *c = o->idle;
			list_del(&o->idle, c);
			conn_close(p, c);
		}
	}
	while (p->busy)
		conn_fail(p, p->busy, CURLE_ABORTED_BY_CALLBACK, false);
	free_dead(p);
}

struct h1_pool *fetch_h1_new(struct fetcher *fr, unsigned max_connections)
{
	struct h1_pool *p = xcalloc(1, sizeof *p);
	p->fr = fr;
	p->max_conn = max_connections ? max_connections : 1;
	return p;
}

void fetch_h1_free(struct h1_pool *p)
{
	if (!p)
		return;
	fetch_h1_abort_all(p); /* nothing runs by now: closes the idle connections */
	free(p);
}
