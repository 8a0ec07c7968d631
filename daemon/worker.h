/*
 * worker: one background thread for pure CPU work (mapping a page of dossier
 * changes, serialising it), so that the event loop keeps pushing while the
 * next page is prepared — on two cores the two halves of a flow then run at
 * once. Jobs run one at a time in the order submitted, and their results
 * come back on the loop in that same order.
 *
 * A job's run() executes on the worker thread: it may only touch the job and
 * data that nobody changes meanwhile (immutable mappings, JSON values the
 * job holds a reference to — jansson's reference counts are atomic). done()
 * executes on the loop, where the store and everything else may be used.
 * Every submitted job gets exactly one done(): ran true after run(), false
 * when the worker was freed before the job ran (done then only releases).
 */
#ifndef LT_WORKER_H
#define LT_WORKER_H

#include <stdbool.h>
#include <systemd/sd-event.h>

struct worker;

typedef void (*worker_run_fn)(void *job);
typedef void (*worker_done_fn)(void *job, bool ran);

/* Starts the thread; results are delivered on ev. NULL when the thread or
 * its eventfd cannot be had (errno set): callers then run jobs inline. */
struct worker *worker_new(sd_event *ev, const char *name);
/* Queues job; 0, or -EINVAL. run and done are called as above. */
int worker_submit(struct worker *w, worker_run_fn run, worker_done_fn done, void *job);
/* Jobs submitted whose done() has not been called yet. */
size_t worker_pending(const struct worker *w);
/* Waits for the job running now, then calls done() on the loop thread for
 * every job: ran true for those that ran, false for those still queued.
 * Accepts NULL. */
void worker_free(struct worker *w);

#endif
