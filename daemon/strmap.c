/*
 * strmap: open addressing with linear probing, FNV-1a hashing, growth at
 * 70 % load. No deletion (the users build an index and drop it whole).
 */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

void strmap_init(struct strmap *m)
{
	memset(m, 0, sizeof(*m));
}

void strmap_free(struct strmap *m)
{
	for (size_t i = 0; i < m->cap; i++) {
		free(m->slots[i].key);
		free(m->slots[i].value);
	}
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

static struct strmap_slot *probe(struct strmap_slot *slots, size_t cap, const char *key)
{
	size_t i = (size_t)hash(key) & (cap - 1);
	while (slots[i].key && strcmp(slots[i].key, key) != 0)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

static void grow(struct strmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	struct strmap_slot *slots = xcalloc(cap, sizeof(*slots));
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key)
			*probe(slots, cap, m->slots[i].key) = m->slots[i];
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
}

void strmap_set_take(struct strmap *m, const char *key, char *value)
{
	if ((m->n + 1) * 10 > m->cap * 7)
		grow(m);
	struct strmap_slot *s = probe(m->slots, m->cap, key);
	if (s->key) {
		free(s->value);
	} else {
		s->key = xstrdup(key);
		m->n++;
	}
	s->value = value;
}

void strmap_set(struct strmap *m, const char *key, const char *value)
{
	strmap_set_take(m, key, value ? xstrdup(value) : NULL);
}

struct strmap_slot *strmap_get(const struct strmap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	struct strmap_slot *s = probe(m->slots, m->cap, key);
	return s->key ? s : NULL;
}

bool strmap_has(const struct strmap *m, const char *key)
{
	return strmap_get(m, key) != NULL;
}
