/*
 * sim_adapter.c: the national integration adapter's envelope
 * (INTERFACES.md §1): login (POST /auth), the two call endpoints (POST
 * /integration, POST /share) that dispatch on the body's "service" to a
 * handler from the service tables, and the LGSP/NGSP gateway in front of it
 * (--oauth2: POST /token with client credentials, then a Bearer token on
 * every adapter call).
 *
 * It answers the way real adapters do, loosely: HTTP 200 with an
 * error_code for logical failures (wrong password, expired session,
 * unknown service), error_code "-1" as a string for an expired session,
 * and, with wrap_message, the whole answer as a JSON string inside
 * "message". Paths come from --auth-path, --integration-path,
 * --share-path and --token-path.
 *
 * To add services, write a sim_svc_NAME.c with a NULL-terminated
 * "const struct sim_service sim_NAME_services[]", declare it in sim.h and
 * list it in service_tables below.
 */
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim.h"

static const struct sim_service *const service_tables[] = {
	sim_base_services,
	sim_csdl_services,
	sim_portal_services,
	NULL,
};

#define MSG_LOGIN_OK	"Đăng nhập thành công"
#define MSG_LOGIN_BAD	"Sai tên đăng nhập hoặc mật khẩu"
#define MSG_DSTCODE_BAD "Mã đơn vị kết nối (dstcode) không hợp lệ"
#define MSG_EXPIRED	"Phiên làm việc đã hết hạn, vui lòng đăng nhập lại"

static const struct sim_service *service_find(const char *name, unsigned endpoint)
{
	for (size_t t = 0; service_tables[t] != NULL; t++) {
		for (const struct sim_service *s = service_tables[t]; s->name != NULL; s++) {
			if ((s->endpoints & endpoint) && strcmp(s->name, name) == 0)
				return s;
		}
	}
	return NULL;
}

/* ---- answers -------------------------------------------------------- */

json_t *sim_answer_ok(json_t *result)
{
	json_t *o = json_pack("{s:i, s:s, s:o}", "error_code", 0, "message", "OK", "result",
			      result ? result : json_null());

	if (o == NULL)
		sim_die("json_pack: out of memory");
	return o;
}

json_t *sim_answer_error(int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = json_pack("{s:i, s:s}", "error_code", code, "message", msg);
	if (o == NULL) /* msg cut inside a UTF-8 sequence */
		o = json_pack("{s:i, s:s}", "error_code", code, "message", "");
	if (o == NULL)
		sim_die("json_pack: out of memory");
	return o;
}

/* Answers HTTP 200 with answer (stolen), wrapped in "message" if asked. */
static void adapter_reply(const struct sim_request *rq, struct sim_reply *rp, json_t *answer)
{
	if (rq->wrap_message) {
		char *text = json_dumps(answer, SIM_JSON_DUMP_FLAGS);
		json_t *outer;

		if (text == NULL)
			sim_die("json_dumps: out of memory");
		json_decref(answer);
		outer = json_pack("{s:s}", "message", text);
		free(text);
		if (outer == NULL)
			sim_die("json_pack: out of memory");
		answer = outer;
	}
	sim_reply_json(rp, MHD_HTTP_OK, answer);
}

/*
 * Answers answer (stolen) with result_text (stolen, JSON text) as its
 * "result" member: the answer is dumped without it and the text spliced in.
 */
