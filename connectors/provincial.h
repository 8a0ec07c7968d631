/*
 * provincial: the connector to the province's one-stop system (Hệ thống
 * thông tin giải quyết TTHC tỉnh), a REST API whose endpoints, auth and
 * field names come from configuration and mappings. Its typed interface is
 * `const struct provincial_ops *` in conn->type->ext. The catalogue part
 * serves the catalog flow, the change feed the dossier flow (dossier-spec
 * §1); the fee records the payment flow (payment-spec §3).
 */
#ifndef LT_PROVINCIAL_H
#define LT_PROVINCIAL_H

#include <jansson.h>
#include <stdbool.h>

#include "connector.h"

/* Longest cursor accepted, given or answered (the simulator's are decimal numbers). */
#define PROVINCIAL_MAX_CURSOR_BYTES 512

/* Completion of a catalogue read: records (borrowed) is every page's items. */
typedef void (*provincial_list_cb)(struct conn *c, enum conn_outcome o, json_t *records,
				   const char *why, void *ud);

/*
 * Completion of a change-feed read. On CONN_OK: items is the page's "items"
 * list (borrowed; its elements as the server sent them: one that is not an
 * object is passed on for the flow to judge), next_cursor the cursor to read
 * from next (borrowed; text, also when the server sent a number), has_more
 * whether the server said more changes are waiting now (false when it did
 * not say). Otherwise items and next_cursor are NULL and why says what went
 * wrong, naming the cursor.
 */
typedef void (*provincial_changes_cb)(struct conn *c, enum conn_outcome o, json_t *items,
				      const char *next_cursor, bool has_more, const char *why,
				      void *ud);

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
	/*
	 * Reads one page of the dossier change feed after cursor (NULL or ""
	 * = from the beginning): GET {changes_path}?cursor=C&limit=N with N =
	 * changes_limit. The feed is a log: reading again from an old cursor
	 * returns the same changes, so the caller advances its cursor only
	 * once the page is durably stored.
	 *
	 * CONN_FAIL (the server speaks another format, or the configuration
	 * is wrong): a 4xx; a page that is not an object, whose "items" is not
	 * a list, whose "next_cursor" is missing or not text/number or longer
	 * than PROVINCIAL_MAX_CURSOR_BYTES, or whose "has_more" is not a
	 * boolean; a page that does not move past its cursor (changes, or
	 * has_more, with next_cursor equal to the cursor: reading on would
	 * loop). CONN_RETRY: transport errors, 5xx, 429, and an answer that is
	 * not JSON (a gateway's HTML page, a cut body), after the HTTP core's
	 * attempts. An over-long cursor fails from the loop.
	 */
	int (*changes)(struct conn *c, const char *cursor, provincial_changes_cb done, void *ud);
	/*
	 * Reads the fee records of one day (day "YYYY-MM-DD", else -EINVAL):
	 * every page of GET {fees_path}?ngay=DAY&cursor=C&limit=N, following
	 * next_cursor while has_more (payment-spec §3). records is every
	 * page's items (an item that is not an object is passed on for the
	 * flow to judge). A page that is not the expected shape (as for
	 * changes), or more than max_pages pages, fails the whole read: a day
	 * is never reported in part. CONN_RETRY as for changes.
	 */
	int (*fees)(struct conn *c, const char *day, provincial_list_cb done, void *ud);
	/*
	 * The same read, handing each page's records to page (CONN_OK, on the
	 * loop, before the next page is asked for) instead of holding the
	 * day: done then ends it with the records no page gave (none) on
	 * CONN_OK — every page was handed over, the day is whole — or with
	 * the failure, after which the pages handed over are a part of the
	 * day, not the day.
	 */
	int (*fee_pages)(struct conn *c, const char *day, provincial_list_cb page,
			 provincial_list_cb done, void *ud);
};

extern const struct connector conn_provincial;

#endif
