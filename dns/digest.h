/* digest.h -- a fingerprint of what a DNS server answers from: its zones,
 * subnet map, GeoIP database, regions and edges.
 *
 * Two servers meant to answer identically (same generated files) show the
 * same digest in /healthz; `minicdnctl status` flags servers that differ.
 * Files are hashed byte for byte, so a comment change counts as a change. */
#ifndef MINICDN_DNS_DIGEST_H
#define MINICDN_DNS_DIGEST_H

#include "dns/conf.h"
#include <stddef.h>

#define DIGEST_HEX_LEN 32 /* 128-bit BLAKE2b, lower-case hex */

/* Hashes the files c names (re-read here: the caller just loaded them) and
 * the answer-shaping settings (dynamic names, TTL, answers, default region,
 * regions, edges) into out (DIGEST_HEX_LEN + 1 bytes).  Returns 0, or -1
 * with "FILE: reason" in err. */
int digest_config(const struct dns_conf *c, char *out, char *err, size_t errlen);

#endif
