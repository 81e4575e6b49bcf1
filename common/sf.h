/* sf.h -- Structured Field dictionaries (RFC 8941 section 4.2.2).
 *
 * A validating parser with no allocation: the whole field value is checked
 * against the grammar before the caller sees any member, so a field that
 * fails to parse can be ignored as a whole (as RFC 9213 asks of
 * CDN-Cache-Control). */
#ifndef MINICDN_SF_H
#define MINICDN_SF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sf_type { SF_INTEGER, SF_DECIMAL, SF_STRING, SF_TOKEN, SF_BYTES, SF_BOOLEAN, SF_INNER_LIST };

/* One member's value.  Parameters are validated but not reported. */
struct sf_item {
	enum sf_type type;
	int64_t integer;  /* SF_INTEGER; SF_DECIMAL scaled by 1000 */
	bool boolean;     /* SF_BOOLEAN */
	const char *text; /* SF_STRING (escapes left in), SF_TOKEN, SF_BYTES (base64):
	                     borrowed from the field value */
	size_t len;
};

/* Called once per member, in order; a key may repeat (RFC 8941: the last
 * one wins, the caller overwrites).  key is borrowed, not NUL-terminated. */
typedef void (*sf_member_fn)(void *cls, const char *key, size_t klen, const struct sf_item *v);

/* Parses field (len bytes; repeated field lines already joined with ", ")
 * as a Dictionary.  Returns 0 after calling fn for each member, or -1 with
 * no call at all when the value is not a Dictionary (an empty value is one
 * with no members: 0 and no call). */
int sf_parse_dictionary(const char *field, size_t len, sf_member_fn fn, void *cls);

#endif
