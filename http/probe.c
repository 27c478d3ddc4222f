#include "http/probe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "core/strutil.h"

static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
	struct http_probe *p = arg;
	size_t len = size * n;
	char value[64];

	if (len > 5 && len < 64 + 5 && !strncasecmp(line, "date:", 5)) {
		memcpy(value, line + 5, len - 5);
		value[len - 5] = 0;
		str_trim(value);
		if (time_parse_rfc1123(value, &p->server_date))
			p->server_date = 0;
	}
	return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	return size * n;
}

int http_probe_url(const char *url, const char *ca_bundle, long timeout_ms, struct http_probe *out)
{
	CURL *h;
	CURLcode cc;
	long status = 0;
	double t;
	char *ip = NULL;

	memset(out, 0, sizeof(*out));
	out->tls = !strncmp(url, "https://", 8);
	h = curl_easy_init();
	if (!h) {
		snprintf(out->error, sizeof(out->error), "out of memory");
		return -EIO;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "irsafs-doctor");
	if (ca_bundle)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca_bundle);
	cc = curl_easy_perform(h);
	out->curl_code = (int)cc;
	if (cc != CURLE_OK) {
		snprintf(out->error, sizeof(out->error), "%s", curl_easy_strerror(cc));
		switch (cc) {
		case CURLE_COULDNT_RESOLVE_HOST:
			out->stage = "the name does not resolve (DNS)";
			break;
		case CURLE_COULDNT_CONNECT:
			out->stage = "nothing accepts connections there (connect)";
			break;
		case CURLE_OPERATION_TIMEDOUT:
			out->stage = "no answer in time";
			break;
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
			out->stage = "the TLS handshake failed";
			break;
		default:
			out->stage = "the request failed";
			break;
		}
	}
	if (curl_easy_getinfo(h, CURLINFO_NAMELOOKUP_TIME, &t) == CURLE_OK)
		out->dns_ms = t * 1000;
	if (curl_easy_getinfo(h, CURLINFO_CONNECT_TIME, &t) == CURLE_OK)
		out->connect_ms = t * 1000;
	if (out->tls && curl_easy_getinfo(h, CURLINFO_APPCONNECT_TIME, &t) == CURLE_OK)
		out->tls_ms = t * 1000;
	if (curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &t) == CURLE_OK)
		out->total_ms = t * 1000;
	if (curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip)
		snprintf(out->address, sizeof(out->address), "%s", ip);
	if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
		out->status = (int)status;
	curl_easy_cleanup(h);
	return cc == CURLE_OK ? 0 : -EIO;
}
