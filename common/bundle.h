/* bundle.h -- signed Lua script bundles: the format the origin signs and the
 * edges verify, activate and run.  No I/O except the build-from-disk
 * and key file helpers; everything else works on bytes.
 *
 * A bundle is a named, versioned set of Lua modules plus the routes that send
 * requests to it.  It travels as JSON (jansson), serialised once by the signer:
 *
 *   {"format":1,"name":"geo-hello","version":7,"op":"activate","created":1700000000,
 *    "entry":"main",
 *    "routes":[{"host":"*.cdn.test","path":"/hello*","method":"GET","on_error":"500"}],
 *    "modules":[{"name":"main","source":"function handle(req) ... end"}]}
 *
 *   op        "activate" (default) or "delete" (unpush: a signed tombstone, no
 *             routes/modules needed; its version must also be higher, so a
 *             replayed old bundle cannot resurrect a removed script).
 *   version   1 .. 2^53, strictly increasing per name; the edge refuses a
 *             version <= the highest it has seen for that name (replay).
 *             Rollback = the signer re-signs the previous content with a new,
 *             higher version.
 *   routes    host glob (case-insensitive, default "*"), path glob (matched on
 *             the path without the query), optional method ("GET"; absent or
 *             "*" = any), on_error "500" (default) or "origin" (fall through to
 *             the normal cache/origin path when the script fails).
 *             Globs: '*' any run of characters (including '/'), '?' one.
 *   modules   Lua source text; the entry module (default "main") defines
 *             handle(req); the others are reachable with require("name").
 *
 * The signed envelope (what is POSTed to an edge's /.minicdn/scripts):
 *
 *   {"format":"minicdn-bundle-1","bundle":"<base64 of the JSON bytes>",
 *    "sig":"<base64 of the 64-byte Ed25519 detached signature over exactly those bytes>"}
 *
 * The signature covers the exact serialised bytes (base64 keeps them intact in
 * transit), so the edge verifies before it parses the bundle JSON at all.
 *
 * On disk, a bundle is built from either
 *   - a directory holding bundle.conf (libconfig) and *.lua files (module name =
 *     file name without .lua), or
 *   - a single .lua file starting with a manifest block comment:
 *         --[[minicdn
 *         name = "geo-hello";
 *         routes = ( { path = "/hello*"; method = "GET"; } );
 *         ]]
 *     (the file is the entry module).
 * Manifest keys: name (required), version (optional: 0 = the signer assigns),
 * entry (default "main"), routes (required list: host, path, method, on_error).
 *
 * Keys: files holding one line of base64 (public: 32 bytes, secret: libsodium's
 * 64-byte secret key, written mode 0600). */
#ifndef MINICDN_BUNDLE_H
#define MINICDN_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUNDLE_PK_LEN 32
#define BUNDLE_SK_LEN 64
#define BUNDLE_SIG_LEN 64
#define BUNDLE_MAX_BYTES (1u << 20)  /* serialised bundle JSON */
#define BUNDLE_MAX_ENVELOPE (BUNDLE_MAX_BYTES / 3 * 4 + 4096)
#define BUNDLE_MAX_MODULES 64
#define BUNDLE_MAX_ROUTES 64
#define BUNDLE_MAX_NAME 64
#define BUNDLE_MAX_GLOB 256
#define BUNDLE_MAX_VERSION 9007199254740992ull /* 2^53: exact in JSON and Lua numbers */
#define BUNDLE_ENVELOPE_FORMAT "minicdn-bundle-1"

enum bundle_on_error { BUNDLE_ON_ERROR_500 = 0, BUNDLE_ON_ERROR_ORIGIN = 1 };
enum bundle_op { BUNDLE_OP_ACTIVATE = 0, BUNDLE_OP_DELETE = 1 };

struct bundle_route {
	char *host;   /* glob, never NULL ("*" by default) */
	char *path;   /* glob, never NULL */
	char *method; /* NULL = any method */
	enum bundle_on_error on_error;
};

struct bundle_module {
	char *name;
	char *source; /* NUL-terminated; len excludes the NUL */
	size_t len;
};

/* Every pointer inside is owned by the bundle; bundle_free releases all. */
struct bundle {
	char *name;
	uint64_t version;
	enum bundle_op op;
	long long created; /* unix seconds when signed; informational */
	char *entry;       /* entry module name */
	struct bundle_route *routes;
	size_t nroutes;
	struct bundle_module *modules;
	size_t nmodules;
};

void bundle_free(struct bundle *b);

