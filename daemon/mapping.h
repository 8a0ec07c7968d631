/*
 * mapping: field maps and code tables kept as data (the JSON files of
 * mappings/), not code. See docs/mappings.md for the file format.
 *
 * A map set is every *.json file of [daemon] mappings_dir, loaded and
 * validated at start and on reload (an invalid set on reload keeps the old
 * one). Each file is either a field map ("kind": "record": target field <-
 * source path + transforms, lists of objects mapped element by element) or
 * a code table ("kind": "codes": code -> value with validity dates, so that
 * an old code keeps mapping for records dated before a reform). Every load
 * error names file, line and field.
 *
 * Applying a map never crashes on bad input: a record that cannot be
 * translated (unknown code, missing required field, text where a number
 * belongs) gives the list of problems, each naming the target field, so
 * the caller can log a mismatch with the reason and the raw record.
 */
#ifndef LT_MAPPING_H
#define LT_MAPPING_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct conf_errors;
struct map_set;
struct map_record; /* a field map */
struct map_table;  /* a code table */

/*
 * Loads every *.json file in dir (sorted by name). Errors are added to errs
 * as "file:line: field: message". Returns 0 with *out, or -EINVAL/-errno
 * (nothing in *out) when any file is invalid. A missing dir is an error.
 */
int map_set_load(const char *dir, struct map_set **out, struct conf_errors *errs);
void map_set_free(struct map_set *s);
/* Number of field maps and code tables loaded. */
size_t map_set_count(const struct map_set *s);

/* By the "name" given in the file. NULL when absent. */
const struct map_record *map_record_find(const struct map_set *s, const char *name);
const struct map_table *map_table_find(const struct map_set *s, const char *name);
/* The file a map or table came from (for messages). */
const char *map_record_file(const struct map_record *m);

/*
 * Applies field map m to src. at_ms is the date code-table validity is
 * judged at when the map declares no "date" or the record has no value
 * there (0 = now); a date found at the map's "date" paths takes precedence.
 * Returns 0 with *out (a new object). Returns 1 when the record cannot be
 * translated: *out is NULL and *problems (new ref) is an array of
 * {"field": target path, "reason": text, "type": "data"|"code"} objects:
 * "code" when a well-formed code is not covered by a code table at that
 * date (the mapping data needs a fix), "data" for missing or ill-typed
 * values (the record is bad). Returns negative only for the unexpected.
 */
int map_apply(const struct map_record *m, const json_t *src, int64_t at_ms, json_t **out,
	      json_t **problems);
/*
 * As map_apply; when notes is not NULL, *notes (new ref, also on failure)
 * gets an array of {"field": target path, "note": text} for what was
 * changed without failing (a text shortened by "truncate"), empty when none.
 */
int map_apply_notes(const struct map_record *m, const json_t *src, int64_t at_ms, json_t **out,
		    json_t **problems, json_t **notes);

/* The field map's "key" target field (e.g. "maThuTuc"), or NULL. */
const char *map_record_key(const struct map_record *m);
/*
 * The map's "compare" section: aspect name -> path into a mapped record.
 * Iterate with i = 0.. until NULL. *path gets the path.
 */
const char *map_record_compare_at(const struct map_record *m, size_t i, const char **path);

/*
 * Looks code up in table t as valid at at_ms (0 = now). Returns 0 with
 * *value (borrowed JSON), 1 when the code is unknown or not valid then (an
 * entry marked "ambiguous", e.g. a commune split between two new ones,
 * counts as not valid: it has no single value).
 */
int map_lookup(const struct map_table *t, const char *code, int64_t at_ms, const json_t **value);

/*
 * Reads path (same syntax as "from": "A.B", "A[].B", "A[0].B") in doc.
 * Returns a new reference: the value, an array of values when the path has
 * [] (flattened), or NULL when absent.
 */
json_t *map_path_get(const json_t *doc, const char *path);

/* ---- transforms, usable on their own ----------------------------------- */

/*
 * Money as the national data writes it: "8.000", "8.000 đồng", "50.000
 * đồng/hồ sơ", "1.200.000", "Không", "Miễn phí", "0", 8000 -> whole VND.
 * Returns 0 with *vnd, or -EINVAL for text that holds no amount.
 */
int map_money(const char *text, int64_t *vnd);

/* NFC normalisation of UTF-8 text (new string), NULL when not valid UTF-8. */
char *map_nfc(const char *utf8);

/* Parses "yyyyMMddHHmmss" (Asia/Ho_Chi_Minh, UTC+7) into wall ms. -EINVAL if malformed. */
int map_parse_vn_time(const char *text, int64_t *wall_ms);
/* Parses an ISO 8601 date or time ("2025-06-02T14:53:36+07:00"; no offset:
 * +07:00) into wall ms. -EINVAL if malformed. */
int map_parse_iso_time(const char *text, int64_t *wall_ms);
/* Formats wall ms as "yyyyMMddHHmmss" in Asia/Ho_Chi_Minh into buf (>= 15 bytes). */
char *map_format_vn_time(int64_t wall_ms, char *buf, size_t len);

/*
 * A canonical text of j (object keys sorted, compact, NFC strings) for
 * hashing and comparing records. Caller frees.
 */
char *map_canonical(const json_t *j);

#endif
