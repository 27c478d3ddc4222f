/*
 * The directory read-ahead. State:
 *
 *   streams  up to NSTREAMS directories being followed, each with the
 *            directory lent by the caller, the index of the last file
 *            opened or looked up, how many of those in a row were in order
 *            (run), the next index to consider for fetching (sched) and its
 *            slots.
 *   slot     one file fetched ahead: QUEUED (in the fetch queue), FETCHING
 *            (a thread runs its GET) or DONE (rc, got and the buffer are
 *            final). A stream's slots are in a list sorted by index.
 *
 * A slot is reference-counted (under da->lock): one reference for its
 * stream's list (passed to the open that takes it out), one for the fetch
 * from when it is queued until its GET ended, and one for each lookup
 * waiting for it. The last reference frees it with its buffer, unless an
 * open took the buffer. A slot dropped while its GET runs has that GET
 * aborted (its cancel flag), unless a lookup waits for the answer.
 *
 * Invariants (under da->lock): held is the sum of cap over all slots that
 * exist, and never exceeds cfg.max_bytes; each slot's cap is reserved in the
 * budget from when it is scheduled until it is freed or its buffer handed
 * over; a stream's slots have indexes above its last open and there are at
 * most max_files of them; a slot is in the queue exactly when it is QUEUED.
 */
#include "cache/dirahead.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/membudget.h"
#include "core/err.h"
#include "core/strutil.h"
#include "s3/store.h"

/* Directories followed at once: a copy of a tree pauses its parent's stream. */
#define NSTREAMS 8
#define MAX_THREADS 64
/* The window when fetching starts, in files. */
#define FIRST_WINDOW 4
/*
 * An open up to this many entries past the last one is still in order when
 * only directories or empty files lie between.
 */
#define SKIP_SCAN 256
/* A stream whose GETs failed this often stops fetching until its next break. */
#define MAX_FAILS 3
#define PAGE 4096
/* How often idle fetch threads look for streams to end. */
#define SWEEP_MS 1000

enum slot_state { SLOT_QUEUED, SLOT_FETCHING, SLOT_DONE };

struct stream;

struct slot {
	struct stream *st;		/* its stream while in the list, else NULL */
	size_t idx;
	int refs;
	char *key;
	char etag[128];
	long long size;
	size_t len;			/* bytes asked: the file, or its first whole_max */
	size_t cap;			/* bytes counted in held (len rounded up to a page) */
	struct membuf buf;		/* reserved at scheduling, mapped by the fetch */
	size_t got;
	int rc;
	enum slot_state state;
	int taken;			/* an open has its buffer (or, empty, its answer) */
	int used;			/* a lookup was answered from it */
	int ran;			/* its request was made */
	int cancel;			/* atomic: the store's GET stops when set */
	long long done_ms;
	struct store_attr hdr;		/* the answer's headers */
	struct slot *next;		/* the stream's list */
	struct slot *qnext;		/* the fetch queue */
};

struct stream {
	char *dir_key;
	void *dir;
	size_t last;			/* index of the last file opened or looked up */
	unsigned run;			/* of those in order, the last included; 0: none yet */
	size_t sched;			/* the next index to consider */
	unsigned nslots;
	unsigned fails;
	struct slot *slots;
	long long used_ms;		/* the last open or lookup */
	long long run_ms;		/* when the run's first open came */
};

struct dirahead {
	struct store *store;
	struct membudget *mb;
	const struct dirahead_dir_ops *ops;
	struct dirahead_config cfg;
	pthread_t threads[MAX_THREADS];
	unsigned nthreads;
	pthread_mutex_t lock;		/* guards everything below */
	pthread_cond_t work;		/* a slot was queued, or stop */
	pthread_cond_t done;		/* a slot became DONE */
	struct stream *streams[NSTREAMS];
	struct slot *qhead, *qtail;
	size_t held;
	int stop;
	struct dirahead_stats stats;
};

