/*
 * rashare: how much read-ahead one open file may take, given the others.
 *
 * The prefetcher (cache/readahead.c) has one pool of fetch threads for every
 * open file. Each open file keeps a struct rashare_entry here; while it
 * streams (its read-ahead window is open) the entry is in the registry with
 * where its stream began and how far its reader got. Before a file schedules
 * parts it asks the registry two things:
 *
 * - Its share. A stream is active while it wants the fetch threads: a
 *   reader is inside a read on it, or it has parts queued or in flight while
 *   its reader read less than idle_ms ago. The fetch threads and the window
 *   are split evenly between the active streams, so that four readers of one
 *   object each get a quarter and no stream's parts fill the queue ahead of
 *   the others'. A stream whose reader is slow has nothing in flight most of
 *   the time and leaves the threads to the others; a reader that stopped
 *   does not count, and its stream fetches nothing more until it reads
 *   again.
 *
 * - Its clip: the nearest offset ahead of its reader where another stream of
 *   the same key began, whether that stream is still open or closed less than
 *   memory_ms ago. The bytes from there on have been read through the same
 *   inode, so they are in the kernel's page cache and this reader will not
 *   ask for them; a reader of one quarter of an object stops there anyway.
 *   Read-ahead stops at the clip.
 *
 * - Whether it is in another's shadow: it came from below another stream's
 *   start into the range that stream has read. The kernel's own read-ahead
 *   does that at the end of a quarter (when the pages there were evicted,
 *   say), a few hundred KiB past where the reader stops; read-ahead in a
 *   shadow is one first window at most, so that those reads do not pull a
 *   whole window. The shadow ends shadow_max bytes past the other's start:
 *   a reader that got that far reads on (the pages were evicted) and
 *   streams again. A reader that starts inside another's range (two readers
 *   of a file from its start, or one reading it again) is not shadowed.
 *
 * Thread rules: rashare_new/free are not thread-safe; everything else is.
 * An entry belongs to one open file: join and leave are called under that
 * file's lock, so never twice at once for one entry. The registry's lock is
 * a leaf: nothing else is taken while it is held.
 */
#ifndef IRSAFS_CACHE_RASHARE_H
#define IRSAFS_CACHE_RASHARE_H

struct rashare;

struct rashare_entry {
	const char *key;		/* not owned; set by rashare_join */
	long long lo;			/* where the stream began (registry lock) */
	long long hi;			/* atomic: the end of the furthest read */
	long long last_ms;		/* atomic: when a read last ended */
	int waiting;			/* atomic: readers inside a read now */
	unsigned busy;			/* atomic: parts queued or in flight */
	int joined;			/* in the registry (the owner's lock) */
	struct rashare_entry *prev, *next;	/* registry lock */
};

/*
 * A registry: streams idle for idle_ms stop counting; a closed stream clips
 * others for memory_ms when it had read at least min_print bytes; shadows
 * end shadow_max bytes past a stream's start.
 */
struct rashare *rashare_new(long idle_ms, long memory_ms, long long min_print,
			    long long shadow_max);
void rashare_free(struct rashare *r);

/* A reader enters and leaves a read on e (waiting, last_ms). */
void rashare_enter(struct rashare_entry *e);
void rashare_exit(struct rashare_entry *e, long long hi, long long now_ms);
/* e has n parts queued or in flight. */
void rashare_busy(struct rashare_entry *e, unsigned n);
/* Is e's reader away: no read inside, none ended in the last idle_ms? */
int rashare_idle(const struct rashare *r, const struct rashare_entry *e, long long now_ms);
/* How long e's reader has been away: 0 while a read is inside or before the first. */
long long rashare_away_ms(const struct rashare_entry *e, long long now_ms);

/* e's stream begins at lo, of key (kept by the caller until rashare_leave). */
void rashare_join(struct rashare *r, struct rashare_entry *e, const char *key, long long lo);
/* e's stream ends (a seek, a close): remembered for memory_ms if long enough. */
void rashare_leave(struct rashare *r, struct rashare_entry *e);

/*
 * For e's reader at pos: the number of active streams (at least 1, e
 * counted as active); in *clip the nearest start of another stream of the
 * same key at or past pos (LLONG_MAX when there is none); in *shadow 1 when
 * pos is in another's shadow, else 0.
 */
unsigned rashare_query(struct rashare *r, const struct rashare_entry *e, long long pos,
		       long long now_ms, long long *clip, int *shadow);

#endif
