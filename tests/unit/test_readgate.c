/*
 * fs/readgate: the gate the FUSE threads pass before each read of /dev/fuse.
 * An open gate is passed at once; a closed one holds a thread until it opens
 * or for READGATE_MAX_MS at most; a thread cancelled while it waits (as
 * libfuse cancels its workers at exit) leaves the gate usable.
 */
#include "fs/readgate.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "core/strutil.h"
#include "harness.h"

struct passer {
	pthread_t thread;
	int rc;
	long long took_ms;
};

static void *pass_thread(void *arg)
{
	struct passer *p = arg;
	long long t0 = clock_mono_ms();

	p->rc = readgate_pass();
	p->took_ms = clock_mono_ms() - t0;
	return NULL;
}

/* Start a thread at the gate and return once it waits there. */
static void start_waiting(struct passer *p)
{
	unsigned long long before = readgate_waits();

	CHECK_INT(pthread_create(&p->thread, NULL, pass_thread, p), 0);
	while (readgate_waits() == before)
		usleep(100);
}

TEST(an_open_gate_is_passed_at_once)
{
	unsigned long long before = readgate_waits();

	CHECK_INT(readgate_pass(), 0);
	readgate_close();
	readgate_open();
	CHECK_INT(readgate_pass(), 0);
	CHECK(readgate_waits() == before);
}

TEST(a_closed_gate_holds_until_it_opens)
{
	struct passer p = { 0 };
	int i, opened = 0;

	/* Retried: on a machine slow enough, the bound may pass before the open. */
	for (i = 0; i < 5 && !opened; i++) {
		readgate_close();
		start_waiting(&p);
		readgate_open();
		CHECK_INT(pthread_join(p.thread, NULL), 0);
		CHECK(p.rc == 1 || p.rc == -1);
		opened = p.rc == 1;
	}
	CHECK(opened);
	CHECK_INT(readgate_pass(), 0);
}

TEST(a_gate_left_closed_holds_no_longer_than_its_bound)
{
	struct passer p = { 0 };

	readgate_close();
	start_waiting(&p);
	CHECK_INT(pthread_join(p.thread, NULL), 0);
	CHECK_INT(p.rc, -1);
	CHECK(p.took_ms >= READGATE_MAX_MS);
	/* And a second thread too: the gate is still closed. */
	CHECK_INT(readgate_pass(), -1);
	readgate_open();
	CHECK_INT(readgate_pass(), 0);
}

TEST(a_thread_cancelled_at_the_gate_leaves_it_usable)
{
	struct passer p = { 0 };
	void *res;

	readgate_close();
	start_waiting(&p);
	CHECK_INT(pthread_cancel(p.thread), 0);
	CHECK_INT(pthread_join(p.thread, &res), 0);
	/* Its lock is free: opening and closing again does not hang. */
	readgate_open();
	readgate_close();
	readgate_open();
	CHECK_INT(readgate_pass(), 0);
}

int main(void)
{
	RUN(an_open_gate_is_passed_at_once);
	RUN(a_closed_gate_holds_until_it_opens);
	RUN(a_gate_left_closed_holds_no_longer_than_its_bound);
	RUN(a_thread_cancelled_at_the_gate_leaves_it_usable);
	return harness_done();
}
