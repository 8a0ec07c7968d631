/*
 * daemon: start, reload, stop, and the state views of lienthongd.
 *
 * One sd-event loop drives everything: signals (SIGTERM/SIGINT stop,
 * SIGHUP reload), the flows' timers, curl's sockets and timers, the control
 * socket and the watchdog (sd-event pings WATCHDOG=1 from the loop itself, so
 * a wedged loop stops the pings and systemd restarts us).
 *
 * Reload builds the new config and every connector and flow in check-only
 * mode first; only when all of that is valid are the new instances created
 * and swapped in. Instances of the old config that are still in a pass are
 * "retired": asked to stop, and freed when their pass ends.
 */
#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "control.h"
#include "http.h"
#include "log.h"
#include "store.h"
#include "util.h"

/* Instances of a replaced config that still run a pass. */
struct daemon_retired {
	struct config *cfg;
	struct conn **conns;
	size_t n_conns;
	struct flow **flows;
	size_t n_flows;
	struct daemon_retired *next;
};

struct daemon *daemon_new(const char *config_path)
{
	struct daemon *d = xcalloc(1, sizeof(*d));
	d->config_path = xstrdup(config_path);
	d->start_mono_us = now_mono_us();
	d->start_wall_ms = now_wall_ms();
	d->under_systemd = getenv("NOTIFY_SOCKET") != NULL;
	return d;
}

static void free_instances(struct conn **conns, size_t n_conns, struct flow **flows, size_t n_flows)
{
	for (size_t i = 0; i < n_flows; i++)
		flow_free(flows[i]);
	for (size_t i = 0; i < n_conns; i++)
		conn_unref(conns[i]);
	free(flows);
	free(conns);
}

/*
 * Builds connectors and flows of cfg into arrays. check_only builds
 * nothing lasting. Errors are added to errs with the section's line.
 */
static int build_instances(struct daemon *d, const struct config *cfg, bool check_only,
			   struct conn ***out_conns, size_t *out_nc, struct flow ***out_flows,
			   size_t *out_nf, struct conf_errors *errs)
{
	struct conn **conns = xcalloc(cfg->n_connectors + 1, sizeof(*conns));
	struct flow **flows = xcalloc(cfg->n_flows + 1, sizeof(*flows));
	size_t nc = 0, nf = 0, errs_before = errs->n;

	/* Flows resolve connectors through d, so expose the new ones while building. */
	struct conn **saved_conns = d->conns;
	size_t saved_nc = d->n_conns;
	d->conns = conns;
	d->n_conns = 0;

	for (size_t i = 0; i < cfg->n_connectors; i++) {
		const struct conf_connector *cc = &cfg->connectors[i];
		char *err = NULL;
		if (!cc->enabled && !check_only)
			continue;
		if (conn_new(d, cc, check_only || !cc->enabled, &conns[nc], &err) < 0) {
			conf_errors_add(errs, "%s:%d: [connector.%s] %s", cfg->path, cc->line,
					cc->name, err);
			free(err);
			continue;
		}
		d->n_conns = ++nc;
	}
	for (size_t i = 0; i < cfg->n_flows; i++) {
		const struct conf_flow *cf = &cfg->flows[i];
		char *err = NULL;
		if (flow_new(d, cf, check_only, &flows[nf], &err) < 0) {
			conf_errors_add(errs, "%s:%d: [flow.%s] %s", cfg->path, cf->line, cf->name,
					err);
			free(err);
			continue;
		}
		nf++;
	}
	d->conns = saved_conns;
	d->n_conns = saved_nc;

	if (errs->n > errs_before || check_only) {
		free_instances(conns, nc, flows, nf);
		return errs->n > errs_before ? -EINVAL : 0;
	}
	*out_conns = conns;
	*out_nc = nc;
	*out_flows = flows;
	*out_nf = nf;
	return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct daemon *d = userdata;
	(void)s;
	if (si->ssi_signo == SIGHUP) {
		json_t *errors = NULL;
		daemon_reload(d, &errors);
		json_decref(errors);
	} else {
		log_notice("received %s, stopping", strsignal((int)si->ssi_signo));
		daemon_stop(d, 0);
	}
	return 0;
}

