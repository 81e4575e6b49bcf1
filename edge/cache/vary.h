/* vary.h -- Vary (RFC 9111 4.1): which responses a request selects.
 *
 * Pure string work.  A cache may normalise selecting header values known to
 * be equivalent; these functions give the form that goes into variant keys,
 * so that spellings of one preference share one stored variant. */
#ifndef MINICDN_VARY_H
#define MINICDN_VARY_H

#include "common/buf.h"
#include <stdbool.h>

/* True if the Vary value (NULL: absent; repeated lines joined with ", ")
 * has a member "*": the response cannot be selected by a later request. */
bool vary_has_star(const char *vary);

/* Appends the normalised form of request header name's value (NULL:
 * absent, appends nothing) to out:
 * - Accept-Encoding: "gzip" if it accepts gzip, else nothing (the two
 *   representations the origin makes);
 * - Accept, Accept-Charset, Accept-Language: members trimmed, ranges and
 *   parameter names lower-cased, q written canonically ("q=0.50" is
 *   "q=0.5", "q=1" is dropped), empty members dropped, members ordered by
 *   q (and by text within one q for Accept and Accept-Charset, where the
 *   order carries no meaning; Accept-Language keeps its order within one q);
 * - other fields with list syntax (RFC 9110 ones such as Cache-Control,
 *   If-None-Match, TE, and Forwarded, Prefer): members trimmed, empty ones
 *   dropped, joined by ",";
 * - any other field: the value without surrounding whitespace.
 * Quoted strings are kept as they are.  name is matched case-insensitively. */
void vary_normalize(const char *name, const char *value, struct buf *out);

#endif
