/*
 * adapter (connector): a generic connector for any service of the national
 * integration adapter (shared/domain/INTERFACES.md §1), configured rather
 * than coded: which service a push calls and which service a pull reads.
 * The envelope, sessions, OAuth2 and the loose answers are daemon/adapter.c's
 * (c->adapter, made by the core from the [connector.X] adapter keys); this
 * file only turns records into calls and answers into batches.
 *
 * push sends the records as {"data":[...]} in slices of push_batch records,
 * up to push_parallel calls at once, and completes with the worst outcome;
 * after the first slice that is not OK no further slice is started.
 *
 * pull makes one call and its result[] is the batch. The adapter has no
 * cursor, so a pull is a snapshot: once a batch is acknowledged the next
 * pull answers "nothing more now" (ending a relay pass) and the one after
 * calls again. A batch never acknowledged (the sink asked to retry) is
 * fetched again by the next pull.
 *
 * Completions are always delivered from the loop: adapter_call's callbacks
 * come from it, and local answers go through the loop with conn_later.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "connector.h"
#include "http.h"
#include "log.h"
#include "util.h"

struct aconn_opts {
	char *push_service;
	int push_endpoint;
	int64_t push_batch;
	int64_t push_parallel;
	char *pull_service;
	int pull_endpoint;
	char *pull_params;
};

static const struct conf_option aconn_options[] = {
	{.key = "push_service",
	 .type = CONF_STRING,
	 .offset = offsetof(struct aconn_opts, push_service),
	 .help = "Adapter service a push calls with {\"data\": [records]}, e.g. Echo. "
		 "Unset: this connector is not a sink."},
	{.key = "push_endpoint",
	 .type = CONF_ENUM,
	 .def = "integration",
	 .choices = "integration|share",
	 .offset = offsetof(struct aconn_opts, push_endpoint),
	 .help = "Adapter endpoint of push calls: integration_endpoint or share_endpoint."},
	{.key = "push_batch",
	 .type = CONF_INT,
	 .def = "100",
	 .min = 1,
	 .max = 10000,
	 .offset = offsetof(struct aconn_opts, push_batch),
	 .help = "Records per push call; a larger push is sent in several calls."},
	{.key = "push_parallel",
	 .type = CONF_INT,
	 .def = "1",
	 .min = 1,
	 .max = 16,
	 .offset = offsetof(struct aconn_opts, push_parallel),
	 .help = "Push calls of one push in flight at once. 1 keeps the records in order."},
	{.key = "pull_service",
	 .type = CONF_STRING,
	 .offset = offsetof(struct aconn_opts, pull_service),
	 .help = "Adapter service whose result[] a pull returns as the batch. Unset: this "
		 "connector is not a source."},
	{.key = "pull_endpoint",
	 .type = CONF_ENUM,
	 .def = "share",
	 .choices = "integration|share",
	 .offset = offsetof(struct aconn_opts, pull_endpoint),
	 .help = "Adapter endpoint of the pull call: integration_endpoint or share_endpoint."},
	{.key = "pull_params",
	 .type = CONF_STRING,
	 .offset = offsetof(struct aconn_opts, pull_params),
	 .help = "A JSON object merged into the pull call's envelope, e.g. "
		 "{\"maTTHC\": \"1.001193\"}."},
	CONF_OPTION_END,
};

/* Whether the last pulled snapshot was handed out and acknowledged. */
enum aconn_pull_state { ACONN_PULL_IDLE, ACONN_PULL_OUT, ACONN_PULL_ACKED };

/*
 * One operation in progress, pending on its connector's list. later.owner
 * is the struct aconn, NULL once the connector was freed: the adapter still
 * calls back (cancelled), and the op then only frees itself.
 */
struct aconn_op {
	struct conn_later later;
	conn_pull_cb pull_done; /* pull and local pull answers */
	conn_done_cb done;	/* push, probe and local answers */
	void *ud;
	/* push */
	json_t *records; /* own ref */
	size_t n, next_i, sent;
	unsigned in_flight;
	enum conn_outcome worst;
	char *why;
	/* local answer through the loop */
	enum conn_outcome o;
	char *msg;
};

/* One push call: records [from, from + n) of op. */
struct aconn_slice {
	struct aconn_op *op;
	size_t from, n;
};

/* c->priv. Owns everything but c. */
struct aconn {
	struct conn *c;
	char *field; /* "CONNECTOR=name" */
	json_t *pull_params;
	enum aconn_pull_state pull_state;
	struct conn_later_list pending; /* of struct aconn_op */
	uint64_t calls, records_pushed, records_pulled;
};

#define ACONN_FIELDS(ac) ((const char *const[]){(ac)->field, NULL})

