/*
 * Two chained hash tables over the same nodes: by inode number and by
 * (key, is_dir). Invariants, all under t->lock:
 *  - every node is in both tables exactly once;
 *  - nlookup > 0 for every node but the root, which is pinned;
 *  - a node's key and is_dir never change, so its place in the key table is
 *    fixed for its life;
 *  - kids is how many nodes name this one their parent (parent_ino): a
 *    node's parent is the directory node of its key's parent when it was
 *    made, and an inode number is never used twice;
 *  - a node is listed when it is listable (listable_locked: not the root,
 *    not made to stay, a file or a directory with no kids) and not let go:
 *    the kernel pins a directory while it holds a name in it, so none is
 *    let go before its names;
 *  - the recency list holds exactly the listed nodes, most recently used
 *    first;
 *  - a node let go is never a directory with kids (a new kid takes it back);
 *  - bytes is the sum of every node's cost, as node_cost() last gave it,
 *    and of the two bucket arrays; going is the part of it of the nodes let
 *    go (whose FORGET has not come).
 */
#include "fs/inode.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/strutil.h"

#define ROOT_INO 1

struct node {
	uint64_t ino;
	uint64_t nlookup;
	uint64_t parent_ino;		/* its directory's node when made; 0: none */
	unsigned is_dir : 1;
	unsigned letting_go : 1;	/* the kernel was asked to forget it */
	unsigned stays : 1;		/* a directory never to be let go */
	unsigned kids : 29;		/* nodes whose parent it is */
	unsigned cost;			/* bytes counted for it in t->bytes */
	struct store_attr_packed attr;
	long long attr_ms;
	char *last_open_etag;
	long long denied_ms;		/* when a denial was seen; 0: never */
	struct node *next_by_ino;
	struct node *next_by_key;
	struct node *newer, *older;	/* the recency list (listed nodes only) */
	char key[];			/* in the node's own block: one malloc, not two */
};

struct inode_table {
	pthread_mutex_t lock;	/* guards everything below */
	struct node **by_ino;
	struct node **by_key;
	size_t nbuckets;
	unsigned long count;
	uint64_t next_ino;
	struct node *root;
	long long ttl_ms;		/* a denial is shown this long */
	char last_denial[512];
	struct node *newest, *oldest;	/* the recency list */
	size_t bytes;			/* what the nodes cost, all together */
	size_t going;			/* of which the nodes let go */
	size_t wait_limit;		/* inode_wait_over: signal above this; 0: none waits */
	int woken;			/* inode_wake was called */
	pthread_cond_t over;		/* bytes passed wait_limit, or woken */
};

static size_t hash_key_len(const char *key, size_t len, int is_dir)
{
	size_t h = 1469598103934665603ULL, i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
	return h ^ (size_t)is_dir;
}

static size_t hash_key(const char *key, int is_dir)
{
	return hash_key_len(key, strlen(key), is_dir);
}

/* A node for key, zeroed but for the key. NULL on ENOMEM. */
static struct node *node_new(const char *key)
{
	size_t len = strlen(key);
	struct node *n = calloc(1, sizeof(*n) + len + 1);

	if (n)
		memcpy(n->key, key, len + 1);
	return n;
}

/* What a node takes: itself with its key, its attributes' strings, its ETag. */
static unsigned node_cost(const struct node *n)
{
	size_t c = heap_bytes(sizeof(*n) + strlen(n->key) + 1);

	if (n->attr.strings)
		c += heap_bytes(store_attr_packed_bytes(&n->attr));
	if (n->last_open_etag)
		c += heap_bytes(strlen(n->last_open_etag) + 1);
	return (unsigned)c;
}

static void recost_locked(struct inode_table *t, struct node *n)
{
	unsigned cost = node_cost(n);

	t->bytes += cost - (size_t)n->cost;
	if (n->letting_go)
		t->going += cost - (size_t)n->cost;
	n->cost = cost;
	if (t->wait_limit && t->bytes - t->going > t->wait_limit)
		pthread_cond_signal(&t->over);
}

