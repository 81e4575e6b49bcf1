/* httpd_strict.h -- common/reqcheck.h over a libmicrohttpd request, and the
 * 400/501 + Connection: close that refuses it.
 *
 * libmicrohttpd 0.9.75 (Debian 12) lets through, even with
 * MHD_OPTION_STRICT_FOR_CLIENT: Content-Length with Transfer-Encoding (it
 * uses chunked and reads the rest as a second request), two Host headers,
 * whitespace before the colon (kept in the name), control bytes in values,
 * an unknown transfer coding (it then waits for the connection to close),
 * obs-fold (the continuation is glued onto the previous header's *name*:
 * "X-A: a" + " b" becomes "X-Ab: a"), and a NUL in the request-target (the
 * target is cut there).  The last two leave no trace in the parsed values,
 * only in where MHD put them: a folded header's name is copied out of the
 * read buffer, and a cut target is not followed by its version.  So these
 * checks read MHD 0.9.75's layout; a later MHD (0.9.77+, which handles
 * obs-fold itself) has them compiled out. */
#ifndef MINICDN_HTTPD_STRICT_H
#define MINICDN_HTTPD_STRICT_H

#include "common/reqcheck.h"
#include <microhttpd.h>

/* In an MHD_OPTION_URI_LOG_CALLBACK: checks the raw target (uri, before MHD
 * decodes it).  Keep the result for httpd_strict_check. */
enum reqcheck_reason httpd_strict_uri(const char *uri);
/* In the access handler's first call (headers complete): the whole head.
 * uri_why: what httpd_strict_uri said. */
enum reqcheck_reason httpd_strict_check(struct MHD_Connection *c, const char *method,
                                        const char *version, enum reqcheck_reason uri_why);
/* Queues the refusal for why: 400 (501 for an unknown transfer coding),
 * a short text body, Connection: close (MHD then closes after sending and
 * reads no body). */
enum MHD_Result httpd_strict_reject(struct MHD_Connection *c, enum reqcheck_reason why);

#endif
