/*
 * A minimal out-of-tree connector for the plugin tests: type "null", a sink
 * that accepts every push and counts records. Built as a shared object, it
 * proves that dlopen loading, the ABI check and the core's callbacks work
 * for code outside the tree.
 */
#include <stddef.h>
#include <stdlib.h>

#include <systemd/sd-event.h>

#include "connector.h"
#include "daemon.h"
#include "util.h"

struct null_opts {
	int64_t fail_every;
};

static const struct conf_option null_options[] = {
	{"fail_every", CONF_INT, "0", 0, 1000000, NULL, offsetof(struct null_opts, fail_every), 0,
	 "Fail every Nth push (0 = never); for tests."},
	CONF_OPTION_END,
};

struct null_priv {
	uint64_t pushes, records;
};

static int null_init(struct conn *c, bool check_only, char **err)
{
	(void)err;
	if (!check_only)
		c->priv = xcalloc(1, sizeof(struct null_priv));
	return 0;
}

static void null_free(struct conn *c)
{
	free(c->priv);
	c->priv = NULL;
}

/* Completions are delivered from the loop, never from inside push. */
struct null_done {
	struct conn *c;
	conn_done_cb done;
	void *ud;
	enum conn_outcome o;
};

static int null_deliver(sd_event_source *s, void *userdata)
{
	struct null_done *nd = userdata;
	sd_event_source_disable_unref(s);
	nd->done(nd->c, nd->o, nd->o == CONN_OK ? NULL : "null connector fails on purpose", nd->ud);
	free(nd);
	return 0;
}

static int null_push(struct conn *c, json_t *records, const char *origin, conn_done_cb done,
		     void *ud)
{
	struct null_priv *p = c->priv;
	const struct null_opts *o = c->opts;
	struct null_done *nd = xcalloc(1, sizeof(*nd));
	(void)origin;
	p->pushes++;
	p->records += json_array_size(records);
	nd->c = c;
	nd->done = done;
	nd->ud = ud;
	nd->o = o->fail_every && p->pushes % (uint64_t)o->fail_every == 0 ? CONN_FAIL : CONN_OK;
	sd_event_source *src = NULL;
	int r = sd_event_add_defer(c->d->ev, &src, null_deliver, nd);
	if (r < 0)
		free(nd);
	return r;
}

static json_t *null_status(struct conn *c)
{
	struct null_priv *p = c->priv;
	return json_pack("{s:I,s:I}", "pushes", (json_int_t)p->pushes, "records",
			 (json_int_t)p->records);
}

const struct connector lienthong_connector = {
	.abi_version = CONN_ABI_VERSION,
	.name = "null",
	.description = "test plugin: accepts and counts records",
	.options = null_options,
	.opts_size = sizeof(struct null_opts),
	.init = null_init,
	.free = null_free,
	.push = null_push,
	.status = null_status,
};
