/* Static keys from the environment (AWS_ACCESS_KEY_ID and friends). */
#include "auth/creds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static int env_fetch(struct creds_provider *p, struct creds **out, char *why, size_t whylen)
{
	const char *ak = getenv("AWS_ACCESS_KEY_ID");
	const char *sk = getenv("AWS_SECRET_ACCESS_KEY");
	const char *tok = getenv("AWS_SESSION_TOKEN");

	if (!ak || !*ak || !sk || !*sk) {
		snprintf(why, whylen, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is %s: "
			 "set both, or unset both to use another source",
			 sk ? "empty" : "not set");
		return -EINVAL;
	}
	*out = creds_new(ak, sk, tok && *tok ? tok : NULL, 0, NULL);
	if (!*out) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static void env_destroy(struct creds_provider *p)
{
	free(p);
}

struct creds_provider *creds_env_new(void)
{
	struct creds_provider *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->name = "environment";
	p->fetch = env_fetch;
	p->destroy = env_destroy;
	return p;
}

/* A provider that hands out one fixed set of credentials (profile keys). */
struct fixed {
	struct creds_provider base;	/* first: the provider is cast back */
	struct creds *creds;
};

static int fixed_fetch(struct creds_provider *p, struct creds **out, char *why, size_t whylen)
{
	*out = creds_ref(((struct fixed *)p)->creds);
	return 0;
}

static void fixed_destroy(struct creds_provider *p)
{
	creds_release(((struct fixed *)p)->creds);
	free(p);
}

struct creds_provider *creds_static_new(struct creds *cr, const char *name)
{
	struct fixed *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->base.name = name;
	f->base.fetch = fixed_fetch;
	f->base.destroy = fixed_destroy;
	f->creds = creds_ref(cr);
	return &f->base;
}
