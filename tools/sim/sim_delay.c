/*
 * sim_delay.c: the delay queue that lets latency and hang faults hold
 * thousands of requests without holding a worker thread for any of them.
 *
 * The access handler suspends its connection (MHD_suspend_connection) and
 * parks it here with a due time; one timer thread resumes it when the time
 * comes. MHD does not watch a suspended connection, so the timer thread
 * also watches each parked socket for the peer's hang-up (EPOLLRDHUP in its
 * own epoll set) and resumes the connection early, with *gone set, when the
 * client gives up: a hung request then costs nothing once its client left.
 *
 * Parked connections live in slots owned by this file (never freed while
 * the queue runs) and are referred to by slot number and generation, so a
 * stale epoll event cannot reach a request that MHD already freed. A
 * min-heap of slot numbers orders them by due time. The epoll registration
 * of a socket is removed before its connection is resumed, while the socket
 * is certainly still open.
 *
 * Lock order: this file's mutex, then MHD's internal ones (suspend is
 * called with our mutex held; resume without it).
 */
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "sim.h"

#define WAKE_TAG UINT64_MAX

struct slot {
	struct MHD_Connection *conn; /* borrowed; NULL when the slot is free */
	bool *gone;		     /* borrowed, in the request */
	uint64_t due_us;
	int fd; /* watched socket, or -1 */
	uint32_t gen;
	size_t heap_pos;
};

static struct {
	pthread_mutex_t lock;
	struct slot *slots;
	size_t n_slots;
	uint32_t *free_list; /* free slot numbers */
	size_t n_free;
	uint32_t *heap; /* slot numbers, min-heap on due_us */
	size_t heap_n;
	int epfd;
	int wakefd;
	bool running;
	bool stopping;
	pthread_t thread;
} dq = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.epfd = -1,
	.wakefd = -1,
};

/* ---- heap ----------------------------------------------------------- */

static bool heap_less(size_t a, size_t b)
{
	return dq.slots[dq.heap[a]].due_us < dq.slots[dq.heap[b]].due_us;
}

static void heap_swap(size_t a, size_t b)
{
	uint32_t t = dq.heap[a];

	dq.heap[a] = dq.heap[b];
	dq.heap[b] = t;
	dq.slots[dq.heap[a]].heap_pos = a;
	dq.slots[dq.heap[b]].heap_pos = b;
}

static void heap_up(size_t i)
{
	while (i > 0 && heap_less(i, (i - 1) / 2)) {
		heap_swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < dq.heap_n && heap_less(l, m))
			m = l;
		if (r < dq.heap_n && heap_less(r, m))
			m = r;
		if (m == i)
			return;
		heap_swap(i, m);
		i = m;
	}
}

static void heap_remove(size_t pos)
{
	dq.heap_n--;
	if (pos == dq.heap_n)
		return;
	dq.heap[pos] = dq.heap[dq.heap_n];
	dq.slots[dq.heap[pos]].heap_pos = pos;
	heap_down(pos);
	heap_up(pos);
}

/* ---- slots ---------------------------------------------------------- */

static uint32_t slot_alloc(void)
{
	size_t old = dq.n_slots;

	if (dq.n_free == 0) {
		size_t n = old ? old * 2 : 64;

		if (n > UINT32_MAX / 2)
			sim_die("delay queue too large");
		dq.slots = sim_xrealloc(dq.slots, n * sizeof(*dq.slots));
		memset(dq.slots + old, 0, (n - old) * sizeof(*dq.slots));
		dq.free_list = sim_xrealloc(dq.free_list, n * sizeof(*dq.free_list));
		dq.heap = sim_xrealloc(dq.heap, n * sizeof(*dq.heap));
		for (size_t i = n; i > old; i--)
			dq.free_list[dq.n_free++] = (uint32_t)(i - 1);
		dq.n_slots = n;
	}
	return dq.free_list[--dq.n_free];
}

/*
 * Takes slot s out of the queue (heap, epoll) and returns its connection,
 * to be resumed by the caller after unlocking. Lock held.
 */
static struct MHD_Connection *slot_detach(uint32_t s, bool gone)
{
	struct slot *sl = &dq.slots[s];
	struct MHD_Connection *conn = sl->conn;

	heap_remove(sl->heap_pos);
	if (sl->fd >= 0)
		epoll_ctl(dq.epfd, EPOLL_CTL_DEL, sl->fd, NULL);
	if (gone)
		*sl->gone = true;
	sl->conn = NULL;
	sl->gone = NULL;
	sl->fd = -1;
	sl->gen++;
	dq.free_list[dq.n_free++] = s;
	return conn;
}

/* ---- public --------------------------------------------------------- */

