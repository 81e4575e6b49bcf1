/* encoding.h -- reading Accept-Encoding (RFC 9110 section 12.5.3): the
 * origin decides whether to send gzip with it, and the edge uses it to
 * normalise that header for its cache keys and fills, so that the many
 * spellings browsers send select one of two stored representations. */
#ifndef MINICDN_ENCODING_H
#define MINICDN_ENCODING_H

#include <stdbool.h>

/* Whether an Accept-Encoding value accepts gzip: "gzip" (or "x-gzip", or
 * "*") listed with a q above 0; an explicit gzip entry wins over "*".  An
 * absent header (NULL) does not. */
bool encoding_accepts_gzip(const char *accept_encoding);

#endif
