/* tbresolver.c -- the testbed's resolver: a forwarding stub with or without ECS.
 *
 *   tbresolver -l IP:PORT -u AUTH_IP:PORT [-e PREFIX_LEN] [-q]
 *
 * Stands in for a client's recursive resolver (the ISP's or a public one).  It
 * receives a client's query on -l, sends the same question to the authoritative
 * server -u from its own address -- which is what the authoritative server sees
 * as "the resolver" -- and relays the answer back with the client's ID.
 *   -e 0   (default) no EDNS Client Subnet: the server only knows where the
 *          resolver is, as with a resolver that does not send ECS;
 *   -e N   adds ECS (RFC 7871) with the client's source address truncated to
 *          N bits (24 is what public resolvers send for IPv4), as a resolver that
 *          sends ECS does.
 * Any ECS option the client sent is not forwarded: the resolver decides.
 *
 * What it does not do, on purpose: cache.  Every client query reaches the
 * authoritative server, so an experiment measures the server's current choice;
 * a caching resolver would add up to the answer's TTL to failover times, and
 * docs/testbed.md says so.  Iteration (root, TLD) is not needed: the testbed's
 * only zone is served by one server.
 *
 * One thread, poll over two UDP sockets; pending queries live in a table
 * indexed by the upstream query ID and expire after 5 s. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/log.h"

#define PENDING_TTL_S 5

struct pending {
	int used;
	time_t sent;
	uint16_t client_id;
	struct sockaddr_storage client;
	socklen_t client_len;
};

static struct pending pending[65536];
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* ECS option (code 8) for an IPv4 client: family 1, source prefix, scope 0,
 * then only the significant bytes of the address, host bits zeroed (RFC 7871 6). */
static ldns_rdf *ecs_option(const struct sockaddr_in *sin, int prefix)
{
	uint8_t opt[4 + 4 + 4];
	const uint8_t *a = (const uint8_t *)&sin->sin_addr;
	int nbytes = (prefix + 7) / 8;
	opt[0] = 0;
	opt[1] = 8;
	opt[2] = 0;
	opt[3] = (uint8_t)(4 + nbytes);
	opt[4] = 0;
	opt[5] = 1;
	opt[6] = (uint8_t)prefix;
	opt[7] = 0;
	for (int i = 0; i < nbytes; i++) {
		uint8_t b = a[i];
		int bits = prefix - 8 * i;
		if (bits < 8)
			b &= (uint8_t)(0xff << (8 - bits));
		opt[8 + i] = b;
	}
	return ldns_rdf_new_frm_data(LDNS_RDF_TYPE_UNKNOWN, (size_t)(8 + nbytes), opt);
}

