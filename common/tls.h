/* tls.h -- certificates for HTTPS listeners: the certificate chosen by SNI
 * among the configured sites, session-ticket keys shared by every worker
 * thread and rotated on a schedule, OCSP responses to staple.
 *
 * A store holds one immutable certificate set at a time.  tls_store_load()
 * builds a new set from files and swaps it in only if every certificate and
 * key is good, so a bad renewal leaves the old set serving.  Handshakes read
 * the current set without locks. */
#ifndef MINICDN_TLS_H
#define MINICDN_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* TLS 1.2 and 1.3 only; forward-secret key exchange (ECDHE) with AEAD
 * ciphers only; the server's order wins.  X25519 first: it is the key share
 * clients send in their first TLS 1.3 hello, and preferring another group
 * would cost every handshake a HelloRetryRequest round trip. */
#define TLS_PRIORITIES                                                                        \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"   \
	"+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:"                   \
	"-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:%SERVER_PRECEDENCE"

/* One site's certificate, as configured.  Strings are borrowed for the call. */
struct tls_cert_spec {
	const char *name;              /* site name, for messages */
	const char *const *hosts;      /* "www.example.com" or "*.example.com" */
	size_t nhosts;
	const char *cert_file;         /* PEM: leaf first, then intermediates */
	const char *key_file;          /* PEM private key */
	const char *ocsp_file;         /* DER OCSP response to staple, or NULL */
};

struct tls_store;

/* A store with no certificates yet; ticket keys rotate every rotate_s
 * seconds (0 = 12 hours).  NULL if GnuTLS cannot make a key. */
struct tls_store *tls_store_new(unsigned rotate_s);
/* Frees the store and every set it ever held; no handshake may be running. */
void tls_store_free(struct tls_store *s);

/* Loads specs[0..n) (specs[def] answers clients without SNI or with a name
 * no site has) and makes them the current set.  Checks each chain parses,
 * the key matches the leaf, the leaf is valid now and covers every host.
 * Returns 0, or -1 with "site: file: reason" in err and the old set kept. */
int tls_store_load(struct tls_store *s, const struct tls_cert_spec *specs, size_t n, size_t def,
                   char *err, size_t errlen);

/* Index (into the specs of the last successful load) of the certificate a
 * client naming sni gets: exact host, then "*.parent", then the default.
 * sni may be NULL.  -1 if nothing is loaded. */
int tls_store_pick(struct tls_store *s, const char *sni);

/* Rotates the ticket key if it is older than the rotation period.  Called
 * from a timer; cheap when nothing is due.  Returns true if it rotated. */
bool tls_store_tick(struct tls_store *s, time_t now);
/* Number of ticket-key rotations so far (for metrics and tests). */
unsigned long tls_store_rotations(struct tls_store *s);

/* libmicrohttpd glue.  tls_session_start() runs when a connection is
 * accepted, before its handshake: it gives the session the current ticket key
 * and a pointer back to the store for tls_cert_callback(), which GnuTLS calls
 * during the handshake (MHD_OPTION_HTTPS_CERT_CALLBACK2). */
void tls_session_start(struct tls_store *s, gnutls_session_t session);
gnutls_certificate_retrieve_function3 tls_cert_callback;

#endif
