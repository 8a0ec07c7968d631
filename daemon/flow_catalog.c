/*
 * flow_catalog: procedures published in the National Database on
 * Administrative Procedures reach the provincial system, and the two
 * catalogues never silently differ.
 *
 * A pass:
 *   1. LIST      LayDanhSachTTHC through the csdl connector: the published codes.
 *   2. PROVINCE  the provincial catalogue, read back whole (when a target
 *                connector is set), kept as code -> compact text.
 *   3. FETCH     LayThuTuc for the codes to look at, `window` at a time (the
 *                HTTP core keeps at most `concurrency` on the wire): every
 *                listed code on a full pass, new and reinstated codes on a
 *                quick pass. Each record is hashed (SHA-256 of its canonical
 *                text), mapped, stored with its history, delivered when the
 *                provincial side lacks it or the national version moved on
 *                since the last delivery, and compared aspect by aspect.
 *   4. WITHDRAW  active codes missing from the list are marked withdrawn,
 *                never deleted, unless the list looks wrong (empty, or more
 *                than max_withdraw_percent gone at once): an empty or failed
 *                list is not "everything was withdrawn".
 *   5. CLOSE     on a complete full pass, mismatches not seen again are
 *                closed with the time they cleared.
 *
 * A pass is full when asked (`lienthongctl run catalog full`) or when the
 * last full pass is older than full_interval; otherwise quick. On the first
 * sync, a procedure the provincial system already has is adopted as it is
 * (differences become mismatches for the office, not overwrites); later
 * national changes are delivered.
 *
 * Every problem with one record (malformed, too large, unmappable, refused
 * by the province) is a mismatch with the reason and the raw record; the
 * rest of the pass goes on.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "csdl.h"
#include "daemon.h"
#include "flow.h"
#include "log.h"
#include "mapping.h"
#include "provincial.h"
#include "store.h"
#include "strmap.h"
#include "util.h"

#define CATALOG_GROUP_WRITES 256 /* store writes per commit (one fsync) */

struct catalog_opts {
	char *source;
	char *target;
	char *mapping;
	int64_t full_interval_ms;
	bool deliver;
	int64_t max_withdraw_percent;
	int64_t window;
};

#define O(f) offsetof(struct catalog_opts, f)
static const struct conf_option catalog_options[] = {
	{"source", CONF_STRING, NULL, 0, 0, NULL, O(source), CONF_REQUIRED,
	 "Connector of the national procedure database (type csdl)."},
	{"target", CONF_STRING, NULL, 0, 0, NULL, O(target), 0,
	 "Connector of the provincial system (type provincial). Without it the flow only keeps "
	 "the national catalogue and its history."},
	{"mapping", CONF_STRING, "procedure", 0, 0, NULL, O(mapping), 0,
	 "Field map (mappings/*.json \"name\") from the national record to the provincial one; "
	 "its \"compare\" section names the aspects compared."},
	{"full_interval", CONF_DURATION, "1d", 60000, 30LL * 86400000, NULL, O(full_interval_ms), 0,
	 "A pass is full (every record fetched, hashed, compared) when the last full pass is "
	 "older than this; other passes are quick (list, new and withdrawn codes)."},
	{"deliver", CONF_BOOL, "true", 0, 0, NULL, O(deliver), 0,
	 "Deliver new and changed procedures to the provincial system. false: compare and "
	 "report only."},
	{"max_withdraw_percent", CONF_INT, "20", 0, 100, NULL, O(max_withdraw_percent), 0,
	 "A list that would withdraw more than this share of the published procedures at once "
	 "is not trusted: nothing is withdrawn and the pass fails, for an operator to look."},
	{"window", CONF_INT, "64", 1, 10000, NULL, O(window), 0,
	 "LayThuTuc requests handed to the connector at once (the connector's concurrency "
	 "limits what is on the wire)."},
	CONF_OPTION_END,
};
#undef O

enum phase { PH_IDLE, PH_LIST, PH_PROVINCE, PH_FETCH, PH_DONE };

struct catalog;

/* One pass. Refcounted: every request in flight holds a reference. */
struct cat_pass {
	unsigned refs;
	struct catalog *cat; /* NULL once the flow is gone */
	enum phase phase;
	bool full;
	bool stopping;
	bool incomplete;   /* a record could not be fetched: no auto-close of record kinds */
	bool store_failed; /* a write failed: stop, nothing more to lose */
	bool prov_ok;	   /* the provincial catalogue was read */
	bool list_trusted;
	int64_t start_ms;
	json_t *index;	      /* store_proc_index() at start */
	struct strmap listed; /* published codes */
	struct strmap prov;   /* provincial code -> compact record text */
	char **todo;	      /* codes to fetch; those from n_fetch on are probes */
	size_t n_todo, n_fetch, next, in_flight, writes;
	/* counts */
	size_t n_listed, n_bad_list, n_fetched, n_same, n_new, n_changed, n_reinstated;
	size_t n_withdrawn, n_delivered, n_adopted, n_unmappable, n_malformed, n_retry;
	size_t n_mismatches;
	struct flow_result res;
};

