/*
 * The gate in front of the reads of /dev/fuse (fs/readgate.h says why).
 * State: closed is written under lock and read without it first, so an open
 * gate costs a pass one atomic load. Invariant: a thread leaves
 * readgate_pass within READGATE_MAX_MS of entering it, and never holds lock
 * when it leaves, by return or by cancellation.
 */
#include "fs/readgate.h"

#include <pthread.h>
#include <time.h>

#include "core/strutil.h"

static struct {
	pthread_mutex_t lock;
	pthread_cond_t opened;
	int closed;			/* atomic; written under lock */
	unsigned long long waits;	/* atomic */
} gate = { .lock = PTHREAD_MUTEX_INITIALIZER, .opened = PTHREAD_COND_INITIALIZER };

void readgate_close(void)
{
	pthread_mutex_lock(&gate.lock);
	__atomic_store_n(&gate.closed, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&gate.lock);
}

void readgate_open(void)
{
	pthread_mutex_lock(&gate.lock);
	__atomic_store_n(&gate.closed, 0, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&gate.opened);
	pthread_mutex_unlock(&gate.lock);
}

static void unlock(void *lock)
{
	pthread_mutex_unlock(lock);
}

int readgate_pass(void)
{
	long long deadline;
	struct timespec ts;
	int rc;

	if (!__atomic_load_n(&gate.closed, __ATOMIC_ACQUIRE))
		return 0;
	deadline = clock_mono_ms() + READGATE_MAX_MS;
	__atomic_add_fetch(&gate.waits, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&gate.lock);
	/* pthread_cond_timedwait is a cancellation point: the lock must not stay taken. */
	pthread_cleanup_push(unlock, &gate.lock);
	while (gate.closed && clock_mono_ms() < deadline) {
		/* The condition's clock is the wall clock; the deadline is monotonic. */
		clock_real_in_ms(&ts, 10);
		pthread_cond_timedwait(&gate.opened, &gate.lock, &ts);
	}
	rc = gate.closed ? -1 : 1;
	pthread_cleanup_pop(1);
	return rc;
}

unsigned long long readgate_waits(void)
{
	return __atomic_load_n(&gate.waits, __ATOMIC_RELAXED);
}
