/* digest.c -- fingerprint of a loaded DNS configuration */
#include "dns/digest.h"
#include "common/buf.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* Each part is framed (tag, length) so "ab"+"c" and "a"+"bc" differ. */
static void put(crypto_generichash_state *st, const char *tag, const void *p, size_t n)
{
	unsigned char head[40];
	size_t tl = strlen(tag);
	if (tl > 31)
		tl = 31;
	memcpy(head, tag, tl);
	head[tl] = 0;
	for (int i = 0; i < 8; i++)
		head[tl + 1 + i] = (unsigned char)((uint64_t)n >> (8 * i));
	crypto_generichash_update(st, head, tl + 9);
	crypto_generichash_update(st, p, n);
}

static void put_str(crypto_generichash_state *st, const char *tag, const char *s)
{
	put(st, tag, s ? s : "", s ? strlen(s) : 0);
}

static int put_file(crypto_generichash_state *st, const char *tag, const char *path, char *err,
                    size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* Length first, then the bytes in chunks: the frame of put() without
	 * reading the whole (possibly large GeoIP) file into memory. */
	if (fseek(f, 0, SEEK_END) < 0)
		goto fail;
	long len = ftell(f);
	if (len < 0 || fseek(f, 0, SEEK_SET) < 0)
		goto fail;
	put(st, tag, "", 0);
	unsigned char lenb[8], chunk[65536];
	for (int i = 0; i < 8; i++)
		lenb[i] = (unsigned char)((uint64_t)len >> (8 * i));
	crypto_generichash_update(st, lenb, sizeof lenb);
	size_t got;
	while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
		crypto_generichash_update(st, chunk, got);
	if (ferror(f))
		goto fail;
	fclose(f);
	return 0;
fail:
	snprintf(err, errlen, "%s: read failed: %s", path, strerror(errno));
	fclose(f);
	return -1;
}

int digest_config(const struct dns_conf *c, char *out, char *err, size_t errlen)
{
	crypto_generichash_state st;
	unsigned char h[DIGEST_HEX_LEN / 2];
	crypto_generichash_init(&st, NULL, 0, sizeof h);
	for (size_t i = 0; i < c->n_zones; i++) {
		put_str(&st, "zone", c->zones[i].name);
		if (put_file(&st, "zonefile", c->zones[i].file, err, errlen) < 0)
			return -1;
	}
	for (size_t i = 0; i < c->n_dynamic; i++)
		put_str(&st, "dynamic", c->dynamic[i]);
	if (c->map && put_file(&st, "map", c->map, err, errlen) < 0)
		return -1;
	if (c->geoip && put_file(&st, "geoip", c->geoip, err, errlen) < 0)
		return -1;
	struct buf b = BUF_INIT;
	buf_printf(&b, "ttl=%d answers=%d default=%s", c->ttl, c->answers,
	           c->default_region ? c->default_region : "");
	for (size_t i = 0; i < c->n_regions; i++) {
		const struct conf_region *r = &c->regions[i];
		buf_printf(&b, "\nregion %s %.6f %.6f", r->name, r->lat, r->lon);
		for (size_t j = 0; j < r->n_backup; j++)
			buf_printf(&b, " %s", r->backup[j]);
	}
	for (size_t i = 0; i < c->n_edges; i++) {
		const struct conf_edge *e = &c->edges[i];
		buf_printf(&b, "\nedge %s %s %s %s %d %s", e->name, e->region, e->address ? e->address : "-",
		           e->address6 ? e->address6 : "-", e->weight, e->healthz ? e->healthz : "-");
	}
	put(&st, "settings", b.data ? b.data : "", b.len);
	buf_free(&b);
	crypto_generichash_final(&st, h, sizeof h);
	sodium_bin2hex(out, DIGEST_HEX_LEN + 1, h, sizeof h);
	return 0;
}
