/*
 * strmap: a small open-addressing hash map from strings to owned strings
 * (or to nothing, as a set). For per-pass indexes of a few thousand to a
 * million keys, where jansson objects would cost ten times the memory.
 */
#ifndef LT_STRMAP_H
#define LT_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

struct strmap_slot {
	char *key;   /* owned; NULL = empty */
	char *value; /* owned; may be NULL */
};

struct strmap {
	struct strmap_slot *slots;
	size_t cap; /* power of two */
	size_t n;
};

void strmap_init(struct strmap *m);
void strmap_free(struct strmap *m);
/* Sets key to value (copied; value may be NULL). Replaces an existing value. */
void strmap_set(struct strmap *m, const char *key, const char *value);
/* Like strmap_set, taking ownership of value. */
void strmap_set_take(struct strmap *m, const char *key, char *value);
/* The slot of key, or NULL. */
struct strmap_slot *strmap_get(const struct strmap *m, const char *key);
bool strmap_has(const struct strmap *m, const char *key);
/* Iterate: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ... */

#endif