struct dirahead *dirahead_new(struct store *store, struct membudget *mb,
			      const struct dirahead_dir_ops *ops, const struct dirahead_config *cfg)
{
	pthread_condattr_t ca;
	struct dirahead *da;

	if (!store || !mb || !ops)
		return NULL;
	da = calloc(1, sizeof(*da));
	if (!da)
		return NULL;
	da->store = store;
	da->mb = mb;
	da->ops = ops;
	if (cfg)
		da->cfg = *cfg;
	if (!da->cfg.max_inflight)
		da->cfg.max_inflight = 8;
	if (da->cfg.max_inflight > MAX_THREADS)
		da->cfg.max_inflight = MAX_THREADS;
	if (!da->cfg.max_files)
		da->cfg.max_files = 64;
	if (!da->cfg.max_bytes)
		da->cfg.max_bytes = 16u << 20;
	if (!da->cfg.whole_max)
		da->cfg.whole_max = 1u << 20;
	if (!da->cfg.keep_ms)
		da->cfg.keep_ms = 5000;
	pthread_mutex_init(&da->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&da->work, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&da->done, NULL);
	return da;
}

/* Let go of one reference to s; the last frees it, with its reservation. */
static void slot_put_locked(struct dirahead *da, struct slot *s)
{
	if (--s->refs > 0)
		return;
	/* A request ran and nobody used it: what a never-opened file costs. */
	if (s->ran && !s->taken && !s->used)
		da->stats.wasted++;
	membudget_put(da->mb, &s->buf);	/* nothing when handed over */
	da->held -= s->cap;
	free(s->key);
	free(s);
}

static void queue_remove_locked(struct dirahead *da, struct slot *s)
{
	struct slot **pp, *prev = NULL;

	for (pp = &da->qhead; *pp; prev = *pp, pp = &(*pp)->qnext) {
		if (*pp != s)
			continue;
		*pp = s->qnext;
		if (da->qtail == s)
			da->qtail = prev;
		s->qnext = NULL;
		return;
	}
}

/* A queued GET that will not begin: out of the queue, and the fetch's reference goes. */
static void slot_unqueue_locked(struct dirahead *da, struct slot *s)
{
	queue_remove_locked(da, s);
	s->state = SLOT_DONE;
	s->rc = -ECANCELED;
	da->stats.cancelled++;
	pthread_cond_broadcast(&da->done); /* a lookup may wait for it */
	slot_put_locked(da, s);
}

/*
 * Drop the list's reference to s, which is already out of the list: a
 * queued GET never begins, one in flight is aborted unless a lookup waits
 * for its answer, and fetched bytes go back once nobody holds them.
 */
static void slot_drop_locked(struct dirahead *da, struct slot *s)
{
	s->st = NULL;
	if (s->state == SLOT_QUEUED)
		slot_unqueue_locked(da, s);
	else if (s->state == SLOT_FETCHING && s->refs <= 2)
		__atomic_store_n(&s->cancel, 1, __ATOMIC_RELEASE);
	slot_put_locked(da, s);
}

/* Drop every slot of st: a break, or the stream ends. */
static void stream_drop_slots_locked(struct dirahead *da, struct stream *st)
{
	struct slot *s;

	while ((s = st->slots)) {
		st->slots = s->next;
		s->next = NULL;
		slot_drop_locked(da, s);
	}
	st->nslots = 0;
}

static void stream_free_locked(struct dirahead *da, struct stream *st)
{
	stream_drop_slots_locked(da, st);
	da->ops->release(st->dir);
	free(st->dir_key);
	free(st);
}

/* Streams neither opened nor looked up for keep_ms end, with what they fetched. */
static void expire_locked(struct dirahead *da, long long now)
{
	unsigned i;

	for (i = 0; i < NSTREAMS; i++) {
		struct stream *st = da->streams[i];

		if (st && now - st->used_ms >= da->cfg.keep_ms) {
			stream_free_locked(da, st);
			da->streams[i] = NULL;
		}
	}
}

