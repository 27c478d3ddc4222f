/*
 * dirahead: read ahead across the files of a directory.
 *
 * Tools that copy or scan a directory (cp -a, tar, rsync, grep -r,
 * sha256sum *) open its files one after another in listing order, and each
 * open then waits a round trip for its first bytes: 10,000 small files are
 * 10,000 round trips in a row. The listing already says which files come
 * next, how large they are and which ETag they have. So when the opens of a
 * directory follow its listing, the next files are fetched ahead, several
 * GETs at once, and the open of each takes its bytes from here.
 *
 * The pattern, per directory (a "stream"; a few directories are followed at
 * once, the least recently used is dropped first), is made by the opens of
 * its files:
 *  - an open is in order when it is of the next file of the listing after the
 *    last one opened; directories and empty files in between do not count
 *    (readers recurse into the one, and tar does not open the other); a
 *    file opened again right away does not count either;
 *  - after two opens in order, the files after the last one opened are
 *    fetched, up to a window of files that starts at 4 and grows with the run
 *    (twice the opens in order, up to max_files), so what a break wastes is
 *    bounded by what the run used; with fresh_ms, no further than the reader
 *    gets in half of fresh_ms at its pace; files the reader passed over are
 *    dropped;
 *  - fetching stops at a subdirectory's entry (a reader that recurses spends
 *    an unknown time in it) and goes on once a file after it is opened;
 *  - any other open in the directory is a break: everything fetched or being
 *    fetched for it is dropped (GETs in flight are aborted), and the stream
 *    starts again from that file;
 *  - a stream not used for keep_ms is dropped, with what it fetched;
 *  - a stream whose requests fail three times stops fetching until its next
 *    break.
 * A lookup does not move the pattern (rsync looks every file up long before
 * it opens them), but a lookup of a file fetched ahead can be answered from
 * that fetch (dirahead_lookup): a reader whose dentries expired looks each
 * file up before opening it.
 * A file whose GET is queued but not started when it is opened is not waited
 * for: the open's own read fetches it, and the queued GET is dropped. One
 * being fetched is waited for (its GET is bounded like any other). So a file
 * costs at most one GET of its own, and a file that is never opened at most
 * one wasted GET.
 *
 * What is fetched: a file of up to whole_max bytes whole, a larger one its
 * first whole_max bytes (the read-ahead streams the rest); of an empty file,
 * a HEAD that says it is still what the listing said (its open, or its
 * lookup once the listing is older than the TTL, needs no request of its
 * own). Never a directory, or a file whose listed ETag cannot be sent back
 * (If-Match). Every GET goes through store_read_range pinned to the listed
 * ETag and size (struct store_read), so only bytes the store verified are
 * kept, and an open takes them only when it sees the same ETag and size.
 *
 * Bounds: at most max_inflight GETs at once (the fetch threads); at most
 * max_files files ahead of each stream's reader; at most max_bytes held (all
 * streams: fetched and not taken, or being fetched), each buffer reserved in
 * the memory budget first, leaving keep_free bytes of it to others. When a
 * reservation does not fit, fetching waits for the next open instead.
 *
 * The store layer (dirahead_store_new) puts this in the stack right above
 * the metadata cache (app/stack.c): it sees every open and lookup the
 * filesystem makes, finds each directory's listing with store_dir_peek (the
 * metadata cache keeps it, whatever its age: every GET is pinned anyway),
 * and hands the bytes an open takes down with that open (struct store_head),
 * to the read-ahead, which starts the file with them. Its GETs are
 * read_range calls on the store below, so they pass the disk cache as
 * every read does.
 *
 * Ownership: the caller lends each directory as an opaque pointer with
 * dirahead_dir_ops (the layer lends struct store_dir references): a stream
 * holds one reference while it follows that directory and gives it back with
 * ops->release. A buffer is reserved by the stream, filled by a fetch thread
 * and handed to the open that takes it (struct dirahead_file), with its
 * reservation (struct membuf): from there it is the caller's (the layer
 * hands it down as the file's head, released into the same budget).
 *
 * Thread rules: dirahead_new, dirahead_start and dirahead_free are not
 * thread-safe (free: after the last dirahead_open has returned); everything
 * else is. One lock guards all state; the GETs run without it. The dir ops
 * are called with it held and must not call back into this module.
 */
#ifndef IRSAFS_CACHE_DIRAHEAD_H
#define IRSAFS_CACHE_DIRAHEAD_H

#include <stddef.h>

#include "cache/membudget.h"

struct store;
struct dirahead;

/* One entry of a lent directory. The strings stay valid while it is held. */
struct dirahead_entry {
	const char *name;
	int is_dir;
	long long size;			/* files */
	const char *etag;		/* files: the listed ETag, "" when none */
};

/*
 * A directory as the caller lends it: entries sorted as the listing gives
 * them (readers follow that order), unchanging while it is held.
 */
