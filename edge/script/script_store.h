/* script_store.h -- bundles on disk (LMDB "bundles", "seen", "prev") and
 * their activation: verify, refuse replays, compile in a throw-away state,
 * persist, then publish.  Part of the scripts module (script_int.h). */
#ifndef MINICDN_EDGE_SCRIPT_STORE_H
#define MINICDN_EDGE_SCRIPT_STORE_H

#include "common/buf.h"

#include <stddef.h>

struct scripts;

/* Opens the databases in s->env.  Returns 0 or -1 with the reason. */
int script_store_open(struct scripts *s, char *err, size_t errlen);
/* Verifies, compiles and publishes every stored bundle (a bad one is logged
 * and skipped).  Returns 0 or -1 if the store cannot be read. */
int script_store_load(struct scripts *s, char *err, size_t errlen);
/* A signed envelope pushed by the origin: activates or deletes its bundle.
 * want_delete_name: the NAME of DELETE /.minicdn/scripts/NAME (the envelope
 * must delete that name), NULL for a POST.  Writes the JSON reply into out,
 * returns the HTTP status. */
int script_store_push(struct scripts *s, const char *body, size_t len, const char *want_delete_name,
                      struct buf *out);
/* JSON list of the active bundles (with the previous version of each). */
void script_store_list(struct scripts *s, struct buf *out);
/* Writes a rejection reply, logs it; returns status. */
int script_store_refuse(struct buf *out, int status, const char *name, const char *why);

#endif
