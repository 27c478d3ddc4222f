/*
 * fakestore: the object store the cache tests read through (test_cache.c,
 * test_readahead.c, test_rafetch.c). It keeps one object in memory (byte_at
 * gives each byte of each version), records every ranged GET, and can fail,
 * stall, change the object (a new ETag) between two reads, or deliver
 * slowly, chunk by chunk, so that a GET cut short has received only part of
 * its bytes; and a read-ahead over it (struct env).
 *
 * Header-only, like harness.h (include it after harness.h): read_check and
 * the env helpers use its CHECKs.
 */
#ifndef IRSAFS_TESTS_FAKESTORE_H
#define IRSAFS_TESTS_FAKESTORE_H

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cache/membudget.h"
#include "cache/readahead.h"
#include "core/err.h"
#include "s3/store.h"

#define MAX_GETS 4096
#define FAKE_KEYS 8
#define FAKE_CHUNK (64 << 10)

struct fake {
	struct store base;
	pthread_mutex_t lock;
	char *data;
	long long size;
	char etag[32];
	int version;
	int ngets;
	long long get_off[MAX_GETS];
	size_t get_len[MAX_GETS];
	long long bytes;
	int fail_rc;		/* every read fails with this when not 0 */
	int block;		/* reads wait while set (or until cancelled) */
	long long block_from;	/* when > 0, GETs from this offset on wait like that */
	long long block_at[FAKE_KEYS];	/* the same for one key slot */
	int change_every;	/* a new version after every this many GETs */
	int cancelled;		/* reads that saw their cancel flag */
	long chunk_us;		/* when set, bodies come FAKE_CHUNK bytes per this many us */
	int get_key[MAX_GETS];	/* each GET's key slot (fake_slot) */
	int busy[FAKE_KEYS];	/* GETs running now, by key slot ... */
	int max_busy[FAKE_KEYS];/* ... and the most at once */
};

/*
 * The read-ahead's files through the store interface, by the names these
 * cases were written with.
 */
#define ra_read store_file_read
#define ra_span_release store_span_release
#define ra_close store_file_close
#define ra_interrupt store_file_interrupt

static struct membudget *shim_mb;	/* the budget of the read-ahead under test */

static inline struct store_file *ra_open(struct store *ra, const char *key, const char *etag,
					 long long size)
{
	struct store_attr a;

	memset(&a, 0, sizeof(a));
	snprintf(a.etag, sizeof(a.etag), "%s", etag ? etag : "");
	a.size = size;
	return store_open(ra, key, &a, NULL);
}

static inline void shim_release(void *mb, char *buf, size_t cap)
{
	membudget_release(mb, buf, cap);
}

/* An open with the first got bytes in *head (from shim_mb), which it takes. */
static inline struct store_file *ra_open_head(struct store *ra, const char *key,
					      const char *etag, long long size,
					      struct membuf *head, size_t got)
{
	struct store_head h = { head->p, head->n, got, shim_release, shim_mb };
	struct store_attr a;

	memset(&a, 0, sizeof(a));
	snprintf(a.etag, sizeof(a.etag), "%s", etag ? etag : "");
	a.size = size;
	*head = MEMBUF_EMPTY;
	return store_open(ra, key, &a, &h);
}

/* The detail of a failed ra_read (each thread its own). */
static __thread struct store_error ra_err;

static inline unsigned char byte_at(int version, long long i)
{
	return (unsigned char)((i * 2654435761u >> 7) + (unsigned)version * 101);
}

/* Keys "k0" .. "k7" are counted apart (busy[]); any other key as "k0". */
static inline int fake_slot(const char *key)
{
	return key[0] == 'k' && key[1] >= '0' && key[1] < '0' + FAKE_KEYS ? key[1] - '0' : 0;
}

static inline int fake_cancelled_locked(struct fake *f, const struct store_read *rd)
{
	if (!rd || !rd->cancel || !__atomic_load_n(rd->cancel, __ATOMIC_ACQUIRE))
		return 0;
	f->cancelled++;
	return 1;
}

/* The body of [off, off + n), FAKE_CHUNK bytes at a time with chunk_us between them. */
static inline int fake_deliver_locked(struct fake *f, const struct store_read *rd, long long off,
				      long long n, char *dst)
{
	long long i, done = 0;

	while (done < n) {
		long long c = n - done;

		if (f->chunk_us) {
			if (c > FAKE_CHUNK)
				c = FAKE_CHUNK;
			pthread_mutex_unlock(&f->lock);
			usleep((useconds_t)f->chunk_us);
			pthread_mutex_lock(&f->lock);
			/* Nobody wants the rest: what came so far was received all the same. */
			if (fake_cancelled_locked(f, rd))
				return -EINTR;
		}
		for (i = done; i < done + c; i++)
			dst[i] = (char)byte_at(f->version, off + i);
		f->bytes += c;
		done += c;
	}
	return 0;
}

