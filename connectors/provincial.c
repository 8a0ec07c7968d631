/*
 * provincial (connector): the province's one-stop system (Hệ thống thông
 * tin giải quyết TTHC tỉnh), a REST API whose paths, auth and field names
 * come from configuration (connectors/provincial.h, catalog-spec §4 and
 * §6, dossier-spec §1). For the catalog flow: read the whole catalogue,
 * create or replace one procedure. For the dossier flow: read the change
 * feed one page at a time from a cursor.
 *
 * The catalogue is read page by page, one page after the other: page 1
 * tells the total, the next page is asked for until that many records are
 * in. A read is all or nothing: a page that is not the expected shape, a
 * total that moves between pages, a record seen on two pages (the
 * catalogue changed under us, or the server ignores `page`) or twice on one,
 * a short page before the total is reached (the server caps the page size)
 * or more than max_pages pages fail the whole read with a reason naming the
 * page; a partial catalogue is never reported as the catalogue.
 * Classification: what the HTTP core gave up on (transport errors, 5xx,
 * 429, already retried) is CONN_RETRY; a 4xx or an answer of the wrong shape
 * is CONN_FAIL; a catalogue that changed while it was read is CONN_RETRY
 * (the next read will see it settled).
 *
 * Pages one at a time keep the load on the provincial system at one
 * request and the checks above simple. Against the simulator on loopback,
 * 2,000 procedures take about 0.1 s in pages of 500 and 0.15 s in pages of
 * 50 (tests/unit/test_provincial.c prints both); against a slow server a
 * read costs one round trip per page, 4 at the default page_size, so
 * fetching pages in parallel would save little.
 *
 * The change feed is read one page per call: the flow stores a page and
 * its cursor before it asks for the next, so the connector keeps no state
 * between pages. A page is judged for its shape only (items a list,
 * next_cursor present, has_more a boolean, the cursor moving on); the
 * changes themselves are the flow's to judge, so an item that is not an
 * object is passed on, not dropped (and counted in the status). An answer
 * that is not JSON is what a gateway or a cut connection gives: the HTTP
 * core retries it like a 503 (a classify callback parses the page once, and
 * the completion uses that parse).
 *
 * Credentials (a bearer token, or a Basic user and password) go into
 * request headers only; they are never logged. Completions always come
 * from the loop: the HTTP core never calls back from inside http_submit,
 * and refusals of bad arguments go through the loop with conn_later.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector.h"
#include "http.h"
#include "jsontext.h"
#include "log.h"
#include "provincial.h"
#include "util.h"

/* Bounds on what goes into reasons: the server's error text, a body excerpt. */
#define PROV_EXCERPT_BYTES 80
/* Longest procedure code accepted by procedure_put (before escaping). */
#define PROV_MAX_CODE_BYTES 256

enum { PROV_AUTH_NONE, PROV_AUTH_BEARER, PROV_AUTH_BASIC };

struct prov_opts {
	int auth;
	char *token; /* secret */
	char *username;
	char *password; /* secret */
	char *procedures_path;
	int64_t page_size;
	char *list_items_field;
	char *list_total_field;
	char *key_field;
	int64_t max_pages;
	char *changes_path;
	int64_t changes_limit;
	char *fees_path;
	int64_t fees_limit;
};