struct catalog {
	struct flow *f;
	struct conn *src;	      /* ref */
	struct conn *dst;	      /* ref, may be NULL */
	const struct map_record *map; /* borrowed from the config's map set */
	char *field;		      /* "FLOW=name" */
	struct cat_pass *pass;
	sd_event_source *step;
	int64_t last_full_ms, last_quick_ms;
};

#define CAT_FIELDS(c) ((const char *const[]){(c)->field, NULL})

static void pass_unref(struct cat_pass *p)
{
	if (!p || --p->refs > 0)
		return;
	json_decref(p->index);
	strmap_free(&p->listed);
	strmap_free(&p->prov);
	for (size_t i = 0; i < p->n_todo; i++)
		free(p->todo[i]);
	free(p->todo);
	flow_result_clear(&p->res);
	free(p);
}

/* ---- store helpers ------------------------------------------------------ */

static struct store *cat_store(struct cat_pass *p)
{
	return p->cat ? p->cat->f->d->store : NULL;
}

/* Groups writes: one commit (one fsync) per CATALOG_GROUP_WRITES. */
static void group_write(struct cat_pass *p, int r, const char *what)
{
	if (flow_store_ok(&p->res, &p->store_failed, r, what))
		p->writes++;
}

static void group_begin(struct cat_pass *p)
{
	struct store *s = cat_store(p);
	int r = s ? store_begin(s) : 0;
	if (r < 0)
		group_write(p, r, "begin a transaction");
}

static void group_commit(struct cat_pass *p, bool reopen)
{
	struct store *s = cat_store(p);
	if (!s)
		return;
	int r = store_commit(s);
	if (r < 0)
		group_write(p, r, "commit");
	p->writes = 0;
	if (reopen)
		group_begin(p);
}

static void maybe_commit(struct cat_pass *p)
{
	if (p->writes >= CATALOG_GROUP_WRITES)
		group_commit(p, true);
}

/* Records a mismatch of kind "catalog.<what>" for code. */
static void mismatch(struct cat_pass *p, const char *what, const char *code, const char *summary,
		     json_t *detail, const char *raw, const char *agency)
{
	struct store *s = cat_store(p);
	char *kind = xasprintf("catalog.%s", what);
	char *dtext = detail ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	struct mismatch m = {
		.kind = kind,
		.key = code,
		.summary = summary,
		.detail = dtext,
		.raw = raw,
		.agency = agency,
		.seen_ms = now_wall_ms(),
	};
	int64_t id = 0;
	bool is_new = false;
	if (s) {
		int r = store_mismatch_upsert(s, &m, &id, &is_new);
		group_write(p, r, "record a mismatch");
		if (r >= 0 && is_new)
			log_fields(LOG_NOTICE, CAT_FIELDS(p->cat), "mismatch %s %s: %s", kind, code,
				   summary);
	}
	p->n_mismatches++;
	json_decref(detail);
	free(dtext);
	free(kind);
}

/* ---- hashing and comparing ------------------------------------------------ */

/*
 * The stored text and content hash of a national record: compact JSON with
 * sorted keys, byte for byte as the national side sent it (a change of
 * Unicode composition is a change of the record).
 */
static char *content_text(const json_t *record)
{
	char *t = json_dumps(record, JSON_COMPACT | JSON_SORT_KEYS);
	if (!t)
		log_fatal("cannot serialise a procedure record");
	return t;
}

/*
 * Whether two values differ. json_equal is the fast path; texts that are
 * equal once normalised (NFC) do not differ.
 */
static bool values_differ(const json_t *a, const json_t *b)
{
	if (!a || !b)
		return a != b;
	if (json_equal((json_t *)a, (json_t *)b))
		return false;
	char *ta = map_canonical(a), *tb = map_canonical(b);
	bool differ = strcmp(ta, tb) != 0;
	free(ta);
	free(tb);
	return differ;
}

static char *sha256_hex(const char *text)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	static const char hex[] = "0123456789abcdef";
	if (!EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL))
		log_fatal("SHA-256 failed");
	char *out = xmalloc(2 * n + 1);
	for (unsigned i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * n] = '\0';
	return out;
}

static const char *aspect_summary(const char *aspect)
{
	static const struct {
		const char *aspect, *text;
	} texts[] = {
		{"fee", "Phí, lệ phí khác nhau giữa CSDL quốc gia và hệ thống của tỉnh"},
		{"time_limit",
		 "Thời hạn giải quyết khác nhau giữa CSDL quốc gia và hệ thống của tỉnh"},
		{"channel",
		 "Cách thức thực hiện (kênh nộp) khác nhau giữa CSDL quốc gia và hệ thống "
		 "của tỉnh"},
		{"documents", "Thành phần hồ sơ khác nhau giữa CSDL quốc gia và hệ thống của tỉnh"},
		{"agency", "Cơ quan thực hiện khác nhau giữa CSDL quốc gia và hệ thống của tỉnh"},
	};
	for (size_t i = 0; i < LT_ARRAY_SIZE(texts); i++)
		if (!strcmp(texts[i].aspect, aspect))
			return texts[i].text;
	return "Thông tin thủ tục khác nhau giữa CSDL quốc gia và hệ thống của tỉnh";
}

