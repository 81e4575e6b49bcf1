/* counters.c -- per-thread counters and stable ids for edge/region names */
#include "dns/counters.h"
#include "common/xmalloc.h"

#include <pthread.h>
#include <string.h>

#define MAX_BLOCKS 256

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct counters *blocks[MAX_BLOCKS];
static unsigned nblocks;
static char *names[2][COUNTERS_MAX_IDS];
static unsigned nnames[2];

struct counters *counters_new(void)
{
	struct counters *c = xcalloc(1, sizeof *c);
	pthread_mutex_lock(&lock);
	if (nblocks < MAX_BLOCKS)
		blocks[nblocks++] = c;
	pthread_mutex_unlock(&lock);
	return c;
}

unsigned counters_id(enum counters_kind kind, const char *name)
{
	pthread_mutex_lock(&lock);
	unsigned i;
	for (i = 0; i < nnames[kind]; i++)
		if (!strcmp(names[kind][i], name))
			goto out;
	if (nnames[kind] == COUNTERS_MAX_IDS) {
		i = COUNTERS_MAX_IDS - 1; /* more names than ever configured: share the last slot */
		goto out;
	}
	names[kind][i] = xstrdup(name);
	nnames[kind]++;
out:
	pthread_mutex_unlock(&lock);
	return i;
}

const char *counters_name(enum counters_kind kind, unsigned id)
{
	pthread_mutex_lock(&lock);
	const char *n = id < nnames[kind] ? names[kind][id] : NULL;
	pthread_mutex_unlock(&lock);
	return n;
}

unsigned counters_nids(enum counters_kind kind)
{
	pthread_mutex_lock(&lock);
	unsigned n = nnames[kind];
	pthread_mutex_unlock(&lock);
	return n;
}

void counters_sum(struct counters *out)
{
	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&lock);
	for (unsigned b = 0; b < nblocks; b++) {
		/* Plain reads of fields another thread increments: a torn or stale value
		 * is acceptable for statistics, and 64-bit loads do not tear on x86-64. */
		const volatile struct counters *c = blocks[b];
		out->udp += c->udp;
		out->tcp += c->tcp;
		out->dropped += c->dropped;
		out->truncated += c->truncated;
		out->ecs += c->ecs;
		out->dynamic += c->dynamic;
		out->fail_open += c->fail_open;
		for (int i = 0; i < COUNTERS_RCODES; i++)
			out->rcode[i] += c->rcode[i];
		for (unsigned i = 0; i < nnames[0]; i++)
			out->edge[i] += c->edge[i];
		for (unsigned i = 0; i < nnames[1]; i++)
			out->region[i] += c->region[i];
	}
	pthread_mutex_unlock(&lock);
}
