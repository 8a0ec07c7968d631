/*
 * test_provincial: the provincial connector (connectors/provincial.c) built
 * the real way (a config file through conf_load, conn_new on a daemon with
 * an sd-event loop and the HTTP core) against the simulator's provincial
 * REST API (catalog-spec §4) over loopback: the catalogue read page by page
 * and never reported in part, refusals naming the page and the status, puts
 * that the simulator then serves, the server's error text, retry classes,
 * the lifecycle, and that the token never reaches the log. It also measures
 * how long the 2,000-record catalogue takes to read. The dossier change feed
 * (dossier-spec §1) is read from the beginning to the end with its cursor,
 * and page shapes the simulator never serves come from a canned one-answer
 * server on loopback. The fee records of a day (payment-spec §3) are read
 * in small pages and compared with one big page; a page that does not move
 * or has another shape fails the whole day.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "conf.h"
#include "conntest.h"
#include "connector.h"
#include "daemon.h"
#include "http.h"
#include "log.h"
#include "provincial.h"
#include "simproc.h"
#include "tap.h"
#include "util.h"

#define TOKEN "tok-Prv-8Jx2-not-in-logs"
#define PATH  "/provincial/api/v1/thu-tuc"

static struct conntest ct;

static const struct provincial_ops *ops(void)
{
	return conn_provincial.ext;
}

/* ---- instances built from a config file -------------------------------- */

/* Keys of a connector on the simulator at url (token file "token"), plus extra. */
static char *keys_for(const char *url, const char *extra)
{
	return xasprintf("url = %s/provincial\ntoken = %s/token\nmax_attempts = 2\n"
			 "backoff_base = 5ms\nbackoff_cap = 20ms\nbreaker_failures = 0\n"
			 "timeout = 10s\n%s",
			 url, ct.dir, extra ? extra : "");
}

/* ---- talking to the simulator directly (not through the code under test) */

static size_t collect(char *p, size_t size, size_t nmemb, void *ud)
{
	return dynbuf_add(ud, p, size * nmemb) == 0 ? size * nmemb : 0;
}

