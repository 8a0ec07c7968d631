/*
 * test_adapter: the adapter envelope and authentication against the real
 * simulator (build/lienthong-sim, $BUILD overrides "build") over loopback,
 * through the real HTTP core on an sd-event loop; plus answer parsing and
 * the option table. Everything logged meanwhile (at debug level) is
 * captured and checked for the password, the consumer secret and sessions.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <jansson.h>

#include "adapter.h"
#include "http.h"
#include "log.h"
#include "simproc.h"
#include "tap.h"
#include "util.h"

#define PASSWORD	"pw-Xq7-not-in-logs"
#define CONSUMER_SECRET "cs-Zz9-not-in-logs"
/* Every simulator of this test: a fixed seed, and the password the adapter logs in with. */
#define SIM_ARGS "--seed", "11", "--password", PASSWORD

/* ---- results ---------------------------------------------------------- */

struct ares {
	int calls;
	enum http_outcome o;
	char *why, *code, *msg, *raw;
	json_t *result;
	long status;
	int *counter;
	int classified; /* FAIL answers with error_code 404 seen by a connector classify */
};

static void ares_clear(struct ares *r)
{
	free(r->why);
	free(r->code);
	free(r->msg);
	free(r->raw);
	json_decref(r->result);
	memset(r, 0, sizeof(*r));
}

static void on_adone(const struct adapter_answer *a, enum http_outcome o, const char *why, void *ud)
{
	struct ares *r = ud;
	r->calls++;
	r->o = o;
	free(r->why);
	free(r->code);
	free(r->msg);
	free(r->raw);
	json_decref(r->result);
	r->why = why ? xstrdup(why) : NULL;
	r->code = xstrdup(a->error_code);
	r->msg = xstrdup(a->message);
	r->raw = a->raw ? xstrndup(a->raw->body, a->raw->body_len) : NULL;
	r->status = a->raw ? a->raw->status : -1;
	r->result = a->result ? json_deep_copy(a->result) : NULL;
	if (r->counter)
		(*r->counter)++;
}

static bool contains(const char *s, const char *sub)
{
	return s && strstr(s, sub);
}

/* An http client and an adapter on it. */
struct ad {
	struct http_client *http;
	struct adapter *a;
};

static struct adapter_opts aopts(int auth)
{
	struct adapter_opts o = {
		.auth = auth,
		.auth_endpoint = "/auth",
		.integration_endpoint = "/integration",
		.share_endpoint = "/share",
		.username = "lienthong",
		.password = PASSWORD,
		.madonvi = "000.00.00.H31",
		.success_codes = "0,00",
		.expired_codes = "-1",
		.expired_pattern = "hết hạn|expired|session",
	};
	return o;
}

static int ad_new(struct ad *d, struct http_core *core, const char *url, unsigned max_attempts,
		  const struct adapter_opts *ao)
{
	struct http_opts ho = {
		.url = (char *)url,
		.tls_verify = true,
		.connect_timeout_ms = 2000,
		.timeout_ms = 5000,
		.max_response_bytes = 1 << 20,
		.concurrency = 4,
		.max_attempts = max_attempts,
		.backoff_base_ms = 10,
		.backoff_cap_ms = 100,
		.breaker_failures = 0,
		.breaker_open_ms = 1000,
	};
	char *err = NULL;
	memset(d, 0, sizeof(*d));
	if (http_client_new(core, "adapter-test", &ho, &d->http, &err) < 0 ||
	    adapter_new(d->http, ao, "adapter-test", &d->a, &err) < 0) {
		printf("# setup: %s\n", err);
		free(err);
		http_client_free(d->http);
		return -1;
	}
	return 0;
}

static void ad_free(struct ad *d)
{
	adapter_free(d->a);
	http_client_free(d->http);
	memset(d, 0, sizeof(*d));
}

/* One call, run to completion. */
static void call1(sd_event *ev, struct ad *d, const char *service, json_t *params, struct ares *r)
{
	int n = 0;
	ares_clear(r);
	r->counter = &n;
	int rc = adapter_call(d->a, ADAPTER_INTEGRATION, service, params, NULL, on_adone, r);
	if (rc < 0)
		printf("# adapter_call: %d\n", rc);
	if (r->calls)
		printf("# done called from inside adapter_call\n");
	if (!simproc_run_until(ev, &n, 1, 8000))
		printf("# call %s did not complete\n", service);
	r->counter = NULL;
}

/* ---- pure -------------------------------------------------------------- */

