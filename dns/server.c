/* server.c -- UDP workers and the TCP thread */
#include "dns/server.h"
#include "dns/query.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 32
#define UDP_BUF 4096     /* queries larger than this are not DNS we answer */
#define TCP_MSG_MAX 65535

struct worker {
	struct server *srv;
	pthread_t th;
	int *fds;             /* one UDP socket per listen address */
	size_t nfds;
	int slot;
};

struct tconn {
	int fd;
	struct sockaddr_storage peer;
	uint8_t *in;           /* TCP_MSG_MAX + 2 */
	size_t inlen;
	uint8_t *out;          /* pending replies */
	size_t outlen, outcap, outoff;
	long long last;        /* ms of last activity */
	struct tconn *next;
};

struct server {
	struct worker *w;
	size_t nw;
	int *tfds;            /* TCP listeners */
	size_t ntfds;
	pthread_t tth;
	int epfd, stopfd;
	atomic_bool stop;
	int idle_ms, max_conns;
	atomic_uint nconns;
	struct tconn *conns;
};

static int udp_socket(const struct addr *a, char *err, size_t errlen)
{
	int fd = socket(a->ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	/* Replies are at most edns_udp_size (<= 4096, 1232 by default), so we can
	 * set DF and skip fragmentation; it also spares the kernel the hashed IP ID. */
	int pmtu = IP_PMTUDISC_DO;
	if (a->ss.ss_family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	} else {
		setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
	}
	int rcv = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
	/* Wake up now and then so a stop request is noticed. */
	struct timeval tv = { 0, 200000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
		goto fail;
	return fd;
fail:;
	char as[ADDR_STRLEN];
	snprintf(err, errlen, "UDP %s: %s", addr_format(a, as, sizeof as), strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int tcp_socket(const struct addr *a, char *err, size_t errlen)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (a->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, 128) < 0)
		goto fail;
	return fd;
fail:;
	char as[ADDR_STRLEN];
	snprintf(err, errlen, "TCP %s: %s", addr_format(a, as, sizeof as), strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* ---------- UDP ---------- */

static void *udp_main(void *arg)
{
	struct worker *w = arg;
	struct server *s = w->srv;
	struct query_env env = { NULL, counters_new(), (uint64_t)(uintptr_t)w ^ (uint64_t)daemon_now_ms() };
	/* Buffers UDP_BUF + 64 bytes apart, not 4096: at a 4 KiB stride the first
	 * line of all 64 buffers would map to the same L1 set and evict each
	 * other on every batch. */
	static __thread uint8_t in[BATCH][UDP_BUF + 64], out[BATCH][UDP_BUF + 64];
	struct sockaddr_storage peer[BATCH];
	struct mmsghdr msgs[BATCH], rep[BATCH];
	struct iovec iov[BATCH], oiov[BATCH];
	struct pollfd pfd[16];
	size_t np = w->nfds < 16 ? w->nfds : 16;
	for (size_t i = 0; i < np; i++)
		pfd[i] = (struct pollfd){ w->fds[i], POLLIN, 0 };
	/* The headers are set up once; the kernel only rewrites msg_namelen,
	 * msg_flags and msg_len of the entries it filled, so after each batch
	 * just those n entries are reset (not all BATCH of them per call). */
	for (int i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){ in[i], UDP_BUF };
		msgs[i].msg_hdr = (struct msghdr){ &peer[i], sizeof peer[i], &iov[i], 1, NULL, 0, 0 };
		oiov[i] = (struct iovec){ out[i], 0 };
		rep[i].msg_hdr = (struct msghdr){ NULL, 0, &oiov[i], 1, NULL, 0, 0 };
	}
	size_t next = 0;
	while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
		int fd = w->fds[0];
		if (np > 1) {
			/* Several listen addresses: wait on all, serve them in turn. */
			if (poll(pfd, np, 200) <= 0)
				continue;
			size_t k;
			for (k = 0; k < np && !(pfd[(next + k) % np].revents & POLLIN); k++)
				;
			if (k == np)
				continue;
			fd = w->fds[(next + k) % np];
			next = (next + k + 1) % np;
		}
		int n = recvmmsg(fd, msgs, BATCH, np > 1 ? MSG_DONTWAIT : MSG_WAITFORONE, NULL);
		if (n <= 0)
			continue;
		qsbr_enter(w->slot);
		env.view = view_current();
		int nr = 0;
		for (int i = 0; i < n; i++) {
			size_t len = query_process(&env, in[i], msgs[i].msg_len, (struct sockaddr *)&peer[i], false,
			                           out[nr], UDP_BUF);
			socklen_t namelen = msgs[i].msg_hdr.msg_namelen;
			msgs[i].msg_hdr.msg_namelen = sizeof peer[i];
			msgs[i].msg_hdr.msg_flags = 0;
			if (!len)
				continue;
			oiov[nr].iov_len = len;
			rep[nr].msg_hdr.msg_name = &peer[i];
			rep[nr].msg_hdr.msg_namelen = namelen;
			nr++;
		}
		qsbr_leave(w->slot);
		for (int sent = 0; sent < nr;) {
			int m = sendmmsg(fd, rep + sent, (unsigned)(nr - sent), MSG_DONTWAIT);
			if (m < 0 && errno == EINTR)
				continue;
			/* sendmmsg stops at the first reply that fails (full buffer, bad
			 * address): lose that one (the client retries) and go on. */
			sent += m > 0 ? m : 1;
		}
	}
	return NULL;
}

/* ---------- TCP ---------- */

static void tconn_close(struct server *s, struct tconn *c)
{
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	struct tconn **pp = &s->conns;
	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp)
		*pp = c->next;
	free(c->in);
	free(c->out);
	free(c);
	atomic_fetch_sub(&s->nconns, 1);
}

static int tconn_flush(struct server *s, struct tconn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t m = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
		if (m < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			return -1;
		}
		c->outoff += (size_t)m;
	}
	if (c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	struct epoll_event ev = { EPOLLIN | (c->outlen ? EPOLLOUT : 0), { .ptr = c } };
	epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
	return 0;
}

/* Answers every complete message in c->in.  Returns -1 to close. */
static int tconn_process(struct server *s, struct tconn *c, struct query_env *env, int slot, uint8_t *ans)
{
	size_t off = 0;
	while (c->inlen - off >= 2) {
		size_t ml = (size_t)c->in[off] << 8 | c->in[off + 1];
		if (ml == 0)
			return -1;
		if (c->inlen - off - 2 < ml)
			break;
		/* Do not queue without bound for a client that does not read. */
		if (c->outlen > 4 * TCP_MSG_MAX)
			break;
		qsbr_enter(slot);
		env->view = view_current();
		size_t n = query_process(env, c->in + off + 2, ml, (struct sockaddr *)&c->peer, true, ans + 2,
		                         TCP_MSG_MAX);
		qsbr_leave(slot);
		off += 2 + ml;
		if (!n)
			continue;
		ans[0] = (uint8_t)(n >> 8);
		ans[1] = (uint8_t)n;
		if (c->outlen + n + 2 > c->outcap) {
			c->outcap = (c->outlen + n + 2) * 2;
			c->out = xrealloc(c->out, c->outcap);
		}
		memcpy(c->out + c->outlen, ans, n + 2);
		c->outlen += n + 2;
	}
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
	return tconn_flush(s, c);
}

static void *tcp_main(void *arg)
{
	struct server *s = arg;
	int slot = qsbr_register();
	struct query_env env = { NULL, counters_new(), (uint64_t)daemon_now_ms() * 2654435761u };
	uint8_t *ans = xmalloc(TCP_MSG_MAX + 2);
	struct epoll_event evs[64];
	while (!atomic_load(&s->stop)) {
		int n = epoll_wait(s->epfd, evs, 64, 250);
		long long now = daemon_now_ms();
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == NULL)
				continue; /* stop eventfd */
			if ((uintptr_t)p <= s->ntfds) {
				int lfd = s->tfds[(uintptr_t)p - 1];
				for (;;) {
					struct sockaddr_storage peer;
					socklen_t pl = sizeof peer;
					int fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (fd < 0)
						break;
					if (atomic_load(&s->nconns) >= (unsigned)s->max_conns) {
						close(fd); /* over the cap: refuse by closing (RFC 7766 6.2.2) */
						continue;
					}
					int one = 1;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					struct tconn *c = xcalloc(1, sizeof *c);
					c->fd = fd;
					c->peer = peer;
					c->in = xmalloc(TCP_MSG_MAX + 2);
					c->last = now;
					c->next = s->conns;
					s->conns = c;
					atomic_fetch_add(&s->nconns, 1);
					struct epoll_event ev = { EPOLLIN, { .ptr = c } };
					epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			struct tconn *c = p;
			c->last = now;
			if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
				tconn_close(s, c);
				continue;
			}
			if (evs[i].events & EPOLLOUT) {
				if (tconn_flush(s, c) < 0) {
					tconn_close(s, c);
					continue;
				}
			}
			if (evs[i].events & EPOLLIN) {
				if (c->inlen == TCP_MSG_MAX + 2) {
					/* Input full while replies pile up unread: the client sends
					 * without reading, so we close (RFC 7766 6.2.3 lets us). */
					tconn_close(s, c);
					continue;
				}
				ssize_t m = recv(c->fd, c->in + c->inlen, TCP_MSG_MAX + 2 - c->inlen, 0);
				if (m == 0 || (m < 0 && errno != EAGAIN && errno != EINTR)) {
					tconn_close(s, c);
					continue;
				}
				if (m > 0) {
					c->inlen += (size_t)m;
					if (tconn_process(s, c, &env, slot, ans) < 0) {
						tconn_close(s, c);
						continue;
					}
				}
			}
		}
		/* Idle timeout (RFC 7766 6.2.3): O(connections) per wakeup, capped by max_conns. */
		for (struct tconn *c = s->conns, *next; c; c = next) {
			next = c->next;
			if (now - c->last > s->idle_ms)
				tconn_close(s, c);
		}
	}
	while (s->conns)
		tconn_close(s, s->conns);
	free(ans);
	qsbr_unregister(slot);
	return NULL;
}

