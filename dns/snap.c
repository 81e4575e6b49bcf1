/* snap.c -- snapshot loading and the lock-free view swap (QSBR) */
#include "dns/snap.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------- snapshot ---------- */

static atomic_uint_fast64_t next_generation = 1;

struct snapshot *snapshot_load(const char *config_path, char *err, size_t errlen)
{
	long long t0 = daemon_now_ms();
	struct snapshot *s = xcalloc(1, sizeof *s);
	const char **names = NULL;
	if (dns_conf_load(config_path, &s->conf, err, errlen) < 0)
		goto fail;
	s->nzones = s->conf.n_zones;
	s->zones = xcalloc(s->nzones, sizeof *s->zones);
	for (size_t i = 0; i < s->nzones; i++) {
		s->zones[i] = zone_load(s->conf.zones[i].name, s->conf.zones[i].file, err, errlen);
		if (!s->zones[i])
			goto fail;
		for (size_t j = 0; j < i; j++)
			if (s->zones[j]->apex_len == s->zones[i]->apex_len &&
			    !memcmp(s->zones[j]->apex, s->zones[i]->apex, s->zones[i]->apex_len)) {
				snprintf(err, errlen, "%s: zone %s listed twice", config_path, s->conf.zones[i].name);
				goto fail;
			}
	}
	for (size_t d = 0; d < s->conf.n_dynamic; d++) {
		/* The dynamic name goes into the deepest zone containing it. */
		struct zone *best = NULL;
		for (size_t i = 0; i < s->nzones; i++)
			if (zone_contains_text(s->zones[i], s->conf.dynamic[d]) &&
			    (!best || s->zones[i]->apex_len > best->apex_len))
				best = s->zones[i];
		char why[300];
		if (!best) {
			snprintf(err, errlen, "%s: dynamic name '%s' is in no configured zone", config_path,
			         s->conf.dynamic[d]);
			goto fail;
		}
		if (zone_add_dynamic(best, s->conf.dynamic[d], why, sizeof why) < 0) {
			snprintf(err, errlen, "%s: %s", config_path, why);
			goto fail;
		}
	}
	s->es = edgeset_new(&s->conf, err, errlen);
	if (!s->es)
		goto fail;
	names = xcalloc(s->es->nr, sizeof *names);
	for (size_t i = 0; i < s->es->nr; i++)
		names[i] = s->es->regions[i].name;
	s->geo = geo_load(s->conf.map, s->conf.geoip, names, s->es->nr, err, errlen);
	if (!s->geo)
		goto fail;
	free(names);
	names = NULL;
	if (digest_config(&s->conf, s->digest, err, errlen) < 0)
		goto fail;
	s->generation = atomic_fetch_add(&next_generation, 1);
	s->load_ms = daemon_now_ms() - t0;
	s->loaded_at = daemon_wall_ms();
	return s;
fail:
	free(names);
	snapshot_free(s);
	return NULL;
}

void snapshot_free(struct snapshot *s)
{
	if (!s)
		return;
	for (size_t i = 0; s->zones && i < s->nzones; i++)
		zone_free(s->zones[i]);
	free(s->zones);
	geo_free(s->geo);
	edgeset_free(s->es);
	dns_conf_free(&s->conf);
	free(s);
}

/* ---------- QSBR ---------- */

struct reader {
	_Atomic uint64_t seq; /* odd: inside a read-side section */
	_Atomic int used;
	char pad[64 - sizeof(uint64_t) - sizeof(int)];
};

static struct reader readers[QSBR_MAX_READERS] __attribute__((aligned(64)));
static _Atomic(struct view *) current;
static pthread_mutex_t pub_lock = PTHREAD_MUTEX_INITIALIZER;

int qsbr_register(void)
{
	for (int i = 0; i < QSBR_MAX_READERS; i++) {
		int expect = 0;
		if (atomic_compare_exchange_strong(&readers[i].used, &expect, 1)) {
			atomic_store(&readers[i].seq, 0);
			return i;
		}
	}
	abort(); /* more reader threads than QSBR_MAX_READERS: a programming error */
}

void qsbr_unregister(int slot)
{
	atomic_store(&readers[slot].seq, 0);
	atomic_store(&readers[slot].used, 0);
}

void qsbr_enter(int slot)
{
	/* seq_cst: the odd seq must be visible before we load the view pointer. */
	atomic_fetch_add_explicit(&readers[slot].seq, 1, memory_order_seq_cst);
}

void qsbr_leave(int slot)
{
	atomic_fetch_add_explicit(&readers[slot].seq, 1, memory_order_release);
}

const struct view *view_current(void)
{
	return atomic_load_explicit(&current, memory_order_acquire);
}

static void qsbr_synchronize(void)
{
	uint64_t seen[QSBR_MAX_READERS];
	for (int i = 0; i < QSBR_MAX_READERS; i++)
		seen[i] = atomic_load(&readers[i].seq);
	for (int i = 0; i < QSBR_MAX_READERS; i++) {
		if (!(seen[i] & 1))
			continue;
		/* Inside a section that may have loaded the old view: wait until it leaves. */
		while (atomic_load(&readers[i].seq) == seen[i]) {
			struct timespec ts = { 0, 100000 };
			nanosleep(&ts, NULL);
		}
	}
}

void view_lock(void)
{
	pthread_mutex_lock(&pub_lock);
}

void view_unlock(void)
{
	pthread_mutex_unlock(&pub_lock);
}

void view_publish(struct snapshot *s, const struct edge_health *h)
{
	struct view *v = xcalloc(1, sizeof *v);
	v->snap = s;
	v->choice = choice_new(s->es, h);
	struct view *old = atomic_exchange_explicit(&current, v, memory_order_acq_rel);
	if (!old)
		return;
	qsbr_synchronize();
	choice_free(old->choice);
	if (old->snap != s)
		snapshot_free(old->snap);
	free(old);
}

void view_shutdown(void)
{
	struct view *old = atomic_exchange(&current, NULL);
	if (!old)
		return;
	choice_free(old->choice);
	snapshot_free(old->snap);
	free(old);
}
