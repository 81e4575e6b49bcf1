/* tls.c -- certificates for HTTPS listeners: SNI choice, ticket keys, OCSP */
#include "common/tls.h"
#include "common/xmalloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHAIN_MAX 16
#define OCSP_MAX (64 * 1024)

struct tls_cert {
	char **hosts;                 /* lower case; "*.x" stored as "*.x" */
	size_t nhosts;
	gnutls_pcert_st chain[CHAIN_MAX];
	unsigned nchain;
	gnutls_privkey_t key;
	gnutls_ocsp_data_st ocsp;
	bool has_ocsp;
};

/* Immutable once published. */
struct tls_set {
	struct tls_cert *certs;
	size_t n, def;
	struct tls_set *older;        /* retired sets, newest first */
};

struct tls_store {
	/* The set handshakes read.  Sets replaced by a reload are kept on the
	 * current set's `older` chain until the store is freed: a handshake that
	 * picked a certificate just before the swap still points into its set,
	 * and GnuTLS keeps the chosen chain for the session's life.  A set is a
	 * few kilobytes and reloads follow certificate renewals, so this is
	 * bounded in practice. */
	_Atomic(struct tls_set *) cur;
	pthread_mutex_t lock;         /* ticket key and loads */
	gnutls_datum_t ticket;        /* master key new sessions copy */
	time_t ticket_born;
	unsigned rotate_s;
	unsigned long rotations;
};

/* ---------- sets ---------- */

static void cert_clear(struct tls_cert *c)
{
	for (size_t i = 0; i < c->nhosts; i++)
		free(c->hosts[i]);
	free(c->hosts);
	for (unsigned i = 0; i < c->nchain; i++)
		gnutls_pcert_deinit(&c->chain[i]);
	if (c->key)
		gnutls_privkey_deinit(c->key);
	if (c->has_ocsp)
		gnutls_free(c->ocsp.response.data);
	memset(c, 0, sizeof *c);
}

static void set_free(struct tls_set *t)
{
	while (t) {
		struct tls_set *next = t->older;
		for (size_t i = 0; i < t->n; i++)
			cert_clear(&t->certs[i]);
		free(t->certs);
		free(t);
		t = next;
	}
}

/* The leaf must be valid now and name every host (a wildcard host is
 * checked with a name under it). */
static int leaf_check(const gnutls_pcert_st *leaf, const struct tls_cert_spec *sp, char *why,
                      size_t whylen)
{
	gnutls_x509_crt_t crt;
	if (gnutls_pcert_export_x509((gnutls_pcert_st *)leaf, &crt) < 0) {
		snprintf(why, whylen, "leaf certificate cannot be read");
		return -1;
	}
	int rc = 0;
	time_t now = time(NULL);
	if (gnutls_x509_crt_get_activation_time(crt) > now) {
		snprintf(why, whylen, "certificate is not valid yet");
		rc = -1;
	} else if (gnutls_x509_crt_get_expiration_time(crt) < now) {
		snprintf(why, whylen, "certificate has expired");
		rc = -1;
	}
	for (size_t i = 0; rc == 0 && i < sp->nhosts; i++) {
		char probe[300];
		const char *h = sp->hosts[i];
		if (!strncmp(h, "*.", 2))
			snprintf(probe, sizeof probe, "sni-check%s", h + 1);
		else
			snprintf(probe, sizeof probe, "%s", h);
		if (!gnutls_x509_crt_check_hostname(crt, probe)) {
			snprintf(why, whylen, "certificate does not cover host %s", h);
			rc = -1;
		}
	}
	gnutls_x509_crt_deinit(crt);
	return rc;
}

static int key_matches(const gnutls_pcert_st *leaf, gnutls_privkey_t key)
{
	unsigned char a[64], b[64];
	size_t alen = sizeof a, blen = sizeof b;
	gnutls_pubkey_t pub;
	if (gnutls_pubkey_init(&pub) < 0)
		return 0;
	int ok = gnutls_pubkey_import_privkey(pub, key, 0, 0) >= 0 &&
	         gnutls_pubkey_get_key_id(pub, 0, a, &alen) >= 0 &&
	         gnutls_pubkey_get_key_id(leaf->pubkey, 0, b, &blen) >= 0 && alen == blen &&
	         !memcmp(a, b, alen);
	gnutls_pubkey_deinit(pub);
	return ok;
}

