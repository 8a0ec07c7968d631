/*
 * jsontext: the fast path between JSON text and jansson's json_t trees.
 *
 * jansson stays our JSON value type, but its reader and writer go through a
 * per-byte stream callback and a per-token strbuffer, which made them a
 * large share of the daemon's CPU. These two functions do the same work by
 * walking the text in place (and, for dumps, writing runs of plain bytes
 * straight into a dynbuf) while producing exactly what jansson 2.14 would:
 * the same tree for every text json_loadb() accepts, a refusal for every
 * text it refuses, and the same bytes as json_dumps(JSON_COMPACT).
 *
 * Where we knowingly differ from jansson (each one a case jansson handles
 * badly or not at all), the contract below says so.
 */
#ifndef LT_JSONTEXT_H
#define LT_JSONTEXT_H

#include <stddef.h>

#include <jansson.h>

struct dynbuf;

/* Deepest nesting either direction handles: jansson's JSON_PARSER_MAX_DEPTH. */
#define JSONTEXT_MAX_DEPTH 2048

/*
 * Parses text[0, len) (need not be NUL-terminated) into a new reference,
 * exactly as json_loadb(text, len, flags, err) would for flags 0 or
 * JSON_DECODE_ANY: the same tree for every text jansson accepts (duplicate
 * keys: the last value wins, at the first key's place), NULL for every text
 * it refuses. That includes a quirk of jansson's reader: one NUL byte right
 * after a number or a literal is skipped ("[1\0,true\0]" is [1,true]).
 * Flag 0 wants an array or an object at the top level, JSON_DECODE_ANY any
 * value. Any other flag (JSON_REJECT_DUPLICATES, JSON_ALLOW_NUL,
 * JSON_DISABLE_EOF_CHECK, JSON_DECODE_INT_AS_REAL) is not supported: NULL
 * with the message "unsupported flags", as is a NULL text.
 *
 * err (may be NULL) is filled like jansson fills it: source "<text>"; on
 * success text "" and position = len; on failure line (from 1), column (in
 * characters, from 1) and position (bytes read, i.e. just after the
 * offending byte; len at an unexpected end) and a one-line message naming
 * what is wrong ("invalid UTF-8 in a string", "unexpected ']'", "too big
 * integer", ...), with jansson's json_error_code in its last byte.
 */
json_t *jsontext_parse(const char *text, size_t len, size_t flags, json_error_t *err);

/*
 * Appends the compact text of j to b: byte for byte what
 * json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) gives (keys in jansson's
 * iteration order, reals as "%.17g" made to show a '.' or an 'e' with the
 * exponent's '+' and leading zeros dropped, whatever the locale; escapes
 * \" \\ \b \f \n \r \t and \u00XX for other controls; '/', U+2028/2029 and
 * all other UTF-8 pass through).
 *
 * Returns 0; -E2BIG when b's max_bytes stops it; -EINVAL for what jansson
 * could not dump either (NULL, a string that is not valid UTF-8, a NaN or
 * infinite real) and for two cases jansson handles differently: containers
 * nested deeper than JSONTEXT_MAX_DEPTH (jansson dumps them; no text it
 * parses is that deep, and the limit is what stops a reference cycle here)
 * and an object key that is not valid UTF-8 (jansson writes a broken text
 * for it). After an error b holds its old content plus a prefix of the
 * text: the caller resets it.
 */
int jsontext_dump(struct dynbuf *b, const json_t *j);

/*
 * The same into a new NUL-terminated string (malloc'd, caller frees), *len
 * its length (len may be NULL). NULL where jsontext_dump gives -EINVAL.
 * Drop-in for json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY).
 */
char *jsontext_dumps(const json_t *j, size_t *len);

#endif
