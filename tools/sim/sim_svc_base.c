/*
 * sim_svc_base.c: the base adapter services every adapter answers, used to
 * check connectivity and the envelope end to end:
 *
 *   Ping  -> {"error_code":0,"message":"OK",
 *             "result":[{"pong":true,"time":"yyyyMMddHHmmss"}]}   (UTC+7)
 *   Echo  {"data":[records...]} -> every record is kept in the stats
 *             (GET /_sim/stats?service=Echo lists them in arrival order)
 *             and returned: {"error_code":"00","message":"OK","result":[...]}
 *
 * Echo answers success as the string "00" on purpose: real adapters vary
 * (0, "0", "00") and clients must accept every configured form.
 */
#include "sim.h"

static json_t *svc_ping(struct sim_call *call)
{
	char now[16];
	json_t *r;

	(void)call;
	sim_fmt_vn_time(sim_now_wall_ms(), now, sizeof(now));
	r = json_pack("[{s:b, s:s}]", "pong", 1, "time", now);
	if (r == NULL)
		sim_die("json_pack: out of memory");
	return sim_answer_ok(r);
}

static json_t *svc_echo(struct sim_call *call)
{
	json_t *data = json_object_get(call->params, "data");
	json_t *o;

	if (!json_is_array(data))
		return sim_answer_error(400, "Thiếu tham số data (mảng bản ghi)");
	sim_stats_records(call->service->name, data);
	o = json_pack("{s:s, s:s, s:O}", "error_code", "00", "message", "OK", "result", data);
	if (o == NULL)
		sim_die("json_pack: out of memory");
	return o;
}

const struct sim_service sim_base_services[] = {
	{"Ping", SIM_EP_ANY, svc_ping},
	{"Echo", SIM_EP_ANY, svc_echo},
	{NULL, 0, NULL},
};
