/* addr.c -- socket addresses and CIDR prefixes */
#include "common/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int addr_parse_ip(const char *s, int port, struct addr *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		out->len = sizeof *sin;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		out->len = sizeof *sin6;
		return 0;
	}
	snprintf(err, errlen, "'%s' is not an IPv4 or IPv6 address", s);
	return -1;
}

int addr_parse(const char *s, struct addr *out, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon;
	size_t hlen;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':') {
			snprintf(err, errlen, "'%s': expected [ipv6]:port", s);
			return -1;
		}
		hlen = (size_t)(end - s - 1);
		s++;
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon) {
			snprintf(err, errlen, "'%s': expected ip:port (IPv6 as [ip]:port)", s);
			return -1;
		}
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof host) {
		snprintf(err, errlen, "'%s': bad address", s);
		return -1;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	char *endp;
	errno = 0;
	long port = strtol(colon + 1, &endp, 10);
	if (colon[1] == '\0' || *endp != '\0' || errno || port < 1 || port > 65535) {
		snprintf(err, errlen, "'%s': port must be 1-65535", colon + 1);
		return -1;
	}
	return addr_parse_ip(host, (int)port, out, err, errlen);
}

const char *addr_format_ip(const struct sockaddr *sa, char *out, size_t outlen)
{
	const void *src = sa->sa_family == AF_INET6
		? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
		: (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
	if (!inet_ntop(sa->sa_family, src, out, (socklen_t)outlen))
		snprintf(out, outlen, "?");
	return out;
}

int addr_port(const struct addr *a)
{
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
}

const char *addr_format(const struct addr *a, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];
	addr_format_ip((const struct sockaddr *)&a->ss, ip, sizeof ip);
	if (a->ss.ss_family == AF_INET6)
		snprintf(out, outlen, "[%s]:%d", ip, addr_port(a));
	else
		snprintf(out, outlen, "%s:%d", ip, addr_port(a));
	return out;
}

int cidr_parse(const char *s, struct cidr *out, char *err, size_t errlen)
{
	char ip[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t iplen = slash ? (size_t)(slash - s) : strlen(s);
	memset(out, 0, sizeof *out);
	if (iplen == 0 || iplen >= sizeof ip) {
		snprintf(err, errlen, "'%s': bad prefix", s);
		return -1;
	}
	memcpy(ip, s, iplen);
	ip[iplen] = '\0';
	int maxlen;
	if (inet_pton(AF_INET, ip, out->bytes) == 1) {
		out->family = AF_INET;
		maxlen = 32;
	} else if (inet_pton(AF_INET6, ip, out->bytes) == 1) {
		out->family = AF_INET6;
		maxlen = 128;
	} else {
		snprintf(err, errlen, "'%s': not an IPv4 or IPv6 prefix", s);
		return -1;
	}
	long len = maxlen;
	if (slash) {
		char *endp;
		errno = 0;
		len = strtol(slash + 1, &endp, 10);
		if (slash[1] == '\0' || *endp != '\0' || errno || len < 0 || len > maxlen) {
			snprintf(err, errlen, "'%s': prefix length must be 0-%d", s, maxlen);
			return -1;
		}
	}
	out->prefix_len = (uint8_t)len;
	for (int bit = (int)len; bit < maxlen; bit++) {
		if (out->bytes[bit / 8] & (0x80 >> (bit % 8))) {
			snprintf(err, errlen, "'%s': host bits set beyond /%ld", s, len);
			return -1;
		}
	}
	return 0;
}

const char *cidr_format(const struct cidr *c, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];
	if (!inet_ntop(c->family, c->bytes, ip, sizeof ip))
		snprintf(ip, sizeof ip, "?");
	snprintf(out, outlen, "%s/%u", ip, c->prefix_len);
	return out;
}

int cidr_contains(const struct cidr *c, int family, const uint8_t *bytes)
{
	if (family != c->family)
		return 0;
	int full = c->prefix_len / 8, rest = c->prefix_len % 8;
	if (memcmp(c->bytes, bytes, (size_t)full) != 0)
		return 0;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		if ((c->bytes[full] & mask) != (bytes[full] & mask))
			return 0;
	}
	return 1;
}
