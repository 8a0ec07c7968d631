/*
 * flow: a scheduled or on-demand job inside the daemon (catalog, dossier,
 * payment, report, relay, ...).
 *
 * The scheduler (flow.c) owns timing: a timer per flow with interval and
 * jitter, `run` now, pause and resume, a run row in the store per pass,
 * state for status and metrics. A flow type only does a pass: start() begins
 * it and the type calls flow_finish() when it is over, possibly much later
 * (it is driven by HTTP completions on the same loop).
 */
#ifndef LT_FLOW_H
#define LT_FLOW_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "connector.h"

struct flow;
struct daemon;

struct flow_type {
	const char *name;
	const char *description;
	const struct conf_option *options; /* offsets into opts; may be NULL */
	size_t opts_size;
	/*
	 * Resolves references (connectors by name) and sets up f->priv.
	 * check_only: validate only. Returns 0 or negative with *err.
	 */
	int (*init)(struct flow *f, bool check_only, char **err);
	void (*free)(struct flow *f);
	/* Begins a pass. Returns 0, or negative (the pass failed to start). */
	int (*start)(struct flow *f);
	/*
	 * Asks a running pass to stop soon (shutdown, reload): persist what is in
	 * flight and call flow_finish() (possibly from within stop()).
	 */
	void (*stop)(struct flow *f);
	/* Optional: extra fields for status (new ref). */
	json_t *(*status)(struct flow *f);
	/* Optional: help text of the flow's end-to-end latency histogram
	 * (struct flow.latency, metric lienthong_flow_latency_seconds); NULL =
	 * the type keeps none. */
	const char *latency_help;
};

/* Upper bounds (seconds) of the latency histogram's buckets; the last is +Inf. */
#define FLOW_LATENCY_BUCKETS 13
extern const double flow_latency_bounds_s[FLOW_LATENCY_BUCKETS];

/* A latency histogram (counts per bucket, not cumulative). */
struct flow_latency {
	uint64_t count[FLOW_LATENCY_BUCKETS];
	double sum_s;
};

enum flow_state {
	FLOW_IDLE,
	FLOW_RUNNING,
	FLOW_PAUSED,   /* not scheduled; `run` still refused until resume */
	FLOW_DISABLED, /* enabled = false in config */
};

const char *flow_state_name(enum flow_state s);

struct flow {
	const struct flow_type *type; /* borrowed */
	char *name;		      /* owned */
	const struct conf_flow *conf; /* borrowed */
	void *opts;		      /* borrowed: conf->opts */
	void *priv;		      /* type-owned */
	struct daemon *d;	      /* borrowed */
	bool running;
	bool paused;
	bool stopping;	   /* stop() was called for this pass */
	char run_mode[16]; /* "", "full", "quick": asked by `run FLOW MODE`, read by start() */
	int64_t run_id;	   /* store id of the current/last pass, 0 none */
	int64_t last_start_ms, last_end_ms, last_ok_ms, last_err_ms;
	char *last_err;	      /* owned */
	char *last_summary;   /* owned */
	uint64_t next_run_us; /* CLOCK_MONOTONIC; 0 = not scheduled */
	uint64_t runs_ok, runs_failed;
	uint64_t items_ok, items_failed; /* records handled, cumulative */
	uint64_t pass_items_ok, pass_items_failed;
	uint64_t pass_start_us; /* CLOCK_MONOTONIC start of the current pass */
	uint64_t last_duration_us;
	struct flow_latency latency;   /* kept by types with latency_help */
	struct sd_event_source *timer; /* owned */
	unsigned refs;
};

/* Creates a flow from its section. Returns 0 with *out, or negative with *err. */
int flow_new(struct daemon *d, const struct conf_flow *cf, bool check_only, struct flow **out,
	     char **err);
void flow_free(struct flow *f);

/* Arms the schedule (first run after interval + jitter, or at once if run_at_start). */
int flow_schedule(struct flow *f, bool at_start);

/*
 * Starts a pass now. Returns 0, 1 when already running, -EBUSY when paused,
 * -EAGAIN when the daemon is stopping, or the type's start() error.
 */
int flow_run_now(struct flow *f);
int flow_pause(struct flow *f);
int flow_resume(struct flow *f);
/* Asks a running pass to stop (type->stop). */
void flow_stop(struct flow *f);

/* How a pass went so far: its worst outcome and its first failure. */
struct flow_result {
	enum conn_outcome outcome; /* CONN_OK until something fails */
	char *why;		   /* owned: the first failure, or NULL */
};
/* Notes a failure of outcome o: the worst outcome is kept, the first text. */
void flow_result_note(struct flow_result *r, enum conn_outcome o, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void flow_result_clear(struct flow_result *r);
/*
 * The outcome r (0 or -errno) of one of a pass's store writes (what: "record
 * a mismatch"): true when it succeeded; else, the first time, the failure
 * is noted in res (CONN_RETRY, a full disk or [store] max_size named as
 * such) and *failed is set: the pass stops writing, nothing more to lose.
 */
bool flow_store_ok(struct flow_result *res, bool *failed, int r, const char *what);

/*
 * The enabled connector named name (a type's init resolving its option
 * key), which must be of type want; NULL with *err saying which and why.
 * Borrowed: the caller takes a reference to keep it.
 */
struct conn *flow_conn(struct flow *f, const char *key, const char *name,
		       const struct connector *want, char **err);

/* Counts records handled in the current pass. */
void flow_count(struct flow *f, uint64_t ok, uint64_t failed);
/* Adds one observation of seconds (clamped at 0) to f->latency. */
void flow_latency_add(struct flow *f, double seconds);
/*
 * Ends the current pass: records the run in the store, updates state and
 * reschedules. o is CONN_OK or a failure; summary is a one-line text.
 */
void flow_finish(struct flow *f, enum conn_outcome o, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

enum flow_state flow_state(const struct flow *f);
json_t *flow_status_json(const struct flow *f);

/* Flow types known to the daemon. NULL when unknown / past the end. */
const struct flow_type *flow_type_find(const char *name);
const struct flow_type *flow_type_at(size_t i);

#endif
