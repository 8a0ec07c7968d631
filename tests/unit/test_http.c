/*
 * test_http: the HTTP core against the real simulator (build/lienthong-sim,
 * $BUILD overrides "build") over loopback, on a real sd-event loop, plus a
 * tiny in-process server for what the simulator does not do (gzip answers,
 * Retry-After as an HTTP date), and the pure functions (back-off,
 * Retry-After parsing, status classification, the option table).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <curl/curl.h>
#include <jansson.h>

#include "http.h"
#include "httptest.h"
#include "log.h"
#include "simproc.h"
#include "tap.h"
#include "util.h"

/* A POST the adapter answers 200 (without a session: "expired"). */
static struct http_request *post(void)
{
	struct http_request *r = http_request_new("POST", "/integration");
	http_request_body(r, xstrdup("{\"service\":\"Ping\"}"), 18, "application/json");
	return r;
}

/* ---- pure functions ---------------------------------------------------- */

static void test_pure(void)
{
	struct http_opts o = {.backoff_base_ms = 100, .backoff_cap_ms = 5000};
	bool in_bounds = true, spread = true;
	for (unsigned n = 1; n <= 12; n++) {
		int64_t ceiling = LT_MIN(5000, 100LL << (n - 1)), max = 0;
		for (int i = 0; i < 2000; i++) {
			int64_t d = http_backoff_ms(&o, n, -1);
			if (d < 0 || d > ceiling)
				in_bounds = false;
			max = LT_MAX(max, d);
		}
		if (max < ceiling / 2)
			spread = false;
	}
	ok(in_bounds, "back-off of attempt n stays within [0, min(cap, base*2^(n-1))]");
	ok(spread, "back-off is jittered over the whole range, not stuck near 0");
	bool capped = true;
	for (int i = 0; i < 1000; i++)
		if (http_backoff_ms(&o, 200, -1) > 5000 || http_backoff_ms(&o, 64, -1) < 0)
			capped = false;
	ok(capped, "back-off never exceeds the cap, even for huge attempt numbers (no overflow)");
	is_int(http_backoff_ms(&o, 1, 1500), 1500, "Retry-After below the cap is honoured as is");
	is_int(http_backoff_ms(&o, 1, 90000), 5000, "Retry-After above the cap is capped");
	is_int(http_backoff_ms(&o, 3, 0), 0, "Retry-After: 0 means no wait");

	int64_t now = (int64_t)1445412480 * 1000; /* Wed, 21 Oct 2015 07:28:00 GMT */
	is_int(http_parse_retry_after("120", now), 120000, "Retry-After delta-seconds");
	is_int(http_parse_retry_after("  7 ", now), 7000, "Retry-After delta-seconds with spaces");
	is_int(http_parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), 30000,
	       "Retry-After IMF-fixdate gives the delay until that time");
	is_int(http_parse_retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now), 60000,
	       "Retry-After obsolete RFC 850 date is accepted");
	is_int(http_parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now), 0,
	       "Retry-After date in the past means now");
	is_int(http_parse_retry_after("soon", now), -1, "Retry-After garbage is invalid");
	is_int(http_parse_retry_after("-5", now), -1, "Retry-After negative is invalid");
	is_int(http_parse_retry_after("", now), -1, "Retry-After empty is invalid");
	is_int(http_parse_retry_after(NULL, now), -1, "Retry-After absent is invalid");

	struct http_response r = {.status = 200, .body = ""};
	char *why = NULL;
	is_int(http_classify_status(&r, &why), HTTP_OK, "2xx is ok");
	r.status = 304;
	is_int(http_classify_status(&r, &why), HTTP_OK, "3xx is ok");
	long retry[] = {408, 429, 500, 502, 503, 504};
	bool all = true;
	for (size_t i = 0; i < LT_ARRAY_SIZE(retry); i++) {
		r.status = retry[i];
		if (http_classify_status(&r, &why) != HTTP_RETRY || !why)
			all = false;
		free(why);
		why = NULL;
	}
	ok(all, "408, 429 and 5xx are retried, with a reason");
	r.status = 404;
	is_int(http_classify_status(&r, &why), HTTP_FAIL, "other 4xx fail for good");
	is_str(why, "HTTP 404", "the reason names the status");
	free(why);
	why = NULL;
	r.status = 0;
	r.curl_code = CURLE_COULDNT_CONNECT;
	r.error = "Failed to connect";
	is_int(http_classify_status(&r, &why), HTTP_RETRY, "a transport error is retried");
	ok(contains(why, "Failed to connect"), "the transport error text is in the reason");
	free(why);

	is_str(http_outcome_name(HTTP_RETRY), "retry", "outcome names");
	is_str(http_circuit_name(HTTP_CIRCUIT_HALF_OPEN), "half-open", "circuit names");
	ok(http_latency_bounds_s[HTTP_LATENCY_BUCKETS - 1] > 1e300,
	   "the last latency bucket is +Inf");
	bool rising = true;
	for (int i = 1; i < HTTP_LATENCY_BUCKETS; i++)
		if (!(http_latency_bounds_s[i] > http_latency_bounds_s[i - 1]))
			rising = false;
	ok(rising, "latency bucket bounds are strictly increasing");
}