static const char *first_agency(const json_t *mapped)
{
	json_t *a = json_object_get(mapped, "coQuanThucHien");
	return json_string_value(json_is_array(a) ? json_array_get(a, 0) : a);
}

/* Compares a mapped national record with the provincial one, aspect by aspect. */
static void compare(struct cat_pass *p, const char *code, const json_t *mapped)
{
	const struct map_record *m = p->cat->map;
	struct strmap_slot *slot = strmap_get(&p->prov, code);
	const char *name = json_string_value(json_object_get(mapped, "tenThuTuc"));

	if (!slot) {
		mismatch(p, "missing_provincial", code,
			 "Thủ tục đã công bố trên CSDL quốc gia nhưng chưa có trên hệ thống của "
			 "tỉnh",
			 json_pack("{s:s?, s:o}", "tenThuTuc", name, "national",
				   json_deep_copy(mapped)),
			 NULL, first_agency(mapped));
		return;
	}
	json_error_t e;
	json_t *prov = json_loads(slot->value, 0, &e);
	const char *path;
	const char *aspect;
	for (size_t i = 0; (aspect = map_record_compare_at(m, i, &path)); i++) {
		json_t *a = map_path_get(mapped, path);
		json_t *b = prov ? map_path_get(prov, path) : NULL;
		if (values_differ(a, b))
			mismatch(p, aspect, code, aspect_summary(aspect),
				 json_pack("{s:s?, s:s, s:O?, s:O?}", "tenThuTuc", name, "path",
					   path, "national", a, "provincial", b),
				 NULL, first_agency(mapped));
		json_decref(a);
		json_decref(b);
	}
	json_decref(prov);
}

/* ---- steps ------------------------------------------------------------------ */

static void step_soon(struct catalog *c);

/* The top-level fields whose canonical text differs between two records. */
static json_t *fields_changed(const json_t *old, const json_t *nu)
{
	json_t *out = json_array();
	const char *k;
	json_t *v;
	json_object_foreach ((json_t *)nu, k, v) {
		json_t *o = json_object_get(old, k);
		if (!o || !json_equal(o, v))
			json_array_append_new(out, json_string(k));
	}
	json_object_foreach ((json_t *)old, k, v)
		if (!json_object_get(nu, k))
			json_array_append_new(out, json_string(k));
	return out;
}

struct put_op {
	struct cat_pass *p; /* ref */
	char *code;
	char *hash;
	json_t *mapped;
};

static void on_put(struct conn *conn, enum conn_outcome o, const char *detail, void *ud)
{
	struct put_op *op = ud;
	struct cat_pass *p = op->p;
	p->in_flight--;
	if (p->cat) {
		conn_note(conn, o, detail);
		if (o == CONN_OK) {
			group_write(p,
				    store_proc_delivered(cat_store(p), op->code, op->hash,
							 now_wall_ms()),
				    "record a delivery");
			char *text = json_dumps(op->mapped, JSON_COMPACT);
			group_write(
				p,
				store_prov_catalog_set(cat_store(p), op->code, text, now_wall_ms()),
				"record a delivered procedure");
			strmap_set_take(&p->prov, op->code, text);
			p->n_delivered++;
		} else {
			mismatch(p, "delivery_failed", op->code,
				 "Hệ thống của tỉnh không nhận thủ tục được gửi sang",
				 json_pack("{s:s, s:s}", "outcome", conn_outcome_name(o), "error",
					   detail ? detail : ""),
				 NULL, first_agency(op->mapped));
			if (o == CONN_RETRY) {
				/* The province is unreachable: the pass is incomplete;
				 * a refusal of one record (CONN_FAIL) is that record's
				 * mismatch only. */
				p->incomplete = true;
				flow_result_note(&p->res, CONN_RETRY, "delivery of %s: %s",
						 op->code, detail ? detail : "retry");
			}
		}
		compare(p, op->code, op->mapped);
		maybe_commit(p);
		step_soon(p->cat);
	}
	json_decref(op->mapped);
	free(op->code);
	free(op->hash);
	free(op);
	pass_unref(p);
}

