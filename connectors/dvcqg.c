/*
 * dvcqg (connector): the National Public Service Portal (Cổng DVCQG) behind
 * the national integration adapter, for the dossier flow
 * (connectors/dvcqg.h, dossier-spec §3 and §5). Every request is one
 * adapter_call on the integration endpoint; sessions, re-login on expiry,
 * concurrency, retries and the circuit breaker are the adapter's and the
 * HTTP core's. This file turns the portal's answers into verdicts.
 *
 * A push is a small scheduler over an ordered list of batches. The items
 * are cut into batches of header_batch / progress_batch; a batch whose
 * dossiers are not in any earlier batch of the list is sent at once (for
 * headers every batch: one header per dossier; for progress rows this keeps
 * the rows of a dossier in order). A refused batch is replaced in place by
 * what must be sent again (the rest without the item the portal named, or
 * one batch per item), so that order survives. Headers whose operation
 * changes (a create of a dossier that exists becomes an update, a guessed
 * update the portal refutes becomes a create again) are parked and sent
 * once the list is empty. Every answer settles or moves at least one item
 * and no item moves more than twice, so a push always ends; the caller
 * gets one verdict per item in a single completion.
 *
 * Why the rules in dvcqg.h rather than something simpler: the portal
 * refuses a whole batch for one item and names only the first offender.
 * Failing the batch would fail good dossiers for good; retrying it would
 * retry forever. Dossiers submitted online already exist on the portal, so
 * a create batch meeting "đã tồn tại" is an ordinary event: it costs one
 * more request for one existing dossier, two plus one update for a batch
 * the portal already had (after a crash), and one request per item only
 * for a batch mixing many of both.
 *
 * Nothing here logs a header or a row (citizens' names, ids, phones): only
 * services, counts, error codes and MaHoSo. Completions always come from
 * the loop: adapter_call never calls back from inside, and what is settled
 * without a request is delivered through the loop with conn_later.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "adapter.h"
#include "connector.h"
#include "daemon.h"
#include "dvcqg.h"
#include "http.h"
#include "list.h"
#include "log.h"
#include "util.h"

/* Of a refusal's message, the bytes searched for MaHoSo and patterns. */
#define DV_SCAN_BYTES 4096
/* Of an answer's message, the bytes put into a reason. */
#define DV_MESSAGE_BYTES 400
/* Batches per push in flight at once (the HTTP core limits the wire). */
#define DV_MAX_IN_FLIGHT 64

#define DV_NONE SIZE_MAX

struct dv_opts {
	char *exists_pattern;
	char *unknown_pattern;
	int64_t header_batch;
	int64_t progress_batch;
	char *lookup_service;
	char *headers_service;
	char *progress_service;
};

static const struct conf_option dv_options[] = {
	{.key = "exists_pattern",
	 .type = CONF_STRING,
	 .def = "đã tồn tại|already exists",
	 .offset = offsetof(struct dv_opts, exists_pattern),
	 .help = "'|'-separated pieces of text (compared after Unicode NFC and case folding) "
		 "that, in the message of a refused create naming one of its dossiers, mean "
		 "that dossier already exists on the portal: it is then sent as an update. "
		 "Empty: never."},
	{.key = "unknown_pattern",
	 .type = CONF_STRING,
	 .def = "không tồn tại|not found",
	 .offset = offsetof(struct dv_opts, unknown_pattern),
	 .help = "'|'-separated pieces of text that, in the message of a refused update, "
		 "progress batch or look-up naming one of its dossiers, mean the portal does "
		 "not know that dossier. Empty: never."},
	{.key = "header_batch",
	 .type = CONF_INT,
	 .def = "50",
	 .min = 1,
	 .max = 1000,
	 .offset = offsetof(struct dv_opts, header_batch),
	 .help = "Most dossier headers sent in one DongBoHoSoMC request."},
	{.key = "progress_batch",
	 .type = CONF_INT,
	 .def = "100",
	 .min = 1,
	 .max = 1000,
	 .offset = offsetof(struct dv_opts, progress_batch),
	 .help = "Most progress rows sent in one CapNhatTienDoHoSoMC request."},
	{.key = "lookup_service",
	 .type = CONF_STRING,
	 .def = "TraCuuHoSo",
	 .offset = offsetof(struct dv_opts, lookup_service),
	 .help = "Adapter service that looks a dossier up by MaHoSo (parameter mahoso)."},
	{.key = "headers_service",
	 .type = CONF_STRING,
	 .def = "DongBoHoSoMC",
	 .offset = offsetof(struct dv_opts, headers_service),
	 .help = "Adapter service that creates or updates dossier headers (isUpdating, data)."},
	{.key = "progress_service",
	 .type = CONF_STRING,
	 .def = "CapNhatTienDoHoSoMC",
	 .offset = offsetof(struct dv_opts, progress_service),
	 .help = "Adapter service that appends progress rows (data)."},
	CONF_OPTION_END,
};

enum dv_svc { DV_LOOKUP, DV_HEADERS, DV_PROGRESS, DV_SVC_COUNT };

/* For status: the option that names each service is looked up at run time. */
static const char *const dv_svc_key[DV_SVC_COUNT] = {
	[DV_LOOKUP] = "lookup",
	[DV_HEADERS] = "headers",
	[DV_PROGRESS] = "progress",
};

enum dv_kind { DV_OTHER, DV_EXISTS, DV_UNKNOWN };

struct dv_counts {
	uint64_t calls, ok, retry, fail;
};

