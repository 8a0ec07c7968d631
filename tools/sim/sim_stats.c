/*
 * sim_stats.c: what the simulator received and answered, for tests,
 * benchmarks and a province checking its configuration: counts per
 * service and per path with their HTTP statuses, login/session/token
 * counters, fault counters, the records each service received (in arrival
 * order), and the last requests of each service. Served by GET
 * /_sim/stats[?service=NAME]; POST /_sim/reset clears it.
 *
 * Everything is bounded: at most MAX_KEYS services and paths (the rest are
 * counted under "(other)"), names of at most MAX_KEY_LEN bytes, at most
 * --keep-records records per service (then only counted), and a ring of
 * the last REQUEST_LOG requests per service. Records are kept as compact
 * JSON text: far smaller than jansson trees and never shared between
 * threads.
 */
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define MAX_KEYS     4096
#define MAX_KEY_LEN  128
#define MAX_STATUSES 24
#define REQUEST_LOG  1000
#define OTHER_KEY    "(other)"

struct req_entry {
	uint64_t seq;
	uint32_t elapsed_us; /* elapsed in microseconds, saturated */
	uint16_t status;
	uint8_t fault;
};

struct entry {
	uint64_t count;
	unsigned n_status;
	struct {
		unsigned status;
		uint64_t n;
	} status[MAX_STATUSES];
	uint64_t status_other; /* statuses beyond MAX_STATUSES distinct ones */
	char **records;	       /* owned strings */
	size_t n_records;
	size_t cap_records;
	uint64_t records_dropped;
	struct req_entry *log; /* ring of REQUEST_LOG, owned, for services */
	size_t log_next;
	size_t log_n;
};

static struct {
	pthread_mutex_t lock;
	struct sim_map *services; /* name -> struct entry */
	struct sim_map *paths;	  /* path -> struct entry */
	uint64_t requests_total;
} S = {.lock = PTHREAD_MUTEX_INITIALIZER};

static _Atomic uint64_t counters[SIM_CTR__COUNT];
static _Atomic uint64_t fault_counters[SIM_FAULT__COUNT];

static const char *const counter_names[SIM_CTR__COUNT] = {
	[SIM_CTR_LOGINS] = "logins",
	[SIM_CTR_LOGINS_FAILED] = "logins_failed",
	[SIM_CTR_SESSION_EXPIRED] = "sessions_expired_answers",
	[SIM_CTR_TOKENS_ISSUED] = "tokens_issued",
	[SIM_CTR_TOKENS_REFUSED] = "tokens_refused",
};

void sim_stats_count(enum sim_counter c)
{
	atomic_fetch_add_explicit(&counters[c], 1, memory_order_relaxed);
}

void sim_stats_fault(enum sim_fault f)
{
	atomic_fetch_add_explicit(&fault_counters[f], 1, memory_order_relaxed);
}

static void entry_free(void *p)
{
	struct entry *e = p;

	if (e == NULL)
		return;
	for (size_t i = 0; i < e->n_records; i++)
		free(e->records[i]);
	free(e->records);
	free(e->log);
	free(e);
}

/* The entry of key in m, created if needed; bounded. Lock held. */
static struct entry *entry_get(struct sim_map *m, const char *key)
{
	struct entry *e;
	size_t len = strlen(key);

	if (len == 0 || len > MAX_KEY_LEN || !sim_utf8_valid(key, len))
		key = OTHER_KEY;
	e = sim_map_get(m, key);
	if (e != NULL)
		return e;
	if (sim_map_size(m) >= MAX_KEYS) {
		key = OTHER_KEY;
		e = sim_map_get(m, key);
		if (e != NULL)
			return e;
	}
	e = sim_xcalloc(1, sizeof(*e));
	sim_map_put(m, key, e);
	return e;
}

static void entry_count(struct entry *e, unsigned status)
{
	unsigned i;

	e->count++;
	for (i = 0; i < e->n_status; i++) {
		if (e->status[i].status == status) {
			e->status[i].n++;
			return;
		}
	}
	if (e->n_status < MAX_STATUSES) {
		e->status[e->n_status].status = status;
		e->status[e->n_status++].n = 1;
	} else {
		e->status_other++;
	}
}