/* method path with the bearer token (and a JSON body). Returns the JSON answer or NULL. */
static json_t *sim_rest(const struct simproc *s, const char *method, const char *path,
			const char *body, long *status)
{
	struct dynbuf b;
	struct curl_slist *h = NULL;
	char *url = xasprintf("%s%s", s->url, path);
	CURL *e = curl_easy_init();
	json_t *j = NULL;

	*status = 0;
	dynbuf_init(&b, 64 << 20);
	h = curl_slist_append(h, "Authorization: Bearer " TOKEN);
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	if (body)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	if (curl_easy_perform(e) == CURLE_OK) {
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
		if (b.data)
			j = json_loads(b.data, 0, NULL);
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	dynbuf_free(&b);
	free(url);
	return j;
}

/* The simulator's own count of provincial records, -1 without an answer. */
static long long sim_total(const struct simproc *s)
{
	long st;
	json_t *j = sim_rest(s, "GET", PATH "?page=1&size=1", NULL, &st);
	long long n = json_is_integer(json_object_get(j, "total"))
			      ? json_integer_value(json_object_get(j, "total"))
			      : -1;
	json_decref(j);
	return n;
}

/* ---- completions ------------------------------------------------------- */

struct res {
	int calls;
	enum conn_outcome o;
	json_t *records; /* own ref */
	char *why;
};

static void res_clear(struct res *r)
{
	json_decref(r->records);
	free(r->why);
	memset(r, 0, sizeof(*r));
}

static void on_list(struct conn *c, enum conn_outcome o, json_t *records, const char *why, void *ud)
{
	struct res *r = ud;
	(void)c;
	conntest_completion(&ct);
	res_clear(r);
	r->calls = 1;
	r->o = o;
	r->records = json_incref(records);
	r->why = why ? xstrdup(why) : NULL;
}

static void on_done(struct conn *c, enum conn_outcome o, const char *detail, void *ud)
{
	struct res *r = ud;
	(void)c;
	conntest_completion(&ct);
	res_clear(r);
	r->calls = 1;
	r->o = o;
	r->why = detail ? xstrdup(detail) : NULL;
}

static void run_list(struct conn *c, struct res *r)
{
	int rc;
	res_clear(r);
	ct.in_call = true;
	rc = ops()->procedures_list(c, on_list, r);
	ct.in_call = false;
	conntest_await(&ct, rc, "procedures_list", &r->calls, 60000);
}

static void run_put(struct conn *c, const char *code, json_t *record, struct res *r)
{
	int rc;
	res_clear(r);
	ct.in_call = true;
	rc = ops()->procedure_put(c, code, record, on_done, r);
	ct.in_call = false;
	conntest_await(&ct, rc, "procedure_put", &r->calls, 10000);
}

static long long status_int(struct conn *c, const char *key)
{
	json_t *st = conn_provincial.status(c);
	long long v = json_integer_value(json_object_get(st, key));
	json_decref(st);
	return v;
}

/* ---- tests -------------------------------------------------------------- */

static void test_config(void)
{
	static const struct {
		const char *keys, *want;
	} bad[] = {
		{"auth = bearer\n", "token"},
		{"auth = basic\nusername = u\n", "password"},
		{"auth = basic\npassword = %s/token\n", "username"},
		{"auth = magic\n", "auth"},
		{"auth = none\npage_size = 0\n", "page_size"},
		{"auth = none\npage_size = 1001\n", "page_size"},
		{"auth = none\nprocedures_path = api/x\n", "procedures_path"},
		{"auth = none\nlist_items_field =\n", "list_items_field"},
		{"auth = none\nmax_pages = 0\n", "max_pages"},
	};
	struct conntest_conn t;
	char *keys;
	const char *defs[][2] = {{"auth", "bearer"},
				 {"procedures_path", "/api/v1/thu-tuc"},
				 {"page_size", "500"},
				 {"list_items_field", "data"},
				 {"list_total_field", "total"},
				 {"key_field", "maThuTuc"},
				 {"max_pages", "1000"}};
	int found = 0;

	ok(conn_type_find("provincial") == &conn_provincial, "the registry knows type provincial");
	ok(conn_provincial.flags & CONN_F_HTTP, "provincial uses the HTTP core");
	for (const struct conf_option *o = conn_provincial.options; o->key; o++) {
		for (size_t i = 0; i < LT_ARRAY_SIZE(defs); i++)
			found += !strcmp(o->key, defs[i][0]) && o->def &&
				 !strcmp(o->def, defs[i][1]);
		if (!strcmp(o->key, "token") || !strcmp(o->key, "password"))
			found += o->type == CONF_SECRET ? 10 : 0;
	}
	is_int(found, 27, "the options of catalog-spec §6 with their defaults, secrets as secrets");

	for (size_t i = 0; i < LT_ARRAY_SIZE(bad); i++) {
		char *k = xasprintf(bad[i].keys, ct.dir);
		keys = xasprintf("url = http://127.0.0.1:9\n%s", k);
		/* the keys, one line each, name the check */
		for (char *nl = strchr(k, '\n'); nl; nl = strchr(nl, '\n'))
			*nl = ' ';
		conntest_refused(&ct, keys, bad[i].want, k);
		free(keys);
		free(k);
	}
	keys = xasprintf("url = http://127.0.0.1:9\ntoken = %s/token\n", ct.dir);
	conntest_check_only(&ct, &t, keys);
	conntest_conn_free(&t);
	free(keys);
}

static void test_list(const struct simproc *s)
{
	struct conntest_conn t;
	struct res r = {0};
	long long total = sim_total(s);
	uint64_t t0;

	ok(total >= 1900, "the simulator serves a provincial catalogue (%lld records)", total);
	if (!conntest_make(&ct, &t, s->url, "page_size = 50\n"))
		return;
	long long before = simproc_stat(s, "requests_total");
	t0 = now_mono_us();
	run_list(t.c, &r);
	uint64_t small_us = now_mono_us() - t0;
	long long requests = simproc_stat(s, "requests_total") - before;
	ok(r.o == CONN_OK, "the catalogue is read (%s)", r.why ? r.why : "no error");
	is_int(json_array_size(r.records), total, "every record, as many as the simulator's total");
	is_int(requests, (total + 49) / 50, "page by page: %lld pages of 50, nothing more",
	       requests);
	is_int(status_int(t.c, "pages"), (total + 49) / 50, "status counts the pages read");
	is_int(status_int(t.c, "catalogue_size"), total, "status has the catalogue size");

	/* Every record once, in the server's order. */
	json_t *seen = json_object();
	const char *prev = "";
	bool ordered = true, keyed = true;
	for (size_t i = 0; i < json_array_size(r.records); i++) {
		const char *k = json_string_value(
			json_object_get(json_array_get(r.records, i), "maThuTuc"));
		if (!k) {
			keyed = false;
			continue;
		}
		json_object_set_new(seen, k, json_true());
		ordered &= strcmp(prev, k) < 0;
		prev = k;
	}
	ok(keyed && (long long)json_object_size(seen) == total,
	   "every record has its own maThuTuc");
	ok(ordered, "the records come in the server's (code) order");
	json_decref(seen);
	conntest_conn_free(&t);

	if (!conntest_make(&ct, &t, s->url, NULL))
		return;
	t0 = now_mono_us();
	run_list(t.c, &r);
	uint64_t big_us = now_mono_us() - t0;
	ok(r.o == CONN_OK && (long long)json_array_size(r.records) == total,
	   "%lld records: %llu ms in pages of 500, %llu ms in pages of 50", total,
	   (unsigned long long)(big_us / 1000), (unsigned long long)(small_us / 1000));
	conntest_conn_free(&t);

	/* A catalogue that needs more than max_pages pages is refused, not cut. */
	if (!conntest_make(&ct, &t, s->url, "page_size = 50\nmax_pages = 10\n"))
		return;
	before = simproc_stat(s, "requests_total");
	run_list(t.c, &r);
	ok(r.o == CONN_FAIL && conntest_contains(r.why, "max_pages") && r.records == NULL,
	   "more than max_pages pages fails, no partial catalogue (%s)", r.why ? r.why : "ok");
	is_int(simproc_stat(s, "requests_total") - before, 1, "known from page 1 already");
	conntest_conn_free(&t);
	res_clear(&r);
}

/* Stops the loop once a catalogue read has taken some pages. */
struct pages_wait {
	struct conn *c;
	struct res *r;
	long long pages;
};

static bool pages_reached(void *ud)
{
	struct pages_wait *w = ud;
	return w->r->calls > 0 || status_int(w->c, "pages") >= w->pages;
}

static void test_refusals(const struct simproc *s)
{
	struct conntest_conn t;
	struct res r = {0};
	char *keys, *err = NULL;

	/* A wrong token. */
	char *wrong = xasprintf("%s/wrong", ct.dir);
	write_file_atomic(wrong, "not-the-token", 13, 0600);
	keys = xasprintf("url = %s/provincial\ntoken = %s\nmax_attempts = 2\n", s->url, wrong);
	if (conntest_conn_new(&ct, &t, keys, false, &err) == 0) {
		run_list(t.c, &r);
		ok(r.o == CONN_FAIL && conntest_contains(r.why, "401") &&
			   conntest_contains(r.why, "page 1"),
		   "a wrong token fails naming 401 and the page (%s)", r.why ? r.why : "ok");
		ok(r.records == NULL, "and hands over no records");
		conntest_conn_free(&t);
	} else {
		ok(0, "a connector with a wrong token (%s)", err);
	}
	free(err);
	free(keys);
	free(wrong);

	/* No credentials at all. */
	keys = xasprintf("url = %s/provincial\nauth = none\n", s->url);
	if (conntest_conn_new(&ct, &t, keys, false, &err) == 0) {
		run_list(t.c, &r);
		ok(r.o == CONN_FAIL && conntest_contains(r.why, "401"),
		   "auth = none is refused too (%s)", r.why ? r.why : "ok");
		conntest_conn_free(&t);
	} else {
		ok(0, "a connector with auth = none (%s)", err);
	}
	free(err);
	free(keys);

	/* Basic credentials are sent (the simulator wants a bearer token: it says the
	 * credentials are invalid, not missing). */
	keys = xasprintf("url = %s/provincial\nauth = basic\nusername = mot-cua\n"
			 "password = %s/token\n",
			 s->url, ct.dir);
	if (conntest_conn_new(&ct, &t, keys, false, &err) == 0) {
		run_list(t.c, &r);
		ok(r.o == CONN_FAIL && conntest_contains(r.why, "401") &&
			   conntest_contains(r.why, "không hợp lệ"),
		   "auth = basic sends credentials (%s)", r.why ? r.why : "ok");
		conntest_conn_free(&t);
	} else {
		ok(0, "a connector with auth = basic (%s)", err);
	}
	free(err);
	free(keys);

	/* Pages of another shape than configured. */
	static const struct {
		const char *keys, *want;
	} shape[] = {
		{"list_items_field = items\n", "page 1: \"items\" is absent, not a list"},
		{"list_items_field = total\n", "page 1: \"total\" is a number, not a list"},
		{"list_total_field = count\n", "page 1: \"count\" is absent, not a count"},
		{"list_total_field = data\n", "page 1: \"data\" is a list, not a count"},
		{"key_field = trangThai\n", "page 1: trangThai cong_bo appears twice"},
	};
	for (size_t i = 0; i < LT_ARRAY_SIZE(shape); i++) {
		if (!conntest_make(&ct, &t, s->url, shape[i].keys))
			continue;
		run_list(t.c, &r);
		ok(r.o == CONN_FAIL && conntest_contains(r.why, shape[i].want) && !r.records,
		   "%.*s: FAIL, no records (%s)", (int)strcspn(shape[i].keys, "\n"), shape[i].keys,
		   r.why ? r.why : "ok");
		conntest_conn_free(&t);
	}

	if (!conntest_make(&ct, &t, s->url, "page_size = 100\n"))
		return;
	/* An HTML page where the catalogue should be. */
	simproc_faults(s, "{\"path\":\"" PATH "\",\"malformed_rate\":1}");
	run_list(t.c, &r);
	ok(r.o == CONN_FAIL && conntest_contains(r.why, "page 1") &&
		   conntest_contains(r.why, "not JSON"),
	   "an answer that is not JSON fails naming the page (%s)", r.why ? r.why : "ok");
	ok(r.records == NULL, "and hands over no records");
	simproc_faults(s, "{\"reset\":true}");

	/* 503 on every attempt: RETRY, after the core's attempts. */
	simproc_faults(s, "{\"path\":\"" PATH "\",\"down\":true}");
	long long before = simproc_stat(s, "requests_total");
	run_list(t.c, &r);
	ok(r.o == CONN_RETRY && conntest_contains(r.why, "503") &&
		   conntest_contains(r.why, "page 1"),
	   "503 is RETRY naming the page (%s)", r.why ? r.why : "ok");
	is_int(simproc_stat(s, "requests_total") - before, 2, "after max_attempts (2) attempts");
	simproc_faults(s, "{\"reset\":true}");

	/* The catalogue changes in the middle of a read. */
	simproc_faults(s, "{\"path\":\"" PATH "\",\"latency_ms\":30}");
	res_clear(&r);
	ct.in_call = true;
	ops()->procedures_list(t.c, on_list, &r);
	ct.in_call = false;
	struct pages_wait w = {t.c, &r, 3};
	simproc_run_until_fn(ct.dmn.ev, pages_reached, &w, 10000);
	long st;
	json_t *page = sim_rest(s, "GET", PATH "?page=20&size=1", NULL, &st);
	const char *victim = json_string_value(
		json_object_get(json_array_get(json_object_get(page, "data"), 0), "maThuTuc"));
	char *body = xasprintf("{\"op\":\"delete\",\"code\":\"%s\"}", victim ? victim : "?");
	ok(simproc_post(s, "/_sim/provincial", body) == 0, "%s is deleted after page %lld",
	   victim ? victim : "?", status_int(t.c, "pages"));
	free(body);
	json_decref(page);
	simproc_run_until(ct.dmn.ev, &r.calls, 1, 10000);
	ok(r.o == CONN_RETRY && conntest_contains(r.why, "changed") && r.records == NULL,
	   "a catalogue that changes while read is RETRY, never a partial one (%s)",
	   r.why ? r.why : "ok");
	simproc_faults(s, "{\"reset\":true}");
	simproc_post(s, "/_sim/catalog", "{\"op\":\"reseed\"}");
	conntest_conn_free(&t);
	res_clear(&r);
}

static void test_put(const struct simproc *s)
{
	struct conntest_conn t;
	struct res r = {0};
	long st;
	json_t *page, *rec, *got;
	const char *code;

	if (!conntest_make(&ct, &t, s->url, NULL))
		return;
	page = sim_rest(s, "GET", PATH "?page=1&size=3", NULL, &st);
	rec = json_deep_copy(json_array_get(json_object_get(page, "data"), 2));
	code = json_string_value(json_object_get(rec, "maThuTuc"));
	ok(code != NULL, "a provincial record to change (%s)", code ? code : "none");
	if (!code) {
		json_decref(page);
		json_decref(rec);
		conntest_conn_free(&t);
		return;
	}
	json_object_set_new(rec, "tenThuTuc", json_string("Thủ tục đã sửa qua PUT"));
	run_put(t.c, code, rec, &r);
	ok(r.o == CONN_OK, "put answers OK (%s)", r.why ? r.why : "no error");
	char *p = xasprintf(PATH "/%s", code);
	got = sim_rest(s, "GET", p, NULL, &st);
	free(p);
	is_str(json_string_value(json_object_get(got, "tenThuTuc")), "Thủ tục đã sửa qua PUT",
	       "the simulator serves what was put");
	json_decref(got);

	/*
	 * A code that needs escaping in the path: unescaped, curl would refuse
	 * the URL (a transport error, RETRY); escaped, the server judges the
	 * code itself and refuses it with its own text.
	 */
	json_t *fresh = json_deep_copy(rec);
	json_object_set_new(fresh, "maThuTuc", json_string("TEST 1/2"));
	run_put(t.c, "TEST 1/2", fresh, &r);
	ok(r.o == CONN_FAIL && conntest_contains(r.why, "400") &&
		   conntest_contains(r.why, "không hợp lệ"),
	   "a code with a space and a slash reaches the server escaped (%s)", r.why ? r.why : "ok");
	json_decref(fresh);

	/* The server refuses a record that is not for the code: its text comes back. */
	run_put(t.c, "1.000000.000.00.00.H31", rec, &r);
	ok(r.o == CONN_FAIL && conntest_contains(r.why, "400") &&
		   conntest_contains(r.why, "1.000000.000.00.00.H31"),
	   "a mismatching code is FAIL naming the status and the code (%s)", r.why ? r.why : "ok");
	char *body = json_dumps(rec, JSON_COMPACT);
	json_t *said = sim_rest(s, "PUT", PATH "/1.000000.000.00.00.H31", body, &st);
	const char *text = json_string_value(json_object_get(said, "message"));
	ok(text && conntest_contains(r.why, text) && strlen(r.why) < 500,
	   "with the server's own text (%s), bounded", text ? text : "none");
	json_decref(said);
	free(body);

	/* 503 on every attempt: RETRY. */
	simproc_faults(s, "{\"fail_next\":5}");
	run_put(t.c, code, rec, &r);
	ok(r.o == CONN_RETRY && conntest_contains(r.why, "503"), "503 is RETRY (%s)",
	   r.why ? r.why : "ok");
	simproc_faults(s, "{\"reset\":true}");
	simproc_faults(s, "{\"rate_limit_rate\":1}");
	run_put(t.c, code, rec, &r);
	ok(r.o == CONN_RETRY && conntest_contains(r.why, "429"), "429 is RETRY (%s)",
	   r.why ? r.why : "ok");
	simproc_faults(s, "{\"reset\":true}");

	/* Bad arguments fail from the loop. */
	run_put(t.c, "", rec, &r);
	ok(r.o == CONN_FAIL && conntest_contains(r.why, "empty"), "an empty code fails (%s)",
	   r.why ? r.why : "ok");
	json_t *arr = json_array();
	run_put(t.c, code, arr, &r);
	ok(r.o == CONN_FAIL && conntest_contains(r.why, "not an object"),
	   "a record that is not an object fails (%s)", r.why ? r.why : "ok");
	json_decref(arr);

	json_t *stj = conn_provincial.status(t.c);
	ok(json_integer_value(json_object_get(stj, "puts_ok")) == 1 &&
		   json_integer_value(json_object_get(stj, "puts_failed")) == 4 &&
		   json_integer_value(json_object_get(stj, "puts_retry")) == 2,
	   "status counts puts: 1 ok, 4 failed, 2 to retry");
	json_decref(stj);

	/* Freed with requests in flight: nothing is called afterwards. */
	simproc_faults(s, "{\"latency_ms\":100}");
	res_clear(&r);
	struct res r2 = {0};
	ops()->procedures_list(t.c, on_list, &r);
	ops()->procedure_put(t.c, code, rec, on_done, &r2);
	simproc_run_for(ct.dmn.ev, 10);
	conntest_conn_free(&t);
	simproc_run_for(ct.dmn.ev, 200);
	ok(r.calls == 0 && r2.calls == 0, "after free, no completion reaches the caller");
	is_int(http_core_pending(ct.dmn.http), 0, "and nothing is left in the HTTP core");
	simproc_faults(s, "{\"reset\":true}");
	simproc_post(s, "/_sim/catalog", "{\"op\":\"reseed\"}");

	json_decref(rec);
	json_decref(page);
	res_clear(&r);
}

/* ---- the change feed (dossier-spec §1) ----------------------------------- */

#define FEED "/provincial/api/v1/ho-so/thay-doi"

struct cres {
	int calls;
	enum conn_outcome o;
	json_t *items; /* own ref */
	char *next, *why;
	bool has_more;
};

static void cres_clear(struct cres *r)
{
	json_decref(r->items);
	free(r->next);
	free(r->why);
	memset(r, 0, sizeof(*r));
}

static void on_changes(struct conn *c, enum conn_outcome o, json_t *items, const char *next_cursor,
		       bool has_more, const char *why, void *ud)
{
	struct cres *r = ud;
	(void)c;
	conntest_completion(&ct);
	cres_clear(r);
	r->calls = 1;
	r->o = o;
	r->items = json_incref(items);
	r->next = next_cursor ? xstrdup(next_cursor) : NULL;
	r->has_more = has_more;
	r->why = why ? xstrdup(why) : NULL;
}

static void run_changes(struct conn *c, const char *cursor, struct cres *r)
{
	int rc;
	cres_clear(r);
	ct.in_call = true;
	rc = ops()->changes(c, cursor, on_changes, r);
	ct.in_call = false;
	conntest_await(&ct, rc, "changes", &r->calls, 20000);
}

/*
 * A one-answer HTTP server on loopback (a child process): every request
 * gets 200 with body. For page shapes the simulator never serves.
 */
struct canned {
	pid_t pid;
	char url[64];
};

static void canned_serve(int lfd, const char *body)
{
	for (;;) {
		char buf[4096];
		size_t have = 0;
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			_exit(0);
		while (have < sizeof(buf) - 1) {
			ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
			if (n <= 0)
				break;
			have += (size_t)n;
			buf[have] = '\0';
			if (strstr(buf, "\r\n\r\n"))
				break;
		}
		char *head = xasprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				       "Content-Length: %zu\r\nConnection: close\r\n\r\n",
				       strlen(body));
		ssize_t w = write(fd, head, strlen(head));
		w = write(fd, body, strlen(body));
		(void)w;
		free(head);
		close(fd);
	}
}

