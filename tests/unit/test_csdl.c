/*
 * test_csdl: the csdl connector (connectors/csdl.c) built the real way (a
 * config file through conf_load, conn_new on a daemon with an sd-event loop
 * and the HTTP core) against the real simulator over loopback: the
 * catalogue services of catalog-spec §1, answers of the wrong shape,
 * faults, concurrency, sessions that expire mid-run, and the lifecycle
 * (completions never from inside a call, nothing called after free). It
 * also measures how long 2,000 records take at concurrency 8 and 16.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include <jansson.h>

#include "conf.h"
#include "conntest.h"
#include "connector.h"
#include "csdl.h"
#include "daemon.h"
#include "http.h"
#include "log.h"
#include "simproc.h"
#include "tap.h"
#include "util.h"

#define PASSWORD "pw-csdl-Kq4-not-in-logs"
#define N_PROCS	 "2000"

/* in_call is set while a connector call runs: a completion seeing it came from inside. */
static struct conntest ct;

static const struct csdl_ops *ops(void)
{
	return conn_csdl.ext;
}

/* ---- instances built from a config file -------------------------------- */

/* The keys of a working connector on the simulator at url, plus extra. */
static char *keys_for(const char *url, const char *extra)
{
	return xasprintf("url = %s\nusername = lienthong\npassword = %s/pw\n"
			 "madonvi = 000.00.00.H31\nmax_attempts = 3\nbackoff_base = 5ms\n"
			 "backoff_cap = 50ms\nbreaker_failures = 0\ntimeout = 10s\n%s",
			 url, ct.dir, extra ? extra : "");
}

/* ---- completions ------------------------------------------------------- */

struct res {
	int calls;
	enum conn_outcome o;
	json_t *j; /* a copy of items / record */
	char *raw, *why;
};

static void res_clear(struct res *r)
{
	json_decref(r->j);
	free(r->raw);
	free(r->why);
	memset(r, 0, sizeof(*r));
}

static void res_set(struct res *r, enum conn_outcome o, json_t *j, const char *raw, const char *why)
{
	conntest_completion(&ct);
	res_clear(r);
	r->calls = 1;
	r->o = o;
	r->j = j ? json_deep_copy(j) : NULL;
	r->raw = raw ? xstrdup(raw) : NULL;
	r->why = why ? xstrdup(why) : NULL;
}

static void on_list(struct conn *c, enum conn_outcome o, json_t *items, const char *raw,
		    const char *why, void *ud)
{
	(void)c;
	res_set(ud, o, items, raw, why);
}

static void on_record(struct conn *c, enum conn_outcome o, json_t *record, const char *raw,
		      const char *why, void *ud)
{
	(void)c;
	res_set(ud, o, record, raw, why);
}

enum op_kind { OP_LIST, OP_AGENCIES, OP_FIELDS };

/* One list-type call, run to completion (10 s at most). */
static void run_list(struct conn *c, enum op_kind k, struct res *r)
{
	int rc;
	res_clear(r);
	ct.in_call = true;
	rc = k == OP_LIST	? ops()->list(c, on_list, r)
	     : k == OP_AGENCIES ? ops()->agencies(c, on_list, r)
				: ops()->fields(c, on_list, r);
	ct.in_call = false;
	conntest_await(&ct, rc, "the call", &r->calls, 10000);
}

static void run_get(struct conn *c, const char *code, struct res *r)
{
	int rc;
	res_clear(r);
	ct.in_call = true;
	rc = ops()->get(c, code, on_record, r);
	ct.in_call = false;
	conntest_await(&ct, rc, "get", &r->calls, 10000);
}

