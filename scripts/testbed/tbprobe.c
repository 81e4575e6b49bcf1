/* tbprobe.c -- the testbed's measuring client: RTT probes and CDN fetches.
 *
 *   tbprobe serve IP:PORT
 *       TCP listener that accepts and closes, plus a UDP echo on the same port:
 *       the far end of `tbprobe rtt`.
 *   tbprobe rtt IP:PORT [-n COUNT] [-i INTERVAL_MS] [-t TIMEOUT_MS] [-U]
 *       COUNT TCP handshakes (connect() time = one RTT) and COUNT UDP echoes;
 *       prints "tcp_min_ms tcp_med_ms udp_min_ms udp_med_ms ok_count udp_max_ms"
 *       (ok_count: the smaller of the two success counts).  -U: UDP only
 *       (the TCP fields print -1 and ok_count counts the echoes): for lossy
 *       links, where a lost SYN costs a one-second retransmission.
 *   tbprobe fetch -R RESOLVER_IP -N NAME -u PATH [-c COUNT] [-i INTERVAL_MS]
 *                 [-d DURATION_S] [-L LABEL] [-t TIMEOUT_MS] [-p HTTP_PORT]
 *                 [-z OBJECTS [-a ZIPF_ALPHA] [-s SEED]]
 *       What a user of the CDN does, COUNT times (or for DURATION_S): asks its
 *       resolver for NAME (A, UDP), then GETs PATH from the first address with
 *       HTTP/1.1 and Connection: close.  One CSV line per request on stdout:
 *       epoch_ms,label,dns_ms,rcode,edge,status,connect_ms,total_ms,bytes,cache,error
 *       (connect_ms is the TCP handshake to the chosen edge, i.e. its RTT).
 *       With -z, PATH holds one "%d" replaced by an object number in
 *       [0, OBJECTS) drawn from a Zipf(ALPHA) popularity law (default 1.0),
 *       as web objects are requested; the path then follows the error column.
 *
 * Times are CLOCK_MONOTONIC differences; epoch_ms is the wall clock so lines
 * written in different namespaces can be merged on one time axis. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ldns/ldns.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/addr.h"

static double mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long long epoch_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(double ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (time_t)(ms / 1000) * 1000) * 1e6)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int parse_addr(const char *s, int default_port, struct addr *a)
{
	char err[128];
	if (strchr(s, ':') && addr_parse(s, a, err, sizeof err) == 0)
		return 0;
	if (addr_parse_ip(s, default_port, a, err, sizeof err) == 0)
		return 0;
	fprintf(stderr, "tbprobe: bad address '%s': %s\n", s, err);
	return -1;
}

/* Non-blocking connect bounded by timeout_ms.  Returns the fd or -1; *ms gets
 * the handshake time. */
static int tcp_connect(const struct addr *a, int timeout_ms, double *ms, const char **why)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	double t0 = mono_ms();
	if (fd < 0) {
		*why = "socket";
		return -1;
	}
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0 && errno != EINPROGRESS) {
		*why = errno == ECONNREFUSED ? "refused" : "connect";
		goto fail;
	}
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int n = poll(&p, 1, timeout_ms);
	if (n <= 0) {
		*why = "connect-timeout";
		goto fail;
	}
	int soerr = 0;
	socklen_t sl = sizeof soerr;
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	if (soerr) {
		*why = soerr == ECONNREFUSED ? "refused" : soerr == EHOSTUNREACH ? "unreachable" : "connect";
		goto fail;
	}
	*ms = mono_ms() - t0;
	return fd;
fail:
	close(fd);
	return -1;
}