/* c->priv. Owns everything but c. */
struct dv {
	struct conn *c;
	char *field;			     /* "CONNECTOR=name" */
	const char *svc_name[DV_SVC_COUNT];  /* borrowed from the options */
	char **exists, **unknown, **expired; /* folded patterns, NULL-terminated */
	struct conn_later_list pending;	     /* of struct dv_lookup and struct dv_push */
	struct dv_counts counts[DV_SVC_COUNT];
	uint64_t items_ok, items_retry, items_failed, held_back;
	uint64_t moved_to_update, guessed_updates, guesses_refuted, split_batches;
	uint64_t refusals_after_relogin; /* answers the adapter took for an expiry */
	uint64_t lookups_found, lookups_not_found;
};

#define DV_FIELDS(dv) ((const char *const[]){(dv)->field, NULL})

/* ---- text ----------------------------------------------------------------- */

/* s[0, len) folded for comparison: NFC, case-folded (ASCII-lowered when not UTF-8). */
static char *dv_fold(const char *s, size_t len)
{
	utf8proc_uint8_t *out = NULL;
	utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &out,
					  UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD);
	char *r;

	if (n >= 0 && out)
		return (char *)out;
	free(out);
	r = xstrndup(s, len);
	for (char *p = r; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return r;
}

/* The '|'-separated pieces of s, trimmed and folded; empty ones dropped. */
static char **dv_patterns(const char *s)
{
	char **v = xcalloc(1, sizeof(*v));
	size_t n = 0;
	const char *p = s ? s : "";

	while (*p) {
		size_t len = strcspn(p, "|");
		char *piece = str_strip(xstrndup(p, len));
		if (*piece) {
			v = xrealloc(v, (n + 2) * sizeof(*v));
			v[n++] = dv_fold(piece, strlen(piece));
			v[n] = NULL;
		}
		free(piece);
		p += len;
		if (*p)
			p++;
	}
	return v;
}

static void dv_patterns_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Whether folded text contains one of the patterns. */
static bool dv_match(char *const *patterns, const char *folded)
{
	for (size_t i = 0; patterns && patterns[i]; i++)
		if (strstr(folded, patterns[i]))
			return true;
	return false;
}

/* Whether message (bounded) matches patterns. */
static bool dv_message_matches(char *const *patterns, const char *message)
{
	char *f;
	bool m;

	if (!patterns || !patterns[0] || !message || !*message)
		return false;
	f = dv_fold(message, strnlen(message, DV_SCAN_BYTES));
	m = dv_match(patterns, f);
	free(f);
	return m;
}

static bool dv_code_char(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       ch == '.' || ch == '-' || ch == '_';
}

/* Whether text names code as a whole word (not as a part of a longer code). */
static bool dv_names(const char *text, const char *code)
{
	size_t n = strlen(code);
	const char *p = text;

	if (!n)
		return false;
	while ((p = strstr(p, code))) {
		bool left = p == text || !dv_code_char(p[-1]);
		bool right = !dv_code_char(p[n]);
		if (left && right)
			return true;
		p++;
	}
	return false;
}

