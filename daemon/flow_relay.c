/*
 * flow_relay: the generic relay flow, moving records from a source
 * connector (pull/ack) to a sink connector (push) without mapping.
 *
 * A pass repeats pull -> push -> ack until the source has nothing more,
 * max_batches batches were handled, or something asks to stop:
 *   - push OK: ack(ok), the source forgets the batch (file to done/);
 *   - push FAIL: ack(!ok, reason), the batch is rejected for good (file to
 *     failed/), counted as failed, and the pass goes on;
 *   - push RETRY: the pass ends with RETRY and the batch stays in the source
 *     (the file stays in in_dir) for the next pass.
 * A batch is acknowledged only after the sink answered, so a crash in
 * between delivers it again: at least once, never lost.
 *
 * Each step after the first completion is started from a deferred sd-event
 * source, so a connector that completes quickly never makes the pass
 * recurse. An operation in flight holds its own references to both
 * connectors, so stop(), a reload or free() may happen at any moment: a push
 * in flight is allowed to finish (and is acknowledged), nothing new starts.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "connector.h"
#include "daemon.h"
#include "flow.h"
#include "log.h"
#include "store.h"
#include "util.h"

struct relay_opts {
	char *source;
	char *sink;
	int64_t max_batches;
};

static const struct conf_option relay_options[] = {
	{.key = "source",
	 .type = CONF_STRING,
	 .offset = offsetof(struct relay_opts, source),
	 .flags = CONF_REQUIRED,
	 .help = "Name of the connector records are pulled from (it must have pull, e.g. "
		 "files with in_dir)."},
	{.key = "sink",
	 .type = CONF_STRING,
	 .offset = offsetof(struct relay_opts, sink),
	 .flags = CONF_REQUIRED,
	 .help = "Name of the connector records are pushed to (it must have push)."},
	{.key = "max_batches",
	 .type = CONF_INT,
	 .def = "100",
	 .min = 1,
	 .max = 1000000,
	 .offset = offsetof(struct relay_opts, max_batches),
	 .help = "Batches (files) handled in one pass at most; the rest waits for the next "
		 "pass."},
	CONF_OPTION_END,
};

struct relay;

/*
 * A pull or push in flight. Holds its own references to both connectors;
 * r is NULL once the flow was freed, and the op then only finishes up.
 */
struct relay_op {
	struct relay *r;
	struct conn *src, *sink;  /* refs */
	struct conn_batch *batch; /* owned, during push */
};

/* f->priv. */
struct relay {
	struct flow *f;		 /* borrowed */
	struct conn *src, *sink; /* refs */
	struct relay_op *op;	 /* in flight, or NULL (owned by its callback) */
	sd_event_source *step;	 /* owned: the next step, deferred */
	char *field;		 /* "FLOW=name" */
	bool in_pass;
	bool stopping;
	uint64_t batches, records, failed_batches, failed_records;
};

#define RELAY_FIELDS(r) ((const char *const[]){(r)->field, NULL})

static void relay_op_free(struct relay_op *op)
{
	if (!op)
		return;
	conn_batch_free(op->batch);
	conn_unref(op->src);
	conn_unref(op->sink);
	free(op);
}

static char *relay_counts(const struct relay *r)
{
	if (r->failed_batches)
		return xasprintf("%llu batches, %llu records; %llu batches (%llu records) rejected",
				 (unsigned long long)r->batches, (unsigned long long)r->records,
				 (unsigned long long)r->failed_batches,
				 (unsigned long long)r->failed_records);
	return xasprintf("%llu batches, %llu records", (unsigned long long)r->batches,
			 (unsigned long long)r->records);
}

/*
 * Ends the pass. flow_finish may hand the flow back to the daemon, which
 * can free it (a retired flow after a reload), so r is not touched after.
 */
