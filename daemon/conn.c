/*
 * conn: connector instances: creation from a config section, reference
 * counting (a running flow keeps the instances it uses alive across a
 * reload), outcome bookkeeping and the status view; and conn_later, the
 * pending operations every connector keeps so that it answers from the loop
 * and never after it was freed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "adapter.h"
#include "connector.h"
#include "daemon.h"
#include "http.h"
#include "jsontext.h"
#include "log.h"
#include "util.h"

const char *conn_outcome_name(enum conn_outcome o)
{
	switch (o) {
	case CONN_OK: return "ok";
	case CONN_RETRY: return "retry";
	case CONN_FAIL: return "failed";
	}
	return "?";
}

enum conn_outcome conn_outcome_from_http(enum http_outcome o)
{
	switch (o) {
	case HTTP_OK: return CONN_OK;
	case HTTP_RETRY: return CONN_RETRY;
	case HTTP_FAIL: return CONN_FAIL;
	}
	return CONN_FAIL;
}

void conn_batch_free(struct conn_batch *b)
{
	if (!b)
		return;
	json_decref(b->records);
	free(b->token);
	free(b->origin);
	free(b);
}

int conn_new(struct daemon *d, const struct conf_connector *cc, bool check_only, struct conn **out,
	     char **err)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	int r = 0;

	*out = NULL;
	*err = NULL;
	c->type = cc->type;
	c->name = xstrdup(cc->name);
	c->conf = cc;
	c->opts = cc->opts;
	c->d = d;
	c->refs = 1;

	/* Built in check-only mode too: creating them validates the options
	 * and does no I/O. */
	if (d->http && cc->http_opts) {
		r = http_client_new(d->http, c->name, cc->http_opts, &c->http, err);
		if (r < 0)
			goto fail;
	}
	if (c->http && cc->adapter_opts) {
		r = adapter_new(c->http, cc->adapter_opts, c->name, &c->adapter, err);
		if (r < 0)
			goto fail;
	}
	r = c->type->init(c, check_only, err);
	if (r < 0) {
		c->priv = NULL; /* init cleans up after itself on failure */
		goto fail;
	}
	*out = c;
	return 0;
fail:
	if (!*err)
		*err = xasprintf("cannot set up: %s", strerror(-r));
	adapter_free(c->adapter);
	http_client_free(c->http);
	free(c->name);
	free(c);
	return r < 0 ? r : -EINVAL;
}

struct conn *conn_ref(struct conn *c)
{
	c->refs++;
	return c;
}

void conn_unref(struct conn *c)
{
	if (!c || --c->refs > 0)
		return;
	if (c->type->free)
		c->type->free(c);
	adapter_free(c->adapter);
	http_client_free(c->http);
	free(c->stats.last_err);
	free(c->name);
	free(c);
}

void conn_note(struct conn *c, enum conn_outcome o, const char *detail)
{
	char *field = xasprintf("CONNECTOR=%s", c->name);
	const char *fields[] = {field, NULL};
	switch (o) {
	case CONN_OK:
		c->stats.ops_ok++;
		c->stats.last_ok_ms = now_wall_ms();
		complain_release(&c->stats.complaint, LOG_NOTICE, fields, "working again");
		break;
	case CONN_RETRY:
	case CONN_FAIL:
		if (o == CONN_RETRY)
			c->stats.ops_retry++;
		else
			c->stats.ops_fail++;
		c->stats.last_err_ms = now_wall_ms();
		free(c->stats.last_err);
		c->stats.last_err = xstrdup(detail ? detail : conn_outcome_name(o));
		complain(&c->stats.complaint, LOG_WARNING, fields, "%s: %s", conn_outcome_name(o),
			 c->stats.last_err);
		break;
	}
	free(field);
}