/*
 * Is idx, after st->last, in order? It is when no file that needs bytes lies
 * between (directories and empty files do not).
 */
static int in_order_locked(struct dirahead *da, const struct stream *st, size_t idx)
{
	struct dirahead_entry e;
	size_t i;

	if (!st->run || idx <= st->last || idx - st->last > SKIP_SCAN)
		return 0;
	for (i = st->last + 1; i < idx; i++) {
		da->ops->entry(st->dir, i, &e);
		if (!e.is_dir && e.size > 0)
			return 0;
	}
	return 1;
}

/*
 * Files ahead of st's reader: twice its run, at least FIRST_WINDOW, at most
 * max_files, and (with fresh_ms) no more than it opens in half of fresh_ms
 * at its pace so far (at least 2): a GET ahead older than fresh_ms when its
 * file is reached no longer answers the file's lookup.
 */
static size_t window_files(const struct dirahead *da, const struct stream *st)
{
	size_t w = 2 * (size_t)st->run, paced;
	long long took = clock_mono_ms() - st->run_ms;

	if (w < FIRST_WINDOW)
		w = FIRST_WINDOW;
	if (w > da->cfg.max_files)
		w = da->cfg.max_files;
	if (da->cfg.fresh_ms > 0 && st->run >= 2 && took > 0) {
		paced = (size_t)((long long)(st->run - 1) * (da->cfg.fresh_ms / 2) / took);
		if (paced < 2)
			paced = 2;
		if (paced < w)
			w = paced;
	}
	return w;
}

/* Queue the GETs of the files after st->last, within every bound. */
static void schedule_locked(struct dirahead *da, struct stream *st)
{
	size_t n = da->ops->count(st->dir), want = window_files(da, st), cap, len;
	struct slot *s, **tail;
	struct dirahead_entry e;
	int queued = 0;

	if (st->fails >= MAX_FAILS)
		return;
	for (tail = &st->slots; *tail; tail = &(*tail)->next)
		;
	for (; st->sched < n && st->nslots < want; st->sched++) {
		da->ops->entry(st->dir, st->sched, &e);
		if (e.is_dir)
			break;	/* the reader goes in there first: wait for it to come back */
		if (e.size < 0 || e.size > STORE_SIZE_MAX || !etag_sendable(e.etag) ||
		    strlen(e.etag) >= sizeof(s->etag))
			continue;
		len = (unsigned long long)e.size < da->cfg.whole_max ? (size_t)e.size
								      : da->cfg.whole_max;
		cap = (len + PAGE - 1) / PAGE * PAGE;
		if (da->held + cap > da->cfg.max_bytes)
			break;
		s = calloc(1, sizeof(*s));
		if (s && asprintf(&s->key, "%s%s", st->dir_key, e.name) < 0)
			s->key = NULL;
		if (!s || !s->key ||
		    (cap && membudget_reserve_leaving(da->mb, cap, da->cfg.keep_free))) {
			if (s)
				free(s->key);
			free(s);
			break;
		}
		s->st = st;
		s->idx = st->sched;
		s->refs = 2;	/* the list, the fetch */
		snprintf(s->etag, sizeof(s->etag), "%s", e.etag);
		s->size = e.size;
		s->len = len;
		s->cap = cap;
		s->buf = (struct membuf){ NULL, cap };
		s->state = SLOT_QUEUED;
		*tail = s;
		tail = &s->next;
		st->nslots++;
		da->held += cap;
		if (da->held > da->stats.peak)
			da->stats.peak = da->held;
		if (da->qtail)
			da->qtail->qnext = s;
		else
			da->qhead = s;
		da->qtail = s;
		queued++;
	}
	if (queued == 1)
		pthread_cond_signal(&da->work);
	else if (queued)
		pthread_cond_broadcast(&da->work);
}

