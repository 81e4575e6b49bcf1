/* script.h -- edge scripts: signed Lua bundles received, stored, activated and
 * run at the edge (issue 5).  The bundle format is common/bundle.h; the Lua
 * runtime is edge/lua_vm.h; this module owns the registry of active versions,
 * its LMDB store, the control endpoints and the per-request entry point.
 *
 * Activation is RCU-like: the set of active versions is an immutable,
 * refcounted snapshot.  A request takes a reference for its whole run, so a
 * push swaps the pointer and in-flight requests finish on the version they
 * started with; the old snapshot is freed by whoever drops the last reference.
 * Each worker thread has its own Lua state, which compiles a version once, the
 * first time that thread runs it. */
#ifndef MINICDN_EDGE_SCRIPT_H
#define MINICDN_EDGE_SCRIPT_H

#include "common/bundle.h"
#include "common/buf.h"
#include "common/cfg.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---------- configuration (the edge's `scripts = { ... }` group) ---------- */

struct script_config {
	bool enabled;
	char **pubkey;       /* the origin's Ed25519 public key file(s): a bundle signed */
	size_t npubkey;      /* by any is accepted (rotation); at most SCRIPT_MAX_KEYS */
	char *path;          /* LMDB directory for bundles and the KV store */
	uint64_t map_size;   /* LMDB map size */
	uint64_t memory;     /* Lua memory cap per state (per worker) */
	int instructions;    /* instruction budget per request, in thousands */
	int time_ms;         /* wall-clock budget per request */
	int fetch_timeout_ms;/* cap on one subrequest */
	int max_fetches;     /* subrequests per request */
	uint64_t fetch_max_body; /* largest subrequest body kept */
	char *regions;       /* optional "CIDR REGION" file for req.region */
	char *default_region;
};

#define SCRIPT_MAX_KEYS 8

/* Keys of the group; the edge's schema embeds them as
 *   { .name = "scripts", .type = CFG_GROUP, .offset = offsetof(conf, scripts), .sub = script_cfg_keys } */
extern const struct cfg_key script_cfg_keys[];

/* ---------- request and response as the dispatch hands them over ---------- */

struct script_cache_ops;
struct fetcher;

struct script_req {
	const char *method;
	const char *host;   /* Host header, may be NULL */
	const char *path;   /* without the query */
	size_t path_len;
	const char *query;  /* after '?', NULL if none */
	const struct sockaddr *client; /* may be NULL */
	const char *body;   /* request body (POST/PUT), may be NULL */
	size_t body_len;
	/* Header access; ctx is the dispatch's (e.g. the MHD connection). */
	const char *(*header)(void *ctx, const char *name);
	void (*headers_each)(void *ctx, void (*cb)(void *arg, const char *name, const char *value),
	                     void *arg);
	void *ctx;
	/* Cache subrequests (fetch{from = "cache"}); NULL: the dispatch has no cache
	 * and such fetches go straight to the origin. */
	const struct script_cache_ops *cache;
	/* Origin subrequests (fetch{from = "origin"}, and cache misses): sent
	 * through this fetcher without blocking the caller.  suspend(ctx) is
	 * called on the calling thread before the transfer starts (the dispatch
	 * suspends the client connection; script_handle will return SCRIPT_WAIT),
	 * wake(ctx) in the fetcher's thread when it is over (the dispatch resumes
	 * the connection and then calls script_resume on the thread that called
	 * script_handle).  NULL: origin subrequests answer nil, err. */
	struct fetcher *fetcher;
	void (*suspend)(void *ctx);
	void (*wake)(void *ctx);
};

/* The edge cache as scripts' subrequests see it (implemented by the dispatch,
 * edge/script_http.c, over edge/cache.h).  path is an origin-form "/p?q" on
 * the request's own host, so subrequests share entries with clients' requests
 * for the same URL.  hdr(cls, name) returns the subrequest's header values,
 * used to select Vary variants. */
struct script_cache_ops {
	/* A fresh entry for path: returns 1 and fills *status, hdrs (packed
	 * "name\0value\0", hop-by-hop and tag headers removed) and body (copied);
	 * 0 on a miss or stale entry; -1 if the body is over max_body. */
	int (*get)(void *ctx, const char *path, const char *(*hdr)(void *cls, const char *name),
	           void *cls, size_t max_body, int *status, struct buf *hdrs, struct buf *body);
	/* Stores an origin response to a GET subrequest if RFC 9111 and the
	 * cache's limits allow (hdrs packed as above, as received).  Returns 1 if
	 * stored, 0 if not storable or the store failed. */
	int (*put)(void *ctx, const char *path, const char *(*hdr)(void *cls, const char *name),
	           void *cls, int status, const struct buf *hdrs, const char *body, size_t body_len,
	           int64_t request_time, int64_t response_time);
	/* Host (normalised, with port if any) the subrequest is sent for. */
	const char *(*host)(void *ctx);
};

struct script_hdr {
	char *name, *value;
};

/* Filled by script_handle; release with script_resp_free.  The headers and
 * their strings share one block (script_resp_headers_init), so a response
 * costs one allocation for its headers however many it has. */