json_t *conn_status_json(struct conn *c)
{
	const char *state = "idle";
	json_t *j = json_object();

	json_object_set_new(j, "name", json_string(c->name));
	json_object_set_new(j, "type", json_string(c->type->name));
	json_object_set_new(j, "enabled", json_boolean(c->conf->enabled));
	if (c->stats.last_ok_ms || c->stats.last_err_ms)
		state = c->stats.last_err_ms > c->stats.last_ok_ms ? "failing" : "ok";
	if (c->http) {
		struct http_stats hs;
		http_client_stats(c->http, &hs);
		if (hs.circuit != HTTP_CIRCUIT_CLOSED)
			state = "circuit-open";
		json_object_set_new(j, "circuit", json_string(http_circuit_name(hs.circuit)));
		if (hs.circuit == HTTP_CIRCUIT_OPEN)
			json_object_set_new(j, "circuit_until", fmt_time_json(hs.circuit_until_ms));
		json_object_set_new(j, "url", json_string(http_client_opts(c->http)->url));
		json_t *h = json_object();
		json_object_set_new(h, "requests", json_integer((json_int_t)hs.requests));
		json_object_set_new(h, "ok", json_integer((json_int_t)hs.ok));
		json_object_set_new(h, "retry", json_integer((json_int_t)hs.retry));
		json_object_set_new(h, "fail", json_integer((json_int_t)hs.fail));
		json_object_set_new(h, "retries", json_integer((json_int_t)hs.retries));
		json_object_set_new(h, "in_flight", json_integer((json_int_t)hs.in_flight));
		json_object_set_new(h, "queued", json_integer((json_int_t)hs.queued));
		json_object_set_new(h, "circuit_opens", json_integer((json_int_t)hs.circuit_opens));
		json_object_set_new(h, "last_error",
				    hs.last_err ? json_string(hs.last_err) : json_null());
		json_object_set_new(j, "http", h);
		/* The HTTP view is more precise than operation outcomes. */
		if (hs.last_ok_ms > c->stats.last_ok_ms)
			c->stats.last_ok_ms = hs.last_ok_ms;
	} else {
		json_object_set_new(j, "circuit", json_null());
	}
	if (!c->conf->enabled)
		state = "disabled";
	json_object_set_new(j, "state", json_string(state));
	json_object_set_new(j, "last_ok", fmt_time_json(c->stats.last_ok_ms));
	json_object_set_new(j, "last_error",
			    c->stats.last_err ? json_string(c->stats.last_err) : json_null());
	json_object_set_new(j, "last_error_at", fmt_time_json(c->stats.last_err_ms));
	json_object_set_new(j, "ops_ok", json_integer((json_int_t)c->stats.ops_ok));
	json_object_set_new(j, "ops_retry", json_integer((json_int_t)c->stats.ops_retry));
	json_object_set_new(j, "ops_failed", json_integer((json_int_t)c->stats.ops_fail));
	if (c->adapter) {
		json_object_set_new(j, "session", json_boolean(adapter_has_session(c->adapter)));
		json_object_set_new(j, "logins",
				    json_integer((json_int_t)adapter_logins(c->adapter)));
	}
	if (c->type->status) {
		json_t *extra = c->type->status(c);
		if (extra)
			json_object_set_new(j, "detail", extra);
	}
	return j;
}

/* ---- pending operations ---------------------------------------------- */

void conn_later_add(struct conn_later_list *list, struct conn_later *l, void *owner,
		    conn_later_fn release)
{
	l->owner = owner;
	l->release = release;
	list_append(&list->ops, &l->node);
}

static int conn_later_run(sd_event_source *s, void *userdata)
{
	struct conn_later *l = userdata;

	(void)s;
	/* Off the list first: if fire frees the owner, its free must not find l. */
	list_remove(&l->node);
	l->fire(l);
	l->defer = sd_event_source_unref(l->defer);
	l->release(l);
	return 0;
}

int conn_later_defer(struct conn_later *l, struct conn *c, conn_later_fn fire)
{
	sd_event_source *s = NULL;
	int r;

	if (!c || !c->d || !c->d->ev || l->defer)
		return -EINVAL;
	r = sd_event_add_defer(c->d->ev, &s, conn_later_run, l);
	if (r < 0)
		return r;
	l->defer = s;
	l->fire = fire;
	return 0;
}

void conn_later_remove(struct conn_later *l)
{
	if (!l)
		return;
	list_remove(&l->node);
	l->defer = sd_event_source_unref(l->defer);
}

void conn_later_cancel_all(struct conn_later_list *list)
{
	struct list_node *n;

	while ((n = list_pop_front(&list->ops))) {
		struct conn_later *l = list_entry(n, struct conn_later, node);
		l->owner = NULL;
		if (l->defer) {
			l->defer = sd_event_source_unref(l->defer);
			l->release(l);
		}
	}
}