static const char *code_of(json_t *j)
{
	return json_string_value(json_object_get(j, "error_code"));
}

static void test_parse(void)
{
	json_t *j;
	const char *s = "{\"error_code\":0,\"message\":\"OK\",\"result\":[1]}";
	j = adapter_parse_answer(s, strlen(s));
	ok(j && json_is_array(json_object_get(j, "result")), "a plain answer parses");
	is_str(code_of(j), "0", "integer error_code 0 is normalised to \"0\"");
	json_decref(j);
	s = "{\"error_code\":\"00\",\"result\":[]}";
	j = adapter_parse_answer(s, strlen(s));
	is_str(code_of(j), "00", "string error_code \"00\" is kept as text");
	json_decref(j);
	s = "{\"error_code\":-1.0}";
	j = adapter_parse_answer(s, strlen(s));
	is_str(code_of(j), "-1", "a real error_code with no fraction becomes an integer text");
	json_decref(j);
	s = "{\"error_code\":\" 5 \"}";
	j = adapter_parse_answer(s, strlen(s));
	is_str(code_of(j), "5", "spaces around a string error_code are dropped");
	json_decref(j);
	s = "{\"error_code\":null,\"message\":\"x\"}";
	j = adapter_parse_answer(s, strlen(s));
	ok(j && !json_object_get(j, "error_code"), "a null error_code counts as absent");
	json_decref(j);
	s = "{\"message\":\"{\\\"error_code\\\":\\\"0\\\",\\\"result\\\":[{\\\"a\\\":1}]}\"}";
	j = adapter_parse_answer(s, strlen(s));
	ok(j && json_is_array(json_object_get(j, "result")),
	   "an answer wrapped in message unwraps");
	is_str(code_of(j), "0", "the wrapped error_code is used");
	json_decref(j);
	s = "{\"error_code\":3,\"message\":\"{\\\"result\\\":[]}\"}";
	j = adapter_parse_answer(s, strlen(s));
	is_str(code_of(j), "3", "a wrapped answer without a code keeps the wrapper's");
	json_decref(j);
	s = "{\"error_code\":1,\"message\":\"{not json\"}";
	j = adapter_parse_answer(s, strlen(s));
	ok(j && !strcmp(json_string_value(json_object_get(j, "message")), "{not json"),
	   "a message that is only text stays the message");
	json_decref(j);
	s = "{\"error_code\":1,\"message\":\"{\\\"x\\\":1}\"}";
	j = adapter_parse_answer(s, strlen(s));
	ok(j && json_is_string(json_object_get(j, "message")),
	   "a JSON message without error_code or result is not unwrapped");
	json_decref(j);
	s = "<html><body>502 Bad Gateway</body></html>";
	ok(adapter_parse_answer(s, strlen(s)) == NULL, "HTML is not an answer");
	s = "[1,2]";
	ok(adapter_parse_answer(s, strlen(s)) == NULL, "a JSON array is not an answer");
	s = "{\"error_code\":0,\"result\":[{\"ma\":\"1.00";
	ok(adapter_parse_answer(s, strlen(s)) == NULL, "truncated JSON is not an answer");
	ok(adapter_parse_answer("", 0) == NULL && adapter_parse_answer(NULL, 0) == NULL,
	   "an empty body is not an answer");
}