/* Handles one fetched national record. */
static void process_record(struct cat_pass *p, const char *code, json_t *record)
{
	struct catalog *c = p->cat;
	const struct catalog_opts *opts = c->f->opts;
	struct store *s = cat_store(p);
	json_t *idx = json_object_get(p->index, code);
	const char *old_hash = json_string_value(json_object_get(idx, "hash"));
	const char *delivered = json_string_value(json_object_get(idx, "delivered_hash"));
	char *canon = content_text(record);
	char *hash = sha256_hex(canon);
	json_t *mapped = NULL, *problems = NULL, *changed = NULL;
	char *mapped_text = NULL, *changed_text = NULL;
	enum store_proc_change change = STORE_PROC_SAME;

	int r = map_apply(c->map, record, 0, &mapped, &problems);
	if (r != 0) {
		/* Only code-table gaps: the record is fine, the mapping data lacks a
		 * code ("unmappable"). Anything else: the record itself is bad. */
		bool codes_only = json_array_size(problems) > 0;
		size_t i;
		json_t *pr;
		json_array_foreach (problems, i, pr) {
			const char *t = json_string_value(json_object_get(pr, "type"));
			codes_only &= t && !strcmp(t, "code");
		}
		char *ptext = problems ? json_dumps(problems, JSON_COMPACT) : xstrdup("[]");
		char *summary =
			xasprintf(codes_only ? "Không chuyển đổi được thủ tục (mã chưa có "
					       "trong bảng mã): %s"
					     : "Bản ghi thủ tục từ CSDL quốc gia không hợp lệ: %s",
				  ptext);
		mismatch(p, codes_only ? "unmappable" : "malformed", code, summary,
			 json_pack("{s:O?}", "problems", problems), canon, NULL);
		free(summary);
		free(ptext);
		if (codes_only)
			p->n_unmappable++;
		else
			p->n_malformed++;
	} else {
		mapped_text = json_dumps(mapped, JSON_COMPACT);
	}
	if (old_hash && strcmp(old_hash, hash) != 0 && s) {
		json_t *old = NULL;
		if (store_proc_get(s, code, &old) == 0)
			changed = fields_changed(json_object_get(old, "national"), record);
		json_decref(old);
		if (changed)
			changed_text = json_dumps(changed, JSON_COMPACT);
	}
	struct store_procedure sp = {
		.code = code,
		.name = json_string_value(json_object_get(record, "TENTTHC")),
		.national = canon,
		.mapped = mapped_text,
		.hash = hash,
		.fields_changed = changed_text,
		.seen_ms = now_wall_ms(),
	};
	if (s) {
		r = store_proc_upsert(s, &sp, &change);
		group_write(p, r, "store a procedure");
	}
	switch (change) {
	case STORE_PROC_SAME: p->n_same++; break;
	case STORE_PROC_NEW: p->n_new++; break;
	case STORE_PROC_CHANGED: p->n_changed++; break;
	case STORE_PROC_REINSTATED: p->n_reinstated++; break;
	}
	if (change != STORE_PROC_SAME)
		log_fields(LOG_INFO, CAT_FIELDS(c), "procedure %s %s", code,
			   change == STORE_PROC_NEW	  ? "is new"
			   : change == STORE_PROC_CHANGED ? "changed"
							  : "is published again");

	if (mapped && c->dst && !p->store_failed) {
		bool have = strmap_has(&p->prov, code);
		const struct connector *t = c->dst->type;
		const struct provincial_ops *ops = t->ext;
		if (have && !delivered) {
			/* First sight of a procedure the province already has: adopt
			 * it; differences become mismatches, not overwrites. */
			group_write(p, store_proc_delivered(s, code, hash, now_wall_ms()),
				    "record an adoption");
			p->n_adopted++;
		} else if (p->prov_ok && opts->deliver &&
			   (!have || (delivered && strcmp(delivered, hash) != 0))) {
			struct put_op *op = xcalloc(1, sizeof(*op));
			op->p = p;
			p->refs++;
			op->code = xstrdup(code);
			op->hash = xstrdup(hash);
			op->mapped = mapped;
			mapped = NULL;
			p->in_flight++;
			if (ops->procedure_put(c->dst, code, op->mapped, on_put, op) < 0) {
				p->in_flight--;
				mismatch(p, "delivery_failed", code,
					 "Hệ thống của tỉnh không nhận thủ tục được gửi sang", NULL,
					 NULL, NULL);
				compare(p, code, op->mapped);
				json_decref(op->mapped);
				free(op->code);
				free(op->hash);
				free(op);
				p->refs--;
			}
			goto out;
		}
	}
	if (mapped && c->dst && p->prov_ok)
		compare(p, code, mapped);
out:
	maybe_commit(p);
	json_decref(mapped);
	json_decref(problems);
	json_decref(changed);
	free(changed_text);
	free(mapped_text);
	free(canon);
	free(hash);
}

struct get_op {
	struct cat_pass *p; /* ref */
	char *code;
	bool probe; /* a provincial-only code: withdrawn nationally, or unknown? */
};

/*
 * A code the province has that the national list does not: LayThuTuc tells
 * whether the national side knows it (withdrawn) or never had it.
 */
static void process_probe(struct cat_pass *p, const char *code, enum conn_outcome o, json_t *record,
			  const char *why)
{
	struct store *s = cat_store(p);
	struct strmap_slot *slot = strmap_get(&p->prov, code);
	json_error_t e;
	json_t *rec = slot ? json_loads(slot->value, 0, &e) : NULL;
	const char *name = json_string_value(json_object_get(rec, "tenThuTuc"));
	if (o == CONN_OK && record) {
		char *canon = content_text(record);
		char *hash = sha256_hex(canon);
		struct store_procedure sp = {
			.code = code,
			.name = json_string_value(json_object_get(record, "TENTTHC")),
			.national = canon,
			.hash = hash,
			.seen_ms = now_wall_ms(),
		};
		enum store_proc_change change;
		if (s) {
			group_write(p, store_proc_upsert(s, &sp, &change), "store a procedure");
			int r = store_proc_withdraw(s, code, now_wall_ms());
			if (r < 0)
				group_write(p, r, "withdraw a procedure");
		}
		mismatch(p, "withdrawn_provincial", code,
			 "Thủ tục đã bị bãi bỏ/không còn công bố trên CSDL quốc gia nhưng vẫn có "
			 "trên "
			 "hệ thống của tỉnh",
			 json_pack("{s:s?}", "tenThuTuc", name), NULL, first_agency(rec));
		free(canon);
		free(hash);
	} else if (o == CONN_FAIL) {
		mismatch(p, "unknown_provincial", code,
			 "Thủ tục có trên hệ thống của tỉnh nhưng không có trong CSDL quốc gia",
			 json_pack("{s:s?, s:s?}", "tenThuTuc", name, "national_answer", why), NULL,
			 first_agency(rec));
	} else {
		p->incomplete = true;
	}
	json_decref(rec);
	maybe_commit(p);
}

