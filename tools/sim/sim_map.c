/*
 * sim_map.c: a string-keyed hash map that remembers insertion order, for
 * the stats (per service, per path) and for later modules' generated data.
 *
 * Entries live in an array in insertion order; an open-addressing index of
 * entry numbers finds them by key. Removal leaves a hole that the next
 * growth compacts. Not thread-safe: the owner holds its own lock.
 */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SLOT_EMPTY   UINT32_MAX
#define SLOT_DELETED (UINT32_MAX - 1)

struct map_entry {
	char *key;   /* owned; NULL for a removed entry */
	void *value; /* borrowed */
	uint64_t hash;
};

struct sim_map {
	struct map_entry *entries;
	size_t n_entries; /* used, including removed */
	size_t cap_entries;
	size_t live;
	uint32_t *slots;   /* entry numbers, SLOT_EMPTY or SLOT_DELETED */
	size_t n_slots;	   /* power of two */
	size_t used_slots; /* not empty (live or deleted) */
};

static uint64_t hash_key(const char *s)
{
	uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3u;
	}
	return sim_mix64(h);
}

struct sim_map *sim_map_new(void)
{
	struct sim_map *m = sim_xcalloc(1, sizeof(*m));

	m->n_slots = 16;
	m->slots = sim_xmalloc(m->n_slots * sizeof(*m->slots));
	memset(m->slots, 0xff, m->n_slots * sizeof(*m->slots));
	return m;
}

void sim_map_free(struct sim_map *m, void (*free_value)(void *))
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_entries; i++) {
		if (m->entries[i].key == NULL)
			continue;
		free(m->entries[i].key);
		if (free_value)
			free_value(m->entries[i].value);
	}
	free(m->entries);
	free(m->slots);
	free(m);
}

/* Slot holding key, or SIZE_MAX. */
static size_t find_slot(const struct sim_map *m, const char *key, uint64_t h)
{
	size_t mask = m->n_slots - 1;

	for (size_t i = h & mask, probes = 0; probes < m->n_slots; i = (i + 1) & mask, probes++) {
		uint32_t e = m->slots[i];

		if (e == SLOT_EMPTY)
			return SIZE_MAX;
		if (e != SLOT_DELETED && m->entries[e].hash == h &&
		    strcmp(m->entries[e].key, key) == 0)
			return i;
	}
	return SIZE_MAX;
}

/* Rebuilds entries (dropping holes) and the index with n_slots slots. */
static void rebuild(struct sim_map *m, size_t n_slots)
{
	size_t o = 0;
	size_t mask = n_slots - 1;

	for (size_t i = 0; i < m->n_entries; i++) {
		if (m->entries[i].key != NULL)
			m->entries[o++] = m->entries[i];
	}
	m->n_entries = o;
	free(m->slots);
	m->slots = sim_xmalloc(n_slots * sizeof(*m->slots));
	memset(m->slots, 0xff, n_slots * sizeof(*m->slots));
	m->n_slots = n_slots;
	for (size_t e = 0; e < m->n_entries; e++) {
		size_t i = m->entries[e].hash & mask;

		while (m->slots[i] != SLOT_EMPTY)
			i = (i + 1) & mask;
		m->slots[i] = (uint32_t)e;
	}
	m->used_slots = m->n_entries;
}

void *sim_map_get(const struct sim_map *m, const char *key)
{
	size_t s = find_slot(m, key, hash_key(key));

	return s == SIZE_MAX ? NULL : m->entries[m->slots[s]].value;
}

void *sim_map_put(struct sim_map *m, const char *key, void *value)
{
	uint64_t h = hash_key(key);
	size_t s = find_slot(m, key, h);
	size_t mask;
	size_t i;

	if (s != SIZE_MAX) {
		void *old = m->entries[m->slots[s]].value;

		m->entries[m->slots[s]].value = value;
		return old;
	}
	if (m->n_entries >= SLOT_DELETED - 1)
		sim_die("map too large");
	/* Keep the index at most half full (live + deleted slots). */
	if ((m->used_slots + 1) * 2 > m->n_slots) {
		size_t n = m->n_slots;

		while ((m->live + 1) * 2 > n / 2)
			n *= 2;
		rebuild(m, n);
	}
	if (m->n_entries == m->cap_entries) {
		m->cap_entries = m->cap_entries ? m->cap_entries * 2 : 8;
		m->entries = sim_xrealloc(m->entries, m->cap_entries * sizeof(*m->entries));
	}
	m->entries[m->n_entries] = (struct map_entry){sim_xstrdup(key), value, h};
	mask = m->n_slots - 1;
	for (i = h & mask; m->slots[i] != SLOT_EMPTY && m->slots[i] != SLOT_DELETED;
	     i = (i + 1) & mask)
		;
	if (m->slots[i] == SLOT_EMPTY)
		m->used_slots++;
	m->slots[i] = (uint32_t)m->n_entries;
	m->n_entries++;
	m->live++;
	return NULL;
}

void *sim_map_remove(struct sim_map *m, const char *key)
{
	size_t s = find_slot(m, key, hash_key(key));
	struct map_entry *e;
	void *value;

	if (s == SIZE_MAX)
		return NULL;
	e = &m->entries[m->slots[s]];
	value = e->value;
	free(e->key);
	e->key = NULL;
	e->value = NULL;
	m->slots[s] = SLOT_DELETED;
	m->live--;
	return value;
}

size_t sim_map_size(const struct sim_map *m)
{
	return m->live;
}

int sim_map_each(const struct sim_map *m, int (*fn)(const char *key, void *value, void *ud),
		 void *ud)
{
	for (size_t i = 0; i < m->n_entries; i++) {
		int r;

		if (m->entries[i].key == NULL)
			continue;
		r = fn(m->entries[i].key, m->entries[i].value, ud);
		if (r != 0)
			return r;
	}
	return 0;
}