static const struct conf_option *opt(const char *key)
{
	for (const struct conf_option *o = adapter_options; o->key; o++)
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
		{"auth", "session", CONF_ENUM, offsetof(struct adapter_opts, auth)},
		{"auth_endpoint", "/auth", CONF_STRING,
		 offsetof(struct adapter_opts, auth_endpoint)},
		{"integration_endpoint", "/integration", CONF_STRING,
		 offsetof(struct adapter_opts, integration_endpoint)},
		{"share_endpoint", "/share", CONF_STRING,
		 offsetof(struct adapter_opts, share_endpoint)},
		{"username", NULL, CONF_STRING, offsetof(struct adapter_opts, username)},
		{"password", NULL, CONF_SECRET, offsetof(struct adapter_opts, password)},
		{"dstcode", NULL, CONF_STRING, offsetof(struct adapter_opts, dstcode)},
		{"madonvi", NULL, CONF_STRING, offsetof(struct adapter_opts, madonvi)},
		{"token_url", NULL, CONF_URL, offsetof(struct adapter_opts, token_url)},
		{"consumer_key", NULL, CONF_STRING, offsetof(struct adapter_opts, consumer_key)},
		{"consumer_secret", NULL, CONF_SECRET,
		 offsetof(struct adapter_opts, consumer_secret)},
		{"success_codes", "0,00", CONF_STRING,
		 offsetof(struct adapter_opts, success_codes)},
		{"expired_codes", "-1", CONF_STRING, offsetof(struct adapter_opts, expired_codes)},
		{"expired_pattern", "hết hạn|expired|session", CONF_STRING,
		 offsetof(struct adapter_opts, expired_pattern)},
	};
	size_t n = 0;
	bool good = true;
	for (const struct conf_option *o = adapter_options; o->key; o++)
		n++;
	is_int(n, LT_ARRAY_SIZE(want),
	       "adapter_options declares every field of struct adapter_opts");
	for (size_t i = 0; i < LT_ARRAY_SIZE(want); i++) {
		const struct conf_option *o = opt(want[i].key);
		if (!o || o->type != want[i].type || o->offset != want[i].off ||
		    (want[i].def ? !o->def || strcmp(o->def, want[i].def) : o->def != NULL) ||
		    !o->help || strlen(o->help) < 20) {
			printf("# option %s is wrong\n", want[i].key);
			good = false;
		}
	}
	ok(good, "adapter options have the documented types, defaults, offsets and help");
	is_str(opt("auth")->choices, "none|session|oauth2|oauth2+session",
	       "auth choices are in ADAPTER_AUTH_* order");
}

static void test_new(struct http_core *core)
{
	struct http_opts ho = {.url = "http://127.0.0.1:9",
			       .concurrency = 1,
			       .max_attempts = 1,
			       .timeout_ms = 1000,
			       .connect_timeout_ms = 1000,
			       .max_response_bytes = 1024};
	struct http_client *h = NULL;
	struct adapter *a = NULL;
	char *err = NULL;
	http_client_new(core, "new", &ho, &h, &err);
	struct adapter_opts o = aopts(ADAPTER_AUTH_SESSION);
	o.password = NULL;
	ok(adapter_new(h, &o, "x", &a, &err) == -EINVAL && !a && contains(err, "password"),
	   "session auth without a password is refused, naming it");
	free(err);
	err = NULL;
	o = aopts(ADAPTER_AUTH_BOTH);
	ok(adapter_new(h, &o, "x", &a, &err) == -EINVAL && contains(err, "token_url"),
	   "oauth2 without token_url is refused, naming it");
	free(err);
	err = NULL;
	o = aopts(ADAPTER_AUTH_SESSION);
	o.success_codes = "";
	ok(adapter_new(h, &o, "x", &a, &err) == -EINVAL, "empty success_codes are refused");
	free(err);
	err = NULL;
	o = aopts(ADAPTER_AUTH_NONE);
	ok(adapter_new(h, &o, "x", &a, &err) == 0 && a, "auth none needs no credentials");
	ok(adapter_has_session(a), "with auth none nothing is missing");
	is_int(adapter_login(a, on_adone, NULL), -EOPNOTSUPP, "adapter_login with auth none");
	is_int(adapter_call(a, ADAPTER_SHARE, "", NULL, NULL, on_adone, NULL), -EINVAL,
	       "a call without a service is refused");
	is_int(adapter_call(a, ADAPTER_SHARE, "X", json_array(), NULL, on_adone, NULL), -EINVAL,
	       "params that are not an object are refused (and freed)");
	adapter_free(a);
	http_client_free(h);
}

/* ---- against the simulator --------------------------------------------- */

static enum http_outcome not_a_failure(const struct adapter_answer *a, enum http_outcome o,
				       void *ud, char **why)
{
	struct ares *r = ud;
	(void)why;
	if (o == HTTP_FAIL && !strcmp(a->error_code, "404") && a->answer && a->raw &&
	    a->raw->status == 200)
		r->classified++;
	return HTTP_OK;
}