/* pthread_cond_timedwait on the monotonic clock (cond made with it), for ms. */
static int wait_ms(pthread_cond_t *c, pthread_mutex_t *m, long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_cond_timedwait(c, m, &ts);
}

static void *fetch_thread(void *arg)
{
	struct dirahead *da = arg;
	struct store_read rd;
	struct store_error e;
	struct slot *s;
	size_t got;
	char *p;
	int rc;

	pthread_mutex_lock(&da->lock);
	for (;;) {
		while (!da->stop && !da->qhead) {
			/* Idle: streams nobody opens any more end here (keep_ms). */
			if (wait_ms(&da->work, &da->lock, SWEEP_MS) == ETIMEDOUT)
				expire_locked(da, clock_mono_ms());
		}
		if (da->stop)
			break;
		s = da->qhead;
		da->qhead = s->qnext;
		if (!da->qhead)
			da->qtail = NULL;
		s->qnext = NULL;
		s->state = SLOT_FETCHING;
		pthread_mutex_unlock(&da->lock);

		got = 0;
		p = s->cap ? membudget_map(da->mb, s->cap) : NULL;
		if (!s->len) {
			/* An empty file: its HEAD says it is still what the listing said. */
			rc = store_stat(da->store, s->key, &s->hdr, &e);
			if (!rc && (strcmp(s->hdr.etag, s->etag) || s->hdr.size != 0))
				rc = -ESTALE;
		} else if (!p) {
			rc = -ENOMEM;
		} else {
			store_read_init(&rd, s->etag, s->size);
			rd.cancel = &s->cancel;
			rd.headers = &s->hdr;
			rc = store_read_range(da->store, s->key, &rd, 0, s->len, p, &got, &e);
			/* A pinned, sized read is never short; check it all the same. */
			if (!rc && got != s->len)
				rc = -EIO;
		}

		pthread_mutex_lock(&da->lock);
		s->buf.p = p;
		s->rc = rc;
		s->got = got;
		s->done_ms = clock_mono_ms();
		s->state = SLOT_DONE;
		s->ran = p || !s->len;
		if (s->ran) {
			da->stats.gets++;
			da->stats.bytes += got;
		}
		if (rc && s->st && rc != -EINTR)
			s->st->fails++;
		pthread_cond_broadcast(&da->done);
		slot_put_locked(da, s);
	}
	pthread_mutex_unlock(&da->lock);
	return NULL;
}

int dirahead_start(struct dirahead *da)
{
	while (da->nthreads < da->cfg.max_inflight) {
		int rc = pthread_create(&da->threads[da->nthreads], NULL, fetch_thread, da);

		if (rc)
			return da->nthreads ? 0 : -rc;
		da->nthreads++;
	}
	return 0;
}

void dirahead_free(struct dirahead *da)
{
	unsigned i;

	if (!da)
		return;
	pthread_mutex_lock(&da->lock);
	da->stop = 1;
	/* Every GET belongs to a stream: dropping the streams aborts them all. */
	for (i = 0; i < NSTREAMS; i++)
		if (da->streams[i]) {
			stream_free_locked(da, da->streams[i]);
			da->streams[i] = NULL;
		}
	pthread_cond_broadcast(&da->work);
	pthread_mutex_unlock(&da->lock);
	for (i = 0; i < da->nthreads; i++)
		pthread_join(da->threads[i], NULL);
	pthread_cond_destroy(&da->work);
	pthread_cond_destroy(&da->done);
	pthread_mutex_destroy(&da->lock);
	free(da);
}

/*
 * The stream following dir_key, or (create set) a new one, replacing the
 * least recently used. Takes *dir when it keeps it (then sets it NULL).
 */
