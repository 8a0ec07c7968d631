/*
 * store_catalog: the procedures of the catalog flow in the store — the
 * national catalogue with its history, and the provincial snapshot it is
 * compared with. Contracts in store.h; tables in store.c's migration 2;
 * errors, transactions and health exactly as in store.c (store_int.h).
 *
 * A pass writes up to a few thousand procedures, grouped by the caller in
 * store_begin()/store_commit() batches: every operation here that needs
 * more than one statement runs in a savepoint inside the batch (its own
 * transaction otherwise), so it applies entirely or not at all, and a
 * failure of the batch (-ENOSPC) loses the whole batch, never half of it.
 *
 * The index and the counts read only the small leading columns of
 * procedures (see the migration): the records sit in overflow pages they
 * do not touch.
 */
#include "store_int.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* A provincial key longer than this is not a procedure code: skipped. */
#define STORE_PROV_KEY_MAX_BYTES 256

static const char *const cat_sql[STC__COUNT] = {
	[STC_PROC_FIND] = "SELECT status, hash FROM procedures WHERE code = ?1",
	[STC_PROC_INSERT] = "INSERT INTO procedures (code, status, hash, first_seen_ms, "
			    "last_seen_ms, changed_ms, name, mapped, national) "
			    "VALUES (?1, 'active', ?2, ?3, ?3, ?3, ?4, ?5, ?6)",
	/* Same content: also the reinstatement of an unchanged record. */
	[STC_PROC_SEEN] = "UPDATE procedures SET status = 'active', withdrawn_ms = NULL, "
			  "last_seen_ms = max(last_seen_ms, ?2), name = ?3, mapped = ?4 "
			  "WHERE code = ?1",
	[STC_PROC_CHANGE] = "UPDATE procedures SET status = 'active', withdrawn_ms = NULL, "
			    "hash = ?2, last_seen_ms = max(last_seen_ms, ?3), changed_ms = ?3, "
			    "name = ?4, mapped = ?5, national = ?6 WHERE code = ?1",
	[STC_VERSION_ADD] = "INSERT INTO procedure_versions (code, at_ms, change, hash, "
			    "fields_changed, national) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[STC_PROC_WITHDRAW] = "UPDATE procedures SET status = 'withdrawn', withdrawn_ms = ?2 "
			      "WHERE code = ?1 AND status = 'active'",
	[STC_VERSION_WITHDRAWN] = "INSERT INTO procedure_versions (code, at_ms, change, hash) "
				  "SELECT code, ?2, 'withdrawn', hash FROM procedures "
				  "WHERE code = ?1",
	[STC_PROC_DELIVERED] = "UPDATE procedures SET delivered_hash = ?2, delivered_ms = ?3 "
			       "WHERE code = ?1",
	[STC_PROC_INDEX] = "SELECT code, hash, status, delivered_hash FROM procedures",
	[STC_PROC_GET] = "SELECT code, name, status, hash, delivered_hash, first_seen_ms, "
			 "last_seen_ms, changed_ms, withdrawn_ms, delivered_ms, national, mapped "
			 "FROM procedures WHERE code = ?1",
	[STC_PROV_GET] = "SELECT record, seen_ms AS provincial_seen_ms "
			 "FROM provincial_procedures WHERE code = ?1",
	[STC_HISTORY] = "SELECT at_ms, change, hash, fields_changed FROM procedure_versions "
			"WHERE code = ?1 ORDER BY id DESC",
	[STC_COUNTS] = "SELECT count(*), "
		       "count(*) FILTER (WHERE status = 'active'), "
		       "count(*) FILTER (WHERE status = 'withdrawn'), "
		       "count(*) FILTER (WHERE status = 'active' AND "
		       "(delivered_hash IS NULL OR delivered_hash <> hash)), "
		       "(SELECT count(*) FROM provincial_procedures), "
		       "(SELECT count(*) FROM provincial_procedures AS pp WHERE NOT EXISTS "
		       "(SELECT 1 FROM procedures AS p WHERE p.code = pp.code)) "
		       "FROM procedures",
	[STC_LAST_CHANGES] = "SELECT v.code, p.name, v.change, v.at_ms, v.fields_changed "
			     "FROM procedure_versions AS v JOIN procedures AS p ON p.code = v.code "
			     "ORDER BY v.id DESC LIMIT ?1",
	[STC_PROV_PUT] = "INSERT INTO provincial_procedures (code, record, seen_ms) "
			 "VALUES (?1, ?2, ?3) ON CONFLICT (code) DO UPDATE SET "
			 "record = excluded.record, seen_ms = excluded.seen_ms",
	[STC_PROV_CODES] = "SELECT code FROM provincial_procedures",
	[STC_PROV_DELETE] = "DELETE FROM provincial_procedures WHERE code = ?1",
};