static void on_get(struct conn *conn, enum conn_outcome o, json_t *record, const char *raw,
		   const char *why, void *ud)
{
	struct get_op *op = ud;
	struct cat_pass *p = op->p;
	p->in_flight--;
	if (p->cat && !p->stopping && op->probe) {
		conn_note(conn, o == CONN_FAIL ? CONN_OK : o, why);
		process_probe(p, op->code, o, json_is_object(record) ? record : NULL, why);
	} else if (p->cat && !p->stopping) {
		p->n_fetched++;
		if (o == CONN_OK && json_is_object(record)) {
			conn_note(conn, o, NULL);
			process_record(p, op->code, record);
		} else if (o == CONN_FAIL) {
			conn_note(conn, CONN_OK, NULL); /* the system answered; the record is bad */
			char *summary =
				xasprintf("Bản ghi thủ tục từ CSDL quốc gia không hợp lệ: %s",
					  why ? why : "không rõ lý do");
			mismatch(p, "malformed", op->code, summary,
				 json_pack("{s:s?}", "error", why), raw, NULL);
			free(summary);
			p->n_malformed++;
		} else {
			conn_note(conn, o, why);
			p->n_retry++;
			p->incomplete = true;
			/* The connector's text names the service and the code. */
			flow_result_note(&p->res, CONN_RETRY, "%s", why ? why : "LayThuTuc: retry");
		}
		flow_count(p->cat->f, o == CONN_OK, o != CONN_OK);
	} else if (p->cat) {
		p->incomplete = true;
	}
	if (p->cat)
		step_soon(p->cat);
	free(op->code);
	free(op);
	pass_unref(p);
}

static bool listed_active(const json_t *idx)
{
	const char *st = json_string_value(json_object_get(idx, "status"));
	return st && !strcmp(st, "active");
}

/* Decides what to fetch once the list (and the provincial catalogue) are in. */
static void plan_fetch(struct cat_pass *p)
{
	size_t cap = 0;
	for (size_t i = 0; i < p->listed.cap; i++) {
		const char *code = p->listed.slots[i].key;
		if (!code)
			continue;
		json_t *idx = json_object_get(p->index, code);
		if (!p->full && idx && listed_active(idx))
			continue; /* quick pass: known and still published */
		if (p->n_todo == cap) {
			cap = cap ? cap * 2 : 256;
			p->todo = xrealloc(p->todo, cap * sizeof(*p->todo));
		}
		p->todo[p->n_todo++] = xstrdup(code);
	}
	p->n_fetch = p->n_todo;
	/* Provincial-only codes the national side may know as withdrawn (only
	 * against a list we trust: a short list would make every code look
	 * provincial-only). */
	for (size_t i = 0; p->prov_ok && p->list_trusted && i < p->prov.cap; i++) {
		const char *code = p->prov.slots[i].key;
		if (!code || strmap_has(&p->listed, code) || json_object_get(p->index, code))
			continue;
		if (p->n_todo == cap) {
			cap = cap ? cap * 2 : 256;
			p->todo = xrealloc(p->todo, cap * sizeof(*p->todo));
		}
		p->todo[p->n_todo++] = xstrdup(code);
	}
}

static void on_province(struct conn *conn, enum conn_outcome o, json_t *records, const char *why,
			void *ud)
{
	struct cat_pass *p = ud;
	p->in_flight--;
	if (p->cat) {
		conn_note(conn, o, why);
		if (o == CONN_OK && json_is_array(records)) {
			size_t i;
			json_t *r;
			const char *key = map_record_key(p->cat->map);
			json_array_foreach (records, i, r) {
				const char *code = json_string_value(
					json_object_get(r, key ? key : "maThuTuc"));
				if (code)
					strmap_set_take(&p->prov, code,
							json_dumps(r, JSON_COMPACT));
			}
			p->prov_ok = true;
			if (cat_store(p))
				group_write(p,
					    store_prov_catalog_replace(cat_store(p), records,
								       key ? key : "maThuTuc",
								       now_wall_ms()),
					    "store the provincial catalogue");
		} else {
			/* Without the provincial catalogue nothing is delivered or
			 * compared this pass; the national side is still kept. */
			flow_result_note(&p->res, o == CONN_OK ? CONN_FAIL : o,
					 "provincial catalogue: %s", why ? why : "unreadable");
		}
		p->phase = PH_FETCH;
		plan_fetch(p);
		step_soon(p->cat);
	}
	pass_unref(p);
}

