/* history.h -- every signed version of every script bundle the origin has
 * published: on disk, and an in-memory index of it.
 *
 * On disk: <dir>/<name>/<version, 20 digits>.env (the signed envelope as sent
 * to edges) and .meta (JSON: name, version, op, created, digest, rollback_of),
 * each written atomically (common/fsutil.h); .meta is written last, so it is
 * what marks a version as existing after a restart.
 *
 * No locking here: the owner (push.c) guards the index with its state lock;
 * the disk functions only read h->dir. */
#ifndef MINICDN_ORIGIN_HISTORY_H
#define MINICDN_ORIGIN_HISTORY_H

#include "common/bundle.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct history_ver {
	unsigned long long version;
	bool del;                       /* tombstone (unpush) */
	long long created;
	unsigned long long rollback_of; /* version whose content this re-signs, 0 if none */
	char digest[17];                /* of the signed bundle bytes */
};

/* One bundle name.  Never empty once in the index: v[n - 1] is current. */
struct history_bundle {
	char *name;
	struct history_ver *v;          /* ascending versions */
	size_t n, cap;
	char *env;                      /* current (last) envelope, as sent to edges */
	size_t envlen;
};

struct history {
	char *dir;                      /* <state_dir>/bundles */
	uint8_t pk[BUNDLE_PK_LEN];      /* envelopes on disk must verify with it */
	struct history_bundle *b;
	size_t n;
};

/* Sets up an empty index for <state_dir>/bundles (no I/O). */
void history_init(struct history *h, const char *state_dir, const uint8_t pk[BUNDLE_PK_LEN]);
/* Creates the folder and loads every readable version; versions whose
 * envelope is missing or not signed with pk are dropped with a warning.
 * Returns 0 or -1 with the reason. */
int history_load(struct history *h, char *err, size_t errlen);
/* Frees the index (the files stay). */
void history_free(struct history *h);

/* Bundle names become folder names: bundle_validate allows [A-Za-z0-9._-];
 * a leading dot is refused on top so "." and ".." never occur. */
bool history_name_ok(const char *name);
/* The bundle's entry, or NULL.  Borrowed: valid while the index is not changed. */
struct history_bundle *history_find(struct history *h, const char *name);
/* Current version of b, 0 if b is NULL. */
unsigned long long history_current(const struct history_bundle *b);
/* Number of versions over all bundles. */
size_t history_versions(const struct history *h);

/* Writes version v of name to disk (envelope then metadata).  Does not touch
 * the index.  Returns 0 or -1 with the reason. */
int history_write(const struct history *h, const char *name, const struct history_ver *v, const char *env,
                  size_t envlen, char *err, size_t errlen);
/* Adds v to the index as name's current version; takes ownership of env. */
void history_record(struct history *h, const char *name, const struct history_ver *v, char *env,
                    size_t envlen);
/* Reads version v's envelope back from disk (at most BUNDLE_MAX_ENVELOPE
 * bytes).  Returns malloc'd NUL-terminated text (caller frees), or NULL with
 * the reason. */
char *history_read_env(const struct history *h, const char *name, unsigned long long v, size_t *len,
                       char *err, size_t errlen);

#endif
