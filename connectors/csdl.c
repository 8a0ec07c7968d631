/*
 * csdl (connector): the National Database on Administrative Procedures
 * (CSDL quốc gia về TTHC) behind the national integration adapter, for the
 * catalog flow (connectors/csdl.h, catalog-spec §1 and §6). Every operation
 * is one adapter_call on the configured endpoint; sessions, re-login on
 * expiry, concurrency, retries and the circuit breaker are the adapter's and
 * the HTTP core's. This file only checks the shape of what comes back.
 *
 * list, agencies and fields hand the caller the answer's result array as
 * the adapter sent it: an element that is not an object is not dropped here
 * (it is counted in the status as list_non_objects) but left for the flow to
 * judge, so that it can end up in the mismatch log with the rest of the
 * answer instead of disappearing. A result that is not an array at all is
 * CONN_FAIL. get insists on a record: result[0] must exist and be an object
 * whose MATTHC (when present) is the code asked for, and the answer's body
 * must fit in max_record_bytes; anything else is CONN_FAIL with the raw
 * body, the same request giving the same answer.
 *
 * The raw HTTP body is passed to every callback that has one (on success
 * too), borrowed for the callback's duration. Completions always come from
 * the loop: adapter_call never calls back from inside, and refusals of bad
 * arguments are delivered through the loop with conn_later.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "connector.h"
#include "csdl.h"
#include "http.h"
#include "log.h"
#include "util.h"

/* Longest procedure code accepted by get (national codes are ~25 bytes). */
#define CSDL_MAX_CODE_BYTES 128

struct csdl_opts {
	int endpoint; /* 0 share, 1 integration: order of the choices */
	int64_t max_record_bytes;
};

static const struct conf_option csdl_options[] = {
	{.key = "endpoint",
	 .type = CONF_ENUM,
	 .def = "share",
	 .choices = "share|integration",
	 .offset = offsetof(struct csdl_opts, endpoint),
	 .help = "Adapter endpoint the catalogue services are called on: share_endpoint (the "
		 "sharing service, where the national catalogue is published) or "
		 "integration_endpoint."},
	{.key = "max_record_bytes",
	 .type = CONF_SIZE,
	 .def = "1M",
	 .min = 1024,
	 .max = 64LL * 1024 * 1024,
	 .offset = offsetof(struct csdl_opts, max_record_bytes),
	 .help = "Largest answer accepted for one procedure (LayThuTuc); a larger one fails "
		 "that procedure. Keep it below the HTTP max_response_bytes."},
	CONF_OPTION_END,
};

enum csdl_svc { CSDL_LIST, CSDL_GET, CSDL_AGENCIES, CSDL_FIELDS, CSDL_SVC_COUNT };

static const char *const csdl_service_name[CSDL_SVC_COUNT] = {
	[CSDL_LIST] = "LayDanhSachTTHC",
	[CSDL_GET] = "LayThuTuc",
	[CSDL_AGENCIES] = "LayDanhMucCoQuan",
	[CSDL_FIELDS] = "LayDanhMucLinhVuc",
};

/*
 * One operation in progress, pending on its connector's list. later.owner
 * is the struct csdl, NULL once the connector was freed: the adapter still
 * calls back (cancelled) and the op then only frees itself.
 */
struct csdl_op {
	struct conn_later later;
	enum csdl_svc svc;
	csdl_list_cb list_done;	    /* list, agencies, fields */
	csdl_record_cb record_done; /* get */
	void *ud;
	char *code; /* get: the code asked for */
	char *msg;  /* a local answer (bad arguments) through the loop */
};

struct csdl_counts {
	uint64_t calls, ok, retry, fail;
};

/* c->priv. Owns everything but c. */
struct csdl {
	struct conn *c;
	char *field;			/* "CONNECTOR=name" */
	struct conn_later_list pending; /* of struct csdl_op */
	struct csdl_counts counts[CSDL_SVC_COUNT];
	int64_t last_list_size; /* LayDanhSachTTHC; -1 before the first success */
	uint64_t list_non_objects;
	int64_t last_list_ms;
};

#define CSDL_FIELDS(cs) ((const char *const[]){(cs)->field, NULL})

/* The JSON type of j as a noun, for messages. */
/* ---- operations ------------------------------------------------------- */

static void csdl_op_free(struct csdl_op *op)
{
	if (!op)
		return;
	conn_later_remove(&op->later);
	free(op->code);
	free(op->msg);
	free(op);
}