static const struct conf_option prov_options[] = {
	{.key = "auth",
	 .type = CONF_ENUM,
	 .def = "bearer",
	 .choices = "none|bearer|basic",
	 .offset = offsetof(struct prov_opts, auth),
	 .help = "How requests authenticate: none, bearer (Authorization: Bearer with token) or "
		 "basic (HTTP Basic with username and password)."},
	{.key = "token",
	 .type = CONF_SECRET,
	 .offset = offsetof(struct prov_opts, token),
	 .help = "File (absolute path) or systemd credential name holding the API token "
		 "(auth = bearer); the file must not be readable by others."},
	{.key = "username",
	 .type = CONF_STRING,
	 .offset = offsetof(struct prov_opts, username),
	 .help = "Account name for auth = basic."},
	{.key = "password",
	 .type = CONF_SECRET,
	 .offset = offsetof(struct prov_opts, password),
	 .help = "File (absolute path) or systemd credential name holding the password for "
		 "auth = basic."},
	{.key = "procedures_path",
	 .type = CONF_STRING,
	 .def = "/api/v1/thu-tuc",
	 .offset = offsetof(struct prov_opts, procedures_path),
	 .help = "Path (appended to url) of the procedure catalogue: GET with page and size "
		 "lists it, PUT path/CODE creates or replaces one procedure."},
	{.key = "page_size",
	 .type = CONF_INT,
	 .def = "500",
	 .min = 1,
	 .max = 1000,
	 .offset = offsetof(struct prov_opts, page_size),
	 .help = "Records asked for per catalogue page (the size parameter)."},
	{.key = "list_items_field",
	 .type = CONF_STRING,
	 .def = "data",
	 .offset = offsetof(struct prov_opts, list_items_field),
	 .help = "Field of a catalogue page holding the list of records."},
	{.key = "list_total_field",
	 .type = CONF_STRING,
	 .def = "total",
	 .offset = offsetof(struct prov_opts, list_total_field),
	 .help = "Field of a catalogue page holding the total number of records."},
	{.key = "key_field",
	 .type = CONF_STRING,
	 .def = "maThuTuc",
	 .offset = offsetof(struct prov_opts, key_field),
	 .help = "Field of a provincial record holding the procedure code; a code seen twice "
		 "in one catalogue read fails the read (the catalogue changed under it)."},
	{.key = "max_pages",
	 .type = CONF_INT,
	 .def = "1000",
	 .min = 1,
	 .max = 1000000,
	 .offset = offsetof(struct prov_opts, max_pages),
	 .help = "Most catalogue pages one read may take; a catalogue needing more fails the "
		 "read rather than being reported in part."},
	{.key = "changes_path",
	 .type = CONF_STRING,
	 .def = "/api/v1/ho-so/thay-doi",
	 .offset = offsetof(struct prov_opts, changes_path),
	 .help = "Path (appended to url) of the dossier change feed: GET with cursor and limit "
		 "answers {\"items\": [...], \"next_cursor\": \"...\", \"has_more\": true|false}."},
	{.key = "changes_limit",
	 .type = CONF_INT,
	 .def = "500",
	 .min = 1,
	 .max = 1000,
	 .offset = offsetof(struct prov_opts, changes_limit),
	 .help = "Changes asked for per page of the feed (the limit parameter). A page must fit "
		 "in max_response_bytes: a change carries the whole dossier header."},
	{.key = "fees_path",
	 .type = CONF_STRING,
	 .def = "/api/v1/le-phi",
	 .offset = offsetof(struct prov_opts, fees_path),
	 .help = "Path (appended to url) of the fee records of a day: GET with ngay "
		 "(YYYY-MM-DD), cursor and limit answers {\"items\": [...], \"next_cursor\": "
		 "\"...\", \"has_more\": true|false}; every page of the day is read."},
	{.key = "fees_limit",
	 .type = CONF_INT,
	 .def = "1000",
	 .min = 1,
	 .max = 5000,
	 .offset = offsetof(struct prov_opts, fees_limit),
	 .help = "Fee records asked for per page (the limit parameter); a day needing more "
		 "than max_pages pages fails the read rather than being reported in part."},
	CONF_OPTION_END,
};

/*
 * One operation in progress, pending on its connector's list. later.owner
 * is the struct prov, NULL once the connector was freed: the HTTP core
 * still calls back (cancelled) and the op then only frees itself.
 */
struct prov_op {
	struct conn_later later;
	provincial_list_cb list_done;
	provincial_list_cb page_cb; /* fee_pages: each page's records as read */
	size_t n_given;		    /* fee_pages: records handed over */
	conn_done_cb done;
	provincial_changes_cb changes_done;
	void *ud;
	/* list */
	unsigned page;	 /* the page asked for, from 1 */
	int64_t total;	 /* from page 1 */
	json_t *records; /* owned: every page's items so far */
	json_t *seen;	 /* owned: key -> page it was on */
	uint64_t start_us;
	/* put */
	char *code;
	/* changes, and fees (a day read with cursors: page counts from 1) */
	char *day;
	char *cursor;
	json_t *feed_page; /* owned: the answer's parse by prov_changes_classify */
	char *msg;	   /* a local answer (bad arguments) through the loop: CONN_FAIL */
};

/* c->priv. Owns everything but c. */
struct prov {
	struct conn *c;
	char *field;			/* "CONNECTOR=name" */
	struct conn_later_list pending; /* of struct prov_op */
	int64_t catalogue_size;		/* last successful read; -1 before */
	int64_t catalogue_read_ms;
	uint64_t catalogue_read_us; /* duration of that read */
	uint64_t lists_ok, lists_retry, lists_failed, pages;
	uint64_t puts_ok, puts_retry, puts_failed;
	uint64_t changes_ok, changes_retry, changes_failed, changes_items, changes_non_objects;
	int64_t changes_read_ms; /* last successful page */
	uint64_t fees_ok, fees_retry, fees_failed, fees_records;
	int64_t fees_read_ms; /* last successful day */
};

#define PROV_FIELDS(pv) ((const char *const[]){(pv)->field, NULL})

/* ---- text helpers ----------------------------------------------------- */

/* "why: server text" for a failed request, or why alone. Caller frees. */
static char *prov_failure(const struct http_response *r, enum http_outcome o, const char *why)
{
	const char *w = why && *why ? why : http_outcome_name(o);
	char *text, *msg;

	if (!r || r->status == 0)
		return xstrdup(w);
	text = conn_server_text(r);
	msg = *text ? xasprintf("%s: %s", w, text) : xstrdup(w);
	free(text);
	return msg;
}

/* ---- operations ------------------------------------------------------- */

static void prov_op_free(struct prov_op *op)
{
	if (!op)
		return;
	conn_later_remove(&op->later);
	json_decref(op->records);
	json_decref(op->seen);
	json_decref(op->feed_page);
	free(op->code);
	free(op->cursor);
	free(op->day);
	free(op->msg);
	free(op);
}

static void prov_op_release(struct conn_later *l)
{
	prov_op_free(conn_later_entry(l, struct prov_op, later));
}

