/* entry.c -- encoding of one cached response as a single LMDB value */
#include "edge/cache/entry.h"
#include "edge/cache/freshness.h"

#include <string.h>
#include <strings.h>
#include <zlib.h>

/* A constant: the first bytes of every encoded entry (the format's name). */
static const char entry_magic[4] = { 'M', 'C', 'E', '3' };

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

size_t entry_size(size_t hdrs_len, size_t tags_len, uint64_t body_len)
{
	return ENTRY_HDR_SIZE + hdrs_len + tags_len + (size_t)body_len;
}

#define CRC_OFF 60 /* the checksum's own 4 bytes are not covered */

/* crc32 of the value without its checksum field.  zlib takes uInt lengths:
 * a body can exceed 4 GiB in principle, so feed it in pieces. */
static uint32_t value_crc(const uint8_t *p, size_t len)
{
	uLong crc = crc32(0L, Z_NULL, 0);
	crc = crc32(crc, p, CRC_OFF);
	for (size_t off = CRC_OFF + 4; off < len;) {
		size_t n = len - off > (1u << 30) ? (1u << 30) : len - off;
		crc = crc32(crc, p + off, (uInt)n);
		off += n;
	}
	return (uint32_t)crc;
}

static void patch_meta(void *dst, const struct entry_meta *m)
{
	uint8_t *p = dst;
	memcpy(p, entry_magic, 4);
	put16(p + 4, (uint16_t)m->status);
	put16(p + 6, (uint16_t)m->flags);
	put64(p + 8, (uint64_t)m->request_time);
	put64(p + 16, (uint64_t)m->response_time);
	put64(p + 24, (uint64_t)m->date);
	put64(p + 32, (uint64_t)m->age_value);
	put32(p + 40, (uint32_t)m->lifetime);
	put32(p + 44, (uint32_t)m->swr);
	put32(p + 48, (uint32_t)m->sie);
}

void entry_write(void *dst, const struct entry_meta *m, const char *hdrs, size_t hdrs_len,
                 const char *tags, size_t tags_len, const void *body, uint64_t body_len)
{
	uint8_t *p = dst, *start = dst;
	patch_meta(p, m);
	put32(p + 52, (uint32_t)hdrs_len);
	put32(p + 56, (uint32_t)tags_len);
	put32(p + CRC_OFF, 0);
	put64(p + 64, body_len);
	p += ENTRY_HDR_SIZE;
	if (hdrs_len)
		memcpy(p, hdrs, hdrs_len);
	p += hdrs_len;
	if (tags_len)
		memcpy(p, tags, tags_len);
	p += tags_len;
	if (body_len)
		memcpy(p, body, (size_t)body_len);
	size_t len = entry_size(hdrs_len, tags_len, body_len);
	put32(start + CRC_OFF, value_crc(start, len));
}

int entry_verify(const void *data, size_t len)
{
	const uint8_t *p = data;
	if (len < ENTRY_HDR_SIZE)
		return -1;
	return value_crc(p, len) == get32(p + CRC_OFF) ? 0 : -1;
}

/* A block of NUL-terminated strings must end with a NUL (or be empty). */
static int block_ok(const char *b, size_t len, int pairs)
{
	if (len == 0)
		return 1;
	if (b[len - 1] != '\0')
		return 0;
	if (!pairs)
		return 1;
	/* Count the NULs with memchr (vectorised): this runs on every hit. */
	size_t n = 0;
	for (const char *p = b, *end = b + len; p < end && n <= 2 * ENTRY_MAX_HEADERS; n++) {
		const char *z = memchr(p, '\0', (size_t)(end - p));
		p = z + 1; /* there is one: the block ends with a NUL */
	}
	return n % 2 == 0 && n / 2 <= ENTRY_MAX_HEADERS;
}

int entry_decode(const void *data, size_t len, struct entry_view *out)
{
	const uint8_t *p = data;
	if (len < ENTRY_HDR_SIZE || memcmp(p, entry_magic, 4) != 0)
		return -1;
	struct entry_meta *m = &out->meta;
	m->status = get16(p + 4);
	m->flags = get16(p + 6);
	m->request_time = (int64_t)get64(p + 8);
	m->response_time = (int64_t)get64(p + 16);
	m->date = (int64_t)get64(p + 24);
	m->age_value = (int64_t)get64(p + 32);
	m->lifetime = (int32_t)get32(p + 40);
	m->swr = (int32_t)get32(p + 44);
	m->sie = (int32_t)get32(p + 48);
	m->purge_seq = 0;
	uint64_t hl = get32(p + 52), tl = get32(p + 56), bl = get64(p + 64);
	if (m->status < 100 || m->status > 999)
		return -1;
	if (hl > len || tl > len || bl > len || ENTRY_HDR_SIZE + hl + tl + bl != len)
		return -1;
	out->hdrs = (const char *)p + ENTRY_HDR_SIZE;
	out->hdrs_len = (size_t)hl;
	out->tags = out->hdrs + hl;
	out->tags_len = (size_t)tl;
	out->body = (const uint8_t *)out->tags + tl;
	out->body_len = bl;
	if (!block_ok(out->hdrs, out->hdrs_len, 1) || !block_ok(out->tags, out->tags_len, 0))
		return -1;
	return 0;
}

int entry_next_header(const struct entry_view *v, size_t *pos, struct entry_header *h)
{
	if (*pos >= v->hdrs_len)
		return 0;
	h->name = v->hdrs + *pos;
	*pos += strlen(h->name) + 1;
	h->value = v->hdrs + *pos;
	*pos += strlen(h->value) + 1;
	return 1;
}

const char *entry_get_header(const struct entry_view *v, const char *name)
{
	size_t pos = 0;
	struct entry_header h;
	while (entry_next_header(v, &pos, &h))
		if (!strcasecmp(h.name, name))
			return h.value;
	return NULL;
}

void entry_meta_from(const struct fresh_out *fo, int64_t request_time, int64_t response_time,
                     unsigned status, uint64_t purge_seq, struct entry_meta *m)
{
	memset(m, 0, sizeof *m);
	m->status = status;
	m->request_time = request_time;
	m->response_time = response_time;
	m->purge_seq = purge_seq;
	m->date = fo->date;
	m->age_value = fo->age_value;
	m->lifetime = (int32_t)(fo->lifetime > INT32_MAX ? INT32_MAX : fo->lifetime);
	m->swr = (int32_t)(fo->swr > INT32_MAX ? INT32_MAX : fo->swr);
	m->sie = (int32_t)(fo->sie > INT32_MAX ? INT32_MAX : fo->sie);
	if (fo->must_revalidate)
		m->flags |= ENTRY_F_MUST_REVALIDATE;
	if (fo->no_cache)
		m->flags |= ENTRY_F_NO_CACHE;
	if (fo->source == FRESH_HEURISTIC)
		m->flags |= ENTRY_F_HEURISTIC;
}
