/*
 * metrics: every metric of the daemon in the Prometheus text exposition
 * format 0.0.4 (daemon_metrics_text(), served by the control socket's
 * `metrics` command and printed by `lienthongctl metrics`).
 *
 * Values are read from the state the modules already keep (struct daemon,
 * conn_stats, http_stats, struct flow, the store): there are no separate
 * counters to keep in sync. Per-connector and per-flow metrics are rows of
 * tables (name, type, help, one label, field), so a new metric is one row;
 * rows of the same family must be adjacent because the format wants one
 * HELP/TYPE block per family with all its samples after it.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "daemon.h"
#include "flow.h"
#include "http.h"
#include "store.h"
#include "util.h"

#ifndef LT_VERSION
#define LT_VERSION "unknown"
#endif

/* ---- exposition helpers ---------------------------------------------- */

/* Appends s escaped for a label value (\, " and newline) or HELP (\ and newline). */
static void add_escaped(struct dynbuf *b, const char *s, bool quote)
{
	for (; s && *s; s++) {
		if (*s == '\\')
			dynbuf_add(b, "\\\\", 2);
		else if (*s == '\n')
			dynbuf_add(b, "\\n", 2);
		else if (*s == '"' && quote)
			dynbuf_add(b, "\\\"", 2);
		else
			dynbuf_add(b, s, 1);
	}
}

static void family(struct dynbuf *b, const char *name, const char *type, const char *help)
{
	dynbuf_printf(b, "# HELP %s ", name);
	add_escaped(b, help, false);
	dynbuf_printf(b, "\n# TYPE %s %s\n", name, type);
}

static void add_value(struct dynbuf *b, double v)
{
	if (isnan(v))
		dynbuf_addstr(b, "NaN");
	else if (isinf(v))
		dynbuf_addstr(b, v > 0 ? "+Inf" : "-Inf");
	else if (v == (double)(int64_t)v && fabs(v) < 9007199254740992.0)
		dynbuf_printf(b, "%lld", (long long)v);
	else
		dynbuf_printf(b, "%.15g", v);
}

/* One sample: name{k1="v1",...} value. Pairs whose key or value is NULL are left out. */
static void sample_kv(struct dynbuf *b, const char *name, double v, const char *const *kv,
		      size_t pairs)
{
	bool first = true;
	dynbuf_addstr(b, name);
	for (size_t i = 0; i < pairs; i++) {
		if (!kv[2 * i] || !kv[2 * i + 1])
			continue;
		dynbuf_printf(b, "%s%s=\"", first ? "{" : ",", kv[2 * i]);
		add_escaped(b, kv[2 * i + 1], true);
		dynbuf_add(b, "\"", 1);
		first = false;
	}
	dynbuf_addstr(b, first ? " " : "} ");
	add_value(b, v);
	dynbuf_add(b, "\n", 1);
}

/* The labels of a sample as sample_kv's last two arguments: LABELS("k1", v1, "k2", v2). */
#define LABELS(...)                                                                                \
	(const char *const[]){__VA_ARGS__}, LT_ARRAY_SIZE(((const char *const[]){__VA_ARGS__})) / 2

/* A family with one unlabelled sample. */
static void single(struct dynbuf *b, const char *name, const char *type, const char *help, double v)
{
	family(b, name, type, help);
	sample_kv(b, name, v, NULL, 0);
}

/* ---- table-driven per-object metrics ---------------------------------- */

enum field_kind {
	F_U64,	   /* uint64_t, as is */
	F_BOOL,	   /* bool, 1/0 */
	F_INT,	   /* int (enums), as is */
	F_DOUBLE,  /* double, as is */
	F_MS_TO_S, /* int64_t milliseconds (wall time), as seconds; 0 stays 0 */
	F_US_TO_S, /* uint64_t microseconds, as seconds */
};

struct field_metric {
	const char *name;
	const char *type;
	const char *help;
	const char *label_key; /* an extra label (outcome=, result=) or NULL */
	const char *label_val;
	size_t offset;
	enum field_kind kind;
};

static double field_value(const void *base, size_t off, enum field_kind kind)
{
	const char *p = (const char *)base + off;
	uint64_t u;
	int64_t i;
	int n;
	bool t;
	double dv;
	switch (kind) {
	case F_U64: memcpy(&u, p, sizeof(u)); return (double)u;
	case F_BOOL: memcpy(&t, p, sizeof(t)); return t ? 1 : 0;
	case F_INT: memcpy(&n, p, sizeof(n)); return n;
	case F_DOUBLE: memcpy(&dv, p, sizeof(dv)); return dv;
	case F_MS_TO_S: memcpy(&i, p, sizeof(i)); return i > 0 ? (double)i / 1000.0 : 0;
	case F_US_TO_S: memcpy(&u, p, sizeof(u)); return (double)u / 1e6;
	}
	return 0;
}

