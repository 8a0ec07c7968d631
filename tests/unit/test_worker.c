/*
 * test_worker: the worker thread of worker.h with a real sd-event loop —
 * jobs run off the loop thread, one at a time, and come back on the loop
 * in the order submitted; freeing the worker gives every job its done(),
 * ran false for those it never started.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "util.h"
#include "worker.h"

#define N_JOBS 200

struct job {
	int id;
	pthread_t ran_on;
	bool ran, done, done_ran, done_on_loop;
	unsigned sleep_us;
};

static pthread_t loop_thread;
static int order[N_JOBS + 8], n_order;
static int running, max_running;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static sd_event *ev;
static int want_done;

static void run(void *ud)
{
	struct job *j = ud;
	pthread_mutex_lock(&mu);
	running++;
	if (running > max_running)
		max_running = running;
	pthread_mutex_unlock(&mu);
	if (j->sleep_us)
		usleep(j->sleep_us);
	j->ran_on = pthread_self();
	j->ran = true;
	pthread_mutex_lock(&mu);
	running--;
	pthread_mutex_unlock(&mu);
}

static void done(void *ud, bool ran)
{
	struct job *j = ud;
	j->done = true;
	j->done_ran = ran;
	j->done_on_loop = pthread_equal(pthread_self(), loop_thread);
	order[n_order++] = j->id;
	if (n_order == want_done)
		sd_event_exit(ev, 0);
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *ud)
{
	(void)s;
	(void)usec;
	(void)ud;
	sd_event_exit(ev, 1);
	return 0;
}

int main(void)
{
	static struct job jobs[N_JOBS];
	sd_event_source *timer = NULL;
	loop_thread = pthread_self();
	if (sd_event_new(&ev) < 0) {
		ok(0, "an event loop");
		return tap_done();
	}
	sd_event_add_time_relative(ev, &timer, CLOCK_MONOTONIC, 20 * 1000000ULL, 0, on_timeout,
				   NULL);

	struct worker *w = worker_new(ev, "test-worker");
	ok(w != NULL, "a worker starts");
	is_int(worker_submit(w, NULL, done, &jobs[0]), -EINVAL, "a job without run() is refused");
	int queued = 0;
	for (int i = 0; i < N_JOBS; i++) {
		jobs[i].id = i;
		jobs[i].sleep_us = i % 17 == 0 ? 2000 : 0;
		queued += worker_submit(w, run, done, &jobs[i]) == 0;
	}
	is_int(queued, N_JOBS, "every job is queued");
	is_int(worker_pending(w), N_JOBS, "every job is pending before the loop runs");
	want_done = N_JOBS;
	int r = sd_event_loop(ev);
	is_int(r, 0, "every job came back before the timeout");
	bool in_order = n_order == N_JOBS, all_ran = true, off_loop = true, on_loop = true;
	for (int i = 0; i < N_JOBS; i++) {
		in_order &= order[i] == i;
		all_ran &= jobs[i].ran && jobs[i].done && jobs[i].done_ran;
		off_loop &= !pthread_equal(jobs[i].ran_on, loop_thread);
		on_loop &= jobs[i].done_on_loop;
	}
	ok(in_order, "done() comes in the order the jobs were submitted");
	ok(all_ran, "every job ran, and its done() says so");
	ok(off_loop, "run() executes on the worker thread, not the loop's");
	ok(on_loop, "done() executes on the loop thread");
	is_int(max_running, 1, "one job runs at a time");
	is_int(worker_pending(w), 0, "nothing is pending afterwards");

	/* Freeing with jobs queued: the one running finishes, the rest are cancelled. */
	static struct job late[5];
	n_order = 0;
	want_done = -1;
	for (int i = 0; i < 5; i++) {
		late[i].id = 1000 + i;
		late[i].sleep_us = 50000;
		worker_submit(w, run, done, &late[i]);
	}
	usleep(10000); /* the first one is running */
	worker_free(w);
	int ran = 0, cancelled = 0;
	bool all_done = true, cancel_honest = true;
	for (int i = 0; i < 5; i++) {
		all_done &= late[i].done;
		ran += late[i].done_ran;
		cancelled += !late[i].done_ran;
		cancel_honest &= late[i].done_ran == late[i].ran;
	}
	ok(all_done, "worker_free() calls done() for every job");
	ok(ran >= 1 && cancelled >= 1,
	   "the running job finished, queued ones were cancelled (%d, %d)", ran, cancelled);
	ok(cancel_honest, "ran says whether run() was called");
	ok(order[0] == 1000 && n_order == 5, "and in submission order");
	worker_free(NULL);
	ok(1, "worker_free(NULL) is a no-op");

	sd_event_source_unref(timer);
	sd_event_unref(ev);
	return tap_done();
}
