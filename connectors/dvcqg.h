/*
 * dvcqg: the connector to the National Public Service Portal (Cổng Dịch vụ
 * công quốc gia) behind the national integration adapter, for the dossier
 * flow (dossier-spec §3 and §5, shared/domain/INTERFACES.md §3). Its typed
 * interface is `const struct dvcqg_ops *` in conn->type->ext.
 *
 * Three services: TraCuuHoSo (does the portal know a dossier, and which
 * progress rows does it hold), DongBoHoSoMC (create or update dossier
 * headers, in batches) and CapNhatTienDoHoSoMC (append progress rows, in
 * batches). The portal refuses a whole batch when one item is wrong and
 * names that item's MaHoSo in its message; the connector turns such
 * refusals into a verdict per item (below), so that one bad dossier never
 * holds up the others and the caller never has to guess which item the
 * portal meant.
 *
 * Answers are classified by configurable rules: `exists_pattern` ("đã tồn
 * tại|already exists") and `unknown_pattern` ("không tồn tại|not found")
 * are '|'-separated pieces of text compared after Unicode NFC and case
 * folding, and they only count when the message also names a MaHoSo of the
 * request (so that "Dịch vụ không tồn tại", a misconfigured service, is
 * never read as "this dossier is unknown"). A 200 whose error_code is not a
 * success is CONN_FAIL with the raw body kept; an answer that is not JSON
 * (an HTML page from a gateway) is CONN_RETRY after the HTTP core's
 * attempts; the adapter's session expiry and re-login are transparent.
 *
 * The portal answers "đã tồn tại" with error_code "-1", which the adapter
 * also reads as "session expired" (`expired_codes`). The connector reads a
 * refusal before that rule (adapter_call_ex classify_first): a 2xx answer
 * whose message does not match `expired_pattern` is the portal's verdict
 * and costs no re-login. Progress rows are sent with max_attempts 1: the
 * portal appends them, so the HTTP core never resends a batch; an unclear
 * outcome comes back in doubt for the caller to resolve with lookup.
 *
 * Completions always come from the loop, never from inside a call; after
 * the connector is freed nothing is called back.
 */
#ifndef LT_DVCQG_H
#define LT_DVCQG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "connector.h"

/* Most items one push call accepts (the connector splits them in batches). */
#define DVCQG_MAX_ITEMS 10000
/* Longest MaHoSo accepted (national codes are ~26 bytes). */
#define DVCQG_MAX_CODE_BYTES 128

/* The operation of a DongBoHoSoMC batch (isUpdating "False" / "True"). */
enum dvcqg_op {
	DVCQG_CREATE = 0,
	DVCQG_UPDATE = 1,
};

/*
 * What became of one item of a push; items[i] answers the caller's i-th.
 *
 * o == CONN_OK: the portal acknowledged it; applied says how (headers: a
 *   create refused because the dossier exists was applied as an update;
 *   progress rows: always DVCQG_CREATE, rows are appended).
 * o == CONN_FAIL: the portal refused it for good (the same request would
 *   be refused again); raw is the answer's body, for the mismatch log.
 *   unknown: the portal does not know the dossier (an update of a dossier
 *   it never received, or progress of one): send or create the header.
 * o == CONN_RETRY: try again later. in_doubt: a request carrying the item
 *   was handed to the adapter and its fate is unknown (timeout, 5xx, a
 *   gateway's HTML page; conservatively also when the adapter could not log
 *   in and never sent it): it may have been applied (for progress rows:
 *   resolve with lookup before sending again, dossier-spec §5). !in_doubt:
 *   it was certainly not sent (held back behind an earlier row of its
 *   dossier that was not accepted, or the request could not be submitted).
 *
 * why (NULL when OK) and raw (NULL when there was no answer body) are
 * borrowed for the callback's duration.
 */
struct dvcqg_item {
	enum conn_outcome o;
	enum dvcqg_op applied;
	bool unknown;
	bool in_doubt;
	const char *why;
	const char *raw;
};