static int canned_start(struct canned *k, const char *body)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(k, 0, sizeof(*k));
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	snprintf(k->url, sizeof(k->url), "http://127.0.0.1:%u", ntohs(a.sin_port));
	k->pid = fork();
	if (k->pid == 0)
		canned_serve(fd, body);
	close(fd);
	return k->pid > 0 ? 0 : -errno;
}

static void canned_stop(struct canned *k)
{
	if (k->pid > 0) {
		kill(k->pid, SIGTERM);
		waitpid(k->pid, NULL, 0);
	}
	k->pid = 0;
}

/* One page of shape body from a canned server, read from cursor. */
static void canned_page(const char *body, const char *cursor, struct cres *r)
{
	struct canned k;
	struct conntest_conn t;
	char *keys, *err = NULL;

	cres_clear(r);
	if (canned_start(&k, body) < 0) {
		printf("# cannot start a canned server: %s\n", strerror(errno));
		return;
	}
	keys = xasprintf("url = %s\nauth = none\nchanges_path = /feed\nmax_attempts = 1\n", k.url);
	if (conntest_conn_new(&ct, &t, keys, false, &err) == 0) {
		run_changes(t.c, cursor, r);
		conntest_conn_free(&t);
	} else {
		printf("# connector: %s\n", err);
	}
	free(err);
	free(keys);
	canned_stop(&k);
}

