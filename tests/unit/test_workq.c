/*
 * core/workq: jobs run on the queue's threads, a job no thread is free for
 * runs in the caller (never a wait on a busy queue), and many submitters at
 * once lose no job (run under ThreadSanitizer in CI).
 */
#include "core/workq.h"

#include <pthread.h>
#include <semaphore.h>

#include "harness.h"

struct job {
	struct work w;
	pthread_t ran_on;
	int ran;
	sem_t *hold;		/* when set, the job waits here before it returns */
	sem_t *started;		/* ... after posting this */
	int *counter;
};

static void job_run(struct work *w)
{
	struct job *j = (struct job *)w;

	j->ran_on = pthread_self();
	j->ran++;
	if (j->counter)
		__atomic_add_fetch(j->counter, 1, __ATOMIC_RELAXED);
	if (j->started)
		sem_post(j->started);
	if (j->hold)
		sem_wait(j->hold);
}

TEST(a_job_runs_on_a_queue_thread)
{
	struct workq *q = workq_new(2);
	struct job j = { .w.fn = job_run };
	sem_t started;

	sem_init(&started, 0, 0);
	j.started = &started;
	CHECK(q != NULL);
	CHECK_INT(workq_start(q), 0);
	workq_submit(q, &j.w);
	/* Wait until a queue thread has it, so finish cannot take it back. */
	sem_wait(&started);
	workq_finish(q, &j.w);
	CHECK_INT(j.ran, 1);
	CHECK(!pthread_equal(j.ran_on, pthread_self()));
	CHECK_INT(workq_ran_inline(q), 0);
	workq_free(q);
	sem_destroy(&started);
}

TEST(a_job_no_thread_is_free_for_runs_in_the_caller)
{
	struct workq *q = workq_new(1);
	struct job busy = { .w.fn = job_run }, next = { .w.fn = job_run };
	sem_t hold, started;

	sem_init(&hold, 0, 0);
	sem_init(&started, 0, 0);
	busy.hold = &hold;
	busy.started = &started;
	CHECK_INT(workq_start(q), 0);
	workq_submit(q, &busy.w);
	sem_wait(&started);
	/* The only thread is held inside busy: next must not wait for it. */
	workq_submit(q, &next.w);
	workq_finish(q, &next.w);
	CHECK_INT(next.ran, 1);
	CHECK(pthread_equal(next.ran_on, pthread_self()));
	CHECK_INT(workq_ran_inline(q), 1);
	sem_post(&hold);
	workq_finish(q, &busy.w);
	CHECK_INT(busy.ran, 1);
	workq_free(q);
	sem_destroy(&hold);
	sem_destroy(&started);
}

TEST(without_threads_jobs_run_in_the_caller)
{
	struct workq *q = workq_new(4);	/* never started */
	struct job a = { .w.fn = job_run }, b = { .w.fn = job_run };

	workq_submit(q, &a.w);
	workq_finish(q, &a.w);
	CHECK_INT(a.ran, 1);
	CHECK(pthread_equal(a.ran_on, pthread_self()));
	workq_free(q);

	workq_submit(NULL, &b.w);
	workq_finish(NULL, &b.w);
	CHECK_INT(b.ran, 1);
}

#define SUBMITTERS 6
#define JOBS 2000

static void *submitter(void *arg)
{
	struct workq *q = ((void **)arg)[0];
	int *counter = ((void **)arg)[1];
	struct job j[4];
	int i, k;

	for (i = 0; i < JOBS; i += 4) {
		for (k = 0; k < 4; k++) {
			j[k] = (struct job){ .w.fn = job_run, .counter = counter };
			workq_submit(q, &j[k].w);
		}
		/* Finish out of order: a queued job may sit behind others. */
		for (k = 3; k >= 0; k--)
			workq_finish(q, &j[k].w);
		for (k = 0; k < 4; k++)
			if (j[k].ran != 1)
				return (void *)1;
	}
	return NULL;
}

TEST(many_submitters_lose_no_job)
{
	struct workq *q = workq_new(3);
	pthread_t t[SUBMITTERS];
	int counter = 0, i, bad = 0;
	void *args[2] = { q, &counter }, *ret;

	CHECK_INT(workq_start(q), 0);
	for (i = 0; i < SUBMITTERS; i++)
		pthread_create(&t[i], NULL, submitter, args);
	for (i = 0; i < SUBMITTERS; i++) {
		pthread_join(t[i], &ret);
		bad += ret != NULL;
	}
	CHECK_INT(bad, 0);
	CHECK_INT(__atomic_load_n(&counter, __ATOMIC_RELAXED), SUBMITTERS * JOBS);
	workq_free(q);
}

int main(void)
{
	RUN(a_job_runs_on_a_queue_thread);
	RUN(a_job_no_thread_is_free_for_runs_in_the_caller);
	RUN(without_threads_jobs_run_in_the_caller);
	RUN(many_submitters_lose_no_job);
	return harness_done();
}
