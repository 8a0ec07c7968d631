/*
 * sim_svc_csdl.c: the four services of the National Database on
 * Administrative Procedures (CSDL quốc gia về TTHC) on the adapter's share
 * endpoint (notes/catalog-spec.md §1, INTERFACES.md §2), answered from the
 * simulated catalogue (sim_catalog.c):
 *
 *   LayDanhSachTTHC              -> result [{"MATTHC","TENTTHC"}...], published only,
 *                                   in code order ([] while empty_list is on)
 *   LayThuTuc {"maTTHC": code}   -> result [record] (withdrawn: TRANGTHAI 0);
 *                                   unknown code: error_code 0, "Không tìm thấy", []
 *   LayDanhMucCoQuan             -> result [{"MADONVI","TENDONVI","CAPDONVI"}...]
 *   LayDanhMucLinhVuc            -> result [{"MALINHVUC","TENLINHVUC","MANGANH"}...]
 *
 * The list and the records are pre-rendered JSON text: they are handed to
 * the envelope as call->result_text and spliced in, never parsed again.
 */
#include <string.h>

#include "sim_catalog.h"

static json_t *svc_list(struct sim_call *call)
{
	call->result_text = sim_catalog_list_result();
	return sim_answer_ok(NULL);
}

static json_t *svc_get(struct sim_call *call)
{
	json_t *jcode = json_object_get(call->params, "maTTHC");
	const char *code = json_string_value(jcode);
	json_t *o;

	if (code == NULL)
		return sim_answer_error(400, "Thiếu tham số maTTHC (mã thủ tục hành chính)");
	call->result_text =
		strlen(code) < SIM_CATALOG_CODE_MAX ? sim_catalog_record_result(code) : NULL;
	if (call->result_text != NULL)
		return sim_answer_ok(NULL);
	o = json_pack("{s:i, s:s, s:[]}", "error_code", 0, "message", "Không tìm thấy", "result");
	if (o == NULL)
		sim_die("json_pack: out of memory");
	return o;
}

static json_t *svc_agencies(struct sim_call *call)
{
	(void)call;
	return sim_answer_ok(sim_catalog_agencies());
}

static json_t *svc_fields(struct sim_call *call)
{
	(void)call;
	return sim_answer_ok(sim_catalog_fields());
}

const struct sim_service sim_csdl_services[] = {
	{"LayDanhSachTTHC", SIM_EP_SHARE, svc_list},
	{"LayThuTuc", SIM_EP_SHARE, svc_get},
	{"LayDanhMucCoQuan", SIM_EP_SHARE, svc_agencies},
	{"LayDanhMucLinhVuc", SIM_EP_SHARE, svc_fields},
	{NULL, 0, NULL},
};
