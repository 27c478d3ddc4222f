/*
 * One thread: wait until the table, less the names let go whose FORGET is
 * due, passes the names' share; then ask the kernel to forget the least
 * recently used names, in batches, until it is down to 7/8 of the share
 * (fs/nodetrim.h says why and what it costs).
 * Invariants: stop is only set by nodetrim_stop, which then wakes the
 * table's wait, so the thread ends within one batch.
 */
#include "fs/nodetrim.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "core/log.h"
#include "core/strutil.h"
#include "fs/inode.h"
#include "fs/irsafs.h"
#include "fs/readgate.h"

#define TRIM_BATCH 256
/*
 * The names' share never goes below this: readdirplus gives the kernel a
 * whole getdents buffer of names before the reader stats the first of
 * them (ls: 32 KiB, over 1,000 short names), and a name let go before its
 * stat costs a lookup. A floor of 1 MiB (some 4,000 names) let 1,655 of
 * 200,000 go early in `ls -l`; 8 MiB holds over 30,000.
 */
#define FLOOR ((size_t)8 << 20)
/* How often the share is read again while it depends on the listings. */
#define SHARE_POLL_MS 1000
/* Freed pages go back to the kernel at most this often. */
#define TRIM_EVERY_MS 1000
/*
 * ... and also when the listings shrank by this much: a huge listing let go
 * (one over the cache, or past its TTL) left its pages in the listing
 * thread's malloc arena, which no node reuses (`ls -l` of 1,000,000 keys
 * under the default 64M: 87 MB free in the arenas, RSS 81 MiB after).
 */
#define LISTINGS_FELL ((size_t)8 << 20)
/* When every file is let go and the FORGETs have not come yet. */
#define FORGET_WAIT_MS 100

/*
 * The kernel's FUSE_NOTIFY_PRUNE (recent kernels; Linux 6.18 has it): forget these
 * inodes where nothing uses them, without the directory's lock. libfuse
 * 3.14 has no call for it, so the message is written as the kernel's
 * include/uapi/linux/fuse.h lays it out: the out header (unique 0, the
 * notification's code in error), then the count, then the node ids.
 */
#define NOTIFY_PRUNE 9
struct prune_msg {
	uint32_t len;
	int32_t code;
	uint64_t unique;
	uint32_t count;
	uint32_t padding;
	uint64_t spare;
};

struct nodetrim {
	struct irsafs *fs;
	size_t budget;
	size_t floor;
	nodetrim_others_fn others;
	void *arg;
	pthread_t thread;
	int no_prune;			/* the kernel refused NOTIFY_PRUNE: by name */
	int stop;			/* atomic */
	unsigned long long let_go;	/* atomic */
};

/* The names' share when the listings hold others: the budget less that, at least the floor. */
static size_t share(const struct nodetrim *nt, size_t others)
{
	size_t s = others < nt->budget ? nt->budget - others : 0;

	return s > nt->floor ? s : nt->floor;
}

/*
 * Prune n nodes in one message: 0 (also when the connection is gone), or -1
 * when the kernel does not know the message.
 */
static int prune(struct nodetrim *nt, const struct inode_name *batch, size_t n)
{
	uint64_t ids[TRIM_BATCH];
	struct prune_msg m = { 0 };
	struct iovec iov[2];
	size_t i;
	ssize_t w;

	for (i = 0; i < n; i++)
		ids[i] = batch[i].ino;
	m.len = (uint32_t)(sizeof(m) + n * sizeof(ids[0]));
	m.code = NOTIFY_PRUNE;
	m.count = (uint32_t)n;
	iov[0] = (struct iovec){ &m, sizeof(m) };
	iov[1] = (struct iovec){ ids, n * sizeof(ids[0]) };
	w = writev(fuse_session_fd(nt->fs->se), iov, 2);
	if (w == (ssize_t)m.len || (w < 0 && errno != EINVAL))
		return 0;
	log_msg(LOG_NOTICE, "this kernel does not prune names by number (FUSE_NOTIFY_PRUNE, Linux "
		"6.18): files are let go one by one, by name, which is slower, and directories "
		"not at all");
	return -1;
}

