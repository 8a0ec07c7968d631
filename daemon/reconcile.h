/*
 * reconcile: the three-way matching of online fee payments (issue 5,
 * payment-spec §4–§5) — the national payment platform's transactions, the
 * provincial system's fee records and what the national portal was sent
 * for each dossier — as a pure in-memory computation over arrays, so that
 * it runs on a worker thread, is the same for a day and for any range, and
 * is idempotent by construction (the same inputs give the same items in the
 * same order).
 *
 * The rules, in order:
 *  1. A transaction whose MaXacThuc did not verify is bad_signature and
 *     takes no further part: nothing of it is trusted. The province's fee
 *     record of the same MaThamChieu (if no trusted success took it) is
 *     named in that item, and not judged again as local_only.
 *  2. A successful transaction (TrangThaiGD 1) is matched to the fee record
 *     with its MaThamChieu; failing that, to an unmatched fee record of the
 *     same dossier and amount that the province marked paid online. Then:
 *     the record marked paid and the amounts equal: matched; amounts not
 *     equal: amount_differs; the record not marked paid (or none):
 *     platform_only — unknown_dossier when the province has neither a fee
 *     record nor a portal entry for that dossier.
 *  3. A second successful transaction of the same dossier (another
 *     MaThamChieu) is paid_twice.
 *  4. A pending transaction (3) older than pending_max_ms, or a fee record
 *     waiting for confirmation that long with no successful transaction, is
 *     pending_too_long.
 *  5. A fee record marked paid online that no successful transaction
 *     matched is local_only (its failed transaction, if any, named).
 *  6. A dossier paid online whose entry sent to the portal says not paid
 *     online (DuocThanhToanTrucTuyen 0) or lists no fee (DanhSachLePhi
 *     empty) is portal_without_fee; a dossier not yet sent is not judged.
 */
#ifndef LT_RECONCILE_H
#define LT_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rec_class {
	REC_MATCHED,
	REC_PLATFORM_ONLY,
	REC_LOCAL_ONLY,
	REC_AMOUNT_DIFFERS,
	REC_PAID_TWICE,
	REC_PENDING_TOO_LONG,
	REC_BAD_SIGNATURE,
	REC_PORTAL_WITHOUT_FEE,
	REC_UNKNOWN_DOSSIER,
	REC__COUNT,
};

/* "matched", "platform_only", ... (payment-spec §4); NULL out of range. */
const char *rec_class_name(enum rec_class c);

enum rec_tx_state { REC_TX_SUCCESS = 1, REC_TX_PENDING = 3, REC_TX_FAILED = 4 };
enum rec_fee_state { REC_FEE_PAID, REC_FEE_UNPAID, REC_FEE_PENDING };
enum rec_fee_method { REC_ONLINE, REC_CASH, REC_TRANSFER };

/* A platform transaction. Strings are borrowed and outlive the call. */
struct rec_tx {
	const char *ref;    /* MaThamChieu (required) */
	const char *txid;   /* MaGiaoDich, or NULL */
	const char *mahoso; /* from the receipt data, or NULL */
	int64_t amount;	    /* VND */
	int state;	    /* enum rec_tx_state; anything else is not judged */
	int64_t at_ms;	    /* ThoiGianGD */
	bool verified;	    /* its MaXacThuc verified */
};

/* A provincial fee record. */
struct rec_fee {
	const char *ref; /* MaThamChieu, or NULL (not paid online) */
	const char *mahoso;
	int64_t amount;
	enum rec_fee_state state;
	enum rec_fee_method method;
	int64_t at_ms;
};

/* What the portal was last sent for a dossier (its outbox header). */
struct rec_portal {
	const char *mahoso;
	int paid_online; /* DuocThanhToanTrucTuyen */
	int fee_lines;	 /* entries of DanhSachLePhi */
};

/* How an item was decided: the explanation's key. */
enum rec_how {
	REC_BY_REF,	       /* matched on MaThamChieu */
	REC_BY_DOSSIER_AMOUNT, /* matched on dossier code and amount */
	REC_NO_RECORD,	       /* no fee record to match */
	REC_NOT_PAID_LOCALLY,  /* the record matched is not marked paid */
	REC_NOT_VERIFIED,
	REC_SECOND_PAYMENT,
	REC_PENDING_PLATFORM, /* the platform's transaction is pending */
	REC_PENDING_LOCAL,    /* the province waits for a confirmation */
	REC_NO_SUCCESS,	      /* no successful transaction */
	REC_FAILED_ON_PLATFORM,
	REC_PORTAL_NOT_ONLINE,
	REC_PORTAL_NO_FEES,
};

/* One decision: indexes into the inputs (REC_NONE when none). */
#define REC_NONE UINT32_MAX
struct rec_item {
	uint8_t cls;  /* enum rec_class */
	uint8_t how;  /* enum rec_how */
	uint32_t tx;  /* into the transactions */
	uint32_t fee; /* into the fee records */
	uint32_t portal;
	uint32_t other; /* paid_twice: the dossier's first payment (a transaction) */
};

struct rec_result {
	struct rec_item *items; /* owned; transactions' decisions in input order, then records' */
	size_t n;
	size_t count[REC__COUNT];
	int64_t amount[REC__COUNT]; /* the platform's amount, else the province's */
};

struct rec_input {
	const struct rec_tx *tx;
	size_t n_tx;
	const struct rec_fee *fee;
	size_t n_fee;
	const struct rec_portal *portal;
	size_t n_portal;
	int64_t now_ms;
	int64_t pending_max_ms;
};

/*
 * Decides every transaction and fee record of in into *out (rec_free()
 * it). Inputs of at most UINT32_MAX - 1 records each. Returns 0, or -EINVAL
 * (a NULL array with a count, a transaction without ref, too many records).
 */
int reconcile(const struct rec_input *in, struct rec_result *out);
void rec_free(struct rec_result *r);

/*
 * The explanation of an item in Vietnamese, for the office's reports and
 * the mismatch log ("Khớp theo mã tham chiếu ...; số tiền 530.000 ₫"). New
 * string.
 */
char *rec_explain(const struct rec_input *in, const struct rec_item *it);

#endif
