/*
 * jsonpos: the line of every value of a JSON text, by path.
 *
 * jansson parses without keeping positions, yet an error in a mapping file
 * must name the line of the offending value. So the text that jansson has
 * accepted is scanned once more and each value's path is recorded with the
 * line it starts on.
 *
 * Paths: object members are joined with ".", array elements are "[N]", the
 * root is "" (e.g. "fields.tenThuTuc.transform[1]", "entries[3].valid_to").
 * Keys are used decoded (escapes resolved) and verbatim, so a key holding
 * "." or "[" can make two paths spell the same; the first value in document
 * order then wins. Lines count from 1, like jansson's json_error_t.
 */
#ifndef LT_JSONPOS_H
#define LT_JSONPOS_H

#include <stddef.h>

struct jsonpos;

/*
 * Indexes the JSON text (len bytes, need not be NUL-terminated). Meant for
 * text jansson has parsed; anything else may be rejected. Nesting deeper
 * than 1024 levels is refused. Returns 0 with *out (free with
 * jsonpos_free), -EINVAL for text that is not JSON, -E2BIG when too deep or
 * when the paths would take more than 64 MiB.
 */
int jsonpos_index(const char *text, size_t len, struct jsonpos **out);
void jsonpos_free(struct jsonpos *p);

/* Number of values indexed (every object, array, member and element). */
size_t jsonpos_count(const struct jsonpos *p);

/*
 * The line the value at path starts on. When path is not indexed, the line
 * of its nearest ancestor that is (so a missing member is reported at the
 * object lacking it); 0 when p is NULL or nothing matches.
 */
int jsonpos_line(const struct jsonpos *p, const char *path);

#endif
