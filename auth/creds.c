/*
 * Credentials, and the refreshing credentials cache.
 *
 * State: `current` (may be NULL), `refresh_at` (when to start refreshing),
 * `refreshing` (one fetch in flight), `stale` (the server rejected current:
 * do not hand it out), `failures` and `retry_at` (the last refresh failed;
 * do not try again before retry_at), and `probation` (current replaced
 * credentials a server rejected, and no server has accepted it yet).
 * Invariants:
 *  - current, when set, is a complete struct creds; it is replaced, never
 *    modified, so a reader holding a reference is never disturbed;
 *  - at most one fetch runs at a time (refreshing = 1), in the one
 *    background thread once background refreshes are allowed, else in a
 *    caller that had no valid credentials: however many threads saw the
 *    credentials rejected, one STS call replaces them;
 *  - a caller blocks on `done` only when current is missing, stale or
 *    expired, and never past the deadline of its operation; a caller with
 *    valid credentials never waits for a refresh.
 * A failed refresh keeps the old credentials while they are valid, and is
 * retried after a jittered delay that doubles up to 30 s but never pushes
 * the retry past the credentials' expiry (the provider itself already
 * retried transient STS faults inside its own budget). Two answers count as
 * failed refreshes although the provider returned credentials: credentials
 * that are already expired by our clock (a clock running ahead, or an STS
 * handing out stale ones), and credentials that S3 rejects as expired right
 * after they replaced rejected ones (a revoked role, or a clock behind S3's):
 * without that, every file operation would cost an STS call.
 */
#include "auth/creds.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/strutil.h"

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
	c->obtained = time(NULL);
	if (fail || !c->access_key_id || !c->secret_access_key) {
		creds_release(c);
		return NULL;
	}
	return c;
}

int creds_near_expiry(const struct creds *c, time_t now)
{
	time_t window;

	if (!c->expiration)
		return 0;
	window = (c->expiration - c->obtained) / 4;
	if (window > 60 || window < 0)
		window = 60;
	return c->expiration - now < window;
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
	long clock_offset;		/* atomic: server time - local time */
	unsigned long fetches;		/* atomic */
	int probation;			/* atomic; written under lock (see the top) */
	pthread_mutex_t lock;	/* guards locked; never held across a fetch */
	pthread_cond_t done;	/* signalled when a refresh ends (CLOCK_MONOTONIC) */
	struct {
		struct creds *current;
		time_t refresh_at;
		int refreshing;
		int stale;
		int background;		/* background refreshes allowed */
		int thread_live;	/* thread must be joined */
		pthread_t thread;
		int failures;		/* consecutive failed refreshes */
		time_t retry_at;	/* no new attempt before this after a failure */
		int expired_logged;	/* the outage has been logged */
		char last_error[CREDS_WHY_LEN];
	} locked;
};

#define RETRY_MAX_S 30
#define RETRY_NOCREDS_MAX_S 5

struct creds_cache *creds_cache_new(struct creds_provider *p)
{
	struct creds_cache *c = calloc(1, sizeof(*c));
	pthread_condattr_t ca;

