/*
 * http: the HTTP core. One curl multi handle per daemon, driven by the
 * sd-event loop through curl's multi-socket API: curl tells us which
 * sockets to watch (an sd-event I/O source each) and when to wake it up (one
 * sd-event timer); we hand readiness back with curl_multi_socket_action()
 * and collect finished transfers with curl_multi_info_read().
 *
 * On top of that each http_client keeps a FIFO wait queue limited to
 * `concurrency` transfers, retries with full-jitter back-off (one timer per
 * client over a list sorted by due time), a circuit breaker, and statistics.
 *
 * A request is in exactly one place at a time: the client's queue, its
 * in-flight list, its back-off list, or the core's delivery list. Completion
 * callbacks are only ever called from the delivery list's defer source (or
 * synchronously from http_client_cancel_all/free and http_core_free), never
 * from http_submit and never from inside a curl callback, so user code may
 * submit, cancel or free from a done callback.
 *
 * Transport errors (the transfer did not end with CURLE_OK) are classified
 * here, not by the request's classify callback, which only ever sees
 * complete answers: a response larger than max_response_bytes is HTTP_FAIL
 * (the body was cut, nobody can judge it), everything else HTTP_RETRY.
 */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include <sys/epoll.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "list.h"
#include "jsontext.h"
#include "log.h"
#include "util.h"

#define HTTP_USER_AGENT	       "lienthongd/1"
#define HTTP_POOL_MAX	       16   /* idle easy handles kept per client */
#define HTTP_MAXCONNECTS       64   /* multi connection cache size */
#define HTTP_HEADER_VALUE_MAX  256  /* Content-Type / Retry-After we keep */
#define HTTP_TIMER_ACCURACY_US 1000 /* sd-event's default (250 ms) is far too coarse */

const struct conf_option http_options[] = {
	{"url", CONF_URL, NULL, 0, 0, NULL, offsetof(struct http_opts, url), CONF_REQUIRED,
	 "Base URL of the remote system (http:// or https://). Request paths are appended to "
	 "it."},
	{"tls_verify", CONF_BOOL, "true", 0, 0, NULL, offsetof(struct http_opts, tls_verify), 0,
	 "Verify the server's TLS certificate and host name. Turn off only for a test system, "
	 "never in production."},
	{"ca_file", CONF_PATH, NULL, 0, 0, NULL, offsetof(struct http_opts, ca_file), 0,
	 "PEM file of CA certificates to trust instead of the system store, e.g. a provincial "
	 "or gateway CA."},
	{"client_cert", CONF_PATH, NULL, 0, 0, NULL, offsetof(struct http_opts, client_cert), 0,
	 "PEM client certificate for mutual TLS, when the remote side demands one."},
	{"client_key", CONF_PATH, NULL, 0, 0, NULL, offsetof(struct http_opts, client_key), 0,
	 "PEM private key of client_cert (unencrypted). Keep it readable only by the service "
	 "user."},
	{"connect_timeout", CONF_DURATION, "10s", 100, 300000, NULL,
	 offsetof(struct http_opts, connect_timeout_ms), 0,
	 "Longest wait for a TCP and TLS connection to be established."},
	{"timeout", CONF_DURATION, "60s", 1000, 3600000, NULL,
	 offsetof(struct http_opts, timeout_ms), 0,
	 "Longest time one HTTP attempt may take, from the start to the last byte of the "
	 "answer."},
	{"max_response_bytes", CONF_SIZE, "16M", 1024, 1024LL * 1024 * 1024, NULL,
	 offsetof(struct http_opts, max_response_bytes), 0,
	 "Largest (decoded) answer body accepted; a larger answer is aborted and the request "
	 "fails for good."},
	{"concurrency", CONF_INT, "8", 1, 256, NULL, offsetof(struct http_opts, concurrency), 0,
	 "Most requests in flight at once to this system; further requests wait in order."},
	{"max_attempts", CONF_INT, "4", 1, 100, NULL, offsetof(struct http_opts, max_attempts), 0,
	 "Attempts per request, the first included, before a transient failure (transport "
	 "error, 408, 429, 5xx) is handed back to be retried later."},
	{"backoff_base", CONF_DURATION, "500ms", 1, 3600000, NULL,
	 offsetof(struct http_opts, backoff_base_ms), 0,
	 "Base of the exponential back-off between attempts: attempt n waits a random time "
	 "between 0 and backoff_base * 2^(n-1)."},
	{"backoff_cap", CONF_DURATION, "60s", 1, 86400000, NULL,
	 offsetof(struct http_opts, backoff_cap_ms), 0,
	 "Longest wait between two attempts, also for a server's Retry-After."},
	{"breaker_failures", CONF_INT, "5", 0, 10000, NULL,
	 offsetof(struct http_opts, breaker_failures), 0,
	 "Consecutive transport errors or 5xx answers that open the circuit breaker, after "
	 "which requests are refused at once; 0 disables the breaker."},
	{"breaker_open", CONF_DURATION, "30s", 1000, 86400000, NULL,
	 offsetof(struct http_opts, breaker_open_ms), 0,
	 "How long an open circuit refuses requests before one probe request is let through; "
	 "its success closes the circuit."},
	CONF_OPTION_END,
};

const double http_latency_bounds_s[HTTP_LATENCY_BUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, INFINITY,
};

struct http_request {
	struct list_node node; /* on at most one of the lists below (or a local one) */

	/* Set at submit; borrowed. NULL for a request completed while its client was
	 * being freed: it then lives on the core's delivery list alone. */
	struct http_client *client;

