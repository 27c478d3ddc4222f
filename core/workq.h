/*
 * workq: a few long-lived threads that run a job beside the caller.
 *
 * A FUSE request that needs two S3 answers at once (a lookup's directory
 * probe beside its GET) hands one to the queue, does the other itself, then
 * calls workq_finish. Creating a thread per request cost 0.1-0.4 ms on the
 * test machine; these threads are made once.
 *
 * workq_finish never waits on a job that no thread has started: it takes it
 * back and runs it in the caller. So a full queue, or a queue whose threads
 * could not be created, only makes the two answers come one after the other;
 * it cannot deadlock or fail.
 *
 *	struct work w = { .fn = probe };
 *	workq_submit(q, &w);
 *	... the other request ...
 *	workq_finish(q, &w);	// w.fn has run, here or on a queue thread
 */
#ifndef IRSAFS_CORE_WORKQ_H
#define IRSAFS_CORE_WORKQ_H

struct work {
	void (*fn)(struct work *w);	/* the job; embed struct work to pass state */
	/* Private to workq.c. */
	int state;
	struct work *next;
};

struct workq;

/* A queue served by up to nthreads threads (none run until workq_start). */
struct workq *workq_new(unsigned nthreads);

/* Start the threads: after any fork (daemonizing). 0, or -errno if none started. */
int workq_start(struct workq *q);

/* Queue w; w must stay valid until workq_finish(q, w) returns. q may be NULL. */
void workq_submit(struct workq *q, struct work *w);

/* Return once w->fn has run: in this thread if no queue thread took it yet. */
void workq_finish(struct workq *q, struct work *w);

/* Jobs run in the caller so far because no thread was free (for tests and logs). */
unsigned long long workq_ran_inline(struct workq *q);

/* Stop the threads after the jobs still queued have been taken back or run. */
void workq_free(struct workq *q);

#endif