static int on_health(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct daemon *d = userdata;
	(void)usec;
	if (d->store && store_health(d->store, NULL) != STORE_OK) {
		if (store_check(d->store) == 0)
			log_notice("store is writable again");
	}
	daemon_update_status(d);
	int64_t interval_ms = d->cfg->daemon.health_interval_ms;
	if (d->store && store_health(d->store, NULL) != STORE_OK)
		interval_ms = LT_MIN(interval_ms, d->cfg->store.retry_interval_ms);
	sd_event_source_set_time(s, now_mono_us() + (uint64_t)interval_ms * 1000);
	sd_event_source_set_enabled(s, SD_EVENT_ON);
	return 0;
}

static void log_errors(const struct conf_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		log_err("%s", errs->msgs[i]);
}

int daemon_start(struct daemon *d)
{
	struct conf_errors errs = {0};
	char *err = NULL;
	sigset_t mask;
	int r;

	r = conf_load(d->config_path, &d->cfg, &errs);
	if (r < 0) {
		log_errors(&errs);
		log_err("configuration %s is not valid (%zu error%s); not starting", d->config_path,
			errs.n, errs.n == 1 ? "" : "s");
		goto fail;
	}
	log_setup(d->cfg->daemon.log_target, d->cfg->daemon.log_level);

	r = sd_event_default(&d->ev);
	if (r < 0) {
		log_err("cannot create the event loop: %s", strerror(-r));
		goto fail;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((r = sd_event_add_signal(d->ev, NULL, SIGTERM, on_signal, d)) < 0 ||
	    (r = sd_event_add_signal(d->ev, NULL, SIGINT, on_signal, d)) < 0 ||
	    (r = sd_event_add_signal(d->ev, NULL, SIGHUP, on_signal, d)) < 0) {
		log_err("cannot watch signals: %s", strerror(-r));
		goto fail;
	}

	r = store_open(&d->cfg->store, &d->store, &err);
	if (r < 0) {
		log_err("cannot open the store: %s; not starting", err ? err : strerror(-r));
		goto fail;
	}
	d->http = http_core_new(d->ev);
	if (!d->http) {
		r = -ENOMEM;
		log_err("cannot set up the HTTP core (libcurl)");
		goto fail;
	}
	r = build_instances(d, d->cfg, false, &d->conns, &d->n_conns, &d->flows, &d->n_flows,
			    &errs);
	if (r < 0) {
		log_errors(&errs);
		log_err("connectors or flows could not be set up; not starting");
		goto fail;
	}
	r = control_new(d, &d->cfg->control, &d->ctl, &err);
	if (r < 0) {
		log_err("cannot open the control socket: %s; not starting", err);
		goto fail;
	}
	/* sd-event sends WATCHDOG=1 from the loop at half of WATCHDOG_USEC. */
	r = sd_event_set_watchdog(d->ev, true);
	if (r < 0)
		log_warn("cannot enable the watchdog: %s", strerror(-r));
	r = sd_event_add_time_relative(d->ev, &d->health_timer, CLOCK_MONOTONIC,
				       (uint64_t)d->cfg->daemon.health_interval_ms * 1000, 0,
				       on_health, d);
	if (r < 0) {
		log_err("cannot arm the health timer: %s", strerror(-r));
		goto fail;
	}
	for (size_t i = 0; i < d->n_flows; i++)
		flow_schedule(d->flows[i], true);

	log_notice("lienthongd %s ready: %zu connector%s, %zu flow%s, config %s, store %s, "
		   "control %s",
		   LT_VERSION, d->n_conns, d->n_conns == 1 ? "" : "s", d->n_flows,
		   d->n_flows == 1 ? "" : "s", d->config_path, d->cfg->store.path,
		   d->cfg->control.path);
	daemon_update_status(d);
	sd_notifyf(0, "READY=1\nSTATUS=%s\nMAINPID=%d", d->status_line, (int)getpid());
	conf_errors_free(&errs);
	return 0;
fail:
	free(err);
	conf_errors_free(&errs);
	return r < 0 ? r : -EINVAL;
}

int daemon_run(struct daemon *d)
{
	int r = sd_event_loop(d->ev);
	if (r < 0) {
		log_err("event loop failed: %s", strerror(-r));
		return 1;
	}
	return d->exit_code ? d->exit_code : r;
}

static void retired_free(struct daemon_retired *rt)
{
	free_instances(rt->conns, rt->n_conns, rt->flows, rt->n_flows);
	conf_free(rt->cfg);
	free(rt);
}

void daemon_free(struct daemon *d)
{
	if (!d)
		return;
	/* Cancel HTTP first: completions reach flows while everything is alive. */
	for (size_t i = 0; i < d->n_conns; i++)
		if (d->conns[i]->http)
			http_client_cancel_all(d->conns[i]->http);
	control_free(d->ctl);
	while (d->retired) {
		struct daemon_retired *rt = d->retired;
		d->retired = rt->next;
		retired_free(rt);
	}
	free_instances(d->conns, d->n_conns, d->flows, d->n_flows);
	http_core_free(d->http);
	store_close(d->store);
	sd_event_source_disable_unref(d->health_timer);
	sd_event_source_disable_unref(d->stop_timer);
	sd_event_source_disable_unref(d->retire_defer);
	sd_event_unref(d->ev);
	conf_free(d->cfg);
	free(d->last_reload_error);
	free(d->config_path);
	free(d);
}

static bool any_running(struct daemon *d)
{
	for (size_t i = 0; i < d->n_flows; i++)
		if (d->flows[i]->running)
			return true;
	for (struct daemon_retired *rt = d->retired; rt; rt = rt->next)
		for (size_t i = 0; i < rt->n_flows; i++)
			if (rt->flows[i]->running)
				return true;
	return false;
}

static int on_stop_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct daemon *d = userdata;
	(void)s;
	(void)usec;
	for (size_t i = 0; i < d->n_flows; i++)
		if (d->flows[i]->running)
			log_warn("flow %s did not finish within the shutdown timeout; its work "
				 "stays "
				 "queued in the store for the next start",
				 d->flows[i]->name);
	sd_event_exit(d->ev, d->exit_code);
	return 0;
}