static void test_changes_config(void)
{
	static const struct {
		const char *keys, *want;
	} bad[] = {
		{"changes_limit = 0\n", "changes_limit"},
		{"changes_limit = 1001\n", "changes_limit"},
		{"changes_path = ho-so\n", "changes_path"},
	};
	struct conntest_conn t;
	char *err = NULL, *keys;
	int found = 0;

	for (const struct conf_option *o = conn_provincial.options; o->key; o++) {
		found += !strcmp(o->key, "changes_path") && o->def &&
			 !strcmp(o->def, "/api/v1/ho-so/thay-doi");
		found += !strcmp(o->key, "changes_limit") && o->def && !strcmp(o->def, "500");
	}
	is_int(found, 2, "options changes_path and changes_limit with their defaults");
	for (size_t i = 0; i < LT_ARRAY_SIZE(bad); i++) {
		keys = xasprintf("url = http://127.0.0.1:9\nauth = none\n%s", bad[i].keys);
		int r = conntest_conn_new(&ct, &t, keys, true, &err);
		ok(r < 0 && conntest_contains(err, bad[i].want), "refused: %.*s (%s)",
		   (int)strcspn(bad[i].keys, "\n"), bad[i].keys, err ? err : "accepted");
		if (r == 0)
			conntest_conn_free(&t);
		free(err);
		free(keys);
	}
}