/* The history words of enum store_proc_change that add a row. */
static const char *const change_words[] = {
	[STORE_PROC_NEW] = "new",
	[STORE_PROC_CHANGED] = "changed",
	[STORE_PROC_REINSTATED] = "reinstated",
};

int store_catalog_prepare(struct store *s, char **err)
{
	return store_prepare(s, cat_sql, s->cat, STC__COUNT, err);
}

static int cat_exec(struct store *s, enum stc_id id, const char *op, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	int r = store_stmt_runv(s, s->cat[id], op, types, ap);
	va_end(ap);
	return r;
}

static json_t *cat_list(struct store *s, enum stc_id id, const char *op, const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	json_t *a = store_stmt_listv(s, s->cat[id], op, types, ap);
	va_end(ap);
	return a;
}

/*
 * Replaces the JSON text o[key] by its parsed value. A text that does not
 * parse (it was stored by us, so that is a bug or damage) stays a string,
 * so that the operator still sees it.
 */
static void parse_member(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	json_error_t e;
	if (!json_is_string(v))
		return;
	json_t *parsed =
		json_loadb(json_string_value(v), json_string_length(v), JSON_DECODE_ANY, &e);
	if (parsed)
		store_json_put(o, key, parsed);
	else
		log_warn("store: the stored %s does not parse as JSON (%s at %d); shown as text",
			 key, e.text, e.position);
}

static void parse_member_of_each(json_t *a, const char *key)
{
	size_t i;
	json_t *row;
	json_array_foreach (a, i, row) {
		parse_member(row, key);
	}
}

/* ---- the national catalogue ---------------------------------------------- */

/* Finds code: 0 with its status and hash (caller frees), 1 when absent, or -errno. */
static int proc_find(struct store *s, const char *code, bool *withdrawn, char **hash)
{
	sqlite3_stmt *st = s->cat[STC_PROC_FIND];
	int r = 1;
	int rc = sqlite3_bind_text(st, 1, code, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*withdrawn = strcmp((const char *)sqlite3_column_text(st, 0), "withdrawn") == 0;
		*hash = xstrdup((const char *)sqlite3_column_text(st, 1));
		r = 0;
	} else if (rc != SQLITE_DONE) {
		r = store_fail(s, st, rc, "looking up a procedure");
	}
	store_stmt_done(st);
	return r;
}

/* A history row of p: its code, time and hash, with change and the rest. */
static int version_add(struct store *s, const struct store_procedure *p, const char *change,
		       const char *fields_changed, const char *national)
{
	return cat_exec(s, STC_VERSION_ADD, "recording a procedure's history", "titttt", p->code,
			p->seen_ms, change, p->hash, fields_changed, national);
}