	char *method;		    /* owned */
	char *path;		    /* owned */
	struct curl_slist *headers; /* owned */
	char *body;		    /* owned */
	size_t body_len;
	char *content_type;    /* owned, of the request body */
	char *user, *password; /* owned; password is wiped on free */
	http_classify_fn classify;
	void *classify_ud;
	http_done_fn done;
	void *done_ud;
	unsigned max_attempts; /* 0: the client's */

	unsigned attempts;
	bool probe; /* the half-open circuit's probe */
	CURL *easy; /* while in flight; owned (returns to the pool) */
	uint64_t start_us, due_us;

	/* The last attempt's answer. */
	struct dynbuf resp;
	char *resp_type; /* owned */
	int64_t retry_after_ms;
	long status;
	int curl_code;
	bool too_large;
	uint64_t elapsed_us;
	char errbuf[CURL_ERROR_SIZE];

	enum http_outcome outcome;
	char *why; /* owned */
};

struct http_client {
	struct http_core *core;		 /* borrowed */
	struct http_client *prev, *next; /* the core's list */
	char *name;			 /* owned */
	char *field;			 /* owned "CONNECTOR=name" */
	const char *fields[2];		 /* log fields, pointing at field */
	struct http_opts o;		 /* owned copies of the strings */

	struct list_head queue;	  /* waiting to start, FIFO */
	struct list_head flight;  /* added to the multi handle */
	struct list_head backoff; /* waiting for their retry time, sorted by due_us */
	sd_event_source *retry_timer;

	CURL *pool[HTTP_POOL_MAX]; /* idle easy handles, owned */
	size_t n_pool;

	enum http_circuit circuit;
	unsigned consecutive;	/* consecutive breaker failures while closed */
	uint64_t open_until_us; /* monotonic */
	int64_t open_until_wall_ms;
	uint64_t opened_us; /* first opening of the current outage */
	bool probe_in_flight;
	bool freeing;

	struct http_stats st;  /* counters; in_flight/queued computed on demand */
	uint64_t rate_limited; /* 429 answers (not breaker failures) */
	char *last_err;	       /* owned */
};

struct http_core {
	sd_event *ev; /* referenced */
	CURLM *multi;
	sd_event_source *curl_timer;
	sd_event_source *deliver; /* defer source draining `done` */
	struct list_head done;	  /* completed, done callback not called yet */
	struct http_client *clients;
	bool curl_inited;
};

/* ---- lists ------------------------------------------------------------ */

/* The request of a list node; NULL for NULL (an empty list's head, say). */
static struct http_request *req_of(struct list_node *n)
{
	return list_entry(n, struct http_request, node);
}

/* Moves r into l, kept sorted by due_us; equal times stay in insertion order. */
static void req_insert_due(struct list_head *l, struct http_request *r)
{
	struct list_node *after;
	list_remove(&r->node);
	after = l->tail;
	while (after && req_of(after)->due_us > r->due_us)
		after = after->prev;
	list_insert_after(l, after, &r->node);
}

/* ---- small helpers ---------------------------------------------------- */

const char *http_outcome_name(enum http_outcome o)
{
	switch (o) {
	case HTTP_OK: return "ok";
	case HTTP_RETRY: return "retry";
	case HTTP_FAIL: return "fail";
	}
	return "unknown";
}

const char *http_circuit_name(enum http_circuit s)
{
	switch (s) {
	case HTTP_CIRCUIT_CLOSED: return "closed";
	case HTTP_CIRCUIT_OPEN: return "open";
	case HTTP_CIRCUIT_HALF_OPEN: return "half-open";
	}
	return "unknown";
}

static bool is_http_url(const char *s)
{
	return s && (strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0);
}

static void set_str(char **dst, char *src)
{
	free(*dst);
	*dst = src;
}

enum http_outcome http_classify_status(const struct http_response *r, char **why)
{
	long s = r->status;
	if (r->curl_code != 0 || s == 0) {
		*why = xasprintf("transport error: %s",
				 r->error && *r->error ? r->error : "no answer");
		return HTTP_RETRY;
	}
	if (s >= 200 && s < 400)
		return HTTP_OK;
	if (s == 408 || s == 429 || (s >= 500 && s < 600)) {
		*why = xasprintf("HTTP %ld", s);
		return HTTP_RETRY;
	}
	if (s >= 400 && s < 500) {
		*why = xasprintf("HTTP %ld", s);
		return HTTP_FAIL;
	}
	*why = xasprintf("unexpected HTTP status %ld", s);
	return HTTP_RETRY;
}

int64_t http_backoff_ms(const struct http_opts *o, unsigned attempt, int64_t retry_after_ms)
{
	int64_t cap = o->backoff_cap_ms > 0 ? o->backoff_cap_ms : 0;
	int64_t base = o->backoff_base_ms > 0 ? o->backoff_base_ms : 0;
	if (retry_after_ms >= 0)
		return LT_MIN(retry_after_ms, cap);
	int64_t ceiling = base;
	for (unsigned i = 1; i < attempt && ceiling < cap; i++)
		ceiling = ceiling > INT64_MAX / 2 ? INT64_MAX : ceiling * 2;
	ceiling = LT_MIN(ceiling, cap);
	return (int64_t)rand_below((uint64_t)ceiling + 1);
}