void sim_stats_request(const char *path, const char *service, uint64_t seq, unsigned status,
		       enum sim_fault fault, uint64_t elapsed_us)
{
	struct entry *e;

	pthread_mutex_lock(&S.lock);
	S.requests_total++;
	entry_count(entry_get(S.paths, path), status);
	if (service != NULL) {
		struct req_entry *r;

		e = entry_get(S.services, service);
		entry_count(e, status);
		if (e->log == NULL)
			e->log = sim_xcalloc(REQUEST_LOG, sizeof(*e->log));
		r = &e->log[e->log_next];
		r->seq = seq;
		r->status = (uint16_t)status;
		r->fault = (uint8_t)fault;
		r->elapsed_us = elapsed_us > UINT32_MAX ? UINT32_MAX : (uint32_t)elapsed_us;
		e->log_next = (e->log_next + 1) % REQUEST_LOG;
		if (e->log_n < REQUEST_LOG)
			e->log_n++;
	}
	pthread_mutex_unlock(&S.lock);
}

void sim_stats_records(const char *service, const json_t *records)
{
	size_t n = json_array_size(records);
	char **texts;
	struct entry *e;
	size_t i;

	if (n == 0)
		return;
	/* Serialise outside the lock: the records belong to this request. */
	texts = sim_xmalloc(n * sizeof(*texts));
	for (i = 0; i < n; i++) {
		texts[i] = json_dumps(json_array_get(records, i), JSON_COMPACT | JSON_ENCODE_ANY);
		if (texts[i] == NULL)
			sim_die("json_dumps: out of memory");
	}
	pthread_mutex_lock(&S.lock);
	e = entry_get(S.services, service);
	for (i = 0; i < n; i++) {
		if (e->n_records >= sim_config.keep_records) {
			e->records_dropped++;
			free(texts[i]);
			continue;
		}
		if (e->n_records == e->cap_records) {
			e->cap_records = e->cap_records ? e->cap_records * 2 : 64;
			if (e->cap_records > sim_config.keep_records)
				e->cap_records = sim_config.keep_records;
			e->records = sim_xrealloc(e->records, e->cap_records * sizeof(*e->records));
		}
		e->records[e->n_records++] = texts[i];
	}
	pthread_mutex_unlock(&S.lock);
	free(texts);
}

/* ---- /_sim/stats ---------------------------------------------------- */

static json_t *entry_json(const struct entry *e)
{
	json_t *st = json_object();
	json_t *o;

	if (st == NULL)
		sim_die("json: out of memory");
	for (unsigned i = 0; i < e->n_status; i++) {
		char code[16];

		snprintf(code, sizeof(code), "%u", e->status[i].status);
		json_object_set_new(st, code, json_integer((json_int_t)e->status[i].n));
	}
	if (e->status_other > 0)
		json_object_set_new(st, "other", json_integer((json_int_t)e->status_other));
	o = json_pack("{s:I, s:o}", "count", (json_int_t)e->count, "status", st);
	if (o == NULL)
		sim_die("json_pack: out of memory");
	return o;
}

static int add_entry(const char *key, void *value, void *ud)
{
	json_object_set_new(ud, key, entry_json(value));
	return 0;
}

/* Lock held. */
static json_t *requests_json(const char *service, const struct entry *e)
{
	json_t *a = json_array();
	size_t start = (e->log_next + REQUEST_LOG - e->log_n) % REQUEST_LOG;

	if (a == NULL)
		sim_die("json: out of memory");
	for (size_t k = 0; k < e->log_n; k++) {
		const struct req_entry *r = &e->log[(start + k) % REQUEST_LOG];
		const char *fault = sim_fault_name((enum sim_fault)r->fault);
		json_t *o =
			json_pack("{s:I, s:s, s:I, s:o, s:f}", "seq", (json_int_t)r->seq, "service",
				  service, "status", (json_int_t)r->status, "fault",
				  fault ? json_string(fault) : json_null(), "elapsed_ms",
				  (double)r->elapsed_us / 1000.0); /* exact to the microsecond */

		if (o == NULL)
			sim_die("json_pack: out of memory");
		json_array_append_new(a, o);
	}
	return a;
}

