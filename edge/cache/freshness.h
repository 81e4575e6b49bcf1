/* freshness.h -- RFC 9111 / RFC 9213 arithmetic over header values and times.
 *
 * No I/O, no clocks: every function takes the times it needs, so the rules are
 * unit-tested in isolation (tests/unit/edge/test_freshness.c). */
#ifndef MINICDN_FRESHNESS_H
#define MINICDN_FRESHNESS_H

#include <stdbool.h>
#include <stdint.h>

/* Parsed Cache-Control (or CDN-Cache-Control).  Delta-seconds are -1 when absent. */
struct cc {
	bool present;        /* at least one directive seen */
	bool no_store, no_cache, private_, public_, must_revalidate, proxy_revalidate;
	bool no_transform, only_if_cached, immutable, must_understand;
	int64_t max_age, s_maxage, swr, sie, min_fresh, max_stale;
};

/* Parses a Cache-Control value (NULL means absent; repeated lines joined
 * with ", ").  Unknown directives are ignored; a malformed delta makes that
 * directive absent, except max-age / s-maxage which then count as 0, as
 * does one of them given twice with different values (RFC 9111 4.2.1:
 * treat as stale). */
void freshness_parse_cc(const char *value, struct cc *out);

/* Parses CDN-Cache-Control as an RFC 8941 dictionary (RFC 9213 2.1).
 * Returns true with out filled if it is one with at least one member and
 * every known directive has its type (delta-seconds: a non-negative
 * Integer; flags: a Boolean; no-cache / private: a Boolean, a String or an
 * Inner List); false -- field ignored as a whole, out empty -- otherwise.
 * Parameters and unknown keys are ignored. */
bool freshness_parse_cdn_cc(const char *value, struct cc *out);

/* Age (RFC 9111 5.1): delta-seconds of the first list member, saturating at
 * 2^31; -1 (ignore the field) when absent or not digits only. */
int64_t freshness_parse_age(const char *value);

/* The inputs of the freshness decision for one response. */
struct fresh_in {
	unsigned status;
	const char *cache_control;     /* NULL if absent */
	const char *cdn_cache_control; /* NULL if absent */
	const char *expires;           /* raw header values, NULL if absent */
	const char *date;
	const char *last_modified;
	const char *age;
	const char *vary;
	const char *method;            /* request method */
	bool req_authorization;        /* request carried Authorization */
	const char *req_cache_control; /* request Cache-Control (no-store honoured) */
	int64_t request_time, response_time;
	double heuristic_fraction;     /* e.g. 0.1 */
	int64_t heuristic_max;         /* cap in seconds */
};

enum fresh_source { FRESH_NONE, FRESH_CDN_CC, FRESH_S_MAXAGE, FRESH_MAX_AGE, FRESH_EXPIRES, FRESH_HEURISTIC };

struct fresh_out {
	bool storable;
	const char *why_not;   /* static reason when !storable */
	int64_t lifetime;      /* freshness lifetime, seconds (0 = stale at once) */
	enum fresh_source source;
	bool must_revalidate;  /* must-revalidate / proxy-revalidate / s-maxage present */
	bool no_cache;         /* store, but revalidate every use */
	int64_t swr, sie;      /* -1 if absent */
	int64_t date;          /* parsed Date, or response_time if absent/invalid */
	int64_t age_value;     /* parsed Age, 0 if absent/invalid */
};

/* Decides storability (RFC 9111 section 3) and freshness lifetime (4.2.1),
 * with the RFC 9213 rule: a valid CDN-Cache-Control replaces Cache-Control
 * and Expires for this cache. */
void freshness_evaluate(const struct fresh_in *in, struct fresh_out *out);

/* Current age per RFC 9111 section 4.2.3. */
int64_t freshness_age(int64_t date, int64_t age_value, int64_t request_time, int64_t response_time,
                      int64_t now);

/* ---------- request directives (RFC 9111 5.2.1) ---------- */

/* What a client's request lets this cache do.  Delta-seconds are -1 when absent. */
struct req_cc {
	bool no_cache;       /* no-cache, or Pragma: no-cache without Cache-Control (5.4) */
	bool no_store, only_if_cached;
	int64_t max_age, min_fresh;
	int64_t max_stale;   /* 2^31 for a bare max-stale (any staleness) */
};

