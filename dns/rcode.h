/* rcode.h -- DNS response codes (RFC 1035, RFC 6891 for BADVERS) and their
 * names, as the stats, the metrics and the explain API print them. */
#ifndef MINICDN_DNS_RCODE_H
#define MINICDN_DNS_RCODE_H

enum rcode {
	RCODE_NOERROR = 0,
	RCODE_FORMERR = 1,
	RCODE_SERVFAIL = 2,
	RCODE_NXDOMAIN = 3,
	RCODE_NOTIMP = 4,
	RCODE_REFUSED = 5,
	RCODE_BADVERS = 16, /* extended: the upper 8 bits travel in OPT */
};

/* "NOERROR", ..., "BADVERS"; NULL for a code the server never sends. */
const char *rcode_name(unsigned rcode);

#endif