#define CONN_STAT(name, type, help, lk, lv, field, kind)                                           \
	{                                                                                          \
		name, type, help, lk, lv, offsetof(struct conn_stats, field), kind                 \
	}

static const struct field_metric conn_metrics[] = {
	CONN_STAT("lienthong_connector_operations_total", "counter",
		  "Operations of a connector by outcome.", "outcome", "ok", ops_ok, F_U64),
	CONN_STAT("lienthong_connector_operations_total", "counter", NULL, "outcome", "retry",
		  ops_retry, F_U64),
	CONN_STAT("lienthong_connector_operations_total", "counter", NULL, "outcome", "fail",
		  ops_fail, F_U64),
	CONN_STAT("lienthong_connector_last_success_timestamp_seconds", "gauge",
		  "Wall time of the connector's last successful operation (0: never).", NULL, NULL,
		  last_ok_ms, F_MS_TO_S),
	CONN_STAT("lienthong_connector_last_error_timestamp_seconds", "gauge",
		  "Wall time of the connector's last failed operation (0: never).", NULL, NULL,
		  last_err_ms, F_MS_TO_S),
};

#define HTTP_STAT(name, type, help, lk, lv, field, kind)                                           \
	{                                                                                          \
		name, type, help, lk, lv, offsetof(struct http_stats, field), kind                 \
	}

static const struct field_metric http_metrics[] = {
	HTTP_STAT("lienthong_http_requests_total", "counter",
		  "HTTP attempts of a connector by outcome.", "outcome", "ok", ok, F_U64),
	HTTP_STAT("lienthong_http_requests_total", "counter", NULL, "outcome", "retry", retry,
		  F_U64),
	HTTP_STAT("lienthong_http_requests_total", "counter", NULL, "outcome", "fail", fail, F_U64),
	HTTP_STAT("lienthong_http_retries_total", "counter",
		  "HTTP attempts that repeated an earlier one.", NULL, NULL, retries, F_U64),
	HTTP_STAT("lienthong_http_rate_limited_total", "counter",
		  "429 answers (honoured with Retry-After; they do not trip the breaker).", NULL,
		  NULL, rate_limited, F_U64),
	HTTP_STAT("lienthong_http_in_flight", "gauge", "HTTP requests being transferred.", NULL,
		  NULL, in_flight, F_U64),
	HTTP_STAT("lienthong_http_queued", "gauge", "HTTP requests waiting for a slot or a retry.",
		  NULL, NULL, queued, F_U64),
	HTTP_STAT("lienthong_http_circuit_state", "gauge",
		  "Circuit breaker: 0 closed, 1 open, 2 half-open.", NULL, NULL, circuit, F_INT),
	HTTP_STAT("lienthong_http_circuit_opens_total", "counter",
		  "Times the circuit breaker opened.", NULL, NULL, circuit_opens, F_U64),
	HTTP_STAT("lienthong_http_circuit_rejects_total", "counter",
		  "Requests failed at once because the circuit was open.", NULL, NULL,
		  circuit_rejects, F_U64),
};

#define FLOW_FIELD(name, type, help, lk, lv, field, kind)                                          \
	{                                                                                          \
		name, type, help, lk, lv, offsetof(struct flow, field), kind                       \
	}

static const struct field_metric flow_metrics[] = {
	FLOW_FIELD("lienthong_flow_runs_total", "counter", "Passes of a flow by result.", "result",
		   "ok", runs_ok, F_U64),
	FLOW_FIELD("lienthong_flow_runs_total", "counter", NULL, "result", "failed", runs_failed,
		   F_U64),
	FLOW_FIELD("lienthong_flow_items_total", "counter", "Records a flow handled, by result.",
		   "result", "ok", items_ok, F_U64),
	FLOW_FIELD("lienthong_flow_items_total", "counter", NULL, "result", "failed", items_failed,
		   F_U64),
	FLOW_FIELD("lienthong_flow_running", "gauge", "1 while a pass of the flow runs.", NULL,
		   NULL, running, F_BOOL),
	FLOW_FIELD("lienthong_flow_paused", "gauge", "1 while the flow is paused.", NULL, NULL,
		   paused, F_BOOL),
	FLOW_FIELD("lienthong_flow_last_success_timestamp_seconds", "gauge",
		   "Wall time the last successful pass ended (0: never).", NULL, NULL, last_ok_ms,
		   F_MS_TO_S),
	FLOW_FIELD("lienthong_flow_last_duration_seconds", "gauge", "Duration of the last pass.",
		   NULL, NULL, last_duration_us, F_US_TO_S),
};