/* Requests the simulator's feed route answered, from /_sim/stats. */
static long long feed_requests(const struct simproc *s)
{
	json_t *j = simproc_get(s, "/_sim/stats");
	json_t *e = json_object_get(json_object_get(j, "by_service"), "provincial.ho-so.thay-doi");
	long long n = json_integer_value(json_object_get(e, "count"));
	json_decref(j);
	return n;
}

/* The decimal seq of a change, -1 when absent. */
static long long seq_of(json_t *change)
{
	json_t *s = json_object_get(change, "seq");
	return json_is_integer(s) ? json_integer_value(s) : -1;
}

static void test_changes(const struct simproc *s)
{
	struct conntest_conn t;
	struct cres r = {0};
	char *cursor = xstrdup("");
	json_t *all = json_array(), *first = NULL;
	long long prev = 0, before;
	bool increasing = true, cursor_is_last = true;
	int pages = 0;
	long st;

	if (!conntest_make(&ct, &t, s->url, "changes_limit = 50\n"))
		goto out;

	/* From the beginning to the end, page by page. */
	before = feed_requests(s);
	do {
		run_changes(t.c, cursor, &r);
		if (r.o != CONN_OK)
			break;
		pages++;
		if (!first)
			first = json_incref(r.items);
		for (size_t i = 0; i < json_array_size(r.items); i++) {
			long long q = seq_of(json_array_get(r.items, i));
			increasing &= q > prev;
			prev = q;
		}
		if (json_array_size(r.items)) {
			char *want = xasprintf("%lld", prev);
			cursor_is_last &= !strcmp(want, r.next);
			free(want);
		}
		json_array_extend(all, r.items);
		free(cursor);
		cursor = xstrdup(r.next);
	} while (r.has_more && pages < 1000);
	ok(r.o == CONN_OK && !r.has_more, "the feed is read to the end (%s)",
	   r.why ? r.why : "no error");
	long long feed_n = feed_requests(s) - before;
	json_t *direct = sim_rest(s, "GET", FEED "?cursor=&limit=1000", NULL, &st);
	json_t *whole = json_object_get(direct, "items");
	ok(json_array_size(all) > 100, "in pages: %d pages, %zu changes", pages,
	   json_array_size(all));
	is_int(feed_n, pages, "one request per page of changes_limit (50)");
	ok(increasing, "seq increases strictly across pages");
	ok(cursor_is_last, "next_cursor is the seq of the page's last change");
	ok(json_is_false(json_object_get(direct, "has_more")) && json_equal(all, whole),
	   "the pages together are the whole feed, each change once (%zu)", json_array_size(all));
	json_decref(direct);

	/* The end: nothing more, the cursor stays. */
	run_changes(t.c, cursor, &r);
	ok(r.o == CONN_OK && json_array_size(r.items) == 0 && !r.has_more && r.next &&
		   !strcmp(r.next, cursor),
	   "at the end: no changes, no more, the same cursor (%s)", r.why ? r.why : "no error");

	/* The feed is a log: from the beginning again, the same first page. */
	run_changes(t.c, "", &r);
	ok(r.o == CONN_OK && first && json_equal(r.items, first),
	   "reading again from the beginning gives the same changes");

	/* New changes appear after the cursor. */
	ok(simproc_post(s, "/_sim/feed", "{\"op\":\"generate\",\"count\":7}") == 0,
	   "the simulator appends 7 changes");
	run_changes(t.c, cursor, &r);
	ok(r.o == CONN_OK && json_array_size(r.items) == 7 &&
		   seq_of(json_array_get(r.items, 0)) > prev,
	   "they are read from the last cursor (%zu, %s)", json_array_size(r.items),
	   r.why ? r.why : "no error");
	free(cursor);
	cursor = xstrdup(r.next ? r.next : "");

	/* Broken changes are passed on for the flow to judge. */
	simproc_post(s, "/_sim/feed", "{\"op\":\"malformed\",\"count\":4}");
	run_changes(t.c, cursor, &r);
	ok(r.o == CONN_OK && json_array_size(r.items) == 4,
	   "malformed changes are handed over, not dropped (%zu, %s)", json_array_size(r.items),
	   r.why ? r.why : "no error");

	/* A gateway's HTML page: RETRY naming the cursor. */
	simproc_faults(s, "{\"path\":\"" FEED "\",\"malformed_rate\":1}");
	before = feed_requests(s);
	run_changes(t.c, cursor, &r);
	char *named = xasprintf("cursor \"%s\"", cursor);
	ok(r.o == CONN_RETRY && conntest_contains(r.why, named) &&
		   conntest_contains(r.why, "not JSON") && !r.items,
	   "an answer that is not JSON is RETRY naming the cursor (%s)", r.why ? r.why : "ok");
	is_int(feed_requests(s) - before, 2, "after max_attempts (2) attempts");
	simproc_faults(s, "{\"reset\":true}");

	/* 503: RETRY. */
	simproc_faults(s, "{\"path\":\"" FEED "\",\"down\":true}");
	run_changes(t.c, cursor, &r);
	ok(r.o == CONN_RETRY && conntest_contains(r.why, "503") && conntest_contains(r.why, named),
	   "503 is RETRY naming the cursor (%s)", r.why ? r.why : "ok");
	simproc_faults(s, "{\"reset\":true}");
	free(named);

	json_t *stj = conn_provincial.status(t.c);
	ok(json_integer_value(json_object_get(stj, "changes_ok")) >= pages + 4 &&
		   json_integer_value(json_object_get(stj, "changes_retry")) == 2 &&
		   json_integer_value(json_object_get(stj, "changes_items")) >=
			   (json_int_t)json_array_size(all),
	   "status counts feed reads and changes");
	json_decref(stj);

	/* Over-long cursor: FAIL from the loop. */
	char *longc = xmalloc(PROVINCIAL_MAX_CURSOR_BYTES + 2);
	memset(longc, '9', PROVINCIAL_MAX_CURSOR_BYTES + 1);
	longc[PROVINCIAL_MAX_CURSOR_BYTES + 1] = '\0';
	run_changes(t.c, longc, &r);
	ok(r.o == CONN_FAIL && conntest_contains(r.why, "cursor"), "an over-long cursor fails (%s)",
	   r.why ? r.why : "ok");
	free(longc);
	conntest_conn_free(&t);

	/* A page of the wrong shape: the catalogue where the feed should be. */
	if (conntest_make(&ct, &t, s->url, "changes_path = /api/v1/thu-tuc\n")) {
		run_changes(t.c, "42", &r);
		ok(r.o == CONN_FAIL && conntest_contains(r.why, "cursor \"42\"") &&
			   conntest_contains(r.why, "\"items\" is absent") && !r.items && !r.next,
		   "a page without items is FAIL naming the cursor (%s)", r.why ? r.why : "ok");
		conntest_conn_free(&t);
	}

	/* A wrong token: FAIL. */
	char *wrong = xasprintf("%s/wrong", ct.dir);
	char *keys = xasprintf("url = %s/provincial\ntoken = %s\n", s->url, wrong);
	char *err = NULL;
	write_file_atomic(wrong, "not-the-token", 13, 0600);
	if (conntest_conn_new(&ct, &t, keys, false, &err) == 0) {
		run_changes(t.c, "", &r);
		ok(r.o == CONN_FAIL && conntest_contains(r.why, "401") &&
			   conntest_contains(r.why, "cursor \"\""),
		   "a wrong token fails naming 401 and the cursor (%s)", r.why ? r.why : "ok");
		conntest_conn_free(&t);
	} else {
		ok(0, "a connector with a wrong token (%s)", err);
	}
	free(err);
	free(keys);
	free(wrong);
out:
	json_decref(first);
	json_decref(all);
	free(cursor);
	cres_clear(&r);
}

