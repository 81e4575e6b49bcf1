/* hdrlist.h -- reading packed header lists: a struct buf holding
 * "name\0value\0name\0value\0..." (how the edge keeps response and request
 * headers it got from libcurl or a script).  Nothing here allocates except
 * hdrlist_get_all, which appends to a buf the caller owns. */
#ifndef MINICDN_HDRLIST_H
#define MINICDN_HDRLIST_H

#include "common/buf.h"
#include <stdbool.h>
#include <stddef.h>

struct hdrlist_iter {
	const char *p, *end;
};

/* Starts an iteration over list (borrowed: must not change meanwhile). */
void hdrlist_init(struct hdrlist_iter *it, const struct buf *list);
/* Sets *name and *value to the next field line (both point into the list)
 * and returns true, or returns false at the end.  A trailing name without
 * its terminated value (a damaged list) ends the walk. */
bool hdrlist_next(struct hdrlist_iter *it, const char **name, const char **value);

/* Value of the first field named name (case-insensitive), or NULL.
 * Borrowed from list. */
const char *hdrlist_get(const struct buf *list, const char *name);
/* Every line of field name joined with ", " in order (RFC 9110 section 5.3),
 * appended to out (out is reset first).  Returns out->data, or NULL (out
 * left empty) if the field is absent.  For fields that may be combined:
 * not Set-Cookie. */
const char *hdrlist_get_all(const struct buf *list, const char *name, struct buf *out);

#endif
