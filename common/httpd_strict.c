/* httpd_strict.c -- strict request checks over libmicrohttpd's parse */
#include "common/httpd_strict.h"

#include <stdio.h>
#include <string.h>

/* Header lines looked at; a head with more is refused (MHD's buffer bounds
 * it anyway: 32 KiB by default). */
#define MAX_LINES 128

/* What MHD 0.9.75's parse looks like: a head read in place, ':' and line
 * ends overwritten with NULs, so a header's value follows its name within
 * a few bytes of optional whitespace. */
#define MHD_LAYOUT_KNOWN (MHD_VERSION <= 0x00097600)

enum reqcheck_reason httpd_strict_uri(const char *uri)
{
	size_t len = strlen(uri);
	enum reqcheck_reason why = reqcheck_target(uri, len);
	if (why)
		return why;
#if MHD_LAYOUT_KNOWN
	/* The request line was split in place: "GET\0/target\0HTTP/1.1".  A NUL
	 * inside the target ends the string early; what follows it is then not
	 * the version. */
	if (strncmp(uri + len + 1, "HTTP/", 5) != 0)
		return REQCHECK_TARGET;
#endif
	return REQCHECK_OK;
}

struct collect {
	struct reqcheck_hdr h[MAX_LINES];
	size_t n;
	bool overflow;
};

static enum MHD_Result collect_one(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct collect *col = cls;
	if (col->n == MAX_LINES) {
		col->overflow = true;
		return MHD_NO;
	}
	struct reqcheck_hdr *h = &col->h[col->n++];
	h->name = key;
	h->name_len = strlen(key);
	h->value = value ? value : "";
	h->value_len = strlen(h->value);
	h->folded = false;
#if MHD_LAYOUT_KNOWN
	/* In place, "Name\0 value": the value starts 1 + optional-whitespace
	 * bytes after the name's end.  A name somewhere else was rebuilt from a
	 * continuation line. */
	if (value) {
		const char *end = key + h->name_len + 1;
		if (value < end || value - end > 64) {
			h->folded = true;
		} else {
			for (const char *p = end; p < value; p++)
				if (*p != ' ' && *p != '\t')
					h->folded = true;
		}
	}
#endif
	return MHD_YES;
}

enum reqcheck_reason httpd_strict_check(struct MHD_Connection *c, const char *method,
                                        const char *version, enum reqcheck_reason uri_why)
{
	if (uri_why)
		return uri_why;
	struct collect col;
	col.n = 0;
	col.overflow = false;
	MHD_get_connection_values(c, MHD_HEADER_KIND, collect_one, &col);
	if (col.overflow)
		return REQCHECK_NAME;
	/* The target was checked raw by httpd_strict_uri; "/" stands in here. */
	struct reqcheck_head r = {
		.method = method, .target = "/", .target_len = 1, .version = version,
		.h = col.h, .nh = col.n,
	};
	return reqcheck_head(&r);
}

enum MHD_Result httpd_strict_reject(struct MHD_Connection *c, enum reqcheck_reason why)
{
	char body[64];
	unsigned status = reqcheck_status(why);
	int n = snprintf(body, sizeof body, "%u bad request (%s)\n", status, reqcheck_name(why));
	struct MHD_Response *r = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}
