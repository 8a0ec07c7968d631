/*
 * flow: the scheduler shared by every flow type.
 *
 * Each flow has one sd-event timer. After a pass ends (or at start) the
 * next pass is due after `interval` plus a random share of `jitter`, so that
 * many daemons do not hit a national system at the same second. `run` starts
 * a pass at once; `pause` stops scheduling (a running pass completes);
 * `resume` schedules again. A pass is recorded in the store's run table.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "daemon.h"
#include "flow.h"
#include "log.h"
#include "store.h"
#include "util.h"

const char *flow_state_name(enum flow_state s)
{
	switch (s) {
	case FLOW_IDLE: return "idle";
	case FLOW_RUNNING: return "running";
	case FLOW_PAUSED: return "paused";
	case FLOW_DISABLED: return "disabled";
	}
	return "?";
}

enum flow_state flow_state(const struct flow *f)
{
	if (f->running)
		return FLOW_RUNNING;
	if (!f->conf->enabled)
		return FLOW_DISABLED;
	if (f->paused)
		return FLOW_PAUSED;
	return FLOW_IDLE;
}

int flow_new(struct daemon *d, const struct conf_flow *cf, bool check_only, struct flow **out,
	     char **err)
{
	struct flow *f = xcalloc(1, sizeof(*f));
	*out = NULL;
	*err = NULL;
	f->type = cf->type;
	f->name = xstrdup(cf->name);
	f->conf = cf;
	f->opts = cf->opts;
	f->d = d;
	f->refs = 1;
	if (f->type->init) {
		int r = f->type->init(f, check_only, err);
		if (r < 0) {
			if (!*err)
				*err = xasprintf("cannot set up: %s", strerror(-r));
			free(f->name);
			free(f);
			return r;
		}
	}
	*out = f;
	return 0;
}

void flow_free(struct flow *f)
{
	if (!f)
		return;
	sd_event_source_disable_unref(f->timer);
	if (f->type->free)
		f->type->free(f);
	free(f->last_err);
	free(f->last_summary);
	free(f->name);
	free(f);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct flow *f = userdata;
	(void)s;
	(void)usec;
	f->next_run_us = 0;
	int r = flow_run_now(f);
	if (r == 1) /* still running from an earlier trigger: try again later */
		flow_schedule(f, false);
	return 0;
}

static int arm(struct flow *f, uint64_t delay_us)
{
	int r;
	uint64_t now = now_mono_us();
	f->next_run_us = now + delay_us;
	if (!f->timer) {
		r = sd_event_add_time(f->d->ev, &f->timer, CLOCK_MONOTONIC, f->next_run_us, 0,
				      on_timer, f);
		if (r < 0) {
			f->next_run_us = 0;
			return r;
		}
		sd_event_source_set_description(f->timer, f->name);
	} else {
		r = sd_event_source_set_time(f->timer, f->next_run_us);
		if (r >= 0)
			r = sd_event_source_set_enabled(f->timer, SD_EVENT_ONESHOT);
		if (r < 0) {
			f->next_run_us = 0;
			return r;
		}
	}
	return 0;
}

int flow_schedule(struct flow *f, bool at_start)
{
	f->next_run_us = 0;
	if (f->timer)
		sd_event_source_set_enabled(f->timer, SD_EVENT_OFF);
	if (!f->d->ev || !f->conf->enabled || f->paused || f->d->stopping)
		return 0;
	if (at_start && f->conf->run_at_start)
		return arm(f, 0);
	if (f->conf->interval_ms <= 0)
		return 0;
	uint64_t delay_ms = (uint64_t)f->conf->interval_ms;
	if (f->conf->jitter_ms > 0)
		delay_ms += rand_below((uint64_t)f->conf->jitter_ms + 1);
	return arm(f, delay_ms * 1000);
}