/* Page shapes the simulator never serves, from a canned server. */
static void test_changes_shapes(void)
{
	static const struct {
		const char *body, *want;
	} bad[] = {
		{"[1,2,3]", "the answer is a list, not an object"},
		{"{\"items\":{},\"next_cursor\":\"5\"}", "\"items\" is an object, not a list"},
		{"{\"items\":[]}", "\"next_cursor\" is absent"},
		{"{\"items\":[],\"next_cursor\":null}", "\"next_cursor\" is null"},
		{"{\"items\":[],\"next_cursor\":\"5\",\"has_more\":\"yes\"}",
		 "\"has_more\" is a string, not a boolean"},
		{"{\"items\":[{\"seq\":8}],\"next_cursor\":\"7\",\"has_more\":false}",
		 "the feed does not move"},
		{"{\"items\":[],\"next_cursor\":\"7\",\"has_more\":true}",
		 "the feed does not move"},
	};
	struct cres r = {0};

	for (size_t i = 0; i < LT_ARRAY_SIZE(bad); i++) {
		canned_page(bad[i].body, "7", &r);
		ok(r.o == CONN_FAIL && conntest_contains(r.why, "cursor \"7\"") &&
			   conntest_contains(r.why, bad[i].want) && !r.items && !r.next,
		   "%s: FAIL naming the cursor (%s)", bad[i].body, r.why ? r.why : "ok");
	}
	canned_page("{\"items\":[{\"seq\":8},\"x\",null,[1]],\"next_cursor\":8,\"has_more\":true}",
		    "7", &r);
	ok(r.o == CONN_OK && json_array_size(r.items) == 4 &&
		   json_is_string(json_array_get(r.items, 1)) && r.next && !strcmp(r.next, "8") &&
		   r.has_more,
	   "items that are not objects are passed on; a numeric next_cursor becomes text (%s)",
	   r.why ? r.why : "no error");
	canned_page("{\"items\":[],\"next_cursor\":\"7\"}", "7", &r);
	ok(r.o == CONN_OK && !r.has_more && json_array_size(r.items) == 0,
	   "has_more absent: no more (%s)", r.why ? r.why : "no error");
	cres_clear(&r);
}