/* ---- serve ---- */
static int cmd_serve(int argc, char **argv)
{
	struct addr a;
	int one = 1, lfd, ufd, ep;
	if (argc != 1 || parse_addr(argv[0], 9, &a) < 0) {
		fprintf(stderr, "usage: tbprobe serve IP:PORT\n");
		return 2;
	}
	lfd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ufd = socket(a.ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (lfd < 0 || ufd < 0 || bind(lfd, (struct sockaddr *)&a.ss, a.len) < 0 || listen(lfd, 128) < 0 ||
	    bind(ufd, (struct sockaddr *)&a.ss, a.len) < 0) {
		fprintf(stderr, "tbprobe serve %s: %s\n", argv[0], strerror(errno));
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	ev.data.fd = ufd;
	epoll_ctl(ep, EPOLL_CTL_ADD, ufd, &ev);
	for (;;) {
		struct epoll_event evs[2];
		int n = epoll_wait(ep, evs, 2, -1);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == lfd) {
				int c;
				while ((c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
					close(c);
			} else {
				unsigned char b[2048];
				struct sockaddr_storage from;
				socklen_t fl = sizeof from;
				ssize_t len;
				while ((len = recvfrom(ufd, b, sizeof b, 0, (struct sockaddr *)&from, &fl)) >= 0) {
					sendto(ufd, b, (size_t)len, 0, (struct sockaddr *)&from, fl);
					fl = sizeof from;
				}
			}
		}
	}
}

/* ---- rtt ---- */
static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int cmd_rtt(int argc, char **argv)
{
	struct addr a;
	int count = 10, interval = 20, timeout = 3000, c, ok = 0, uok = 0, udp_only = 0;
	optind = 1;
	while ((c = getopt(argc, argv, "n:i:t:U")) != -1) {
		switch (c) {
		case 'U': udp_only = 1; break;
		case 'n': count = atoi(optarg); break;
		case 'i': interval = atoi(optarg); break;
		case 't': timeout = atoi(optarg); break;
		default: return 2;
		}
	}
	if (optind != argc - 1 || count < 1 || count > 10000 || parse_addr(argv[optind], 9, &a) < 0) {
		fprintf(stderr, "usage: tbprobe rtt IP:PORT [-n COUNT] [-i INTERVAL_MS] [-t TIMEOUT_MS]\n");
		return 2;
	}
	double *tcp = calloc((size_t)count, sizeof *tcp), *udp = calloc((size_t)count, sizeof *udp);
	if (!tcp || !udp)
		abort();
	for (int i = 0; i < count && !udp_only; i++) {
		double ms;
		const char *why;
		int fd = tcp_connect(&a, timeout, &ms, &why);
		if (fd >= 0) {
			tcp[ok++] = ms;
			close(fd);
		}
		sleep_ms(interval);
	}
	int ufd = socket(a.ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (ufd >= 0 && connect(ufd, (struct sockaddr *)&a.ss, a.len) == 0) {
		for (int i = 0; i < count; i++) {
			char msg[32], back[32];
			int len = snprintf(msg, sizeof msg, "probe %d", i);
			double t0 = mono_ms();
			if (send(ufd, msg, (size_t)len, 0) != len)
				continue;
			for (;;) {
				struct pollfd p = {.fd = ufd, .events = POLLIN};
				int left = timeout - (int)(mono_ms() - t0);
				if (left <= 0 || poll(&p, 1, left) <= 0)
					break;
				ssize_t r = recv(ufd, back, sizeof back, 0);
				if (r == len && memcmp(back, msg, (size_t)len) == 0) {
					udp[uok++] = mono_ms() - t0;
					break;
				}
				if (r < 0)
					break; /* refused: no echo there */
			}
			sleep_ms(interval);
		}
	}
	if (ufd >= 0)
		close(ufd);
	qsort(tcp, (size_t)ok, sizeof *tcp, cmp_double);
	qsort(udp, (size_t)uok, sizeof *udp, cmp_double);
	printf("%.3f %.3f %.3f %.3f %d %.3f\n", ok ? tcp[0] : -1, ok ? tcp[ok / 2] : -1, uok ? udp[0] : -1,
	       uok ? udp[uok / 2] : -1, udp_only ? uok : ok < uok ? ok : uok, uok ? udp[uok - 1] : -1);
	free(tcp);
	free(udp);
	return (udp_only ? uok : ok) > 0 ? 0 : 1;
}

/* ---- fetch ---- */
struct dns_result {
	int rcode;
	char edge[INET6_ADDRSTRLEN];
	double ms;
	const char *err;
};

static void dns_ask(const struct addr *resolver, const char *name, int timeout, struct dns_result *res)
{
	ldns_rdf *qname = ldns_dname_new_frm_str(name);
	ldns_pkt *q = NULL, *ans = NULL;
	uint8_t *wire = NULL, buf[4096];
	size_t wlen = 0;
	int fd = -1;

	res->rcode = -1;
	strcpy(res->edge, "-");
	res->err = NULL;
	double t0 = mono_ms();
	if (!qname || !(q = ldns_pkt_query_new(qname, LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, LDNS_RD))) {
		res->err = "bad-name";
		goto out;
	}
	qname = NULL; /* owned by q now */
	ldns_pkt_set_random_id(q);
	if (ldns_pkt2wire(&wire, q, &wlen) != LDNS_STATUS_OK) {
		res->err = "encode";
		goto out;
	}
	fd = socket(resolver->ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)&resolver->ss, resolver->len) < 0 ||
	    send(fd, wire, wlen, 0) != (ssize_t)wlen) {
		res->err = "dns-send";
		goto out;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = timeout - (int)(mono_ms() - t0);
		if (left <= 0 || poll(&p, 1, left) <= 0) {
			res->err = "dns-timeout";
			goto out;
		}
		ssize_t r = recv(fd, buf, sizeof buf, 0);
		if (r < 0) {
			res->err = "dns-refused";
			goto out;
		}
		if (r < 12 || ((buf[0] << 8) | buf[1]) != ldns_pkt_id(q))
			continue; /* not our answer: keep waiting */
		if (ldns_wire2pkt(&ans, buf, (size_t)r) != LDNS_STATUS_OK) {
			res->err = "dns-malformed";
			goto out;
		}
		break;
	}
	res->ms = mono_ms() - t0;
	res->rcode = ldns_pkt_get_rcode(ans);
	ldns_rr_list *an = ldns_pkt_answer(ans);
	for (size_t i = 0; an && i < ldns_rr_list_rr_count(an); i++) {
		ldns_rr *rr = ldns_rr_list_rr(an, i);
		if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_A && ldns_rr_rd_count(rr) == 1 &&
		    ldns_rdf_size(ldns_rr_rdf(rr, 0)) == 4) {
			inet_ntop(AF_INET, ldns_rdf_data(ldns_rr_rdf(rr, 0)), res->edge, sizeof res->edge);
			break;
		}
	}
	if (strcmp(res->edge, "-") == 0)
		res->err = "no-address";
out:
	if (!res->err)
		res->err = "-";
	if (fd >= 0)
		close(fd);
	free(wire);
	ldns_pkt_free(q);
	ldns_pkt_free(ans);
	ldns_rdf_deep_free(qname);
}