static void adapter_reply_text(const struct sim_request *rq, struct sim_reply *rp, json_t *answer,
			       char *result_text)
{
	struct sim_buf b = {0};
	char *head, *text;
	size_t len;

	json_object_del(answer, "result");
	head = json_dumps(answer, SIM_JSON_DUMP_FLAGS);
	json_decref(answer);
	if (head == NULL)
		sim_die("json_dumps: out of memory");
	len = strlen(head); /* "{...}" */
	sim_buf_add(&b, head, len - 1);
	sim_buf_adds(&b, len > 2 ? ",\"result\":" : "\"result\":");
	sim_buf_adds(&b, result_text);
	sim_buf_add(&b, "}", 1);
	free(head);
	free(result_text);
	if (rq->wrap_message) {
		json_t *outer = json_pack("{s:s}", "message", b.data);

		sim_buf_free(&b);
		if (outer == NULL)
			sim_die("json_pack: out of memory");
		sim_reply_json(rp, MHD_HTTP_OK, outer);
		return;
	}
	text = sim_buf_steal(&b, &len);
	sim_reply_buffer(rp, MHD_HTTP_OK, "application/json; charset=utf-8", text, len);
}

/* ---- gateway (OAuth2 client credentials) ----------------------------- */

bool sim_gateway_check(const struct sim_request *rq, struct sim_reply *rp)
{
	const char *auth;

	if (sim_config.oauth2_key == NULL)
		return true;
	auth = sim_request_header(rq, MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0 && sim_token_valid(auth + 7))
		return true;
	sim_reply_error(rp, MHD_HTTP_UNAUTHORIZED, "invalid_token",
			auth ? "Access token không hợp lệ hoặc đã hết hạn"
			     : "Thiếu access token (Authorization: Bearer)");
	sim_reply_header(rp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"%s\"%s", SIM_NAME,
			 auth ? ", error=\"invalid_token\"" : "");
	return false;
}

/* True when the request carries HTTP Basic KEY:SECRET of --oauth2. */
static bool basic_ok(const struct sim_request *rq)
{
	const char *auth = sim_request_header(rq, MHD_HTTP_HEADER_AUTHORIZATION);
	char creds[512];
	char *colon;
	bool key_ok, secret_ok;

	if (auth == NULL || strncasecmp(auth, "Basic ", 6) != 0)
		return false;
	auth += 6;
	while (*auth == ' ')
		auth++;
	if (sim_base64_decode(auth, creds, sizeof(creds)) < 0)
		return false;
	colon = strchr(creds, ':');
	if (colon == NULL)
		return false;
	*colon = '\0';
	key_ok = sim_str_equal_ct(creds, sim_config.oauth2_key);
	secret_ok = sim_str_equal_ct(colon + 1, sim_config.oauth2_secret);
	return key_ok && secret_ok;
}

static void post_token(struct sim_request *rq, struct sim_reply *rp)
{
	char grant[64];
	char token[SIM_TICKET_LEN + 1];
	json_t *o;

	if (!basic_ok(rq)) {
		sim_stats_count(SIM_CTR_TOKENS_REFUSED);
		sim_reply_json(rp, MHD_HTTP_UNAUTHORIZED,
			       json_pack("{s:s, s:s}", "error", "invalid_client",
					 "error_description",
					 "Sai consumer key hoặc consumer secret"));
		sim_reply_header(rp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"%s\"",
				 SIM_NAME);
		return;
	}
	if (!sim_form_get(rq->body, rq->body_len, "grant_type", grant, sizeof(grant)) ||
	    strcmp(grant, "client_credentials") != 0) {
		sim_stats_count(SIM_CTR_TOKENS_REFUSED);
		sim_reply_json(rp, MHD_HTTP_BAD_REQUEST,
			       json_pack("{s:s, s:s}", "error", "unsupported_grant_type",
					 "error_description",
					 "grant_type phải là client_credentials"));
		return;
	}
	sim_token_new(token);
	sim_stats_count(SIM_CTR_TOKENS_ISSUED);
	o = json_pack("{s:s, s:s, s:I}", "access_token", token, "token_type", "Bearer",
		      "expires_in", (json_int_t)sim_config.token_ttl_s);
	sim_reply_json(rp, MHD_HTTP_OK, o);
	sim_reply_header(rp, "Cache-Control", "no-store");
}

/* ---- adapter endpoints ---------------------------------------------- */

