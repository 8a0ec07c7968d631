/*
 * test_conn: conn_later, the pending operations of a connector instance
 * (daemon/conn.c), on a real sd-event loop: a scheduled answer is given from
 * the loop and never from inside the call that scheduled it; freeing the
 * owner releases its scheduled answers unfired and orphans the operations
 * still waiting for a request; an owner freed from inside an answer leaves
 * nothing behind to call or to free twice.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "connector.h"
#include "daemon.h"
#include "tap.h"
#include "util.h"

/* An operation of the test's "connector" (later not first: entry must find op). */
struct op {
	int tag;
	struct conn_later later;
};

/* The test's connector state: the owner of the operations. */
struct owner {
	struct conn_later_list pending;
};

/* Kept outside the owner: release must work after the owner is gone. */
static int fired, fired_inside, released;
static bool in_call;	  /* set while the test is inside a conn_later call */
static void *fire_owner;  /* l->owner as the last fire saw it */
static bool fire_on_list; /* whether the last fire found l still on a list */

static void op_release(struct conn_later *l)
{
	released++;
	free(conn_later_entry(l, struct op, later));
}

static struct op *op_new(struct owner *o)
{
	struct op *op = xcalloc(1, sizeof(*op));
	conn_later_add(&o->pending, &op->later, o, op_release);
	return op;
}

static void op_fire(struct conn_later *l)
{
	fired++;
	if (in_call)
		fired_inside++;
	fire_owner = l->owner;
	fire_on_list = l->node.on != NULL;
}

/* An answer whose callback frees the connector, as a flow may do. */
static void op_fire_frees_owner(struct conn_later *l)
{
	struct owner *o = l->owner;

	op_fire(l);
	conn_later_cancel_all(&o->pending);
	free(o);
}

static int defer(struct op *op, struct conn *c, conn_later_fn fire)
{
	int r;

	in_call = true;
	r = conn_later_defer(&op->later, c, fire);
	in_call = false;
	return r;
}

/* Runs the loop until nothing is pending (bounded). */
static void run_loop(sd_event *ev)
{
	for (int i = 0; i < 100 && sd_event_run(ev, 0) > 0; i++)
		;
}

int main(void)
{
	struct daemon dmn = {0};
	struct conn c = {0};
	struct owner *o = xcalloc(1, sizeof(*o));
	struct op *a, *b, *inflight;
	int r;

	if (sd_event_new(&dmn.ev) < 0) {
		printf("Bail out! sd_event_new\n");
		return 1;
	}
	c.d = &dmn;

	/* ---- a scheduled answer comes from the loop ---- */
	a = op_new(o);
	r = defer(a, &c, op_fire);
	is_int(r, 0, "conn_later_defer schedules an answer on the instance's loop");
	is_int(fired, 0, "the answer is not given from inside conn_later_defer");
	is_int(o->pending.ops.n, 1,
	       "a scheduled operation stays on its owner's list until it runs");
	run_loop(dmn.ev);
	is_int(fired, 1, "the loop gives the scheduled answer, once");
	is_int(fired_inside, 0, "no answer ran while a conn_later call was in progress");
	ok(fire_owner == o, "fire sees the owner the operation was added for");
	ok(!fire_on_list, "fire runs with the operation off the list, so it may free the owner");
	is_int(released, 1, "the operation is released once fire has returned");
	is_int(o->pending.ops.n, 0, "the owner's list is empty after the answer");

	/* ---- a freed owner is never called back ---- */
	fired = released = 0;
	inflight = op_new(o);
	b = op_new(o);
	is_int(defer(b, &c, op_fire), 0, "a second answer is scheduled");
	conn_later_cancel_all(&o->pending);
	is_int(released, 1, "freeing the owner releases its scheduled answer at once");
	ok(inflight->later.owner == NULL,
	   "an operation waiting for a request loses its owner when the owner is freed");
	is_int(o->pending.ops.n, 0, "the owner's list is empty after conn_later_cancel_all");
	free(o);
	o = NULL;
	run_loop(dmn.ev);
	is_int(fired, 0, "a scheduled answer of a freed owner is never given");
	/* The request's (cancelled) completion would free it now. */
	conn_later_remove(&inflight->later);
	free(inflight);

	/* ---- the owner freed from inside an answer ---- */
	fired = released = 0;
	o = xcalloc(1, sizeof(*o));
	a = op_new(o);
	b = op_new(o);
	is_int(defer(a, &c, op_fire_frees_owner), 0, "first answer of an owner scheduled");
	is_int(defer(b, &c, op_fire_frees_owner), 0, "second answer of the same owner scheduled");
	run_loop(dmn.ev);
	is_int(fired, 1, "after an answer freed the owner, its other answer is not given");
	is_int(released, 2, "both operations are released, each once");
	o = NULL;

	/* ---- removing an operation cancels its answer ---- */
	fired = released = 0;
	o = xcalloc(1, sizeof(*o));
	a = op_new(o);
	is_int(defer(a, &c, op_fire), 0, "an answer is scheduled");
	conn_later_remove(&a->later);
	is_int(o->pending.ops.n, 0, "conn_later_remove takes the operation off its owner's list");
	ok(a->later.defer == NULL, "conn_later_remove drops the scheduled answer");
	free(a);
	run_loop(dmn.ev);
	is_int(fired, 0, "a removed operation's answer is never given");

	/* ---- refusals leave the operation to the caller ---- */
	a = op_new(o);
	is_int(defer(a, &c, op_fire), 0, "an answer is scheduled");
	is_int(defer(a, &c, op_fire), -EINVAL, "an operation already scheduled is refused");
	run_loop(dmn.ev);
	is_int(fired, 1, "the operation scheduled twice is answered once");
	a = op_new(o);
	c.d = NULL;
	is_int(defer(a, &c, op_fire), -EINVAL, "an instance without a daemon is refused");
	dmn.ev = sd_event_unref(dmn.ev);
	c.d = &dmn;
	is_int(defer(a, &c, op_fire), -EINVAL, "an instance whose daemon has no loop is refused");
	ok(a->later.defer == NULL, "a refused operation has nothing scheduled");
	is_int(o->pending.ops.n, 1, "a refused operation stays on the list for its caller to free");
	ok(conn_later_entry(&a->later, struct op, later) == a,
	   "conn_later_entry finds the operation embedding its conn_later");
	conn_later_remove(&a->later);
	free(a);
	free(o);
	return tap_done();
}