struct http_result {
	int status;
	double connect_ms, total_ms;
	long bytes;
	char cache[16];
	const char *err;
};

/* GET with Connection: close; reads to EOF.  The body is counted, not kept. */
static void http_get(const struct addr *a, const char *host, const char *path, int timeout,
                     struct http_result *res)
{
	char req[1024], head[4096];
	size_t hlen = 0;
	int fd, header_done = 0;
	double t0 = mono_ms();

	res->status = 0;
	res->bytes = 0;
	res->connect_ms = -1;
	strcpy(res->cache, "-");
	res->err = "-";
	fd = tcp_connect(a, timeout, &res->connect_ms, &res->err);
	if (fd < 0)
		goto done;
	int n = snprintf(req, sizeof req,
	                 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tbprobe\r\nConnection: close\r\n\r\n", path,
	                 host);
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		res->err = "send";
		goto done;
	}
	for (;;) {
		char b[16384];
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = timeout - (int)(mono_ms() - t0);
		if (left <= 0 || poll(&p, 1, left) <= 0) {
			res->err = "http-timeout";
			goto done;
		}
		ssize_t r = recv(fd, b, sizeof b, 0);
		if (r < 0) {
			res->err = errno == ECONNRESET ? "reset" : "recv";
			goto done;
		}
		if (r == 0)
			break;
		if (!header_done) {
			size_t take = (size_t)r < sizeof head - 1 - hlen ? (size_t)r : sizeof head - 1 - hlen;
			memcpy(head + hlen, b, take);
			hlen += take;
			head[hlen] = '\0';
			char *end = strstr(head, "\r\n\r\n");
			if (end) {
				header_done = 1;
				res->bytes += (long)(hlen - (size_t)(end + 4 - head)) + (long)((size_t)r - take);
			} else if (hlen == sizeof head - 1) {
				res->err = "header-too-long";
				goto done;
			}
		} else {
			res->bytes += r;
		}
	}
	if (!header_done || sscanf(head, "HTTP/1.%*d %d", &res->status) != 1) {
		res->err = "bad-response";
		goto done;
	}
	/* RFC 9211: "Cache-Status: minicdn; hit" or "...; fwd=miss" */
	for (char *line = strstr(head, "\r\n"); line && line[2] != '\r'; line = strstr(line + 2, "\r\n")) {
		if (strncasecmp(line + 2, "Cache-Status:", 13) == 0) {
			char *eol = strstr(line + 2, "\r\n");
			size_t l = eol ? (size_t)(eol - line) : strlen(line);
			char v[512];
			snprintf(v, sizeof v, "%.*s", (int)(l < sizeof v ? l : sizeof v - 1), line + 2);
			strcpy(res->cache, strcasestr(v, "hit") ? "hit" : strcasestr(v, "fwd=") ? "miss" : "other");
			break;
		}
	}
