/*
 * sim_provincial.c: the province's one-stop system as the daemon sees it,
 * its REST API for the procedure catalogue (notes/catalog-spec.md §4), and
 * the control routes that let a test change it behind the daemon's back:
 *
 *   GET  /provincial/api/v1/thu-tuc?page=P&size=S  -> {"data":[...],"page","size","total"}
 *   GET  /provincial/api/v1/thu-tuc/{code}         -> the record, or 404
 *   PUT  /provincial/api/v1/thu-tuc/{code}         -> {"ok":true,"maThuTuc":code}, or 400
 *   POST /_sim/provincial  {"op":"edit","code":C,"set":{...}} | {"op":"delete","code":C}
 *   GET  /_sim/provincial/puts                     -> {"total":n,"by_code":{code:n}}
 *
 * Every API call needs "Authorization: Bearer <--provincial-token>" (401
 * otherwise). The records live in sim_catalog.c, which seeds them as the
 * clean rendering of the national catalogue with the differences of spec
 * §5. The API routes are ordinary routes: faults apply to them by route
 * name (provincial.thu-tuc.list/.get/.put) or by path.
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim_catalog.h"

#define API_PATH     "/provincial/api/v1/thu-tuc"
#define DEFAULT_SIZE 100
#define MAX_SIZE     1000

/* True when the request carries the provincial Bearer token; else answers 401. */
bool sim_provincial_auth_ok(const struct sim_request *rq, struct sim_reply *rp)
{
	const char *auth = sim_request_header(rq, MHD_HTTP_HEADER_AUTHORIZATION);

	if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0 &&
	    sim_str_equal_ct(auth + 7, sim_config.provincial_token))
		return true;
	sim_reply_error(rp, MHD_HTTP_UNAUTHORIZED, "unauthorized",
			auth ? "Mã truy cập không hợp lệ"
			     : "Thiếu mã truy cập (Authorization: Bearer)");
	sim_reply_header(rp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"%s\"", SIM_NAME);
	return false;
}

/* A decimal query argument in [min, max]; def when absent; false when bad. */
static bool query_uint(const struct sim_request *rq, const char *name, uint64_t def, uint64_t min,
		       uint64_t max, uint64_t *out)
{
	const char *s = sim_request_query(rq, name);
	uint64_t v = 0;

	if (s == NULL) {
		*out = def;
		return true;
	}
	if (*s == '\0' || strlen(s) > 10)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return v >= min && v <= max;
}

/* The {code} of API_PATH/{code}, or NULL after answering 404/400. */
static const char *path_code(const struct sim_request *rq, struct sim_reply *rp)
{
	const char *code = rq->path + strlen(API_PATH "/");

	if (!sim_catalog_code_valid(code)) {
		sim_reply_error(rp, *code ? MHD_HTTP_BAD_REQUEST : MHD_HTTP_NOT_FOUND,
				*code ? "bad_request" : "not_found", "Mã thủ tục không hợp lệ");
		return NULL;
	}
	return code;
}

static void get_list(struct sim_request *rq, struct sim_reply *rp)
{
	uint64_t page, size;
	size_t len;
	char *body;

	if (!sim_provincial_auth_ok(rq, rp))
		return;
	if (!query_uint(rq, "page", 1, 1, 1000000000, &page) ||
	    !query_uint(rq, "size", DEFAULT_SIZE, 1, MAX_SIZE, &size)) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"page phải từ 1, size từ 1 đến %d", MAX_SIZE);
		return;
	}
	body = sim_catalog_prov_page(page, (unsigned)size, &len);
	sim_reply_buffer(rp, MHD_HTTP_OK, "application/json; charset=utf-8", body, len);
}

static void get_one(struct sim_request *rq, struct sim_reply *rp)
{
	const char *code;
	size_t len;
	char *body;

	if (!sim_provincial_auth_ok(rq, rp) || (code = path_code(rq, rp)) == NULL)
		return;
	body = sim_catalog_prov_get(code, &len);
	if (body == NULL) {
		sim_reply_error(rp, MHD_HTTP_NOT_FOUND, "not_found", "Không tìm thấy thủ tục %s",
				code);
		return;
	}
	sim_reply_buffer(rp, MHD_HTTP_OK, "application/json; charset=utf-8", body, len);
}