static void aconn_op_free(struct aconn_op *op)
{
	if (!op)
		return;
	conn_later_remove(&op->later);
	json_decref(op->records);
	free(op->why);
	free(op->msg);
	free(op);
}

static void aconn_op_release(struct conn_later *l)
{
	aconn_op_free(conn_later_entry(l, struct aconn_op, later));
}

static struct aconn_op *aconn_op_new(struct aconn *ac)
{
	struct aconn_op *op = xcalloc(1, sizeof(*op));
	conn_later_add(&ac->pending, &op->later, ac, aconn_op_release);
	return op;
}

/* ---- local answers through the loop ---------------------------------- */

static void aconn_answer(struct conn_later *l)
{
	struct aconn_op *op = conn_later_entry(l, struct aconn_op, later);
	struct conn *c = ((struct aconn *)l->owner)->c;

	if (op->pull_done)
		op->pull_done(c, op->o, NULL, op->msg, op->ud);
	else
		op->done(c, op->o, op->msg, op->ud);
}

/*
 * Answers o (with msg, stolen) from the loop: pull_done gets no batch.
 * Returns 0 or negative (then nothing is called).
 */
static int aconn_answer_later(struct aconn *ac, conn_pull_cb pull_done, conn_done_cb done, void *ud,
			      enum conn_outcome o, char *msg)
{
	struct aconn_op *op = aconn_op_new(ac);
	int r;

	op->pull_done = pull_done;
	op->done = done;
	op->ud = ud;
	op->o = o;
	op->msg = msg;
	r = conn_later_defer(&op->later, ac->c, aconn_answer);
	if (r < 0)
		aconn_op_free(op);
	return r;
}

/* ---- push ------------------------------------------------------------ */

static void aconn_push_done(const struct adapter_answer *a, enum http_outcome o, const char *why,
			    void *ud);

/* Starts slice calls while allowed. Returns the last submission error (0 if none). */
static int aconn_push_pump(struct aconn_op *op)
{
	struct aconn *ac = op->later.owner;
	const struct aconn_opts *opt = ac->c->opts;
	int r = 0;

	while (op->worst == CONN_OK && op->next_i < op->n &&
	       op->in_flight < (unsigned)opt->push_parallel) {
		struct aconn_slice *sl = xcalloc(1, sizeof(*sl));
		json_t *data = json_array();
		sl->op = op;
		sl->from = op->next_i;
		sl->n = LT_MIN((size_t)opt->push_batch, op->n - op->next_i);
		for (size_t i = 0; i < sl->n; i++)
			json_array_append(data, json_array_get(op->records, sl->from + i));
		r = adapter_call(ac->c->adapter,
				 opt->push_endpoint ? ADAPTER_SHARE : ADAPTER_INTEGRATION,
				 opt->push_service, json_pack("{s:o}", "data", data), NULL,
				 aconn_push_done, sl);
		if (r < 0) {
			op->worst = CONN_RETRY;
			free(op->why);
			op->why = xasprintf("records %zu-%zu: cannot call %s: %s", sl->from + 1,
					    sl->from + sl->n, opt->push_service, strerror(-r));
			free(sl);
			break;
		}
		ac->calls++;
		op->next_i += sl->n;
		op->in_flight++;
	}
	return r;
}

static void aconn_push_done(const struct adapter_answer *a, enum http_outcome o, const char *why,
			    void *ud)
{
	struct aconn_slice *sl = ud;
	struct aconn_op *op = sl->op;
	struct aconn *ac = op->later.owner;
	enum conn_outcome co = conn_outcome_from_http(o);
	struct conn *c;
	conn_done_cb done;
	void *done_ud;
	char *msg;

	(void)a;
	op->in_flight--;
	if (co == CONN_OK) {
		op->sent += sl->n;
	} else if (co > op->worst || !op->why) {
		op->worst = LT_MAX(op->worst, co);
		free(op->why);
		op->why = xasprintf("records %zu-%zu: %s", sl->from + 1, sl->from + sl->n,
				    why && *why ? why : http_outcome_name(o));
	}
	free(sl);
	if (!ac) {
		/* The connector is gone: nobody waits for this push. */
		if (op->in_flight == 0)
			aconn_op_free(op);
		return;
	}
	aconn_push_pump(op);
	if (op->in_flight > 0)
		return;
	c = ac->c;
	ac->records_pushed += op->sent;
	done = op->done;
	done_ud = op->ud;
	co = op->worst;
	msg = co == CONN_OK
		      ? NULL
		      : xasprintf("%s (%zu of %zu records delivered)", op->why, op->sent, op->n);
	if (msg)
		log_fields(LOG_WARNING, ACONN_FIELDS(ac), "push to %s: %s",
			   ((const struct aconn_opts *)c->opts)->push_service, msg);
	aconn_op_free(op);
	done(c, co, msg, done_ud);
	free(msg);
}