int64_t http_parse_retry_after(const char *value, int64_t now_wall_ms)
{
	char buf[HTTP_HEADER_VALUE_MAX];
	if (!value)
		return -1;
	size_t n = strlen(value);
	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, value, n + 1);
	str_strip(buf);
	if (!*buf)
		return -1;
	if (strspn(buf, "0123456789") == strlen(buf)) {
		/* delta-seconds; absurd values are clamped, the caller caps anyway */
		if (strlen(buf) > 9)
			return 999999999LL * 1000;
		return strtoll(buf, NULL, 10) * 1000;
	}
	/* HTTP-date (IMF-fixdate; curl_getdate also takes the obsolete RFC 850 and
	 * asctime forms HTTP requires recipients to accept). */
	time_t t = curl_getdate(buf, NULL);
	if (t == (time_t)-1)
		return -1;
	int64_t ms = (int64_t)t * 1000 - now_wall_ms;
	return ms > 0 ? ms : 0;
}

/* ---- requests --------------------------------------------------------- */

struct http_request *http_request_new(const char *method, const char *path)
{
	struct http_request *r = xcalloc(1, sizeof(*r));
	r->method = xstrdup(method && *method ? method : "GET");
	r->path = xstrdup(path ? path : "");
	r->retry_after_ms = -1;
	dynbuf_init(&r->resp, 0);
	return r;
}

void http_request_free(struct http_request *r)
{
	if (!r)
		return;
	list_remove(&r->node);
	free(r->method);
	free(r->path);
	curl_slist_free_all(r->headers);
	/* bodies carry passwords (logins) and citizens' data */
	if (r->body)
		explicit_bzero(r->body, r->body_len);
	free(r->body);
	free(r->content_type);
	free(r->user);
	secret_free(r->password);
	dynbuf_free(&r->resp);
	free(r->resp_type);
	free(r->why);
	free(r);
}

void http_request_header(struct http_request *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *h = xvasprintf(fmt, ap);
	va_end(ap);
	struct curl_slist *l = curl_slist_append(r->headers, h);
	free(h);
	if (!l)
		log_fatal("out of memory adding an HTTP header");
	r->headers = l;
}

void http_request_body(struct http_request *r, char *body, size_t len, const char *content_type)
{
	if (r->body)
		explicit_bzero(r->body, r->body_len);
	free(r->body);
	r->body = body;
	r->body_len = body ? len : 0;
	set_str(&r->content_type, content_type ? xstrdup(content_type) : NULL);
}

void http_request_json(struct http_request *r, const json_t *j)
{
	size_t len = 0;
	char *s = jsontext_dumps(j, &len);
	if (!s)
		log_fatal("cannot serialise a JSON request body");
	http_request_body(r, s, len, "application/json");
}

void http_request_basic_auth(struct http_request *r, const char *user, const char *password)
{
	set_str(&r->user, xstrdup(user));
	secret_free(r->password);
	r->password = xstrdup(password);
}

void http_request_classify(struct http_request *r, http_classify_fn fn, void *ud)
{
	r->classify = fn;
	r->classify_ud = ud;
}

void http_request_done(struct http_request *r, http_done_fn fn, void *ud)
{
	r->done = fn;
	r->done_ud = ud;
}

void http_request_max_attempts(struct http_request *r, unsigned n)
{
	r->max_attempts = n;
}

static void response_view(const struct http_request *r, struct http_response *out)
{
	memset(out, 0, sizeof(*out));
	out->status = r->status;
	out->body = r->resp.data ? r->resp.data : "";
	out->body_len = r->resp.len;
	out->content_type = r->resp_type;
	out->retry_after_ms = r->retry_after_ms;
	out->curl_code = r->curl_code;
	if (r->curl_code != CURLE_OK)
		out->error = r->errbuf[0] ? r->errbuf : curl_easy_strerror((CURLcode)r->curl_code);
	out->elapsed_us = r->elapsed_us;
	out->attempts = r->attempts;
}

/* ---- delivery --------------------------------------------------------- */

static void deliver_one(struct http_request *r)
{
	struct http_response resp;
	response_view(r, &resp);
	if (r->done)
		r->done(&resp, r->outcome, r->outcome == HTTP_OK ? NULL : r->why, r->done_ud);
	http_request_free(r);
}

static int on_deliver(sd_event_source *s, void *ud)
{
	struct http_core *core = ud;
	(void)s;
	/* Only what was there when we started: a done callback that resubmits into
	 * an open circuit must not keep us here forever. */
	size_t n = core->done.n;
	struct http_request *r;
	while (n-- > 0 && (r = req_of(list_pop_front(&core->done))))
		deliver_one(r);
	if (core->done.n)
		sd_event_source_set_enabled(core->deliver, SD_EVENT_ONESHOT);
	return 0;
}

/* Final outcome: queue the done callback for the loop. Takes why. */
static void complete(struct http_core *core, struct http_request *r, enum http_outcome o, char *why)
{
	r->outcome = o;
	set_str(&r->why, why);
	list_append(&core->done, &r->node);
	if (sd_event_source_set_enabled(core->deliver, SD_EVENT_ONESHOT) < 0)
		log_err("http: cannot schedule completions");
}

/* ---- circuit breaker -------------------------------------------------- */

static enum http_circuit circuit_now(struct http_client *c)
{
	if (c->circuit == HTTP_CIRCUIT_OPEN && now_mono_us() >= c->open_until_us)
		c->circuit = HTTP_CIRCUIT_HALF_OPEN;
	return c->circuit;
}