int store_proc_upsert(struct store *s, const struct store_procedure *p,
		      enum store_proc_change *change)
{
	const char *op = "recording a procedure";
	enum store_proc_change c = STORE_PROC_SAME;
	bool withdrawn = false;
	char *old_hash = NULL;
	if (!p || !p->code || !p->hash || !p->national)
		return -EINVAL;
	int r = store_write_check(s);
	if (r < 0)
		return r;
	r = store_op_begin(s, op);
	if (r < 0)
		return r;
	r = proc_find(s, p->code, &withdrawn, &old_hash);
	if (r < 0)
		goto out;
	if (r == 1) {
		c = STORE_PROC_NEW;
		r = cat_exec(s, STC_PROC_INSERT, op, "ttittt", p->code, p->hash, p->seen_ms,
			     p->name, p->mapped, p->national);
		if (r == 0)
			r = version_add(s, p, "new", NULL, p->national);
	} else if (strcmp(old_hash, p->hash) == 0) {
		c = withdrawn ? STORE_PROC_REINSTATED : STORE_PROC_SAME;
		r = cat_exec(s, STC_PROC_SEEN, op, "titt", p->code, p->seen_ms, p->name, p->mapped);
		/* The record is that of an earlier row with this hash. */
		if (r == 0 && withdrawn)
			r = version_add(s, p, "reinstated", NULL, NULL);
	} else {
		c = withdrawn ? STORE_PROC_REINSTATED : STORE_PROC_CHANGED;
		r = cat_exec(s, STC_PROC_CHANGE, op, "ttittt", p->code, p->hash, p->seen_ms,
			     p->name, p->mapped, p->national);
		if (r == 0)
			r = version_add(s, p, change_words[c], p->fields_changed, p->national);
	}
out:
	free(old_hash);
	r = store_op_end(s, r, op);
	if (r < 0)
		return r;
	if (change)
		*change = c;
	return 0;
}

int store_proc_withdraw(struct store *s, const char *code, int64_t when_ms)
{
	const char *op = "withdrawing a procedure";
	if (!code)
		return -EINVAL;
	int r = store_write_check(s);
	if (r < 0)
		return r;
	r = store_op_begin(s, op);
	if (r < 0)
		return r;
	r = cat_exec(s, STC_PROC_WITHDRAW, op, "ti", code, when_ms);
	if (r == 0 && sqlite3_changes(s->db) == 0)
		r = 1;
	if (r == 0)
		r = cat_exec(s, STC_VERSION_WITHDRAWN, op, "ti", code, when_ms);
	return store_op_end(s, r, op);
}

int store_proc_delivered(struct store *s, const char *code, const char *hash, int64_t when_ms)
{
	if (!code || !hash)
		return -EINVAL;
	int r = store_write_check(s);
	if (r < 0)
		return r;
	r = cat_exec(s, STC_PROC_DELIVERED, "recording a delivered procedure", "tti", code, hash,
		     when_ms);
	if (r == 0 && sqlite3_changes(s->db) == 0)
		r = 1;
	return r;
}

/* Column i of st as a JSON string, or null. */
static json_t *text_or_null(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return json_null();
	return store_json_text(sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i));
}

json_t *store_proc_index(struct store *s)
{
	sqlite3_stmt *st = s->cat[STC_PROC_INDEX];
	json_t *o = json_object();
	int rc;
	if (!o)
		log_fatal("out of memory building JSON");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *code = (const char *)sqlite3_column_text(st, 0);
		json_t *e = json_object();
		if (!e)
			log_fatal("out of memory building JSON");
		store_json_put(e, "hash", text_or_null(st, 1));
		store_json_put(e, "status", text_or_null(st, 2));
		store_json_put(e, "delivered_hash", text_or_null(st, 3));
		/* Codes come from JSON strings; one that is not UTF-8 cannot be
		 * a key and is left out rather than failing the pass. */
		if (json_object_set_new(o, code, e) < 0)
			log_err("store: procedure code is not UTF-8, left out of the index");
	}
	if (rc != SQLITE_DONE) {
		(void)store_fail(s, st, rc, "listing procedures");
		json_decref(o);
		o = NULL;
	}
	store_stmt_done(st);
	return o;
}

/* The one row of query id for code (new ref in *out), 1 when none, or -errno. */
static int cat_row(struct store *s, enum stc_id id, const char *code, const char *op, json_t **out)
{
	sqlite3_stmt *st = s->cat[id];
	int r = 1;
	*out = NULL;
	int rc = sqlite3_bind_text(st, 1, code, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = store_row_json(st);
		r = 0;
	} else if (rc != SQLITE_DONE) {
		r = store_fail(s, st, rc, op);
	}
	store_stmt_done(st);
	return r;
}