static int aconn_push(struct conn *c, json_t *records, const char *origin, conn_done_cb done,
		      void *ud)
{
	struct aconn *ac = c->priv;
	const struct aconn_opts *opt = c->opts;
	struct aconn_op *op;
	int r;

	(void)origin;
	if (!opt->push_service)
		return aconn_answer_later(ac, NULL, done, ud, CONN_FAIL,
					  xstrdup("no push_service: this connector is not a sink"));
	if (!json_is_array(records))
		return aconn_answer_later(ac, NULL, done, ud, CONN_FAIL,
					  xstrdup("records are not a JSON array"));
	if (json_array_size(records) == 0)
		return aconn_answer_later(ac, NULL, done, ud, CONN_OK, NULL);
	op = aconn_op_new(ac);
	op->done = done;
	op->ud = ud;
	/* A reference, not a copy: the caller's array must not change under us. */
	op->records = json_incref(records);
	op->n = json_array_size(records);
	r = aconn_push_pump(op);
	if (op->in_flight == 0) {
		/* Nothing was submitted: fail synchronously, done is not called. */
		aconn_op_free(op);
		return r < 0 ? r : -EIO;
	}
	return 0;
}

/* ---- pull, ack ------------------------------------------------------- */

static void aconn_pull_done(const struct adapter_answer *a, enum http_outcome o, const char *why,
			    void *ud)
{
	struct aconn_op *op = ud;
	struct aconn *ac = op->later.owner;
	const struct aconn_opts *opt;
	conn_pull_cb done = op->pull_done;
	void *done_ud = op->ud;
	enum conn_outcome co = conn_outcome_from_http(o);
	struct conn_batch *b = NULL;
	json_t *result = a ? a->result : NULL;
	struct conn *c;
	char *msg = NULL;

	aconn_op_free(op);
	if (!ac)
		return;
	c = ac->c;
	opt = c->opts;
	if (co != CONN_OK) {
		msg = xasprintf("%s: %s", opt->pull_service,
				why && *why ? why : http_outcome_name(o));
	} else if (result && !json_is_array(result) && !json_is_object(result)) {
		co = CONN_FAIL;
		msg = xasprintf("%s: result is neither an array nor an object", opt->pull_service);
	} else if (result && json_is_object(result)) {
		/* Some adapters answer a single record without the array. */
		b = xcalloc(1, sizeof(*b));
		b->records = json_array();
		json_array_append(b->records, result);
	} else if (result && json_array_size(result) > 0) {
		b = xcalloc(1, sizeof(*b));
		b->records = json_incref(result);
	}
	if (b) {
		b->origin = xasprintf("%s:%s", c->name, opt->pull_service);
		ac->pull_state = ACONN_PULL_OUT;
		ac->records_pulled += json_array_size(b->records);
	}
	done(c, co, b, msg, done_ud);
	free(msg);
}

static int aconn_pull(struct conn *c, conn_pull_cb done, void *ud)
{
	struct aconn *ac = c->priv;
	const struct aconn_opts *opt = c->opts;
	struct aconn_op *op;
	int r;

	if (!opt->pull_service)
		return aconn_answer_later(
			ac, done, NULL, ud, CONN_FAIL,
			xstrdup("no pull_service: this connector is not a source"));
	if (ac->pull_state == ACONN_PULL_ACKED) {
		ac->pull_state = ACONN_PULL_IDLE;
		return aconn_answer_later(ac, done, NULL, ud, CONN_OK, NULL);
	}
	op = aconn_op_new(ac);
	op->pull_done = done;
	op->ud = ud;
	r = adapter_call(c->adapter, opt->pull_endpoint ? ADAPTER_SHARE : ADAPTER_INTEGRATION,
			 opt->pull_service,
			 ac->pull_params ? json_deep_copy(ac->pull_params) : NULL, NULL,
			 aconn_pull_done, op);
	if (r < 0) {
		aconn_op_free(op);
		return r;
	}
	ac->calls++;
	return 0;
}

static int aconn_ack(struct conn *c, const struct conn_batch *b, bool ok, const char *reason)
{
	struct aconn *ac = c->priv;
	(void)b;
	(void)ok;
	(void)reason;
	/* Nothing to tell the adapter; only the snapshot is used up. */
	if (ac && ac->pull_state == ACONN_PULL_OUT)
		ac->pull_state = ACONN_PULL_ACKED;
	return 0;
}