static void test_session(sd_event *ev, struct http_core *core, const struct simproc *s)
{
	struct ad d;
	struct ares r = {0};
	struct adapter_opts o = aopts(ADAPTER_AUTH_SESSION);
	if (ad_new(&d, core, s->url, 3, &o) < 0)
		return;

	ok(!adapter_has_session(d.a), "no session before the first call");
	call1(ev, &d, "Ping", NULL, &r);
	is_int(r.calls, 1, "Ping completes once");
	is_int(r.o, HTTP_OK, "login then Ping: ok");
	is_str(r.code, "0", "error_code handed over as text");
	ok(json_is_true(json_object_get(json_array_get(r.result, 0), "pong")),
	   "the result array is handed over");
	is_int(adapter_logins(d.a), 1, "one login");
	ok(adapter_has_session(d.a), "a session is held");
	is_int(simproc_stat(s, "logins"), 1, "the simulator saw one login");

	/* the share endpoint, and a second call on the same session */
	int n = 0;
	ares_clear(&r);
	r.counter = &n;
	adapter_call(d.a, ADAPTER_SHARE, "Ping", NULL, NULL, on_adone, &r);
	simproc_run_until(ev, &n, 1, 5000);
	is_int(r.o, HTTP_OK, "a call on the share endpoint is ok");
	is_int(adapter_logins(d.a), 1, "the session is reused");

	/* Echo answers "00" as a string */
	json_t *data = json_pack("[{s:s, s:i}, {s:s, s:i}]", "MaHoSo", "H31-1", "n", 1, "MaHoSo",
				 "H31-2", "n", 2);
	call1(ev, &d, "Echo", json_pack("{s:O}", "data", data), &r);
	is_int(r.o, HTTP_OK, "\"00\" as a string is a success");
	is_str(r.code, "00", "error_code \"00\" handed over");
	ok(json_equal(r.result, data), "the params travelled in the envelope and came back");
	json_decref(data);

	/* unknown service */
	call1(ev, &d, "KhongCo", NULL, &r);
	is_int(r.o, HTTP_FAIL, "an unknown service fails for good");
	ok(contains(r.why, "Dịch vụ không tồn tại: KhongCo"), "with the adapter's message (%s)",
	   r.why);
	is_str(r.code, "404", "and its error_code");
	ok(contains(r.raw, "KhongCo") && r.status == 200,
	   "the raw HTTP response is kept for the mismatch log");

	/* a connector rule may overrule the envelope */
	n = 0;
	ares_clear(&r);
	r.counter = &n;
	adapter_call(d.a, ADAPTER_INTEGRATION, "KhongCo", NULL, not_a_failure, on_adone, &r);
	simproc_run_until(ev, &n, 1, 5000);
	is_int(r.classified, 1, "a connector's classify sees the parsed answer and the default");
	is_int(r.o, HTTP_OK, "a connector's classify can turn a failure into ok");

	/* expired session: one transparent re-login */
	long long before = simproc_stat(s, "logins");
	simproc_post(s, "/_sim/expire-sessions", "{}");
	call1(ev, &d, "Ping", NULL, &r);
	is_int(r.o, HTTP_OK, "a call on an expired session logs in again and succeeds");
	is_int(adapter_logins(d.a), 2, "the adapter logged in a second time");
	is_int(simproc_stat(s, "logins"), before + 1, "the simulator saw exactly one more login");
	ok(simproc_stat(s, "sessions_expired_answers") >= 1,
	   "the simulator did answer \"expired\"");

	/* explicit login */
	n = 0;
	ares_clear(&r);
	r.counter = &n;
	is_int(adapter_login(d.a, on_adone, &r), 0, "adapter_login starts");
	is_int(r.calls, 0, "adapter_login does not complete from inside the call");
	simproc_run_until(ev, &n, 1, 5000);
	is_int(r.o, HTTP_OK, "adapter_login succeeds");
	is_int(adapter_logins(d.a), 3, "and logged in again");
	ad_free(&d);
	ares_clear(&r);
}

static void test_many_one_login(sd_event *ev, struct http_core *core, const struct simproc *s)
{
	struct ad d;
	struct ares r[20];
	struct adapter_opts o = aopts(ADAPTER_AUTH_SESSION);
	int n = 0;
	if (ad_new(&d, core, s->url, 3, &o) < 0)
		return;
	long long before = simproc_stat(s, "logins");
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 20; i++) {
		r[i].counter = &n;
		adapter_call(d.a, i % 2 ? ADAPTER_SHARE : ADAPTER_INTEGRATION, "Ping", NULL, NULL,
			     on_adone, &r[i]);
	}
	ok(simproc_run_until(ev, &n, 20, 8000), "twenty calls made before any login complete");
	bool all = true, once = true;
	for (int i = 0; i < 20; i++) {
		if (r[i].o != HTTP_OK)
			all = false;
		if (r[i].calls != 1)
			once = false;
		ares_clear(&r[i]);
	}
	ok(all, "all of them succeed");
	ok(once, "each done called exactly once");
	is_int(adapter_logins(d.a), 1, "they shared one login");
	is_int(simproc_stat(s, "logins"), before + 1, "the simulator saw one login");

	/* all twenty again after an expiry: still one re-login for all */
	simproc_post(s, "/_sim/expire-sessions", "{}");
	n = 0;
	for (int i = 0; i < 20; i++) {
		r[i].counter = &n;
		adapter_call(d.a, ADAPTER_INTEGRATION, "Ping", NULL, NULL, on_adone, &r[i]);
	}
	ok(simproc_run_until(ev, &n, 20, 8000), "twenty calls on an expired session complete");
	all = true;
	for (int i = 0; i < 20; i++) {
		if (r[i].o != HTTP_OK)
			all = false;
		ares_clear(&r[i]);
	}
	ok(all, "all of them succeed after the re-login");
	is_int(adapter_logins(d.a), 2, "one re-login served every expired call");
	ad_free(&d);
}

