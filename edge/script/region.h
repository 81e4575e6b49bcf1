/* region.h -- client address to region name, for req.region: a
 * "CIDR REGION" file (longest prefix wins) and a fallback region. */
#ifndef MINICDN_EDGE_SCRIPT_REGION_H
#define MINICDN_EDGE_SCRIPT_REGION_H

#include <sys/socket.h>
#include <stddef.h>

struct script_regions;

/* Reads path (NULL: no map, every client gets the fallback).  fallback is
 * the region when no prefix matches (copied).  NULL with "file:line: why"
 * in err. */
struct script_regions *script_regions_load(const char *path, const char *fallback, char *err,
                                           size_t errlen);
void script_regions_free(struct script_regions *r);
/* The client's region (v4-mapped IPv6 addresses match the IPv4 lines);
 * borrowed, valid until script_regions_free.  Linear in the map's lines. */
const char *script_regions_lookup(const struct script_regions *r, const struct sockaddr *sa);

#endif