/*
 * The labels of object i for a table: returns false to skip the object.
 * base gets the struct the offsets point into.
 */
typedef bool (*object_fn)(struct daemon *d, size_t i, const void **base, const char **k1,
			  const char **v1, const char **k2, const char **v2, void *scratch);

static const char *conn_type_name(const struct conn *c)
{
	return c->type && c->type->name ? c->type->name : "unknown";
}

static bool conn_object(struct daemon *d, size_t i, const void **base, const char **k1,
			const char **v1, const char **k2, const char **v2, void *scratch)
{
	(void)scratch;
	struct conn *c = d->conns[i];
	*base = &c->stats;
	*k1 = "connector", *v1 = c->name, *k2 = "type", *v2 = conn_type_name(c);
	return true;
}

static bool http_object(struct daemon *d, size_t i, const void **base, const char **k1,
			const char **v1, const char **k2, const char **v2, void *scratch)
{
	struct conn *c = d->conns[i];
	if (!c->http)
		return false;
	http_client_stats(c->http, scratch);
	*base = scratch;
	*k1 = "connector", *v1 = c->name, *k2 = NULL, *v2 = NULL;
	return true;
}

static bool flow_object(struct daemon *d, size_t i, const void **base, const char **k1,
			const char **v1, const char **k2, const char **v2, void *scratch)
{
	(void)scratch;
	struct flow *f = d->flows[i];
	*base = f;
	*k1 = "flow", *v1 = f->name;
	*k2 = "type", *v2 = f->type && f->type->name ? f->type->name : "unknown";
	return true;
}

/* Emits every row of table for objects 0..n-1, one HELP/TYPE per family. */
static void table_metrics(struct dynbuf *b, struct daemon *d, const struct field_metric *t,
			  size_t rows, size_t n, object_fn obj)
{
	struct http_stats scratch;
	for (size_t r = 0; r < rows; r++) {
		if (n == 0)
			return;
		if (r == 0 || strcmp(t[r].name, t[r - 1].name) != 0)
			family(b, t[r].name, t[r].type, t[r].help);
		for (size_t i = 0; i < n; i++) {
			const void *base;
			const char *k1, *v1, *k2, *v2;
			memset(&scratch, 0, sizeof(scratch));
			if (!obj(d, i, &base, &k1, &v1, &k2, &v2, &scratch))
				continue;
			const char *kv[] = {k1, v1, k2, v2, t[r].label_key, t[r].label_val};
			sample_kv(b, t[r].name, field_value(base, t[r].offset, t[r].kind), kv, 3);
		}
	}
}

/* ---- families that need more than a field ------------------------------ */

static size_t http_conns(const struct daemon *d)
{
	size_t n = 0;
	for (size_t i = 0; i < d->n_conns; i++)
		n += d->conns[i]->http != NULL;
	return n;
}

static void http_histogram(struct dynbuf *b, struct daemon *d)
{
	static const char name[] = "lienthong_http_request_duration_seconds";
	if (!http_conns(d))
		return;
	family(b, name, "histogram", "Duration of HTTP attempts.");
	for (size_t i = 0; i < d->n_conns; i++) {
		struct conn *c = d->conns[i];
		struct http_stats st;
		uint64_t cum = 0;
		if (!c->http)
			continue;
		memset(&st, 0, sizeof(st));
		http_client_stats(c->http, &st);
		for (size_t k = 0; k < HTTP_LATENCY_BUCKETS; k++) {
			char le[32];
			cum += st.latency_count[k];
			if (k == HTTP_LATENCY_BUCKETS - 1 || isinf(http_latency_bounds_s[k]))
				snprintf(le, sizeof(le), "+Inf");
			else
				snprintf(le, sizeof(le), "%g", http_latency_bounds_s[k]);
			sample_kv(b, "lienthong_http_request_duration_seconds_bucket", (double)cum,
				  LABELS("connector", c->name, "le", le));
			if (!strcmp(le, "+Inf"))
				break;
		}
		sample_kv(b, "lienthong_http_request_duration_seconds_sum", st.latency_sum_s,
			  LABELS("connector", c->name));
		sample_kv(b, "lienthong_http_request_duration_seconds_count", (double)cum,
			  LABELS("connector", c->name));
	}
}