static void test_failures(sd_event *ev, struct http_core *core, const struct simproc *s)
{
	struct ad d;
	struct ares r = {0}, r2 = {0};
	struct adapter_opts o = aopts(ADAPTER_AUTH_SESSION);
	int n = 0;

	/* wrong password: every waiting call is left to retry, with the message */
	o.password = "wrong";
	if (ad_new(&d, core, s->url, 3, &o) < 0)
		return;
	r.counter = r2.counter = &n;
	adapter_call(d.a, ADAPTER_INTEGRATION, "Ping", NULL, NULL, on_adone, &r);
	adapter_call(d.a, ADAPTER_INTEGRATION, "Ping", NULL, NULL, on_adone, &r2);
	simproc_run_until(ev, &n, 2, 5000);
	ok(r.o == HTTP_RETRY && r2.o == HTTP_RETRY,
	   "a refused login leaves the waiting calls to be retried, never failed for good");
	ok(contains(r.why, "Sai tên đăng nhập hoặc mật khẩu"), "with the adapter's message (%s)",
	   r.why);
	ok(r.calls == 1 && r2.calls == 1, "each exactly once");
	ok(!adapter_has_session(d.a), "no session is held");
	is_int(simproc_stat(s, "logins_failed"), 1, "one failed login, not retried");
	ad_free(&d);
	ares_clear(&r);
	ares_clear(&r2);

	/* a server that is down: the login cannot happen, retry later */
	o = aopts(ADAPTER_AUTH_SESSION);
	if (ad_new(&d, core, s->url, 2, &o) < 0)
		return;
	simproc_faults(s, "{\"reset\":true,\"down\":true}");
	call1(ev, &d, "Ping", NULL, &r);
	is_int(r.o, HTTP_RETRY, "a login hitting 503 gives retry");
	ok(contains(r.why, "login failed") && contains(r.why, "503"), "saying so (%s)", r.why);
	simproc_faults(s, "{\"reset\":true}");
	call1(ev, &d, "Ping", NULL, &r);
	is_int(r.o, HTTP_OK, "once the server is back the next call logs in and succeeds");

	/* malformed answers: HTML page, then truncated JSON, both transient */
	ad_free(&d);
	if (ad_new(&d, core, s->url, 1, &o) < 0)
		return;
	call1(ev, &d, "Ping", NULL, &r);
	simproc_faults(s, "{\"reset\":true,\"malformed_rate\":1.0}");
	call1(ev, &d, "Ping", NULL, &r);
	call1(ev, &d, "Ping", NULL, &r2);
	simproc_faults(s, "{\"reset\":true}");
	struct ares *html = contains(r.why, "text/html") ? &r : &r2;
	struct ares *trunc = html == &r ? &r2 : &r;
	ok(r.o == HTTP_RETRY && r2.o == HTTP_RETRY, "malformed answers are retried");
	ok(contains(html->why, "answer is not JSON (text/html: <html><body>502 Bad Gateway"),
	   "an HTML page names its type and start (%s)", html->why);
	ok(contains(trunc->why, "answer is not JSON (application/json: {\"error_code\""),
	   "truncated JSON too (%s)", trunc->why);
	ok(contains(r.raw, "<") || contains(r.raw, "{"), "the raw body is handed over");
	ares_clear(&r2);

	/* two expiries in a row: one re-login, then a failure */
	ad_free(&d);
	o = aopts(ADAPTER_AUTH_SESSION);
	o.expired_codes = "-1,404"; /* the unknown-service answer now reads as "expired" */
	if (ad_new(&d, core, s->url, 1, &o) < 0)
		return;
	call1(ev, &d, "KhongCo", NULL, &r);
	is_int(r.o, HTTP_RETRY, "an expiry right after a re-login is retried later, not failed");
	is_str(r.why, "session rejected after re-login", "saying so");
	is_int(adapter_logins(d.a), 2, "after exactly one re-login");

	/* expired_pattern: message text, ASCII case folded */
	ad_free(&d);
	o = aopts(ADAPTER_AUTH_SESSION);
	o.expired_codes = "";
	o.expired_pattern = "xyz|DịCH Vụ KHôNG";
	if (ad_new(&d, core, s->url, 1, &o) < 0)
		return;
	call1(ev, &d, "KhongCo", NULL, &r);
	is_str(r.why, "session rejected after re-login",
	       "a message matching expired_pattern (ASCII letters folded) means expired");
	ad_free(&d);
	ares_clear(&r);
}