static struct prov_op *prov_op_new(struct prov *pv)
{
	struct prov_op *op = xcalloc(1, sizeof(*op));
	conn_later_add(&pv->pending, &op->later, pv, prov_op_release);
	return op;
}

static void prov_answer(struct conn_later *l)
{
	struct prov_op *op = conn_later_entry(l, struct prov_op, later);
	struct conn *c = ((struct prov *)l->owner)->c;

	if (op->changes_done)
		op->changes_done(c, CONN_FAIL, NULL, NULL, false, op->msg, op->ud);
	else
		op->done(c, CONN_FAIL, op->msg, op->ud);
}

/*
 * Answers CONN_FAIL with msg (stolen) from the loop, to changes_done or else
 * done. Returns 0 or negative (nothing called).
 */
static int prov_fail_later(struct prov *pv, conn_done_cb done, provincial_changes_cb changes_done,
			   void *ud, char *msg)
{
	struct prov_op *op = prov_op_new(pv);
	int r;

	op->done = done;
	op->changes_done = changes_done;
	op->ud = ud;
	op->msg = msg;
	r = conn_later_defer(&op->later, pv->c, prov_answer);
	if (r < 0)
		prov_op_free(op);
	return r;
}

/* A request to path with the configured credentials. */
static struct http_request *prov_request(struct prov *pv, const char *method, const char *path)
{
	const struct prov_opts *opt = pv->c->opts;
	struct http_request *r = http_request_new(method, path);

	if (opt->auth == PROV_AUTH_BEARER)
		http_request_header(r, "Authorization: Bearer %s", opt->token);
	else if (opt->auth == PROV_AUTH_BASIC)
		http_request_basic_auth(r, opt->username, opt->password ? opt->password : "");
	http_request_header(r, "Accept: application/json");
	return r;
}

/* ---- the catalogue ---------------------------------------------------- */

static void prov_page_done(const struct http_response *r, enum http_outcome o, const char *why,
			   void *ud);

/* Asks for op->page. Returns 0 or negative (nothing will be called). */
static int prov_page_get(struct prov_op *op)
{
	struct prov *pv = op->later.owner;
	const struct prov_opts *opt = pv->c->opts;
	const char *path = opt->procedures_path;
	char *url = xasprintf("%s%cpage=%u&size=%lld", path, strchr(path, '?') ? '&' : '?',
			      op->page, (long long)opt->page_size);
	struct http_request *r = prov_request(pv, "GET", url);
	int rc;

	free(url);
	http_request_done(r, prov_page_done, op);
	rc = http_submit(pv->c->http, r);
	/* -ESHUTDOWN: done is still called (cancelled), so the op lives on. */
	return rc == -ESHUTDOWN ? 0 : rc;
}

/*
 * Judges one page and adds its items to op->records. Returns CONN_OK with
 * *more set when another page is needed, or the outcome of the whole read
 * with *why set when it is over badly.
 */