static void on_list(struct conn *conn, enum conn_outcome o, json_t *items, const char *raw,
		    const char *why, void *ud)
{
	struct cat_pass *p = ud;
	(void)raw;
	p->in_flight--;
	if (!p->cat) {
		pass_unref(p);
		return;
	}
	conn_note(conn, o, why);
	if (o != CONN_OK || !json_is_array(items)) {
		flow_result_note(&p->res, o == CONN_OK ? CONN_FAIL : o, "%s",
				 why ? why : "LayDanhSachTTHC: no list");
		p->phase = PH_DONE;
		step_soon(p->cat);
		pass_unref(p);
		return;
	}
	size_t i;
	json_t *it;
	json_array_foreach (items, i, it) {
		const char *code = json_string_value(json_object_get(it, "MATTHC"));
		if (!code || !*code || strlen(code) > 64) {
			p->n_bad_list++;
			continue;
		}
		strmap_set(&p->listed, code, NULL);
	}
	p->n_listed = p->listed.n;
	if (p->n_bad_list)
		log_fields(LOG_WARNING, CAT_FIELDS(p->cat),
			   "LayDanhSachTTHC: %zu of %zu items have no usable MATTHC; skipped",
			   p->n_bad_list, json_array_size(items));

	/* Is the list to be trusted for withdrawals? */
	size_t active = 0, gone = 0;
	const char *code;
	json_t *idx;
	json_object_foreach (p->index, code, idx) {
		if (!listed_active(idx))
			continue;
		active++;
		gone += !strmap_has(&p->listed, code);
	}
	const struct catalog_opts *opts = p->cat->f->opts;
	if (active > 0 && p->n_listed == 0) {
		flow_result_note(&p->res, CONN_FAIL,
				 "LayDanhSachTTHC answered an empty list while %zu procedures are "
				 "published: "
				 "nothing withdrawn",
				 active);
		p->list_trusted = false;
	} else if (active > 0 && gone * 100 > active * (size_t)opts->max_withdraw_percent) {
		flow_result_note(
			&p->res, CONN_FAIL,
			"LayDanhSachTTHC lacks %zu of %zu published procedures (more than %lld "
			"%%): "
			"nothing withdrawn; check the national side, then run a full pass",
			gone, active, (long long)opts->max_withdraw_percent);
		p->list_trusted = false;
	} else {
		p->list_trusted = true;
	}

	if (p->cat->dst) {
		const struct provincial_ops *ops = p->cat->dst->type->ext;
		p->phase = PH_PROVINCE;
		p->refs++;
		p->in_flight++;
		if (ops->procedures_list(p->cat->dst, on_province, p) < 0) {
			p->in_flight--;
			p->refs--;
			flow_result_note(&p->res, CONN_RETRY,
					 "cannot read the provincial catalogue");
			p->phase = PH_FETCH;
			plan_fetch(p);
		}
	} else {
		p->phase = PH_FETCH;
		plan_fetch(p);
	}
	step_soon(p->cat);
	pass_unref(p);
}

/* Withdrawals and the provincial-only codes, once every record is in. */
static void finish_catalogue(struct cat_pass *p)
{
	struct store *s = cat_store(p);
	const char *code;
	json_t *idx;
	int64_t now = now_wall_ms();

	if (p->list_trusted && !p->store_failed) {
		json_object_foreach (p->index, code, idx) {
			if (!listed_active(idx) || strmap_has(&p->listed, code))
				continue;
			int r = s ? store_proc_withdraw(s, code, now) : 1;
			group_write(p, r, "withdraw a procedure");
			if (r == 0) {
				p->n_withdrawn++;
				json_object_set_new(idx, "status", json_string("withdrawn"));
				log_fields(LOG_NOTICE, CAT_FIELDS(p->cat),
					   "procedure %s was withdrawn nationally", code);
			}
			maybe_commit(p);
		}
	}
	if (!p->prov_ok || !p->list_trusted)
		return;
	for (size_t i = 0; i < p->prov.cap; i++) {
		code = p->prov.slots[i].key;
		if (!code || strmap_has(&p->listed, code))
			continue;
		idx = json_object_get(p->index, code);
		if (!idx)
			continue; /* probed during the fetch phase */
		json_error_t e;
		json_t *rec = json_loads(p->prov.slots[i].value, 0, &e);
		const char *name = json_string_value(json_object_get(rec, "tenThuTuc"));
		mismatch(p, "withdrawn_provincial", code,
			 "Thủ tục đã bị bãi bỏ/không còn công bố trên CSDL quốc gia nhưng vẫn có "
			 "trên "
			 "hệ thống của tỉnh",
			 json_pack("{s:s?}", "tenThuTuc", name), NULL, first_agency(rec));
		json_decref(rec);
		maybe_commit(p);
	}
}