/* ---- fee records of a day (payment-spec §3) ------------------------------ */

static void run_fees(struct conn *c, const char *day, struct res *r)
{
	int rc;
	res_clear(r);
	ct.in_call = true;
	rc = ops()->fees(c, day, on_list, r);
	ct.in_call = false;
	conntest_await(&ct, rc, "fees", &r->calls, 30000);
}

/* fee_pages: every page's records, appended; the completion goes to r. */
struct fee_pages {
	struct res *r;
	json_t *records;
	unsigned pages;
};

static void on_fee_page(struct conn *c, enum conn_outcome o, json_t *records, const char *why,
			void *ud)
{
	struct fee_pages *fp = ud;
	(void)c, (void)o, (void)why;
	fp->pages++;
	json_array_extend(fp->records, records);
}

static void on_fee_pages_done(struct conn *c, enum conn_outcome o, json_t *records, const char *why,
			      void *ud)
{
	on_list(c, o, records, why, ((struct fee_pages *)ud)->r);
}

/* The fee records of day from a canned server answering body to every page. */
static void canned_fees(const char *body, const char *day, struct res *r)
{
	struct canned k;
	struct conntest_conn t;
	char *keys, *err = NULL;

	res_clear(r);
	if (canned_start(&k, body) < 0) {
		printf("# cannot start a canned server: %s\n", strerror(errno));
		return;
	}
	keys = xasprintf("url = %s\nauth = none\nfees_path = /fees\nmax_attempts = 1\n"
			 "max_pages = 3\n",
			 k.url);
	if (conntest_conn_new(&ct, &t, keys, false, &err) == 0) {
		run_fees(t.c, day, r);
		conntest_conn_free(&t);
	} else {
		printf("# connector: %s\n", err);
	}
	free(err);
	free(keys);
	canned_stop(&k);
}