static void test_wrap(sd_event *ev, struct http_core *core, const struct simproc *s)
{
	struct ad d;
	struct ares r = {0};
	struct adapter_opts o = aopts(ADAPTER_AUTH_SESSION);
	simproc_faults(s, "{\"reset\":true,\"wrap_message\":true}");
	if (ad_new(&d, core, s->url, 2, &o) < 0)
		return;
	call1(ev, &d, "Ping", NULL, &r);
	is_int(r.o, HTTP_OK, "wrapped answers: login and Ping are ok");
	ok(json_is_array(r.result), "the wrapped result is unwrapped");
	call1(ev, &d, "KhongCo", NULL, &r);
	ok(r.o == HTTP_FAIL && contains(r.why, "Dịch vụ không tồn tại"),
	   "a wrapped failure carries its message");
	simproc_post(s, "/_sim/expire-sessions", "{}");
	call1(ev, &d, "Ping", NULL, &r);
	ok(r.o == HTTP_OK && adapter_logins(d.a) == 2, "a wrapped expiry is recognised too");
	simproc_faults(s, "{\"reset\":true}");
	ad_free(&d);
	ares_clear(&r);
}

static void test_cancel(sd_event *ev, struct http_core *core, const struct simproc *s)
{
	struct ad d;
	struct ares r[3];
	struct adapter_opts o = aopts(ADAPTER_AUTH_SESSION);
	int n = 0;
	if (ad_new(&d, core, s->url, 1, &o) < 0)
		return;
	memset(r, 0, sizeof(r));
	call1(ev, &d, "Ping", NULL, &r[0]);
	simproc_faults(s, "{\"reset\":true,\"latency_ms\":300}");
	for (int i = 0; i < 3; i++) {
		ares_clear(&r[i]);
		r[i].counter = &n;
		adapter_call(d.a, ADAPTER_INTEGRATION, "Ping", NULL, NULL, on_adone, &r[i]);
	}
	simproc_run_for(ev, 50);
	adapter_free(d.a);
	d.a = NULL;
	bool cancelled = true;
	for (int i = 0; i < 3; i++)
		if (r[i].calls != 1 || r[i].o != HTTP_RETRY || !contains(r[i].why, "cancelled"))
			cancelled = false;
	ok(cancelled, "adapter_free cancels calls in flight, once each");
	simproc_run_for(ev, 400);
	is_int(n, 3, "their HTTP completions later call nobody");
	http_client_free(d.http);

	/* freed while the login is in flight */
	if (ad_new(&d, core, s->url, 1, &o) < 0)
		return;
	n = 0;
	for (int i = 0; i < 2; i++) {
		ares_clear(&r[i]);
		r[i].counter = &n;
		adapter_call(d.a, ADAPTER_INTEGRATION, "Ping", NULL, NULL, on_adone, &r[i]);
	}
	simproc_run_for(ev, 50);
	adapter_free(d.a);
	d.a = NULL;
	ok(n == 2 && r[0].o == HTTP_RETRY && r[1].o == HTTP_RETRY,
	   "adapter_free cancels calls waiting for the login");
	http_client_free(d.http);
	simproc_faults(s, "{\"reset\":true}");
	for (int i = 0; i < 3; i++)
		ares_clear(&r[i]);
}