	if (!c)
		return NULL;
	c->provider = p;
	pthread_mutex_init(&c->lock, NULL);
	/* Waits end at an operation's deadline, which is on the monotonic clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->done, &ca);
	pthread_condattr_destroy(&ca);
	return c;
}

void creds_cache_free(struct creds_cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->locked.background = 0;
	if (c->locked.thread_live) {
		pthread_t t = c->locked.thread;

		c->locked.thread_live = 0;
		pthread_mutex_unlock(&c->lock);
		pthread_join(t, NULL);
	} else {
		pthread_mutex_unlock(&c->lock);
	}
	creds_release(c->locked.current);
	if (c->provider)
		c->provider->destroy(c->provider);
	pthread_cond_destroy(&c->done);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void creds_cache_background(struct creds_cache *c)
{
	pthread_mutex_lock(&c->lock);
	c->locked.background = 1;
	pthread_mutex_unlock(&c->lock);
}

const char *creds_cache_source(const struct creds_cache *c)
{
	return c->provider->name;
}

void creds_cache_set_clock_offset(struct creds_cache *c, long seconds)
{
	__atomic_store_n(&c->clock_offset, seconds, __ATOMIC_RELAXED);
}

long creds_cache_clock_offset(const struct creds_cache *c)
{
	return __atomic_load_n(&c->clock_offset, __ATOMIC_RELAXED);
}

time_t creds_cache_now(const struct creds_cache *c)
{
	return time(NULL) + creds_cache_clock_offset(c);
}

unsigned long creds_cache_fetches(const struct creds_cache *c)
{
	return __atomic_load_n(&c->fetches, __ATOMIC_RELAXED);
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
		return (time_t)((~0ULL) >> 1);
	life = cr->expiration - now;
	margin = life / 4;
	if (margin > 300)
		margin = 300;
	return cr->expiration - margin;
}

/*
 * Seconds until the next attempt after `failures` failed ones, jittered.
 * Without valid credentials every file operation fails until a refresh
 * works, so the delay stays short (cap 5 s) to notice a fix quickly.
 */
static time_t retry_delay(int failures, time_t cap)
{
	unsigned char r = 0;
	time_t d = 1;

	while (--failures > 0 && d < cap)
		d *= 2;
	if (d > cap)
		d = cap;
	RAND_bytes(&r, 1);
	/* Between half and all of d, at least 1 s. */
	d = d / 2 + (d * r) / 512;
	return d < 1 ? 1 : d;
}

void creds_cache_failure_fields(const struct creds_cache *c, struct log_fields *f)
{
	memset(f, 0, sizeof(*f));
	f->op = c->provider->op;
	if (!f->op)
		return;
	err_log_fields(&c->provider->failure, f);
	/* The credential source failed; which errno a file operation gets is said apart. */
	f->err = 0;
}

enum creds_refusal creds_cache_refusal(const struct creds_cache *c)
{
	const char *code = c->provider->failure.code;

