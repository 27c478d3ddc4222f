#include "core/workq.h"

#include <pthread.h>
#include <stdlib.h>

#define WORKQ_MAX_THREADS 16

/* w->state, guarded by the queue's lock once w is queued. */
enum { WORK_QUEUED = 1, WORK_RUNNING, WORK_DONE };

struct workq {
	unsigned want;			/* threads to start */
	unsigned nthreads;		/* threads started */
	pthread_t threads[WORKQ_MAX_THREADS];
	pthread_mutex_t lock;		/* guards locked and every queued w->state */
	pthread_cond_t queued;		/* a job was queued, or stop */
	pthread_cond_t done;		/* a queue thread finished a job */
	struct {
		struct work *head, *tail;
		int stop;
		unsigned long long ran_inline;
	} locked;
};

struct workq *workq_new(unsigned nthreads)
{
	struct workq *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->want = nthreads < WORKQ_MAX_THREADS ? nthreads : WORKQ_MAX_THREADS;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->queued, NULL);
	pthread_cond_init(&q->done, NULL);
	return q;
}

static void *workq_thread(void *arg)
{
	struct workq *q = arg;
	struct work *w;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->locked.head && !q->locked.stop)
			pthread_cond_wait(&q->queued, &q->lock);
		w = q->locked.head;
		if (!w)
			break;
		q->locked.head = w->next;
		if (!q->locked.head)
			q->locked.tail = NULL;
		w->state = WORK_RUNNING;
		pthread_mutex_unlock(&q->lock);

		w->fn(w);

		pthread_mutex_lock(&q->lock);
		/* The submitter may free w as soon as it sees this: no touching after. */
		w->state = WORK_DONE;
		pthread_cond_broadcast(&q->done);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int workq_start(struct workq *q)
{
	int rc = 0;

	while (q->nthreads < q->want) {
		rc = pthread_create(&q->threads[q->nthreads], NULL, workq_thread, q);
		if (rc)
			break;
		q->nthreads++;
	}
	return q->nthreads || !q->want ? 0 : -rc;
}

void workq_submit(struct workq *q, struct work *w)
{
	w->state = 0;
	w->next = NULL;
	if (!q || !q->nthreads)
		return;
	pthread_mutex_lock(&q->lock);
	w->state = WORK_QUEUED;
	if (q->locked.tail)
		q->locked.tail->next = w;
	else
		q->locked.head = w;
	q->locked.tail = w;
	pthread_cond_signal(&q->queued);
	pthread_mutex_unlock(&q->lock);
}

/* Take a job no thread has started out of the queue. */
static void unlink_locked(struct workq *q, struct work *w)
{
	struct work **link = &q->locked.head, *prev = NULL;

	while (*link != w) {
		prev = *link;
		link = &(*link)->next;
	}
	*link = w->next;
	if (q->locked.tail == w)
		q->locked.tail = prev;
	w->next = NULL;
}

void workq_finish(struct workq *q, struct work *w)
{
	/* Not queued (workq_submit's test): nobody else has seen w. */
	if (!q || !q->nthreads) {
		if (q) {
			pthread_mutex_lock(&q->lock);
			q->locked.ran_inline++;
			pthread_mutex_unlock(&q->lock);
		}
		w->fn(w);
		return;
	}
	pthread_mutex_lock(&q->lock);
	if (w->state == WORK_QUEUED) {
		/* No thread has taken it yet (all busy, or not awake): do it here. */
		unlink_locked(q, w);
		q->locked.ran_inline++;
		pthread_mutex_unlock(&q->lock);
		w->fn(w);
		return;
	}
	while (w->state != WORK_DONE)
		pthread_cond_wait(&q->done, &q->lock);
	pthread_mutex_unlock(&q->lock);
}

unsigned long long workq_ran_inline(struct workq *q)
{
	unsigned long long n;

	pthread_mutex_lock(&q->lock);
	n = q->locked.ran_inline;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void workq_free(struct workq *q)
{
	unsigned i;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->locked.stop = 1;
	pthread_cond_broadcast(&q->queued);
	pthread_mutex_unlock(&q->lock);
	for (i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	pthread_cond_destroy(&q->done);
	pthread_cond_destroy(&q->queued);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