static void test_oauth2(sd_event *ev, struct http_core *core, const struct simproc *s)
{
	struct ad d;
	struct ares r = {0};
	struct adapter_opts o = aopts(ADAPTER_AUTH_BOTH);
	char *token_url = xasprintf("%s/token", s->url);
	o.token_url = token_url;
	o.consumer_key = "lt-key";
	o.consumer_secret = CONSUMER_SECRET;
	if (ad_new(&d, core, s->url, 2, &o) < 0)
		return;
	call1(ev, &d, "Ping", NULL, &r);
	is_int(r.o, HTTP_OK, "oauth2+session: token, login and Ping are ok");
	is_int(simproc_stat(s, "tokens_issued"), 1, "one token was issued");
	is_int(simproc_stat(s, "logins"), 1, "one login through the gateway");
	call1(ev, &d, "Ping", NULL, &r);
	is_int(simproc_stat(s, "tokens_issued"), 1, "the token is reused");

	simproc_post(s, "/_sim/expire-tokens", "{}");
	call1(ev, &d, "Ping", NULL, &r);
	is_int(r.o, HTTP_OK, "a 401 for a revoked token refreshes it once and succeeds");
	is_int(simproc_stat(s, "tokens_issued"), 2, "a second token was issued");
	ad_free(&d);

	/* no token at all: the gateway says 401 */
	struct adapter_opts so = aopts(ADAPTER_AUTH_SESSION);
	if (ad_new(&d, core, s->url, 2, &so) < 0)
		return;
	call1(ev, &d, "Ping", NULL, &r);
	ok(r.o == HTTP_RETRY && contains(r.why, "HTTP 401"),
	   "without a token the gateway's 401 leaves the call to retry (%s)", r.why);
	ad_free(&d);

	/* wrong consumer secret */
	o.consumer_secret = "wrong";
	if (ad_new(&d, core, s->url, 2, &o) < 0)
		return;
	call1(ev, &d, "Ping", NULL, &r);
	ok(r.o == HTTP_RETRY && contains(r.why, "token request failed: HTTP 401"),
	   "a refused client secret leaves calls to retry (%s)", r.why);
	ok(contains(r.why, "Sai consumer key"), "with the gateway's error_description");
	ad_free(&d);
	free(token_url);
	ares_clear(&r);
}

static void test_dstcode(sd_event *ev, struct http_core *core, const struct simproc *s)
{
	struct ad d;
	struct ares r = {0};
	struct adapter_opts o = aopts(ADAPTER_AUTH_SESSION);
	o.dstcode = "H31-DST";
	if (ad_new(&d, core, s->url, 1, &o) < 0)
		return;
	call1(ev, &d, "Ping", NULL, &r);
	is_int(r.o, HTTP_OK, "the dstcode header is sent with the login");
	ad_free(&d);
	o.dstcode = NULL;
	if (ad_new(&d, core, s->url, 1, &o) < 0)
		return;
	call1(ev, &d, "Ping", NULL, &r);
	ok(r.o == HTTP_RETRY && contains(r.why, "dstcode"), "a missing dstcode is refused (%s)",
	   r.why);
	ad_free(&d);
	ares_clear(&r);
}

/* ---- secrets never logged ---------------------------------------------- */

static bool has_hex32(const char *s)
{
	size_t run = 0;
	for (; *s; s++) {
		run = isxdigit((unsigned char)*s) ? run + 1 : 0;
		if (run >= 32)
			return true;
	}
	return false;
}

/* A refusal the connector recognises, read before the expiry rule. */
static enum http_outcome refusal_first(const struct adapter_answer *aa, enum http_outcome o,
				       void *ud, char **why)
{
	(void)ud;
	if (aa->message && strstr(aa->message, "không tồn tại")) {
		*why = xasprintf("refused by the service: %s", aa->message);
		return HTTP_FAIL;
	}
	return o;
}

static void call_ex(sd_event *ev, struct ad *d, const char *service,
		    const struct adapter_call_opts *o, struct ares *r)
{
	int n = 0;
	ares_clear(r);
	r->counter = &n;
	if (adapter_call_ex(d->a, ADAPTER_INTEGRATION, service, NULL, o, on_adone, r) < 0)
		printf("# adapter_call_ex failed\n");
	if (!simproc_run_until(ev, &n, 1, 8000))
		printf("# call %s did not complete\n", service);
	r->counter = NULL;
}