	if (!c->provider->op)
		return CREDS_REFUSAL_NONE;
	if (!strcmp(code, "AccessDenied"))
		return CREDS_REFUSAL_DENIED;
	if (!strcmp(code, "InvalidIdentityToken"))
		return CREDS_REFUSAL_BAD_TOKEN;
	if (!strcmp(code, "IDPCommunicationError"))
		return CREDS_REFUSAL_IDP;
	return CREDS_REFUSAL_NONE;
}

/* Once per outage: why file operations now fail. */
static void log_expired_locked(struct creds_cache *c)
{
	struct log_fields f;

	if (c->locked.expired_logged)
		return;
	c->locked.expired_logged = 1;
	creds_cache_failure_fields(c, &f);
	f.err = err_class_errno(ERR_CREDS_EXPIRED);
	log_op(LOG_ERR, &f, "no valid credentials from %s: file operations fail with EKEYEXPIRED "
	       "until a refresh works (retried every few seconds): %s", c->provider->name,
	       c->locked.last_error[0] ? c->locked.last_error : "the credentials have expired");
}

static void format_time(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * Credentials that are over before they are used (by our clock, corrected
 * by what S3 said about it): a failed fetch, explained. Lock held.
 */
static void explain_expired_answer(const struct creds_cache *c, const struct creds *fresh,
				   time_t now, char *why, size_t whylen)
{
	char exp[32], clk[32];

	format_time(fresh->expiration, exp);
	format_time(now, clk);
	snprintf(why, whylen, "%s handed out credentials that expire at %s, which is already "
		 "%lld s past by this node's clock (%s): counted as a failed refresh; check this "
		 "node's clock (timedatectl, chronyc tracking): if it runs ahead, fix NTP; if it "
		 "is right, the credentials endpoint hands out stale credentials",
		 c->provider->name, exp, (long long)(now - fresh->expiration), clk);
}

/* A refresh failed (why): back off, keep what is still valid, log. Lock held. */
static void refresh_failed_locked(struct creds_cache *c, const char *why, time_t now)
{
	time_t delay;
	int usable = creds_valid(c->locked.current, now) && !c->locked.stale;
	struct log_fields f;

	metrics_creds_refresh_failed();
	snprintf(c->locked.last_error, sizeof(c->locked.last_error), "%s", why);
	c->locked.failures++;
	delay = retry_delay(c->locked.failures, usable ? RETRY_MAX_S : RETRY_NOCREDS_MAX_S);
	c->locked.retry_at = now + delay;
	if (usable) {
		/* While the old credentials last, retry before they run out. */
		time_t left = c->locked.current->expiration - now;

		if (c->locked.current->expiration && delay > left / 3)
			delay = left / 3 > 1 ? left / 3 : 1;
		c->locked.refresh_at = now + delay;
		creds_cache_failure_fields(c, &f);
		log_op(LOG_WARNING, &f, "credential refresh from %s failed (still using the "
		       "current credentials for %lld s; next attempt in %lld s): %s",
		       c->provider->name, (long long)left, (long long)delay, why);
	} else if (c->locked.current) {
		log_expired_locked(c);
	}
}

/* Runs the provider with the lock released; returns with the lock held. */
static void refresh_locked(struct creds_cache *c)
{
	char why[CREDS_WHY_LEN] = "";
	struct creds *fresh = NULL, *old;
	time_t now;
	int rc, forced = c->locked.stale;

	c->locked.refreshing = 1;
	pthread_mutex_unlock(&c->lock);
	__atomic_add_fetch(&c->fetches, 1, __ATOMIC_RELAXED);
	rc = c->provider->fetch(c->provider, &fresh, why, sizeof(why));
	pthread_mutex_lock(&c->lock);
	c->locked.refreshing = 0;
	now = creds_cache_now(c);
	if (rc == 0 && !creds_valid(fresh, now)) {
		explain_expired_answer(c, fresh, now, why, sizeof(why));
		creds_release(fresh);
		fresh = NULL;
		rc = -err_class_errno(ERR_CREDS_EXPIRED);
	}
	if (rc == 0) {
		old = c->locked.current;
		c->locked.current = fresh;
		c->locked.stale = 0;
		c->locked.refresh_at = refresh_time(fresh, now);
		c->locked.retry_at = 0;
		/*
		 * Replacing rejected credentials, the outage is over only once
		 * a server accepts the new ones (creds_cache_accepted): until
		 * then the failures keep counting, so that a session rejected
		 * again and again backs off further each time.
		 */
		if (!forced) {
			c->locked.last_error[0] = '\0';
			c->locked.failures = 0;
			c->locked.expired_logged = 0;
		}
		__atomic_store_n(&c->probation, forced, __ATOMIC_RELAXED);
		creds_release(old);
		metrics_creds_refreshed();
		metrics_creds_expiry(fresh->expiration);
		if (fresh->expiration) {
			char exp[32];

			format_time(fresh->expiration, exp);
			log_msg(LOG_INFO, "credentials from %s for %s, valid until %s (next refresh "
				"in %lld s)", c->provider->name,
				fresh->principal_arn ? fresh->principal_arn : "unknown principal",
				exp, (long long)(c->locked.refresh_at - now));
		}
	} else if (rc == -EINTR) {
		/*
		 * Called off (http_client_close): the process is shutting down.
		 * No refresh took place, so none failed: nothing is counted or
		 * logged, and the next acquire may ask again.
		 */
	} else {
		refresh_failed_locked(c, why, now);
	}
	pthread_cond_broadcast(&c->done);
}

static void *refresh_thread(void *arg)
{
	struct creds_cache *c = arg;

	pthread_mutex_lock(&c->lock);
	refresh_locked(c);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Start the background refresh; 0 when it runs. Lock held, not refreshing. */
static int start_background_locked(struct creds_cache *c)
{
	if (!c->locked.background)
		return -1;
	if (c->locked.thread_live) {
		/* The previous refresh has finished (refreshing is 0): reap it. */
		pthread_join(c->locked.thread, NULL);
		c->locked.thread_live = 0;
	}
	/* Mark the refresh as in flight now, so no second one starts. */
	c->locked.refreshing = 1;
	if (pthread_create(&c->locked.thread, NULL, refresh_thread, c) != 0) {
		c->locked.refreshing = 0;
		return -1;
	}
	c->locked.thread_live = 1;
	return 0;
}

/* Wait for the refresh in flight until deadline_ms (0: no deadline). 0, or -ETIMEDOUT. */
static int wait_locked(struct creds_cache *c, long long deadline_ms)
{
	struct timespec ts;

	if (!deadline_ms) {
		pthread_cond_wait(&c->done, &c->lock);
		return 0;
	}
	if (clock_mono_ms() >= deadline_ms)
		return -ETIMEDOUT;
	ts.tv_sec = (time_t)(deadline_ms / 1000);
	ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
	return pthread_cond_timedwait(&c->done, &c->lock, &ts) == ETIMEDOUT ? -ETIMEDOUT : 0;
}

int creds_cache_acquire_until(struct creds_cache *c, long long deadline_ms, struct creds **out,
			      char *why, size_t whylen)
{
	int tried = 0;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct creds *cur = c->locked.current;
		time_t now = creds_cache_now(c);

		if (creds_valid(cur, now) && !c->locked.stale) {
			if (now >= c->locked.refresh_at && !c->locked.refreshing && !tried &&
			    start_background_locked(c) != 0) {
				/* No background thread: refresh here, then use the result. */
				refresh_locked(c);
				tried = 1;
				continue;
			}
			*out = creds_ref(cur);
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		if (c->locked.refreshing) {
			/* Nothing valid: wait for the refresh in flight, inside our budget. */
			if (wait_locked(c, deadline_ms) != 0) {
				snprintf(why, whylen, "the refresh from %s has not answered within "
					 "the operation's time budget%s%s", c->provider->name,
					 c->locked.last_error[0] ? "; the last failure: " : "",
					 c->locked.last_error);
				pthread_mutex_unlock(&c->lock);
				return -err_class_errno(ERR_CREDS_EXPIRED);
			}
			tried = 1;
			continue;
		}
		if (tried)
			break;
		/* A refresh that just failed is not retried by every caller at once. */
		if (c->locked.failures && now < c->locked.retry_at)
			break;
		/* In the background when allowed, so that the wait can end at our deadline. */
		if (start_background_locked(c) == 0)
			continue;
		refresh_locked(c);
		tried = 1;
	}
	snprintf(why, whylen, "%s", c->locked.last_error[0] ? c->locked.last_error
							     : "the credentials have expired");
	if (c->locked.current)
		log_expired_locked(c);
	pthread_mutex_unlock(&c->lock);
	/* No valid credentials: the table's answer for it (EKEYEXPIRED). */
	return -err_class_errno(ERR_CREDS_EXPIRED);
}

int creds_cache_acquire(struct creds_cache *c, struct creds **out, char *why, size_t whylen)
{
	return creds_cache_acquire_until(c, 0, out, why, whylen);
}

int creds_cache_invalidate(struct creds_cache *c, const struct creds *seen, const char *reason)
{
	time_t now, delay;
	int again = 1;

	pthread_mutex_lock(&c->lock);
	if (c->locked.current != seen) {
		/* Replaced already (or being replaced): the caller may try the new ones. */
		goto out;
	}
	if (c->locked.stale) {
		/* Another thread saw the same rejection first. */
		again = c->locked.failures == 0;
		goto out;
	}
	now = creds_cache_now(c);
	c->locked.stale = 1;
	if (!__atomic_load_n(&c->probation, __ATOMIC_RELAXED)) {
		/* A forced refresh is worth one attempt now, whatever failed before. */
		c->locked.retry_at = 0;
		c->locked.failures = 0;
		log_msg(LOG_NOTICE, "the server rejected the credentials from %s (%s): refreshing "
			"them now", c->provider->name, reason ? reason : "expired");
		goto out;
	}
	/*
	 * These replaced rejected credentials a moment ago, and the server
	 * rejects them too: refreshing again at once would cost an STS call per
	 * file operation. A failed refresh, with its backoff.
	 */
	again = 0;
	metrics_creds_refresh_failed();
	__atomic_store_n(&c->probation, 0, __ATOMIC_RELAXED);
	snprintf(c->locked.last_error, sizeof(c->locked.last_error), "the server rejects the "
		 "credentials from %s even right after a refresh (%s): the role session is "
		 "revoked, or this node's clock is far behind the server's (check timedatectl, "
		 "chronyc tracking)", c->provider->name, reason ? reason : "expired");
	c->locked.failures++;
	delay = retry_delay(c->locked.failures, RETRY_NOCREDS_MAX_S);
	c->locked.retry_at = now + delay;
	log_expired_locked(c);
out:
	pthread_mutex_unlock(&c->lock);
	return again;
}

void creds_cache_accepted(struct creds_cache *c, const struct creds *seen)
{
	/* One relaxed load per request; the lock only while on probation. */
	if (!__atomic_load_n(&c->probation, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&c->lock);
	if (c->locked.current == seen) {
		__atomic_store_n(&c->probation, 0, __ATOMIC_RELAXED);
		c->locked.last_error[0] = '\0';
		c->locked.failures = 0;
		c->locked.expired_logged = 0;
	}
	pthread_mutex_unlock(&c->lock);
}
