/* script_io.c -- a script's response: one block for all its headers */
#include "edge/script/script_io.h"
#include "common/xmalloc.h"

#include <stdlib.h>
#include <string.h>

void script_resp_free(struct script_resp *r)
{
	free(r->headers);
	free(r->body);
	r->headers = NULL;
	r->nheaders = r->hmax = 0;
	r->hstr = r->hend = NULL;
	r->body = NULL;
	r->body_len = 0;
}

void script_resp_headers_init(struct script_resp *r, size_t nmax, size_t bytes)
{
	size_t slots = nmax * sizeof *r->headers;
	size_t strings = bytes + 2 * nmax; /* with the terminators */
	r->headers = xmalloc(slots + strings + 1);
	r->nheaders = 0;
	r->hmax = nmax;
	r->hstr = (char *)r->headers + slots;
	r->hend = r->hstr + strings;
}

int script_resp_header_add(struct script_resp *r, const char *name, size_t nl, const char *val,
                           size_t vl)
{
	if (r->nheaders >= r->hmax || (size_t)(r->hend - r->hstr) < nl + vl + 2)
		return -1;
	struct script_hdr *h = &r->headers[r->nheaders++];
	h->name = memcpy(r->hstr, name, nl);
	h->name[nl] = '\0';
	h->value = memcpy(h->name + nl + 1, val, vl);
	h->value[vl] = '\0';
	r->hstr = h->value + vl + 1;
	return 0;
}