static void csdl_op_release(struct conn_later *l)
{
	csdl_op_free(conn_later_entry(l, struct csdl_op, later));
}

static struct csdl_op *csdl_op_new(struct csdl *cs, enum csdl_svc svc)
{
	struct csdl_op *op = xcalloc(1, sizeof(*op));
	op->svc = svc;
	conn_later_add(&cs->pending, &op->later, cs, csdl_op_release);
	return op;
}

/* Delivers to whichever callback op has. Touches nothing of op after. */
static void csdl_deliver(struct conn *c, csdl_list_cb list_done, csdl_record_cb record_done,
			 void *ud, enum conn_outcome o, json_t *j, const char *raw, const char *why)
{
	if (list_done)
		list_done(c, o, j, raw, why, ud);
	else
		record_done(c, o, j, raw, why, ud);
}

static void csdl_answer(struct conn_later *l)
{
	struct csdl_op *op = conn_later_entry(l, struct csdl_op, later);
	struct conn *c = ((struct csdl *)l->owner)->c;

	csdl_deliver(c, op->list_done, op->record_done, op->ud, CONN_FAIL, NULL, NULL, op->msg);
}

/* Answers CONN_FAIL with msg (stolen) from the loop. Returns 0 or negative. */
static int csdl_fail_later(struct csdl *cs, enum csdl_svc svc, csdl_list_cb list_done,
			   csdl_record_cb record_done, void *ud, char *msg)
{
	struct csdl_op *op = csdl_op_new(cs, svc);
	int r;

	op->list_done = list_done;
	op->record_done = record_done;
	op->ud = ud;
	op->msg = msg;
	r = conn_later_defer(&op->later, cs->c, csdl_answer);
	if (r < 0)
		csdl_op_free(op);
	else
		cs->counts[svc].fail++;
	return r;
}

/* ---- answers ---------------------------------------------------------- */

/* Checks a list answer. Returns the outcome; sets *why on failure. */
static enum conn_outcome csdl_check_list(struct csdl *cs, enum csdl_svc svc, json_t *result,
					 char **why)
{
	size_t i;
	json_t *e;

	if (!json_is_array(result)) {
		*why = xasprintf("%s: result is not a list (%s)", csdl_service_name[svc],
				 result ? conn_json_kind(result) : "absent");
		return CONN_FAIL;
	}
	json_array_foreach (result, i, e) {
		if (!json_is_object(e))
			cs->list_non_objects++;
	}
	if (svc == CSDL_LIST) {
		cs->last_list_size = (int64_t)json_array_size(result);
		cs->last_list_ms = now_wall_ms();
	}
	return CONN_OK;
}