void daemon_stop(struct daemon *d, int exit_code)
{
	if (d->stopping)
		return;
	d->stopping = true;
	d->exit_code = exit_code;
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
	for (size_t i = 0; i < d->n_flows; i++) {
		if (d->flows[i]->timer)
			sd_event_source_set_enabled(d->flows[i]->timer, SD_EVENT_OFF);
		d->flows[i]->next_run_us = 0;
		flow_stop(d->flows[i]);
	}
	for (struct daemon_retired *rt = d->retired; rt; rt = rt->next)
		for (size_t i = 0; i < rt->n_flows; i++)
			flow_stop(rt->flows[i]);
	/*
	 * Requests in flight are abandoned, not awaited: their flows see
	 * HTTP_RETRY "cancelled" and keep the work (a file stays in the drop
	 * folder, an outbox item stays queued), so a slow national system cannot
	 * hold the stop past the deadline and nothing accepted is lost.
	 */
	for (size_t i = 0; i < d->n_conns; i++)
		if (d->conns[i]->http)
			http_client_cancel_all(d->conns[i]->http);
	for (struct daemon_retired *rt = d->retired; rt; rt = rt->next)
		for (size_t i = 0; i < rt->n_conns; i++)
			if (rt->conns[i]->http)
				http_client_cancel_all(rt->conns[i]->http);
	if (!any_running(d)) {
		sd_event_exit(d->ev, exit_code);
		return;
	}
	sd_event_add_time_relative(d->ev, &d->stop_timer, CLOCK_MONOTONIC,
				   (uint64_t)d->cfg->daemon.shutdown_timeout_ms * 1000, 0,
				   on_stop_deadline, d);
}

static int on_retire(sd_event_source *s, void *userdata)
{
	struct daemon *d = userdata;
	sd_event_source_disable_unref(s);
	d->retire_defer = NULL;
	daemon_flow_ended(d, NULL);
	return 0;
}

