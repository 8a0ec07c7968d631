/*
 * csdl: the connector to the National Database on Administrative
 * Procedures (CSDL quốc gia về TTHC), over the adapter envelope
 * (shared/domain/INTERFACES.md §2). Its typed interface, for the catalog
 * flow, is `const struct csdl_ops *` in conn->type->ext.
 *
 * Every call goes through the HTTP core (concurrency limit, retries,
 * circuit breaker) and the adapter (session, re-login once). A caller may
 * issue many `get` at once: they queue in the core, at most `concurrency`
 * on the wire. Completions come from the loop, never from inside the call.
 */
#ifndef LT_CSDL_H
#define LT_CSDL_H

#include <jansson.h>

#include "connector.h"

/*
 * Completion of list/agencies/fields: items is the answer's result array
 * (borrowed for the call; each element an object), raw the HTTP body
 * (borrowed, for the mismatch log) on failure. An empty list is CONN_OK with
 * an empty array: it is for the caller to judge.
 */
typedef void (*csdl_list_cb)(struct conn *c, enum conn_outcome o, json_t *items, const char *raw,
			     const char *why, void *ud);
/*
 * Completion of get: record is result[0] (borrowed) on CONN_OK. A record
 * that is absent (empty result), not an object, or larger than
 * max_record_bytes is CONN_FAIL with why and raw.
 */
typedef void (*csdl_record_cb)(struct conn *c, enum conn_outcome o, json_t *record, const char *raw,
			       const char *why, void *ud);

struct csdl_ops {
	/* LayDanhSachTTHC: every published procedure, each at least {MATTHC}. */
	int (*list)(struct conn *c, csdl_list_cb done, void *ud);
	/* LayThuTuc with maTTHC: the full record. */
	int (*get)(struct conn *c, const char *matthc, csdl_record_cb done, void *ud);
	/* LayDanhMucCoQuan: agencies {MADONVI, TENDONVI, CAPDONVI}. */
	int (*agencies)(struct conn *c, csdl_list_cb done, void *ud);
	/* LayDanhMucLinhVuc: fields of work {MALINHVUC, TENLINHVUC, MANGANH}. */
	int (*fields)(struct conn *c, csdl_list_cb done, void *ud);
};

extern const struct connector conn_csdl;

#endif
