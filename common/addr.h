/* addr.h -- socket addresses and CIDR prefixes: parsing and printing.
 *
 * Accepted forms: "1.2.3.4:80", "[::1]:80", "host-less :80" is not accepted
 * (we always bind a named address).  CIDR: "10.0.0.0/8", "2001:db8::/32";
 * a bare address means a host prefix (/32 or /128). */
#ifndef MINICDN_ADDR_H
#define MINICDN_ADDR_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

struct cidr {
	int family;        /* AF_INET or AF_INET6 */
	uint8_t bytes[16]; /* network order; bits beyond prefix_len are zero */
	uint8_t prefix_len;
};

#define ADDR_STRLEN 64 /* enough for "[v6]:port" */

/* Parses "ip:port" / "[ip6]:port".  Returns 0, or -1 with a reason in err. */
int addr_parse(const char *s, struct addr *out, char *err, size_t errlen);
/* Parses an IP address with no port. */
int addr_parse_ip(const char *s, int port, struct addr *out, char *err, size_t errlen);
/* Formats as "ip:port" / "[ip6]:port" into out (ADDR_STRLEN bytes). */
const char *addr_format(const struct addr *a, char *out, size_t outlen);
/* Formats only the IP. */
const char *addr_format_ip(const struct sockaddr *sa, char *out, size_t outlen);
int addr_port(const struct addr *a);

/* Parses a CIDR prefix; host bits set beyond the prefix are an error
 * ("10.0.0.1/8" is rejected: it is almost always a typo). */
int cidr_parse(const char *s, struct cidr *out, char *err, size_t errlen);
const char *cidr_format(const struct cidr *c, char *out, size_t outlen);
/* True if the address (family, bytes) lies inside the prefix. */
int cidr_contains(const struct cidr *c, int family, const uint8_t *bytes);

#endif