/* ---------- start / stop ---------- */

static void *udp_thread(void *arg)
{
	struct worker *w = arg;
	w->slot = qsbr_register();
	udp_main(w);
	qsbr_unregister(w->slot);
	return NULL;
}

struct server *server_start(const struct dns_conf *c, char *err, size_t errlen)
{
	struct server *s = xcalloc(1, sizeof *s);
	s->epfd = -1;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	s->nw = c->workers > 0 ? (size_t)c->workers : (size_t)(ncpu > 0 ? ncpu : 1);
	s->idle_ms = c->tcp_idle_timeout_ms;
	s->max_conns = c->tcp_max_connections;
	s->w = xcalloc(s->nw, sizeof *s->w);
	s->tfds = xcalloc(c->n_listen, sizeof *s->tfds);
	for (size_t i = 0; i < c->n_listen; i++)
		s->tfds[i] = -1;
	for (size_t k = 0; k < s->nw; k++) {
		s->w[k].srv = s;
		s->w[k].fds = xcalloc(c->n_listen, sizeof(int));
		for (size_t i = 0; i < c->n_listen; i++)
			s->w[k].fds[i] = -1;
	}
	for (size_t i = 0; i < c->n_listen; i++) {
		struct addr a;
		if (addr_parse(c->listen[i], &a, err, errlen) < 0)
			goto fail;
		for (size_t k = 0; k < s->nw; k++) {
			if ((s->w[k].fds[i] = udp_socket(&a, err, errlen)) < 0)
				goto fail;
			s->w[k].nfds = i + 1;
		}
		if ((s->tfds[i] = tcp_socket(&a, err, errlen)) < 0)
			goto fail;
		s->ntfds = i + 1;
	}
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	for (size_t i = 0; i < s->ntfds; i++) {
		struct epoll_event ev = { EPOLLIN, { .ptr = (void *)(uintptr_t)(i + 1) } };
		epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->tfds[i], &ev);
	}
	for (size_t k = 0; k < s->nw; k++)
		pthread_create(&s->w[k].th, NULL, udp_thread, &s->w[k]);
	pthread_create(&s->tth, NULL, tcp_main, s);
	return s;
fail:
	for (size_t k = 0; k < s->nw; k++) {
		for (size_t i = 0; i < c->n_listen; i++)
			if (s->w[k].fds[i] >= 0)
				close(s->w[k].fds[i]);
		free(s->w[k].fds);
	}
	for (size_t i = 0; i < c->n_listen; i++)
		if (s->tfds[i] >= 0)
			close(s->tfds[i]);
	free(s->tfds);
	free(s->w);
	free(s);
	return NULL;
}

void server_stop(struct server *s)
{
	if (!s)
		return;
	atomic_store(&s->stop, true);
	for (size_t k = 0; k < s->nw; k++)
		pthread_join(s->w[k].th, NULL);
	pthread_join(s->tth, NULL);
	for (size_t k = 0; k < s->nw; k++) {
		for (size_t i = 0; i < s->w[k].nfds; i++)
			close(s->w[k].fds[i]);
		free(s->w[k].fds);
	}
	for (size_t i = 0; i < s->ntfds; i++)
		close(s->tfds[i]);
	close(s->epfd);
	free(s->tfds);
	free(s->w);
	free(s);
}

unsigned server_tcp_connections(const struct server *s)
{
	return atomic_load(&((struct server *)s)->nconns);
}