static int cert_load(struct tls_cert *c, const struct tls_cert_spec *sp, char *err, size_t errlen)
{
	char why[200] = "";
	const char *file = sp->cert_file;
	gnutls_datum_t kd = { NULL, 0 };
	c->nchain = CHAIN_MAX;
	int rc = gnutls_pcert_list_import_x509_file(c->chain, &c->nchain, sp->cert_file,
	                                            GNUTLS_X509_FMT_PEM, NULL, NULL, 0);
	if (rc < 0) {
		c->nchain = 0;
		snprintf(why, sizeof why, "%s", gnutls_strerror(rc));
		goto fail;
	}
	if (c->nchain == 0) {
		snprintf(why, sizeof why, "no certificate in file");
		goto fail;
	}
	if (leaf_check(&c->chain[0], sp, why, sizeof why) < 0)
		goto fail;
	file = sp->key_file;
	if ((rc = gnutls_load_file(sp->key_file, &kd)) < 0 || (rc = gnutls_privkey_init(&c->key)) < 0 ||
	    (rc = gnutls_privkey_import_x509_raw(c->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		snprintf(why, sizeof why, "%s", gnutls_strerror(rc));
		goto fail;
	}
	if (!key_matches(&c->chain[0], c->key)) {
		snprintf(why, sizeof why, "key does not match the certificate %s", sp->cert_file);
		goto fail;
	}
	if (sp->ocsp_file) {
		file = sp->ocsp_file;
		if ((rc = gnutls_load_file(sp->ocsp_file, &c->ocsp.response)) < 0) {
			snprintf(why, sizeof why, "%s", gnutls_strerror(rc));
			goto fail;
		}
		c->has_ocsp = true;
		if (c->ocsp.response.size == 0 || c->ocsp.response.size > OCSP_MAX) {
			snprintf(why, sizeof why, "OCSP response is empty or over %d bytes", OCSP_MAX);
			goto fail;
		}
	}
	c->hosts = xcalloc(sp->nhosts ? sp->nhosts : 1, sizeof *c->hosts);
	for (size_t i = 0; i < sp->nhosts; i++) {
		c->hosts[i] = xstrdup(sp->hosts[i]);
		for (char *p = c->hosts[i]; *p; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	}
	c->nhosts = sp->nhosts;
	gnutls_free(kd.data);
	return 0;
fail:
	gnutls_free(kd.data);
	snprintf(err, errlen, "%s: %s: %s", sp->name ? sp->name : "tls", file, why);
	cert_clear(c);
	return -1;
}

/* ---------- the store ---------- */

static int ticket_new(gnutls_datum_t *k)
{
	gnutls_datum_t fresh;
	if (gnutls_session_ticket_key_generate(&fresh) < 0)
		return -1;
	if (k->data) {
		gnutls_memset(k->data, 0, k->size);
		gnutls_free(k->data);
	}
	*k = fresh;
	return 0;
}

struct tls_store *tls_store_new(unsigned rotate_s)
{
	struct tls_store *s = xcalloc(1, sizeof *s);
	pthread_mutex_init(&s->lock, NULL);
	s->rotate_s = rotate_s ? rotate_s : 12 * 3600;
	if (ticket_new(&s->ticket) < 0) {
		pthread_mutex_destroy(&s->lock);
		free(s);
		return NULL;
	}
	s->ticket_born = time(NULL);
	atomic_init(&s->cur, NULL);
	return s;
}

void tls_store_free(struct tls_store *s)
{
	if (!s)
		return;
	set_free(atomic_load(&s->cur));
	gnutls_memset(s->ticket.data, 0, s->ticket.size);
	gnutls_free(s->ticket.data);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int tls_store_load(struct tls_store *s, const struct tls_cert_spec *specs, size_t n, size_t def,
                   char *err, size_t errlen)
{
	if (n == 0 || def >= n) {
		snprintf(err, errlen, "tls: no certificate to load");
		return -1;
	}
	struct tls_set *t = xcalloc(1, sizeof *t);
	t->certs = xcalloc(n, sizeof *t->certs);
	t->def = def;
	for (size_t i = 0; i < n; i++) {
		if (cert_load(&t->certs[i], &specs[i], err, errlen) < 0) {
			t->n = i;
			set_free(t);
			return -1;
		}
		t->n = i + 1;
	}
	pthread_mutex_lock(&s->lock);
	t->older = atomic_load(&s->cur);
	atomic_store(&s->cur, t);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static bool host_match(const struct tls_cert *c, const char *name, bool wild)
{
	for (size_t i = 0; i < c->nhosts; i++) {
		const char *h = c->hosts[i];
		if (wild != !strncmp(h, "*.", 2))
			continue;
		if (!strcasecmp(wild ? h + 2 : h, name))
			return true;
	}
	return false;
}

static int pick(const struct tls_set *t, const char *sni)
{
	if (!t)
		return -1;
	if (sni && *sni) {
		for (size_t i = 0; i < t->n; i++)
			if (host_match(&t->certs[i], sni, false))
				return (int)i;
		/* "*.example.com" covers exactly one label more. */
		const char *dot = strchr(sni, '.');
		if (dot && dot[1])
			for (size_t i = 0; i < t->n; i++)
				if (host_match(&t->certs[i], dot + 1, true))
					return (int)i;
	}
	return (int)t->def;
}

int tls_store_pick(struct tls_store *s, const char *sni)
{
	return pick(atomic_load(&s->cur), sni);
}

bool tls_store_tick(struct tls_store *s, time_t now)
{
	bool rotated = false;
	pthread_mutex_lock(&s->lock);
	if (now - s->ticket_born >= (time_t)s->rotate_s && ticket_new(&s->ticket) == 0) {
		s->ticket_born = now;
		s->rotations++;
		rotated = true;
	}
	pthread_mutex_unlock(&s->lock);
	return rotated;
}

unsigned long tls_store_rotations(struct tls_store *s)
{
	pthread_mutex_lock(&s->lock);
	unsigned long n = s->rotations;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---------- libmicrohttpd / GnuTLS glue ---------- */

void tls_session_start(struct tls_store *s, gnutls_session_t session)
{
	/* GnuTLS hands the certificate callback only the session, and MHD owns
	 * the session's user pointer; the session-cache pointer is free because
	 * resumption uses tickets, not a server-side cache. */
	gnutls_db_set_ptr(session, s);
	unsigned char key[128];
	gnutls_datum_t k = { key, 0 };
	pthread_mutex_lock(&s->lock);
	if (s->ticket.size <= sizeof key) {
		memcpy(key, s->ticket.data, s->ticket.size);
		k.size = s->ticket.size;
	}
	pthread_mutex_unlock(&s->lock);
	/* GnuTLS copies the key into the session. */
	if (k.size)
		gnutls_session_ticket_enable_server(session, &k);
	gnutls_memset(key, 0, sizeof key);
}

int tls_cert_callback(gnutls_session_t session, const struct gnutls_cert_retr_st *info,
                      gnutls_pcert_st **certs, unsigned int *certs_length,
                      gnutls_ocsp_data_st **ocsp, unsigned int *ocsp_length,
                      gnutls_privkey_t *privkey, unsigned int *flags)
{
	(void)info;
	struct tls_store *s = gnutls_db_get_ptr(session);
	const struct tls_set *t = s ? atomic_load(&s->cur) : NULL;
	char name[256];
	size_t len = sizeof name;
	unsigned type;
	const char *sni = NULL;
	if (gnutls_server_name_get(session, name, &len, &type, 0) == 0 && type == GNUTLS_NAME_DNS)
		sni = name;
	int i = pick(t, sni);
	if (i < 0)
		return -1;
	struct tls_cert *c = &t->certs[i];
	*certs = c->chain;
	*certs_length = c->nchain;
	*privkey = c->key;
	*ocsp = c->has_ocsp ? &c->ocsp : NULL;
	*ocsp_length = c->has_ocsp ? 1 : 0;
	*flags = 0;
	return 0;
}
