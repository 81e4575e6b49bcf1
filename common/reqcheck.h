/* reqcheck.h -- strict checks of an HTTP/1.x request head (RFC 9112 §2-§7)
 * over what an HTTP library parsed: no I/O, no allocation.  Servers run it
 * before acting on a request, so that a head two parsers could read two
 * ways (smuggling) is refused instead of guessed at. */
#ifndef MINICDN_REQCHECK_H
#define MINICDN_REQCHECK_H

#include <stdbool.h>
#include <stddef.h>

/* One header line as parsed; bytes borrowed from the caller. */
struct reqcheck_hdr {
	const char *name, *value;
	size_t name_len, value_len;
	bool folded; /* the parser joined a continuation line (obs-fold) into it */
};

struct reqcheck_head {
	const char *method;           /* NUL-terminated */
	const char *target;           /* raw request-target, target_len bytes (may hold NULs) */
	size_t target_len;
	const char *version;          /* "HTTP/1.1", NUL-terminated */
	const struct reqcheck_hdr *h; /* in arrival order */
	size_t nh;
};

/* Why a head is refused; REQCHECK_OK when it is not. */
enum reqcheck_reason {
	REQCHECK_OK = 0,
	REQCHECK_METHOD,     /* method is not a token */
	REQCHECK_TARGET,     /* NUL, control byte, space or another form than origin/absolute/'*' */
	REQCHECK_VERSION,    /* not HTTP/1.0 or HTTP/1.1 */
	REQCHECK_NAME,       /* header name not a token (whitespace before the colon, ...) */
	REQCHECK_VALUE,      /* NUL, CR, LF or another control byte in a value */
	REQCHECK_FOLD,       /* obs-fold */
	REQCHECK_HOST,       /* HTTP/1.1 without Host, or Host twice */
	REQCHECK_LENGTH,     /* Content-Length not one plain decimal number, or given twice */
	REQCHECK_CL_TE,      /* Content-Length and Transfer-Encoding together */
	REQCHECK_TE,         /* Transfer-Encoding other than "chunked" (501), or on HTTP/1.0 */
	REQCHECK_PARSE,      /* refused by the HTTP library's own parser (for counters) */
	REQCHECK_N
};

/* Checks r.  Returns REQCHECK_OK or the first problem found. */
enum reqcheck_reason reqcheck_head(const struct reqcheck_head *r);
/* Only the request-target (the part a URI callback sees first). */
enum reqcheck_reason reqcheck_target(const char *t, size_t len);
/* Status to answer with: 501 for an unknown transfer coding, 400 otherwise. */
unsigned reqcheck_status(enum reqcheck_reason why);
/* Short name for logs and metric labels ("fold", "cl_te", ...). */
const char *reqcheck_name(enum reqcheck_reason why);

#endif