static void test_fees_shapes(void)
{
	struct res r = {0};
	canned_fees(
		"{\"items\":[{\"maHoSo\":\"A\"},\"x\"],\"next_cursor\":\"9\",\"has_more\":false}",
		"2025-06-02", &r);
	ok(r.o == CONN_OK && json_array_size(r.records) == 2 &&
		   json_is_string(json_array_get(r.records, 1)),
	   "a one-page day is read; an item that is not an object is passed on (%s)",
	   r.why ? r.why : "ok");
	/* every page answers the same: the second does not move past its cursor */
	canned_fees("{\"items\":[{\"maHoSo\":\"A\"}],\"next_cursor\":\"9\",\"has_more\":true}",
		    "2025-06-02", &r);
	ok(r.o == CONN_FAIL && !r.records && conntest_contains(r.why, "page 2") &&
		   conntest_contains(r.why, "2025-06-02") &&
		   conntest_contains(r.why, "does not move"),
	   "a page that does not move fails the whole day, naming the page (%s)",
	   r.why ? r.why : "ok");
	canned_fees("{\"items\":{},\"next_cursor\":\"9\"}", "2025-06-02", &r);
	ok(r.o == CONN_FAIL && conntest_contains(r.why, "\"items\" is an object, not a list"),
	   "a page of another shape fails (%s)", r.why ? r.why : "ok");
	canned_fees("<html>busy</html>", "2025-06-02", &r);
	ok(r.o == CONN_RETRY && conntest_contains(r.why, "not JSON"),
	   "an answer that is not JSON is retried later (%s)", r.why ? r.why : "ok");
	struct conntest_conn t;
	char *err = NULL;
	if (conntest_conn_new(&ct, &t, "url = http://127.0.0.1:9\nauth = none\n", false, &err) ==
	    0) {
		is_int(ops()->fees(t.c, "2025-6-2", on_list, &r), -EINVAL,
		       "a day that is not YYYY-MM-DD is refused");
		conntest_conn_free(&t);
	}
	free(err);
	res_clear(&r);
}

/* The simulator's fee records of one day, every page, against a direct read. */
static void test_fees(const struct simproc *s)
{
	struct conntest_conn t;
	struct res r = {0};
	long st;
	if (!conntest_make(&ct, &t, s->url, "fees_limit = 7\n"))
		return;
	json_t *direct =
		sim_rest(s, "GET", "/provincial/api/v1/le-phi?ngay=2025-06-02&cursor=&limit=5000",
			 NULL, &st);
	run_fees(t.c, "2025-06-02", &r);
	size_t n = json_array_size(json_object_get(direct, "items"));
	ok(r.o == CONN_OK && n > 7 && json_array_size(r.records) == n,
	   "the day's %zu fee records are read in pages of 7 (%s)", n, r.why ? r.why : "ok");
	ok(json_equal(r.records, json_object_get(direct, "items")),
	   "the same records, in the same order, as one big page");
	ok(status_int(t.c, "fees_ok") == 1 && status_int(t.c, "fees_records") == (long long)n,
	   "status counts the read and its records");

	/* page by page: each page's records handed over as read, the completion empty */
	struct fee_pages fp = {.r = &r, .records = json_array()};
	res_clear(&r);
	ct.in_call = true;
	int rc = ops()->fee_pages(t.c, "2025-06-02", on_fee_page, on_fee_pages_done, &fp);
	ct.in_call = false;
	conntest_await(&ct, rc, "fee_pages", &r.calls, 30000);
	ok(r.o == CONN_OK && json_array_size(r.records) == 0 && fp.pages == (n + 6) / 7,
	   "fee_pages: %u pages of 7 handed over, nothing left for the completion (%s)", fp.pages,
	   r.why ? r.why : "ok");
	ok(json_equal(fp.records, json_object_get(direct, "items")),
	   "together the pages are the day's records, in order");
	ok(status_int(t.c, "fees_ok") == 2 && status_int(t.c, "fees_records") == 2 * (long long)n,
	   "status counts the records handed over");
	json_decref(fp.records);
	json_decref(direct);
	res_clear(&r);
	conntest_conn_free(&t);
}

int main(void)
{
	struct simproc s;
	struct conntest_log lg = {0};
	char *logged;
	const char *args[] = {"--seed",
			      "9",
			      "--procedures",
			      "2000",
			      "--provincial-token",
			      TOKEN,
			      "--dossiers",
			      "100",
			      "--dossier-now",
			      "2025-06-02T18:00:00+07:00",
			      NULL};

	signal(SIGPIPE, SIG_IGN);
	/* everything logged at debug goes to a file, checked for the token at the end */
	conntest_log_start(&lg, "provincial");
	log_setup(LOG_TARGET_STDERR, LOG_DEBUG);
	if (conntest_start(&ct, "prov", "provincial", "province", keys_for) < 0)
		return 1;
	conntest_write(&ct, "token", TOKEN "\n");

	test_config();
	test_changes_config();
	test_changes_shapes();
	test_fees_shapes();
	if (simproc_start(&s, "test_prov", args) == 0) {
		test_list(&s);
		test_refusals(&s);
		test_put(&s);
		test_changes(&s);
		test_fees(&s);
	} else {
		ok(0, "the simulator starts ($BUILD/lienthong-sim)");
	}
	simproc_stop(&s);
	conntest_stop(&ct);

	logged = conntest_log_end(&lg, "catalogue read");
	if (logged) {
		ok(!conntest_contains(logged, TOKEN), "the token is never logged");
	}
	free(logged);
	return tap_done();
}
