/* rcode.c -- the one table of DNS response code names */
#include "dns/rcode.h"

#include <stddef.h>

const char *rcode_name(unsigned rcode)
{
	static const char *const names[] = {
		[RCODE_NOERROR] = "NOERROR", [RCODE_FORMERR] = "FORMERR", [RCODE_SERVFAIL] = "SERVFAIL",
		[RCODE_NXDOMAIN] = "NXDOMAIN", [RCODE_NOTIMP] = "NOTIMP", [RCODE_REFUSED] = "REFUSED",
		[RCODE_BADVERS] = "BADVERS",
	};
	return rcode < sizeof names / sizeof names[0] ? names[rcode] : NULL;
}