static void recent_unlink_locked(struct inode_table *t, struct node *n)
{
	if (n->newer)
		n->newer->older = n->older;
	else
		t->newest = n->older;
	if (n->older)
		n->older->newer = n->newer;
	else
		t->oldest = n->newer;
	n->newer = n->older = NULL;
}

static void recent_push_locked(struct inode_table *t, struct node *n)
{
	n->older = t->newest;
	n->newer = NULL;
	if (t->newest)
		t->newest->newer = n;
	else
		t->oldest = n;
	t->newest = n;
}

/* n goes to the old end: a directory whose last name went is as old as that name. */
static void recent_push_oldest_locked(struct inode_table *t, struct node *n)
{
	n->newer = t->oldest;
	n->older = NULL;
	if (t->oldest)
		t->oldest->older = n;
	else
		t->newest = n;
	t->oldest = n;
}

/* Whether n is on the recency list, or would be but for being let go. */
static int listable_locked(const struct inode_table *t, const struct node *n)
{
	return n != t->root && !n->stays && (!n->is_dir || n->kids == 0);
}

/* n was used: it goes to the head of the recency list (back on it, if let go). */
static void touch_locked(struct inode_table *t, struct node *n)
{
	if (!listable_locked(t, n) || n == t->newest)
		return;
	if (n->letting_go) {
		n->letting_go = 0;
		t->going -= n->cost;
	} else {
		recent_unlink_locked(t, n);
	}
	recent_push_locked(t, n);
}

static void node_free(struct node *n)
{
	store_attr_packed_clear(&n->attr);
	free(n->last_open_etag);
	free(n);
}

static void insert_locked(struct inode_table *t, struct node *n)
{
	size_t bi = n->ino % t->nbuckets, bk = hash_key(n->key, n->is_dir) % t->nbuckets;

	n->next_by_ino = t->by_ino[bi];
	t->by_ino[bi] = n;
	n->next_by_key = t->by_key[bk];
	t->by_key[bk] = n;
	t->count++;
	n->cost = node_cost(n);
	t->bytes += n->cost;
}

/* Double the buckets when the table gets crowded (best effort). */
static void grow_locked(struct inode_table *t)
{
	struct node **bi, **bk, *n, *next;
	size_t nb = t->nbuckets * 2, i;

	bi = calloc(nb, sizeof(*bi));
	bk = calloc(nb, sizeof(*bk));
	if (!bi || !bk) {
		free(bi);
		free(bk);
		return;
	}
	for (i = 0; i < t->nbuckets; i++) {
		for (n = t->by_ino[i]; n; n = next) {
			next = n->next_by_ino;
			n->next_by_ino = bi[n->ino % nb];
			bi[n->ino % nb] = n;
		}
		for (n = t->by_key[i]; n; n = next) {
			size_t h = hash_key(n->key, n->is_dir) % nb;

			next = n->next_by_key;
			n->next_by_key = bk[h];
			bk[h] = n;
		}
	}
	free(t->by_ino);
	free(t->by_key);
	t->by_ino = bi;
	t->by_key = bk;
	t->bytes += 2 * (nb - t->nbuckets) * sizeof(*bi);
	t->nbuckets = nb;
}

struct inode_table *inode_table_new(const char *root_key)
{
	struct inode_table *t = calloc(1, sizeof(*t));
	pthread_condattr_t ca;
	struct node *root;

	if (!t)
		return NULL;
	t->nbuckets = 1024;
	t->by_ino = calloc(t->nbuckets, sizeof(*t->by_ino));
	t->by_key = calloc(t->nbuckets, sizeof(*t->by_key));
	root = node_new(root_key);
	if (!t->by_ino || !t->by_key || !root) {
		free(root);
		free(t->by_ino);
		free(t->by_key);
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->over, &ca);
	pthread_condattr_destroy(&ca);
	t->ttl_ms = 1000;
	t->bytes = 2 * t->nbuckets * sizeof(*t->by_ino);
	root->ino = ROOT_INO;
	root->is_dir = 1;
	root->nlookup = 1;
	t->next_ino = ROOT_INO + 1;
	t->root = root;
	insert_locked(t, root);
	return t;
}