/* Completion of a push: one dvcqg_item per item given, in the same order. */
typedef void (*dvcqg_push_cb)(struct conn *c, const struct dvcqg_item *items, size_t n, void *ud);

/*
 * Completion of lookup. CONN_OK with header == NULL: the portal does not
 * know the dossier (an empty result, or a refusal naming it that matches
 * unknown_pattern). CONN_OK with header: result[0] (borrowed), and progress
 * its "QuaTrinhXuLy" when that is a list (borrowed), NULL when the answer
 * carries none (then the rows the portal holds are unknown: resolve doubt
 * conservatively). CONN_FAIL: an answer of the wrong shape or a refusal
 * (raw kept); CONN_RETRY: transport, 5xx, HTML.
 */
typedef void (*dvcqg_lookup_cb)(struct conn *c, enum conn_outcome o, json_t *header,
				json_t *progress, const char *raw, const char *why, void *ud);

struct dvcqg_ops {
	/*
	 * TraCuuHoSo {"mahoso": mahoso}. A header whose MaHoSo is another
	 * dossier's is CONN_FAIL. An empty or over-long code fails from the
	 * loop. Returns 0, or negative (nothing will be called).
	 */
	int (*lookup)(struct conn *c, const char *mahoso, dvcqg_lookup_cb done, void *ud);
	/*
	 * DongBoHoSoMC for headers (an array of header objects, already in the
	 * portal's field names; a reference is taken: do not change it until
	 * done). op says create or update for all of them. The items are sent
	 * in batches of at most header_batch, several batches at once.
	 *
	 * A refused batch: the item the message names gets its verdict and
	 * the others are sent again without it (after a second refusal of
	 * the same items, one by one; a refusal naming no item of a batch of
	 * several also sends them one by one). A create refused because the
	 * named dossier exists is sent again as an update (applied =
	 * DVCQG_UPDATE). When a create batch is refused as existing twice, the
	 * rest is likely a batch the portal already received (a crash between
	 * the request and its acknowledgement), so it is sent as an update in
	 * one go; an item of that guess the portal does not know goes back to
	 * a create, once. An update of a dossier the portal does not know is
	 * CONN_FAIL with unknown set (not turned into a create: the caller
	 * believed the portal knew it, and decides). No item changes its
	 * operation more than twice, so every push ends.
	 *
	 * An item that is not an object or has no MaHoSo string (1 to
	 * DVCQG_MAX_CODE_BYTES bytes) is CONN_FAIL without being sent.
	 * Returns 0, or -EINVAL (not an array, empty, the same MaHoSo twice,
	 * bad op), -E2BIG (more than DVCQG_MAX_ITEMS) or another negative errno;
	 * then nothing will be called.
	 */
	int (*push_headers)(struct conn *c, json_t *headers, enum dvcqg_op op, dvcqg_push_cb done,
			    void *ud);
	/*
	 * CapNhatTienDoHoSoMC for progress rows (an array of row objects with
	 * MaHoSo; a reference is taken), in batches of at most progress_batch.
	 * Rows of one dossier go out in the order given, and a row is only
	 * sent once every earlier row of its dossier in this call was
	 * acknowledged: a row behind one that was refused or is in doubt is
	 * CONN_RETRY, not in doubt, never sent. A refusal naming a dossier
	 * that the portal does not know fails that dossier's rows with unknown
	 * set; another refusal naming a dossier sends its rows one by one to
	 * find the bad one; the rest is sent again as for headers. A refused
	 * batch is applied by the portal not at all (dossier-spec §3), so
	 * sending its rows again cannot duplicate them.
	 * Returns as push_headers.
	 */
	int (*push_progress)(struct conn *c, json_t *rows, dvcqg_push_cb done, void *ud);
	/* The configured batch sizes (header_batch, progress_batch: 1..1000). */
	size_t (*header_batch)(const struct conn *c);
	size_t (*progress_batch)(const struct conn *c);
};

extern const struct connector conn_dvcqg;

#endif