/* Trims ASCII spaces of s into buf (bounded); returns buf. */
static const char *csdl_trim(const char *s, char *buf, size_t len)
{
	size_t n;
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	n = strlen(s);
	while (n > 0 &&
	       (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	snprintf(buf, len, "%.*s", (int)LT_MIN(n, len - 1), s);
	return buf;
}

/*
 * Checks a LayThuTuc answer for code. Returns the outcome and, on success,
 * *record (borrowed from result); sets *why on failure.
 */
static enum conn_outcome csdl_check_record(const struct csdl *cs, const char *code,
					   const struct adapter_answer *a, json_t **record,
					   char **why)
{
	const struct csdl_opts *opt = cs->c->opts;
	json_t *result = a->result, *rec;
	const char *matthc;
	char got[CSDL_MAX_CODE_BYTES + 1], want[CSDL_MAX_CODE_BYTES + 1];
	size_t wl;

	if (a->raw && (int64_t)a->raw->body_len > opt->max_record_bytes) {
		*why = xasprintf("procedure %s: the answer is %zu bytes, over max_record_bytes "
				 "(%lld)",
				 code, a->raw->body_len, (long long)opt->max_record_bytes);
		return CONN_FAIL;
	}
	if (!json_is_array(result)) {
		*why = xasprintf("procedure %s: result is not a list (%s)", code,
				 result ? conn_json_kind(result) : "absent");
		return CONN_FAIL;
	}
	if (json_array_size(result) == 0) {
		if (a->message && *a->message)
			*why = xasprintf("procedure %s not found (%.200s)", code, a->message);
		else
			*why = xasprintf("procedure %s not found", code);
		return CONN_FAIL;
	}
	rec = json_array_get(result, 0);
	if (!json_is_object(rec)) {
		*why = xasprintf("procedure %s: result[0] is %s, not a record", code,
				 conn_json_kind(rec));
		return CONN_FAIL;
	}
	/*
	 * An answer about another procedure would be stored under the wrong
	 * code. A short code asked for (1.001193) may be answered with the full
	 * one (1.001193.000.00.00.H31). A record without MATTHC is the
	 * mapping's to reject.
	 */
	matthc = json_string_value(json_object_get(rec, "MATTHC"));
	if (matthc) {
		csdl_trim(matthc, got, sizeof(got));
		csdl_trim(code, want, sizeof(want));
		wl = strlen(want);
		if (strcmp(got, want) != 0 && !(strncmp(got, want, wl) == 0 && got[wl] == '.')) {
			*why = xasprintf("procedure %s: the answer is the record of %.100s", code,
					 got);
			return CONN_FAIL;
		}
	}
	*record = rec;
	return CONN_OK;
}

static void csdl_call_done(const struct adapter_answer *a, enum http_outcome o, const char *why,
			   void *ud)
{
	struct csdl_op *op = ud;
	struct csdl *cs = op->later.owner;
	enum csdl_svc svc = op->svc;
	csdl_list_cb list_done = op->list_done;
	csdl_record_cb record_done = op->record_done;
	void *done_ud = op->ud;
	enum conn_outcome co = conn_outcome_from_http(o);
	const char *raw = a && a->raw && a->raw->body_len ? a->raw->body : NULL;
	json_t *j = NULL;
	char *msg = NULL;
	struct conn *c;

	if (!cs) {
		/* The connector is gone: nobody waits for this answer. */
		csdl_op_free(op);
		return;
	}
	c = cs->c;
	if (co != CONN_OK) {
		const char *w = why && *why ? why : http_outcome_name(o);
		msg = svc == CSDL_GET ? xasprintf("%s %s: %s", csdl_service_name[svc], op->code, w)
				      : xasprintf("%s: %s", csdl_service_name[svc], w);
	} else if (svc == CSDL_GET) {
		co = csdl_check_record(cs, op->code, a, &j, &msg);
	} else {
		co = csdl_check_list(cs, svc, a->result, &msg);
		if (co == CONN_OK)
			j = a->result;
	}
	switch (co) {
	case CONN_OK: cs->counts[svc].ok++; break;
	case CONN_RETRY: cs->counts[svc].retry++; break;
	case CONN_FAIL: cs->counts[svc].fail++; break;
	}
	if (co != CONN_OK)
		log_fields(LOG_DEBUG, CSDL_FIELDS(cs), "%s", msg);
	csdl_op_free(op);
	/* a (and j, borrowed from it) stays valid until we return. */
	csdl_deliver(c, list_done, record_done, done_ud, co, j, raw, msg);
	free(msg);
}

/* Starts one call. params is stolen. Returns 0 or negative (nothing called). */
static int csdl_call(struct conn *c, enum csdl_svc svc, json_t *params, const char *code,
		     csdl_list_cb list_done, csdl_record_cb record_done, void *ud)
{
	struct csdl *cs = c->priv;
	const struct csdl_opts *opt = c->opts;
	struct csdl_op *op;
	int r;

	op = csdl_op_new(cs, svc);
	op->list_done = list_done;
	op->record_done = record_done;
	op->ud = ud;
	op->code = code ? xstrdup(code) : NULL;
	r = adapter_call(c->adapter, opt->endpoint == 0 ? ADAPTER_SHARE : ADAPTER_INTEGRATION,
			 csdl_service_name[svc], params, NULL, csdl_call_done, op);
	if (r < 0) {
		csdl_op_free(op);
		return r;
	}
	cs->counts[svc].calls++;
	return 0;
}

static int csdl_list_of(struct conn *c, enum csdl_svc svc, csdl_list_cb done, void *ud)
{
	if (!c || !c->priv || !done)
		return -EINVAL;
	return csdl_call(c, svc, NULL, NULL, done, NULL, ud);
}

static int csdl_list(struct conn *c, csdl_list_cb done, void *ud)
{
	return csdl_list_of(c, CSDL_LIST, done, ud);
}

static int csdl_agencies(struct conn *c, csdl_list_cb done, void *ud)
{
	return csdl_list_of(c, CSDL_AGENCIES, done, ud);
}

static int csdl_fields(struct conn *c, csdl_list_cb done, void *ud)
{
	return csdl_list_of(c, CSDL_FIELDS, done, ud);
}

static int csdl_get(struct conn *c, const char *matthc, csdl_record_cb done, void *ud)
{
	struct csdl *cs;
	size_t len;

	if (!c || !c->priv || !done)
		return -EINVAL;
	cs = c->priv;
	len = matthc ? strlen(matthc) : 0;
	if (len == 0 || len > CSDL_MAX_CODE_BYTES)
		return csdl_fail_later(
			cs, CSDL_GET, NULL, done, ud,
			xasprintf("LayThuTuc: %s procedure code", len ? "over-long" : "empty"));
	return csdl_call(c, CSDL_GET, json_pack("{s:s}", "maTTHC", matthc), matthc, NULL, done, ud);
}

/* ---- status, lifecycle ------------------------------------------------ */

static json_t *csdl_status(struct conn *c)
{
	struct csdl *cs = c->priv;
	json_t *j = json_object(), *svcs = json_object();

	json_object_set_new(j, "session",
			    json_boolean(c->adapter && adapter_has_session(c->adapter)));
	json_object_set_new(j, "logins",
			    json_integer(c->adapter ? (json_int_t)adapter_logins(c->adapter) : 0));
	if (!cs)
		return j;
	for (int i = 0; i < CSDL_SVC_COUNT; i++) {
		const struct csdl_counts *k = &cs->counts[i];
		json_object_set_new(svcs, csdl_service_name[i],
				    json_pack("{s:I,s:I,s:I,s:I}", "calls", (json_int_t)k->calls,
					      "ok", (json_int_t)k->ok, "retry",
					      (json_int_t)k->retry, "failed", (json_int_t)k->fail));
	}
	json_object_set_new(j, "services", svcs);
	json_object_set_new(j, "last_list_size",
			    cs->last_list_size >= 0 ? json_integer(cs->last_list_size)
						    : json_null());
	json_object_set_new(j, "last_list_at", fmt_time_json(cs->last_list_ms));
	json_object_set_new(j, "list_non_objects", json_integer((json_int_t)cs->list_non_objects));
	return j;
}

static void csdl_free(struct conn *c)
{
	struct csdl *cs = c->priv;
	if (!cs)
		return;
	/* Calls in flight come back cancelled when the core frees c->adapter. */
	conn_later_cancel_all(&cs->pending);
	free(cs->field);
	free(cs);
	c->priv = NULL;
}

static int csdl_init(struct conn *c, bool check_only, char **err)
{
	const struct csdl_opts *opt = c->opts;
	const char *name = c->name ? c->name : "?";
	struct csdl *cs;

	if (opt->endpoint != 0 && opt->endpoint != 1) {
		*err = xasprintf("connector.%s: endpoint must be share or integration", name);
		return -EINVAL;
	}
	if (opt->max_record_bytes < 1024) {
		*err = xasprintf("connector.%s: max_record_bytes must be at least 1k", name);
		return -EINVAL;
	}
	if (c->http) {
		const struct http_opts *ho = http_client_opts(c->http);
		if (ho->max_response_bytes > 0 && opt->max_record_bytes > ho->max_response_bytes) {
			*err = xasprintf("connector.%s: max_record_bytes (%lld) is larger than "
					 "max_response_bytes (%lld): the HTTP core would cut a "
					 "record before it could be judged",
					 name, (long long)opt->max_record_bytes,
					 (long long)ho->max_response_bytes);
			return -EINVAL;
		}
	}
	if (check_only)
		return 0;
	if (!c->adapter) {
		*err = xasprintf("connector.%s: no adapter client (url and adapter keys)", name);
		return -EINVAL;
	}
	cs = xcalloc(1, sizeof(*cs));
	cs->c = c;
	cs->field = xasprintf("CONNECTOR=%s", name);
	cs->last_list_size = -1;
	c->priv = cs;
	return 0;
}

static const struct csdl_ops csdl_ops = {
	.list = csdl_list,
	.get = csdl_get,
	.agencies = csdl_agencies,
	.fields = csdl_fields,
};

const struct connector conn_csdl = {
	.abi_version = CONN_ABI_VERSION,
	.name = "csdl",
	.description = "The National Database on Administrative Procedures (CSDL TTHC) "
		       "through the national adapter: procedure list and records, agencies, "
		       "fields",
	.flags = CONN_F_HTTP | CONN_F_ADAPTER,
	.options = csdl_options,
	.opts_size = sizeof(struct csdl_opts),
	.init = csdl_init,
	.free = csdl_free,
	.status = csdl_status,
	.ext = &csdl_ops,
};