static void flow_histogram(struct dynbuf *b, struct daemon *d)
{
	static const char name[] = "lienthong_flow_latency_seconds";
	bool any = false;
	for (size_t i = 0; i < d->n_flows; i++) {
		const struct flow *f = d->flows[i];
		uint64_t cum = 0;
		if (!f->type || !f->type->latency_help)
			continue;
		if (!any)
			family(b, name, "histogram",
			       "End-to-end latency of the items a flow delivers (dossier: from the "
			       "change read from the province to the portal's acknowledgement).");
		any = true;
		for (size_t k = 0; k < FLOW_LATENCY_BUCKETS; k++) {
			char le[32];
			cum += f->latency.count[k];
			if (isinf(flow_latency_bounds_s[k]))
				snprintf(le, sizeof(le), "+Inf");
			else
				snprintf(le, sizeof(le), "%g", flow_latency_bounds_s[k]);
			sample_kv(b, "lienthong_flow_latency_seconds_bucket", (double)cum,
				  LABELS("flow", f->name, "le", le));
		}
		sample_kv(b, "lienthong_flow_latency_seconds_sum", f->latency.sum_s,
			  LABELS("flow", f->name));
		sample_kv(b, "lienthong_flow_latency_seconds_count", (double)cum,
			  LABELS("flow", f->name));
	}
}

/* The dossier outbox, from its counters (no scan). */
static void outbox_metrics(struct dynbuf *b, struct daemon *d)
{
	json_t *q = store_outbox_queue(d->store, now_wall_ms());
	if (!q)
		return;
	single(b, "lienthong_outbox_dossiers_waiting", "gauge",
	       "Dossiers with changes not yet acknowledged by the national portal.",
	       json_number_value(json_object_get(q, "depth")));
	family(b, "lienthong_outbox_rows", "gauge", "Progress rows in the outbox, by state.");
	sample_kv(b, "lienthong_outbox_rows", json_number_value(json_object_get(q, "rows_pending")),
		  LABELS("state", "pending"));
	sample_kv(b, "lienthong_outbox_rows", json_number_value(json_object_get(q, "rows_sending")),
		  LABELS("state", "sending"));
	single(b, "lienthong_outbox_oldest_age_seconds", "gauge",
	       "How long the longest-waiting dossier has had work not acknowledged (0 when none).",
	       json_number_value(json_object_get(q, "oldest_age_s")));
	single(b, "lienthong_outbox_dead_letters", "gauge",
	       "Dead letters waiting for an operator (retry or drop).",
	       json_number_value(json_object_get(q, "dead_letters")));
	json_decref(q);
}

static void store_metrics(struct dynbuf *b, struct daemon *d)
{
	single(b, "lienthong_store_healthy", "gauge",
	       "1 when the store accepts writes, 0 when it is full or failing.",
	       d->store && store_health(d->store, NULL) == STORE_OK);
	if (!d->store)
		return;
	single(b, "lienthong_store_size_bytes", "gauge", "Size of the database and its WAL.",
	       (double)store_size_bytes(d->store));
	json_t *counts = store_mismatch_counts(d->store);
	if (json_is_object(counts) && json_object_size(counts)) {
		const char *state;
		json_t *v;
		family(b, "lienthong_mismatches", "gauge", "Mismatches in the log, by state.");
		json_object_foreach (counts, state, v) {
			sample_kv(b, "lienthong_mismatches", json_number_value(v),
				  LABELS("state", state));
		}
	}
	json_decref(counts);
	outbox_metrics(b, d);
}

char *daemon_metrics_text(struct daemon *d)
{
	struct dynbuf b;
	dynbuf_init(&b, 0);

	single(&b, "lienthong_up", "gauge", "1 while lienthongd is running.", 1);
	single(&b, "lienthong_uptime_seconds", "gauge", "Seconds since lienthongd started.",
	       d->start_mono_us ? (double)(now_mono_us() - d->start_mono_us) / 1e6 : 0);
	family(&b, "lienthong_build_info", "gauge", "The version of lienthongd, as a label.");
	sample_kv(&b, "lienthong_build_info", 1, LABELS("version", LT_VERSION));
	family(&b, "lienthong_config_reloads_total", "counter", "Configuration reloads by result.");
	sample_kv(&b, "lienthong_config_reloads_total", (double)d->reloads_ok,
		  LABELS("result", "ok"));
	sample_kv(&b, "lienthong_config_reloads_total", (double)d->reloads_failed,
		  LABELS("result", "failed"));
	single(&b, "lienthong_control_clients", "gauge", "Clients connected to the control socket.",
	       control_clients(d->ctl));
	store_metrics(&b, d);

	table_metrics(&b, d, conn_metrics, LT_ARRAY_SIZE(conn_metrics), d->n_conns, conn_object);
	table_metrics(&b, d, http_metrics, LT_ARRAY_SIZE(http_metrics),
		      http_conns(d) ? d->n_conns : 0, http_object);
	http_histogram(&b, d);
	table_metrics(&b, d, flow_metrics, LT_ARRAY_SIZE(flow_metrics), d->n_flows, flow_object);
	flow_histogram(&b, d);

	return dynbuf_steal(&b, NULL);
}