struct script_resp {
	int status;
	struct script_hdr *headers; /* owns the block; name/value point into it */
	size_t nheaders, hmax;
	char *hstr, *hend;          /* free string space in the block */
	char *body;
	size_t body_len;
	int cache_ttl;       /* > 0: the script marked it cacheable for that many seconds */
	char script[BUNDLE_MAX_NAME + 1];
	uint64_t version;
};

void script_resp_free(struct script_resp *r);
/* Sizes the header block: up to nmax headers whose names and values take
 * bytes in all (without terminators). */
void script_resp_headers_init(struct script_resp *r, size_t nmax, size_t bytes);
/* Copies a header into the block; returns -1 if it does not fit the size
 * given to script_resp_headers_init. */
int script_resp_header_add(struct script_resp *r, const char *name, size_t nl, const char *val,
                           size_t vl);

/* ---------- versions and their statistics (used by the Lua runtime) ---------- */

enum script_err { SERR_RUNTIME, SERR_INSTRUCTIONS, SERR_TIME, SERR_MEMORY, SERR_RESPONSE, SERR_N };

/* Counters touched by every request live in per-thread slots, each on its
 * own cache line, so worker threads on different cores do not bounce one
 * line between them; readers sum the slots (threads beyond SCRIPT_STAT_SLOTS
 * share slots, still exact since the counters are atomic). */
#define SCRIPT_STAT_SLOTS 8
struct script_stat_slot {
	_Alignas(64) atomic_ullong invocations;
	atomic_ullong time_us;
};

struct script_stats {
	struct script_stat_slot slot[SCRIPT_STAT_SLOTS]; /* first: 64-byte aligned allocation */
	char name[BUNDLE_MAX_NAME + 1];
	atomic_ullong passes;              /* returned nil: fell through */
	atomic_ullong errors[SERR_N];
	struct script_stats *next;
};

struct script_ver {
	atomic_int refs;
	uint64_t seq;            /* unique in this process: names compiled code in each Lua state */
	struct bundle *b;        /* owned */
	char *raw;               /* the signed bytes as stored, owned */
	size_t rawlen;
	char *env;               /* the signed envelope, owned (kept for re-export/listing) */
	size_t envlen;
	char digest[17];
	long long activated;     /* unix seconds */
	struct script_stats *stats; /* borrowed, lives until script_shutdown */
};

/* ---------- lifecycle ---------- */

/* Opens the store, reads the public key, loads and compiles the active
 * bundles.  edge_name/region are what scripts see as req.edge_name/edge_region;
 * origin is the base URL for subrequests ("http://127.0.0.1:8080").  Copies
 * everything it needs.  Returns 0 or -1 with the reason. */
int script_init(const struct script_config *cfg, const char *edge_name, const char *edge_region,
                const char *origin, char *err, size_t errlen);
/* Frees everything; no request may be running. */
void script_shutdown(void);
/* True when at least one bundle is active (a cheap check for the dispatch). */
bool script_any(void);

enum script_result { SCRIPT_PASS = 0, SCRIPT_RESPONSE = 1, SCRIPT_WAIT = 2 };

/* A script request waiting for an origin subrequest. */
struct script_task;

/* Runs the first bundle whose route matches.  SCRIPT_RESPONSE: resp is filled
 * (by the script, or a 500 when it failed and its route says on_error "500");
 * SCRIPT_PASS: no route matched, the script returned nil, or it failed with
 * on_error "origin" -- the caller goes on with the cache/origin path.
 * SCRIPT_WAIT: the script waits for a subrequest (req->suspend was called);
 * *task is set and req (copied) and what it points to must stay valid until
 * the task ends: after req->wake, call script_resume; if the request ends
 * first, script_abort.  Both on the thread that called script_handle (it
 * owns the Lua state).  The task keeps the bundle version it started with
 * (a push meanwhile does not affect it).  Never blocks on the network. */
enum script_result script_handle(const struct script_req *req, struct script_resp *resp,
                                 struct script_task **task);
/* Continues t after its wake-up; returns as script_handle (SCRIPT_WAIT again:
 * t waits for another subrequest, or the wake-up was early).  Otherwise t is
 * gone. */
enum script_result script_resume(struct script_task *t, struct script_resp *resp);
/* Ends a waiting t (client gone, shutdown) without a response. */
void script_abort(struct script_task *t);

/* Control API under /.minicdn/scripts.  method/path as received, body the
 * request body (borrowed).  Writes a JSON reply into out, returns the HTTP status.
 *   POST   /.minicdn/scripts        signed envelope (activate or delete)
 *   DELETE /.minicdn/scripts/NAME   signed envelope with op "delete" for NAME
 *   GET    /.minicdn/scripts        list of active bundles */
int script_control(const char *method, const char *path, const char *body, size_t len,
                   struct buf *out);

/* Appends Prometheus text for every script (invocations, errors by kind, time). */
void script_metrics(struct buf *out);

/* Client address -> region name, from the regions file (default otherwise).
 * Returned string is borrowed, valid until script_shutdown. */
const char *script_region_of(const struct sockaddr *sa);

/* Current active version of name (a new reference, release with
 * script_ver_release), or NULL. */
struct script_ver *script_active(const char *name);
void script_ver_release(struct script_ver *v);

#endif