static struct stream *stream_get_locked(struct dirahead *da, const char *dir_key, void **dir,
					int create)
{
	struct stream *st;
	unsigned i, victim = 0;

	for (i = 0; i < NSTREAMS; i++) {
		st = da->streams[i];
		if (st && !strcmp(st->dir_key, dir_key)) {
			if (*dir && *dir != st->dir) {
				/* The directory was listed again: start over on the new listing. */
				stream_drop_slots_locked(da, st);
				da->ops->release(st->dir);
				st->dir = *dir;
				*dir = NULL;
				st->run = 0;
				st->sched = 0;
			}
			return st;
		}
		if (!st || (da->streams[victim] && st->used_ms < da->streams[victim]->used_ms))
			victim = i;
	}
	if (!*dir || !create)
		return NULL;
	st = calloc(1, sizeof(*st));
	if (st)
		st->dir_key = strdup(dir_key);
	if (!st || !st->dir_key) {
		free(st);
		return NULL;
	}
	st->dir = *dir;
	*dir = NULL;
	if (da->streams[victim])
		stream_free_locked(da, da->streams[victim]);
	da->streams[victim] = st;
	return st;
}

/*
 * An open (is_open) or a lookup of name in dir_key: the slot fetched for
 * name (a new reference), or NULL. An open takes the slot out of its list,
 * follows the pattern and fetches what it calls for; a lookup only finds
 * the slot (which stays for the open) in a stream that exists. Takes dir (a
 * reference, or NULL) in every case.
 */
static struct slot *note_locked(struct dirahead *da, const char *dir_key, const char *name,
				void *dir, int is_open)
{
	long long now = clock_mono_ms();
	struct slot *s = NULL, **pp;
	struct dirahead_entry e;
	struct stream *st;
	long idx;

	expire_locked(da, now);
	st = stream_get_locked(da, dir_key, &dir, is_open);
	if (dir)
		da->ops->release(dir);
	idx = st ? da->ops->find(st->dir, name) : -1;
	if (idx < 0)
		return NULL;
	da->ops->entry(st->dir, (size_t)idx, &e);
	if (e.is_dir)
		return NULL;	/* a reader going into a subdirectory: not a file of this one */
	st->used_ms = now;
	for (pp = &st->slots; *pp; pp = &(*pp)->next)
		if ((*pp)->idx == (size_t)idx) {
			s = *pp;
			if (!is_open) {
				s->refs++;
			} else {
				*pp = s->next;
				s->next = NULL;
				s->st = NULL;
				st->nslots--;
			}
			break;
		}
	if (!is_open)
		return s;
	if (st->run && (size_t)idx == st->last) {
		/* The same file opened again. */
	} else if (in_order_locked(da, st, (size_t)idx)) {
		st->run++;
		/* Passed over (empty files a reader does not open; a lookup may have used them). */
		while (st->slots && st->slots->idx < (size_t)idx) {
			struct slot *old = st->slots;

			st->slots = old->next;
			old->next = NULL;
			st->nslots--;
			slot_drop_locked(da, old);
		}
	} else {
		if (st->run)
			da->stats.breaks++;
		stream_drop_slots_locked(da, st);
		st->run = 1;
		st->run_ms = now;
		st->fails = 0;
		st->sched = 0;
	}
	st->last = (size_t)idx;
	if (st->sched <= st->last)
		st->sched = st->last + 1;
	if (st->run >= 2)
		schedule_locked(da, st);
	return s;
}

/*
 * Wait for s (referenced) to be fetched. 1 when its bytes are there and
 * are of etag and size; else 0. A queued GET is not waited for unless
 * promote is set: it will not begin (the caller fetches the file itself,
 * through the read-ahead's idle threads: as soon, with no GET wasted). With
 * promote it goes to the head of the queue and is waited for (a lookup,
 * which would otherwise ask two questions of its own).
 */