static inline int fake_read(struct store *s, const char *key, struct store_read *rd,
			    long long off, size_t len, char *dst, size_t *got, struct store_error *e)
{
	struct fake *f = (struct fake *)s;
	const char *etag = rd ? rd->etag : NULL;
	int slot = fake_slot(key), rc = 0;
	long long n;

	store_error_clear(e);
	pthread_mutex_lock(&f->lock);
	if (f->ngets < MAX_GETS) {
		f->get_off[f->ngets] = off;
		f->get_len[f->ngets] = len;
		f->get_key[f->ngets] = slot;
	}
	f->ngets++;
	if (++f->busy[slot] > f->max_busy[slot])
		f->max_busy[slot] = f->busy[slot];
	while (f->block || (f->block_from > 0 && off >= f->block_from) ||
	       (f->block_at[slot] > 0 && off >= f->block_at[slot])) {
		/* A stalled server: the GET ends only when the caller calls it off. */
		if (fake_cancelled_locked(f, rd)) {
			rc = -EINTR;
			goto out;
		}
		pthread_mutex_unlock(&f->lock);
		usleep(2000);
		pthread_mutex_lock(&f->lock);
	}
	if (f->fail_rc) {
		e->http_status = 500;
		rc = f->fail_rc;
		goto out;
	}
	if (etag && *etag && strcmp(etag, f->etag) != 0) {
		e->http_status = 412;
		rc = -ESTALE;
		goto out;
	}
	n = off >= f->size ? 0 : (long long)len < f->size - off ? (long long)len : f->size - off;
	rc = fake_deliver_locked(f, rd, off, n, dst);
	if (rc)
		goto out;
	/* Unpinned: say which version answered, as the S3 store does. */
	if (rd && !rd->etag[0])
		snprintf(rd->etag, sizeof(rd->etag), "%s", f->etag);
	*got = (size_t)n;
	if (f->change_every && f->ngets % f->change_every == 0) {
		f->version++;
		snprintf(f->etag, sizeof(f->etag), "\"v%d\"", f->version);
	}
out:
	f->busy[slot]--;
	pthread_mutex_unlock(&f->lock);
	return rc;
}

static inline void fake_set(struct fake *f, int *field, int value)
{
	pthread_mutex_lock(&f->lock);
	*field = value;
	pthread_mutex_unlock(&f->lock);
}

static inline void fake_set_ll(struct fake *f, long long *field, long long value)
{
	pthread_mutex_lock(&f->lock);
	*field = value;
	pthread_mutex_unlock(&f->lock);
}

static inline int fake_get(struct fake *f, const int *field)
{
	int v;

	pthread_mutex_lock(&f->lock);
	v = *field;
	pthread_mutex_unlock(&f->lock);
	return v;
}

static inline void fake_destroy(struct store *s)
{
}

static const struct store_ops fake_ops = { .read_range = fake_read, .destroy = fake_destroy };

static inline void fake_init(struct fake *f, long long size)
{
	memset(f, 0, sizeof(*f));
	f->base.ops = &fake_ops;
	pthread_mutex_init(&f->lock, NULL);
	f->size = size;
	strcpy(f->etag, "\"v0\"");
}

static inline void fake_change(struct fake *f)
{
	pthread_mutex_lock(&f->lock);
	f->version++;
	snprintf(f->etag, sizeof(f->etag), "\"v%d\"", f->version);
	pthread_mutex_unlock(&f->lock);
}

/* Read [off, off+len) through the prefetcher; check every byte. Returns bytes or -errno. */
static inline long long read_check(struct store_file *rf, int version, long long off,
				   size_t len)
{
	struct store_span sp;
	long long pos = off;
	int i, rc, bad = 0;
	size_t j;

	rc = ra_read(rf, off, len, NULL, &sp, &ra_err);
	if (rc)
		return rc;
	for (i = 0; i < sp.niov; i++) {
		const unsigned char *b = sp.iov[i].iov_base;

		for (j = 0; j < sp.iov[i].iov_len; j++, pos++)
			if (b[j] != byte_at(version, pos))
				bad = 1;
	}
	CHECK(!bad);
	CHECK_INT(pos - off, sp.len);
	ra_span_release(rf, &sp);
	return (long long)(pos - off);
}

/* Bytes the store has delivered so far, those of GETs cut short included. */
static inline long long fetched(struct fake *f)
{
	long long n;

	/* The fetch threads may still be writing it. */
	pthread_mutex_lock(&f->lock);
	n = f->bytes;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* A read-ahead over a fake object of size bytes, with its own budget. */
struct env {
	struct fake fake;
	struct membudget *mb;
	struct store *ra;
};

static inline void env_start(struct env *v, long long size, size_t budget, const struct ra_config *cfg)
{
	fake_init(&v->fake, size);
	v->mb = membudget_new(budget);
	shim_mb = v->mb;
	v->ra = readahead_new(&v->fake.base, v->mb, cfg);
	CHECK(v->ra != NULL);
	CHECK_INT(readahead_start(v->ra), 0);
}

static inline void env_init(struct env *v, long long size, size_t budget, size_t part, unsigned conc)
{
	struct ra_config cfg = { .part_size = part, .concurrency = conc };

	env_start(v, size, budget, &cfg);
}

static inline void env_cleanup(struct env *v)
{
	store_destroy(v->ra);
	CHECK_INT(membudget_used(v->mb), 0);
	membudget_free(v->mb);
	pthread_mutex_destroy(&v->fake.lock);
}

#endif