static void relay_end(struct relay *r, enum conn_outcome o, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void relay_end(struct relay *r, enum conn_outcome o, const char *fmt, ...)
{
	struct flow *f = r->f;
	char *what, *counts = relay_counts(r);
	va_list ap;

	va_start(ap, fmt);
	what = xvasprintf(fmt, ap);
	va_end(ap);
	r->step = sd_event_source_disable_unref(r->step);
	r->in_pass = false;
	r->stopping = false;
	if (*what)
		flow_finish(f, o, "%s: %s", what, counts);
	else
		flow_finish(f, o, "%s", counts);
	free(what);
	free(counts);
}

static bool relay_stopping(const struct relay *r)
{
	return r->stopping || r->f->stopping;
}

static void relay_audit(struct relay *r, const struct conn_batch *b, const char *detail)
{
	struct store *s = r->f->d ? r->f->d->store : NULL;
	int q;
	if (!s)
		return;
	q = store_audit_add(s, "lienthongd", "relay", b->origin ? b->origin : r->src->name, detail);
	if (q < 0)
		log_fields(LOG_WARNING, RELAY_FIELDS(r), "cannot write the audit row: %s",
			   strerror(-q));
}

static int relay_schedule(struct relay *r);

/* ---- completions ----------------------------------------------------- */

static void relay_on_push(struct conn *c, enum conn_outcome o, const char *detail, void *ud)
{
	struct relay_op *op = ud;
	struct relay *r = op->r;
	struct conn_batch *b = op->batch;
	size_t n = json_array_size(b->records);
	const char *why = detail && *detail ? detail : conn_outcome_name(o);
	char *text;
	int q = 0;

	/* Outcome bookkeeping (status, metrics, rate-limited logs), except for
	 * requests abandoned because we are stopping. */
	if (!(o == CONN_RETRY && (!r || relay_stopping(r))))
		conn_note(c, o, why);
	/*
	 * A push that was delivered is acknowledged even when the flow is
	 * stopping or gone, so that it is not delivered twice.
	 */
	if (o != CONN_RETRY && op->src->type->ack)
		q = op->src->type->ack(op->src, b, o == CONN_OK, o == CONN_OK ? NULL : why);
	if (!r) {
		relay_op_free(op);
		return;
	}
	r->op = NULL;
	if (o == CONN_OK) {
		r->batches++;
		r->records += n;
		flow_count(r->f, n, 0);
		text = xasprintf("%zu records to %s", n, op->sink->name);
	} else if (o == CONN_FAIL) {
		r->failed_batches++;
		r->failed_records += n;
		flow_count(r->f, 0, n);
		log_fields(LOG_WARNING, RELAY_FIELDS(r), "%s rejected by %s: %s",
			   b->origin ? b->origin : "a batch", op->sink->name, why);
		text = xasprintf("%zu records rejected by %s: %s", n, op->sink->name, why);
	} else {
		/* The batch stays in the source for the next pass. */
		char *origin = xstrdup(b->origin ? b->origin : "a batch");
		char *sink = xstrdup(op->sink->name);
		relay_op_free(op);
		relay_end(r, CONN_RETRY, "%s to %s: %s", origin, sink, why);
		free(origin);
		free(sink);
		return;
	}
	relay_audit(r, b, text);
	free(text);
	if (q < 0) {
		/* Going on would pull the same batch again and deliver it twice. */
		char *token = xstrdup(b->token ? b->token : b->origin ? b->origin : "the batch");
		char *src = xstrdup(op->src->name);
		relay_op_free(op);
		relay_end(r, CONN_RETRY, "%s cannot acknowledge %s: %s", src, token, strerror(-q));
		free(token);
		free(src);
		return;
	}
	relay_op_free(op);
	if (relay_stopping(r)) {
		relay_end(r, CONN_RETRY, "stopped");
		return;
	}
	q = relay_schedule(r);
	if (q < 0)
		relay_end(r, CONN_FAIL, "cannot schedule the next step: %s", strerror(-q));
}

static void relay_on_pull(struct conn *c, enum conn_outcome o, struct conn_batch *b,
			  const char *err, void *ud)
{
	struct relay_op *op = ud;
	struct relay *r = op->r;
	int q;

	if (r && !relay_stopping(r))
		conn_note(c, o, err && *err ? err : NULL);
	if (!r || relay_stopping(r) || o != CONN_OK || !b) {
		/* Not acknowledged: a batch pulled now stays in the source. */
		conn_batch_free(b);
		relay_op_free(op);
		if (!r)
			return;
		r->op = NULL;
		if (relay_stopping(r))
			relay_end(r, CONN_RETRY, "stopped");
		else if (o != CONN_OK)
			relay_end(r, o, "pull from %s: %s", r->src->name,
				  err && *err ? err : conn_outcome_name(o));
		else
			relay_end(r, CONN_OK, "%s", "");
		return;
	}
	op->batch = b;
	q = op->sink->type->push(op->sink, b->records, b->origin, relay_on_push, op);
	if (q < 0) {
		relay_op_free(op);
		r->op = NULL;
		relay_end(r, CONN_RETRY, "push to %s: %s", r->sink->name, strerror(-q));
	}
}

/* ---- steps ----------------------------------------------------------- */

static int relay_step(sd_event_source *s, void *userdata)
{
	struct relay *r = userdata;
	const struct relay_opts *o = r->f->opts;
	struct relay_op *op;
	int q;

	(void)s;
	r->step = sd_event_source_unref(r->step);
	if (relay_stopping(r)) {
		relay_end(r, CONN_RETRY, "stopped");
		return 0;
	}
	if (r->batches + r->failed_batches >= (uint64_t)o->max_batches) {
		relay_end(r, CONN_OK, "max_batches reached, the rest waits for the next pass");
		return 0;
	}
	op = xcalloc(1, sizeof(*op));
	op->r = r;
	op->src = conn_ref(r->src);
	op->sink = conn_ref(r->sink);
	r->op = op;
	q = r->src->type->pull(r->src, relay_on_pull, op);
	if (q < 0) {
		r->op = NULL;
		relay_op_free(op);
		relay_end(r, CONN_FAIL, "pull from %s: %s", r->src->name, strerror(-q));
	}
	return 0;
}

static int relay_schedule(struct relay *r)
{
	return sd_event_add_defer(r->f->d->ev, &r->step, relay_step, r);
}

/* ---- flow type ------------------------------------------------------- */

static int relay_start(struct flow *f)
{
	struct relay *r = f->priv;
	int q;

	if (!r)
		return -EINVAL;
	if (r->in_pass || r->op)
		return -EBUSY;
	r->batches = r->records = r->failed_batches = r->failed_records = 0;
	r->stopping = false;
	q = relay_schedule(r);
	if (q < 0)
		return q;
	r->in_pass = true;
	return 0;
}

static void relay_stop(struct flow *f)
{
	struct relay *r = f->priv;
	if (!r || !r->in_pass)
		return;
	r->stopping = true;
	/* With an operation in flight, its completion ends the pass. */
	if (!r->op)
		relay_end(r, CONN_RETRY, "stopped");
}

static json_t *relay_status(struct flow *f)
{
	struct relay *r = f->priv;
	json_t *j = json_object();
	if (!r)
		return j;
	json_object_set_new(j, "source", json_string(r->src->name));
	json_object_set_new(j, "sink", json_string(r->sink->name));
	json_object_set_new(j, "in_flight",
			    !r->op	   ? json_null()
			    : r->op->batch ? json_string("push")
					   : json_string("pull"));
	json_object_set_new(j, "pass_batches", json_integer((json_int_t)r->batches));
	json_object_set_new(j, "pass_records", json_integer((json_int_t)r->records));
	json_object_set_new(j, "pass_rejected_batches",
			    json_integer((json_int_t)r->failed_batches));
	return j;
}

static void relay_free(struct flow *f)
{
	struct relay *r = f->priv;
	if (!r)
		return;
	sd_event_source_disable_unref(r->step);
	/* An operation in flight completes on its own references. */
	if (r->op)
		r->op->r = NULL;
	conn_unref(r->src);
	conn_unref(r->sink);
	free(r->field);
	free(r);
	f->priv = NULL;
}

/*
 * Resolves a connector by name and checks it can play its role. Returns it
 * (borrowed) or NULL with *err.
 */
static struct conn *relay_resolve(struct flow *f, const char *key, const char *name, bool source,
				  char **err)
{
	struct conn *c;
	if (!name || !*name) {
		*err = xasprintf("flow.%s: %s is required (a connector name)", f->name, key);
		return NULL;
	}
	c = daemon_conn_find(f->d, name);
	if (!c) {
		*err = xasprintf("flow.%s: %s: no enabled connector named '%s'", f->name, key,
				 name);
		return NULL;
	}
	if (source && (!c->type->pull || !c->type->ack)) {
		*err = xasprintf(
			"flow.%s: connector '%s' (type %s) cannot be a source: it has no %s",
			f->name, name, c->type->name, c->type->pull ? "ack" : "pull");
		return NULL;
	}
	if (!source && !c->type->push) {
		*err = xasprintf(
			"flow.%s: connector '%s' (type %s) cannot be a sink: it has no push",
			f->name, name, c->type->name);
		return NULL;
	}
	return c;
}

static int relay_init(struct flow *f, bool check_only, char **err)
{
	const struct relay_opts *o = f->opts;
	struct conn *src, *sink;
	struct relay *r;

	src = relay_resolve(f, "source", o->source, true, err);
	if (!src)
		return -EINVAL;
	sink = relay_resolve(f, "sink", o->sink, false, err);
	if (!sink)
		return -EINVAL;
	if (o->max_batches < 1) {
		*err = xasprintf("flow.%s: max_batches must be at least 1", f->name);
		return -EINVAL;
	}
	if (check_only)
		return 0;
	if (!f->d->ev) {
		*err = xasprintf("flow.%s: no event loop", f->name);
		return -EINVAL;
	}
	r = xcalloc(1, sizeof(*r));
	r->f = f;
	r->src = conn_ref(src);
	r->sink = conn_ref(sink);
	r->field = xasprintf("FLOW=%s", f->name);
	f->priv = r;
	return 0;
}

const struct flow_type flow_relay = {
	.name = "relay",
	.description = "Moves records from a source connector to a sink connector as they are "
		       "(drop folder to adapter, adapter to drop folder, ...)",
	.options = relay_options,
	.opts_size = sizeof(struct relay_opts),
	.init = relay_init,
	.free = relay_free,
	.start = relay_start,
	.stop = relay_stop,
	.status = relay_status,
};