static const struct conf_option *opt(const char *key)
{
	for (const struct conf_option *o = http_options; o->key; o++)
		if (!strcmp(o->key, key))
			return o;
	return NULL;
}

static void test_options(void)
{
	static const struct {
		const char *key, *def;
		enum conf_type type;
		size_t off;
	} want[] = {
		{"url", NULL, CONF_URL, offsetof(struct http_opts, url)},
		{"tls_verify", "true", CONF_BOOL, offsetof(struct http_opts, tls_verify)},
		{"ca_file", NULL, CONF_PATH, offsetof(struct http_opts, ca_file)},
		{"client_cert", NULL, CONF_PATH, offsetof(struct http_opts, client_cert)},
		{"client_key", NULL, CONF_PATH, offsetof(struct http_opts, client_key)},
		{"connect_timeout", "10s", CONF_DURATION,
		 offsetof(struct http_opts, connect_timeout_ms)},
		{"timeout", "60s", CONF_DURATION, offsetof(struct http_opts, timeout_ms)},
		{"max_response_bytes", "16M", CONF_SIZE,
		 offsetof(struct http_opts, max_response_bytes)},
		{"concurrency", "8", CONF_INT, offsetof(struct http_opts, concurrency)},
		{"max_attempts", "4", CONF_INT, offsetof(struct http_opts, max_attempts)},
		{"backoff_base", "500ms", CONF_DURATION,
		 offsetof(struct http_opts, backoff_base_ms)},
		{"backoff_cap", "60s", CONF_DURATION, offsetof(struct http_opts, backoff_cap_ms)},
		{"breaker_failures", "5", CONF_INT, offsetof(struct http_opts, breaker_failures)},
		{"breaker_open", "30s", CONF_DURATION, offsetof(struct http_opts, breaker_open_ms)},
	};
	bool good = true;
	size_t n = 0;
	for (const struct conf_option *o = http_options; o->key; o++)
		n++;
	is_int(n, LT_ARRAY_SIZE(want), "http_options declares every field of struct http_opts");
	for (size_t i = 0; i < LT_ARRAY_SIZE(want); i++) {
		const struct conf_option *o = opt(want[i].key);
		if (!o || o->type != want[i].type || o->offset != want[i].off ||
		    (want[i].def ? !o->def || strcmp(o->def, want[i].def) : o->def != NULL) ||
		    !o->help || strlen(o->help) < 20) {
			printf("# option %s is wrong\n", want[i].key);
			good = false;
		}
	}
	ok(good, "http options have the documented types, defaults, offsets and help");
	ok(opt("url") && (opt("url")->flags & CONF_REQUIRED), "url is required");
}

/* ---- a tiny loopback server for gzip and HTTP-date Retry-After ---------- */

struct mini {
	int lfd, port;
	sd_event_source *ls;
	int cfd;
	sd_event_source *cs;
	struct dynbuf in;
	int served;
	char accept_encoding[128];
};

static void mini_reply(struct mini *m)
{
	char head[512];
	unsigned char *z = NULL;
	size_t zlen = 0;
	if (m->served == 0) {
		/* first: 503 with Retry-After as an HTTP date two seconds ahead */
		char date[64];
		time_t t = time(NULL) + 2;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		snprintf(head, sizeof(head),
			 "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %s\r\n"
			 "Content-Length: 0\r\nConnection: close\r\n\r\n",
			 date);
	} else {
		char plain[8192];
		for (size_t i = 0; i < sizeof(plain); i++)
			plain[i] = "lienthong "[i % 10];
		z_stream zs;
		memset(&zs, 0, sizeof(zs));
		deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
		zlen = deflateBound(&zs, sizeof(plain));
		z = xmalloc(zlen);
		zs.next_in = (unsigned char *)plain;
		zs.avail_in = sizeof(plain);
		zs.next_out = z;
		zs.avail_out = (unsigned)zlen;
		deflate(&zs, Z_FINISH);
		zlen = zs.total_out;
		deflateEnd(&zs);
		snprintf(head, sizeof(head),
			 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 zlen);
	}
	int fl = fcntl(m->cfd, F_GETFL);
	fcntl(m->cfd, F_SETFL, fl & ~O_NONBLOCK);
	if (write(m->cfd, head, strlen(head)) < 0 || (z && write(m->cfd, z, zlen) < 0))
		printf("# mini server write failed\n");
	free(z);
	m->served++;
}

