/*
 * reconcile: see reconcile.h for the rules. Built for a million
 * transactions against a million fee records in well under a second: the
 * inputs stay where they are (arrays of borrowed strings), and the joins
 * are open-addressing indexes of record numbers with the keys' hashes kept
 * beside them — no copy of a key, no allocation per record.
 */
#include "reconcile.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "util.h"

static const char *const class_names[REC__COUNT] = {
	[REC_MATCHED] = "matched",
	[REC_PLATFORM_ONLY] = "platform_only",
	[REC_LOCAL_ONLY] = "local_only",
	[REC_AMOUNT_DIFFERS] = "amount_differs",
	[REC_PAID_TWICE] = "paid_twice",
	[REC_PENDING_TOO_LONG] = "pending_too_long",
	[REC_BAD_SIGNATURE] = "bad_signature",
	[REC_PORTAL_WITHOUT_FEE] = "portal_without_fee",
	[REC_UNKNOWN_DOSSIER] = "unknown_dossier",
};

const char *rec_class_name(enum rec_class c)
{
	return (unsigned)c < REC__COUNT ? class_names[c] : NULL;
}

/* ---- an index of record numbers by a key's hash ----------------------- */

/* FNV-1a, then a final mix so that the low bits (the slot) depend on all. */
static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static uint64_t hash_mix(uint64_t h, int64_t v)
{
	h ^= (uint64_t)v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ULL;
	return h ^ (h >> 29);
}

/* Slots hold record + 1 (0: empty) and the key's hash, to skip most compares. */
struct ix {
	uint32_t *rec;
	uint64_t *hash;
	size_t mask;
};

static void ix_init(struct ix *x, size_t n)
{
	size_t cap = 16;
	while (cap < n * 2)
		cap <<= 1;
	x->rec = xcalloc(cap, sizeof(*x->rec));
	x->hash = xmalloc(cap * sizeof(*x->hash));
	x->mask = cap - 1;
}

static void ix_free(struct ix *x)
{
	free(x->rec);
	free(x->hash);
}

/* Adds record r under hash h (duplicates kept: a probe walks them all). */
static void ix_add(struct ix *x, uint64_t h, uint32_t r)
{
	size_t i = h & x->mask;
	while (x->rec[i])
		i = (i + 1) & x->mask;
	x->rec[i] = r + 1;
	x->hash[i] = h;
}

/* Iteration over the records under hash h: *pos starts at SIZE_MAX. */
static uint32_t ix_next(const struct ix *x, uint64_t h, size_t *pos)
{
	size_t i = *pos == SIZE_MAX ? h & x->mask : (*pos + 1) & x->mask;
	for (; x->rec[i]; i = (i + 1) & x->mask) {
		if (x->hash[i] == h) {
			*pos = i;
			return x->rec[i] - 1;
		}
	}
	*pos = i;
	return REC_NONE;
}