static enum conn_outcome prov_page_take(struct prov_op *op, const struct http_response *r,
					bool *more, char **why)
{
	const struct prov *pv = op->later.owner;
	const struct prov_opts *opt = pv->c->opts;
	const char *key = opt->key_field;
	json_t *page = NULL, *items, *jt, *e;
	enum conn_outcome co = CONN_FAIL;
	json_error_t err;
	int64_t total;
	size_t i, n, have;

	*more = false;
	page = jsontext_parse(r->body, r->body_len, 0, &err);
	if (!page) {
		char *ex = conn_excerpt(r->body, r->body_len, PROV_EXCERPT_BYTES);
		const char *ct =
			r->content_type && *r->content_type ? r->content_type : "no content type";
		*why = xasprintf("page %u: the answer is not JSON (%.*s: %s)", op->page,
				 (int)strcspn(ct, ";"), ct, ex);
		free(ex);
		goto out;
	}
	if (!json_is_object(page)) {
		*why = xasprintf("page %u: the answer is %s, not an object", op->page,
				 conn_json_kind(page));
		goto out;
	}
	items = json_object_get(page, opt->list_items_field);
	if (!json_is_array(items)) {
		*why = xasprintf("page %u: \"%s\" is %s, not a list of records", op->page,
				 opt->list_items_field, items ? conn_json_kind(items) : "absent");
		goto out;
	}
	jt = json_object_get(page, opt->list_total_field);
	if (!json_is_integer(jt) || json_integer_value(jt) < 0) {
		*why = xasprintf("page %u: \"%s\" is %s, not a count of records", op->page,
				 opt->list_total_field, jt ? conn_json_kind(jt) : "absent");
		goto out;
	}
	total = json_integer_value(jt);
	n = json_array_size(items);
	json_array_foreach (items, i, e) {
		if (!json_is_object(e)) {
			*why = xasprintf("page %u: item %zu is %s, not a record", op->page, i + 1,
					 conn_json_kind(e));
			goto out;
		}
	}
	if (op->page == 1) {
		op->total = total;
		int64_t pages = total / opt->page_size + (total % opt->page_size != 0);
		if (pages > opt->max_pages) {
			*why = xasprintf(
				"the catalogue has %lld records: more than max_pages (%lld) "
				"pages of %lld; raise max_pages or page_size",
				(long long)total, (long long)opt->max_pages,
				(long long)opt->page_size);
			goto out;
		}
	} else if (total != op->total) {
		co = CONN_RETRY;
		*why = xasprintf("page %u: the catalogue changed while it was read (total %lld on "
				 "page 1, %lld now)",
				 op->page, (long long)op->total, (long long)total);
		goto out;
	}
	json_array_foreach (items, i, e) {
		const char *k = json_string_value(json_object_get(e, key));
		json_t *was;
		if (!k)
			continue; /* a record without a code is the flow's to report */
		was = json_object_get(op->seen, k);
		if (was && json_integer_value(was) == op->page) {
			/* One answer contradicts itself: no later read will do better. */
			*why = xasprintf(
				"page %u: %s %.100s appears twice on the page (is key_field "
				"the procedure code?)",
				op->page, key, k);
			goto out;
		}
		if (was) {
			co = CONN_RETRY;
			*why = xasprintf("page %u: %.100s was already on page %lld: the catalogue "
					 "changed while it was read, or the server ignores the "
					 "page parameter",
					 op->page, k, (long long)json_integer_value(was));
			goto out;
		}
		json_object_set_new(op->seen, k, json_integer(op->page));
	}
	json_array_extend(op->records, items);
	have = json_array_size(op->records);
	if ((int64_t)have > op->total) {
		*why = xasprintf("page %u: %zu records read, more than the total of %lld", op->page,
				 have, (long long)op->total);
		goto out;
	}
	if ((int64_t)have < op->total) {
		if ((int64_t)n < opt->page_size) {
			*why = xasprintf("page %u has %zu records (size %lld) but only %zu of %lld "
					 "were read: the server may cap the page size (lower "
					 "page_size)",
					 op->page, n, (long long)opt->page_size, have,
					 (long long)op->total);
			goto out;
		}
		if (op->page >= opt->max_pages) {
			*why = xasprintf("more than max_pages (%lld) pages: %zu of %lld records "
					 "read",
					 (long long)opt->max_pages, have, (long long)op->total);
			goto out;
		}
		*more = true;
	}
	co = CONN_OK;
out:
	json_decref(page);
	return co;
}

static void prov_page_done(const struct http_response *r, enum http_outcome o, const char *why,
			   void *ud)
{
	struct prov_op *op = ud;
	struct prov *pv = op->later.owner;
	provincial_list_cb done = op->list_done;
	void *done_ud = op->ud;
	enum conn_outcome co = conn_outcome_from_http(o);
	json_t *records = NULL;
	char *msg = NULL;
	bool more = false;
	struct conn *c;
	int rc;

	if (!pv) {
		prov_op_free(op);
		return;
	}
	c = pv->c;
	if (co == CONN_OK && (r->status < 200 || r->status > 299)) {
		co = CONN_FAIL;
		msg = xasprintf("page %u: unexpected HTTP status %ld", op->page, r->status);
	} else if (co != CONN_OK) {
		char *f = prov_failure(r, o, why);
		msg = xasprintf("page %u: %s", op->page, f);
		free(f);
	} else {
		pv->pages++;
		co = prov_page_take(op, r, &more, &msg);
	}
	if (co == CONN_OK && more) {
		op->page++;
		rc = prov_page_get(op);
		if (rc == 0)
			return;
		co = CONN_RETRY;
		msg = xasprintf("page %u: cannot submit the request: %s", op->page, strerror(-rc));
	}
	if (co == CONN_OK) {
		records = json_incref(op->records);
		pv->lists_ok++;
		pv->catalogue_size = (int64_t)json_array_size(records);
		pv->catalogue_read_ms = now_wall_ms();
		pv->catalogue_read_us = now_mono_us() - op->start_us;
		log_fields(LOG_INFO, PROV_FIELDS(pv),
			   "catalogue read: %zu procedures in %u pages, %llu ms",
			   json_array_size(records), op->page,
			   (unsigned long long)(pv->catalogue_read_us / 1000));
	} else {
		if (co == CONN_RETRY)
			pv->lists_retry++;
		else
			pv->lists_failed++;
		log_fields(LOG_DEBUG, PROV_FIELDS(pv), "catalogue read: %s", msg);
	}
	prov_op_free(op);
	done(c, co, records, msg, done_ud);
	json_decref(records);
	free(msg);
}

static int prov_procedures_list(struct conn *c, provincial_list_cb done, void *ud)
{
	struct prov *pv;
	struct prov_op *op;
	int r;

	if (!c || !c->priv || !done)
		return -EINVAL;
	pv = c->priv;
	op = prov_op_new(pv);
	op->list_done = done;
	op->ud = ud;
	op->page = 1;
	op->records = json_array();
	op->seen = json_object();
	op->start_us = now_mono_us();
	r = prov_page_get(op);
	if (r < 0)
		prov_op_free(op);
	return r;
}

/* ---- one procedure ---------------------------------------------------- */