/* ---------- building (signer side) ---------- */

/* Builds from a directory (bundle.conf + *.lua) or a single .lua file with a
 * manifest comment, whichever path is.  version is taken from the manifest
 * (0 if absent: set it before serialising).  Returns a new bundle or NULL
 * with the reason in err. */
struct bundle *bundle_load_path(const char *path, char *err, size_t errlen);
struct bundle *bundle_load_dir(const char *dir, char *err, size_t errlen);
struct bundle *bundle_load_file(const char *file, char *err, size_t errlen);
/* Parses a single-file bundle from memory (name is used in messages). */
struct bundle *bundle_from_lua(const char *src, size_t len, const char *name, char *err,
                               size_t errlen);

/* Checks every rule the edge checks (names, globs, limits, entry present).
 * Returns 0 or -1 with the reason. */
int bundle_validate(const struct bundle *b, char *err, size_t errlen);

/* Serialises to compact JSON.  Returns malloc'd bytes (NUL-terminated, *len
 * excludes it) or NULL if the bundle does not validate. */
char *bundle_serialize(const struct bundle *b, size_t *len, char *err, size_t errlen);

/* Wraps bytes in a signed envelope.  Returns malloc'd JSON text (*envlen set). */
char *bundle_sign(const char *bytes, size_t len, const uint8_t sk[BUNDLE_SK_LEN], size_t *envlen);

/* ---------- receiving (edge side) ---------- */

/* Verifies an envelope against pk.  On success returns 0 and the signed bytes
 * (malloc'd, NUL-terminated; caller frees) in *bytes and *len.  Refuses envelopes
 * over BUNDLE_MAX_ENVELOPE, malformed JSON/base64, bad signatures.  Nothing in
 * the payload is looked at before the signature checks out. */
int bundle_verify(const char *env, size_t envlen, const uint8_t pk[BUNDLE_PK_LEN], char **bytes,
                  size_t *len, char *err, size_t errlen);

/* The public keys a receiver accepts: during a key rotation an edge lists
 * the old and the new origin key. */
#define BUNDLE_MAX_KEYS 8
struct bundle_keys {
	uint8_t pk[BUNDLE_MAX_KEYS][BUNDLE_PK_LEN];
	size_t n;
};

/* bundle_verify against a set of keys: a signature by any of them is accepted. */
int bundle_verify_any(const char *env, size_t envlen, const struct bundle_keys *keys, char **bytes,
                      size_t *len, char *err, size_t errlen);

/* Parses signed bytes (bounded by BUNDLE_MAX_BYTES) and validates them.
 * Returns a new bundle or NULL with the reason. */
struct bundle *bundle_parse(const char *bytes, size_t len, char *err, size_t errlen);

/* bundle_verify + bundle_parse.  If raw is not NULL the verified bytes are
 * handed over too (caller frees), e.g. to store them as they were signed. */
struct bundle *bundle_open(const char *env, size_t envlen, const uint8_t pk[BUNDLE_PK_LEN],
                           char **raw, size_t *rawlen, char *err, size_t errlen);

/* bundle_open against a set of keys (see bundle_verify_any). */
struct bundle *bundle_open_any(const char *env, size_t envlen, const struct bundle_keys *keys,
                               char **raw, size_t *rawlen, char *err, size_t errlen);

/* True if the route matches (host may lack a port; method NULL matches any). */
bool bundle_route_match(const struct bundle_route *r, const char *method, const char *host,
                        const char *path, size_t pathlen);

/* Short content id: 16 hex digits of BLAKE2b over bytes (out: 17 bytes). */
void bundle_digest_hex(const char *bytes, size_t len, char out[17]);

/* ---------- keys ---------- */

/* New Ed25519 key pair. */
void bundle_keygen(uint8_t pk[BUNDLE_PK_LEN], uint8_t sk[BUNDLE_SK_LEN]);
/* Writes key as one line of base64; secret keys with mode 0600 (written to a
 * temporary file and renamed).  Returns 0 or -1 with the reason. */
int bundle_key_write(const char *path, const uint8_t *key, size_t keylen, bool secret, char *err,
                     size_t errlen);
/* Reads a key file of exactly keylen bytes once decoded. */
int bundle_key_read(const char *path, uint8_t *key, size_t keylen, char *err, size_t errlen);
/* Public half of a secret key. */
void bundle_sk_to_pk(const uint8_t sk[BUNDLE_SK_LEN], uint8_t pk[BUNDLE_PK_LEN]);

#endif
