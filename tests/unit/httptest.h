/*
 * httptest.h: what the tests of the HTTP core (test_http, test_tls) need to
 * drive it on a real sd-event loop: a struct result each done callback fills
 * in (with a counter to run the loop until), submit(), the options every
 * such test starts from (short timeouts and back-off so that retries take
 * milliseconds) and client(), which ends the test when the client cannot be
 * made.
 *
 *	struct result r = {.counter = &n};
 *	struct http_client *c = client(core, "x", base_opts(url));
 *	submit(c, req("GET", "/"), &r);
 *	ok(simproc_run_until(ev, &n, 1, 5000), "the call completes");
 *	is_int(r.o, HTTP_OK, ...);
 *	result_clear(&r);
 *	http_client_free(c);
 *
 * done_inside_submit counts done callbacks that ran inside http_submit (the
 * contract says none may): a test checks it is 0 at the end. Everything is
 * static: each test is one translation unit. Needs daemon/http.h and
 * daemon/util.h (-Idaemon).
 */
#ifndef LT_HTTPTEST_H
#define LT_HTTPTEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "util.h"

static bool in_submit;
static int done_inside_submit;

/* The answer a done callback saw (owned copies). */
struct result {
	int calls;
	enum http_outcome o;
	long status;
	unsigned attempts;
	int curl_code;
	char *why;
	char *body;
	char *ctype;
	uint64_t at_us;
	int *counter; /* incremented on completion */
};

static inline void result_clear(struct result *r)
{
	free(r->why);
	free(r->body);
	free(r->ctype);
	memset(r, 0, sizeof(*r));
}

static inline void on_done(const struct http_response *r, enum http_outcome o, const char *why,
			   void *ud)
{
	struct result *res = ud;
	if (in_submit)
		done_inside_submit++;
	res->calls++;
	res->o = o;
	res->status = r->status;
	res->attempts = r->attempts;
	res->curl_code = r->curl_code;
	free(res->why);
	free(res->body);
	free(res->ctype);
	res->why = why ? xstrdup(why) : NULL;
	res->body = xstrndup(r->body, r->body_len);
	res->ctype = r->content_type ? xstrdup(r->content_type) : NULL;
	res->at_us = now_mono_us();
	if (res->counter)
		(*res->counter)++;
}

/* Submits rq with on_done filling in res. */
static inline void submit(struct http_client *c, struct http_request *rq, struct result *res)
{
	http_request_done(rq, on_done, res);
	in_submit = true;
	int r = http_submit(c, rq);
	in_submit = false;
	if (r < 0)
		printf("# http_submit: %d\n", r);
}

static inline struct http_request *req(const char *method, const char *path)
{
	return http_request_new(method, path);
}

/* url is borrowed: it must outlive the client made from these options. */
static inline struct http_opts base_opts(const char *url)
{
	struct http_opts o = {
		.url = (char *)url,
		.tls_verify = true,
		.connect_timeout_ms = 2000,
		.timeout_ms = 5000,
		.max_response_bytes = 1 << 20,
		.concurrency = 8,
		.max_attempts = 4,
		.backoff_base_ms = 10,
		.backoff_cap_ms = 200,
		.breaker_failures = 0,
		.breaker_open_ms = 1000,
	};
	return o;
}

/* A client the test cannot do without: exits (the run counts that as a
 * failure) when http_client_new refuses o. */
static inline struct http_client *client(struct http_core *core, const char *name,
					 struct http_opts o)
{
	struct http_client *c = NULL;
	char *err = NULL;
	if (http_client_new(core, name, &o, &c, &err) < 0) {
		printf("# http_client_new: %s\n", err);
		free(err);
		exit(1);
	}
	return c;
}

static inline bool contains(const char *s, const char *sub)
{
	return s && strstr(s, sub);
}

#endif
