/*
 * fuzz_s3_list: s3_xml_parse_list on arbitrary bytes.
 *
 * Invariants: no crash or leak; a refused page comes back empty; an accepted
 * one holds only what the filesystem can use: non-empty keys and prefixes, a
 * non-negative size, a terminated storage class and an ETag with no control
 * characters (it goes into an If-Match header).
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
	struct s3_list_page page;
	size_t i;

	if (s3_xml_parse_list((const char *)data, size, &page)) {
		if (page.objects || page.nobjects || page.prefixes || page.nprefixes ||
		    page.next_token || page.truncated || page.dropped)
			abort();
		return 0;
	}
	for (i = 0; i < page.nobjects; i++) {
		const struct s3_list_object *o = &page.objects[i];

		if (!o->key || !o->key[0] || o->size < 0 ||
		    !memchr(o->storage_class, '\0', sizeof(o->storage_class)) ||
		    !o->storage_class[0] || (o->etag && has_control(o->etag)))
			abort();
	}
	for (i = 0; i < page.nprefixes; i++)
		if (!page.prefixes[i] || !page.prefixes[i][0])
			abort();
	s3_list_page_cleanup(&page);
	return 0;
}