void inode_table_set_first_ino(struct inode_table *t, uint64_t first)
{
	pthread_mutex_lock(&t->lock);
	if (first > t->next_ino)
		t->next_ino = first;
	pthread_mutex_unlock(&t->lock);
}

void inode_table_free(struct inode_table *t)
{
	struct node *n, *next;
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->nbuckets; i++)
		for (n = t->by_ino[i]; n; n = next) {
			next = n->next_by_ino;
			node_free(n);
		}
	free(t->by_ino);
	free(t->by_key);
	pthread_cond_destroy(&t->over);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void inode_table_set_ttl(struct inode_table *t, long long ttl_ms)
{
	pthread_mutex_lock(&t->lock);
	t->ttl_ms = ttl_ms;
	pthread_mutex_unlock(&t->lock);
}

static int denied_locked(const struct inode_table *t, const struct node *n)
{
	return n->denied_ms && clock_mono_ms() - n->denied_ms < t->ttl_ms;
}

static struct node *find_ino_locked(struct inode_table *t, uint64_t ino)
{
	struct node *n;

	for (n = t->by_ino[ino % t->nbuckets]; n; n = n->next_by_ino)
		if (n->ino == ino)
			return n;
	return NULL;
}

/* The node of the first len bytes of key. */
static struct node *find_key_len_locked(struct inode_table *t, const char *key, size_t len,
					int is_dir)
{
	struct node *n;

	for (n = t->by_key[hash_key_len(key, len, is_dir) % t->nbuckets]; n; n = n->next_by_key)
		if (n->is_dir == (unsigned)is_dir && !strncmp(n->key, key, len) && !n->key[len])
			return n;
	return NULL;
}

static struct node *find_key_locked(struct inode_table *t, const char *key, int is_dir)
{
	return find_key_len_locked(t, key, strlen(key), is_dir);
}

/*
 * How much of key names its directory: up to the last '/' before its own
 * name (a directory's key ends in '/'); *name_len: its own name's length.
 */
static size_t parent_len(const char *key, int is_dir, size_t *name_len)
{
	size_t len = strlen(key), plen;

	if (is_dir && len && key[len - 1] == '/')
		len--;
	for (plen = len; plen && key[plen - 1] != '/'; plen--)
		;
	*name_len = len - plen;
	return plen;
}

/* n was made: it is a kid of its directory's node, which is no longer listed. */
static void add_kid_locked(struct inode_table *t, struct node *n)
{
	struct node *p;
	size_t nlen, plen = parent_len(n->key, n->is_dir, &nlen);
	int was;

	p = find_key_len_locked(t, n->key, plen, 1);
	if (!p || p == n)
		return;
	n->parent_ino = p->ino;
	was = listable_locked(t, p);
	p->kids++;
	if (!was)
		return;
	if (p->letting_go) {
		/* the kernel kept it: a name in it came since */
		p->letting_go = 0;
		t->going -= p->cost;
	} else {
		recent_unlink_locked(t, p);
	}
}

/* n goes: its directory's node, when that has no kid left, is listed again. */
static void drop_kid_locked(struct inode_table *t, struct node *n)
{
	struct node *p = n->parent_ino ? find_ino_locked(t, n->parent_ino) : NULL;

	if (!p || p->kids == 0)
		return;
	p->kids--;
	if (listable_locked(t, p) && !p->letting_go)
		recent_push_oldest_locked(t, p);
}