static void test_call_ex(sd_event *ev, struct http_core *core, const struct simproc *s)
{
	struct ad d = {0};
	struct ares r = {0};
	struct adapter_opts o = aopts(ADAPTER_AUTH_SESSION);
	o.expired_codes = "-1,404"; /* the unknown-service answer now reads as "expired" */
	if (ad_new(&d, core, s->url, 3, &o) < 0)
		return;
	const struct adapter_call_opts first = {.classify = refusal_first, .classify_first = true};
	call_ex(ev, &d, "KhongCo", &first, &r);
	is_int(r.o, HTTP_FAIL, "classify_first: a refusal the connector recognises fails the call");
	ok(contains(r.why, "refused by the service"), "... with the connector's reason (%s)",
	   r.why);
	is_int(adapter_logins(d.a), 1, "... and is not taken for an expired session (one login)");
	const struct adapter_call_opts late = {.classify = refusal_first};
	call_ex(ev, &d, "KhongCo", &late, &r);
	is_int(adapter_logins(d.a), 2, "without classify_first the same answer costs a re-login");
	ad_free(&d);

	/* max_attempts 1: a 503 is not resent by the core; the caller decides. */
	o = aopts(ADAPTER_AUTH_SESSION);
	if (ad_new(&d, core, s->url, 4, &o) < 0)
		return;
	call_ex(ev, &d, "Ping", NULL, &r); /* log in first */
	simproc_faults(s, "{\"fail_next\": 1, \"service\": \"Ping\"}");
	const struct adapter_call_opts once = {.max_attempts = 1};
	call_ex(ev, &d, "Ping", &once, &r);
	/* fail_next is 1: a resend would have been answered 200. */
	is_int(r.o, HTTP_RETRY, "max_attempts 1: a 503 comes back as retry, not resent");
	ok(r.status == 503, "... after one attempt that got the 503 (status %ld)", r.status);
	call_ex(ev, &d, "Ping", &once, &r);
	is_int(r.o, HTTP_OK, "the next call goes through");
	simproc_faults(s, "{\"reset\": true}");
	ares_clear(&r);
	ad_free(&d);
}

int main(void)
{
	struct simproc s;
	sd_event *ev = NULL;
	uint64_t t0 = now_mono_us();
	char logpath[] = "/tmp/test_adapter.log.XXXXXX";
	int logfd = mkstemp(logpath), saved_err = dup(2);

	signal(SIGPIPE, SIG_IGN);
	/* everything logged at debug goes to a file, checked for secrets at the end */
	if (logfd >= 0)
		dup2(logfd, 2);
	log_setup(LOG_TARGET_STDERR, LOG_DEBUG);
	test_parse();
	test_options();
	if (sd_event_new(&ev) < 0)
		return 1;
	struct http_core *core = http_core_new(ev);
	test_new(core);

	const char *plain[] = {SIM_ARGS, NULL};
	if (simproc_start(&s, "test_adapter", plain) == 0) {
		test_session(ev, core, &s);
		test_many_one_login(ev, core, &s);
		test_failures(ev, core, &s);
		test_wrap(ev, core, &s);
		test_cancel(ev, core, &s);
		test_call_ex(ev, core, &s);
	} else {
		ok(0, "the simulator starts ($BUILD/lienthong-sim)");
	}
	simproc_stop(&s);
	const char *oauth[] = {SIM_ARGS, "--oauth2", "lt-key:" CONSUMER_SECRET, NULL};
	if (simproc_start(&s, "test_adapter", oauth) == 0)
		test_oauth2(ev, core, &s);
	else
		ok(0, "the simulator starts with --oauth2");
	simproc_stop(&s);
	const char *dst[] = {SIM_ARGS, "--dstcode", "H31-DST", NULL};
	if (simproc_start(&s, "test_adapter", dst) == 0)
		test_dstcode(ev, core, &s);
	else
		ok(0, "the simulator starts with --dstcode");
	simproc_stop(&s);

	is_int(http_core_pending(core), 0, "nothing pending at the end");
	http_core_free(core);
	sd_event_unref(ev);

	fflush(stderr);
	dup2(saved_err, 2);
	char *logged = NULL;
	size_t len = 0;
	if (read_file_bounded(logpath, 64 << 20, &logged, &len) == 0) {
		ok(len > 0 && contains(logged, "logged in"), "the log was captured (%zu bytes)",
		   len);
		ok(!contains(logged, PASSWORD), "the password is never logged");
		ok(!contains(logged, CONSUMER_SECRET), "the consumer secret is never logged");
		ok(!has_hex32(logged), "no session or token is logged");
		if (getenv("TEST_DEBUG"))
			fputs(logged, stderr);
	} else {
		ok(0, "the log was captured");
	}
	free(logged);
	unlink(logpath);
	close(logfd);
	close(saved_err);
	printf("# test_adapter took %llu ms\n", (unsigned long long)((now_mono_us() - t0) / 1000));
	return tap_done();
}