static void put_one(struct sim_request *rq, struct sim_reply *rp)
{
	const char *code, *key;
	json_t *rec;

	if (!sim_provincial_auth_ok(rq, rp) || (code = path_code(rq, rp)) == NULL)
		return;
	rec = rq->json;
	if (!json_is_object(rec)) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"Nội dung phải là một đối tượng JSON");
		return;
	}
	key = json_string_value(json_object_get(rec, "maThuTuc"));
	if (key == NULL || strcmp(key, code) != 0) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"maThuTuc (%.80s) khác mã trên đường dẫn (%s)", key ? key : "thiếu",
				code);
		return;
	}
	if (sim_catalog_prov_put(code, rec) < 0) {
		sim_reply_error(rp, MHD_HTTP_INSUFFICIENT_STORAGE, "full",
				"Danh mục thủ tục của tỉnh đã đầy");
		return;
	}
	sim_reply_json(rp, MHD_HTTP_OK, json_pack("{s:b, s:s}", "ok", 1, "maThuTuc", code));
}

/* POST /_sim/provincial: edit (merge top-level members) or delete one record. */
static void post_control(struct sim_request *rq, struct sim_reply *rp)
{
	json_t *req = sim_request_json_object(rq, rp);
	const char *op, *code;
	json_t *set;
	int r;

	if (req == NULL)
		return;
	op = json_string_value(json_object_get(req, "op"));
	code = json_string_value(json_object_get(req, "code"));
	set = json_object_get(req, "set");
	if (op == NULL || code == NULL || !sim_catalog_code_valid(code)) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"expected {\"op\":\"edit\"|\"delete\",\"code\":C[,\"set\":{...}]}");
		return;
	}
	if (strcmp(op, "edit") == 0) {
		if (!json_is_object(set)) {
			sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
					"\"set\" must be an object of top-level fields");
			return;
		}
		r = sim_catalog_prov_edit(code, set);
	} else if (strcmp(op, "delete") == 0) {
		r = sim_catalog_prov_delete(code);
	} else {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request", "unknown op \"%.40s\"",
				op);
		return;
	}
	if (r == -ENOENT) {
		sim_reply_error(rp, MHD_HTTP_NOT_FOUND, "not_found", "no provincial record %s",
				code);
		return;
	}
	sim_log(SIM_LOG_INFO, "provincial: %s %s", op, code);
	sim_reply_json(rp, MHD_HTTP_OK, json_pack("{s:b, s:s}", "ok", 1, "code", code));
}

static void get_puts(struct sim_request *rq, struct sim_reply *rp)
{
	(void)rq;
	sim_reply_json(rp, MHD_HTTP_OK, sim_catalog_prov_puts());
}

static int provincial_init(void)
{
	sim_route_add(&(struct sim_route){"GET", API_PATH, 0, get_list, "provincial.thu-tuc.list"});
	sim_route_add(&(struct sim_route){"GET", API_PATH "/", SIM_ROUTE_PREFIX, get_one,
					  "provincial.thu-tuc.get"});
	sim_route_add(&(struct sim_route){"PUT", API_PATH "/", SIM_ROUTE_PREFIX | SIM_ROUTE_JSON,
					  put_one, "provincial.thu-tuc.put"});
	sim_route_add(&(struct sim_route){"POST", "/_sim/provincial",
					  SIM_ROUTE_CONTROL | SIM_ROUTE_JSON, post_control, NULL});
	sim_route_add(&(struct sim_route){"GET", "/_sim/provincial/puts", SIM_ROUTE_CONTROL,
					  get_puts, NULL});
	return 0;
}

const struct sim_module sim_provincial_module = {"provincial", provincial_init, NULL};
