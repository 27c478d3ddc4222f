/*
 * The registry: a list of the entries that stream, and a small ring of the
 * streams that ended lately (their prints), each with a copy of its key.
 * Both are short (a few streams at once are what makes sharing matter), so
 * a query walks them whole.
 */
#include "cache/rashare.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Streams that ended, remembered for clips: the most recent ones. */
#define RASHARE_PRINTS 16

struct rashare_print {
	char *key;			/* NULL: unused */
	long long lo, hi;
	long long at_ms;
};

struct rashare {
	long idle_ms;
	long memory_ms;
	long long min_print;
	long long shadow_max;
	pthread_mutex_t lock;		/* guards locked; a leaf lock */
	struct {
		struct rashare_entry *head;
		struct rashare_print prints[RASHARE_PRINTS];
		unsigned next_print;
	} locked;
};

struct rashare *rashare_new(long idle_ms, long memory_ms, long long min_print,
			    long long shadow_max)
{
	struct rashare *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->idle_ms = idle_ms;
	r->memory_ms = memory_ms;
	r->min_print = min_print;
	r->shadow_max = shadow_max;
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

void rashare_free(struct rashare *r)
{
	unsigned i;

	if (!r)
		return;
	for (i = 0; i < RASHARE_PRINTS; i++)
		free(r->locked.prints[i].key);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

void rashare_enter(struct rashare_entry *e)
{
	__atomic_add_fetch(&e->waiting, 1, __ATOMIC_ACQ_REL);
}

void rashare_exit(struct rashare_entry *e, long long hi, long long now_ms)
{
	/* hi only grows: concurrent reads on one file may end out of order. */
	long long cur = __atomic_load_n(&e->hi, __ATOMIC_RELAXED);

	while (hi > cur && !__atomic_compare_exchange_n(&e->hi, &cur, hi, 0, __ATOMIC_RELEASE,
							 __ATOMIC_RELAXED))
		;
	__atomic_store_n(&e->last_ms, now_ms, __ATOMIC_RELEASE);
	__atomic_sub_fetch(&e->waiting, 1, __ATOMIC_ACQ_REL);
}

void rashare_busy(struct rashare_entry *e, unsigned n)
{
	__atomic_store_n(&e->busy, n, __ATOMIC_RELEASE);
}

long long rashare_away_ms(const struct rashare_entry *e, long long now_ms)
{
	long long last = __atomic_load_n(&e->last_ms, __ATOMIC_ACQUIRE);

	if (__atomic_load_n(&e->waiting, __ATOMIC_ACQUIRE) || !last || now_ms < last)
		return 0;
	return now_ms - last;
}

int rashare_idle(const struct rashare *r, const struct rashare_entry *e, long long now_ms)
{
	return rashare_away_ms(e, now_ms) > r->idle_ms;
}

void rashare_join(struct rashare *r, struct rashare_entry *e, const char *key, long long lo)
{
	if (e->joined)
		return;
	pthread_mutex_lock(&r->lock);
	e->key = key;
	e->lo = lo;
	__atomic_store_n(&e->hi, lo, __ATOMIC_RELEASE);
	e->prev = NULL;
	e->next = r->locked.head;
	if (e->next)
		e->next->prev = e;
	r->locked.head = e;
	pthread_mutex_unlock(&r->lock);
	e->joined = 1;
}

/* Keep [lo, hi) of key for clips; out of memory, the print is just not kept. */
static void remember_locked(struct rashare *r, const char *key, long long lo, long long hi,
			    long long now_ms)
{
	struct rashare_print *p = &r->locked.prints[r->locked.next_print];
	char *copy = strdup(key);

	if (!copy)
		return;
	free(p->key);
	p->key = copy;
	p->lo = lo;
	p->hi = hi;
	p->at_ms = now_ms;
	r->locked.next_print = (r->locked.next_print + 1) % RASHARE_PRINTS;
}

void rashare_leave(struct rashare *r, struct rashare_entry *e)
{
	long long hi;

	if (!e->joined)
		return;
	hi = __atomic_load_n(&e->hi, __ATOMIC_ACQUIRE);
	pthread_mutex_lock(&r->lock);
	if (e->prev)
		e->prev->next = e->next;
	else
		r->locked.head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	e->prev = e->next = NULL;
	if (hi - e->lo >= r->min_print)
		remember_locked(r, e->key, e->lo, hi, __atomic_load_n(&e->last_ms,
								      __ATOMIC_ACQUIRE));
	pthread_mutex_unlock(&r->lock);
	e->joined = 0;
}

/* Another stream's range [lo, hi), seen from e's reader at pos. */
static void look_locked(const struct rashare *r, const struct rashare_entry *e, long long lo,
			long long hi, long long pos, long long *clip, int *shadow)
{
	if (lo >= pos) {
		if (lo < *clip)
			*clip = lo;
	} else if (e->lo < lo && pos < hi && pos - lo < r->shadow_max) {
		*shadow = 1;
	}
}

unsigned rashare_query(struct rashare *r, const struct rashare_entry *e, long long pos,
		       long long now_ms, long long *clip, int *shadow)
{
	const struct rashare_entry *s;
	unsigned active = 1, i;

	*clip = LLONG_MAX;
	*shadow = 0;
	if (!e->key)
		return active;
	pthread_mutex_lock(&r->lock);
	for (s = r->locked.head; s; s = s->next) {
		if (s == e)
			continue;
		/* A reader inside, or parts in flight for one that has not stopped. */
		if (__atomic_load_n(&s->waiting, __ATOMIC_ACQUIRE) ||
		    (__atomic_load_n(&s->busy, __ATOMIC_ACQUIRE) && !rashare_idle(r, s, now_ms)))
			active++;
		if (!strcmp(s->key, e->key))
			look_locked(r, e, s->lo, __atomic_load_n(&s->hi, __ATOMIC_ACQUIRE), pos,
				    clip, shadow);
	}
	for (i = 0; i < RASHARE_PRINTS; i++) {
		const struct rashare_print *p = &r->locked.prints[i];

		if (p->key && now_ms - p->at_ms <= r->memory_ms && !strcmp(p->key, e->key))
			look_locked(r, e, p->lo, p->hi, pos, clip, shadow);
	}
	pthread_mutex_unlock(&r->lock);
	return active;
}