int flow_run_now(struct flow *f)
{
	struct daemon *d = f->d;
	if (f->running || daemon_retired_running(d, f->name))
		return 1;
	if (d->stopping)
		return -EAGAIN;
	if (!f->conf->enabled)
		return -ENOTCONN;
	if (f->paused)
		return -EBUSY;
	f->running = true;
	f->stopping = false;
	f->pass_items_ok = f->pass_items_failed = 0;
	f->last_start_ms = now_wall_ms();
	f->run_id = 0;
	f->next_run_us = 0;
	if (f->timer)
		sd_event_source_set_enabled(f->timer, SD_EVENT_OFF);
	if (d->store && store_run_begin(d->store, f->name, f->last_start_ms, &f->run_id) < 0)
		f->run_id = 0; /* the pass runs anyway; the store's health says why */
	f->pass_start_us = now_mono_us();
	log_fields(LOG_DEBUG, (const char *[]){"FLOW_EVENT=start", NULL}, "flow %s: pass started",
		   f->name);
	int r = f->type->start(f);
	if (r < 0 && f->running)
		flow_finish(f, CONN_FAIL, "could not start: %s", strerror(-r));
	daemon_update_status(d);
	return 0;
}

int flow_pause(struct flow *f)
{
	f->paused = true;
	f->next_run_us = 0;
	if (f->timer)
		sd_event_source_set_enabled(f->timer, SD_EVENT_OFF);
	log_info("flow %s: paused", f->name);
	daemon_update_status(f->d);
	return 0;
}

int flow_resume(struct flow *f)
{
	if (!f->paused)
		return 0;
	f->paused = false;
	log_info("flow %s: resumed", f->name);
	if (!f->running)
		flow_schedule(f, false);
	daemon_update_status(f->d);
	return 0;
}

void flow_stop(struct flow *f)
{
	if (!f->running || f->stopping)
		return;
	f->stopping = true;
	if (f->type->stop)
		f->type->stop(f);
}

void flow_count(struct flow *f, uint64_t ok, uint64_t failed)
{
	f->pass_items_ok += ok;
	f->pass_items_failed += failed;
	f->items_ok += ok;
	f->items_failed += failed;
}

bool flow_store_ok(struct flow_result *res, bool *failed, int r, const char *what)
{
	if (r >= 0)
		return true;
	if (!*failed)
		flow_result_note(res, CONN_RETRY, "store: cannot %s: %s", what,
				 r == -ENOSPC ? "the disk or [store] max_size is full"
					      : strerror(-r));
	*failed = true;
	return false;
}

void flow_result_note(struct flow_result *r, enum conn_outcome o, const char *fmt, ...)
{
	va_list ap;
	if (o > r->outcome)
		r->outcome = o;
	if (r->why)
		return;
	va_start(ap, fmt);
	r->why = xvasprintf(fmt, ap);
	va_end(ap);
}

void flow_result_clear(struct flow_result *r)
{
	free(r->why);
	r->why = NULL;
	r->outcome = CONN_OK;
}

struct conn *flow_conn(struct flow *f, const char *key, const char *name,
		       const struct connector *want, char **err)
{
	struct conn *c = daemon_conn_find(f->d, name);
	if (!c) {
		*err = xasprintf("%s: no enabled connector named '%s'", key, name);
		return NULL;
	}
	if (c->type != want) {
		*err = xasprintf("%s: connector '%s' is of type %s; this flow needs type %s", key,
				 name, c->type->name, want->name);
		return NULL;
	}
	return c;
}

const double flow_latency_bounds_s[FLOW_LATENCY_BUCKETS] = {
	0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600, INFINITY,
};

void flow_latency_add(struct flow *f, double seconds)
{
	size_t k = 0;
	if (!(seconds > 0))
		seconds = 0;
	while (k < FLOW_LATENCY_BUCKETS - 1 && seconds > flow_latency_bounds_s[k])
		k++;
	f->latency.count[k]++;
	f->latency.sum_s += seconds;
}