static int slot_wait_locked(struct dirahead *da, struct slot *s, const char *etag, long long size,
			    int promote)
{
	if (s->state == SLOT_QUEUED && promote && da->qhead != s) {
		queue_remove_locked(da, s);
		s->qnext = da->qhead;
		da->qhead = s;
		if (!da->qtail)
			da->qtail = s;
	} else if (s->state == SLOT_QUEUED && !promote) {
		/* Not begun: the caller's own request is as quick, and no GET is wasted. */
		if (s->st) {
			struct slot **pp;

			for (pp = &s->st->slots; *pp != s; pp = &(*pp)->next)
				;
			*pp = s->next;
			s->next = NULL;
			s->st->nslots--;
			s->st = NULL;
			slot_put_locked(da, s);	/* the list's reference */
		}
		slot_unqueue_locked(da, s);
		return 0;
	}
	while (s->state != SLOT_DONE)
		pthread_cond_wait(&da->done, &da->lock);
	return s->rc == 0 && (s->buf.p || !s->len) && !strcmp(s->etag, etag) && s->size == size;
}

static void fill_info(const struct slot *s, struct dirahead_file *out)
{
	out->got = s->got;
	out->fetched_ms = s->done_ms;
	snprintf(out->content_type, sizeof(out->content_type), "%s", s->hdr.content_type);
	snprintf(out->version_id, sizeof(out->version_id), "%s", s->hdr.version_id);
}

int dirahead_open(struct dirahead *da, const char *dir_key, const char *name, void *dir,
		  const char *etag, long long size, struct dirahead_file *out)
{
	struct slot *s;
	int taken = 0;

	pthread_mutex_lock(&da->lock);
	s = note_locked(da, dir_key, name, dir, 1);
	if (s && slot_wait_locked(da, s, etag, size, 0)) {
		membudget_transfer(&out->buf, &s->buf);
		fill_info(s, out);
		s->taken = 1;
		da->stats.hits++;
		taken = 1;
	}
	if (s)
		slot_put_locked(da, s);
	pthread_mutex_unlock(&da->lock);
	return taken;
}

int dirahead_lookup(struct dirahead *da, const char *dir_key, const char *name, void *dir,
		    const char *etag, long long size, struct dirahead_file *info)
{
	struct slot *s;
	int found = 0;

	pthread_mutex_lock(&da->lock);
	s = note_locked(da, dir_key, name, dir, 0);
	if (s && info && slot_wait_locked(da, s, etag, size, 1)) {
		fill_info(s, info);
		s->used = 1;
		found = 1;
	}
	if (s)
		slot_put_locked(da, s);
	pthread_mutex_unlock(&da->lock);
	return found;
}

void dirahead_follow(struct dirahead *da, const char *dir_key, void *dir)
{
	struct stream *st;

	pthread_mutex_lock(&da->lock);
	expire_locked(da, clock_mono_ms());
	st = stream_get_locked(da, dir_key, &dir, 1);
	if (st && !st->run)
		st->used_ms = clock_mono_ms();
	if (dir)
		da->ops->release(dir);
	pthread_mutex_unlock(&da->lock);
}

void *dirahead_dir(struct dirahead *da, const char *dir_key)
{
	void *dir = NULL;
	unsigned i;

	if (!da->ops->ref)
		return NULL;
	pthread_mutex_lock(&da->lock);
	for (i = 0; i < NSTREAMS; i++)
		if (da->streams[i] && !strcmp(da->streams[i]->dir_key, dir_key)) {
			dir = da->ops->ref(da->streams[i]->dir);
			break;
		}
	pthread_mutex_unlock(&da->lock);
	return dir;
}

void dirahead_stats(struct dirahead *da, struct dirahead_stats *out)
{
	pthread_mutex_lock(&da->lock);
	*out = da->stats;
	out->held = da->held;
	pthread_mutex_unlock(&da->lock);
}

/* ---- the store layer ---------------------------------------------------------------- */

/*
 * The layer: the engine above over the metadata cache, lent listings as
 * struct store_dir (sorted by name, immutable, reference-counted).
 */
