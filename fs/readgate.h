/*
 * readgate: holds the FUSE threads back from reading the kernel while
 * fs/nodetrim.c asks it to forget names.
 *
 * The kernel queues one FORGET for each name it lets go, and each one wakes
 * a thread asleep in read(2) on /dev/fuse, which then takes that one FORGET:
 * a prune of 256 names cost some 256 wakeups (`ls -l` of a million keys:
 * about a third of the daemon's CPU). While the gate is closed, a thread
 * that comes back for its next request waits here instead, so the FORGETs
 * pile up in the kernel and go out as a few BATCH_FORGETs once it opens;
 * only the threads already asleep in read(2) take one each.
 *
 * The gate is closed only while one batch of names is let go: the write of
 * one prune message, which the kernel carries out without waiting for this
 * process, or (kernels without it) one invalidation per name, each of which
 * takes its directory's lock, which a lookup waiting for its answer may hold.
 * So a thread waits at most READGATE_MAX_MS, for a gate left closed too: no
 * request is held longer than that, and the lookup's answer gets out. A
 * thread cancelled while it waits (libfuse cancels its workers at exit)
 * leaves the lock free.
 *
 * One FUSE session per process (as fs/resume.c): the gate is process-wide.
 * Every function may be called from any thread.
 */
#ifndef IRSAFS_FS_READGATE_H
#define IRSAFS_FS_READGATE_H

#define READGATE_MAX_MS 50

/* Close the gate: threads about to read the kernel wait. */
void readgate_close(void);

/* Open it: the waiting threads go on. */
void readgate_open(void);

/*
 * Before each read of /dev/fuse. 0: the gate was open; 1: it opened while
 * this thread waited; -1: it stayed closed for READGATE_MAX_MS.
 */
int readgate_pass(void);

/* How many times a thread waited at the gate (for tests and the books). */
unsigned long long readgate_waits(void);

#endif
