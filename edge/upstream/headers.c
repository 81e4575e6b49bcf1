/* headers.c -- hop-by-hop fields and the filter on origin responses */
#include "edge/upstream/headers.h"
#include "common/hdrlist.h"

#include <string.h>
#include <strings.h>

/* headers_hop_by_hop for a name of len bytes. */
static bool hop_by_hop(const char *n, size_t len, const char *connection)
{
	static const struct { const char *name; size_t len; } hop[] = {
		{ "connection", 10 }, { "keep-alive", 10 }, { "proxy-connection", 16 }, { "te", 2 },
		{ "trailer", 7 }, { "transfer-encoding", 17 }, { "upgrade", 7 },
		{ "proxy-authenticate", 18 }, { "proxy-authorization", 19 },
	};
	/* Compared only where the length matches: most names match none. */
	for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
		if (hop[i].len == len && !strcasecmp(n, hop[i].name))
			return true;
	if (connection) {
		size_t nl = len;
		const char *p = connection;
		while (*p) {
			while (*p == ' ' || *p == ',' || *p == '\t')
				p++;
			const char *s = p;
			while (*p && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			if ((size_t)(p - s) == nl && nl && !strncasecmp(s, n, nl))
				return true;
		}
	}
	return false;
}

bool headers_hop_by_hop(const char *n, const char *connection)
{
	return hop_by_hop(n, strlen(n), connection);
}

/* Surrogate-Key is space-separated, Cache-Tag comma-separated. */
static void add_tags(struct buf *tags, const char *v)
{
	const char *p = v;
	while (*p) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		const char *s = p;
		while (*p && *p != ' ' && *p != ',' && *p != '\t')
			p++;
		if (p > s) {
			buf_append(tags, s, (size_t)(p - s));
			buf_append(tags, "", 1);
		}
	}
}

void headers_filter(const struct buf *in, struct buf *out, struct buf *tags)
{
	const char *conn = hdrlist_get(in, "Connection");
	struct hdrlist_iter it;
	const char *n, *v;
	hdrlist_init(&it, in);
	while (hdrlist_next(&it, &n, &v)) {
		/* Lengths first: strcasecmp only where one could match. */
		size_t nl = (size_t)(v - n - 1);
		if (hop_by_hop(n, nl, conn) || (nl == 14 && !strcasecmp(n, "Content-Length")) ||
		    (nl == 3 && !strcasecmp(n, "Age")))
			continue;
		if ((nl == 13 && !strcasecmp(n, "Surrogate-Key")) || (nl == 9 && !strcasecmp(n, "Cache-Tag"))) {
			if (tags)
				add_tags(tags, v);
			continue;
		}
		buf_append(out, n, nl + 1 + strlen(v) + 1); /* name\0value\0 are contiguous */
	}
}

const char *headers_field(const struct buf *hdrs, const char *name, struct buf *tmp)
{
	struct hdrlist_iter it;
	const char *n, *v, *first = NULL;
	hdrlist_init(&it, hdrs);
	while (hdrlist_next(&it, &n, &v)) {
		if (strcasecmp(n, name))
			continue;
		if (first)
			return hdrlist_get_all(hdrs, name, tmp); /* rare: join them */
		first = v;
	}
	return first;
}

void headers_fields(const struct buf *hdrs, size_t n, const char *const *names, const char **out,
                    struct buf *const *tmp)
{
	size_t len[HEADERS_FIELDS_MAX];
	bool many[HEADERS_FIELDS_MAX];
	for (size_t i = 0; i < n; i++) {
		len[i] = strlen(names[i]);
		many[i] = false;
		out[i] = NULL;
	}
	struct hdrlist_iter it;
	const char *k, *v;
	hdrlist_init(&it, hdrs);
	while (hdrlist_next(&it, &k, &v)) {
		size_t kl = (size_t)(v - k - 1); /* the name ends with the \0 before v */
		for (size_t i = 0; i < n; i++) {
			if (len[i] != kl || strcasecmp(k, names[i]))
				continue;
			if (out[i])
				many[i] = true;
			else
				out[i] = v;
			break;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (many[i])
			out[i] = hdrlist_get_all(hdrs, names[i], tmp[i]); /* rare: join them */
}

void headers_combine(const struct buf *in, struct buf *out)
{
	struct buf tmp = BUF_INIT;
	struct hdrlist_iter it;
	const char *n, *v;
	hdrlist_init(&it, in);
	while (hdrlist_next(&it, &n, &v)) {
		if (hdrlist_get(in, n) != v)
			continue; /* a later line: already joined into the first */
		const char *all = headers_field(in, n, &tmp);
		buf_append(out, n, strlen(n) + 1);
		buf_append(out, all, strlen(all) + 1);
	}
	buf_free(&tmp);
}

struct join {
	const char *name, *first;
	int n;
	struct buf *out;
};

static void join_line(void *arg, const char *k, const char *v)
{
	struct join *j = arg;
	if (strcasecmp(k, j->name))
		return;
	if (j->n == 0) {
		j->first = v;
	} else {
		if (j->n == 1)
			buf_puts(j->out, j->first);
		buf_append(j->out, ", ", 2);
		buf_puts(j->out, v);
	}
	j->n++;
}

const char *headers_join_each(headers_each_fn each, void *cls, const char *name, struct buf *tmp)
{
	struct join j = { name, NULL, 0, tmp };
	buf_reset(tmp);
	each(cls, join_line, &j);
	return j.n > 1 ? tmp->data : j.first;
}