struct dirahead_dir_ops {
	size_t (*count)(void *dir);
	/* Entry i (< count) into *out. */
	void (*entry)(void *dir, size_t i, struct dirahead_entry *out);
	/* The index of name, or -1 when it is not there. */
	long (*find)(void *dir, const char *name);
	/* Give back one reference (may free dir). */
	void (*release)(void *dir);
	/* Optional (dirahead_dir): take one more reference, returning dir. */
	void *(*ref)(void *dir);
};

struct dirahead_config {
	unsigned max_inflight;		/* fetch threads = GETs at once (default 8) */
	unsigned max_files;		/* files ahead of a reader (default 64) */
	size_t max_bytes;		/* held, all streams (default 16 MiB) */
	size_t whole_max;		/* fetched whole up to this size (default 1 MiB) */
	size_t keep_free;		/* budget bytes left to others (default 0) */
	long long keep_ms;		/* an idle stream is dropped after this (default 5000) */
	/*
	 * 0, or how long a GET ahead is worth having (the layer: the metadata
	 * TTL): a stream fetches no further ahead than its reader gets in half
	 * of it, at its pace so far.
	 */
	long long fresh_ms;
};

/* What an open takes: the file's first got bytes, and what their GET said. */
struct dirahead_file {
	struct membuf buf;		/* the caller's now: release or hand over */
	size_t got;
	long long fetched_ms;		/* when the GET ended (clock_mono_ms) */
	char content_type[128];		/* from the answer's headers ("" if none) */
	char version_id[128];
};

struct dirahead_stats {
	unsigned long long gets;	/* requests run ahead (GETs, and HEADs of empty files) */
	unsigned long long hits;	/* opens that took their file */
	unsigned long long wasted;	/* requests whose answer no open or lookup used */
	unsigned long long cancelled;	/* queued, dropped before their GET began */
	unsigned long long breaks;	/* opens out of order */
	unsigned long long bytes;	/* bytes received ahead */
	size_t held;			/* bytes held now (reserved for files ahead) */
	size_t peak;			/* the most ever held at once */
};

/*
 * A prefetcher reading from store (not owned), reserving in mb (not owned),
 * lent directories through ops. Zero fields of cfg take their defaults.
 * NULL on ENOMEM.
 */
struct dirahead *dirahead_new(struct store *store, struct membudget *mb,
			      const struct dirahead_dir_ops *ops, const struct dirahead_config *cfg);
/* Start the fetch threads (after any fork). 0, or -errno when none started. */
int dirahead_start(struct dirahead *da);
/* Abort the GETs in flight, stop the threads, release everything. NULL is allowed. */
void dirahead_free(struct dirahead *da);

/*
 * An open of the file name in the directory dir_key (its key is dir_key +
 * name), which the opener sees at etag, size bytes. dir: a new reference to
 * that directory's listing, or NULL when the caller has none (a stream
 * already following the directory keeps its own); taken in every case.
 * Returns 1 when the file's first bytes were fetched ahead: *out holds them
 * (out->buf is the caller's). 0 when they were not (out untouched). Either
 * way the open counts for the pattern. May wait for the file's GET in flight.
 */
int dirahead_open(struct dirahead *da, const char *dir_key, const char *name, void *dir,
		  const char *etag, long long size, struct dirahead_file *out);

/*
 * A lookup of name in dir_key, which does not move the pattern. When info is
 * not NULL and the file is being or was fetched ahead, this waits for that
 * request (a queued one goes first) and returns 1 with *info filled from it
 * (got, fetched_ms, content_type, version_id; info->buf stays empty: the
 * bytes wait for the open), provided it is of etag and size bytes. Else 0.
 * dir as for dirahead_open (a lookup never starts a stream).
 */
int dirahead_lookup(struct dirahead *da, const char *dir_key, const char *name, void *dir,
		    const char *etag, long long size, struct dirahead_file *info);

/*
 * Follow dir_key with dir (a new reference, taken in every case), which
 * moves no pattern: a stream is made for it when none follows it (the
 * least recently used one goes), and an existing one whose listing is
 * another starts over on dir. For a listing that would be gone before the
 * opens that start a stream come.
 */
void dirahead_follow(struct dirahead *da, const char *dir_key, void *dir);

/*
 * The directory the stream following dir_key holds (a new reference, given
 * back with ops->release), or NULL when none does or ops->ref is not set.
 */
void *dirahead_dir(struct dirahead *da, const char *dir_key);

void dirahead_stats(struct dirahead *da, struct dirahead_stats *out);

/*
 * The layer over inner (not owned; it must offer dir_peek for anything to be
 * fetched ahead: the metadata cache), with the engine reading from inner and
 * reserving in mb (not owned; the layer that opens files below releases the
 * heads handed down into it). ttl_ms: the metadata TTL, within which a GET
 * ahead also answers its file's lookup. NULL on ENOMEM. No thread starts yet.
 */
struct store *dirahead_store_new(struct store *inner, struct membudget *mb,
				 const struct dirahead_config *cfg, long long ttl_ms);
/* Start the fetch threads (after any fork). 0, or -errno when none started. */
int dirahead_store_start(struct store *s);
void dirahead_store_stats(struct store *s, struct dirahead_stats *out);

#endif