done:
	res->total_ms = mono_ms() - t0;
	if (fd >= 0)
		close(fd);
}

/* Zipf sampling by inverse CDF: O(log n) per draw after an O(n) table. */
static double *zipf_cdf;
static int zipf_n;

static void zipf_init(int n, double alpha)
{
	double sum = 0;
	zipf_n = n;
	zipf_cdf = calloc((size_t)n, sizeof *zipf_cdf);
	if (!zipf_cdf)
		abort();
	for (int k = 0; k < n; k++)
		zipf_cdf[k] = (sum += 1.0 / pow(k + 1, alpha));
	for (int k = 0; k < n; k++)
		zipf_cdf[k] /= sum;
}

static int zipf_draw(void)
{
	double u = drand48();
	int lo = 0, hi = zipf_n - 1;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (zipf_cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int cmd_fetch(int argc, char **argv)
{
	const char *resolver_s = NULL, *name = NULL, *path = "/", *label = "-";
	int count = 1, interval = 0, timeout = 2000, port = 80, c, objects = 0;
	double duration = 0, alpha = 1.0;
	long seed = 1;
	struct addr resolver;
	optind = 1;
	while ((c = getopt(argc, argv, "R:N:u:c:i:d:L:t:p:z:a:s:")) != -1) {
		switch (c) {
		case 'R': resolver_s = optarg; break;
		case 'N': name = optarg; break;
		case 'u': path = optarg; break;
		case 'c': count = atoi(optarg); break;
		case 'i': interval = atoi(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'L': label = optarg; break;
		case 't': timeout = atoi(optarg); break;
		case 'p': port = atoi(optarg); break;
		case 'z': objects = atoi(optarg); break;
		case 'a': alpha = atof(optarg); break;
		case 's': seed = atol(optarg); break;
		default: return 2;
		}
	}
	if (objects < 0 || objects > 10000000 || alpha <= 0 ||
	    (objects > 0 && (!strstr(path, "%d") || strchr(path, '%') != strstr(path, "%d") ||
	                     strchr(strstr(path, "%d") + 2, '%')))) {
		fprintf(stderr, "tbprobe fetch: -z needs a PATH with exactly one %%d, OBJECTS 1..10000000, ALPHA > 0\n");
		return 2;
	}
	if (objects > 0) {
		zipf_init(objects, alpha);
		srand48(seed);
	}
	if (!resolver_s || !name || optind != argc || count < 1 || port < 1 || port > 65535 ||
	    parse_addr(resolver_s, 53, &resolver) < 0) {
		fprintf(stderr, "usage: tbprobe fetch -R RESOLVER -N NAME -u PATH [-c N] [-i MS] [-d S] [-L LABEL]"
		                " [-t MS] [-p PORT]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	double start = mono_ms();
	for (int i = 0;; i++) {
		if (duration > 0 ? mono_ms() - start >= duration * 1000 : i >= count)
			break;
		double t0 = mono_ms();
		long long ts = epoch_ms();
		struct dns_result d;
		struct http_result h = {.status = 0, .connect_ms = -1, .total_ms = -1, .bytes = 0, .cache = "-"};
		char pbuf[1024];
		if (objects > 0)
			snprintf(pbuf, sizeof pbuf, path, zipf_draw());
		else
			snprintf(pbuf, sizeof pbuf, "%s", path);
		dns_ask(&resolver, name, timeout, &d);
		h.err = d.err;
		if (strcmp(d.edge, "-") != 0) {
			struct addr ea;
			char err[64];
			addr_parse_ip(d.edge, port, &ea, err, sizeof err);
			http_get(&ea, name, pbuf, timeout, &h);
		}
		printf("%lld,%s,%.3f,%d,%s,%d,%.3f,%.3f,%ld,%s,%s", ts, label, d.rcode >= 0 ? d.ms : -1.0, d.rcode,
		       d.edge, h.status, h.connect_ms, h.total_ms, h.bytes, h.cache, h.err);
		if (objects > 0)
			printf(",%s", pbuf);
		printf("\n");
		if (interval > 0)
			sleep_ms(interval - (mono_ms() - t0));
	}
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "rtt") == 0)
		return cmd_rtt(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "fetch") == 0)
		return cmd_fetch(argc - 1, argv + 1);
	fprintf(stderr, "usage: tbprobe serve IP:PORT | rtt IP:PORT [-n N] | fetch -R RESOLVER -N NAME -u PATH ...\n"
	                "  (see the comment at the top of scripts/testbed/tbprobe.c)\n");
	return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
