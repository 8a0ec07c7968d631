/*
 * list: an intrusive doubly linked list, for objects that move between
 * queues and must leave any of them in O(1) (the HTTP core's requests, the
 * adapter's waiting and sent calls). The element embeds a struct list_node
 * and is found again from it with list_entry(); the list_head keeps both ends
 * and a count, so append, removal, pop from the front and the length are all
 * O(1).
 *
 * A node is on at most one list and knows which (`on`): list_remove() needs
 * no list and does nothing for a node on none, and putting a node on a list
 * takes it off the one holding it first, so "move to that queue" is one call.
 * A zeroed node is on no list and a zeroed list_head is empty. The list does
 * not allocate, own or free anything: an element is freed after list_remove().
 */
#ifndef LT_LIST_H
#define LT_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_head;

struct list_node {
	struct list_node *prev, *next; /* NULL at the ends */
	struct list_head *on;	       /* the list holding the node, or NULL */
};

struct list_head {
	struct list_node *head, *tail; /* NULL when empty */
	size_t n;		       /* nodes on the list */
};

static inline char *list_entry_at(struct list_node *n, size_t offset)
{
	return n ? (char *)n - offset : NULL;
}

/* The element of type `type` whose struct list_node member `member` is at
 * ptr, or NULL when ptr is NULL (so list_entry(l->head, ...) is the first
 * element or NULL). ptr is evaluated once. */
#define list_entry(ptr, type, member) ((type *)(void *)list_entry_at((ptr), offsetof(type, member)))

static inline bool list_empty(const struct list_head *l)
{
	return l->head == NULL;
}

/* Takes n off the list holding it; nothing when it is on none. */
static inline void list_remove(struct list_node *n)
{
	struct list_head *l = n->on;
	if (!l)
		return;
	if (n->prev)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	n->prev = n->next = NULL;
	n->on = NULL;
	l->n--;
}

/* Moves n into l right after `after` (a node of l other than n), or first
 * when after is NULL. */
static inline void list_insert_after(struct list_head *l, struct list_node *after,
				     struct list_node *n)
{
	list_remove(n);
	n->on = l;
	n->prev = after;
	n->next = after ? after->next : l->head;
	if (n->next)
		n->next->prev = n;
	else
		l->tail = n;
	if (after)
		after->next = n;
	else
		l->head = n;
	l->n++;
}

/* Moves n to the end of l (also when it is on l already). */
static inline void list_append(struct list_head *l, struct list_node *n)
{
	list_remove(n);
	list_insert_after(l, l->tail, n);
}

/* Takes the first node off l and returns it; NULL when l is empty. */
static inline struct list_node *list_pop_front(struct list_head *l)
{
	struct list_node *n = l->head;
	if (n)
		list_remove(n);
	return n;
}

#endif