static void reject(struct http_client *c, struct http_request *r)
{
	char when[32];
	c->st.circuit_rejects++;
	complete(c->core, r, HTTP_RETRY,
		 xasprintf("circuit open until %s",
			   fmt_time_iso(c->open_until_wall_ms, when, sizeof(when))));
}

static void circuit_open(struct http_client *c, const char *why)
{
	char when[32];
	bool first = c->circuit == HTTP_CIRCUIT_CLOSED;
	c->circuit = HTTP_CIRCUIT_OPEN;
	c->open_until_us = now_mono_us() + (uint64_t)c->o.breaker_open_ms * 1000;
	c->open_until_wall_ms = now_wall_ms() + c->o.breaker_open_ms;
	c->st.circuit_opens++;
	fmt_time_iso(c->open_until_wall_ms, when, sizeof(when));
	if (first) {
		c->opened_us = now_mono_us();
		log_fields(LOG_WARNING, c->fields,
			   "circuit opened after %u consecutive failures (last: %s); requests are "
			   "refused until %s",
			   c->consecutive, why ? why : "?", when);
	} else {
		log_fields(LOG_DEBUG, c->fields, "probe failed (%s); circuit open until %s",
			   why ? why : "?", when);
	}
}

static void circuit_close(struct http_client *c)
{
	if (c->circuit != HTTP_CIRCUIT_CLOSED)
		log_fields(LOG_NOTICE, c->fields, "endpoint recovered; circuit closed after %llu s",
			   (unsigned long long)((now_mono_us() - c->opened_us) / 1000000));
	c->circuit = HTTP_CIRCUIT_CLOSED;
	c->consecutive = 0;
}

/* Feeds one attempt's answer to the breaker. */
static void circuit_note(struct http_client *c, const struct http_request *r, bool was_probe,
			 const char *why)
{
	bool throttled = r->status == 429;
	bool failure =
		!r->too_large && (r->curl_code != CURLE_OK || r->status == 0 || r->status >= 500);
	if (throttled)
		c->rate_limited++;
	if (c->o.breaker_failures <= 0)
		return;
	if (was_probe) {
		/* A 429 shows the endpoint is alive: the probe succeeded. */
		if (failure)
			circuit_open(c, why);
		else
			circuit_close(c);
		return;
	}
	/* Stragglers sent before the circuit opened do not move it. */
	if (c->circuit != HTTP_CIRCUIT_CLOSED)
		return;
	if (failure) {
		c->consecutive++;
		if (c->consecutive >= (uint64_t)c->o.breaker_failures)
			circuit_open(c, why);
	} else if (!throttled) {
		c->consecutive = 0;
	}
}

/* ---- transfers -------------------------------------------------------- */

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct http_request *r = ud;
	size_t n = size * nmemb;
	if (dynbuf_add(&r->resp, p, n) < 0) {
		r->too_large = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	return n;
}