static void prov_put_done(const struct http_response *r, enum http_outcome o, const char *why,
			  void *ud)
{
	struct prov_op *op = ud;
	struct prov *pv = op->later.owner;
	conn_done_cb done = op->done;
	void *done_ud = op->ud;
	enum conn_outcome co = conn_outcome_from_http(o);
	char *msg = NULL;
	struct conn *c;

	if (!pv) {
		prov_op_free(op);
		return;
	}
	c = pv->c;
	if (co == CONN_OK && (r->status < 200 || r->status > 299)) {
		/* A redirect is not a stored procedure. */
		co = CONN_FAIL;
		msg = xasprintf("PUT %s: unexpected HTTP status %ld", op->code, r->status);
	} else if (co != CONN_OK) {
		char *f = prov_failure(r, o, why);
		msg = xasprintf("PUT %s: %s", op->code, f);
		free(f);
	}
	switch (co) {
	case CONN_OK: pv->puts_ok++; break;
	case CONN_RETRY: pv->puts_retry++; break;
	case CONN_FAIL: pv->puts_failed++; break;
	}
	if (msg)
		log_fields(LOG_DEBUG, PROV_FIELDS(pv), "%s", msg);
	prov_op_free(op);
	done(c, co, msg, done_ud);
	free(msg);
}

static int prov_procedure_put(struct conn *c, const char *code, json_t *record, conn_done_cb done,
			      void *ud)
{
	const struct prov_opts *opt;
	struct prov *pv;
	struct prov_op *op;
	struct http_request *r;
	char *esc, *path;
	size_t len;
	int rc;

	if (!c || !c->priv || !done)
		return -EINVAL;
	pv = c->priv;
	opt = c->opts;
	len = code ? strlen(code) : 0;
	if (len == 0 || len > PROV_MAX_CODE_BYTES) {
		pv->puts_failed++;
		return prov_fail_later(
			pv, done, NULL, ud,
			xasprintf("PUT: %s procedure code", len ? "over-long" : "empty"));
	}
	if (!json_is_object(record)) {
		pv->puts_failed++;
		return prov_fail_later(pv, done, NULL, ud,
				       xasprintf("PUT %s: the record is %s, not an object", code,
						 record ? conn_json_kind(record) : "absent"));
	}
	esc = conn_url_escape(code);
	path = xasprintf("%s/%s", opt->procedures_path, esc);
	free(esc);
	r = prov_request(pv, "PUT", path);
	free(path);
	http_request_json(r, record);
	op = prov_op_new(pv);
	op->done = done;
	op->ud = ud;
	op->code = xstrdup(code);
	http_request_done(r, prov_put_done, op);
	rc = http_submit(c->http, r);
	/* -ESHUTDOWN: done is still called (cancelled). */
	return rc == -ESHUTDOWN ? 0 : rc;
}

/* ---- the change feed -------------------------------------------------- */

/* `cursor "C"` for reasons: the cursor bounded, as one line. Caller frees. */
static char *prov_cursor_text(const char *cursor)
{
	char *ex = conn_excerpt(cursor, strlen(cursor), PROV_EXCERPT_BYTES);
	char *t = xasprintf("cursor \"%s\"", ex);
	free(ex);
	return t;
}

/*
 * Body rules of a feed page, per attempt: a 2xx that is not JSON is retried
 * like a 503; a JSON answer is kept in op->feed_page for the completion.
 */
static enum http_outcome prov_changes_classify(const struct http_response *r, void *ud, char **why)
{
	struct prov_op *op = ud;
	json_error_t err;

	json_decref(op->feed_page);
	op->feed_page = NULL;
	if (r->status < 200 || r->status > 299)
		return http_classify_status(r, why);
	op->feed_page = jsontext_parse(r->body, r->body_len, 0, &err);
	if (!op->feed_page) {
		char *ex = conn_excerpt(r->body, r->body_len, PROV_EXCERPT_BYTES);
		const char *ct =
			r->content_type && *r->content_type ? r->content_type : "no content type";
		*why = xasprintf("the answer is not JSON (%.*s: %s)", (int)strcspn(ct, ";"), ct,
				 ex);
		free(ex);
		return HTTP_RETRY;
	}
	return HTTP_OK;
}

/*
 * Why a cursor page's answer failed before its body could be judged, or
 * NULL when it did not (*co stays CONN_OK); a 2xx the HTTP core called OK
 * with another status class turns *co to CONN_FAIL.
 */
static char *prov_page_failure(const struct http_response *r, enum http_outcome o, const char *why,
			       enum conn_outcome *co)
{
	if (*co == CONN_OK && (r->status < 200 || r->status > 299)) {
		*co = CONN_FAIL;
		return xasprintf("unexpected HTTP status %ld", r->status);
	}
	if (*co != CONN_OK && r->status >= 200 && r->status <= 299)
		/* the classify's own reason already shows the body */
		return xstrdup(why && *why ? why : http_outcome_name(o));
	return *co != CONN_OK ? prov_failure(r, o, why) : NULL;
}

/*
 * Judges the page in op->feed_page. Returns the outcome; on CONN_OK sets *items
 * (borrowed from op->feed_page), *next (caller frees) and *has_more, otherwise
 * *why (without the cursor, which the caller adds).
 */