void daemon_flow_ended(struct daemon *d, struct flow *f)
{
	(void)f;
	/* Free retired sets whose passes have all ended. */
	struct daemon_retired **pp = &d->retired;
	while (*pp) {
		struct daemon_retired *rt = *pp;
		bool busy = false;
		for (size_t i = 0; i < rt->n_flows; i++)
			busy |= rt->flows[i]->running;
		if (busy) {
			pp = &rt->next;
			continue;
		}
		*pp = rt->next;
		/* Not from inside the flow's own callback chain: its code is
		 * still on the stack. Free it from the loop, right after. */
		if (f && rt->n_flows) {
			bool mine = false;
			for (size_t i = 0; i < rt->n_flows; i++)
				mine |= rt->flows[i] == f;
			if (mine) {
				rt->next = *pp;
				*pp = rt;
				pp = &rt->next;
				if (!d->retire_defer &&
				    sd_event_add_defer(d->ev, &d->retire_defer, on_retire, d) < 0)
					d->retire_defer = NULL; /* freed at the next end or exit */
				continue;
			}
		}
		retired_free(rt);
	}
	daemon_update_status(d);
	if (d->stopping && !any_running(d))
		sd_event_exit(d->ev, d->exit_code);
}

/* What a reload cannot change without a restart. */
static bool str_differs(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") != 0;
}

static void pending_restart(const struct config *old, const struct config *nu, json_t *notes)
{
	const struct conf_store *os = &old->store, *ns = &nu->store;
	const struct conf_control *oc = &old->control, *nc = &nu->control;
	if (str_differs(os->path, ns->path) || os->busy_timeout_ms != ns->busy_timeout_ms ||
	    os->synchronous != ns->synchronous)
		json_array_append_new(notes,
				      json_string("[store] path, busy_timeout and synchronous "
						  "change at the next restart"));
	if (str_differs(oc->path, nc->path) || oc->mode != nc->mode ||
	    str_differs(oc->group, nc->group) || oc->max_clients != nc->max_clients ||
	    oc->max_request_bytes != nc->max_request_bytes ||
	    oc->idle_timeout_ms != nc->idle_timeout_ms)
		json_array_append_new(notes, json_string("[control] changes at the next restart"));
	if (old->daemon.log_target != nu->daemon.log_target)
		json_array_append_new(
			notes, json_string("[daemon] log_target changes at the next restart"));
	if (str_differs(old->daemon.plugin_dir, nu->daemon.plugin_dir))
		json_array_append_new(notes, json_string("[daemon] plugin_dir: plugins already "
							 "loaded stay loaded until restart"));
}

int daemon_reload(struct daemon *d, json_t **errors)
{
	struct conf_errors errs = {0};
	struct config *cfg = NULL;
	struct conn **conns = NULL;
	struct flow **flows = NULL;
	size_t nc = 0, nf = 0;
	int r;
	char buf[64];

	if (errors)
		*errors = NULL;
	snprintf(buf, sizeof(buf), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)now_mono_us());
	sd_notify(0, buf);
	log_notice("reloading configuration %s", d->config_path);

	r = conf_load(d->config_path, &cfg, &errs);
	if (r >= 0)
		r = build_instances(d, cfg, true, NULL, NULL, NULL, NULL, &errs);
	if (r >= 0)
		r = build_instances(d, cfg, false, &conns, &nc, &flows, &nf, &errs);
	if (r < 0) {
		log_errors(&errs);
		log_err("new configuration rejected (%zu error%s); still running the previous one",
			errs.n, errs.n == 1 ? "" : "s");
		d->reloads_failed++;
		free(d->last_reload_error);
		d->last_reload_error = conf_errors_join(&errs);
		if (errors) {
			*errors = json_array();
			for (size_t i = 0; i < errs.n; i++)
				json_array_append_new(*errors, json_string(errs.msgs[i]));
		}
		conf_free(cfg);
		conf_errors_free(&errs);
		daemon_update_status(d);
		sd_notifyf(0, "READY=1\nSTATUS=%s", d->status_line);
		return r < 0 ? r : -EINVAL;
	}

	json_t *notes = json_array();
	pending_restart(d->cfg, cfg, notes);
	for (size_t i = 0; i < json_array_size(notes); i++)
		log_notice("%s", json_string_value(json_array_get(notes, i)));

	/* Swap. Carry over pause state and run history by flow name. */
	for (size_t i = 0; i < nf; i++) {
		struct flow *old = daemon_flow_find(d, flows[i]->name);
		if (!old)
			continue;
		flows[i]->paused = old->paused;
		flows[i]->runs_ok = old->runs_ok;
		flows[i]->runs_failed = old->runs_failed;
		flows[i]->items_ok = old->items_ok;
		flows[i]->items_failed = old->items_failed;
		flows[i]->last_start_ms = old->last_start_ms;
		flows[i]->last_end_ms = old->last_end_ms;
		flows[i]->last_ok_ms = old->last_ok_ms;
		flows[i]->last_err_ms = old->last_err_ms;
		flows[i]->last_duration_us = old->last_duration_us;
		flows[i]->latency = old->latency;
		flows[i]->last_err = old->last_err ? xstrdup(old->last_err) : NULL;
		flows[i]->last_summary = old->last_summary ? xstrdup(old->last_summary) : NULL;
	}
	struct daemon_retired *rt = xcalloc(1, sizeof(*rt));
	rt->cfg = d->cfg;
	rt->conns = d->conns;
	rt->n_conns = d->n_conns;
	rt->flows = d->flows;
	rt->n_flows = d->n_flows;
	for (size_t i = 0; i < rt->n_flows; i++) {
		sd_event_source_disable_unref(rt->flows[i]->timer);
		rt->flows[i]->timer = NULL;
		rt->flows[i]->next_run_us = 0;
		flow_stop(rt->flows[i]);
	}
	rt->next = d->retired;
	d->retired = rt;

	d->cfg = cfg;
	d->conns = conns;
	d->n_conns = nc;
	d->flows = flows;
	d->n_flows = nf;
	log_set_level(cfg->daemon.log_level);
	if (d->store)
		store_set_max_size(d->store, cfg->store.max_size_bytes);
	for (size_t i = 0; i < d->n_flows; i++)
		flow_schedule(d->flows[i], false);
	daemon_flow_ended(d, NULL); /* frees the retired set at once if nothing runs */

	d->reloads_ok++;
	free(d->last_reload_error);
	d->last_reload_error = NULL;
	log_notice("configuration reloaded: %zu connector%s, %zu flow%s", nc, nc == 1 ? "" : "s",
		   nf, nf == 1 ? "" : "s");
	if (errors)
		*errors = notes;
	else
		json_decref(notes);
	conf_errors_free(&errs);
	daemon_update_status(d);
	sd_notifyf(0, "READY=1\nSTATUS=%s", d->status_line);
	return 0;
}