struct dirstore {
	struct store_layer layer;	/* first: the store is cast back */
	struct dirahead *da;
	struct membudget *mb;
	long long ttl_ms;
};

static size_t sd_count(void *dir)
{
	return ((struct store_dir *)dir)->n;
}

static void sd_entry(void *dir, size_t i, struct dirahead_entry *out)
{
	const struct store_dirent *e = store_dir_at(dir, i);

	out->name = e->name;
	out->is_dir = e->is_dir;
	out->size = e->attr.size;
	out->etag = store_attr_packed_etag(&e->attr);
}

/* Binary search by name (a whole listing: entries from 0, sorted). */
static long sd_find(void *dir, const char *name)
{
	struct store_dir *d = dir;
	size_t lo = 0, hi = d->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(store_dir_at(d, mid)->name, name);
		if (!c)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static void sd_release(void *dir)
{
	store_dir_release(dir);
}

static void *sd_ref(void *dir)
{
	return store_dir_ref(dir);
}

static const struct dirahead_dir_ops store_dir_ops = {
	.count = sd_count,
	.entry = sd_entry,
	.find = sd_find,
	.release = sd_release,
	.ref = sd_ref,
};

/*
 * The kept listing of dir_key when it is whole (a listing larger than the
 * metadata cache is read in a window and let go of behind the reader: not
 * one to plan with), a new reference; else NULL.
 */
static struct store_dir *peek_whole(struct store *inner, const char *dir_key)
{
	struct store_dir *d = store_dir_peek(inner, dir_key);

	if (d && d->first) {
		store_dir_release(d);
		d = NULL;
	}
	return d;
}

/* key = *dir_key (malloc'd: up to and with its last '/', or "") + *name (in key). */
static int split_key(const char *key, char **dir_key, const char **name)
{
	const char *slash = strrchr(key, '/');
	size_t dlen = slash ? (size_t)(slash - key) + 1 : 0;

	*dir_key = strndup(key, dlen);
	*name = key + dlen;
	return *dir_key ? 0 : -ENOMEM;
}

/* How a buffer handed down with an open is given back: into the budget it came from. */
static void head_release(void *mb, char *buf, size_t cap)
{
	membudget_release(mb, buf, cap);
}

/*
 * An open: tell the engine where the reader is, and when the file's first
 * bytes were fetched ahead (of the ETag and size the open pins), hand them
 * down with the open, as the head cache does.
 */
static struct store_file *ds_open(struct store *s, const char *key, const struct store_attr *a,
				  struct store_head *head)
{
	struct dirstore *ds = (struct dirstore *)s;
	struct store_head h = { 0 };
	struct dirahead_file f;
	const char *name;
	char *dir_key;

	if ((head && head->buf) || split_key(key, &dir_key, &name))
		return store_open(ds->layer.inner, key, a, head);
	memset(&f, 0, sizeof(f));
	if (dirahead_open(ds->da, dir_key, name, peek_whole(ds->layer.inner, dir_key),
			  a->etag, a->size, &f) && f.buf.p)
		h = (struct store_head){ f.buf.p, f.buf.n, f.got, head_release, ds->mb };
	free(dir_key);
	return store_open(ds->layer.inner, key, a, h.buf ? &h : head);
}

/*
 * A lookup: tell the engine (it does not move the pattern). A directory
 * listed longer ago than the TTL makes the layer below ask two questions
 * (the probe and the GET of the head) for every name; a copy that outlives
 * the TTL looks every file up again. When the file's GET ahead, pinned to
 * the listed ETag and size, was answered within the TTL, the file is still
 * what the listing says, as the lookup's own GET would have told: the answer
 * comes from the listing, with the GET's content type and version id (the
 * probe's second question, whether a directory of that name appeared since,
 * is not asked).
 */
static int ds_lookup(struct store *s, const char *dir_key, const char *name,
		     struct store_entry *out, struct store_error *e)
{
	struct dirstore *ds = (struct dirstore *)s;
	struct store_dir *d = dirahead_dir(ds->da, dir_key);
	const struct store_dirent *ent;
	struct dirahead_file info;
	struct store_attr a;
	int fresh;

	/*
	 * The stream's listing first: the metadata cache frees a listing past
	 * its TTL as soon as a lookup in it misses, which a copy outliving the
	 * TTL does at its first subdirectory.
	 */
	if (!d)
		d = peek_whole(ds->layer.inner, dir_key);
	ent = d ? store_dir_find(d, name) : NULL;
	if (!ent || ent->is_dir)
		goto below;
	fresh = clock_mono_ms() - d->fetched_ms < ds->ttl_ms;
	/*
	 * A listing past its TTL that no stream holds yet (rsync lists a
	 * subdirectory long before it reads it): the layer below frees it at
	 * this lookup, so a stream takes it now, for the opens that follow.
	 */
	if (!fresh)
		dirahead_follow(ds->da, dir_key, store_dir_ref(d));
	store_dirent_attr(ent, &a);
	memset(&info, 0, sizeof(info));
	if (!dirahead_lookup(ds->da, dir_key, name, store_dir_ref(d), a.etag, a.size,
			     fresh ? NULL : &info) ||
	    clock_mono_ms() - info.fetched_ms >= ds->ttl_ms)
		goto below;
	memset(out, 0, sizeof(*out));
	out->attr = a;
	if (info.content_type[0])
		snprintf(out->attr.content_type, sizeof(out->attr.content_type), "%s",
			 info.content_type);
	if (info.version_id[0])
		snprintf(out->attr.version_id, sizeof(out->attr.version_id), "%s",
			 info.version_id);
	store_error_clear(e);
	store_dir_release(d);
	return 0;
below:
	store_dir_release(d);
	return store_lookup(ds->layer.inner, dir_key, name, out, e);
}

static void ds_destroy(struct store *s)
{
	struct dirstore *ds = (struct dirstore *)s;

	dirahead_free(ds->da);
	free(ds);
}

static const struct store_ops ds_ops = {
	.stat = store_fwd_stat,
	.list_page = store_fwd_list_page,
	.read_range = store_fwd_read_range,
	.stat_read = store_fwd_stat_read,
	.stat_head = store_fwd_stat_head,
	.identity = store_fwd_identity,
	.lookup = ds_lookup,
	.dir_open = store_fwd_dir_open,
	.dir_read = store_fwd_dir_read,
	.dir_wait = store_fwd_dir_wait,
	.dir_arm = store_fwd_dir_arm,
	.dir_cancel = store_fwd_dir_cancel,
	.dir_close = store_fwd_dir_close,
	.dir_peek = store_fwd_dir_peek,
	.open = ds_open,
	.destroy = ds_destroy,
};

struct store *dirahead_store_new(struct store *inner, struct membudget *mb,
				 const struct dirahead_config *cfg, long long ttl_ms)
{
	struct dirstore *ds = calloc(1, sizeof(*ds));
	struct dirahead_config c = *cfg;

	if (!ds)
		return NULL;
	/* The pace bound: what is fetched ahead still answers lookups within the TTL. */
	if (!c.fresh_ms)
		c.fresh_ms = ttl_ms;
	/* Its GETs go through the stack below, as every read does (the disk cache sees them). */
	ds->da = dirahead_new(inner, mb, &store_dir_ops, &c);
	if (!ds->da) {
		free(ds);
		return NULL;
	}
	ds->layer.base.ops = &ds_ops;
	ds->layer.inner = inner;
	ds->mb = mb;
	ds->ttl_ms = ttl_ms;
	return &ds->layer.base;
}

int dirahead_store_start(struct store *s)
{
	return dirahead_start(((struct dirstore *)s)->da);
}

void dirahead_store_stats(struct store *s, struct dirahead_stats *out)
{
	dirahead_stats(((struct dirstore *)s)->da, out);
}