/* Closes mismatches that a complete full pass no longer finds. */
static void auto_close(struct cat_pass *p)
{
	struct store *s = cat_store(p);
	static const char *const record_kinds[] = {"malformed", "unmappable"};
	static const char *const catalogue_kinds[] = {"missing_provincial", "unknown_provincial",
						      "withdrawn_provincial", "delivery_failed"};
	int64_t now = now_wall_ms();
	/* Only a complete full pass over a trusted list may say a mismatch is
	 * gone: a record not looked at is not a record that matches. */
	if (!s || !p->full || p->incomplete || p->store_failed || p->stopping || !p->list_trusted ||
	    p->res.outcome != CONN_OK)
		return;
	unsigned n = 0, total = 0;
	char kind[96];
	for (size_t i = 0; i < LT_ARRAY_SIZE(record_kinds); i++) {
		snprintf(kind, sizeof(kind), "catalog.%s", record_kinds[i]);
		if (store_mismatch_clear_unseen(s, kind, p->start_ms, now, &n) == 0)
			total += n;
	}
	if (p->prov_ok && p->cat->dst) {
		for (size_t i = 0; i < LT_ARRAY_SIZE(catalogue_kinds); i++) {
			snprintf(kind, sizeof(kind), "catalog.%s", catalogue_kinds[i]);
			if (store_mismatch_clear_unseen(s, kind, p->start_ms, now, &n) == 0)
				total += n;
		}
		const char *path, *aspect;
		for (size_t i = 0; (aspect = map_record_compare_at(p->cat->map, i, &path)); i++) {
			snprintf(kind, sizeof(kind), "catalog.%s", aspect);
			if (store_mismatch_clear_unseen(s, kind, p->start_ms, now, &n) == 0)
				total += n;
		}
	}
	if (total)
		log_fields(LOG_NOTICE, CAT_FIELDS(p->cat), "%u mismatch%s cleared", total,
			   total == 1 ? "" : "es");
}

static void end_pass(struct catalog *c)
{
	struct cat_pass *p = c->pass;
	char cursor[128], value[32];
	finish_catalogue(p);
	auto_close(p);
	int64_t now = now_wall_ms();
	if (!p->stopping && p->res.outcome == CONN_OK) {
		if (p->full)
			c->last_full_ms = now;
		else
			c->last_quick_ms = now;
		snprintf(cursor, sizeof(cursor), "catalog.%s.last_%s_ms", c->f->name,
			 p->full ? "full" : "quick");
		snprintf(value, sizeof(value), "%lld", (long long)now);
		if (cat_store(p))
			group_write(p, store_cursor_set(cat_store(p), cursor, value),
				    "set a cursor");
	}
	group_commit(p, false);
	c->pass = NULL;
	char *counts = xasprintf(
		"%s pass: %zu listed, %zu fetched, %zu new, %zu changed, %zu reinstated, %zu "
		"withdrawn, "
		"%zu delivered, %zu adopted, %zu unmappable, %zu malformed, %zu mismatches seen",
		p->full ? "full" : "quick", p->n_listed, p->n_fetched, p->n_new, p->n_changed,
		p->n_reinstated, p->n_withdrawn, p->n_delivered, p->n_adopted, p->n_unmappable,
		p->n_malformed, p->n_mismatches);
	enum conn_outcome o = p->stopping ? CONN_RETRY : p->res.outcome;
	if (p->stopping)
		flow_finish(c->f, o, "stopped; %s", counts);
	else if (p->res.why)
		flow_finish(c->f, o, "%s; %s", p->res.why, counts);
	else
		flow_finish(c->f, o, "%s", counts);
	free(counts);
	p->cat = NULL;
	pass_unref(p);
}

/* Hands out fetches up to the window; ends the pass when all is in. */
static int on_step(sd_event_source *s, void *userdata)
{
	struct catalog *c = userdata;
	struct cat_pass *p = c->pass;
	(void)s;
	sd_event_source_disable_unref(c->step);
	c->step = NULL;
	if (!p)
		return 0;
	const struct catalog_opts *o = c->f->opts;
	if (p->phase == PH_FETCH && !p->stopping && !p->store_failed) {
		const struct csdl_ops *ops = c->src->type->ext;
		while (p->next < p->n_todo && p->in_flight < (size_t)o->window) {
			struct get_op *op = xcalloc(1, sizeof(*op));
			op->p = p;
			op->probe = p->next >= p->n_fetch;
			op->code = xstrdup(p->todo[p->next++]);
			p->refs++;
			p->in_flight++;
			if (ops->get(c->src, op->code, on_get, op) < 0) {
				p->in_flight--;
				p->refs--;
				p->incomplete = true;
				flow_result_note(&p->res, CONN_RETRY, "cannot ask for %s",
						 op->code);
				free(op->code);
				free(op);
			}
		}
		if (p->next == p->n_todo && p->in_flight == 0)
			p->phase = PH_DONE;
	}
	if ((p->phase == PH_DONE || p->stopping || p->store_failed) && p->in_flight == 0)
		end_pass(c);
	return 0;
}

static void step_soon(struct catalog *c)
{
	if (!c || c->step)
		return;
	if (sd_event_add_defer(c->f->d->ev, &c->step, on_step, c) < 0)
		c->step = NULL;
}

