/*
 * flow_dossier: the dossier flow (type "dossier"), which pushes every
 * dossier change of the provincial change feed to the National Public
 * Service Portal through the durable outbox (store.h, "dossier outbox").
 *
 * What the rest of the daemon calls besides the flow type itself: the
 * operator's retry of a dead letter, which for a change that could not be
 * mapped means mapping its raw change again with the mappings in force.
 */
#ifndef LT_FLOW_DOSSIER_H
#define LT_FLOW_DOSSIER_H

#include <stdint.h>

struct daemon;

/*
 * Retries dead letter letter_id, or every open one when 0 (store_outbox_retry),
 * for actor. A letter of what "change" is mapped again first with the
 * mappings of the daemon's first dossier flow: when it now maps, the change
 * is enqueued (its header only if no newer change of the dossier arrived
 * since) and the letter retried; when it still does not map, the letter
 * stays open and *err says why (with letter_id 0, such letters are left and
 * counted in *still_dead, the others retried). *retried counts the letters
 * retried. Returns 0, 1 when there was nothing open to retry, -ENOENT for
 * an unknown letter, -EINVAL with *err when a change letter cannot be
 * mapped (letter_id != 0) or no dossier flow is configured for a change
 * letter, or -errno.
 */
int flow_dossier_retry(struct daemon *d, int64_t letter_id, const char *actor, unsigned *retried,
		       unsigned *still_dead, char **err);

#endif
