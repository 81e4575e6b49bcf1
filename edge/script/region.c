/* region.c -- client address to region name (req.region) */
#include "edge/script/region.h"
#include "common/addr.h"
#include "common/xmalloc.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct script_regions {
	struct { struct cidr c; char *region; } *map;
	size_t n;
	char *fallback;
};

static int load_file(struct script_regions *r, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char line[512];
	int lineno = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char pfx[128], region[64];
		if (sscanf(line, "%127s %63s", pfx, region) != 2) {
			if (sscanf(line, "%127s", pfx) == 1) {
				snprintf(err, errlen, "%s:%d: want \"CIDR REGION\"", path, lineno);
				fclose(f);
				return -1;
			}
			continue;
		}
		struct cidr c;
		char why[128];
		if (cidr_parse(pfx, &c, why, sizeof why) < 0) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			fclose(f);
			return -1;
		}
		r->map = xrealloc(r->map, (r->n + 1) * sizeof *r->map);
		r->map[r->n].c = c;
		r->map[r->n].region = xstrdup(region);
		r->n++;
	}
	fclose(f);
	return 0;
}

struct script_regions *script_regions_load(const char *path, const char *fallback, char *err,
                                           size_t errlen)
{
	struct script_regions *r = xcalloc(1, sizeof *r);
	r->fallback = xstrdup(fallback ? fallback : "");
	if (path && load_file(r, path, err, errlen) < 0) {
		script_regions_free(r);
		return NULL;
	}
	return r;
}

void script_regions_free(struct script_regions *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->map[i].region);
	free(r->map);
	free(r->fallback);
	free(r);
}

const char *script_regions_lookup(const struct script_regions *r, const struct sockaddr *sa)
{
	const char *best = NULL;
	int best_len = -1;
	if (sa) {
		const uint8_t *bytes = NULL;
		int fam = sa->sa_family;
		uint8_t mapped[4];
		if (fam == AF_INET) {
			bytes = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		} else if (fam == AF_INET6) {
			bytes = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
			static const uint8_t v4pfx[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
			if (!memcmp(bytes, v4pfx, 12)) { /* v4-mapped: match the IPv4 map */
				memcpy(mapped, bytes + 12, 4);
				bytes = mapped;
				fam = AF_INET;
			}
		}
		/* Linear: region maps for scripts are small (tens of lines). */
		for (size_t i = 0; bytes && i < r->n; i++)
			if (r->map[i].c.family == fam && r->map[i].c.prefix_len > best_len &&
			    cidr_contains(&r->map[i].c, fam, bytes)) {
				best = r->map[i].region;
				best_len = r->map[i].c.prefix_len;
			}
	}
	return best ? best : r->fallback;
}