struct conn *daemon_conn_find(struct daemon *d, const char *name)
{
	for (size_t i = 0; i < d->n_conns; i++)
		if (!strcmp(d->conns[i]->name, name))
			return d->conns[i];
	return NULL;
}

struct flow *daemon_flow_find(struct daemon *d, const char *name)
{
	for (size_t i = 0; i < d->n_flows; i++)
		if (!strcmp(d->flows[i]->name, name))
			return d->flows[i];
	return NULL;
}

/* Whether a retired (pre-reload) flow of this name is still in a pass. */
bool daemon_retired_running(struct daemon *d, const char *name)
{
	for (struct daemon_retired *rt = d->retired; rt; rt = rt->next)
		for (size_t i = 0; i < rt->n_flows; i++)
			if (rt->flows[i]->running && !strcmp(rt->flows[i]->name, name))
				return true;
	return false;
}

json_t *daemon_connectors_json(struct daemon *d)
{
	json_t *a = json_array();
	for (size_t i = 0; i < d->n_conns; i++)
		json_array_append_new(a, conn_status_json(d->conns[i]));
	/* Disabled connectors have no instance; list them from the config. */
	for (size_t i = 0; d->cfg && i < d->cfg->n_connectors; i++) {
		const struct conf_connector *cc = &d->cfg->connectors[i];
		if (cc->enabled)
			continue;
		json_t *j = json_object();
		json_object_set_new(j, "name", json_string(cc->name));
		json_object_set_new(j, "type", json_string(cc->type->name));
		json_object_set_new(j, "enabled", json_false());
		json_object_set_new(j, "state", json_string("disabled"));
		json_array_append_new(a, j);
	}
	return a;
}