/* The shape of a procedure row for a code that only the province has. */
static json_t *provincial_only(const char *code)
{
	static const char *const nulls[] = {
		"name",		"hash",		"delivered_hash", "first_seen_ms", "first_seen",
		"last_seen_ms", "last_seen",	"changed_ms",	  "changed",	   "withdrawn_ms",
		"withdrawn",	"delivered_ms", "delivered",	  "national",	   "mapped",
	};
	json_t *o = json_object();
	if (!o)
		log_fatal("out of memory building JSON");
	store_json_put(o, "code", json_string(code));
	store_json_put(o, "status", json_string("provincial_only"));
	for (size_t i = 0; i < LT_ARRAY_SIZE(nulls); i++)
		store_json_put(o, nulls[i], json_null());
	return o;
}

int store_proc_get(struct store *s, const char *code, json_t **out)
{
	const char *op = "reading a procedure";
	json_t *o = NULL, *prov = NULL, *hist = NULL;
	int r;
	*out = NULL;
	if (!code)
		return -EINVAL;
	r = cat_row(s, STC_PROC_GET, code, op, &o);
	if (r < 0)
		goto out;
	int rp = cat_row(s, STC_PROV_GET, code, op, &prov);
	if (rp < 0) {
		r = rp;
		goto out;
	}
	if (r == 1 && rp == 1)
		goto out;
	if (r == 1)
		o = provincial_only(code);
	parse_member(o, "national");
	parse_member(o, "mapped");
	if (prov) {
		parse_member(prov, "record");
		store_json_put(o, "provincial", json_incref(json_object_get(prov, "record")));
		store_json_put(o, "provincial_seen_ms",
			       json_incref(json_object_get(prov, "provincial_seen_ms")));
		store_json_put(o, "provincial_seen",
			       json_incref(json_object_get(prov, "provincial_seen")));
	} else {
		store_json_put(o, "provincial", json_null());
		store_json_put(o, "provincial_seen_ms", json_null());
		store_json_put(o, "provincial_seen", json_null());
	}
	hist = cat_list(s, STC_HISTORY, op, "t", code);
	if (!hist) {
		r = -EIO;
		goto out;
	}
	parse_member_of_each(hist, "fields_changed");
	store_json_put(o, "history", hist);
	hist = NULL;
	*out = o;
	o = NULL;
	r = 0;
out:
	json_decref(o);
	json_decref(prov);
	return r;
}

json_t *store_proc_summary(struct store *s, unsigned limit)
{
	static const char *const names[] = {"total",	   "active",	       "withdrawn",
					    "undelivered", "provincial_total", "provincial_only"};
	sqlite3_stmt *st = s->cat[STC_COUNTS];
	json_t *o = json_object();
	if (!o)
		log_fatal("out of memory building JSON");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		for (int i = 0; i < (int)LT_ARRAY_SIZE(names); i++)
			store_json_put(o, names[i], json_integer(sqlite3_column_int64(st, i)));
		rc = SQLITE_DONE;
	}
	if (rc != SQLITE_DONE) {
		(void)store_fail(s, st, rc, "counting procedures");
		json_decref(o);
		o = NULL;
	}
	store_stmt_done(st);
	if (!o)
		return NULL;
	json_t *last = cat_list(s, STC_LAST_CHANGES, "listing procedure changes", "i",
				store_sql_limit(limit));
	if (!last) {
		json_decref(o);
		return NULL;
	}
	parse_member_of_each(last, "fields_changed");
	store_json_put(o, "last_changes", last);
	return o;
}

/* ---- the provincial snapshot ---------------------------------------------- */

/* The key of a provincial record, or NULL when it has none we can store. */
static const char *prov_key(const json_t *rec, const char *key_field)
{
	const json_t *k = json_object_get(rec, key_field);
	if (!json_is_string(k))
		return NULL;
	const char *v = json_string_value(k);
	size_t n = json_string_length(k);
	/* An embedded NUL would silently shorten the key. */
	if (n == 0 || n > STORE_PROV_KEY_MAX_BYTES || strlen(v) != n)
		return NULL;
	return v;
}