void flow_finish(struct flow *f, enum conn_outcome o, const char *fmt, ...)
{
	struct daemon *d = f->d;
	char *summary;
	va_list ap;

	if (!f->running)
		return;
	va_start(ap, fmt);
	summary = xvasprintf(fmt, ap);
	va_end(ap);
	f->running = false;
	f->last_end_ms = now_wall_ms();
	f->last_duration_us = now_mono_us() - f->pass_start_us;
	free(f->last_summary);
	f->last_summary = xstrdup(summary);

	char *flow_field = xasprintf("FLOW=%s", f->name);
	const char *fields[] = {flow_field, NULL};
	if (o != CONN_OK && f->stopping) {
		/* Asked to stop (shutdown, reload): not a failure of the pass. */
		log_fields(LOG_NOTICE, fields, "pass stopped after %.3f s: %s",
			   (double)f->last_duration_us / 1e6, summary);
	} else if (o == CONN_OK) {
		f->runs_ok++;
		f->last_ok_ms = f->last_end_ms;
		log_fields(LOG_INFO, fields, "pass done in %.3f s: %s",
			   (double)f->last_duration_us / 1e6, summary);
	} else {
		f->runs_failed++;
		f->last_err_ms = f->last_end_ms;
		free(f->last_err);
		f->last_err = xstrdup(summary);
		log_fields(LOG_WARNING, fields, "pass %s after %.3f s (%s): %s",
			   o == CONN_RETRY ? "incomplete" : "failed",
			   (double)f->last_duration_us / 1e6,
			   o == CONN_RETRY ? "the next pass tries again" : "look at the cause",
			   summary);
	}
	free(flow_field);
	if (d->store && f->run_id > 0) {
		const char *outcome = f->stopping && o != CONN_OK ? "cancelled"
				      : o == CONN_OK		  ? "ok"
				      : o == CONN_RETRY		  ? "retry"
								  : "failed";
		store_run_end(d->store, f->run_id, f->last_end_ms, outcome, f->pass_items_ok,
			      f->pass_items_failed, summary);
	}
	free(summary);
	f->stopping = false;
	flow_schedule(f, false);
	daemon_flow_ended(d, f);
}

json_t *flow_status_json(const struct flow *f)
{
	json_t *j = json_object();
	json_object_set_new(j, "name", json_string(f->name));
	json_object_set_new(j, "type", json_string(f->type->name));
	json_object_set_new(j, "state", json_string(flow_state_name(flow_state(f))));
	json_object_set_new(j, "enabled", json_boolean(f->conf->enabled));
	json_object_set_new(j, "paused", json_boolean(f->paused));
	json_object_set_new(j, "interval_s", json_real((double)f->conf->interval_ms / 1000.0));
	json_object_set_new(j, "last_start", fmt_time_json(f->last_start_ms));
	json_object_set_new(j, "last_end", fmt_time_json(f->last_end_ms));
	json_object_set_new(j, "last_ok", fmt_time_json(f->last_ok_ms));
	json_object_set_new(j, "last_error", f->last_err ? json_string(f->last_err) : json_null());
	json_object_set_new(j, "last_error_at", fmt_time_json(f->last_err_ms));
	json_object_set_new(j, "last_summary",
			    f->last_summary ? json_string(f->last_summary) : json_null());
	if (!f->running && f->last_end_ms)
		json_object_set_new(j, "last_duration_s",
				    json_real((double)f->last_duration_us / 1e6));
	if (f->next_run_us) {
		uint64_t now = now_mono_us();
		int64_t in_ms = f->next_run_us > now ? (int64_t)(f->next_run_us - now) / 1000 : 0;
		json_object_set_new(j, "next_run", fmt_time_json(now_wall_ms() + in_ms));
		json_object_set_new(j, "next_run_in_s", json_real((double)in_ms / 1000.0));
	} else {
		json_object_set_new(j, "next_run", json_null());
	}
	json_object_set_new(j, "runs_ok", json_integer((json_int_t)f->runs_ok));
	json_object_set_new(j, "runs_failed", json_integer((json_int_t)f->runs_failed));
	json_object_set_new(j, "items_ok", json_integer((json_int_t)f->items_ok));
	json_object_set_new(j, "items_failed", json_integer((json_int_t)f->items_failed));
	if (f->running) {
		json_object_set_new(j, "pass_items_ok", json_integer((json_int_t)f->pass_items_ok));
		json_object_set_new(j, "pass_items_failed",
				    json_integer((json_int_t)f->pass_items_failed));
	}
	if (f->type->status) {
		json_t *extra = f->type->status((struct flow *)f);
		if (extra)
			json_object_set_new(j, "detail", extra);
	}
	return j;
}
