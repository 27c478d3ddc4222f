/*
 * fuzz_s3_list: s3_xml_parse_list on arbitrary bytes.
 *
 * Invariants: no crash or leak; a refused page comes back empty; an accepted
 * one holds only what the filesystem can use: non-empty keys and prefixes, a
 * size from 0 to S3_LIST_MAX_SIZE, a terminated storage class and an ETag with
 * no control characters (it goes into an If-Match header); at most
 * S3_LIST_MAX_ENTRIES entries; each described drop is counted, with its key
 * cut to 256 bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/xml.h"
#include "s3/s3_xml.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	xml_global_init();
	return 0;
}

static int has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_page page;
	size_t i;

	if (s3_xml_parse_list((const char *)data, size, &page)) {
		if (page.objects || page.nobjects || page.prefixes || page.nprefixes ||
		    page.next_token || page.truncated || page.dropped || page.ndrops)
			abort();
		return 0;
	}
	for (i = 0; i < page.nobjects; i++) {
		const struct store_object *o = &page.objects[i];

		if (!o->key || !o->key[0] || o->size < 0 || o->size > S3_LIST_MAX_SIZE ||
		    !memchr(o->storage_class, '\0', sizeof(o->storage_class)) ||
		    !o->storage_class[0] || (o->etag && has_control(o->etag)))
			abort();
	}
	for (i = 0; i < page.nprefixes; i++)
		if (!page.prefixes[i] || !page.prefixes[i][0])
			abort();
	if (page.nobjects + page.nprefixes + page.dropped > S3_LIST_MAX_ENTRIES ||
	    page.ndrops > page.dropped || page.ndrops > STORE_PAGE_MAX_DROPS)
		abort();
	for (i = 0; i < page.ndrops; i++)
		if (!page.drops[i].key || strlen(page.drops[i].key) > 256 ||
		    !memchr(page.drops[i].why, '\0', sizeof(page.drops[i].why)))
			abort();
	store_page_cleanup(&page);
	return 0;
}