static int mini_on_client(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct mini *m = ud;
	char buf[4096];
	(void)revents;
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n > 0)
		dynbuf_add(&m->in, buf, (size_t)n);
	if (n > 0 && !strstr(m->in.data, "\r\n\r\n"))
		return 0;
	if (n > 0) {
		const char *ae = strcasestr(m->in.data, "\r\nAccept-Encoding:");
		if (ae) {
			ae += strlen("\r\nAccept-Encoding:");
			size_t len = strcspn(ae, "\r");
			snprintf(m->accept_encoding, sizeof(m->accept_encoding), "%.*s", (int)len,
				 ae);
		}
		mini_reply(m);
	}
	sd_event_source_disable_unref(s);
	m->cs = NULL;
	close(fd);
	m->cfd = -1;
	dynbuf_reset(&m->in);
	return 0;
}

static int mini_on_accept(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct mini *m = ud;
	(void)s;
	(void)revents;
	int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return 0;
	if (m->cs) { /* one connection at a time is all the test needs */
		close(c);
		return 0;
	}
	m->cfd = c;
	sd_event_add_io(sd_event_source_get_event(s), &m->cs, c, EPOLLIN, mini_on_client, m);
	return 0;
}

static int mini_start(struct mini *m, sd_event *ev)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	memset(m, 0, sizeof(*m));
	m->cfd = -1;
	dynbuf_init(&m->in, 1 << 16);
	m->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m->lfd < 0 || bind(m->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(m->lfd, 8) < 0 || getsockname(m->lfd, (struct sockaddr *)&a, &al) < 0)
		return -1;
	m->port = ntohs(a.sin_port);
	return sd_event_add_io(ev, &m->ls, m->lfd, EPOLLIN, mini_on_accept, m);
}

static void mini_stop(struct mini *m)
{
	sd_event_source_disable_unref(m->cs);
	sd_event_source_disable_unref(m->ls);
	if (m->cfd >= 0)
		close(m->cfd);
	if (m->lfd >= 0)
		close(m->lfd);
	dynbuf_free(&m->in);
}

