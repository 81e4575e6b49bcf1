/* cfg.h -- schema-driven configuration loading (libconfig syntax).
 *
 * Every program describes its configuration as a table of cfg_key: name, type,
 * where the value lands in the program's config struct, default, bounds and a
 * one-line help.  The same table drives parsing, `-t`, and `--help`.  Any error
 * (syntax, unknown key, wrong type, value out of bounds, bad address) is
 * reported as "FILE:LINE: message" and nothing is half-applied.
 *
 * Example (edge):
 *     listen = "127.0.0.11:8080";
 *     cache = { path = "/var/lib/minicdn/edge"; map_size = "256M"; };
 *     edges = ( { name = "eu1"; address = "10.0.0.1"; } );
 */
#ifndef MINICDN_CFG_H
#define MINICDN_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cfg_type {
	CFG_STRING,  /* char *, malloc'd (freed by cfg_free) */
	CFG_INT,     /* int; min/max bound it when min < max */
	CFG_SIZE,    /* uint64_t; integer or string with K/M/G suffix ("256M") */
	CFG_MS,      /* int milliseconds; integer (ms) or string "200ms", "5s", "2m", "1h" */
	CFG_BOOL,    /* bool */
	CFG_FLOAT,   /* double */
	CFG_ADDR,    /* struct addr from "ip:port" / "[ip6]:port" */
	CFG_STRLIST, /* char **, count (size_t) at count_offset; ["a", "b"] or one "a" */
	CFG_GROUP,   /* nested group; sub keys land relative to the same struct base + offset */
	CFG_LIST,    /* list of groups: pointer to array of elem_size at offset, count at count_offset */
	CFG_CUSTOM,  /* string converted by parse() into the target */
};

#define CFG_REQUIRED 1u
#define CFG_PATH 2u /* STRING naming a file or folder: a relative value (or default)
                       is taken relative to the config file's folder */

struct cfg_key {
	const char *name;
	enum cfg_type type;
	size_t offset;
	const char *def;          /* default as text, NULL for none */
	double min, max;          /* bounds for numbers, ignored when min >= max */
	unsigned flags;
	const struct cfg_key *sub; /* GROUP / LIST: keys of the group or element, ended by {NULL} */
	size_t elem_size;         /* LIST: size of an element */
	size_t count_offset;      /* LIST / STRLIST: offset of the size_t count */
	int (*parse)(const char *text, void *dst, char *err, size_t errlen); /* CUSTOM */
	const char *help;
};

#define CFG_END { NULL, 0, 0, NULL, 0, 0, 0, NULL, 0, 0, NULL, NULL }

/* Loads path into the struct at base, which must be zeroed.  Returns 0, or -1
 * with "FILE:LINE: reason" in err.  On failure everything allocated so far is
 * freed and base is zeroed again. */
int cfg_load(const char *path, const struct cfg_key *schema, void *base, char *err, size_t errlen);
/* Same, from a string (name is used in messages). */
int cfg_load_string(const char *text, const char *name, const struct cfg_key *schema,
                    void *base, char *err, size_t errlen);
/* Frees what cfg_load allocated inside base (strings, lists) and zeroes it. */
void cfg_free(const struct cfg_key *schema, void *base);
/* Prints the schema as a reference: one line per key with type, default and help. */
void cfg_print_reference(const struct cfg_key *schema, FILE *out);

/* Parsers usable as CFG_CUSTOM or on their own. */
int cfg_parse_size(const char *text, uint64_t *out, char *err, size_t errlen);
int cfg_parse_ms(const char *text, int *out, char *err, size_t errlen);

#endif
