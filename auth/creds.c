/*
 * The refreshing credentials cache.
 *
 * State: `current` (may be NULL), `refresh_at` (when to start refreshing),
 * `refreshing` (one thread is fetching). Invariants:
 *  - current, when set, is a complete struct creds; it is replaced, never
 *    modified, so a reader holding a reference is never disturbed;
 *  - at most one thread has refreshing = 1, and only it calls the provider;
 *  - a caller blocks on `done` only when current is missing or expired; a
 *    caller with still-valid credentials never waits for a refresh.
 * A refresh failure keeps the old credentials while they are valid and
 * schedules the next attempt a little later (backoff in the provider itself
 * covers transient STS faults).
 */
#include "auth/creds.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/log.h"

static char *strdup_or_null(const char *s, int *fail)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*fail = 1;
	return d;
}

static void free_secret(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

struct creds *creds_new(const char *access_key_id, const char *secret_access_key,
			const char *session_token, time_t expiration, const char *principal_arn)
{
	struct creds *c = calloc(1, sizeof(*c));
	int fail = 0;

	if (!c)
		return NULL;
	c->refs = 1;
	c->access_key_id = strdup_or_null(access_key_id, &fail);
	c->secret_access_key = strdup_or_null(secret_access_key, &fail);
	c->session_token = strdup_or_null(session_token, &fail);
	c->principal_arn = strdup_or_null(principal_arn, &fail);
	c->expiration = expiration;
	if (fail || !c->access_key_id || !c->secret_access_key) {
		creds_release(c);
		return NULL;
	}
	return c;
}

struct creds *creds_ref(struct creds *c)
{
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

void creds_release(struct creds *c)
{
	if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	free_secret(c->access_key_id);
	free_secret(c->secret_access_key);
	free_secret(c->session_token);
	free(c->principal_arn);
	free(c);
}

struct creds_cache {
	struct creds_provider *provider;
	pthread_mutex_t lock;	/* guards locked; never held across a fetch */
	pthread_cond_t done;	/* signalled when a refresh ends */
	struct {
		struct creds *current;
		time_t refresh_at;
		int refreshing;
		time_t failed_at;	/* last failed refresh, 0 if none */
		char last_error[CREDS_WHY_LEN];
	} locked;
};

struct creds_cache *creds_cache_new(struct creds_provider *p)
{
	struct creds_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->provider = p;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->done, NULL);
	return c;
}

void creds_cache_free(struct creds_cache *c)
{
	if (!c)
		return;
	creds_release(c->locked.current);
	if (c->provider)
		c->provider->destroy(c->provider);
	pthread_cond_destroy(&c->done);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

const char *creds_cache_source(const struct creds_cache *c)
{
	return c->provider->name;
}

/* Credentials count as valid until a few seconds before they expire. */
static int creds_valid(const struct creds *cr, time_t now)
{
	return cr && (cr->expiration == 0 || now + 5 < cr->expiration);
}

static time_t refresh_time(const struct creds *cr, time_t now)
{
	time_t life, margin;

	if (cr->expiration == 0)
		return (time_t)-1 > 0 ? (time_t)-1 : (time_t)((~0ULL) >> 1);
	life = cr->expiration - now;
	margin = life / 4;
	if (margin > 300)
		margin = 300;
	return cr->expiration - margin;
}

/* Runs the provider with the lock released; returns with the lock held. */
static void refresh_locked(struct creds_cache *c, time_t now)
{
	char why[CREDS_WHY_LEN] = "";
	struct creds *fresh = NULL, *old;
	int rc;

	c->locked.refreshing = 1;
	pthread_mutex_unlock(&c->lock);
	rc = c->provider->fetch(c->provider, &fresh, why, sizeof(why));
	pthread_mutex_lock(&c->lock);
	c->locked.refreshing = 0;
	if (rc == 0) {
		old = c->locked.current;
		c->locked.current = fresh;
		c->locked.refresh_at = refresh_time(fresh, now);
		c->locked.last_error[0] = '\0';
		c->locked.failed_at = 0;
		creds_release(old);
		if (fresh->expiration) {
			char exp[32];
			struct tm tm;

			gmtime_r(&fresh->expiration, &tm);
			strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", &tm);
			log_msg(LOG_INFO, "credentials from %s for %s, valid until %s",
				c->provider->name,
				fresh->principal_arn ? fresh->principal_arn : "unknown principal",
				exp);
		}
	} else {
		snprintf(c->locked.last_error, sizeof(c->locked.last_error), "%s", why);
		/* Try again soon, but not in a tight loop. */
		c->locked.refresh_at = time(NULL) + 2;
		c->locked.failed_at = time(NULL);
		log_msg(LOG_ERR, "credential refresh failed: %s", why);
	}
	pthread_cond_broadcast(&c->done);
}

int creds_cache_acquire(struct creds_cache *c, struct creds **out, char *why, size_t whylen)
{
	time_t now = time(NULL);
	int tried = 0;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct creds *cur = c->locked.current;

		if (creds_valid(cur, now) && (now < c->locked.refresh_at || c->locked.refreshing ||
					      tried)) {
			*out = creds_ref(cur);
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		if (c->locked.refreshing) {
			/* Expired or missing: wait for the refresh in flight. */
			pthread_cond_wait(&c->done, &c->lock);
			now = time(NULL);
			tried = 1;
			continue;
		}
		if (tried && !creds_valid(cur, now))
			break;
		/* Without valid credentials, a refresh that just failed is not
		 * retried by every caller at once: fail fast for a second. */
		if (!creds_valid(cur, now) && c->locked.failed_at && now - c->locked.failed_at < 1)
			break;
		refresh_locked(c, now);
		now = time(NULL);
		tried = 1;
	}
	snprintf(why, whylen, "%s", c->locked.last_error[0] ? c->locked.last_error
							     : "no valid credentials");
	pthread_mutex_unlock(&c->lock);
	return -EKEYEXPIRED;
}

void creds_cache_invalidate(struct creds_cache *c, const struct creds *seen)
{
	pthread_mutex_lock(&c->lock);
	if (c->locked.current == seen)
		c->locked.refresh_at = 0;
	pthread_mutex_unlock(&c->lock);
}
