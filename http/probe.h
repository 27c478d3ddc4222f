/*
 * probe: can this endpoint be reached, and how long does each step take?
 *
 * One unsigned HEAD of a URL on a fresh connection, for `irsafs doctor`:
 * it reports the time to resolve the name, to connect, to finish TLS and to
 * get the answer, the address used, the HTTP status (any status means the
 * server is reachable), and the server's Date header (to check the local
 * clock). Nothing is signed and no credential is sent. Thread-safe.
 */
#ifndef IRSAFS_HTTP_PROBE_H
#define IRSAFS_HTTP_PROBE_H

#include <time.h>

struct http_probe {
	int status;		/* HTTP status; 0 when no answer came */
	int curl_code;		/* CURLcode; 0 on success */
	char error[256];	/* curl's explanation when curl_code != 0 */
	const char *stage;	/* which step failed, in words; NULL on success */
	double dns_ms, connect_ms, tls_ms, total_ms;	/* since the start; tls 0 for http */
	char address[64];	/* the IP address connected to */
	time_t server_date;	/* from the Date header; 0 when absent */
	int tls;		/* 1 for https */
};

/* Probe url (timeout in ms; ca_bundle may be NULL). 0 when an answer came, else -EIO. */
int http_probe_url(const char *url, const char *ca_bundle, long timeout_ms, struct http_probe *out);

#endif