static const char *str_of(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* ---- many gets at once -------------------------------------------------- */

struct many {
	int done, ok, retry, fail;
	struct conn *c;
	unsigned max_in_flight;
	unsigned max_queued;
	char *first_fail;
};

static void on_many(struct conn *c, enum conn_outcome o, json_t *record, const char *raw,
		    const char *why, void *ud)
{
	struct many *m = ud;
	(void)c;
	(void)raw;
	conntest_completion(&ct);
	m->done++;
	if (o == CONN_OK && json_is_object(record))
		m->ok++;
	else if (o == CONN_RETRY)
		m->retry++;
	else
		m->fail++;
	if (o != CONN_OK && !m->first_fail)
		m->first_fail = xstrdup(why ? why : "?");
}

struct many_wait {
	struct many *m;
	int want;
};

/* Samples the HTTP client between loop turns: the most requests on the wire. */
static bool many_sample(void *ud)
{
	struct many_wait *w = ud;
	struct http_stats hs;
	http_client_stats(w->m->c->http, &hs);
	if (hs.in_flight > w->m->max_in_flight)
		w->m->max_in_flight = (unsigned)hs.in_flight;
	if (hs.queued > w->m->max_queued)
		w->m->max_queued = (unsigned)hs.queued;
	return w->m->done >= w->want;
}

/* Issues get for codes[from, to) at once. Returns how many were accepted. */
static int many_issue(struct many *m, json_t *codes, size_t from, size_t to)
{
	int n = 0;
	ct.in_call = true;
	for (size_t i = from; i < to && i < json_array_size(codes); i++)
		if (ops()->get(m->c, json_string_value(json_array_get(codes, i)), on_many, m) == 0)
			n++;
	ct.in_call = false;
	return n;
}

static bool many_wait(struct many *m, int want, int64_t timeout_ms)
{
	struct many_wait w = {m, want};
	return simproc_run_until_fn(ct.dmn.ev, many_sample, &w, timeout_ms);
}

/* The MATTHC of every element of a list answer, as a JSON array of strings. */
static json_t *codes_of(json_t *items)
{
	json_t *codes = json_array(), *e;
	size_t i;
	json_array_foreach (items, i, e) {
		const char *code = str_of(e, "MATTHC");
		if (code)
			json_array_append_new(codes, json_string(code));
	}
	return codes;
}

/* ---- tests -------------------------------------------------------------- */

static void test_config(void)
{
	struct conntest_conn t;
	char *err = NULL, *keys;
	const struct conf_option *o;
	int found = 0;

	ok(conn_type_find("csdl") == &conn_csdl, "the registry knows type csdl");
	ok(conn_csdl.flags & CONN_F_ADAPTER, "csdl speaks the adapter envelope");
	for (o = conn_csdl.options; o->key; o++) {
		if (!strcmp(o->key, "endpoint"))
			found += o->type == CONF_ENUM && !strcmp(o->def, "share");
		if (!strcmp(o->key, "max_record_bytes"))
			found += o->type == CONF_SIZE && !strcmp(o->def, "1M");
	}
	is_int(found, 2, "options endpoint (default share) and max_record_bytes (default 1M)");

	keys = keys_for("http://127.0.0.1:9", "endpoint = nowhere\n");
	ok(conntest_conn_new(&ct, &t, keys, true, &err) < 0 && conntest_contains(err, "endpoint"),
	   "an unknown endpoint is refused naming the key (%s)", err ? err : "accepted");
	free(err);
	free(keys);
	keys = keys_for("http://127.0.0.1:9", "max_record_bytes = 2M\nmax_response_bytes = 1M\n");
	ok(conntest_conn_new(&ct, &t, keys, true, &err) < 0 &&
		   conntest_contains(err, "max_record_bytes") &&
		   conntest_contains(err, "max_response_bytes"),
	   "max_record_bytes over max_response_bytes is refused (%s)", err ? err : "accepted");
	free(err);
	free(keys);
	keys = keys_for("http://127.0.0.1:9", "endpoint = integration\n");
	conntest_check_only(&ct, &t, keys);
	conntest_conn_free(&t);
	free(keys);
}

static void test_catalogue(struct simproc *s)
{
	struct conntest_conn t;
	struct res r = {0};
	char *err = NULL, *keys = keys_for(s->url, "concurrency = 8\n");
	json_t *sim, *codes = NULL;
	const char *code = NULL;

	if (conntest_conn_new(&ct, &t, keys, false, &err) < 0) {
		ok(0, "a csdl connector on the simulator (%s)", err ? err : "?");
		free(err);
		free(keys);
		return;
	}
	free(keys);

	run_list(t.c, OP_LIST, &r);
	sim = simproc_get(s, "/_sim/catalog");
	ok(r.o == CONN_OK && json_is_array(r.j), "list answers OK with an array (%s)",
	   r.why ? r.why : "no error");
	is_int(json_array_size(r.j), json_integer_value(json_object_get(sim, "published")),
	       "list returns every published procedure (sim: %lld)",
	       (long long)json_integer_value(json_object_get(sim, "published")));
	json_decref(sim);
	codes = codes_of(r.j);
	is_int(json_array_size(codes), json_array_size(r.j), "every listed procedure has a MATTHC");
	code = json_string_value(json_array_get(codes, 0));

	run_get(t.c, code, &r);
	ok(r.o == CONN_OK && json_is_object(r.j), "get answers OK with a record (%s)",
	   r.why ? r.why : "no error");
	is_str(str_of(r.j, "MATTHC"), code, "the record is the procedure asked for");
	ok(r.raw && conntest_contains(r.raw, code), "the raw body comes along");

	run_get(t.c, "9.999999.000.00.00.H31", &r);
	ok(r.o == CONN_FAIL && conntest_contains(r.why, "not found") &&
		   conntest_contains(r.why, "9.999999.000.00.00.H31"),
	   "an unknown code fails naming it as not found (%s)", r.why ? r.why : "ok");
	ok(r.j == NULL && r.raw && conntest_contains(r.raw, "result"),
	   "a missing procedure keeps the raw answer for the mismatch log");

	run_get(t.c, "", &r);
	ok(r.o == CONN_FAIL && conntest_contains(r.why, "empty"),
	   "an empty code fails from the loop, not from inside (%s)", r.why ? r.why : "ok");

	run_list(t.c, OP_AGENCIES, &r);
	ok(r.o == CONN_OK && json_array_size(r.j) >= 17, "agencies: %zu entries (%s)",
	   json_array_size(r.j), r.why ? r.why : "no error");
	bool found = false;
	for (size_t i = 0; i < json_array_size(r.j); i++) {
		const char *id = str_of(json_array_get(r.j, i), "MADONVI");
		found |= id && !strcmp(id, "000.00.04.H31");
	}
	ok(found, "agencies include Sở Tài chính (000.00.04.H31)");

	run_list(t.c, OP_FIELDS, &r);
	ok(r.o == CONN_OK && json_array_size(r.j) > 0 &&
		   str_of(json_array_get(r.j, 0), "MALINHVUC"),
	   "fields: %zu entries with MALINHVUC (%s)", json_array_size(r.j),
	   r.why ? r.why : "no error");

	/* The seeded broken records (catalog-spec §5). */
	json_t *diff = simproc_get(s, "/_sim/catalog/differences");
	json_t *bad = json_object_get(diff, "malformed");
	int not_record = 0, odd_record = 0;
	ok(json_array_size(bad) >= 2, "the simulator seeds malformed records (%zu)",
	   json_array_size(bad));
	for (size_t i = 0; i < json_array_size(bad); i++) {
		run_get(t.c, json_string_value(json_array_get(bad, i)), &r);
		if (r.o == CONN_FAIL &&
		    conntest_contains(r.why, "result[0] is a string, not a record") && r.raw &&
		    *r.raw)
			not_record++;
		else if (r.o == CONN_OK && json_is_object(r.j))
			odd_record++;
		else
			printf("# malformed %s: %s %s\n", json_string_value(json_array_get(bad, i)),
			       conn_outcome_name(r.o), r.why ? r.why : "");
	}
	is_int(not_record, 1, "a result[0] that is a string fails with the raw body kept");
	is_int(odd_record, 1, "an object with odd fields is a record: the mapping judges it");
	json_decref(diff);

	/* Broken at run time: a string where the record should be, then a record
	 * without its name. */
	const char *victim = json_string_value(json_array_get(codes, 5));
	char *body = xasprintf("{\"op\":\"malform\",\"code\":\"%s\",\"kind\":\"string\"}", victim);
	ok(simproc_post(s, "/_sim/catalog", body) == 0, "the simulator breaks %s", victim);
	free(body);
	run_get(t.c, victim, &r);
	ok(r.o == CONN_FAIL && conntest_contains(r.why, victim) &&
		   conntest_contains(r.why, "not a record") && r.raw &&
		   conntest_contains(r.raw, "result") && r.j == NULL,
	   "a record broken at run time fails naming it, raw kept (%s)", r.why ? r.why : "ok");
	victim = json_string_value(json_array_get(codes, 6));
	body = xasprintf("{\"op\":\"malform\",\"code\":\"%s\"}", victim);
	simproc_post(s, "/_sim/catalog", body);
	free(body);
	run_get(t.c, victim, &r);
	ok(r.o == CONN_OK && json_is_object(r.j) && !json_object_get(r.j, "TENTTHC"),
	   "a record without TENTTHC is still a record: the mapping judges it (%s)",
	   r.why ? r.why : "ok");

	/* An empty list is for the flow to judge. */
	simproc_post(s, "/_sim/catalog", "{\"op\":\"empty_list\",\"on\":true}");
	run_list(t.c, OP_LIST, &r);
	ok(r.o == CONN_OK && json_is_array(r.j) && json_array_size(r.j) == 0,
	   "an empty catalogue is OK with an empty array (%s)", r.why ? r.why : "no error");
	simproc_post(s, "/_sim/catalog", "{\"op\":\"empty_list\",\"on\":false}");
	simproc_post(s, "/_sim/catalog", "{\"op\":\"reseed\"}");

	/* A failing service is retried by the core, then handed back as RETRY. */
	simproc_faults(s, "{\"service\":\"LayThuTuc\",\"error_rate\":1}");
	long long before = simproc_stat(s, "requests_total");
	run_get(t.c, code, &r);
	long long after = simproc_stat(s, "requests_total");
	ok(r.o == CONN_RETRY && conntest_contains(r.why, "500") && conntest_contains(r.why, code),
	   "LayThuTuc failing with 500 is RETRY naming the code (%s)", r.why ? r.why : "ok");
	is_int(after - before, 3, "after max_attempts (3) attempts");
	simproc_faults(s, "{\"reset\":true}");

	/* Status. */
	json_t *st = conn_csdl.status(t.c);
	json_t *svc = json_object_get(json_object_get(st, "services"), "LayThuTuc");
	ok(json_integer_value(json_object_get(svc, "calls")) >= 6 &&
		   json_integer_value(json_object_get(svc, "ok")) >= 1 &&
		   json_integer_value(json_object_get(svc, "failed")) >= 2 &&
		   json_integer_value(json_object_get(svc, "retry")) == 1,
	   "status counts LayThuTuc calls by outcome");
	is_int(json_integer_value(json_object_get(st, "last_list_size")), 0,
	       "status has the size of the last list");
	ok(json_is_true(json_object_get(st, "session")) &&
		   json_integer_value(json_object_get(st, "logins")) >= 1,
	   "status shows the session held and the logins");
	json_decref(st);

	/* The endpoint option: the simulator serves the catalogue on share only. */
	struct conntest_conn integ;
	keys = keys_for(s->url, "endpoint = integration\n");
	if (conntest_conn_new(&ct, &integ, keys, false, &err) == 0) {
		run_list(integ.c, OP_LIST, &r);
		json_t *stats = simproc_get(s, "/_sim/stats");
		json_t *ip = json_object_get(json_object_get(stats, "by_path"), "/integration");
		ok(r.o != CONN_OK && ip, "endpoint = integration calls /integration (%s: %s)",
		   conn_outcome_name(r.o), r.why ? r.why : "no error");
		json_decref(stats);
		conntest_conn_free(&integ);
	} else {
		ok(0, "a connector with endpoint = integration (%s)", err);
	}
	free(err);
	free(keys);

	/* Records larger than max_record_bytes. */
	struct conntest_conn small;
	keys = keys_for(s->url, "max_record_bytes = 1k\n");
	if (conntest_conn_new(&ct, &small, keys, false, &err) == 0) {
		run_get(small.c, code, &r);
		ok(r.o == CONN_FAIL && conntest_contains(r.why, "max_record_bytes"),
		   "a record over max_record_bytes fails (%s)", r.why ? r.why : "ok");
		conntest_conn_free(&small);
	} else {
		ok(0, "a connector with max_record_bytes = 1k (%s)", err);
	}
	free(err);
	free(keys);

	res_clear(&r);
	json_decref(codes);
	conntest_conn_free(&t);
}

/* Many gets at once: the concurrency limit, the speed-up, expired sessions. */
static void test_concurrency(struct simproc *s)
{
	struct conntest_conn t;
	struct res r = {0};
	struct many m = {0};
	char *err = NULL, *keys = keys_for(s->url, "concurrency = 8\n");
	json_t *codes;
	uint64_t t0, seq_us, par_us;
	const int n = 200, n_seq = 25;

	if (conntest_conn_new(&ct, &t, keys, false, &err) < 0) {
		ok(0, "a csdl connector with concurrency 8 (%s)", err ? err : "?");
		free(err);
		free(keys);
		return;
	}
	free(keys);
	run_list(t.c, OP_LIST, &r);
	codes = codes_of(r.j);
	res_clear(&r);
	/* log in first, so that the timings below are of the gets alone */
	run_get(t.c, json_string_value(json_array_get(codes, 0)), &r);

	simproc_faults(s, "{\"latency_ms\":20}");
	t0 = now_mono_us();
	for (int i = 0; i < n_seq; i++)
		run_get(t.c, json_string_value(json_array_get(codes, (size_t)i + 10)), &r);
	seq_us = (now_mono_us() - t0) * (uint64_t)n / n_seq;

	m.c = t.c;
	t0 = now_mono_us();
	is_int(many_issue(&m, codes, 10, 10 + (size_t)n), n, "%d gets accepted at once", n);
	ok(many_wait(&m, n, 30000), "all %d complete", n);
	par_us = now_mono_us() - t0;
	is_int(m.ok, n, "all %d are OK (%s)", n, m.first_fail ? m.first_fail : "no failure");
	is_int(m.max_in_flight, 8, "at most concurrency (8) on the wire, and that many used");
	ok(m.max_queued > 0, "the rest wait in the HTTP core's queue");
	ok(par_us * 3 < seq_us, "%d concurrent gets take %llu ms, sequential ~%llu ms", n,
	   (unsigned long long)(par_us / 1000), (unsigned long long)(seq_us / 1000));
	ok(par_us >= (uint64_t)n / 8 * 20000 * 9 / 10,
	   "and no faster than 8 at a time allows (latency 20 ms)");
	free(m.first_fail);

	/* Sessions expire in the middle of a run: the adapter logs in again. */
	long long logins = simproc_stat(s, "logins");
	memset(&m, 0, sizeof(m));
	m.c = t.c;
	many_issue(&m, codes, 300, 300 + (size_t)n);
	many_wait(&m, n / 4, 30000);
	ok(simproc_post(s, "/_sim/expire-sessions", "{}") == 0, "sessions expire after %d gets",
	   m.done);
	ok(many_wait(&m, n, 30000), "all %d complete", n);
	is_int(m.ok, n, "expired sessions are transparent: all OK (%s)",
	       m.first_fail ? m.first_fail : "no failure");
	ok(simproc_stat(s, "logins") > logins, "the adapter logged in again (%lld -> %lld)", logins,
	   simproc_stat(s, "logins"));
	free(m.first_fail);
	simproc_faults(s, "{\"reset\":true}");

	/* Freed with calls in flight: nothing is called afterwards. */
	memset(&m, 0, sizeof(m));
	m.c = t.c;
	simproc_faults(s, "{\"latency_ms\":50}");
	many_issue(&m, codes, 0, 20);
	simproc_run_for(ct.dmn.ev, 10);
	json_decref(codes);
	conntest_conn_free(&t);
	simproc_run_for(ct.dmn.ev, 200);
	is_int(m.done, 0, "after free, no completion reaches the caller");
	is_int(http_core_pending(ct.dmn.http), 0, "and nothing is left in the HTTP core");
	simproc_faults(s, "{\"reset\":true}");
	res_clear(&r);
}

/* Measures how long the whole catalogue takes at a given concurrency. */
static void measure(struct simproc *s, int concurrency)
{
	struct conntest_conn t;
	struct res r = {0};
	struct many m = {0};
	char *extra = xasprintf("concurrency = %d\n", concurrency);
	char *err = NULL, *keys = keys_for(s->url, extra);
	json_t *codes;
	uint64_t t0;
	int n;

	free(extra);
	if (conntest_conn_new(&ct, &t, keys, false, &err) < 0) {
		ok(0, "a csdl connector with concurrency %d (%s)", concurrency, err ? err : "?");
		free(err);
		free(keys);
		return;
	}
	free(keys);
	run_list(t.c, OP_LIST, &r);
	codes = codes_of(r.j);
	n = (int)json_array_size(codes);
	m.c = t.c;
	t0 = now_mono_us();
	many_issue(&m, codes, 0, (size_t)n);
	ok(many_wait(&m, n, 120000), "%d records at concurrency %d: %llu ms", n, concurrency,
	   (unsigned long long)((now_mono_us() - t0) / 1000));
	ok(m.retry == 0 && m.ok >= n - 2 && m.max_in_flight <= (unsigned)concurrency,
	   "%d OK, %d failed (the malformed ones), none to retry, at most %u in flight", m.ok,
	   m.fail, m.max_in_flight);
	free(m.first_fail);
	json_decref(codes);
	res_clear(&r);
	conntest_conn_free(&t);
}

int main(void)
{
	struct simproc s;
	const char *args[] = {"--seed", "5", "--password", PASSWORD, "--procedures", N_PROCS, NULL};

	signal(SIGPIPE, SIG_IGN);
	log_setup(LOG_TARGET_STDERR, LOG_WARNING);
	if (conntest_start(&ct, "csdl", "csdl", "national", keys_for) < 0)
		return 1;
	conntest_write(&ct, "pw", PASSWORD);

	test_config();
	if (simproc_start(&s, "test_csdl", args) == 0) {
		test_catalogue(&s);
		test_concurrency(&s);
		measure(&s, 8);
		measure(&s, 16);
	} else {
		ok(0, "the simulator starts ($BUILD/lienthong-sim)");
	}
	simproc_stop(&s);
	conntest_stop(&ct);
	return tap_done();
}