/* Parses a request's Cache-Control and Pragma (either may be NULL).  Pragma
 * counts only when there is no Cache-Control.  honor_no_cache false is the
 * origin-protection mode of edge config cache.honor_client_no_cache: client
 * no-cache, max-age=0 and Pragma: no-cache are ignored (reload storms). */
void freshness_parse_request(const char *cache_control, const char *pragma, bool honor_no_cache,
                             struct req_cc *out);

/* A stored response's state at the time of a request. */
struct stored_state {
	int64_t age, lifetime;   /* current age (freshness_age) and freshness lifetime */
	int64_t swr;             /* stale-while-revalidate seconds, -1 none */
	bool no_cache;           /* the response said no-cache: validate every use */
	bool must_revalidate;    /* must-revalidate / proxy-revalidate / s-maxage */
};

enum fresh_use {
	USE_FRESH,          /* serve it: fresh and the request's limits allow it */
	USE_STALE,          /* serve it stale: the request's max-stale allows it */
	USE_SWR,            /* serve it stale and refresh it in the background */
	VALIDATE_REQUEST,   /* fresh, but the request demands validation (no-cache, max-age, min-fresh) */
	VALIDATE_STALE,     /* stale (or response no-cache): validate with the origin */
};

/* Decides how a stored response may satisfy a request (RFC 9111 4.2, 4.2.4,
 * 5.2.1; RFC 5861 stale-while-revalidate).  rq may be NULL (no directives).
 * Stale is never served when the response requires revalidation. */
enum fresh_use freshness_use(const struct req_cc *rq, const struct stored_state *st);

/* True if the status is heuristically cacheable (RFC 9110 section 15.1). */
bool freshness_heuristic_status(unsigned status);
/* True if status may be stored at all by this cache when explicit freshness
 * is given: any final status 200..599 except 206 and 304. */
bool freshness_cacheable_status(unsigned status);
/* True if this cache understands the status (RFC 9111 5.2.2.3 must-understand). */
bool freshness_understood_status(unsigned status);

/* If-Modified-Since (RFC 9110 13.1.3) against a stored response: true
 * (answer 304) if ims is a valid date at or after last_modified -- or,
 * without Last-Modified, the stored Date (RFC 9111 4.3.2).  Any NULL or
 * invalid date: false. */
bool freshness_not_modified_since(const char *ims, const char *last_modified, const char *date);

/* RFC 9111 4.3.4: whether a 304 selects the stored response for update,
 * given the stored and the 304's ETag and Last-Modified (each NULL if
 * absent).  A 304 with an ETag needs a matching stored ETag (strong
 * against strong, weak comparison for a weak one); else with a
 * Last-Modified, the same date; with neither, a stored response without
 * validators.  False: the 304 is about some other response. */
bool freshness_304_selects(const char *stored_etag, const char *etag_304, const char *stored_lm,
                           const char *lm_304);

/* ---------- stale when the origin fails (RFC 9111 4.2.4, RFC 5861 4) ---------- */

/* True for the statuses RFC 5861 calls errors: 500, 502, 503, 504. */
bool freshness_error_status(unsigned status);

enum origin_fail {
	ORIGIN_UNREACHABLE, /* connect refused, reset, timeout: the cache is disconnected */
	ORIGIN_ERROR,       /* the origin answered with an error status */
};

struct stale_err {
	enum origin_fail fail;
	int64_t stale_for;   /* seconds past expiry now (<= 0: fresh, validated on request) */
	int64_t sie;         /* the response's stale-if-error, -1 absent */
	int64_t default_sie; /* config cache.stale_if_error, seconds */
	int64_t unreachable; /* config cache.stale_if_unreachable, seconds */
	bool no_cache;       /* the stored response's no-cache */
	bool must_revalidate;/* must-revalidate / proxy-revalidate / s-maxage */
	bool req_no_cache;   /* the client's (honoured) no-cache */
};

/* Whether the stored response may be served instead of the failure.  An
 * error status is passed through unless stale-if-error (the response's, or
 * else the configured default) covers stale_for; an unreachable origin also
 * allows the configured window.  The response's no-cache, must-revalidate,
 * proxy-revalidate and s-maxage, and the client's no-cache, always win. */
bool freshness_stale_on_error(const struct stale_err *in);

#endif