/* At most max bytes of s as one line, not cutting a UTF-8 sequence. Caller frees. */
static char *dv_excerpt(const char *s, size_t max)
{
	size_t len = strlen(s), n = LT_MIN(len, max);
	char *e;

	if (n < len)
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	e = xstrndup(s, n);
	for (char *p = e; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return e;
}

/* "message (error_code X)" of an answer. Caller frees. */
static char *dv_answer_why(const struct adapter_answer *a)
{
	char *m = dv_excerpt(a->message, DV_MESSAGE_BYTES);
	char *w = *m ? xasprintf("%s (error_code %s)", m, a->error_code)
		     : xasprintf("error_code %s", a->error_code);
	free(m);
	return w;
}

static const char *dv_body(const struct adapter_answer *a)
{
	return a && a->raw && a->raw->body && a->raw->body_len ? a->raw->body : NULL;
}

/*
 * The outcome to judge an answer by. The adapter reads an error_code of its
 * expired_codes as an expired session, logs in again, and hands back
 * HTTP_RETRY "session rejected after re-login" with the second answer when
 * that is refused the same way. A 2xx JSON answer is only ever RETRY through
 * that path; when its message does not say anything the adapter's
 * expired_pattern recognises, it is the portal refusing the data with a
 * code that happens to be in expired_codes ("-1"): a refusal to judge.
 */
static enum http_outcome dv_effective(struct dv *dv, const struct adapter_answer *a,
				      enum http_outcome o, bool *reread)
{
	*reread = false;
	if (o != HTTP_RETRY || !a || !a->answer || !a->raw || a->raw->status < 200 ||
	    a->raw->status > 299 || !*a->error_code)
		return o;
	if (dv_message_matches(dv->expired, a->message))
		return o;
	*reread = true;
	dv->refusals_after_relogin++;
	return HTTP_FAIL;
}

/* ---- look-ups ------------------------------------------------------------- */

/* One lookup. later.owner is the struct dv, NULL once the connector was freed. */
struct dv_lookup {
	struct conn_later later;
	char *code;
	dvcqg_lookup_cb done;
	void *ud;
	char *msg; /* a local answer (a bad code) through the loop: CONN_FAIL */
};

static void dv_lookup_free(struct dv_lookup *l)
{
	if (!l)
		return;
	conn_later_remove(&l->later);
	free(l->code);
	free(l->msg);
	free(l);
}

static void dv_lookup_release(struct conn_later *cl)
{
	dv_lookup_free(conn_later_entry(cl, struct dv_lookup, later));
}

static struct dv_lookup *dv_lookup_new(struct dv *dv, const char *code, dvcqg_lookup_cb done,
				       void *ud)
{
	struct dv_lookup *l = xcalloc(1, sizeof(*l));
	l->code = xstrdup(code ? code : "");
	l->done = done;
	l->ud = ud;
	conn_later_add(&dv->pending, &l->later, dv, dv_lookup_release);
	return l;
}

static void dv_lookup_answer(struct conn_later *cl)
{
	struct dv_lookup *l = conn_later_entry(cl, struct dv_lookup, later);
	struct conn *c = ((struct dv *)cl->owner)->c;

	l->done(c, CONN_FAIL, NULL, NULL, NULL, l->msg, l->ud);
}

/*
 * Judges a TraCuuHoSo answer for code: the outcome, *header and *progress
 * (borrowed from a) on CONN_OK, *why otherwise.
 */
static enum conn_outcome dv_lookup_judge(struct dv *dv, const char *code,
					 const struct adapter_answer *a, enum http_outcome o,
					 const char *why, json_t **header, json_t **progress,
					 char **msg)
{
	const char *svc = dv->svc_name[DV_LOOKUP];
	bool reread;
	json_t *rec, *rows;
	const char *got;

	*header = *progress = NULL;
	o = dv_effective(dv, a, o, &reread);
	if (o == HTTP_RETRY) {
		*msg = xasprintf("%s %s: %s", svc, code, why && *why ? why : "retry");
		return CONN_RETRY;
	}
	if (o == HTTP_FAIL) {
		if (a && a->answer && dv_names(a->message, code) &&
		    dv_message_matches(dv->unknown, a->message))
			return CONN_OK; /* the portal says it does not know it */
		if (reread) {
			char *w = dv_answer_why(a);
			*msg = xasprintf("%s %s: %s", svc, code, w);
			free(w);
		} else {
			*msg = xasprintf("%s %s: %s", svc, code, why && *why ? why : "failed");
		}
		return CONN_FAIL;
	}
	if (!json_is_array(a->result)) {
		*msg = xasprintf("%s %s: result is not a list (%s)", svc, code,
				 a->result ? conn_json_kind(a->result) : "absent");
		return CONN_FAIL;
	}
	if (json_array_size(a->result) == 0)
		return CONN_OK;
	rec = json_array_get(a->result, 0);
	if (!json_is_object(rec)) {
		*msg = xasprintf("%s %s: result[0] is %s, not a dossier", svc, code,
				 conn_json_kind(rec));
		return CONN_FAIL;
	}
	got = json_string_value(json_object_get(rec, "MaHoSo"));
	if (got && strcmp(got, code) != 0) {
		*msg = xasprintf("%s %s: the answer is about dossier %.*s", svc, code,
				 DVCQG_MAX_CODE_BYTES, got);
		return CONN_FAIL;
	}
	rows = json_object_get(rec, "QuaTrinhXuLy");
	*header = rec;
	*progress = json_is_array(rows) ? rows : NULL;
	return CONN_OK;
}

static void dv_lookup_done(const struct adapter_answer *a, enum http_outcome o, const char *why,
			   void *ud)
{
	struct dv_lookup *l = ud;
	struct dv *dv = l->later.owner;
	dvcqg_lookup_cb done = l->done;
	void *done_ud = l->ud;
	json_t *header = NULL, *progress = NULL;
	char *msg = NULL;
	enum conn_outcome co;
	struct conn *c;

	if (!dv) {
		/* The connector is gone: nobody waits for this answer. */
		dv_lookup_free(l);
		return;
	}
	c = dv->c;
	co = dv_lookup_judge(dv, l->code, a, o, why, &header, &progress, &msg);
	switch (co) {
	case CONN_OK:
		dv->counts[DV_LOOKUP].ok++;
		if (header)
			dv->lookups_found++;
		else
			dv->lookups_not_found++;
		break;
	case CONN_RETRY: dv->counts[DV_LOOKUP].retry++; break;
	case CONN_FAIL: dv->counts[DV_LOOKUP].fail++; break;
	}
	if (msg)
		log_fields(LOG_DEBUG, DV_FIELDS(dv), "%s %s: %s", dv->svc_name[DV_LOOKUP], l->code,
			   conn_outcome_name(co));
	dv_lookup_free(l);
	/* a (and header, progress: borrowed from it) stays valid until we return. */
	done(c, co, header, progress, dv_body(a), msg, done_ud);
	free(msg);
}

static int dv_lookup(struct conn *c, const char *mahoso, dvcqg_lookup_cb done, void *ud)
{
	struct dv *dv;
	struct dv_lookup *l;
	size_t len;
	int r;

	if (!c || !c->priv || !done)
		return -EINVAL;
	dv = c->priv;
	len = mahoso ? strlen(mahoso) : 0;
	if (len == 0 || len > DVCQG_MAX_CODE_BYTES) {
		l = dv_lookup_new(dv, "", done, ud);
		l->msg = xasprintf("%s: %s dossier code", dv->svc_name[DV_LOOKUP],
				   len ? "over-long" : "empty");
		r = conn_later_defer(&l->later, c, dv_lookup_answer);
		if (r < 0) {
			dv_lookup_free(l);
			return r;
		}
		dv->counts[DV_LOOKUP].fail++;
		return 0;
	}
	l = dv_lookup_new(dv, mahoso, done, ud);
	r = adapter_call(c->adapter, ADAPTER_INTEGRATION, dv->svc_name[DV_LOOKUP],
			 json_pack("{s:s}", "mahoso", mahoso), NULL, dv_lookup_done, l);
	if (r < 0) {
		dv_lookup_free(l);
		return r;
	}
	dv->counts[DV_LOOKUP].calls++;
	return 0;
}

/* ---- pushes --------------------------------------------------------------- */

/* One item of a push. */
struct dv_item {
	const char *key; /* MaHoSo, borrowed from the push's items; NULL: unusable */
	size_t kid;	 /* index of key among the push's distinct keys */
	enum dvcqg_op op;
	bool moved;   /* create turned into an update: the portal said it exists */
	bool guessed; /* update by guess (a batch the portal seemed to have already) */
	bool flipped; /* back to a create: the portal refuted the guess */
	bool resolved;
	struct dvcqg_item res;
};

/* A batch: indices into the push's items, all with one operation. */
struct dv_batch {
	struct list_node node;
	struct dv_push *p;
	enum dvcqg_op op;
	size_t *idx;
	size_t n;
	unsigned refusals, exists_refusals; /* of the batch it came from */
	bool in_flight;
};

/*
 * One push_headers or push_progress. later.owner (dv_of) is the struct dv,
 * NULL once the connector was freed: the push then lives until its last
 * request comes back. A push settled without a request is delivered
 * through later from the loop.
 */
struct dv_push {
	struct conn_later later;
	enum dv_svc svc;
	json_t *items; /* owned ref */
	size_t n;
	struct dv_item *it;
	size_t n_keys;
	bool *key_stopped; /* progress: a row of this dossier was not accepted */
	bool *key_busy;	   /* scratch of dv_pump */
	struct list_head batches;
	size_t *parked[2]; /* headers waiting to go out with another operation */
	size_t n_parked[2];
	unsigned in_flight;
	char **strs; /* owned: reasons and raw bodies the items point to */
	size_t n_strs;
	dvcqg_push_cb done;
	void *ud;
};

static struct dv *dv_of(const struct dv_push *p)
{
	return p->later.owner;
}

static struct dv_batch *dv_batch_new(struct dv_push *p, enum dvcqg_op op, size_t cap)
{
	struct dv_batch *b = xcalloc(1, sizeof(*b));
	b->p = p;
	b->op = op;
	b->idx = xcalloc(cap ? cap : 1, sizeof(*b->idx));
	return b;
}

static void dv_batch_free(struct dv_batch *b)
{
	if (!b)
		return;
	list_remove(&b->node);
	free(b->idx);
	free(b);
}

static struct dv_batch *dv_batch_of(struct list_node *n)
{
	return list_entry(n, struct dv_batch, node);
}

static void dv_push_free(struct dv_push *p)
{
	struct dv_batch *b;

	if (!p)
		return;
	conn_later_remove(&p->later);
	while ((b = dv_batch_of(p->batches.head)))
		dv_batch_free(b);
	json_decref(p->items);
	free(p->it);
	free(p->key_stopped);
	free(p->key_busy);
	free(p->parked[0]);
	free(p->parked[1]);
	for (size_t i = 0; i < p->n_strs; i++)
		free(p->strs[i]);
	free(p->strs);
	free(p);
}

static void dv_push_release(struct conn_later *l)
{
	dv_push_free(conn_later_entry(l, struct dv_push, later));
}

/* Keeps s (stolen) for the items to point to. */
static const char *dv_keep(struct dv_push *p, char *s)
{
	if (!s)
		return NULL;
	p->strs = xrealloc(p->strs, (p->n_strs + 1) * sizeof(*p->strs));
	p->strs[p->n_strs++] = s;
	return s;
}

static size_t dv_batch_size(const struct dv_push *p)
{
	const struct dv_opts *opt = dv_of(p)->c->opts;
	int64_t n = p->svc == DV_HEADERS ? opt->header_batch : opt->progress_batch;
	return n < 1 ? 1 : (size_t)n;
}

static void dv_settle(struct dv_push *p, size_t i, enum conn_outcome o, const char *why,
		      const char *raw, bool in_doubt, bool unknown)
{
	struct dv_item *it = &p->it[i];
	struct dv *dv = dv_of(p);

	it->resolved = true;
	it->res.o = o;
	it->res.applied = o == CONN_OK ? it->op : DVCQG_CREATE;
	it->res.why = o == CONN_OK ? NULL : why;
	it->res.raw = o == CONN_OK ? NULL : raw;
	it->res.in_doubt = o == CONN_RETRY && in_doubt;
	it->res.unknown = o == CONN_FAIL && unknown;
	if (p->svc == DV_PROGRESS && o != CONN_OK && it->key)
		p->key_stopped[it->kid] = true;
	switch (o) {
	case CONN_OK: dv->items_ok++; break;
	case CONN_RETRY: dv->items_retry++; break;
	case CONN_FAIL: dv->items_failed++; break;
	}
}

static void dv_park(struct dv_push *p, size_t i, enum dvcqg_op op)
{
	p->it[i].op = op;
	p->parked[op][p->n_parked[op]++] = i;
}

/* Cuts idx[0, n) into batches of op after `after` (NULL: at the end). Returns the last. */
static struct list_node *dv_batches_add(struct dv_push *p, struct list_node *after,
					enum dvcqg_op op, const size_t *idx, size_t n, size_t size,
					unsigned refusals, unsigned exists_refusals)
{
	for (size_t i = 0; i < n; i += size) {
		size_t k = LT_MIN(size, n - i);
		struct dv_batch *b = dv_batch_new(p, op, k);
		memcpy(b->idx, idx + i, k * sizeof(*idx));
		b->n = k;
		b->refusals = refusals;
		b->exists_refusals = exists_refusals;
		if (after)
			list_insert_after(&p->batches, after, &b->node);
		else
			list_append(&p->batches, &b->node);
		after = &b->node;
	}
	return after;
}

/* Progress: rows behind a row of their dossier that was not accepted are not sent. */
static void dv_hold_back(struct dv_push *p)
{
	struct list_node *n, *next;
	const char *why = NULL;

	if (p->svc != DV_PROGRESS)
		return;
	for (n = p->batches.head; n; n = next) {
		struct dv_batch *b = dv_batch_of(n);
		size_t k = 0;
		next = n->next;
		if (b->in_flight)
			continue;
		for (size_t j = 0; j < b->n; j++) {
			size_t i = b->idx[j];
			if (!p->key_stopped[p->it[i].kid]) {
				b->idx[k++] = i;
				continue;
			}
			if (!why)
				why = dv_keep(p, xasprintf("%s: held back: an earlier row of the "
							   "dossier was not accepted",
							   dv_of(p)->svc_name[p->svc]));
			dv_settle(p, i, CONN_RETRY, why, NULL, false, false);
			dv_of(p)->held_back++;
		}
		b->n = k;
		if (k == 0)
			dv_batch_free(b);
	}
}

static void dv_batch_done(const struct adapter_answer *a, enum http_outcome o, const char *why,
			  void *ud);

/*
 * Read before the adapter's expiry rule (adapter_call_ex classify_first): a
 * 2xx answer refusing the data, whose message says nothing of a session,
 * is the portal's verdict on the batch, even with the error_code "-1" that
 * also means "session expired" elsewhere. No re-login is spent on it.
 */
static enum http_outcome dv_refusal_first(const struct adapter_answer *a, enum http_outcome o,
					  void *ud, char **why)
{
	const struct dv_batch *b = ud;
	const struct dv *dv = b && b->p ? dv_of(b->p) : NULL;
	if (o != HTTP_FAIL || !dv || !a->answer || !*a->error_code ||
	    dv_message_matches(dv->expired, a->message))
		return o;
	*why = dv_answer_why(a);
	return HTTP_FAIL;
}

/* Sends b. Returns 0 or negative (b untouched, not in flight). */
static int dv_send(struct dv_push *p, struct dv_batch *b)
{
	struct dv *dv = dv_of(p);
	json_t *data = json_array(), *params;
	int r;

	for (size_t j = 0; j < b->n; j++)
		json_array_append(data, json_array_get(p->items, b->idx[j]));
	if (p->svc == DV_HEADERS)
		params = json_pack("{s:s, s:o}", "isUpdating",
				   b->op == DVCQG_UPDATE ? "True" : "False", "data", data);
	else
		params = json_pack("{s:o}", "data", data);
	if (!params)
		log_fatal("cannot build a %s request", dv->svc_name[p->svc]);
	/* Progress rows are appended by the portal: a resend after a timeout
	 * could add them twice, so the core never resends them; an unclear
	 * outcome comes back in doubt for the caller to resolve (lookup). */
	const struct adapter_call_opts co = {
		.classify = dv_refusal_first,
		.classify_first = true,
		.max_attempts = p->svc == DV_PROGRESS ? 1 : 0,
	};
	r = adapter_call_ex(dv->c->adapter, ADAPTER_INTEGRATION, dv->svc_name[p->svc], params, &co,
			    dv_batch_done, b);
	if (r < 0)
		return r;
	b->in_flight = true;
	p->in_flight++;
	dv->counts[p->svc].calls++;
	return 0;
}

/*
 * Starts every batch that may go: not in flight, and (progress) none of its
 * dossiers in an earlier batch. A batch that cannot be submitted settles
 * everything not yet sent as RETRY. Returns whether something is in flight.
 */
static bool dv_pump(struct dv_push *p)
{
	struct list_node *n, *next;
	bool progress = p->svc == DV_PROGRESS;
	int r = 0;

	if (progress)
		memset(p->key_busy, 0, p->n_keys * sizeof(*p->key_busy));
	for (n = p->batches.head; n && r == 0; n = n->next) {
		struct dv_batch *b = dv_batch_of(n);
		bool free_to_go = !b->in_flight && p->in_flight < DV_MAX_IN_FLIGHT;
		/* Checked first, marked after: a batch may hold several rows of a dossier. */
		for (size_t j = 0; progress && j < b->n; j++)
			free_to_go &= !p->key_busy[p->it[b->idx[j]].kid];
		for (size_t j = 0; progress && j < b->n; j++)
			p->key_busy[p->it[b->idx[j]].kid] = true;
		if (free_to_go)
			r = dv_send(p, b);
	}
	if (r < 0) {
		const char *why = dv_keep(p, xasprintf("%s: cannot submit the request: %s",
						       dv_of(p)->svc_name[p->svc], strerror(-r)));
		for (n = p->batches.head; n; n = next) {
			struct dv_batch *b = dv_batch_of(n);
			next = n->next;
			if (b->in_flight)
				continue;
			for (size_t j = 0; j < b->n; j++)
				dv_settle(p, b->idx[j], CONN_RETRY, why, NULL, false, false);
			dv_batch_free(b);
		}
		for (int op = 0; op < 2; op++) {
			for (size_t j = 0; j < p->n_parked[op]; j++)
				dv_settle(p, p->parked[op][j], CONN_RETRY, why, NULL, false, false);
			p->n_parked[op] = 0;
		}
	}
	return p->in_flight > 0;
}

/*
 * Hands the verdicts over. p must be off the connector's list: the callback
 * may free the connector. Touches nothing of p's owner after the callback.
 */
static void dv_deliver(struct dv_push *p)
{
	struct dv *dv = dv_of(p);
	struct conn *c = dv->c;
	struct dvcqg_item *res = xcalloc(p->n, sizeof(*res));
	uint64_t ok = 0, retry = 0, fail = 0;

	for (size_t i = 0; i < p->n; i++) {
		res[i] = p->it[i].res;
		ok += res[i].o == CONN_OK;
		retry += res[i].o == CONN_RETRY;
		fail += res[i].o == CONN_FAIL;
	}
	log_fields(LOG_DEBUG, DV_FIELDS(dv), "%s: %zu items: %llu ok, %llu to retry, %llu failed",
		   dv->svc_name[p->svc], p->n, (unsigned long long)ok, (unsigned long long)retry,
		   (unsigned long long)fail);
	p->done(c, res, p->n, p->ud);
	free(res);
}

static void dv_deliver_later(struct conn_later *l)
{
	dv_deliver(conn_later_entry(l, struct dv_push, later));
}

/*
 * Moves p along after something settled: parked headers go out once the
 * list is empty; when nothing is left, the verdicts are delivered (from
 * here when called from a completion, through the loop otherwise).
 * Returns 0, or negative when a deferred delivery cannot be set up.
 */
static int dv_step(struct dv_push *p, bool from_loop)
{
	int r;

	if (list_empty(&p->batches) && p->in_flight == 0) {
		for (int op = 0; op < 2; op++) {
			dv_batches_add(p, NULL, (enum dvcqg_op)op, p->parked[op], p->n_parked[op],
				       dv_batch_size(p), 0, 0);
			p->n_parked[op] = 0;
		}
	}
	if (dv_pump(p))
		return 0;
	if (from_loop) {
		/* The callback may free the connector; p is ours alone now. */
		conn_later_remove(&p->later);
		dv_deliver(p);
		dv_push_free(p);
		return 0;
	}
	r = conn_later_defer(&p->later, dv_of(p)->c, dv_deliver_later);
	return r < 0 ? r : 0;
}

/* Splits the items of b (idx[0, n)) into one batch each, after `after`. */
static struct list_node *dv_singles(struct dv_push *p, struct list_node *after, enum dvcqg_op op,
				    const size_t *idx, size_t n)
{
	if (n > 1)
		dv_of(p)->split_batches++;
	return dv_batches_add(p, after, op, idx, n, 1, 0, 0);
}

/*
 * Judges the answer to b, settles or re-queues its items, and frees b.
 * See dvcqg.h for the rules.
 */
static void dv_judge(struct dv_push *p, struct dv_batch *b, const struct adapter_answer *a,
		     enum http_outcome o, const char *why)
{
	struct dv *dv = dv_of(p);
	const char *svc = dv->svc_name[p->svc];
	const char *what = p->svc == DV_PROGRESS   ? "progress"
			   : b->op == DVCQG_UPDATE ? "update"
						   : "create";
	const char *body = dv_body(a), *raw = NULL, *w;
	const char *msg = a && a->answer ? a->message : "";
	struct list_node *at = &b->node;
	enum dv_kind kind = DV_OTHER;
	size_t kid = DV_NONE, best = 0, n_named = 0, n_rest = 0;
	size_t *named = NULL, *rest = NULL;
	char *text;
	bool reread;

	o = dv_effective(dv, a, o, &reread);
	if (o == HTTP_OK) {
		dv->counts[p->svc].ok++;
		for (size_t j = 0; j < b->n; j++)
			dv_settle(p, b->idx[j], CONN_OK, NULL, NULL, false, false);
		goto out;
	}
	raw = body ? dv_keep(p, xstrdup(body)) : NULL;
	if (o == HTTP_RETRY) {
		dv->counts[p->svc].retry++;
		w = dv_keep(p, xasprintf("%s (%s of %zu): %s", svc, what, b->n,
					 why && *why ? why : "retry"));
		for (size_t j = 0; j < b->n; j++)
			dv_settle(p, b->idx[j], CONN_RETRY, w, raw, true, false);
		goto out;
	}
	dv->counts[p->svc].fail++;
	text = reread || !why || !*why ? (a && a->answer ? dv_answer_why(a) : xstrdup("refused"))
				       : xstrdup(why);
	w = dv_keep(p, xasprintf("%s (%s of %zu): %s", svc, what, b->n, text));
	free(text);

	/* Which dossier of the batch the portal names: the longest code it contains. */
	if (*msg) {
		char *scan = xstrndup(msg, DV_SCAN_BYTES);
		for (size_t j = 0; j < b->n; j++) {
			const struct dv_item *it = &p->it[b->idx[j]];
			size_t len = strlen(it->key);
			if (len > best && dv_names(scan, it->key)) {
				best = len;
				kid = it->kid;
			}
		}
		free(scan);
	}
	if (kid != DV_NONE) {
		if (p->svc == DV_HEADERS && b->op == DVCQG_CREATE &&
		    dv_message_matches(dv->exists, msg))
			kind = DV_EXISTS;
		else if ((p->svc == DV_PROGRESS || b->op == DVCQG_UPDATE) &&
			 dv_message_matches(dv->unknown, msg))
			kind = DV_UNKNOWN;
	}
	log_fields(LOG_DEBUG, DV_FIELDS(dv), "%s (%s of %zu) refused: error_code %s%s%s%s", svc,
		   what, b->n, a && *a->error_code ? a->error_code : "none",
		   kid != DV_NONE ? ", names " : "", kid != DV_NONE ? "a dossier" : "",
		   kind == DV_EXISTS	? " that exists"
		   : kind == DV_UNKNOWN ? " it does not know"
					: "");

	if (kid == DV_NONE) {
		/* Nobody to blame: every item gets its own answer. */
		if (b->n == 1)
			dv_settle(p, b->idx[0], CONN_FAIL, w, raw, false, false);
		else
			dv_singles(p, at, b->op, b->idx, b->n);
		goto out;
	}

	named = xcalloc(b->n, sizeof(*named));
	rest = xcalloc(b->n, sizeof(*rest));
	for (size_t j = 0; j < b->n; j++) {
		if (p->it[b->idx[j]].kid == kid)
			named[n_named++] = b->idx[j];
		else
			rest[n_rest++] = b->idx[j];
	}
	if (p->svc == DV_HEADERS) {
		struct dv_item *it = &p->it[named[0]];
		if (kind == DV_EXISTS && !it->moved && !it->flipped) {
			it->moved = true;
			dv_park(p, named[0], DVCQG_UPDATE);
			dv->moved_to_update++;
		} else if (kind == DV_EXISTS) {
			dv_settle(p, named[0], CONN_FAIL,
				  dv_keep(p, xasprintf("%s (the portal said before that it does "
						       "not know the dossier)",
						       w)),
				  raw, false, false);
		} else if (kind == DV_UNKNOWN && it->guessed) {
			it->guessed = false;
			it->flipped = true;
			dv_park(p, named[0], DVCQG_CREATE);
			dv->guesses_refuted++;
		} else {
			dv_settle(p, named[0], CONN_FAIL, w, raw, false, kind == DV_UNKNOWN);
		}
	} else if (kind == DV_UNKNOWN || n_named == 1) {
		for (size_t j = 0; j < n_named; j++)
			dv_settle(p, named[j], CONN_FAIL, w, raw, false, kind == DV_UNKNOWN);
	} else {
		/* Several rows of the dossier: one by one finds the bad one. */
		at = dv_singles(p, at, b->op, named, n_named);
	}

	if (n_rest == 0)
		goto out;
	b->refusals++;
	if (kind == DV_EXISTS)
		b->exists_refusals++;
	if (kind == DV_EXISTS && b->exists_refusals >= 2) {
		/* Most likely a batch the portal already has: update the rest at once. */
		for (size_t j = 0; j < n_rest; j++) {
			p->it[rest[j]].guessed = true;
			dv_park(p, rest[j], DVCQG_UPDATE);
		}
		dv->guessed_updates += n_rest;
	} else if (b->refusals >= 2) {
		dv_singles(p, at, b->op, rest, n_rest);
	} else {
		dv_batches_add(p, at, b->op, rest, n_rest, n_rest, b->refusals, b->exists_refusals);
	}
out:
	free(named);
	free(rest);
	dv_batch_free(b);
}

static void dv_batch_done(const struct adapter_answer *a, enum http_outcome o, const char *why,
			  void *ud)
{
	struct dv_batch *b = ud;
	struct dv_push *p = b->p;

	b->in_flight = false;
	p->in_flight--;
	if (!dv_of(p)) {
		/* The connector is gone: only free what is left once the last answer is in. */
		dv_batch_free(b);
		if (p->in_flight == 0)
			dv_push_free(p);
		return;
	}
	dv_judge(p, b, a, o, why);
	dv_hold_back(p);
	dv_step(p, true);
}

/* Why item i (not an object, or without a usable MaHoSo) is not sent. Caller frees. */
static char *dv_bad_item_why(const struct dv *dv, enum dv_svc svc, size_t i, const json_t *e)
{
	const json_t *k = json_object_get(e, "MaHoSo");
	const char *what;

	if (!json_is_object(e))
		return xasprintf("%s: item %zu is %s, not a %s", dv->svc_name[svc], i + 1,
				 conn_json_kind(e),
				 svc == DV_HEADERS ? "dossier header" : "progress row");
	if (!k)
		what = "no";
	else if (!json_is_string(k))
		what = "a non-text";
	else if (json_string_length(k) == 0)
		what = "an empty";
	else
		what = "an over-long";
	return xasprintf("%s: item %zu has %s MaHoSo", dv->svc_name[svc], i + 1, what);
}

static int dv_push(struct conn *c, enum dv_svc svc, json_t *items, enum dvcqg_op op,
		   dvcqg_push_cb done, void *ud)
{
	struct dv *dv;
	struct dv_push *p;
	json_t *keys = NULL, *e;
	size_t n, i, n_ok = 0, *usable = NULL;
	const char *bad = NULL;
	int r = -EINVAL;

	if (!c || !c->priv || !done || !json_is_array(items) || !c->d || !c->d->ev)
		return -EINVAL;
	if (op != DVCQG_CREATE && op != DVCQG_UPDATE)
		return -EINVAL;
	n = json_array_size(items);
	if (n == 0)
		return -EINVAL;
	if (n > DVCQG_MAX_ITEMS)
		return -E2BIG;
	dv = c->priv;
	p = xcalloc(1, sizeof(*p));
	p->svc = svc;
	p->items = json_incref(items);
	p->n = n;
	p->it = xcalloc(n, sizeof(*p->it));
	p->key_stopped = xcalloc(n, sizeof(*p->key_stopped));
	p->key_busy = xcalloc(n, sizeof(*p->key_busy));
	p->parked[0] = xcalloc(n, sizeof(*p->parked[0]));
	p->parked[1] = xcalloc(n, sizeof(*p->parked[1]));
	p->done = done;
	p->ud = ud;
	conn_later_add(&dv->pending, &p->later, dv, dv_push_release);
	usable = xcalloc(n, sizeof(*usable));
	keys = json_object();

	json_array_foreach (items, i, e) {
		struct dv_item *it = &p->it[i];
		const char *key = json_string_value(json_object_get(e, "MaHoSo"));
		size_t len = key ? strlen(key) : 0;
		json_t *seen;

		it->op = op;
		if (!json_is_object(e) || len == 0 || len > DVCQG_MAX_CODE_BYTES) {
			dv_settle(p, i, CONN_FAIL, dv_keep(p, dv_bad_item_why(dv, svc, i, e)), NULL,
				  false, false);
			continue;
		}
		seen = json_object_get(keys, key);
		if (seen && svc == DV_HEADERS) {
			bad = key;
			goto fail;
		}
		if (!seen) {
			seen = json_integer((json_int_t)p->n_keys++);
			json_object_set_new(keys, key, seen);
		}
		it->key = key;
		it->kid = (size_t)json_integer_value(seen);
		usable[n_ok++] = i;
	}
	dv_batches_add(p, NULL, op, usable, n_ok, dv_batch_size(p), 0, 0);
	r = dv_step(p, false);
	if (r < 0) {
		/* Only the deferred delivery failed: requests in flight keep p alive. */
		if (p->in_flight == 0)
			dv_push_free(p);
		else
			r = 0;
	}
	goto out;
fail:
	log_fields(LOG_DEBUG, DV_FIELDS(dv), "%s: refused a push with MaHoSo %.*s twice",
		   dv->svc_name[svc], DVCQG_MAX_CODE_BYTES, bad);
	dv_push_free(p);
out:
	json_decref(keys);
	free(usable);
	return r;
}

static int dv_push_headers(struct conn *c, json_t *headers, enum dvcqg_op op, dvcqg_push_cb done,
			   void *ud)
{
	return dv_push(c, DV_HEADERS, headers, op, done, ud);
}

static int dv_push_progress(struct conn *c, json_t *rows, dvcqg_push_cb done, void *ud)
{
	return dv_push(c, DV_PROGRESS, rows, DVCQG_CREATE, done, ud);
}

static size_t dv_header_batch(const struct conn *c)
{
	const struct dv_opts *opt = c ? c->opts : NULL;
	return opt && opt->header_batch > 0 ? (size_t)opt->header_batch : 50;
}

static size_t dv_progress_batch(const struct conn *c)
{
	const struct dv_opts *opt = c ? c->opts : NULL;
	return opt && opt->progress_batch > 0 ? (size_t)opt->progress_batch : 100;
}

/* ---- status, lifecycle ---------------------------------------------------- */

static json_t *dv_status(struct conn *c)
{
	struct dv *dv = c->priv;
	json_t *j = json_object(), *svcs;

	json_object_set_new(j, "session",
			    json_boolean(c->adapter && adapter_has_session(c->adapter)));
	json_object_set_new(j, "logins",
			    json_integer(c->adapter ? (json_int_t)adapter_logins(c->adapter) : 0));
	if (!dv)
		return j;
	svcs = json_object();
	for (int i = 0; i < DV_SVC_COUNT; i++) {
		const struct dv_counts *k = &dv->counts[i];
		json_object_set_new(svcs, dv->svc_name[i],
				    json_pack("{s:s,s:I,s:I,s:I,s:I}", "role", dv_svc_key[i],
					      "calls", (json_int_t)k->calls, "ok",
					      (json_int_t)k->ok, "retry", (json_int_t)k->retry,
					      "failed", (json_int_t)k->fail));
	}
	json_object_set_new(j, "services", svcs);
	json_object_set_new(j, "items_ok", json_integer((json_int_t)dv->items_ok));
	json_object_set_new(j, "items_retry", json_integer((json_int_t)dv->items_retry));
	json_object_set_new(j, "items_failed", json_integer((json_int_t)dv->items_failed));
	json_object_set_new(j, "held_back", json_integer((json_int_t)dv->held_back));
	json_object_set_new(j, "moved_to_update", json_integer((json_int_t)dv->moved_to_update));
	json_object_set_new(j, "guessed_updates", json_integer((json_int_t)dv->guessed_updates));
	json_object_set_new(j, "guesses_refuted", json_integer((json_int_t)dv->guesses_refuted));
	json_object_set_new(j, "split_batches", json_integer((json_int_t)dv->split_batches));
	json_object_set_new(j, "refusals_after_relogin",
			    json_integer((json_int_t)dv->refusals_after_relogin));
	json_object_set_new(j, "lookups_found", json_integer((json_int_t)dv->lookups_found));
	json_object_set_new(j, "lookups_not_found",
			    json_integer((json_int_t)dv->lookups_not_found));
	return j;
}

static void dv_free(struct conn *c)
{
	struct dv *dv = c->priv;

	if (!dv)
		return;
	/* Requests in flight come back cancelled when the core frees c->adapter. */
	conn_later_cancel_all(&dv->pending);
	dv_patterns_free(dv->exists);
	dv_patterns_free(dv->unknown);
	dv_patterns_free(dv->expired);
	free(dv->field);
	free(dv);
	c->priv = NULL;
}

static bool dv_empty(const char *s)
{
	return !s || !*s;
}

static int dv_init(struct conn *c, bool check_only, char **err)
{
	const struct dv_opts *opt = c->opts;
	const struct adapter_opts *ao = c->conf ? c->conf->adapter_opts : NULL;
	const char *name = c->name ? c->name : "?";
	struct dv *dv;

	if (opt->header_batch < 1 || opt->header_batch > 1000 || opt->progress_batch < 1 ||
	    opt->progress_batch > 1000) {
		*err = xasprintf("connector.%s: header_batch and progress_batch must be 1..1000",
				 name);
		return -EINVAL;
	}
	if (dv_empty(opt->lookup_service) || dv_empty(opt->headers_service) ||
	    dv_empty(opt->progress_service)) {
		*err = xasprintf("connector.%s: lookup_service, headers_service and "
				 "progress_service must not be empty",
				 name);
		return -EINVAL;
	}
	if (check_only)
		return 0;
	if (!c->adapter) {
		*err = xasprintf("connector.%s: no adapter client (url and adapter keys)", name);
		return -EINVAL;
	}
	dv = xcalloc(1, sizeof(*dv));
	dv->c = c;
	dv->field = xasprintf("CONNECTOR=%s", name);
	dv->svc_name[DV_LOOKUP] = opt->lookup_service;
	dv->svc_name[DV_HEADERS] = opt->headers_service;
	dv->svc_name[DV_PROGRESS] = opt->progress_service;
	dv->exists = dv_patterns(opt->exists_pattern);
	dv->unknown = dv_patterns(opt->unknown_pattern);
	dv->expired = dv_patterns(ao ? ao->expired_pattern : NULL);
	c->priv = dv;
	return 0;
}

static const struct dvcqg_ops dv_ops = {
	.lookup = dv_lookup,
	.push_headers = dv_push_headers,
	.push_progress = dv_push_progress,
	.header_batch = dv_header_batch,
	.progress_batch = dv_progress_batch,
};

const struct connector conn_dvcqg = {
	.abi_version = CONN_ABI_VERSION,
	.name = "dvcqg",
	.description = "The National Public Service Portal (Cổng DVCQG) through the national "
		       "adapter: dossier look-up, headers created or updated and progress rows "
		       "appended in batches, with a verdict per dossier",
	.flags = CONN_F_HTTP | CONN_F_ADAPTER,
	.options = dv_options,
	.opts_size = sizeof(struct dv_opts),
	.init = dv_init,
	.free = dv_free,
	.status = dv_status,
	.ext = &dv_ops,
};
