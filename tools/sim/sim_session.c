/*
 * sim_session.c: adapter sessions (POST /auth) and OAuth2 access tokens
 * (POST /token in gateway mode), their expiry, and the control routes that
 * invalidate them (POST /_sim/expire-sessions, /_sim/expire-tokens).
 *
 * Both are "tickets" numbered 0, 1, 2, ... and kept in a fixed ring of
 * --max-sessions slots, so memory is bounded and the oldest ticket makes
 * room for the newest. A ticket's text is 32 hex digits: a tag that is a
 * pure function of (--seed, kind, number), then the number masked by the
 * tag; validation recomputes the tag, so tickets are deterministic for a
 * seed, cannot be forged by counting, and need no lookup table. A ticket is
 * valid while its slot still holds it, it is newer than the last
 * "expire all", and it is younger than the TTL in force now (a TTL changed
 * at run time applies to existing tickets too; 0 means no expiry).
 */
#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

struct ticket_ring {
	const char *what;
	enum sim_stream stream;
	pthread_mutex_t lock;
	struct {
		uint64_t n;
		uint64_t created_us;
	} * slots; /* owned */
	size_t cap;
	uint64_t next_n; /* numbers start at 1: slot n == 0 is empty */
	uint64_t min_valid;
	unsigned ttl_s;
};

static struct ticket_ring sessions = {
	.what = "session", .stream = SIM_STREAM_SESSION, .lock = PTHREAD_MUTEX_INITIALIZER};
static struct ticket_ring tokens = {
	.what = "token", .stream = SIM_STREAM_TOKEN, .lock = PTHREAD_MUTEX_INITIALIZER};

static void ring_init(struct ticket_ring *r, size_t cap, unsigned ttl_s)
{
	r->slots = sim_xcalloc(cap, sizeof(*r->slots));
	r->cap = cap;
	r->next_n = 1;
	r->min_valid = 1;
	r->ttl_s = ttl_s;
}

static void ring_new(struct ticket_ring *r, char *buf)
{
	uint64_t n, tag;

	pthread_mutex_lock(&r->lock);
	n = r->next_n++;
	r->slots[n % r->cap].n = n;
	r->slots[n % r->cap].created_us = sim_now_us();
	pthread_mutex_unlock(&r->lock);
	tag = sim_rand_at(r->stream, n);
	snprintf(buf, SIM_TICKET_LEN + 1, "%016" PRIx64 "%016" PRIx64, tag, n ^ sim_mix64(tag));
}

static bool parse_hex64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	for (int i = 0; i < 16; i++) {
		char c = s[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return false;
		v = v << 4 | d;
	}
	*out = v;
	return true;
}

static bool ring_valid(struct ticket_ring *r, const char *text)
{
	uint64_t tag, masked, n;
	bool ok;

	if (text == NULL || strlen(text) != SIM_TICKET_LEN || !parse_hex64(text, &tag) ||
	    !parse_hex64(text + 16, &masked))
		return false;
	n = masked ^ sim_mix64(tag);
	if (sim_rand_at(r->stream, n) != tag)
		return false;
	pthread_mutex_lock(&r->lock);
	ok = n >= r->min_valid && n < r->next_n && r->slots[n % r->cap].n == n &&
	     (r->ttl_s == 0 ||
	      sim_now_us() - r->slots[n % r->cap].created_us < (uint64_t)r->ttl_s * 1000000u);
	pthread_mutex_unlock(&r->lock);
	return ok;
}

static void ring_expire_all(struct ticket_ring *r)
{
	pthread_mutex_lock(&r->lock);
	r->min_valid = r->next_n;
	pthread_mutex_unlock(&r->lock);
}

/* ---- public --------------------------------------------------------- */

void sim_session_new(char *buf)
{
	ring_new(&sessions, buf);
}

bool sim_session_valid(const char *token)
{
	return ring_valid(&sessions, token);
}

void sim_session_expire_all(void)
{
	ring_expire_all(&sessions);
}

unsigned sim_session_ttl(void)
{
	unsigned ttl;

	pthread_mutex_lock(&sessions.lock);
	ttl = sessions.ttl_s;
	pthread_mutex_unlock(&sessions.lock);
	return ttl;
}

void sim_session_set_ttl(unsigned ttl_s)
{
	pthread_mutex_lock(&sessions.lock);
	sessions.ttl_s = ttl_s;
	pthread_mutex_unlock(&sessions.lock);
}

void sim_token_new(char *buf)
{
	ring_new(&tokens, buf);
}

bool sim_token_valid(const char *token)
{
	return ring_valid(&tokens, token);
}

/* ---- control routes ------------------------------------------------- */

static void post_expire_sessions(struct sim_request *rq, struct sim_reply *rp)
{
	(void)rq;
	sim_session_expire_all();
	sim_log(SIM_LOG_INFO, "all sessions expired");
	sim_reply_json(rp, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

static void post_expire_tokens(struct sim_request *rq, struct sim_reply *rp)
{
	(void)rq;
	ring_expire_all(&tokens);
	sim_log(SIM_LOG_INFO, "all access tokens expired");
	sim_reply_json(rp, MHD_HTTP_OK, json_pack("{s:b}", "ok", 1));
}

/* ---- module --------------------------------------------------------- */

static int session_init(void)
{
	ring_init(&sessions, sim_config.max_sessions, sim_config.session_ttl_s);
	ring_init(&tokens, sim_config.max_sessions, sim_config.token_ttl_s);
	sim_route_add(&(struct sim_route){"POST", "/_sim/expire-sessions", SIM_ROUTE_CONTROL,
					  post_expire_sessions, NULL});
	sim_route_add(&(struct sim_route){"POST", "/_sim/expire-tokens", SIM_ROUTE_CONTROL,
					  post_expire_tokens, NULL});
	return 0;
}

static void session_fini(void)
{
	free(sessions.slots);
	free(tokens.slots);
	sessions.slots = tokens.slots = NULL;
}

const struct sim_module sim_session_module = {"session", session_init, session_fini};