static enum conn_outcome prov_changes_take(struct prov_op *op, json_t **items, char **next,
					   bool *has_more, char **why)
{
	if (conn_cursor_page(op->feed_page, "changes", PROVINCIAL_MAX_CURSOR_BYTES, items, next,
			     has_more, why) < 0)
		return CONN_FAIL;
	size_t n = json_array_size(*items);
	if ((n > 0 || *has_more) && strcmp(*next, op->cursor) == 0) {
		/* Reading on from next_cursor would return this page again, forever. */
		*why = xasprintf("the feed does not move: %zu item%s%s and the same "
				 "next_cursor",
				 n, n == 1 ? "" : "s", *has_more ? ", more waiting" : "");
		free(*next);
		*next = NULL;
		*items = NULL;
		*has_more = false;
		return CONN_FAIL;
	}
	return CONN_OK;
}

static void prov_changes_done(const struct http_response *r, enum http_outcome o, const char *why,
			      void *ud)
{
	struct prov_op *op = ud;
	struct prov *pv = op->later.owner;
	provincial_changes_cb done = op->changes_done;
	void *done_ud = op->ud;
	enum conn_outcome co = conn_outcome_from_http(o);
	json_t *items = NULL, *page;
	char *msg = NULL, *next = NULL, *what, *cur;
	bool has_more = false;
	struct conn *c;

	if (!pv) {
		prov_op_free(op);
		return;
	}
	c = pv->c;
	cur = prov_cursor_text(op->cursor);
	what = prov_page_failure(r, o, why, &co);
	if (co == CONN_OK) {
		co = prov_changes_take(op, &items, &next, &has_more, &what);
		size_t i;
		json_t *e;
		json_array_foreach (items, i, e) {
			if (!json_is_object(e))
				pv->changes_non_objects++;
		}
		pv->changes_items += json_array_size(items);
	}
	if (what) {
		msg = xasprintf("changes after %s: %s", cur, what);
		free(what);
	}
	free(cur);
	switch (co) {
	case CONN_OK:
		pv->changes_ok++;
		pv->changes_read_ms = now_wall_ms();
		break;
	case CONN_RETRY: pv->changes_retry++; break;
	case CONN_FAIL: pv->changes_failed++; break;
	}
	if (msg)
		log_fields(LOG_DEBUG, PROV_FIELDS(pv), "%s", msg);
	/* items is borrowed from the page: keep it past the op. */
	page = op->feed_page;
	op->feed_page = NULL;
	prov_op_free(op);
	done(c, co, items, next, has_more, msg, done_ud);
	json_decref(page);
	free(next);
	free(msg);
}

static int prov_changes(struct conn *c, const char *cursor, provincial_changes_cb done, void *ud)
{
	const struct prov_opts *opt;
	struct prov *pv;
	struct prov_op *op;
	struct http_request *r;
	char *esc, *path;
	int rc;

	if (!c || !c->priv || !done)
		return -EINVAL;
	pv = c->priv;
	opt = c->opts;
	cursor = cursor ? cursor : "";
	if (strlen(cursor) > PROVINCIAL_MAX_CURSOR_BYTES) {
		rc = prov_fail_later(
			pv, NULL, done, ud,
			xasprintf("changes: the cursor is %zu bytes long, more than %d",
				  strlen(cursor), PROVINCIAL_MAX_CURSOR_BYTES));
		if (rc == 0)
			pv->changes_failed++;
		return rc;
	}
	esc = conn_url_escape(cursor);
	path = xasprintf("%s%ccursor=%s&limit=%lld", opt->changes_path,
			 strchr(opt->changes_path, '?') ? '&' : '?', esc,
			 (long long)opt->changes_limit);
	free(esc);
	r = prov_request(pv, "GET", path);
	free(path);
	op = prov_op_new(pv);
	op->changes_done = done;
	op->ud = ud;
	op->cursor = xstrdup(cursor);
	http_request_classify(r, prov_changes_classify, op);
	http_request_done(r, prov_changes_done, op);
	rc = http_submit(c->http, r);
	/* -ESHUTDOWN: done is still called (cancelled). */
	return rc == -ESHUTDOWN ? 0 : rc;
}

/* ---- fee records of a day --------------------------------------------- */

static void prov_fees_done(const struct http_response *r, enum http_outcome o, const char *why,
			   void *ud);

/* Asks for the day's page after op->cursor. Returns 0 or negative (nothing called). */
static int prov_fees_get(struct prov_op *op)
{
	struct prov *pv = op->later.owner;
	const struct prov_opts *opt = pv->c->opts;
	char *esc = conn_url_escape(op->cursor);
	char *path = xasprintf("%s%cngay=%s&cursor=%s&limit=%lld", opt->fees_path,
			       strchr(opt->fees_path, '?') ? '&' : '?', op->day, esc,
			       (long long)opt->fees_limit);
	struct http_request *r = prov_request(pv, "GET", path);
	free(esc);
	free(path);
	http_request_classify(r, prov_changes_classify, op);
	http_request_done(r, prov_fees_done, op);
	int rc = http_submit(pv->c->http, r);
	/* -ESHUTDOWN: done is still called (cancelled), so the op lives on. */
	return rc == -ESHUTDOWN ? 0 : rc;
}