static void header_value(const char *p, size_t n, char *buf, size_t len)
{
	while (n && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	n = LT_MIN(n, len - 1);
	memcpy(buf, p, n);
	buf[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct http_request *r = ud;
	size_t n = size * nmemb;
	char v[HTTP_HEADER_VALUE_MAX];
	/* A new status line starts a new response (after 1xx): forget the old one's. */
	if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		r->retry_after_ms = -1;
		set_str(&r->resp_type, NULL);
	} else if (n > 12 && strncasecmp(p, "content-type:", 13) == 0) {
		header_value(p + 13, n - 13, v, sizeof(v));
		set_str(&r->resp_type, xstrdup(v));
	} else if (n > 11 && strncasecmp(p, "retry-after:", 12) == 0) {
		header_value(p + 12, n - 12, v, sizeof(v));
		r->retry_after_ms = http_parse_retry_after(v, now_wall_ms());
	}
	return n;
}

static CURL *easy_get(struct http_client *c)
{
	if (c->n_pool) {
		CURL *e = c->pool[--c->n_pool];
		/* keeps the handle's TLS session and DNS caches */
		curl_easy_reset(e);
		return e;
	}
	return curl_easy_init();
}

static void easy_put(struct http_client *c, CURL *e)
{
	if (!e)
		return;
	if (c->n_pool < LT_MIN((size_t)HTTP_POOL_MAX, (size_t)c->o.concurrency))
		c->pool[c->n_pool++] = e;
	else
		curl_easy_cleanup(e);
}

#define SETOPT(e, opt, val)                                                                        \
	do {                                                                                       \
		if (cc == CURLE_OK)                                                                \
			cc = curl_easy_setopt((e), (opt), (val));                                  \
	} while (0)

static CURLcode easy_setup(struct http_client *c, struct http_request *r, CURL *e, const char *url)
{
	const struct http_opts *o = &c->o;
	CURLcode cc = CURLE_OK;
	bool has_body = r->body || !strcmp(r->method, "POST") || !strcmp(r->method, "PUT") ||
			!strcmp(r->method, "PATCH");

	SETOPT(e, CURLOPT_URL, url);
	SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
	SETOPT(e, CURLOPT_NOSIGNAL, 1L);
	SETOPT(e, CURLOPT_PRIVATE, r);
	SETOPT(e, CURLOPT_ERRORBUFFER, r->errbuf);
	SETOPT(e, CURLOPT_USERAGENT, HTTP_USER_AGENT);
	SETOPT(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	SETOPT(e, CURLOPT_PIPEWAIT, 1L);
	SETOPT(e, CURLOPT_ACCEPT_ENCODING, "");
	SETOPT(e, CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(e, CURLOPT_SSL_VERIFYPEER, o->tls_verify ? 1L : 0L);
	SETOPT(e, CURLOPT_SSL_VERIFYHOST, o->tls_verify ? 2L : 0L);
	if (o->ca_file)
		SETOPT(e, CURLOPT_CAINFO, o->ca_file);
	if (o->client_cert)
		SETOPT(e, CURLOPT_SSLCERT, o->client_cert);
	if (o->client_key)
		SETOPT(e, CURLOPT_SSLKEY, o->client_key);
	SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
	SETOPT(e, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
	SETOPT(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_response_bytes);
	SETOPT(e, CURLOPT_WRITEFUNCTION, on_write);
	SETOPT(e, CURLOPT_WRITEDATA, r);
	SETOPT(e, CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(e, CURLOPT_HEADERDATA, r);
	SETOPT(e, CURLOPT_HTTPHEADER, r->headers);

	if (!strcmp(r->method, "GET")) {
		SETOPT(e, CURLOPT_HTTPGET, 1L);
	} else if (!strcmp(r->method, "HEAD")) {
		SETOPT(e, CURLOPT_NOBODY, 1L);
	} else {
		if (strcmp(r->method, "POST"))
			SETOPT(e, CURLOPT_CUSTOMREQUEST, r->method);
		if (has_body) {
			SETOPT(e, CURLOPT_POST, 1L);
			SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
			SETOPT(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
		}
	}
	if (r->user) {
		SETOPT(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		SETOPT(e, CURLOPT_USERNAME, r->user);
		SETOPT(e, CURLOPT_PASSWORD, r->password ? r->password : "");
	}
	return cc;
}

#undef SETOPT

static void record_attempt(struct http_client *c, const struct http_request *r, enum http_outcome o,
			   const char *why)
{
	double s = (double)r->elapsed_us / 1e6;
	size_t b = 0;
	while (b < HTTP_LATENCY_BUCKETS - 1 && s > http_latency_bounds_s[b])
		b++;
	c->st.latency_count[b]++;
	c->st.latency_sum_s += s;
	if (o == HTTP_OK) {
		c->st.ok++;
		c->st.last_ok_ms = now_wall_ms();
	} else {
		if (o == HTTP_RETRY)
			c->st.retry++;
		else
			c->st.fail++;
		c->st.last_err_ms = now_wall_ms();
		set_str(&c->last_err, xstrdup(why ? why : http_outcome_name(o)));
	}
}

/* Starts one attempt of r (taken off the queue). */
static void start(struct http_client *c, struct http_request *r)
{
	char *url = NULL;
	CURLcode cc;
	CURLMcode mc;

	list_remove(&r->node);
	r->attempts++;
	c->st.requests++;
	if (r->attempts > 1)
		c->st.retries++;
	dynbuf_reset(&r->resp);
	set_str(&r->resp_type, NULL);
	r->retry_after_ms = -1;
	r->status = 0;
	r->curl_code = CURLE_OK;
	r->too_large = false;
	r->errbuf[0] = '\0';
	r->elapsed_us = 0;

	r->easy = easy_get(c);
	if (!r->easy) {
		cc = CURLE_OUT_OF_MEMORY;
		goto fail;
	}
	url = is_http_url(r->path) ? xstrdup(r->path) : xasprintf("%s%s", c->o.url, r->path);
	cc = easy_setup(c, r, r->easy, url);
	if (cc != CURLE_OK)
		goto fail;
	r->start_us = now_mono_us();
	mc = curl_multi_add_handle(c->core->multi, r->easy);
	if (mc != CURLM_OK) {
		log_fields(LOG_ERR, c->fields, "cannot start a transfer: %s",
			   curl_multi_strerror(mc));
		cc = CURLE_FAILED_INIT;
		goto fail;
	}
	list_append(&c->flight, &r->node);
	free(url);
	return;
fail:
	/* Not the remote side's fault and not going to get better by waiting. */
	free(url);
	easy_put(c, r->easy);
	r->easy = NULL;
	if (r->probe) {
		r->probe = false;
		c->probe_in_flight = false;
	}
	char *why = xasprintf("cannot start the transfer: %s", curl_easy_strerror(cc));
	record_attempt(c, r, HTTP_FAIL, why);
	complete(c->core, r, HTTP_FAIL, why);
}

static unsigned max_attempts_of(const struct http_client *c, const struct http_request *r)
{
	return r->max_attempts ? r->max_attempts : (unsigned)LT_MAX(c->o.max_attempts, 1);
}

static void retry_timer_arm(struct http_client *c)
{
	if (list_empty(&c->backoff)) {
		sd_event_source_set_enabled(c->retry_timer, SD_EVENT_OFF);
		return;
	}
	if (sd_event_source_set_time(c->retry_timer, req_of(c->backoff.head)->due_us) < 0 ||
	    sd_event_source_set_enabled(c->retry_timer, SD_EVENT_ONESHOT) < 0)
		log_fields(LOG_ERR, c->fields, "cannot arm the retry timer");
}

/* Starts what the queue, the concurrency limit and the circuit allow. */
static void pump(struct http_client *c)
{
	struct http_request *r;
	while ((r = req_of(c->queue.head)) && !c->freeing) {
		enum http_circuit s = circuit_now(c);
		if (s == HTTP_CIRCUIT_OPEN) {
			reject(c, r);
			continue;
		}
		if (c->flight.n >= (size_t)c->o.concurrency)
			break;
		if (s == HTTP_CIRCUIT_HALF_OPEN) {
			/* one probe at a time; the rest wait for its verdict */
			if (c->probe_in_flight)
				break;
			c->probe_in_flight = true;
			r->probe = true;
		}
		start(c, r);
	}
}

/* A transfer ended: classify it, then retry later or complete. */
static void attempt_finished(struct http_client *c, struct http_request *r, CURLcode result)
{
	struct http_response resp;
	enum http_outcome o;
	char *why = NULL;
	bool was_probe = r->probe;
	long status = 0, connects = 0;

	list_remove(&r->node);
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects);
	r->status = status;
	r->curl_code = result;
	r->elapsed_us = now_mono_us() - r->start_us;
	if (result == CURLE_FILESIZE_EXCEEDED)
		r->too_large = true;
	easy_put(c, r->easy);
	r->easy = NULL;
	r->probe = false;
	if (was_probe)
		c->probe_in_flight = false;

	response_view(r, &resp);
	if (r->too_large) {
		o = HTTP_FAIL;
		why = xasprintf("response larger than %lld bytes",
				(long long)c->o.max_response_bytes);
	} else if (result != CURLE_OK || !r->classify) {
		o = http_classify_status(&resp, &why);
	} else {
		o = r->classify(&resp, r->classify_ud, &why);
	}
	if (o != HTTP_OK && !why)
		why = xstrdup(o == HTTP_RETRY ? "retry" : "failed");
	/* no query string: it may carry identifiers of citizens */
	log_fields(LOG_DEBUG, c->fields,
		   "%s %.*s -> %ld in %llu ms (%s connection), attempt %u: %s%s%s", r->method,
		   (int)strcspn(r->path, "?"), r->path, status,
		   (unsigned long long)(r->elapsed_us / 1000),
		   status == 0 ? "no"
		   : connects  ? "new"
			       : "reused",
		   r->attempts, http_outcome_name(o), why ? ": " : "", why ? why : "");
	record_attempt(c, r, o, why);
	circuit_note(c, r, was_probe, why);

	if (o == HTTP_RETRY && r->attempts < max_attempts_of(c, r) && !c->freeing) {
		int64_t delay = http_backoff_ms(&c->o, r->attempts, r->retry_after_ms);
		set_str(&r->why, why);
		r->due_us = now_mono_us() + (uint64_t)delay * 1000;
		req_insert_due(&c->backoff, r);
		retry_timer_arm(c);
		return;
	}
	complete(c->core, r, o, why);
}

static void check_finished(struct http_core *core)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(core->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *e = m->easy_handle;
		CURLcode result = m->data.result; /* m dies with remove_handle */
		struct http_request *r = NULL;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
		curl_multi_remove_handle(core->multi, e);
		if (!r || !r->client) {
			curl_easy_cleanup(e);
			continue;
		}
		struct http_client *c = r->client;
		attempt_finished(c, r, result);
		pump(c);
	}
}

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct http_client *c = ud;
	uint64_t now = now_mono_us();
	(void)s;
	(void)usec;
	struct http_request *r;
	while ((r = req_of(c->backoff.head)) && r->due_us <= now) {
		if (circuit_now(c) == HTTP_CIRCUIT_OPEN)
			reject(c, r);
		else
			list_append(&c->queue, &r->node);
	}
	retry_timer_arm(c);
	pump(c);
	return 0;
}

/* ---- curl <-> sd-event glue -------------------------------------------- */

static int on_curl_io(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	struct http_core *core = ud;
	int running = 0, bits = 0;
	(void)s;
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
		bits |= CURL_CSELECT_IN;
	if (revents & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		bits |= CURL_CSELECT_OUT;
	if (revents & EPOLLERR)
		bits |= CURL_CSELECT_ERR;
	CURLMcode mc = curl_multi_socket_action(core->multi, fd, bits, &running);
	if (mc != CURLM_OK)
		log_err("http: curl_multi_socket_action: %s", curl_multi_strerror(mc));
	check_finished(core);
	return 0;
}

static int on_curl_timer(sd_event_source *s, uint64_t usec, void *ud)
{
	struct http_core *core = ud;
	int running = 0;
	(void)s;
	(void)usec;
	CURLMcode mc = curl_multi_socket_action(core->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	if (mc != CURLM_OK)
		log_err("http: curl_multi_socket_action: %s", curl_multi_strerror(mc));
	check_finished(core);
	return 0;
}

/* CURLMOPT_SOCKETFUNCTION: socketp is our sd_event_source for s. */
static int curl_socket_cb(CURL *e, curl_socket_t sock, int what, void *userp, void *socketp)
{
	struct http_core *core = userp;
	sd_event_source *src = socketp;
	uint32_t events = 0;
	(void)e;

	if (what == CURL_POLL_REMOVE) {
		/* curl calls this before it closes the socket */
		sd_event_source_disable_unref(src);
		return 0;
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= EPOLLIN;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= EPOLLOUT;
	if (src) {
		if (sd_event_source_set_io_events(src, events) < 0)
			return -1;
		return 0;
	}
	if (sd_event_add_io(core->ev, &src, sock, events, on_curl_io, core) < 0)
		return -1;
	sd_event_source_set_description(src, "curl-socket");
	if (curl_multi_assign(core->multi, sock, src) != CURLM_OK) {
		sd_event_source_disable_unref(src);
		return -1;
	}
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer; 0 means "soon", from the loop, not from here. */
static int curl_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct http_core *core = userp;
	(void)m;
	if (timeout_ms < 0)
		return sd_event_source_set_enabled(core->curl_timer, SD_EVENT_OFF) < 0 ? -1 : 0;
	uint64_t when = now_mono_us() + (uint64_t)timeout_ms * 1000;
	if (sd_event_source_set_time(core->curl_timer, when) < 0 ||
	    sd_event_source_set_enabled(core->curl_timer, SD_EVENT_ONESHOT) < 0)
		return -1;
	return 0;
}

/* ---- core ------------------------------------------------------------- */

struct http_core *http_core_new(struct sd_event *ev)
{
	struct http_core *core = xcalloc(1, sizeof(*core));
	core->ev = sd_event_ref(ev);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_err("http: curl_global_init failed");
		goto fail;
	}
	core->curl_inited = true;
	core->multi = curl_multi_init();
	if (!core->multi)
		goto fail;
	if (curl_multi_setopt(core->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb) != CURLM_OK ||
	    curl_multi_setopt(core->multi, CURLMOPT_SOCKETDATA, core) != CURLM_OK ||
	    curl_multi_setopt(core->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb) != CURLM_OK ||
	    curl_multi_setopt(core->multi, CURLMOPT_TIMERDATA, core) != CURLM_OK ||
	    curl_multi_setopt(core->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX) !=
		    CURLM_OK ||
	    curl_multi_setopt(core->multi, CURLMOPT_MAXCONNECTS, (long)HTTP_MAXCONNECTS) !=
		    CURLM_OK)
		goto fail;
	if (sd_event_add_time(ev, &core->curl_timer, CLOCK_MONOTONIC, 0, HTTP_TIMER_ACCURACY_US,
			      on_curl_timer, core) < 0 ||
	    sd_event_source_set_enabled(core->curl_timer, SD_EVENT_OFF) < 0)
		goto fail;
	sd_event_source_set_description(core->curl_timer, "curl-timer");
	if (sd_event_add_defer(ev, &core->deliver, on_deliver, core) < 0 ||
	    sd_event_source_set_enabled(core->deliver, SD_EVENT_OFF) < 0)
		goto fail;
	sd_event_source_set_description(core->deliver, "http-completions");
	return core;
fail:
	log_err("http: cannot set up the HTTP core");
	http_core_free(core);
	return NULL;
}

void http_core_free(struct http_core *core)
{
	if (!core)
		return;
	while (core->clients) {
		log_err("http: client %s still exists when the core is freed", core->clients->name);
		http_client_free(core->clients);
	}
	/* Completions of requests submitted while their client was being freed. */
	struct http_request *r;
	while ((r = req_of(list_pop_front(&core->done))))
		deliver_one(r);
	if (core->multi)
		curl_multi_cleanup(core->multi);
	sd_event_source_disable_unref(core->curl_timer);
	sd_event_source_disable_unref(core->deliver);
	sd_event_unref(core->ev);
	if (core->curl_inited)
		curl_global_cleanup();
	free(core);
}

size_t http_core_pending(const struct http_core *core)
{
	size_t n = core->done.n;
	for (const struct http_client *c = core->clients; c; c = c->next)
		n += c->queue.n + c->flight.n + c->backoff.n;
	return n;
}

/* ---- clients ---------------------------------------------------------- */

static void opts_free(struct http_opts *o)
{
	free(o->url);
	free(o->ca_file);
	free(o->client_cert);
	free(o->client_key);
	memset(o, 0, sizeof(*o));
}

static char *dup_or_null(const char *s)
{
	return s && *s ? xstrdup(s) : NULL;
}

int http_client_new(struct http_core *core, const char *name, const struct http_opts *o,
		    struct http_client **out, char **err)
{
	struct http_client *c = NULL;
	*out = NULL;
	if (!is_http_url(o->url)) {
		*err = xasprintf("url must start with http:// or https:// (got '%s')",
				 o->url ? o->url : "");
		return -EINVAL;
	}
	if (o->concurrency < 1 || o->max_attempts < 1) {
		*err = xstrdup("concurrency and max_attempts must be at least 1");
		return -EINVAL;
	}
	if (o->timeout_ms <= 0 || o->connect_timeout_ms <= 0 || o->max_response_bytes <= 0) {
		*err = xstrdup("timeout, connect_timeout and max_response_bytes must be positive");
		return -EINVAL;
	}
	if (o->backoff_base_ms > o->backoff_cap_ms) {
		*err = xasprintf("backoff_base (%lld ms) is larger than backoff_cap (%lld ms)",
				 (long long)o->backoff_base_ms, (long long)o->backoff_cap_ms);
		return -EINVAL;
	}
	if (o->breaker_failures > 0 && o->breaker_open_ms <= 0) {
		*err = xstrdup("breaker_open must be positive when breaker_failures is set");
		return -EINVAL;
	}
	if (o->client_key && *o->client_key && !(o->client_cert && *o->client_cert)) {
		*err = xstrdup("client_key is set without client_cert");
		return -EINVAL;
	}
	/* Unreadable TLS files are a configuration error, found at load and
	 * reload, not a transport error retried at every request. */
	const struct {
		const char *key, *path;
	} files[] = {{"ca_file", o->ca_file},
		     {"client_cert", o->client_cert},
		     {"client_key", o->client_key}};
	for (size_t i = 0; i < LT_ARRAY_SIZE(files); i++) {
		if (files[i].path && *files[i].path && access(files[i].path, R_OK) < 0) {
			int e = errno;
			*err = xasprintf("%s %s: %s", files[i].key, files[i].path, strerror(e));
			return -e;
		}
	}

	c = xcalloc(1, sizeof(*c));
	c->core = core;
	c->name = xstrdup(name ? name : "http");
	c->field = xasprintf("CONNECTOR=%s", c->name);
	c->fields[0] = c->field;
	c->fields[1] = NULL;
	c->o = *o;
	c->o.url = xstrdup(o->url);
	/* "https://x/" + "/path" would give "//path" */
	size_t ul = strlen(c->o.url);
	while (ul > 0 && c->o.url[ul - 1] == '/')
		c->o.url[--ul] = '\0';
	c->o.ca_file = dup_or_null(o->ca_file);
	c->o.client_cert = dup_or_null(o->client_cert);
	c->o.client_key = dup_or_null(o->client_key);
	c->circuit = HTTP_CIRCUIT_CLOSED;
	if (sd_event_add_time(core->ev, &c->retry_timer, CLOCK_MONOTONIC, 0, HTTP_TIMER_ACCURACY_US,
			      on_retry_timer, c) < 0 ||
	    sd_event_source_set_enabled(c->retry_timer, SD_EVENT_OFF) < 0) {
		*err = xstrdup("cannot create the retry timer");
		sd_event_source_disable_unref(c->retry_timer);
		opts_free(&c->o);
		free(c->field);
		free(c->name);
		free(c);
		return -ENOMEM;
	}
	sd_event_source_set_description(c->retry_timer, "http-retry");
	if (!o->tls_verify && str_startswith(c->o.url, "https:"))
		log_fields(LOG_WARNING, c->fields,
			   "TLS certificate verification is off (tls_verify = false): for a test "
			   "system only, never in production");
	c->next = core->clients;
	if (core->clients)
		core->clients->prev = c;
	core->clients = c;
	*out = c;
	return 0;
}

/* Takes every pending request of c off its lists and calls its done. */
static void cancel_pending(struct http_client *c)
{
	struct list_head l = {0};
	struct http_request *r;

	while ((r = req_of(c->flight.head))) {
		curl_multi_remove_handle(c->core->multi, r->easy);
		easy_put(c, r->easy);
		r->easy = NULL;
		r->probe = false;
		r->outcome = HTTP_RETRY;
		set_str(&r->why, xstrdup("cancelled"));
		list_append(&l, &r->node);
	}
	c->probe_in_flight = false;
	while ((r = req_of(c->queue.head)) || (r = req_of(c->backoff.head))) {
		r->outcome = HTTP_RETRY;
		set_str(&r->why, xstrdup("cancelled"));
		list_append(&l, &r->node);
	}
	/* Completed but not yet delivered: their outcome stands. */
	for (struct list_node *n = c->core->done.head, *next; n; n = next) {
		next = n->next;
		r = req_of(n);
		if (r->client == c)
			list_append(&l, n);
	}
	sd_event_source_set_enabled(c->retry_timer, SD_EVENT_OFF);
	/* Nothing of c is touched from here: a done callback may free it. */
	while ((r = req_of(list_pop_front(&l)))) {
		r->client = NULL;
		deliver_one(r);
	}
}

void http_client_cancel_all(struct http_client *c)
{
	if (c)
		cancel_pending(c);
}

void http_client_free(struct http_client *c)
{
	if (!c || c->freeing)
		return;
	c->freeing = true;
	cancel_pending(c);
	for (size_t i = 0; i < c->n_pool; i++)
		curl_easy_cleanup(c->pool[i]);
	sd_event_source_disable_unref(c->retry_timer);
	if (c->prev)
		c->prev->next = c->next;
	else
		c->core->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	opts_free(&c->o);
	free(c->last_err);
	free(c->field);
	free(c->name);
	free(c);
}

void http_client_stats(const struct http_client *c, struct http_stats *out)
{
	*out = c->st;
	out->in_flight = c->flight.n;
	out->queued = c->queue.n + c->backoff.n;
	out->circuit = c->circuit;
	if (c->circuit == HTTP_CIRCUIT_OPEN && now_mono_us() >= c->open_until_us)
		out->circuit = HTTP_CIRCUIT_HALF_OPEN;
	out->circuit_until_ms = c->circuit == HTTP_CIRCUIT_CLOSED ? 0 : c->open_until_wall_ms;
	out->last_err = c->last_err;
	out->rate_limited = c->rate_limited;
}

const struct http_opts *http_client_opts(const struct http_client *c)
{
	return &c->o;
}

int http_submit(struct http_client *c, struct http_request *r)
{
	struct http_core *core = c->core;
	list_remove(&r->node);
	r->attempts = 0;
	if (c->freeing) {
		/* Detached: delivered from the loop (or by http_core_free). */
		r->client = NULL;
		complete(core, r, HTTP_RETRY, xstrdup("cancelled: client is shutting down"));
		return -ESHUTDOWN;
	}
	r->client = c;
	if (r->content_type) {
		http_request_header(r, "Content-Type: %s", r->content_type);
		free(r->content_type);
		r->content_type = NULL;
	}
	/* curl's "Expect: 100-continue" for large bodies costs a round trip or a
	 * one-second stall against servers that ignore it. */
	if (r->body)
		http_request_header(r, "Expect:");
	if (circuit_now(c) == HTTP_CIRCUIT_OPEN) {
		reject(c, r);
		return 0;
	}
	list_append(&c->queue, &r->node);
	pump(c);
	return 0;
}
