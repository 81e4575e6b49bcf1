/* kv.h -- the per-edge key-value store scripts use: LMDB, TTLs, shared by
 * every worker.  Each script sees its own namespace (keys are stored as
 * "script-name\0key"), so scripts cannot read or clobber each other's data.
 *
 * Record: 8-byte little-endian expiry (unix ms, 0 = never) + value bytes.
 * Expired records are invisible at once and removed by later writes (a
 * bounded sweep every KV_SWEEP_EVERY writes). */
#ifndef MINICDN_EDGE_SCRIPT_KV_H
#define MINICDN_EDGE_SCRIPT_KV_H

#include "common/buf.h"
#include <lmdb.h>
#include <stddef.h>

#define KV_MAX_KEY 256
#define KV_MAX_VALUE (64 * 1024)

struct kv;

/* Opens the "kv" database in env (which the caller keeps open until
 * kv_close).  NULL with the reason.  The functions below are thread-safe;
 * a NULL kv makes them fail (-1, or 0 for kv_sweep and kv_count). */
struct kv *kv_open(MDB_env *env, char *err, size_t errlen);
void kv_close(struct kv *kv);

/* Returns 1 and the value in out (replacing its contents), 0 if absent or
 * expired, -1 on a store error. */
int kv_get(struct kv *kv, const char *ns, const char *key, size_t klen, struct buf *out);
/* ttl_s <= 0: no expiry.  Returns 0, or -1 (store full, error). */
int kv_set(struct kv *kv, const char *ns, const char *key, size_t klen, const char *val,
           size_t vlen, double ttl_s);
/* Adds delta to the integer stored at key (absent/expired = 0) atomically;
 * ttl applies when the key is created.  Returns 0 with the new value. */
int kv_incr(struct kv *kv, const char *ns, const char *key, size_t klen, long long delta,
            double ttl_s, long long *out);
/* Returns 1 if removed, 0 if absent, -1 on error. */
int kv_del(struct kv *kv, const char *ns, const char *key, size_t klen);
/* Removes up to max expired records; returns how many. */
long kv_sweep(struct kv *kv, long max);
/* Number of records (expired ones included until swept). */
long kv_count(struct kv *kv);

#endif