static void prov_fees_done(const struct http_response *r, enum http_outcome o, const char *why,
			   void *ud)
{
	struct prov_op *op = ud;
	struct prov *pv = op->later.owner;
	provincial_list_cb done = op->list_done;
	void *done_ud = op->ud;
	enum conn_outcome co = conn_outcome_from_http(o);
	const struct prov_opts *opt;
	json_t *items = NULL, *records = NULL;
	char *what = NULL, *next = NULL, *msg = NULL;
	bool has_more = false;
	struct conn *c;

	if (!pv) {
		prov_op_free(op);
		return;
	}
	c = pv->c;
	opt = c->opts;
	what = prov_page_failure(r, o, why, &co);
	if (co == CONN_OK) {
		pv->pages++;
		co = prov_changes_take(op, &items, &next, &has_more, &what);
	}
	if (co == CONN_OK) {
		if (op->page_cb) {
			/* the page goes to the flow now: memory stays one page */
			op->n_given += json_array_size(items);
			op->page_cb(c, CONN_OK, items, NULL, op->ud);
		} else {
			json_array_extend(op->records, items);
		}
		if (has_more && op->page >= (unsigned)opt->max_pages) {
			co = CONN_FAIL;
			what = xasprintf("more than max_pages (%lld) pages: %zu records read",
					 (long long)opt->max_pages,
					 op->n_given + json_array_size(op->records));
		} else if (has_more) {
			free(op->cursor);
			op->cursor = next;
			next = NULL;
			op->page++;
			json_decref(op->feed_page);
			op->feed_page = NULL;
			int rc = prov_fees_get(op);
			if (rc == 0)
				return;
			co = CONN_RETRY;
			what = xasprintf("cannot submit the request: %s", strerror(-rc));
		}
	}
	if (what) {
		char *cur = prov_cursor_text(op->cursor);
		msg = xasprintf("fee records of %s, page %u (after %s): %s", op->day, op->page, cur,
				what);
		free(cur);
		free(what);
	}
	switch (co) {
	case CONN_OK:
		pv->fees_ok++;
		pv->fees_records += op->n_given + json_array_size(op->records);
		pv->fees_read_ms = now_wall_ms();
		records = json_incref(op->records);
		log_fields(LOG_INFO, PROV_FIELDS(pv), "fee records of %s read: %zu in %u pages",
			   op->day, op->n_given + json_array_size(records), op->page);
		break;
	case CONN_RETRY: pv->fees_retry++; break;
	case CONN_FAIL: pv->fees_failed++; break;
	}
	if (msg)
		log_fields(LOG_DEBUG, PROV_FIELDS(pv), "%s", msg);
	free(next);
	prov_op_free(op);
	done(c, co, records, msg, done_ud);
	json_decref(records);
	free(msg);
}

/* Whether s is a date YYYY-MM-DD (digits and dashes where they belong). */
static bool prov_day_ok(const char *s)
{
	if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return false;
	return true;
}

static int prov_fee_pages(struct conn *c, const char *day, provincial_list_cb page,
			  provincial_list_cb done, void *ud)
{
	struct prov *pv;
	struct prov_op *op;
	int rc;

	if (!c || !c->priv || !done || !prov_day_ok(day))
		return -EINVAL;
	pv = c->priv;
	op = prov_op_new(pv);
	op->list_done = done;
	op->page_cb = page;
	op->ud = ud;
	op->day = xstrdup(day);
	op->cursor = xstrdup("");
	op->page = 1;
	op->records = json_array();
	rc = prov_fees_get(op);
	if (rc < 0)
		prov_op_free(op);
	return rc;
}

static int prov_fees(struct conn *c, const char *day, provincial_list_cb done, void *ud)
{
	return prov_fee_pages(c, day, NULL, done, ud);
}

/* ---- status, lifecycle ------------------------------------------------ */

static json_t *prov_status(struct conn *c)
{
	struct prov *pv = c->priv;
	json_t *j = json_object();

	if (!pv)
		return j;
	json_object_set_new(j, "catalogue_size",
			    pv->catalogue_size >= 0 ? json_integer(pv->catalogue_size)
						    : json_null());
	json_object_set_new(j, "catalogue_read_at", fmt_time_json(pv->catalogue_read_ms));
	json_object_set_new(j, "catalogue_read_ms",
			    json_integer((json_int_t)(pv->catalogue_read_us / 1000)));
	json_object_set_new(j, "lists_ok", json_integer((json_int_t)pv->lists_ok));
	json_object_set_new(j, "lists_retry", json_integer((json_int_t)pv->lists_retry));
	json_object_set_new(j, "lists_failed", json_integer((json_int_t)pv->lists_failed));
	json_object_set_new(j, "pages", json_integer((json_int_t)pv->pages));
	json_object_set_new(j, "puts_ok", json_integer((json_int_t)pv->puts_ok));
	json_object_set_new(j, "puts_retry", json_integer((json_int_t)pv->puts_retry));
	json_object_set_new(j, "puts_failed", json_integer((json_int_t)pv->puts_failed));
	json_object_set_new(j, "changes_ok", json_integer((json_int_t)pv->changes_ok));
	json_object_set_new(j, "changes_retry", json_integer((json_int_t)pv->changes_retry));
	json_object_set_new(j, "changes_failed", json_integer((json_int_t)pv->changes_failed));
	json_object_set_new(j, "changes_items", json_integer((json_int_t)pv->changes_items));
	json_object_set_new(j, "changes_non_objects",
			    json_integer((json_int_t)pv->changes_non_objects));
	json_object_set_new(j, "changes_read_at", fmt_time_json(pv->changes_read_ms));
	json_object_set_new(j, "fees_ok", json_integer((json_int_t)pv->fees_ok));
	json_object_set_new(j, "fees_retry", json_integer((json_int_t)pv->fees_retry));
	json_object_set_new(j, "fees_failed", json_integer((json_int_t)pv->fees_failed));
	json_object_set_new(j, "fees_records", json_integer((json_int_t)pv->fees_records));
	json_object_set_new(j, "fees_read_at", fmt_time_json(pv->fees_read_ms));
	return j;
}