int sim_delay_add(struct MHD_Connection *conn, uint64_t due_us, bool *gone)
{
	const union MHD_ConnectionInfo *ci;
	struct epoll_event ev;
	struct slot *sl;
	uint32_t s;
	bool wake;

	pthread_mutex_lock(&dq.lock);
	if (!dq.running || dq.stopping) {
		pthread_mutex_unlock(&dq.lock);
		return -ESHUTDOWN;
	}
	/* Suspend before the entry is visible, so a resume cannot come first. */
	MHD_suspend_connection(conn);
	s = slot_alloc();
	sl = &dq.slots[s];
	sl->conn = conn;
	sl->gone = gone;
	sl->due_us = due_us;
	sl->fd = -1;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci != NULL && ci->connect_fd >= 0) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLRDHUP;
		ev.data.u64 = ((uint64_t)sl->gen << 32) | s;
		if (epoll_ctl(dq.epfd, EPOLL_CTL_ADD, ci->connect_fd, &ev) == 0)
			sl->fd = ci->connect_fd;
	}
	dq.heap[dq.heap_n] = s;
	sl->heap_pos = dq.heap_n++;
	heap_up(sl->heap_pos);
	wake = sl->heap_pos == 0;
	pthread_mutex_unlock(&dq.lock);
	if (wake) {
		uint64_t one = 1;

		if (write(dq.wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			sim_log(SIM_LOG_WARN, "delay queue: wake-up: %s", strerror(errno));
	}
	return 0;
}

/* Resumes the connections collected in list (no lock held). */
static void resume_all(struct MHD_Connection **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		MHD_resume_connection(list[i]);
}

static void *timer_main(void *arg)
{
	struct epoll_event evs[64];
	struct MHD_Connection **ready = NULL;
	size_t n_ready = 0, cap_ready = 0;
	int timeout_ms = -1;

	(void)arg;
	for (;;) {
		int n = epoll_wait(dq.epfd, evs, (int)SIM_ARRAY_SIZE(evs), timeout_ms);
		uint64_t now;

		if (n < 0 && errno != EINTR)
			sim_die("delay queue: epoll_wait: %s", strerror(errno));
		pthread_mutex_lock(&dq.lock);
		if (dq.stopping) {
			pthread_mutex_unlock(&dq.lock);
			break;
		}
		n_ready = 0;
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;
			uint32_t s = (uint32_t)tag;

			if (tag == WAKE_TAG) {
				uint64_t v;

				if (read(dq.wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					sim_log(SIM_LOG_WARN, "delay queue: read: %s",
						strerror(errno));
				continue;
			}
			/* The slot may have been resumed and reused since the event. */
			if (s >= dq.n_slots || dq.slots[s].conn == NULL ||
			    dq.slots[s].gen != (uint32_t)(tag >> 32))
				continue;
			if (n_ready == cap_ready) {
				cap_ready = cap_ready ? cap_ready * 2 : 64;
				ready = sim_xrealloc(ready, cap_ready * sizeof(*ready));
			}
			ready[n_ready++] = slot_detach(s, true);
		}
		now = sim_now_us();
		while (dq.heap_n > 0 && dq.slots[dq.heap[0]].due_us <= now) {
			if (n_ready == cap_ready) {
				cap_ready = cap_ready ? cap_ready * 2 : 64;
				ready = sim_xrealloc(ready, cap_ready * sizeof(*ready));
			}
			ready[n_ready++] = slot_detach(dq.heap[0], false);
		}
		if (dq.heap_n > 0) {
			/* Round up: waking early would only spin. */
			uint64_t wait_us = dq.slots[dq.heap[0]].due_us - now;
			uint64_t ms = (wait_us + 999) / 1000;

			timeout_ms = ms > 60000 ? 60000 : (int)ms;
		} else {
			timeout_ms = -1;
		}
		pthread_mutex_unlock(&dq.lock);
		resume_all(ready, n_ready);
	}
	free(ready);
	return NULL;
}

int sim_delay_start(void)
{
	struct epoll_event ev;
	int r;

	dq.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (dq.epfd < 0)
		goto fail;
	dq.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (dq.wakefd < 0)
		goto fail;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u64 = WAKE_TAG;
	if (epoll_ctl(dq.epfd, EPOLL_CTL_ADD, dq.wakefd, &ev) < 0)
		goto fail;
	r = pthread_create(&dq.thread, NULL, timer_main, NULL);
	if (r != 0) {
		errno = r;
		goto fail;
	}
	dq.running = true;
	return 0;
fail:
	r = -errno;
	sim_log(SIM_LOG_ERR, "delay queue: %s", strerror(errno));
	sim_delay_stop();
	return r;
}

void sim_delay_stop(void)
{
	struct MHD_Connection **list = NULL;
	size_t n = 0;
	uint64_t one = 1;

	pthread_mutex_lock(&dq.lock);
	dq.stopping = true;
	pthread_mutex_unlock(&dq.lock);
	if (dq.running) {
		if (write(dq.wakefd, &one, sizeof(one)) < 0)
			sim_log(SIM_LOG_WARN, "delay queue: wake-up: %s", strerror(errno));
		pthread_join(dq.thread, NULL);
	}
	/* No new entries can come (stopping); hand every parked one back. */
	pthread_mutex_lock(&dq.lock);
	if (dq.heap_n > 0) {
		list = sim_xmalloc(dq.heap_n * sizeof(*list));
		while (dq.heap_n > 0)
			list[n++] = slot_detach(dq.heap[0], true);
	}
	dq.running = false;
	pthread_mutex_unlock(&dq.lock);
	resume_all(list, n);
	free(list);
	if (dq.epfd >= 0)
		close(dq.epfd);
	if (dq.wakefd >= 0)
		close(dq.wakefd);
	dq.epfd = dq.wakefd = -1;
	free(dq.slots);
	free(dq.free_list);
	free(dq.heap);
	dq.slots = NULL;
	dq.free_list = NULL;
	dq.heap = NULL;
	dq.n_slots = dq.n_free = 0;
}