int inode_get(struct inode_table *t, uint64_t ino, struct inode_info *out)
{
	struct node *n;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&t->lock);
	n = find_ino_locked(t, ino);
	if (!n) {
		rc = -ENOENT;
	} else {
		out->ino = n->ino;
		out->key = strdup(n->key);
		out->is_dir = n->is_dir;
		store_attr_unpack(&n->attr, &out->attr);
		out->attr_ms = n->attr_ms;
		out->last_open_etag = n->last_open_etag ? strdup(n->last_open_etag) : NULL;
		out->denied = denied_locked(t, n);
		if (!out->key)
			rc = -ENOMEM;
		touch_locked(t, n);
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void inode_info_cleanup(struct inode_info *i)
{
	free(i->key);
	free(i->last_open_etag);
	i->key = NULL;
	i->last_open_etag = NULL;
}

uint64_t inode_lookup_ref(struct inode_table *t, const char *key, int is_dir,
			  const struct store_attr *attr)
{
	struct store_attr_packed packed = { 0 };
	struct node *n;
	uint64_t ino = 0;

	is_dir = !!is_dir;
	/* Packed outside the lock. Out of memory fails the lookup: no node without its ETag. */
	if (attr && store_attr_pack(&packed, attr) != 0)
		return 0;
	pthread_mutex_lock(&t->lock);
	n = find_key_locked(t, key, is_dir);
	if (!n) {
		n = node_new(key);
		if (!n)
			goto out;
		n->ino = t->next_ino++;
		n->is_dir = (unsigned)is_dir;
		if (t->count > t->nbuckets * 2)
			grow_locked(t);
		insert_locked(t, n);
		recent_push_locked(t, n);
		add_kid_locked(t, n);
	} else {
		touch_locked(t, n);
	}
	n->nlookup++;
	if (attr) {
		store_attr_packed_clear(&n->attr);
		n->attr = packed;
		packed.strings = NULL;
		n->attr_ms = clock_mono_ms();
	}
	recost_locked(t, n);
	ino = n->ino;
out:
	pthread_mutex_unlock(&t->lock);
	store_attr_packed_clear(&packed);
	return ino;
}

static void unlink_locked(struct inode_table *t, struct node *n)
{
	struct node **pp;

	for (pp = &t->by_ino[n->ino % t->nbuckets]; *pp; pp = &(*pp)->next_by_ino)
		if (*pp == n) {
			*pp = n->next_by_ino;
			break;
		}
	for (pp = &t->by_key[hash_key(n->key, n->is_dir) % t->nbuckets]; *pp;
	     pp = &(*pp)->next_by_key)
		if (*pp == n) {
			*pp = n->next_by_key;
			break;
		}
	t->count--;
	t->bytes -= n->cost;
	if (n->letting_go)
		t->going -= n->cost;
	else if (listable_locked(t, n))
		recent_unlink_locked(t, n);
	drop_kid_locked(t, n);
}

void inode_forget(struct inode_table *t, uint64_t ino, uint64_t nl)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_ino_locked(t, ino);
	if (!n || n == t->root) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	if (nl > n->nlookup) {
		/* The kernel never forgets more than we gave it. */
		log_msg(LOG_CRIT, "forget of %llu references to inode %llu, which has %llu",
			(unsigned long long)nl, (unsigned long long)ino,
			(unsigned long long)n->nlookup);
		abort();
	}
	n->nlookup -= nl;
	if (n->nlookup == 0) {
		unlink_locked(t, n);
		node_free(n);
	}
	pthread_mutex_unlock(&t->lock);
}

void inode_set_attr(struct inode_table *t, uint64_t ino, const struct store_attr *attr)
{
	struct store_attr_packed packed;
	struct node *n;

	if (store_attr_pack(&packed, attr) != 0)
		return; /* the attributes seen before stay, until their TTL */
	pthread_mutex_lock(&t->lock);
	n = find_ino_locked(t, ino);
	if (n) {
		store_attr_packed_clear(&n->attr);
		n->attr = packed;
		packed.strings = NULL;
		n->attr_ms = clock_mono_ms();
		recost_locked(t, n);
	}
	pthread_mutex_unlock(&t->lock);
	store_attr_packed_clear(&packed);
}