static void get_stats(struct sim_request *rq, struct sim_reply *rp)
{
	const char *service = sim_request_query(rq, "service");
	json_t *o = json_object(), *faults = json_object();
	json_t *by_service = json_object(), *by_path = json_object();
	const struct entry *e = NULL;
	struct sim_buf b = {0};
	char *text;
	size_t len;

	if (o == NULL || faults == NULL || by_service == NULL || by_path == NULL)
		sim_die("json: out of memory");
	for (int f = SIM_FAULT_NONE + 1; f < SIM_FAULT__COUNT; f++)
		json_object_set_new(faults, sim_fault_name((enum sim_fault)f),
				    json_integer((json_int_t)atomic_load(&fault_counters[f])));

	pthread_mutex_lock(&S.lock);
	json_object_set_new(o, "requests_total", json_integer((json_int_t)S.requests_total));
	sim_map_each(S.services, add_entry, by_service);
	sim_map_each(S.paths, add_entry, by_path);
	json_object_set_new(o, "by_service", by_service);
	json_object_set_new(o, "by_path", by_path);
	for (int c = 0; c < SIM_CTR__COUNT; c++)
		json_object_set_new(o, counter_names[c],
				    json_integer((json_int_t)atomic_load(&counters[c])));
	json_object_set_new(o, "faults", faults);
	if (service != NULL) {
		json_t *js = json_string(service); /* NULL when not UTF-8 */

		e = sim_map_get(S.services, service);
		json_object_set_new(o, "service", js ? js : json_null());
		json_object_set_new(o, "received_count",
				    json_integer(e ? (json_int_t)e->n_records : 0));
		json_object_set_new(o, "received_dropped",
				    json_integer(e ? (json_int_t)e->records_dropped : 0));
		json_object_set_new(o, "requests",
				    e && e->log ? requests_json(service, e) : json_array());
	}
	text = json_dumps(o, SIM_JSON_DUMP_FLAGS);
	if (text == NULL)
		sim_die("json_dumps: out of memory");
	/* Splice the kept texts in as "received", without re-parsing them. */
	if (service != NULL) {
		len = strlen(text);
		sim_buf_add(&b, text, len - 1);
		sim_buf_adds(&b, ",\"received\":[");
		for (size_t i = 0; e != NULL && i < e->n_records; i++) {
			if (i > 0)
				sim_buf_add(&b, ",", 1);
			sim_buf_adds(&b, e->records[i]);
		}
		sim_buf_adds(&b, "]}");
		free(text);
		text = sim_buf_steal(&b, &len);
	} else {
		len = strlen(text);
	}
	pthread_mutex_unlock(&S.lock);
	json_decref(o);
	sim_reply_buffer(rp, MHD_HTTP_OK, "application/json; charset=utf-8", text, len);
}

static void stats_clear(void)
{
	sim_map_free(S.services, entry_free);
	sim_map_free(S.paths, entry_free);
	S.services = NULL;
	S.paths = NULL;
}

static void post_reset(struct sim_request *rq, struct sim_reply *rp)
{
	(void)rq;
	pthread_mutex_lock(&S.lock);
	stats_clear();
	S.services = sim_map_new();
	S.paths = sim_map_new();
	S.requests_total = 0;
	for (int c = 0; c < SIM_CTR__COUNT; c++)
		atomic_store(&counters[c], 0);
	for (int f = 0; f < SIM_FAULT__COUNT; f++)
		atomic_store(&fault_counters[f], 0);
	pthread_mutex_unlock(&S.lock);
	sim_log(SIM_LOG_INFO, "stats and received records cleared");
	sim_reply_json(rp, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

/* ---- module --------------------------------------------------------- */

static int stats_init(void)
{
	S.services = sim_map_new();
	S.paths = sim_map_new();
	sim_route_add(
		&(struct sim_route){"GET", "/_sim/stats", SIM_ROUTE_CONTROL, get_stats, NULL});
	sim_route_add(
		&(struct sim_route){"POST", "/_sim/reset", SIM_ROUTE_CONTROL, post_reset, NULL});
	return 0;
}

static void stats_fini(void)
{
	pthread_mutex_lock(&S.lock);
	stats_clear();
	pthread_mutex_unlock(&S.lock);
}

const struct sim_module sim_stats_module = {"stats", stats_init, stats_fini};
