/* hdrlist.c -- iterate and look up packed "name\0value\0" header lists */
#include "common/hdrlist.h"

#include <string.h>
#include <strings.h>

void hdrlist_init(struct hdrlist_iter *it, const struct buf *list)
{
	it->p = list->data;
	it->end = list->data ? list->data + list->len : NULL;
}

bool hdrlist_next(struct hdrlist_iter *it, const char **name, const char **value)
{
	if (!it->p || it->p >= it->end)
		return false;
	/* memchr, not strlen: the walk never leaves the list's len bytes. */
	const char *nz = memchr(it->p, '\0', (size_t)(it->end - it->p));
	const char *vz = nz ? memchr(nz + 1, '\0', (size_t)(it->end - nz - 1)) : NULL;
	if (!vz) {
		it->p = it->end;
		return false;
	}
	*name = it->p;
	*value = nz + 1;
	it->p = vz + 1;
	return true;
}

const char *hdrlist_get(const struct buf *list, const char *name)
{
	struct hdrlist_iter it;
	const char *n, *v;
	hdrlist_init(&it, list);
	while (hdrlist_next(&it, &n, &v))
		if (!strcasecmp(n, name))
			return v;
	return NULL;
}

const char *hdrlist_get_all(const struct buf *list, const char *name, struct buf *out)
{
	struct hdrlist_iter it;
	const char *n, *v;
	bool found = false;
	buf_reset(out);
	hdrlist_init(&it, list);
	while (hdrlist_next(&it, &n, &v)) {
		if (strcasecmp(n, name))
			continue;
		if (found)
			buf_append(out, ", ", 2);
		buf_puts(out, v);
		found = true;
	}
	return found ? out->data : NULL; /* buf_puts allocated even for an empty value */
}
