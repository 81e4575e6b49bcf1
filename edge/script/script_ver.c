/* script_ver.c -- bundle versions and per-script counters */
#include "edge/script/script_ver.h"
#include "common/xmalloc.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *script_err_name(enum script_err k)
{
	static const char *n[SERR_N] = { "runtime", "instructions", "time", "memory", "response" };
	return (unsigned)k < SERR_N ? n[k] : "?";
}

/* ---------- counters ---------- */

struct script_stats *script_stats_get(struct script_stats_set *set, const char *name)
{
	pthread_mutex_lock(&set->mu);
	struct script_stats *s = set->head;
	while (s && strcmp(s->name, name) != 0)
		s = s->next;
	if (!s) {
		/* aligned: each counter slot owns a cache line */
		size_t sz = (sizeof *s + 63) & ~(size_t)63;
		s = aligned_alloc(64, sz);
		if (!s)
			abort();
		memset(s, 0, sz);
		snprintf(s->name, sizeof s->name, "%s", name);
		s->next = set->head;
		set->head = s;
	}
	pthread_mutex_unlock(&set->mu);
	return s;
}

/* This thread's counter slot, assigned round-robin on first use.  Static
 * and thread-local on purpose: the slot belongs to the thread (whatever
 * scripts object it runs for), and finding it must cost nothing per
 * request. */
static unsigned stat_slot(void)
{
	static atomic_uint next_slot;
	static _Thread_local int mine = -1;
	if (mine < 0)
		mine = (int)(atomic_fetch_add(&next_slot, 1) % SCRIPT_STAT_SLOTS);
	return (unsigned)mine;
}

void script_stats_count(struct script_stats *st, long long run_us)
{
	struct script_stat_slot *slot = &st->slot[stat_slot()];
	atomic_fetch_add_explicit(&slot->invocations, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&slot->time_us, (unsigned long long)run_us, memory_order_relaxed);
}

static unsigned long long slot_sum(const struct script_stats *st, bool time)
{
	unsigned long long n = 0;
	for (int i = 0; i < SCRIPT_STAT_SLOTS; i++)
		n += atomic_load_explicit(time ? &st->slot[i].time_us : &st->slot[i].invocations,
		                          memory_order_relaxed);
	return n;
}

void script_stats_metrics(struct script_stats_set *set, struct buf *out)
{
	pthread_mutex_lock(&set->mu);
	buf_puts(out, "# HELP minicdn_script_invocations_total Requests handled by each script.\n"
	              "# TYPE minicdn_script_invocations_total counter\n");
	for (struct script_stats *st = set->head; st; st = st->next)
		buf_printf(out, "minicdn_script_invocations_total{script=\"%s\"} %llu\n", st->name,
		           slot_sum(st, false));
	buf_puts(out, "# HELP minicdn_script_passes_total Requests a script passed on (returned nil).\n"
	              "# TYPE minicdn_script_passes_total counter\n");
	for (struct script_stats *st = set->head; st; st = st->next)
		buf_printf(out, "minicdn_script_passes_total{script=\"%s\"} %llu\n", st->name,
		           (unsigned long long)atomic_load(&st->passes));
	buf_puts(out, "# HELP minicdn_script_errors_total Script failures by kind.\n"
	              "# TYPE minicdn_script_errors_total counter\n");
	for (struct script_stats *st = set->head; st; st = st->next)
		for (int k = 0; k < SERR_N; k++)
			buf_printf(out, "minicdn_script_errors_total{script=\"%s\",kind=\"%s\"} %llu\n", st->name,
			           script_err_name((enum script_err)k),
			           (unsigned long long)atomic_load(&st->errors[k]));
	buf_puts(out, "# HELP minicdn_script_seconds_total Time spent running each script.\n"
	              "# TYPE minicdn_script_seconds_total counter\n");
	for (struct script_stats *st = set->head; st; st = st->next)
		buf_printf(out, "minicdn_script_seconds_total{script=\"%s\"} %.6f\n", st->name,
		           (double)slot_sum(st, true) / 1e6);
	pthread_mutex_unlock(&set->mu);
}

void script_stats_free(struct script_stats_set *set)
{
	while (set->head) {
		struct script_stats *n = set->head->next;
		free(set->head);
		set->head = n;
	}
}

/* ---------- versions ---------- */

struct script_ver *script_ver_new(const char *env, size_t envlen, const struct bundle_keys *keys,
                                  uint64_t seq, struct script_stats_set *set, char *err, size_t errlen)
{
	char *raw = NULL;
	size_t rawlen = 0;
	struct bundle *b = bundle_open_any(env, envlen, keys, &raw, &rawlen, err, errlen);
	if (!b)
		return NULL;
	struct script_ver *v = xcalloc(1, sizeof *v);
	atomic_init(&v->refs, 1);
	v->seq = seq;
	v->b = b;
	v->raw = raw;
	v->rawlen = rawlen;
	v->env = xstrndup(env, envlen);
	v->envlen = envlen;
	bundle_digest_hex(raw, rawlen, v->digest);
	v->activated = (long long)time(NULL);
	v->stats = script_stats_get(set, b->name);
	return v;
}

void script_ver_release(struct script_ver *v)
{
	if (v && atomic_fetch_sub(&v->refs, 1) == 1) {
		bundle_free(v->b);
		free(v->raw);
		free(v->env);
		free(v);
	}
}
