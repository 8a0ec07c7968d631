/*
 * provincial: the connector to the province's one-stop system (Hệ thống
 * thông tin giải quyết TTHC tỉnh), a REST API whose endpoints, auth and
 * field names come from configuration and mappings. Its typed interface is
 * `const struct provincial_ops *` in conn->type->ext. This part serves the
 * catalog flow; the dossier and fee parts join it in later issues.
 */
#ifndef LT_PROVINCIAL_H
#define LT_PROVINCIAL_H

#include <jansson.h>

#include "connector.h"

/* Completion of a catalogue read: records (borrowed) is every page's items. */
typedef void (*provincial_list_cb)(struct conn *c, enum conn_outcome o, json_t *records,
				   const char *why, void *ud);

struct provincial_ops {
	/*
	 * Reads the whole provincial catalogue, page by page (GET
	 * {procedures_path}?page=N&size=M). A page that is not the expected
	 * shape fails the read (CONN_FAIL with why): a partial catalogue is
	 * never reported as the catalogue.
	 */
	int (*procedures_list)(struct conn *c, provincial_list_cb done, void *ud);
	/*
	 * Creates or replaces one procedure: PUT {procedures_path}/{code} with
	 * record (borrowed; already in the provincial field names). detail
	 * carries the server's answer on failure.
	 */
	int (*procedure_put)(struct conn *c, const char *code, json_t *record, conn_done_cb done,
			     void *ud);
};

extern const struct connector conn_provincial;

#endif