static void post_auth(struct sim_request *rq, struct sim_reply *rp)
{
	const char *user, *pass, *dst;
	char session[SIM_TICKET_LEN + 1];
	json_t *req;

	if (!sim_gateway_check(rq, rp))
		return;
	req = sim_request_json_object(rq, rp);
	if (req == NULL)
		return;
	if (sim_config.dstcode != NULL) {
		dst = sim_request_header(rq, "dstcode");
		if (dst == NULL || strcmp(dst, sim_config.dstcode) != 0) {
			sim_stats_count(SIM_CTR_LOGINS_FAILED);
			adapter_reply(rq, rp, sim_answer_error(401, "%s", MSG_DSTCODE_BAD));
			return;
		}
	}
	user = json_string_value(json_object_get(req, "username"));
	pass = json_string_value(json_object_get(req, "password"));
	if (user == NULL || pass == NULL || !sim_str_equal_ct(user, sim_config.username) ||
	    !sim_str_equal_ct(pass, sim_config.password)) {
		sim_stats_count(SIM_CTR_LOGINS_FAILED);
		adapter_reply(rq, rp, sim_answer_error(401, "%s", MSG_LOGIN_BAD));
		return;
	}
	sim_session_new(session);
	sim_stats_count(SIM_CTR_LOGINS);
	adapter_reply(rq, rp,
		      json_pack("{s:i, s:s, s:s}", "error_code", 0, "session", session, "message",
				MSG_LOGIN_OK));
}

static void call(struct sim_request *rq, struct sim_reply *rp, unsigned endpoint)
{
	struct sim_call c;
	const char *name;
	json_t *req, *answer;

	if (!sim_gateway_check(rq, rp))
		return;
	req = sim_request_json_object(rq, rp);
	if (req == NULL)
		return;
	if (!sim_session_valid(json_string_value(json_object_get(req, "session")))) {
		sim_stats_count(SIM_CTR_SESSION_EXPIRED);
		adapter_reply(rq, rp,
			      json_pack("{s:s, s:s, s:n}", "error_code", "-1", "message",
					MSG_EXPIRED, "result"));
		return;
	}
	name = json_string_value(json_object_get(req, "service"));
	c.service = name ? service_find(name, endpoint) : NULL;
	if (c.service == NULL) {
		adapter_reply(
			rq, rp,
			sim_answer_error(404, "Dịch vụ không tồn tại: %.200s", name ? name : ""));
		return;
	}
	c.endpoint = endpoint;
	c.madonvi = json_string_value(json_object_get(req, "madonvi"));
	if (c.madonvi == NULL)
		c.madonvi = "";
	c.params = req;
	c.rq = rq;
	c.result_text = NULL;
	answer = c.service->fn(&c);
	if (answer == NULL)
		sim_die("service %s returned no answer", c.service->name);
	if (c.result_text != NULL)
		adapter_reply_text(rq, rp, answer, c.result_text);
	else
		adapter_reply(rq, rp, answer);
}

static void post_integration(struct sim_request *rq, struct sim_reply *rp)
{
	call(rq, rp, SIM_EP_INTEGRATION);
}

static void post_share(struct sim_request *rq, struct sim_reply *rp)
{
	call(rq, rp, SIM_EP_SHARE);
}

/* ---- module --------------------------------------------------------- */

static int adapter_init(void)
{
	const unsigned f = SIM_ROUTE_JSON | SIM_ROUTE_ADAPTER;

	sim_route_add(
		&(struct sim_route){"POST", sim_config.auth_path, SIM_ROUTE_JSON, post_auth, NULL});
	sim_route_add(&(struct sim_route){"POST", sim_config.integration_path, f, post_integration,
					  NULL});
	sim_route_add(&(struct sim_route){"POST", sim_config.share_path, f, post_share, NULL});
	if (sim_config.oauth2_key != NULL)
		sim_route_add(
			&(struct sim_route){"POST", sim_config.token_path, 0, post_token, NULL});
	return 0;
}

const struct sim_module sim_adapter_module = {"adapter", adapter_init, NULL};