/* ---- flow type ------------------------------------------------------------- */

static int64_t cursor_ms(struct store *s, const char *flow, const char *which)
{
	char name[128];
	char *v = NULL;
	int64_t ms = 0;
	snprintf(name, sizeof(name), "catalog.%s.last_%s_ms", flow, which);
	if (s && store_cursor_get(s, name, &v) == 0 && v)
		ms = atoll(v);
	free(v);
	return ms;
}

static int catalog_start(struct flow *f)
{
	struct catalog *c = f->priv;
	const struct catalog_opts *o = f->opts;
	struct store *s = f->d->store;
	if (!c || c->pass)
		return -EBUSY;
	struct cat_pass *p = xcalloc(1, sizeof(*p));
	p->refs = 1;
	p->cat = c;
	p->start_ms = now_wall_ms();
	p->full = !strcmp(f->run_mode, "full") ||
		  (strcmp(f->run_mode, "quick") != 0 &&
		   p->start_ms - c->last_full_ms >= o->full_interval_ms);
	p->index = s ? store_proc_index(s) : json_object();
	if (!p->index) {
		pass_unref(p);
		return -EIO;
	}
	strmap_init(&p->listed);
	strmap_init(&p->prov);
	c->pass = p;
	group_begin(p);
	const struct csdl_ops *ops = c->src->type->ext;
	p->phase = PH_LIST;
	p->refs++;
	p->in_flight++;
	int r = ops->list(c->src, on_list, p);
	if (r < 0) {
		p->in_flight--;
		p->refs--;
		group_commit(p, false);
		c->pass = NULL;
		pass_unref(p);
		return r;
	}
	log_fields(LOG_INFO, CAT_FIELDS(c), "%s pass started", p->full ? "full" : "quick");
	return 0;
}

static void catalog_stop(struct flow *f)
{
	struct catalog *c = f->priv;
	if (!c || !c->pass)
		return;
	c->pass->stopping = true;
	step_soon(c);
}

static json_t *catalog_status(struct flow *f)
{
	struct catalog *c = f->priv;
	if (!c)
		return NULL;
	json_t *j = json_object();
	json_object_set_new(j, "source", json_string(c->src->name));
	json_object_set_new(j, "target", c->dst ? json_string(c->dst->name) : json_null());
	json_object_set_new(j, "last_full", fmt_time_json(c->last_full_ms));
	json_object_set_new(j, "last_quick", fmt_time_json(c->last_quick_ms));
	if (c->pass) {
		struct cat_pass *p = c->pass;
		static const char *const phases[] = {"idle", "list", "province", "fetch", "done"};
		json_object_set_new(j, "pass",
				    json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "mode",
					      p->full ? "full" : "quick", "phase", phases[p->phase],
					      "listed", (json_int_t)p->n_listed, "to_fetch",
					      (json_int_t)p->n_todo, "fetched",
					      (json_int_t)p->n_fetched, "in_flight",
					      (json_int_t)p->in_flight));
	}
	return j;
}

static void catalog_free(struct flow *f)
{
	struct catalog *c = f->priv;
	if (!c)
		return;
	sd_event_source_disable_unref(c->step);
	if (c->pass) {
		c->pass->cat = NULL;
		pass_unref(c->pass);
	}
	conn_unref(c->src);
	conn_unref(c->dst);
	free(c->field);
	free(c);
	f->priv = NULL;
}

static int catalog_init(struct flow *f, bool check_only, char **err)
{
	const struct catalog_opts *o = f->opts;
	struct conn *src = flow_conn(f, "source", o->source, &conn_csdl, err);
	if (!src)
		return -EINVAL;
	struct conn *dst = NULL;
	if (o->target && !(dst = flow_conn(f, "target", o->target, &conn_provincial, err)))
		return -EINVAL;
	/* The map set of the config this flow is built from (a reload brings
	 * its own; a retired pass keeps the old one alive with its config). */
	const struct config *cfg = f->conf->owner;
	const struct map_record *m = cfg->maps ? map_record_find(cfg->maps, o->mapping) : NULL;
	if (!m) {
		*err = xasprintf("mapping: no field map named '%s' in %s", o->mapping,
				 cfg->daemon.mappings_dir);
		return -EINVAL;
	}
	if (check_only)
		return 0;
	struct catalog *c = xcalloc(1, sizeof(*c));
	c->f = f;
	c->src = conn_ref(src);
	c->dst = dst ? conn_ref(dst) : NULL;
	c->map = m;
	c->field = xasprintf("FLOW=%s", f->name);
	c->last_full_ms = cursor_ms(f->d->store, f->name, "full");
	c->last_quick_ms = cursor_ms(f->d->store, f->name, "quick");
	f->priv = c;
	return 0;
}

const struct flow_type flow_catalog = {
	.name = "catalog",
	.description = "procedures from the national database to the provincial system, with "
		       "history and catalogue mismatches",
	.options = catalog_options,
	.opts_size = sizeof(struct catalog_opts),
	.init = catalog_init,
	.free = catalog_free,
	.start = catalog_start,
	.stop = catalog_stop,
	.status = catalog_status,
};