/* ---- probe, status, lifecycle ---------------------------------------- */

static void aconn_probe_done(const struct adapter_answer *a, enum http_outcome o, const char *why,
			     void *ud)
{
	struct aconn_op *op = ud;
	struct aconn *ac = op->later.owner;
	conn_done_cb done = op->done;
	void *done_ud = op->ud;

	(void)a;
	aconn_op_free(op);
	if (ac)
		done(ac->c, conn_outcome_from_http(o), o == HTTP_OK ? NULL : why, done_ud);
}

/*
 * Logs in. With auth = none there is nothing to log in to: adapter_login
 * returns -EOPNOTSUPP and so does the probe, rather than claiming health
 * that was not checked.
 */
static int aconn_probe(struct conn *c, conn_done_cb done, void *ud)
{
	struct aconn *ac = c->priv;
	struct aconn_op *op = aconn_op_new(ac);
	int r;

	op->done = done;
	op->ud = ud;
	r = adapter_login(c->adapter, aconn_probe_done, op);
	if (r < 0)
		aconn_op_free(op);
	return r;
}

static json_t *aconn_status(struct conn *c)
{
	struct aconn *ac = c->priv;
	json_t *j = json_object();
	json_object_set_new(j, "session",
			    json_boolean(c->adapter && adapter_has_session(c->adapter)));
	json_object_set_new(j, "logins",
			    json_integer(c->adapter ? (json_int_t)adapter_logins(c->adapter) : 0));
	json_object_set_new(j, "calls", json_integer((json_int_t)ac->calls));
	json_object_set_new(j, "records_pushed", json_integer((json_int_t)ac->records_pushed));
	json_object_set_new(j, "records_pulled", json_integer((json_int_t)ac->records_pulled));
	return j;
}

static void aconn_free(struct conn *c)
{
	struct aconn *ac = c->priv;
	if (!ac)
		return;
	/* Calls in flight come back cancelled when the core frees c->adapter. */
	conn_later_cancel_all(&ac->pending);
	json_decref(ac->pull_params);
	free(ac->field);
	free(ac);
	c->priv = NULL;
}

static int aconn_init(struct conn *c, bool check_only, char **err)
{
	const struct aconn_opts *opt = c->opts;
	const char *name = c->name ? c->name : "?";
	json_t *params = NULL;
	struct aconn *ac;

	if (!opt->push_service && !opt->pull_service) {
		*err = xasprintf("connector.%s: set push_service (to send records), pull_service "
				 "(to read them), or both",
				 name);
		return -EINVAL;
	}
	if (opt->push_batch < 1 || opt->push_batch > 10000 || opt->push_parallel < 1) {
		*err = xasprintf("connector.%s: push_batch must be 1..10000 and push_parallel "
				 "at least 1",
				 name);
		return -EINVAL;
	}
	if (opt->pull_params) {
		json_error_t e;
		static const char *const reserved[] = {"session", "madonvi", "service"};
		params = json_loads(opt->pull_params, 0, &e);
		if (!params || !json_is_object(params)) {
			*err = xasprintf("connector.%s: pull_params is not a JSON object%s%s", name,
					 params ? "" : ": ", params ? "" : e.text);
			json_decref(params);
			return -EINVAL;
		}
		for (size_t i = 0; i < LT_ARRAY_SIZE(reserved); i++) {
			if (json_object_get(params, reserved[i])) {
				*err = xasprintf("connector.%s: pull_params must not set '%s': the "
						 "adapter envelope does",
						 name, reserved[i]);
				json_decref(params);
				return -EINVAL;
			}
		}
	}
	if (check_only) {
		json_decref(params);
		return 0;
	}
	if (!c->adapter) {
		*err = xasprintf("connector.%s: no adapter client (url and adapter keys)", name);
		json_decref(params);
		return -EINVAL;
	}
	ac = xcalloc(1, sizeof(*ac));
	ac->c = c;
	ac->field = xasprintf("CONNECTOR=%s", name);
	ac->pull_params = params;
	c->priv = ac;
	return 0;
}

const struct connector conn_adapter = {
	.abi_version = CONN_ABI_VERSION,
	.name = "adapter",
	.description = "Any service of the national integration adapter: push records to one "
		       "service, pull the result of another",
	.flags = CONN_F_HTTP | CONN_F_ADAPTER,
	.options = aconn_options,
	.opts_size = sizeof(struct aconn_opts),
	.init = aconn_init,
	.free = aconn_free,
	.probe = aconn_probe,
	.pull = aconn_pull,
	.ack = aconn_ack,
	.push = aconn_push,
	.status = aconn_status,
};