const char *conn_json_kind(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

/* ---- texts of answers, for the connectors' messages ------------------------ */

bool conn_path_ok(const char *path)
{
	return path && *path &&
	       (path[0] == '/' || str_startswith(path, "http://") ||
		str_startswith(path, "https://"));
}

char *conn_excerpt(const char *s, size_t len, size_t max)
{
	struct dynbuf b;
	size_t i = 0;

	dynbuf_init(&b, 0);
	while (i < len && b.len < max) {
		unsigned char ch = (unsigned char)s[i];
		size_t n;
		if (ch < 0x80) {
			char out = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
			dynbuf_add(&b, &out, 1);
			i++;
			continue;
		}
		n = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : 2;
		if (i + n > len || utf8_bad_at((const unsigned char *)s + i, n) != n) {
			dynbuf_add(&b, "?", 1);
			i++;
			continue;
		}
		if (b.len + n > max)
			break;
		dynbuf_add(&b, s + i, n);
		i += n;
	}
	if (i < len)
		dynbuf_addstr(&b, "...");
	return dynbuf_steal(&b, NULL);
}

char *conn_url_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	struct dynbuf b;

	dynbuf_init(&b, 0);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			dynbuf_add(&b, s, 1);
		} else {
			char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
			dynbuf_add(&b, e, 3);
		}
	}
	return dynbuf_steal(&b, NULL);
}

/* The first non-empty string among keys of object j, or NULL. */
static const char *first_string(const json_t *j, const char *const *keys)
{
	for (; *keys; keys++) {
		const char *v = json_string_value(json_object_get(j, *keys));
		if (v && *v)
			return v;
	}
	return NULL;
}

char *conn_server_text(const struct http_response *r)
{
	static const char *const code_keys[] = {"error", "code", "title", NULL};
	static const char *const msg_keys[] = {"message", "detail", "error_description", NULL};
	json_t *j = NULL, *inner;
	const char *code = NULL, *msg = NULL;
	char *t = NULL, *all;

	if (!r || !r->body || !r->body_len)
		return xstrdup("");
	j = jsontext_parse(r->body, r->body_len, 0, NULL);
	if (json_is_object(j)) {
		inner = json_object_get(j, "error");
		if (json_is_object(inner)) {
			code = first_string(inner, code_keys + 1);
			msg = first_string(inner, msg_keys);
		}
		code = code ? code : first_string(j, code_keys);
		msg = msg ? msg : first_string(j, msg_keys);
		if (code && msg && strcmp(code, msg) != 0)
			t = xasprintf("%s: %s", code, msg);
		else if (code || msg)
			t = xstrdup(msg ? msg : code);
	}
	json_decref(j);
	if (!t)
		return conn_excerpt(r->body, r->body_len, CONN_SERVER_TEXT_BYTES);
	all = conn_excerpt(t, strlen(t), CONN_SERVER_TEXT_BYTES);
	free(t);
	return all;
}

int conn_cursor_page(const json_t *page, const char *noun, size_t max_cursor, json_t **items,
		     char **next, bool *has_more, char **why)
{
	json_t *list, *jn, *jm;

	*items = NULL;
	*next = NULL;
	*has_more = false;
	if (!json_is_object(page)) {
		*why = xasprintf("the answer is %s, not an object",
				 page ? conn_json_kind(page) : "empty");
		return -EINVAL;
	}
	list = json_object_get(page, "items");
	if (!json_is_array(list)) {
		*why = xasprintf("\"items\" is %s, not a list of %s",
				 list ? conn_json_kind(list) : "absent", noun);
		return -EINVAL;
	}
	jn = json_object_get(page, "next_cursor");
	if (json_is_string(jn)) {
		*next = xstrdup(json_string_value(jn));
	} else if (json_is_integer(jn)) {
		*next = xasprintf("%lld", (long long)json_integer_value(jn));
	} else {
		*why = xasprintf("\"next_cursor\" is %s, not a cursor",
				 jn ? conn_json_kind(jn) : "absent");
		return -EINVAL;
	}
	if (strlen(*next) > max_cursor) {
		*why = xasprintf("\"next_cursor\" is %zu bytes long, more than %zu", strlen(*next),
				 max_cursor);
		goto fail;
	}
	jm = json_object_get(page, "has_more");
	if (jm && !json_is_boolean(jm)) {
		*why = xasprintf("\"has_more\" is %s, not a boolean", conn_json_kind(jm));
		goto fail;
	}
	*has_more = json_is_true(jm);
	*items = list;
	return 0;
fail:
	free(*next);
	*next = NULL;
	return -EINVAL;
}
