/*
 * worker: see worker.h. A mutex-protected queue of jobs feeds the thread; a
 * second queue takes them back finished, and an eventfd wakes the loop to
 * call their done() in order. Both queues are intrusive lists of one node per
 * job, so a job costs one allocation whatever it carries.
 */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "list.h"
#include "log.h"
#include "util.h"

struct wjob {
	struct list_node node;
	worker_run_fn run;
	worker_done_fn done;
	void *job;
};

struct worker {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct list_head todo; /* submitted, not run */
	struct list_head done; /* run, done() not called; under mu */
	bool stop;
	size_t pending; /* loop thread only */
	int efd;
	sd_event_source *src;
	char *name;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->stop && list_empty(&w->todo))
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		struct wjob *j = list_entry(w->todo.head, struct wjob, node);
		list_remove(&j->node);
		pthread_mutex_unlock(&w->mu);
		j->run(j->job);
		pthread_mutex_lock(&w->mu);
		list_append(&w->done, &j->node);
		uint64_t one = 1;
		/* the counter only wakes the loop; a failed write leaves it
		 * non-zero (EAGAIN at the maximum), which wakes it as well */
		if (write(w->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_err("worker %s: cannot wake the loop: %s", w->name, strerror(errno));
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Calls done() for every finished job, in order. */
static void deliver(struct worker *w)
{
	struct list_head got = {0};
	pthread_mutex_lock(&w->mu);
	while (!list_empty(&w->done))
		list_append(&got, w->done.head);
	pthread_mutex_unlock(&w->mu);
	while (!list_empty(&got)) {
		struct wjob *j = list_entry(got.head, struct wjob, node);
		list_remove(&j->node);
		w->pending--;
		j->done(j->job, true);
		free(j);
	}
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	(void)s;
	(void)revents;
	uint64_t n;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_err("worker: cannot read its eventfd: %s", strerror(errno));
	deliver(ud);
	return 0;
}

struct worker *worker_new(sd_event *ev, const char *name)
{
	struct worker *w = xcalloc(1, sizeof(*w));
	int r;
	w->name = xstrdup(name ? name : "worker");
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->efd < 0)
		goto fail;
	r = sd_event_add_io(ev, &w->src, w->efd, EPOLLIN, on_wake, w);
	if (r < 0) {
		errno = -r;
		goto fail;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	r = pthread_create(&w->thread, NULL, worker_main, w);
	if (r != 0) {
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		errno = r;
		goto fail;
	}
	/* the name shows in top -H and in core dumps (at most 15 bytes) */
	char tn[16];
	snprintf(tn, sizeof(tn), "%s", w->name);
	pthread_setname_np(w->thread, tn);
	return w;
fail:
	r = errno;
	sd_event_source_disable_unref(w->src);
	if (w->efd >= 0)
		close(w->efd);
	free(w->name);
	free(w);
	errno = r;
	return NULL;
}

int worker_submit(struct worker *w, worker_run_fn run, worker_done_fn done, void *job)
{
	if (!w || !run || !done)
		return -EINVAL;
	struct wjob *j = xcalloc(1, sizeof(*j));
	j->run = run;
	j->done = done;
	j->job = job;
	w->pending++;
	pthread_mutex_lock(&w->mu);
	list_append(&w->todo, &j->node);
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

size_t worker_pending(const struct worker *w)
{
	return w ? w->pending : 0;
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	deliver(w);
	while (!list_empty(&w->todo)) {
		struct wjob *j = list_entry(w->todo.head, struct wjob, node);
		list_remove(&j->node);
		j->done(j->job, false);
		free(j);
	}
	sd_event_source_disable_unref(w->src);
	close(w->efd);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w->name);
	free(w);
}