static void test_gzip_and_date(sd_event *ev, struct http_core *core)
{
	struct mini m;
	char url[64];
	int n = 0;
	if (mini_start(&m, ev) < 0) {
		ok(0, "loopback test server starts");
		return;
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", m.port);
	struct http_opts o = base_opts(url);
	o.backoff_cap_ms = 5000;
	struct http_client *c = client(core, "mini", o);
	struct result r = {.counter = &n};
	uint64_t t0 = now_mono_us();
	submit(c, req("GET", "/gz"), &r);
	ok(simproc_run_until(ev, &n, 1, 8000), "request to the loopback server completes");
	uint64_t ms = (r.at_us - t0) / 1000;
	is_int(r.o, HTTP_OK, "503 with Retry-After (HTTP date), then 200: ok");
	is_int(r.attempts, 2, "took two attempts");
	ok(ms >= 900 && ms < 4000, "the retry waited for the Retry-After date (%llu ms)",
	   (unsigned long long)ms);
	ok(contains(m.accept_encoding, "gzip") && contains(m.accept_encoding, "deflate"),
	   "curl offers gzip and deflate (Accept-Encoding:%s)", m.accept_encoding);
	bool plain =
		r.body && strlen(r.body) == 8192 && !strncmp(r.body, "lienthong lienthong", 19);
	ok(plain, "a gzip answer is handed over decoded");
	is_str(r.ctype, "text/plain", "the answer's Content-Type is captured");
	result_clear(&r);
	http_client_free(c);
	mini_stop(&m);
}

/* ---- against the simulator --------------------------------------------- */

static void test_basic(sd_event *ev, struct http_core *core, const struct simproc *s)
{
	struct http_client *c = client(core, "basic", base_opts(s->url));
	struct result a = {0}, b = {0}, d = {0}, e = {0};
	int n = 0;
	a.counter = b.counter = d.counter = e.counter = &n;

	submit(c, req("GET", "/health"), &a);
	struct http_request *p = post();
	json_t *j = json_pack("{s:s}", "service", "Ping");
	http_request_json(p, j);
	json_decref(j);
	submit(c, p, &b);
	submit(c, req("GET", "/no/such/path"), &d);
	char *abs = xasprintf("%s/health", s->url);
	submit(c, req("GET", abs), &e);
	free(abs);
	is_int(a.calls + b.calls + d.calls, 0, "done is never called from inside http_submit");
	ok(simproc_run_until(ev, &n, 4, 5000), "four requests complete");
	is_int(a.o, HTTP_OK, "GET /health is ok");
	is_int(a.status, 200, "GET /health status 200");
	is_str(a.body, "ok", "GET body is handed over");
	is_int(a.attempts, 1, "one attempt");
	is_int(b.o, HTTP_OK, "POST of a JSON body is ok at the HTTP level");
	ok(contains(b.body, "\"error_code\":\"-1\""),
	   "the JSON body reached the adapter (it asks for a session)");
	ok(contains(b.ctype, "application/json"), "Content-Type of the answer is captured");
	is_int(d.o, HTTP_FAIL, "404 fails for good");
	is_int(d.attempts, 1, "404 is not retried");
	is_str(d.why, "HTTP 404", "404 reason");
	is_int(e.o, HTTP_OK, "an absolute URL path bypasses the base url");
	is_int(a.calls + b.calls + d.calls + e.calls, 4, "each done is called exactly once");

	struct http_stats st;
	http_client_stats(c, &st);
	is_int(st.requests, 4, "stats count attempts sent");
	is_int(st.ok, 3, "stats count ok attempts");
	is_int(st.fail, 1, "stats count failed attempts");
	uint64_t lat = 0;
	for (int i = 0; i < HTTP_LATENCY_BUCKETS; i++)
		lat += st.latency_count[i];
	is_int(lat, 4, "every attempt lands in the latency histogram");
	is_str(st.last_err, "HTTP 404", "last error is kept");
	is_int(http_core_pending(core), 0, "nothing pending afterwards");
	result_clear(&a);
	result_clear(&b);
	result_clear(&d);
	result_clear(&e);
	http_client_free(c);
}

static void test_retries(sd_event *ev, struct http_core *core, const struct simproc *s)
{
	struct http_opts o = base_opts(s->url);
	struct http_client *c = client(core, "retries", o);
	struct result r = {0};
	int n = 0;
	r.counter = &n;

	simproc_faults(s, "{\"reset\":true,\"fail_next\":2}");
	submit(c, post(), &r);
	ok(simproc_run_until(ev, &n, 1, 5000), "request with two 503s completes");
	is_int(r.o, HTTP_OK, "503, 503, then 200: ok");
	is_int(r.attempts, 3, "after three attempts");
	struct http_stats st;
	http_client_stats(c, &st);
	is_int(st.retries, 2, "two retries counted");
	is_int(st.retry, 2, "two retry-class attempt outcomes counted");

	result_clear(&r);
	r.counter = &n;
	n = 0;
	simproc_faults(s, "{\"reset\":true,\"fail_next\":10}");
	struct http_request *q = post();
	http_request_max_attempts(q, 3);
	submit(c, q, &r);
	ok(simproc_run_until(ev, &n, 1, 5000), "request with endless 503s completes");
	is_int(r.o, HTTP_RETRY, "exhausted attempts hand back HTTP_RETRY");
	is_int(r.attempts, 3, "the per-request max_attempts is honoured");
	is_str(r.why, "HTTP 503", "the reason is the last failure");
	is_int(r.status, 503, "the last response is handed over");

	/* 429 with Retry-After: 1 s, honoured */
	result_clear(&r);
	r.counter = &n;
	n = 0;
	simproc_faults(s, "{\"reset\":true,\"rate_limit_rate\":1.0,\"retry_after_s\":1}");
	http_client_free(c);
	o.backoff_cap_ms = 5000;
	c = client(core, "retries", o);
	q = req("GET", "/status");
	http_request_max_attempts(q, 2);
	uint64_t t0 = now_mono_us();
	submit(c, q, &r);
	ok(simproc_run_until(ev, &n, 1, 5000), "rate-limited request completes");
	uint64_t ms = (r.at_us - t0) / 1000;
	is_int(r.o, HTTP_RETRY, "429 twice: retry later");
	is_int(r.status, 429, "status 429 handed over");
	ok(ms >= 1000 && ms < 2500, "Retry-After: 1 was waited for (%llu ms)",
	   (unsigned long long)ms);

	/* the same with a 300 ms cap: the cap wins */
	result_clear(&r);
	r.counter = &n;
	n = 0;
	http_client_free(c);
	o.backoff_cap_ms = 300;
	c = client(core, "retries", o);
	q = req("GET", "/status");
	http_request_max_attempts(q, 2);
	t0 = now_mono_us();
	submit(c, q, &r);
	ok(simproc_run_until(ev, &n, 1, 5000), "rate-limited request completes (capped)");
	ms = (r.at_us - t0) / 1000;
	ok(ms >= 290 && ms < 900, "Retry-After is capped at backoff_cap (%llu ms)",
	   (unsigned long long)ms);
	result_clear(&r);
	http_client_free(c);
	simproc_faults(s, "{\"reset\":true}");
}

static void test_timeout_and_size(sd_event *ev, struct http_core *core, const struct simproc *s)
{
	struct http_opts o = base_opts(s->url);
	o.timeout_ms = 300;
	o.max_attempts = 2;
	struct http_client *c = client(core, "limits", o);
	struct result r = {0};
	int n = 0;
	r.counter = &n;

	simproc_faults(s, "{\"reset\":true,\"hang_rate\":1.0,\"hang_ms\":3000}");
	uint64_t t0 = now_mono_us();
	submit(c, post(), &r);
	ok(simproc_run_until(ev, &n, 1, 5000), "hanging request completes");
	uint64_t ms = (r.at_us - t0) / 1000;
	is_int(r.o, HTTP_RETRY, "a hang times out and is retried, then handed back as retry");
	is_int(r.attempts, 2, "both attempts timed out");
	is_int(r.curl_code, CURLE_OPERATION_TIMEDOUT, "the curl code says timeout");
	ok(contains(r.why, "transport error"), "the reason says transport error (%s)", r.why);
	ok(ms >= 600 && ms < 2000, "two 300 ms timeouts took %llu ms", (unsigned long long)ms);
	simproc_faults(s, "{\"reset\":true}");
	http_client_free(c);

	/* a body larger than max_response_bytes: the Echo service returns what it gets */
	result_clear(&r);
	r.counter = &n;
	n = 0;
	json_t *login =
		simproc_json(s, "/auth", "{\"username\":\"lienthong\",\"password\":\"secret\"}");
	const char *session = json_string_value(json_object_get(login, "session"));
	ok(session != NULL, "logged in to the simulator directly");
	json_t *data = json_array();
	for (int i = 0; i < 200; i++)
		json_array_append_new(data, json_pack("{s:i, s:s}", "i", i, "pad",
						      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
	json_t *body =
		json_pack("{s:s?, s:s, s:o}", "session", session, "service", "Echo", "data", data);
	o = base_opts(s->url);
	o.max_response_bytes = 2048;
	c = client(core, "limits", o);
	struct http_request *q = post();
	http_request_json(q, body);
	submit(c, q, &r);
	ok(simproc_run_until(ev, &n, 1, 5000), "large answer completes");
	is_int(r.o, HTTP_FAIL, "an answer larger than max_response_bytes fails for good");
	is_str(r.why, "response larger than 2048 bytes", "the reason names the limit");
	is_int(r.attempts, 1, "and is not retried");
	ok(strlen(r.body) <= 2048, "no more than the limit was kept");
	http_client_free(c);

	/* the same with room: the body made it there and back */
	result_clear(&r);
	r.counter = &n;
	n = 0;
	c = client(core, "limits", base_opts(s->url));
	q = post();
	http_request_json(q, body);
	submit(c, q, &r);
	ok(simproc_run_until(ev, &n, 1, 5000), "echo completes");
	is_int(r.o, HTTP_OK, "a 10 KB body travels both ways");
	ok(r.body && strlen(r.body) > 8000, "the whole echo came back (%zu bytes)",
	   r.body ? strlen(r.body) : 0);
	http_client_free(c);
	result_clear(&r);
	json_decref(body);
	json_decref(login);
}

static void test_concurrency(sd_event *ev, struct http_core *core, const struct simproc *s)
{
	struct http_opts o = base_opts(s->url);
	o.concurrency = 2;
	struct http_client *c = client(core, "conc", o);
	struct result r[8];
	int n = 0;
	uint64_t max_in_flight = 0, max_queued = 0;

	simproc_faults(s, "{\"reset\":true,\"latency_ms\":200}");
	memset(r, 0, sizeof(r));
	uint64_t t0 = now_mono_us();
	for (int i = 0; i < 8; i++) {
		r[i].counter = &n;
		submit(c, req("GET", "/status"), &r[i]);
	}
	uint64_t end = t0 + 5000000;
	while (n < 8 && now_mono_us() < end) {
		struct http_stats st;
		sd_event_run(ev, 5000);
		http_client_stats(c, &st);
		max_in_flight = LT_MAX(max_in_flight, st.in_flight);
		max_queued = LT_MAX(max_queued, st.queued);
	}
	uint64_t ms = (now_mono_us() - t0) / 1000;
	is_int(n, 8, "eight slow requests complete");
	ok(ms >= 800, "with concurrency 2 they took at least 4 x 200 ms (%llu ms)",
	   (unsigned long long)ms);
	is_int(max_in_flight, 2, "never more than 2 in flight, and 2 used");
	ok(max_queued >= 5, "the others waited in the queue (max %llu)",
	   (unsigned long long)max_queued);
	bool fifo = true, all_ok = true;
	for (int i = 0; i < 8; i++) {
		if (r[i].o != HTTP_OK && r[i].status != 404)
			all_ok = false;
		if (i >= 2 && r[i].at_us < r[i - 2].at_us)
			fifo = false;
		result_clear(&r[i]);
	}
	ok(all_ok, "all got an answer");
	ok(fifo, "the wait queue is served in order");
	simproc_faults(s, "{\"reset\":true}");
	http_client_free(c);
}

static void test_breaker(sd_event *ev, struct http_core *core, const struct simproc *s)
{
	struct http_opts o = base_opts(s->url);
	o.breaker_failures = 3;
	o.breaker_open_ms = 1000;
	o.max_attempts = 1;
	struct http_client *c = client(core, "breaker", o);
	struct result r[6];
	struct http_stats st;
	int n = 0;

	memset(r, 0, sizeof(r));
	simproc_faults(s, "{\"reset\":true,\"down\":true}");
	for (int i = 0; i < 3; i++) {
		r[i].counter = &n;
		submit(c, post(), &r[i]);
		simproc_run_until(ev, &n, i + 1, 5000);
	}
	is_int(n, 3, "three requests against a down endpoint complete");
	ok(r[2].o == HTTP_RETRY && r[2].status == 503, "they fail with 503 as retry");
	http_client_stats(c, &st);
	is_int(st.circuit, HTTP_CIRCUIT_OPEN, "the circuit opened after 3 consecutive failures");
	is_int(st.circuit_opens, 1, "one opening counted");
	ok(st.circuit_until_ms > now_wall_ms(), "the open-until time is in the future");

	long long before = simproc_stat(s, "requests_total");
	n = 0;
	uint64_t t0 = now_mono_us();
	for (int i = 0; i < 5; i++) {
		result_clear(&r[i]);
		r[i].counter = &n;
		submit(c, post(), &r[i]);
	}
	is_int(n, 0, "rejections are not delivered from inside http_submit");
	ok(simproc_run_until(ev, &n, 5, 1000), "requests while open complete");
	ok((now_mono_us() - t0) < 200000, "at once (%llu ms)",
	   (unsigned long long)((now_mono_us() - t0) / 1000));
	ok(r[4].o == HTTP_RETRY && contains(r[4].why, "circuit open until 20"),
	   "with HTTP_RETRY \"circuit open until <ISO time>\" (%s)", r[4].why);
	is_int(r[4].attempts, 0, "no attempt was made");
	is_int(simproc_stat(s, "requests_total"), before, "nothing reached the server while open");
	http_client_stats(c, &st);
	is_int(st.circuit_rejects, 5, "rejections counted");

	/* half-open probe against a still-down server: open again, only one request sent */
	simproc_run_for(ev, 1050);
	n = 0;
	for (int i = 0; i < 2; i++) {
		result_clear(&r[i]);
		r[i].counter = &n;
		submit(c, post(), &r[i]);
	}
	ok(simproc_run_until(ev, &n, 2, 3000), "probe and waiting request complete");
	is_int(simproc_stat(s, "requests_total"), before + 1,
	       "half-open lets exactly one probe through");
	ok(r[0].status == 503 && contains(r[1].why, "circuit open"),
	   "the probe failed, the request waiting behind it was refused");
	http_client_stats(c, &st);
	is_int(st.circuit, HTTP_CIRCUIT_OPEN, "a failed probe opens the circuit again");

	/* healthy again: after the open period the probe succeeds and closes it */
	simproc_faults(s, "{\"reset\":true,\"latency_ms\":50}");
	simproc_run_for(ev, 1050);
	http_client_stats(c, &st);
	is_int(st.circuit, HTTP_CIRCUIT_HALF_OPEN, "after breaker_open the circuit is half-open");
	n = 0;
	uint64_t max_in_flight = 0;
	for (int i = 0; i < 3; i++) {
		result_clear(&r[i]);
		r[i].counter = &n;
		submit(c, post(), &r[i]);
	}
	while (n < 3) {
		sd_event_run(ev, 5000);
		http_client_stats(c, &st);
		if (st.circuit != HTTP_CIRCUIT_CLOSED)
			max_in_flight = LT_MAX(max_in_flight, st.in_flight);
	}
	ok(r[0].o == HTTP_OK && r[1].o == HTTP_OK && r[2].o == HTTP_OK,
	   "with a healthy server every request succeeds");
	is_int(max_in_flight, 1, "while half-open only the probe was in flight");
	http_client_stats(c, &st);
	is_int(st.circuit, HTTP_CIRCUIT_CLOSED, "the probe's success closed the circuit");

	/* 429 is not a breaker failure */
	simproc_faults(s, "{\"reset\":true,\"rate_limit_rate\":1.0,\"retry_after_s\":0}");
	n = 0;
	for (int i = 0; i < 5; i++) {
		result_clear(&r[i]);
		r[i].counter = &n;
		submit(c, post(), &r[i]);
	}
	simproc_run_until(ev, &n, 5, 3000);
	http_client_stats(c, &st);
	ok(r[4].status == 429 && st.circuit == HTTP_CIRCUIT_CLOSED,
	   "five 429 answers do not open the circuit");
	for (int i = 0; i < 6; i++)
		result_clear(&r[i]);
	simproc_faults(s, "{\"reset\":true}");
	http_client_free(c);
}

static void test_breaker_retries(sd_event *ev, struct http_core *core, const struct simproc *s)
{
	struct http_opts o = base_opts(s->url);
	o.breaker_failures = 2;
	o.breaker_open_ms = 5000;
	o.max_attempts = 3;
	o.backoff_base_ms = 50;
	struct http_client *c = client(core, "breaker2", o);
	struct result r[2];
	int n = 0;

	memset(r, 0, sizeof(r));
	simproc_faults(s, "{\"reset\":true,\"down\":true}");
	long long before = simproc_stat(s, "requests_total");
	for (int i = 0; i < 2; i++) {
		r[i].counter = &n;
		submit(c, post(), &r[i]);
	}
	ok(simproc_run_until(ev, &n, 2, 3000), "two failing requests complete");
	ok(contains(r[0].why, "circuit open") && contains(r[1].why, "circuit open"),
	   "their retries, due while the circuit is open, are refused (%s)", r[0].why);
	ok(r[0].attempts == 1 && r[1].attempts == 1 && r[0].status == 503,
	   "after one attempt each, keeping the last answer");
	is_int(simproc_stat(s, "requests_total"), before + 2,
	       "the retries never reached the server");
	result_clear(&r[0]);
	result_clear(&r[1]);
	simproc_faults(s, "{\"reset\":true}");
	http_client_free(c);
}

/* Done callbacks that submit again, and one that frees its client. */
struct chain {
	struct http_client *c;
	int left, done;
	bool free_client;
};

static void chain_done(const struct http_response *r, enum http_outcome o, const char *why,
		       void *ud)
{
	struct chain *ch = ud;
	(void)r;
	(void)why;
	(void)o;
	if (in_submit)
		done_inside_submit++;
	ch->done++;
	if (ch->free_client) {
		http_client_free(ch->c);
		ch->c = NULL;
		return;
	}
	if (--ch->left > 0) {
		struct http_request *q = http_request_new("GET", "/health");
		http_request_done(q, chain_done, ch);
		in_submit = true;
		http_submit(ch->c, q);
		in_submit = false;
	}
}

static void cancelled_done(const struct http_response *r, enum http_outcome o, const char *why,
			   void *ud)
{
	int *cnt = ud;
	(void)r;
	if (o == HTTP_RETRY && why && !strcmp(why, "cancelled"))
		(*cnt)++;
	else
		printf("# unexpected completion %s %s\n", http_outcome_name(o), why ? why : "");
}

static void test_reentrancy(sd_event *ev, struct http_core *core, const struct simproc *s)
{
	struct chain ch = {.c = client(core, "chain", base_opts(s->url)), .left = 5};
	struct http_request *q = http_request_new("GET", "/health");
	http_request_done(q, chain_done, &ch);
	http_submit(ch.c, q);
	ok(simproc_run_until(ev, &ch.done, 5, 5000),
	   "done callbacks can submit again (5 in a chain)");
	http_client_free(ch.c);

	struct chain ch2 = {.c = client(core, "freeing", base_opts(s->url)), .free_client = true};
	int cancelled = 0;
	q = http_request_new("GET", "/health");
	http_request_done(q, chain_done, &ch2);
	simproc_faults(s, "{\"latency_ms\":300}");
	http_submit(ch2.c, q);
	for (int i = 0; i < 3; i++) {
		q = http_request_new("GET", "/status");
		http_request_done(q, cancelled_done, &cancelled);
		http_submit(ch2.c, q);
	}
	simproc_run_until(ev, &ch2.done, 1, 5000);
	simproc_faults(s, "{\"reset\":true}");
	ok(ch2.c == NULL, "a done callback may free its own client");
	is_int(cancelled, 3, "the client's other requests were cancelled once each");

	/* http_client_free with requests queued and in flight */
	struct http_opts o = base_opts(s->url);
	o.concurrency = 2;
	struct http_client *c = client(core, "cancel", o);
	simproc_faults(s, "{\"latency_ms\":500}");
	cancelled = 0;
	for (int i = 0; i < 5; i++) {
		q = http_request_new("GET", "/status");
		http_request_done(q, cancelled_done, &cancelled);
		http_submit(c, q);
	}
	simproc_run_for(ev, 50);
	struct http_stats st;
	http_client_stats(c, &st);
	ok(st.in_flight == 2 && st.queued == 3, "two in flight, three queued");
	http_client_free(c);
	is_int(cancelled, 5,
	       "http_client_free cancels in-flight and queued requests synchronously");
	is_int(http_core_pending(core), 0, "nothing pending after the free");
	simproc_faults(s, "{\"reset\":true}");
	simproc_run_for(ev, 20);
}

static void test_client_new(struct http_core *core)
{
	struct http_opts o = base_opts("ftp://example.org");
	struct http_client *c = NULL;
	char *err = NULL;
	ok(http_client_new(core, "bad", &o, &c, &err) == -EINVAL && c == NULL && err,
	   "a non-http url is refused with a message");
	free(err);
	err = NULL;
	o = base_opts("http://127.0.0.1:1");
	o.backoff_base_ms = 10000;
	o.backoff_cap_ms = 100;
	ok(http_client_new(core, "bad", &o, &c, &err) == -EINVAL && err,
	   "backoff_base above backoff_cap is refused");
	free(err);
}

static void test_refused(sd_event *ev, struct http_core *core)
{
	/* A port bound but not listening refuses connections: a transport error,
	 * retried, then handed back as retry. */
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char url[64];
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
		ok(0, "a closed loopback port for the test");
		return;
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
	struct http_opts o = base_opts(url);
	o.max_attempts = 2;
	struct http_client *c = client(core, "refused", o);
	struct result r = {0};
	int n = 0;
	r.counter = &n;
	submit(c, req("GET", "/"), &r);
	ok(simproc_run_until(ev, &n, 1, 5000), "request to a closed port completes");
	ok(r.o == HTTP_RETRY && r.status == 0 && r.attempts == 2 &&
		   r.curl_code == CURLE_COULDNT_CONNECT,
	   "connection refused is a transport error, retried (%s)", r.why);
	result_clear(&r);
	http_client_free(c);
	close(fd);
}

int main(void)
{
	struct simproc s;
	sd_event *ev = NULL;
	uint64_t t0 = now_mono_us();

	log_setup(LOG_TARGET_STDERR, getenv("TEST_DEBUG") ? LOG_DEBUG : LOG_ERR);
	signal(SIGPIPE, SIG_IGN);
	test_pure();
	test_options();

	if (sd_event_new(&ev) < 0) {
		ok(0, "sd_event_new");
		return tap_done();
	}
	struct http_core *core = http_core_new(ev);
	ok(core != NULL, "http core starts on an sd-event loop");
	test_client_new(core);
	test_refused(ev, core);
	test_gzip_and_date(ev, core);

	const char *sim_args[] = {"--seed", "7", NULL};
	if (simproc_start(&s, "test_http", sim_args) == 0) {
		test_basic(ev, core, &s);
		test_retries(ev, core, &s);
		test_timeout_and_size(ev, core, &s);
		test_concurrency(ev, core, &s);
		test_breaker(ev, core, &s);
		test_breaker_retries(ev, core, &s);
		test_reentrancy(ev, core, &s);
		simproc_stop(&s);
	} else {
		ok(0, "the simulator starts ($BUILD/lienthong-sim)");
		simproc_stop(&s);
	}
	is_int(done_inside_submit, 0, "no done callback ran inside http_submit");
	is_int(http_core_pending(core), 0, "nothing pending at the end");
	http_core_free(core);
	sd_event_unref(ev);
	printf("# test_http took %llu ms\n", (unsigned long long)((now_mono_us() - t0) / 1000));
	return tap_done();
}