static bool same(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* ---- the passes ---------------------------------------------------------- */

struct run {
	const struct rec_input *in;
	struct rec_result *out;
	size_t cap;
	uint8_t *fee_used;  /* a transaction took the record */
	uint32_t *first_ok; /* per transaction: the earliest success of its dossier */
	struct ix fee_ref, fee_dossier_amount, fee_dossier, portal, tx_ref;
};

static void emit(struct run *r, enum rec_class c, enum rec_how how, uint32_t tx, uint32_t fee,
		 uint32_t portal)
{
	if (r->out->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 1024;
		r->out->items = xrealloc(r->out->items, r->cap * sizeof(*r->out->items));
	}
	r->out->items[r->out->n++] = (struct rec_item){
		.cls = c, .how = how, .tx = tx, .fee = fee, .portal = portal, .other = REC_NONE};
	r->out->count[c]++;
	const struct rec_input *in = r->in;
	r->out->amount[c] += tx != REC_NONE    ? in->tx[tx].amount
			     : fee != REC_NONE ? in->fee[fee].amount
					       : 0;
}

static bool judged_success(const struct rec_tx *t)
{
	return t->verified && t->state == REC_TX_SUCCESS;
}

/* The fee record of ref, not yet taken. */
static uint32_t fee_by_ref(const struct run *r, const char *ref)
{
	size_t pos = SIZE_MAX;
	uint64_t h = hash_str(ref);
	uint32_t f;
	while ((f = ix_next(&r->fee_ref, h, &pos)) != REC_NONE)
		if (!r->fee_used[f] && same(r->in->fee[f].ref, ref))
			return f;
	return REC_NONE;
}

/* An untaken record of dossier m and amount a that the province marked paid online. */
static uint32_t fee_by_dossier_amount(const struct run *r, const char *m, int64_t a)
{
	size_t pos = SIZE_MAX;
	uint64_t h = hash_mix(hash_str(m), a);
	uint32_t f;
	while ((f = ix_next(&r->fee_dossier_amount, h, &pos)) != REC_NONE) {
		const struct rec_fee *e = &r->in->fee[f];
		if (!r->fee_used[f] && e->amount == a && same(e->mahoso, m))
			return f;
	}
	return REC_NONE;
}

static uint32_t find_by_dossier(const struct run *r, const struct ix *x, const char *m, bool portal)
{
	size_t pos = SIZE_MAX;
	uint64_t h = hash_str(m);
	uint32_t i;
	while ((i = ix_next(x, h, &pos)) != REC_NONE)
		if (same(portal ? r->in->portal[i].mahoso : r->in->fee[i].mahoso, m))
			return i;
	return REC_NONE;
}

/* The fee records' three indexes (a thread of build_indexes). */
static void *fee_indexes(void *ud)
{
	struct run *r = ud;
	const struct rec_input *in = r->in;
	for (uint32_t f = 0; f < in->n_fee; f++) {
		const struct rec_fee *e = &in->fee[f];
		if (e->ref)
			ix_add(&r->fee_ref, hash_str(e->ref), f);
		if (!e->mahoso)
			continue;
		uint64_t hm = hash_str(e->mahoso);
		ix_add(&r->fee_dossier, hm, f);
		if (e->state == REC_FEE_PAID && e->method == REC_ONLINE)
			ix_add(&r->fee_dossier_amount, hash_mix(hm, e->amount), f);
	}
	return NULL;
}

/*
 * The indexes, the fee records' on a thread of their own while this one
 * does the portal's and the transactions': each index is its own memory,
 * and a million of each take as long as the matching that follows.
 */
static void build_indexes(struct run *r)
{
	const struct rec_input *in = r->in;
	pthread_t th;
	ix_init(&r->fee_ref, in->n_fee);
	ix_init(&r->fee_dossier_amount, in->n_fee);
	ix_init(&r->fee_dossier, in->n_fee);
	ix_init(&r->portal, in->n_portal);
	ix_init(&r->tx_ref, in->n_tx);
	bool threaded = pthread_create(&th, NULL, fee_indexes, r) == 0;
	if (!threaded)
		fee_indexes(r);
	for (uint32_t p = 0; p < in->n_portal; p++)
		if (in->portal[p].mahoso)
			ix_add(&r->portal, hash_str(in->portal[p].mahoso), p);
	for (uint32_t t = 0; t < in->n_tx; t++)
		ix_add(&r->tx_ref, hash_str(in->tx[t].ref), t);
	if (threaded)
		pthread_join(th, NULL);
}

/*
 * Whether success a is the dossier's payment rather than b: the one whose
 * MaThamChieu the province recorded as paid, else the earlier, else the
 * smaller MaThamChieu (so that the choice does not depend on input order).
 */
static bool kept_before(const struct run *r, const uint32_t *took, uint32_t a, uint32_t b)
{
	const struct rec_input *in = r->in;
	bool ka = took[a] != REC_NONE && in->fee[took[a]].state == REC_FEE_PAID;
	bool kb = took[b] != REC_NONE && in->fee[took[b]].state == REC_FEE_PAID;
	if (ka != kb)
		return ka;
	if (in->tx[a].at_ms != in->tx[b].at_ms)
		return in->tx[a].at_ms < in->tx[b].at_ms;
	return strcmp(in->tx[a].ref, in->tx[b].ref) < 0;
}

/*
 * Per successful transaction, the payment of its dossier (kept_before());
 * the other successes are paid_twice. An index of dossiers to the payment
 * so far, corrected as better ones come.
 */
static void find_first_payments(struct run *r, const uint32_t *took)
{
	const struct rec_input *in = r->in;
	struct ix by_dossier;
	ix_init(&by_dossier, in->n_tx);
	r->first_ok = xmalloc((in->n_tx ? in->n_tx : 1) * sizeof(*r->first_ok));
	for (uint32_t t = 0; t < in->n_tx; t++) {
		const struct rec_tx *x = &in->tx[t];
		r->first_ok[t] = t;
		if (!judged_success(x) || !x->mahoso)
			continue;
		uint64_t h = hash_str(x->mahoso);
		size_t pos = SIZE_MAX;
		uint32_t o;
		while ((o = ix_next(&by_dossier, h, &pos)) != REC_NONE)
			if (same(in->tx[o].mahoso, x->mahoso))
				break;
		if (o == REC_NONE) {
			ix_add(&by_dossier, h, t);
			continue;
		}
		/* pos is the dossier's slot: it holds the payment so far */
		if (kept_before(r, took, t, o))
			by_dossier.rec[pos] = t + 1;
	}
	/* second walk: every success learns its dossier's earliest */
	for (uint32_t t = 0; t < in->n_tx; t++) {
		const struct rec_tx *x = &in->tx[t];
		if (!judged_success(x) || !x->mahoso)
			continue;
		size_t pos = SIZE_MAX;
		uint32_t o;
		while ((o = ix_next(&by_dossier, hash_str(x->mahoso), &pos)) != REC_NONE)
			if (same(in->tx[o].mahoso, x->mahoso))
				break;
		r->first_ok[t] = o == REC_NONE ? t : o;
	}
	ix_free(&by_dossier);
}

int reconcile(const struct rec_input *in, struct rec_result *out)
{
	memset(out, 0, sizeof(*out));
	if (!in || (in->n_tx && !in->tx) || (in->n_fee && !in->fee) ||
	    (in->n_portal && !in->portal) || in->n_tx >= UINT32_MAX || in->n_fee >= UINT32_MAX ||
	    in->n_portal >= UINT32_MAX)
		return -EINVAL;
	for (size_t t = 0; t < in->n_tx; t++)
		if (!in->tx[t].ref)
			return -EINVAL;
	struct run r = {.in = in, .out = out};
	r.fee_used = xcalloc(in->n_fee ? in->n_fee : 1, 1);
	build_indexes(&r);

	/* A: successes on MaThamChieu first, so that B cannot take their records */
	uint32_t *took = xmalloc((in->n_tx ? in->n_tx : 1) * sizeof(*took));
	for (uint32_t t = 0; t < in->n_tx; t++) {
		took[t] = REC_NONE;
		if (judged_success(&in->tx[t]) &&
		    (took[t] = fee_by_ref(&r, in->tx[t].ref)) != REC_NONE)
			r.fee_used[took[t]] = 1;
	}
	find_first_payments(&r, took);
	/* B: the rest on dossier and amount; then each transaction's decision */
	uint8_t *portal_done = xcalloc(in->n_portal ? in->n_portal : 1, 1);
	for (uint32_t t = 0; t < in->n_tx; t++) {
		const struct rec_tx *x = &in->tx[t];
		uint32_t f = took[t];
		enum rec_how how = REC_BY_REF;
		if (!x->verified) {
			/* the province's record of that reference is described with it
			 * (and so not called local_only too): one cause, one item */
			uint32_t fr = fee_by_ref(&r, x->ref);
			if (fr != REC_NONE)
				r.fee_used[fr] = 1;
			emit(&r, REC_BAD_SIGNATURE, REC_NOT_VERIFIED, t, fr, REC_NONE);
			continue;
		}
		if (x->state == REC_TX_PENDING) {
			if (in->now_ms - x->at_ms > in->pending_max_ms)
				emit(&r, REC_PENDING_TOO_LONG, REC_PENDING_PLATFORM, t,
				     fee_by_ref(&r, x->ref), REC_NONE);
			continue;
		}
		if (x->state != REC_TX_SUCCESS)
			continue; /* a failed attempt is no discrepancy by itself (see 5.) */
		if (f == REC_NONE && x->mahoso &&
		    (f = fee_by_dossier_amount(&r, x->mahoso, x->amount)) != REC_NONE) {
			r.fee_used[f] = 1;
			how = REC_BY_DOSSIER_AMOUNT;
		}
		enum rec_class c;
		if (r.first_ok[t] != t) {
			c = REC_PAID_TWICE;
			how = REC_SECOND_PAYMENT;
		} else if (f == REC_NONE) {
			bool known = x->mahoso &&
				     (find_by_dossier(&r, &r.fee_dossier, x->mahoso, false) !=
					      REC_NONE ||
				      find_by_dossier(&r, &r.portal, x->mahoso, true) != REC_NONE);
			c = known ? REC_PLATFORM_ONLY : REC_UNKNOWN_DOSSIER;
			how = REC_NO_RECORD;
		} else if (in->fee[f].state != REC_FEE_PAID) {
			c = REC_PLATFORM_ONLY;
			how = REC_NOT_PAID_LOCALLY;
		} else {
			c = in->fee[f].amount == x->amount ? REC_MATCHED : REC_AMOUNT_DIFFERS;
		}
		emit(&r, c, how, t, f, REC_NONE);
		if (c == REC_PAID_TWICE)
			out->items[out->n - 1].other = r.first_ok[t];
		/* 6: what the portal was told about a dossier paid online */
		uint32_t p = x->mahoso ? find_by_dossier(&r, &r.portal, x->mahoso, true) : REC_NONE;
		if (p != REC_NONE && !portal_done[p] &&
		    (in->portal[p].paid_online == 0 || in->portal[p].fee_lines == 0)) {
			portal_done[p] = 1;
			emit(&r, REC_PORTAL_WITHOUT_FEE,
			     in->portal[p].paid_online == 0 ? REC_PORTAL_NOT_ONLINE
							    : REC_PORTAL_NO_FEES,
			     t, REC_NONE, p);
		}
	}
	/* 4, 5: the province's records no success took */
	for (uint32_t f = 0; f < in->n_fee; f++) {
		const struct rec_fee *e = &in->fee[f];
		if (r.fee_used[f] || e->method != REC_ONLINE)
			continue;
		if (e->state == REC_FEE_PAID) {
			uint32_t t = REC_NONE;
			if (e->ref) {
				size_t pos = SIZE_MAX;
				uint64_t h = hash_str(e->ref);
				while ((t = ix_next(&r.tx_ref, h, &pos)) != REC_NONE)
					if (same(in->tx[t].ref, e->ref) && in->tx[t].verified)
						break;
			}
			emit(&r, REC_LOCAL_ONLY,
			     t != REC_NONE && in->tx[t].state == REC_TX_FAILED
				     ? REC_FAILED_ON_PLATFORM
				     : REC_NO_SUCCESS,
			     t, f, REC_NONE);
		} else if (e->state == REC_FEE_PENDING &&
			   in->now_ms - e->at_ms > in->pending_max_ms) {
			/* unless the platform's own pending transaction said so already */
			size_t pos = SIZE_MAX;
			uint32_t t = REC_NONE;
			bool said = false;
			if (e->ref) {
				uint64_t h = hash_str(e->ref);
				while ((t = ix_next(&r.tx_ref, h, &pos)) != REC_NONE)
					if (same(in->tx[t].ref, e->ref) && in->tx[t].verified &&
					    in->tx[t].state == REC_TX_PENDING &&
					    in->now_ms - in->tx[t].at_ms > in->pending_max_ms)
						said = true;
			}
			if (!said)
				emit(&r, REC_PENDING_TOO_LONG, REC_PENDING_LOCAL, REC_NONE, f,
				     REC_NONE);
		}
	}
	free(portal_done);
	free(took);
	free(r.first_ok);
	free(r.fee_used);
	ix_free(&r.fee_ref);
	ix_free(&r.fee_dossier_amount);
	ix_free(&r.fee_dossier);
	ix_free(&r.portal);
	ix_free(&r.tx_ref);
	return 0;
}

void rec_free(struct rec_result *r)
{
	if (!r)
		return;
	free(r->items);
	memset(r, 0, sizeof(*r));
}

/* ---- explanations ----------------------------------------------------------- */

/* A fee record's state as the explanations say it. */
static const char *fee_state_vn(enum rec_fee_state st)
{
	return st == REC_FEE_PAID     ? "đã thanh toán"
	       : st == REC_FEE_UNPAID ? "chưa thanh toán"
				      : "chờ xác nhận";
}

char *rec_explain(const struct rec_input *in, const struct rec_item *it)
{
	const struct rec_tx *t = it->tx != REC_NONE ? &in->tx[it->tx] : NULL;
	const struct rec_fee *f = it->fee != REC_NONE ? &in->fee[it->fee] : NULL;
	char a[REPORT_VND_LEN], b[REPORT_VND_LEN];
	if (t)
		report_vnd(t->amount, a, sizeof(a));
	if (f)
		report_vnd(f->amount, b, sizeof(b));
	switch ((enum rec_how)it->how) {
	case REC_BY_REF:
		if (it->cls == REC_MATCHED)
			return xasprintf("Khớp theo mã tham chiếu %s; số tiền %s", t->ref, a);
		return xasprintf("Khớp theo mã tham chiếu %s nhưng số tiền lệch: trên nền tảng %s, "
				 "tại tỉnh %s",
				 t->ref, a, b);
	case REC_BY_DOSSIER_AMOUNT:
		return xasprintf("Không có hồ sơ phí nào mang mã tham chiếu %s; khớp theo mã hồ sơ "
				 "%s và số tiền %s (mã tham chiếu tại tỉnh: %s)",
				 t->ref, t->mahoso, a, f->ref ? f->ref : "không có");
	case REC_NO_RECORD:
		if (it->cls == REC_UNKNOWN_DOSSIER)
			return xasprintf("Giao dịch thành công %s (%s) của hồ sơ %s: tỉnh không có "
					 "hồ sơ này",
					 t->ref, a, t->mahoso ? t->mahoso : "(không ghi)");
		return xasprintf("Giao dịch thành công %s (%s) của hồ sơ %s: tỉnh không có bản "
				 "ghi phí nào khớp (theo mã tham chiếu, hoặc mã hồ sơ và số tiền)",
				 t->ref, a, t->mahoso);
	case REC_NOT_PAID_LOCALLY:
		return xasprintf("Giao dịch %s thành công trên nền tảng (%s) nhưng tỉnh ghi nhận "
				 "trạng thái %s",
				 t->ref, a, fee_state_vn(f->state));
	case REC_NOT_VERIFIED:
		if (f)
			return xasprintf(
				"MaXacThuc của giao dịch %s không đúng: không dùng dữ liệu "
				"của giao dịch này; tỉnh ghi hồ sơ %s %s %s, chưa thể "
				"xác nhận với nền tảng",
				t->ref, f->mahoso, fee_state_vn(f->state),
				report_vnd(f->amount, b, sizeof(b)));
		return xasprintf("MaXacThuc của giao dịch %s không đúng: không dùng dữ liệu của "
				 "giao dịch này",
				 t->ref);
	case REC_SECOND_PAYMENT:
		return xasprintf("Hồ sơ %s đã có giao dịch thành công %s trước đó; giao dịch %s "
				 "(%s) là lần thanh toán thứ hai",
				 t->mahoso, it->other != REC_NONE ? in->tx[it->other].ref : "khác",
				 t->ref, a);
	case REC_PENDING_PLATFORM:
		return xasprintf("Giao dịch %s (%s) vẫn ở trạng thái chờ trên nền tảng quá thời "
				 "hạn cho phép",
				 t->ref, a);
	case REC_PENDING_LOCAL:
		return xasprintf("Tỉnh chờ xác nhận thanh toán %s của hồ sơ %s (%s) quá thời hạn "
				 "cho phép",
				 f->ref ? f->ref : "(không có mã tham chiếu)", f->mahoso, b);
	case REC_NO_SUCCESS:
		return xasprintf("Tỉnh ghi hồ sơ %s đã thanh toán trực tuyến %s (mã tham chiếu %s) "
				 "nhưng nền tảng không có giao dịch thành công nào khớp",
				 f->mahoso, b, f->ref ? f->ref : "không có");
	case REC_FAILED_ON_PLATFORM:
		return xasprintf("Tỉnh ghi hồ sơ %s đã thanh toán %s nhưng giao dịch %s thất bại "
				 "trên nền tảng",
				 f->mahoso, b, t->ref);
	case REC_PORTAL_NOT_ONLINE:
		return xasprintf("Hồ sơ %s đã thanh toán trực tuyến (%s) nhưng dữ liệu gửi Cổng "
				 "DVCQG ghi DuocThanhToanTrucTuyen = 0",
				 t->mahoso, t->ref);
	case REC_PORTAL_NO_FEES:
		return xasprintf("Hồ sơ %s đã thanh toán trực tuyến (%s) nhưng dữ liệu gửi Cổng "
				 "DVCQG không có DanhSachLePhi",
				 t->mahoso, t->ref);
	}
	return xstrdup("?");
}