int main(int argc, char **argv)
{
	const char *listen_s = NULL, *up_s = NULL;
	int ecs = 0, qlog = 0, c, lfd = -1, ufd = -1;
	struct addr la, ua, ubind;
	char err[128];
	uint16_t next_id;

	log_init("tbresolver", LOG_LVL_INFO);
	while ((c = getopt(argc, argv, "l:u:e:qh")) != -1) {
		switch (c) {
		case 'l': listen_s = optarg; break;
		case 'u': up_s = optarg; break;
		case 'e': ecs = atoi(optarg); break;
		case 'q': qlog = 1; break;
		default:
			fprintf(stderr, "usage: tbresolver -l IP:PORT -u AUTH_IP:PORT [-e PREFIX_LEN] [-q]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (!listen_s || !up_s || ecs < 0 || ecs > 32) {
		fprintf(stderr, "usage: tbresolver -l IP:PORT -u AUTH_IP:PORT [-e PREFIX_LEN 0..32] [-q]\n");
		return 2;
	}
	if (addr_parse(listen_s, &la, err, sizeof err) < 0 || addr_parse(up_s, &ua, err, sizeof err) < 0 ||
	    la.ss.ss_family != AF_INET) {
		fprintf(stderr, "tbresolver: bad address: %s\n", err);
		return 2;
	}
	ubind = la;
	((struct sockaddr_in *)&ubind.ss)->sin_port = 0; /* upstream queries leave from our address */
	lfd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ufd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || ufd < 0 || bind(lfd, (struct sockaddr *)&la.ss, la.len) < 0 ||
	    bind(ufd, (struct sockaddr *)&ubind.ss, ubind.len) < 0 ||
	    connect(ufd, (struct sockaddr *)&ua.ss, ua.len) < 0) {
		log_error("resolver", "sockets: %s", strerror(errno));
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	next_id = (uint16_t)random();
	log_info("resolver", "listening on %s, upstream %s, ECS %s%d", listen_s, up_s, ecs ? "/" : "off ", ecs);

	while (!stop) {
		struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = ufd, .events = POLLIN}};
		uint8_t buf[4096];
		if (poll(p, 2, 1000) < 0) {
			if (errno == EINTR)
				continue;
			log_error("resolver", "poll: %s", strerror(errno));
			break;
		}
		if (p[0].revents & POLLIN) {
			struct sockaddr_storage from;
			socklen_t fl = sizeof from;
			ssize_t n = recvfrom(lfd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
			ldns_pkt *q = NULL, *fw = NULL;
			uint8_t *wire = NULL;
			size_t wlen;
			if (n < 12 || ldns_wire2pkt(&q, buf, (size_t)n) != LDNS_STATUS_OK || ldns_pkt_qr(q) ||
			    ldns_rr_list_rr_count(ldns_pkt_question(q)) != 1) {
				ldns_pkt_free(q);
				continue; /* not a query we can forward: drop it */
			}
			/* A fresh upstream query: same question, our ID, our EDNS. */
			fw = ldns_pkt_new();
			ldns_pkt_push_rr(fw, LDNS_SECTION_QUESTION, ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(q), 0)));
			ldns_pkt_set_rd(fw, true);
			ldns_pkt_set_opcode(fw, LDNS_PACKET_QUERY);
			ldns_pkt_set_edns_udp_size(fw, 1232);
			if (ecs > 0 && from.ss_family == AF_INET)
				ldns_pkt_set_edns_data(fw, ecs_option((struct sockaddr_in *)&from, ecs));
			uint16_t id = 0;
			time_t now = time(NULL);
			int slot_found = 0;
			for (int tries = 0; tries < 65536; tries++) {
				id = next_id++;
				if (!pending[id].used || now - pending[id].sent > PENDING_TTL_S) {
					slot_found = 1;
					break;
				}
			}
			if (slot_found) {
				ldns_pkt_set_id(fw, id);
				if (ldns_pkt2wire(&wire, fw, &wlen) == LDNS_STATUS_OK && send(ufd, wire, wlen, 0) == (ssize_t)wlen) {
					struct pending *pe = &pending[id];
					pe->used = 1;
					pe->sent = now;
					pe->client_id = ldns_pkt_id(q);
					pe->client = from;
					pe->client_len = fl;
					if (qlog) {
						char who[ADDR_STRLEN];
						char *qs = ldns_rr2str(ldns_rr_list_rr(ldns_pkt_question(q), 0));
						addr_format_ip((struct sockaddr *)&from, who, sizeof who);
						log_info("resolver", "client %s ecs %d: %s", who, ecs, qs ? qs : "?");
						free(qs);
					}
				}
			}
			free(wire);
			ldns_pkt_free(fw);
			ldns_pkt_free(q);
		}
		if (p[1].revents & POLLIN) {
			ssize_t n = recv(ufd, buf, sizeof buf, 0);
			if (n >= 12) {
				uint16_t id = (uint16_t)((buf[0] << 8) | buf[1]);
				struct pending *pe = &pending[id];
				if (pe->used && (buf[2] & 0x80)) {
					buf[0] = (uint8_t)(pe->client_id >> 8);
					buf[1] = (uint8_t)pe->client_id;
					sendto(lfd, buf, (size_t)n, 0, (struct sockaddr *)&pe->client, pe->client_len);
					pe->used = 0;
				}
			}
		}
	}
	close(lfd);
	close(ufd);
	return 0;
}