/* Ask the kernel to forget one batch, of about bytes; how many names it held. */
static size_t let_go_batch(struct nodetrim *nt, size_t share_now, size_t bytes)
{
	struct inode_name batch[TRIM_BATCH];
	size_t n, i, kept = 0;
	int rc;

	/*
	 * By name, directories stay: an invalidation detaches a directory in
	 * use (a process working there would have no path).
	 */
	n = inode_pick_unused(nt->fs->inodes, batch, TRIM_BATCH, bytes, !nt->no_prune);
	/*
	 * The kernel evicts the nodes inside the prune's write or each
	 * invalidation: their FORGETs pile up behind the gate meanwhile. An
	 * invalidation takes its directory's lock, which a lookup waiting for
	 * its answer may hold: the gate's bound lets that answer out.
	 */
	readgate_close();
	if (n && !nt->no_prune && prune(nt, batch, n) != 0)
		nt->no_prune = 1;
	if (n && nt->no_prune) {
		for (i = 0; i < n; i++) {
			if (batch[i].is_dir) {
				inode_keep_dir(nt->fs->inodes, batch[i].ino);
				kept++;
				continue;
			}
			rc = fuse_lowlevel_notify_inval_entry(nt->fs->se, batch[i].parent,
							      batch[i].name, strlen(batch[i].name));
			/* -ENOENT: the kernel had let it go already. */
			if (rc != 0 && rc != -ENOENT)
				log_once(LOG_DEBUG, "the kernel would not forget a name (%s)",
					 strerror(-rc));
		}
	}
	readgate_open();
	for (i = 0; i < n; i++)
		free(batch[i].name);
	if (n > kept) {
		__atomic_add_fetch(&nt->let_go, n - kept, __ATOMIC_RELAXED);
		log_once_key(LOG_NOTICE, "nodetrim", "the names the kernel holds take more than "
			     "their share of --metadata-cache-size (%zu KiB now): the least recently "
			     "used are let go; a later lookup of one reads its directory's listing "
			     "if kept, else asks S3", share_now >> 10);
	}
	return n;
}

static void *trim_main(void *arg)
{
	struct nodetrim *nt = arg;
	struct inode_table *t = nt->fs->inodes;
	long long trimmed_ms = 0;
	size_t others_high = 0;		/* the most the listings held since the last trim */
	int trim_due = 0;

	while (!__atomic_load_n(&nt->stop, __ATOMIC_ACQUIRE)) {
		size_t others = nt->others ? nt->others(nt->arg) : 0;
		size_t limit = share(nt, others), going, bytes = inode_bytes(t, &going);
		size_t kept = bytes - going, target, n = 1;
		int rc;

		if (others > others_high)
			others_high = others;
		else if (others_high - others >= LISTINGS_FELL)
			trim_due = 1;

		if (kept > limit) {
			/*
			 * Down to 7/8 of the share in one go, not a batch per name
			 * over it: the kernel then sends their FORGETs in batches.
			 */
			target = limit - limit / 8;
			while (kept > target && !__atomic_load_n(&nt->stop, __ATOMIC_ACQUIRE) &&
			       (n = let_go_batch(nt, limit, kept - target)) > 0) {
				bytes = inode_bytes(t, &going);
				kept = bytes - going;
			}
			trim_due = 1;
			if (n == 0 && kept > limit) {
				/* Nothing left to let go (open files): look again later. */
				rc = inode_wait_over(t, SIZE_MAX, FORGET_WAIT_MS);
				if (rc < 0)
					break;
			}
			continue;
		}
		/*
		 * Back within the share: hand the freed nodes' pages back, at most
		 * once a second (the FUSE threads' malloc arenas keep them: after
		 * `ls -l` of 1,000,000 keys, 85 MB over the nodes held).
		 */
		if (trim_due && clock_mono_ms() - trimmed_ms >= TRIM_EVERY_MS) {
			malloc_trim(0);
			trimmed_ms = clock_mono_ms();
			trim_due = 0;
			others_high = others;
		}
		if (kept > nt->floor || trim_due || others)
			/* The share shrinks as listings grow, and they may go: look again. */
			rc = inode_wait_over(t, limit, SHARE_POLL_MS);
		else
			rc = inode_wait_over(t, nt->floor, -1);
		if (rc < 0)
			break;
	}
	return NULL;
}

struct nodetrim *nodetrim_start(struct irsafs *fs, size_t budget, nodetrim_others_fn others,
				void *arg)
{
	struct nodetrim *nt = calloc(1, sizeof(*nt));
	int rc;

	if (!nt) {
		log_msg(LOG_WARNING, "cannot start trimming the kernel's names: out of memory");
		return NULL;
	}
	nt->fs = fs;
	nt->budget = budget;
	nt->floor = FLOOR;
	nt->others = others;
	nt->arg = arg;
	rc = pthread_create(&nt->thread, NULL, trim_main, nt);
	if (rc != 0) {
		log_msg(LOG_WARNING, "cannot start trimming the kernel's names: %s", strerror(rc));
		free(nt);
		return NULL;
	}
	return nt;
}

void nodetrim_stop(struct nodetrim *nt)
{
	if (!nt)
		return;
	__atomic_store_n(&nt->stop, 1, __ATOMIC_RELEASE);
	inode_wake(nt->fs->inodes);
	pthread_join(nt->thread, NULL);
	free(nt);
}

unsigned long long nodetrim_let_go(const struct nodetrim *nt)
{
	return nt ? __atomic_load_n(&nt->let_go, __ATOMIC_RELAXED) : 0;
}