json_t *daemon_status_json(struct daemon *d)
{
	json_t *j = json_object();
	json_t *cfg = json_object();
	json_t *st = json_object();
	json_t *rl = json_object();
	json_t *flows = json_array();
	const char *why = NULL;

	json_object_set_new(j, "version", json_string(LT_VERSION));
	json_object_set_new(j, "pid", json_integer(getpid()));
	json_object_set_new(j, "started", fmt_time_json(d->start_wall_ms));
	json_object_set_new(j, "uptime_s",
			    json_real((double)(now_mono_us() - d->start_mono_us) / 1e6));
	json_object_set_new(j, "stopping", json_boolean(d->stopping));
	json_object_set_new(cfg, "path", json_string(d->config_path));
	json_object_set_new(cfg, "loaded", fmt_time_json(d->cfg ? d->cfg->loaded_wall_ms : 0));
	json_object_set_new(j, "config", cfg);
	if (d->store) {
		enum store_health h = store_health(d->store, &why);
		json_object_set_new(st, "health", json_string(store_health_name(h)));
		json_object_set_new(st, "why", why ? json_string(why) : json_null());
		json_object_set_new(st, "path", json_string(d->cfg->store.path));
		json_object_set_new(st, "size_bytes", json_integer(store_size_bytes(d->store)));
		json_object_set_new(st, "schema_version",
				    json_integer(store_schema_version(d->store)));
		json_object_set_new(j, "mismatches", store_mismatch_counts(d->store));
	}
	json_object_set_new(j, "store", st);
	json_object_set_new(rl, "ok", json_integer((json_int_t)d->reloads_ok));
	json_object_set_new(rl, "failed", json_integer((json_int_t)d->reloads_failed));
	json_object_set_new(rl, "last_error",
			    d->last_reload_error ? json_string(d->last_reload_error) : json_null());
	json_object_set_new(j, "reloads", rl);
	json_object_set_new(j, "connectors", daemon_connectors_json(d));
	for (size_t i = 0; i < d->n_flows; i++)
		json_array_append_new(flows, flow_status_json(d->flows[i]));
	json_object_set_new(j, "flows", flows);
	json_object_set_new(j, "http_pending",
			    json_integer((json_int_t)(d->http ? http_core_pending(d->http) : 0)));
	return j;
}

void daemon_update_status(struct daemon *d)
{
	char line[sizeof(d->status_line)];
	size_t running = 0, paused = 0, failing = 0, open = 0;
	const char *why = NULL;

	for (size_t i = 0; i < d->n_flows; i++) {
		running += d->flows[i]->running;
		paused += d->flows[i]->paused;
		failing += d->flows[i]->last_err_ms > d->flows[i]->last_ok_ms;
	}
	for (size_t i = 0; i < d->n_conns; i++) {
		if (!d->conns[i]->http)
			continue;
		struct http_stats hs;
		http_client_stats(d->conns[i]->http, &hs);
		open += hs.circuit != HTTP_CIRCUIT_CLOSED;
	}
	enum store_health h = d->store ? store_health(d->store, &why) : STORE_OK;
	snprintf(line, sizeof(line),
		 "%s; flows: %zu running, %zu paused, %zu failing; %zu circuit%s open; store %s",
		 d->stopping ? "stopping" : "ready", running, paused, failing, open,
		 open == 1 ? "" : "s", store_health_name(h));
	if (strcmp(line, d->status_line) != 0) {
		memcpy(d->status_line, line, sizeof(line));
		sd_notifyf(0, "STATUS=%s", line);
	}
}

int daemon_check_config(const char *config_path)
{
	struct conf_errors errs = {0};
	struct config *cfg = NULL;
	struct daemon *d = daemon_new(config_path);
	int r = conf_load(config_path, &cfg, &errs);
	/* A loop and an HTTP core (no I/O happens) so that connectors validate
	 * their HTTP and adapter options exactly as at start. */
	if (r >= 0 && (sd_event_new(&d->ev) < 0 || !(d->http = http_core_new(d->ev)))) {
		fprintf(stderr, "%s: cannot set up the HTTP core for checking\n", config_path);
		r = -ENOMEM;
	}
	if (r >= 0) {
		d->cfg = cfg;
		r = build_instances(d, cfg, true, NULL, NULL, NULL, NULL, &errs);
	}
	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	if (r < 0 || errs.n)
		fprintf(stderr, "%s: %zu error%s\n", config_path, errs.n, errs.n == 1 ? "" : "s");
	else
		printf("%s: configuration is valid (%zu connector%s, %zu flow%s)\n", config_path,
		       cfg->n_connectors, cfg->n_connectors == 1 ? "" : "s", cfg->n_flows,
		       cfg->n_flows == 1 ? "" : "s");
	conf_errors_free(&errs);
	daemon_free(d);
	return r < 0 ? 1 : 0;
}