static void prov_free(struct conn *c)
{
	struct prov *pv = c->priv;
	if (!pv)
		return;
	/* Requests in flight come back cancelled when the core frees c->http. */
	conn_later_cancel_all(&pv->pending);
	free(pv->field);
	free(pv);
	c->priv = NULL;
}

/* Whether s is safe inside a header line: no control characters. */
static bool prov_header_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static bool prov_empty(const char *s)
{
	return !s || !*s;
}

static int prov_init(struct conn *c, bool check_only, char **err)
{
	const struct prov_opts *opt = c->opts;
	const char *name = c->name ? c->name : "?";
	struct prov *pv;

	*err = NULL;
	if (opt->auth == PROV_AUTH_BEARER) {
		if (prov_empty(opt->token))
			*err = xasprintf("connector.%s: auth = bearer needs token (a file or "
					 "credential holding the API token)",
					 name);
		else if (!prov_header_safe(opt->token))
			*err = xasprintf("connector.%s: the token contains control characters",
					 name);
	} else if (opt->auth == PROV_AUTH_BASIC) {
		if (prov_empty(opt->username) || prov_empty(opt->password))
			*err = xasprintf("connector.%s: auth = basic needs username and password",
					 name);
		else if (strchr(opt->username, ':'))
			*err = xasprintf("connector.%s: username must not contain ':' (HTTP "
					 "Basic)",
					 name);
	} else if (opt->auth != PROV_AUTH_NONE) {
		*err = xasprintf("connector.%s: auth must be none, bearer or basic", name);
	}
	if (!*err &&
	    (prov_empty(opt->procedures_path) ||
	     (opt->procedures_path[0] != '/' && !str_startswith(opt->procedures_path, "http://") &&
	      !str_startswith(opt->procedures_path, "https://"))))
		*err = xasprintf("connector.%s: procedures_path must be a path starting with '/' "
				 "(or an http(s) URL)",
				 name);
	if (!*err && (prov_empty(opt->list_items_field) || prov_empty(opt->list_total_field) ||
		      prov_empty(opt->key_field)))
		*err = xasprintf("connector.%s: list_items_field, list_total_field and key_field "
				 "must not be empty",
				 name);
	if (!*err && (opt->page_size < 1 || opt->page_size > 1000 || opt->max_pages < 1))
		*err = xasprintf("connector.%s: page_size must be 1..1000 and max_pages at least 1",
				 name);
	if (!*err && !conn_path_ok(opt->changes_path))
		*err = xasprintf("connector.%s: changes_path must be a path starting with '/' "
				 "(or an http(s) URL)",
				 name);
	if (!*err && (opt->changes_limit < 1 || opt->changes_limit > 1000))
		*err = xasprintf("connector.%s: changes_limit must be 1..1000", name);
	if (!*err && !conn_path_ok(opt->fees_path))
		*err = xasprintf("connector.%s: fees_path must be a path starting with '/' "
				 "(or an http(s) URL)",
				 name);
	if (*err)
		return -EINVAL;
	if (check_only)
		return 0;
	if (!c->http) {
		*err = xasprintf("connector.%s: no HTTP client (url)", name);
		return -EINVAL;
	}
	pv = xcalloc(1, sizeof(*pv));
	pv->c = c;
	pv->field = xasprintf("CONNECTOR=%s", name);
	pv->catalogue_size = -1;
	c->priv = pv;
	return 0;
}

static const struct provincial_ops prov_ops = {
	.procedures_list = prov_procedures_list,
	.procedure_put = prov_procedure_put,
	.changes = prov_changes,
	.fees = prov_fees,
	.fee_pages = prov_fee_pages,
};

const struct connector conn_provincial = {
	.abi_version = CONN_ABI_VERSION,
	.name = "provincial",
	.description = "The province's one-stop system (REST API): procedure catalogue read "
		       "page by page, procedures created or replaced one by one, dossier change "
		       "feed read from a cursor, the fee records of a day",
	.flags = CONN_F_HTTP,
	.options = prov_options,
	.opts_size = sizeof(struct prov_opts),
	.init = prov_init,
	.free = prov_free,
	.status = prov_status,
	.ext = &prov_ops,
};