/* Deletes the stored records whose code is not in seen (the new snapshot). */
static int prov_remove_unseen(struct store *s, const json_t *seen, const char *op, size_t *removed)
{
	sqlite3_stmt *st = s->cat[STC_PROV_CODES];
	char **gone = NULL;
	size_t n = 0, cap = 0;
	int r = 0, rc;
	/* Collected first: a table is not changed under a query reading it. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *code = (const char *)sqlite3_column_text(st, 0);
		if (json_object_get(seen, code))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			gone = xrealloc(gone, cap * sizeof(*gone));
		}
		gone[n++] = xstrdup(code);
	}
	if (rc != SQLITE_DONE)
		r = store_fail(s, st, rc, op);
	store_stmt_done(st);
	for (size_t i = 0; i < n && r == 0; i++)
		r = cat_exec(s, STC_PROV_DELETE, op, "t", gone[i]);
	for (size_t i = 0; i < n; i++)
		free(gone[i]);
	free(gone);
	*removed = n;
	return r;
}

/*
 * The snapshot is replaced by upserting every record and deleting the codes
 * that are gone, not by emptying the table: a record that did not change is
 * rewritten in place with the same bytes, and SQLite then writes only the
 * page holding seen_ms. An unchanged catalogue of 2,000 records so costs
 * about 1 MB of WAL instead of twice its size, on every pass.
 */
int store_prov_catalog_replace(struct store *s, const json_t *records, const char *key_field,
			       int64_t when_ms)
{
	const char *op = "storing the provincial catalogue";
	sqlite3_stmt *put = s->cat[STC_PROV_PUT];
	size_t skipped = 0, repeated = 0, stored = 0, removed = 0, cap = 64 * 1024, i;
	const json_t *rec;
	if (!json_is_array(records) || !key_field)
		return -EINVAL;
	int r = store_write_check(s);
	if (r < 0)
		return r;
	r = store_op_begin(s, op);
	if (r < 0)
		return r;
	json_t *seen = json_object();
	char *text = xmalloc(cap);
	if (!seen)
		log_fatal("out of memory building JSON");
	json_array_foreach (records, i, rec) {
		const char *key = prov_key(rec, key_field);
		if (!key) {
			skipped++;
			continue;
		}
		/* Of several records with one key (a list that moved while it
		 * was paged), the first is kept. */
		if (json_object_get(seen, key)) {
			repeated++;
			continue;
		}
		store_json_put(seen, key, json_true());
		/* One buffer for every record's text, serialised once unless it
		 * must grow: serialising is most of the time this takes. */
		size_t need = json_dumpb(rec, text, cap, JSON_COMPACT);
		if (need > cap && need <= INT_MAX) {
			cap = LT_MAX(need, 2 * cap);
			text = xrealloc(text, cap);
			need = json_dumpb(rec, text, cap, JSON_COMPACT);
		}
		if (need == 0 || need > INT_MAX)
			log_fatal("cannot serialise a provincial record (%zu bytes)", need);
		int rc = sqlite3_bind_text(put, 1, key, -1, SQLITE_STATIC);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_text(put, 2, text, (int)need, SQLITE_STATIC);
		if (rc == SQLITE_OK)
			rc = sqlite3_bind_int64(put, 3, when_ms);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(put);
		if (rc != SQLITE_DONE) {
			r = store_fail(s, put, rc, op);
			break;
		}
		store_stmt_done(put);
		stored++;
	}
	if (r == 0)
		r = prov_remove_unseen(s, seen, op, &removed);
	free(text);
	json_decref(seen);
	r = store_op_end(s, r, op);
	if (r == 0 && (skipped || repeated))
		log_warn("store: provincial catalogue: %zu records stored, %zu without a usable "
			 "\"%s\" and %zu repeated keys skipped",
			 stored, skipped, key_field, repeated);
	if (r == 0)
		log_debug("store: provincial catalogue: %zu records stored, %zu removed", stored,
			  removed);
	return r;
}

int store_prov_catalog_set(struct store *s, const char *code, const char *record_text,
			   int64_t when_ms)
{
	const char *op = "storing a delivered procedure in the provincial snapshot";
	if (!code || !record_text)
		return -EINVAL;
	int r = store_write_check(s);
	if (r < 0)
		return r;
	r = store_op_begin(s, op);
	if (r < 0)
		return r;
	r = cat_exec(s, STC_PROV_PUT, op, "tti", code, record_text, when_ms);
	return store_op_end(s, r, op);
}