int inode_note_open(struct inode_table *t, uint64_t ino, const char *etag)
{
	struct node *n;
	int same = 0;

	pthread_mutex_lock(&t->lock);
	n = find_ino_locked(t, ino);
	if (n) {
		same = n->last_open_etag && etag[0] && !strcmp(n->last_open_etag, etag);
		if (!same) {
			free(n->last_open_etag);
			n->last_open_etag = strdup(etag);
			recost_locked(t, n);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return same;
}

void inode_set_denied(struct inode_table *t, uint64_t ino)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_ino_locked(t, ino);
	if (n) {
		long long now = clock_mono_ms();

		n->denied_ms = now ? now : 1;
	}
	pthread_mutex_unlock(&t->lock);
}

int inode_is_denied(struct inode_table *t, uint64_t ino)
{
	struct node *n;
	int denied = 0;

	pthread_mutex_lock(&t->lock);
	n = find_ino_locked(t, ino);
	if (n)
		denied = denied_locked(t, n);
	pthread_mutex_unlock(&t->lock);
	return denied;
}

void inode_set_last_denial(struct inode_table *t, const char *text)
{
	pthread_mutex_lock(&t->lock);
	snprintf(t->last_denial, sizeof(t->last_denial), "%s", text);
	pthread_mutex_unlock(&t->lock);
}

void inode_last_denial(struct inode_table *t, char *out, size_t outlen)
{
	pthread_mutex_lock(&t->lock);
	snprintf(out, outlen, "%s", t->last_denial);
	pthread_mutex_unlock(&t->lock);
}

unsigned long inode_count(struct inode_table *t)
{
	unsigned long c;

	pthread_mutex_lock(&t->lock);
	c = t->count;
	pthread_mutex_unlock(&t->lock);
	return c;
}

size_t inode_bytes(struct inode_table *t, size_t *going)
{
	size_t b;

	pthread_mutex_lock(&t->lock);
	b = t->bytes;
	if (going)
		*going = t->going;
	pthread_mutex_unlock(&t->lock);
	return b;
}

/* Directory n is never let go: off the recency list, the kernel's again if let go. */
static void stay_locked(struct inode_table *t, struct node *n)
{
	if (n->letting_go) {
		n->letting_go = 0;
		t->going -= n->cost;
	} else if (listable_locked(t, n)) {
		recent_unlink_locked(t, n);
	}
	n->stays = 1;
}

size_t inode_pick_unused(struct inode_table *t, struct inode_name *out, size_t max,
			 size_t bytes, int dirs)
{
	struct node *n, *parent;
	size_t got = 0, plen, nlen, picked = 0;

	pthread_mutex_lock(&t->lock);
	while (got < max && picked < bytes && (n = t->oldest)) {
		if (n->is_dir && !dirs) {
			stay_locked(t, n);
			continue;
		}
		recent_unlink_locked(t, n);
		n->letting_go = 1;
		t->going += n->cost;
		picked += n->cost;
		parent = n->parent_ino ? find_ino_locked(t, n->parent_ino) : NULL;
		if (!parent)
			continue; /* the kernel holds no directory of it: nothing to ask */
		plen = parent_len(n->key, n->is_dir, &nlen);
		out[got].name = strndup(n->key + plen, nlen);
		if (!out[got].name)
			break;
		out[got].ino = n->ino;
		out[got].parent = parent->ino;
		out[got].is_dir = n->is_dir;
		got++;
	}
	pthread_mutex_unlock(&t->lock);
	return got;
}

void inode_keep_dir(struct inode_table *t, uint64_t ino)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_ino_locked(t, ino);
	if (n && n->is_dir && !n->stays)
		stay_locked(t, n);
	pthread_mutex_unlock(&t->lock);
}

int inode_wait_over(struct inode_table *t, size_t limit, long long timeout_ms)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &until);
	if (timeout_ms >= 0) {
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&t->lock);
	t->wait_limit = limit;
	while (!t->woken && t->bytes - t->going <= limit && rc == 0)
		rc = timeout_ms >= 0 ? pthread_cond_timedwait(&t->over, &t->lock, &until)
				     : pthread_cond_wait(&t->over, &t->lock);
	t->wait_limit = 0;
	rc = t->woken ? -1 : t->bytes - t->going > limit;
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void inode_wake(struct inode_table *t)
{
	pthread_mutex_lock(&t->lock);
	t->woken = 1;
	pthread_cond_broadcast(&t->over);
	pthread_mutex_unlock(&t->lock);
}
