/*
 * sim_catalog.c: the simulated national procedure catalogue (CSDL quốc gia
 * về TTHC) and the province's copy of it (notes/catalog-spec.md §1, §2, §5).
 *
 * Each procedure is a model that is a pure function of (--seed, its
 * index): a name built from templates over fields of work, levels,
 * agencies, channels, a time limit, fees, cases with their documents,
 * results and legal bases, all as indices into the tables below. The model
 * is rendered twice: the messy national record that LayThuTuc answers
 * (money as text in several spellings, "0,5" days, NFD names with stray
 * spaces, numbers as text...), whose variants are drawn from a second
 * stream of the same index, and the clean provincial record of spec §3.
 * The sim never parses its own national text: the provincial record is
 * what a correct mapping must produce, by construction.
 *
 * The national records are rendered once (at start, after a run-time
 * change) and kept as JSON text, so LayThuTuc only copies text; the
 * provincial records are kept as the JSON text stored (seeded, PUT or
 * edited). Which procedures differ between the two sides is decided per
 * code by comparing the clean rendering with the stored record, aspect by
 * aspect, cached until either side changes. One mutex guards everything.
 */
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sim_catalog.h"

/* Spec §5 gives the seeded differences per 2,000 procedures. */
#define BASE_PROCEDURES	   2000
#define MAX_TOTAL_PROCS	   150000 /* national codes stay below the unknown range */
#define MAX_PROV_RECORDS   1000000
#define MAX_ADD_PER_CALL   10000
#define UNKNOWN_CODE_FIRST 900000

#define MAX_LEVELS   3
#define MAX_FIELDS   2
#define MAX_AGENCIES 3
#define MAX_CHANNELS 3
#define MAX_FEES     2
#define MAX_CASES    3
#define MAX_DOCS     6
#define MAX_RESULTS  2
#define MAX_LAWS     4
#define MAX_SUBJECTS 3
#define NAME_MAX_LEN 384

/* ---- tables: agencies (spec §2) -------------------------------------- */

enum {
	AG_UBND_TINH,
	AG_VP,
	AG_SNV,
	AG_STP,
	AG_STC,
	AG_SCT,
	AG_SNNMT,
	AG_SXD,
	AG_SGDDT,
	AG_SYT,
	AG_SVHTTDL,
	AG_SKHCN,
	AG_SDTTG,
	AG_TTRA,
	AG_CATINH,
	AG_SKHDT, /* merged into Sở Tài chính on 2025-03-01: unmappable today */
	AG_UBND_XA,
	AG__COUNT,
};

static const struct agency {
	const char *madonvi;
	const char *name;
	const char *code; /* provincial code (mappings/agency.json) */
	unsigned capdonvi;
} agencies[AG__COUNT] = {
	[AG_UBND_TINH] = {"000.00.00.H31", "UBND tỉnh Hưng Yên", "UBND-TINH", 1},
	[AG_VP] = {"000.00.01.H31", "Văn phòng UBND tỉnh", "VP-UBND", 1},
	[AG_SNV] = {"000.00.02.H31", "Sở Nội vụ", "SNV", 1},
	[AG_STP] = {"000.00.03.H31", "Sở Tư pháp", "STP", 1},
	[AG_STC] = {"000.00.04.H31", "Sở Tài chính", "STC", 1},
	[AG_SCT] = {"000.00.05.H31", "Sở Công Thương", "SCT", 1},
	[AG_SNNMT] = {"000.00.06.H31", "Sở Nông nghiệp và Môi trường", "SNNMT", 1},
	[AG_SXD] = {"000.00.07.H31", "Sở Xây dựng", "SXD", 1},
	[AG_SGDDT] = {"000.00.08.H31", "Sở Giáo dục và Đào tạo", "SGDDT", 1},
	[AG_SYT] = {"000.00.09.H31", "Sở Y tế", "SYT", 1},
	[AG_SVHTTDL] = {"000.00.10.H31", "Sở Văn hóa, Thể thao và Du lịch", "SVHTTDL", 1},
	[AG_SKHCN] = {"000.00.11.H31", "Sở Khoa học và Công nghệ", "SKHCN", 1},
	[AG_SDTTG] = {"000.00.12.H31", "Sở Dân tộc và Tôn giáo", "SDTTG", 1},
	[AG_TTRA] = {"000.00.13.H31", "Thanh tra tỉnh", "TTRA", 1},
	[AG_CATINH] = {"000.00.14.H31", "Công an tỉnh", "CATINH", 1},
	[AG_SKHDT] = {"000.00.15.H31", "Sở Kế hoạch và Đầu tư", "SKHDT", 1},
	[AG_UBND_XA] = {"000.00.20.H31", "UBND cấp xã", "UBND-XA", 3},
};

/* ---- tables: sectors, their documents and legal bases ----------------- */

struct law {
	const char *number; /* SOVANBAN */
	const char *title;  /* TENVANBAN */
};

enum {
	SE_TP,
	SE_XD,
	SE_TC,
	SE_YT,
	SE_NNMT,
	SE_CT,
	SE_GD,
	SE_VH,
	SE_KHCN,
	SE_NV,
	SE_DTTG,
	SE_CA,
	SE_TTRA,
	SE_VP,
	SE__COUNT,
};

#define SECTOR_DOCS 7
#define SECTOR_LAWS 6

static const struct sector {
	const char *docs[SECTOR_DOCS + 1]; /* NULL-terminated */
	struct law laws[SECTOR_LAWS + 1];  /* ends with {NULL, NULL} */
} sectors[SE__COUNT] = {
	[SE_TP] = {{"Giấy chứng sinh", "Giấy báo tử hoặc giấy tờ thay thế Giấy báo tử",
		    "Giấy xác nhận tình trạng hôn nhân",
		    "Bản chính giấy tờ, văn bản cần chứng thực",
		    "Phiếu yêu cầu cấp Phiếu lý lịch tư pháp",
		    "Văn bản xác nhận thời gian hành nghề", NULL},
		   {{"60/2014/QH13", "Luật Hộ tịch 2014"},
		    {"123/2015/NĐ-CP", "Nghị định 123/2015/NĐ-CP quy định chi tiết một số điều và "
				       "biện pháp thi hành Luật Hộ tịch"},
		    {"04/2020/TT-BTP", "Thông tư 04/2020/TT-BTP quy định chi tiết thi hành một số "
				       "điều của Luật Hộ tịch"},
		    {"28/2009/QH12", "Luật Lý lịch tư pháp 2009"},
		    {"23/2015/NĐ-CP",
		     "Nghị định 23/2015/NĐ-CP về cấp bản sao từ sổ gốc, chứng thực "
		     "bản sao từ bản chính, chứng thực chữ ký và chứng thực hợp "
		     "đồng, giao dịch"},
		    {"46/2024/QH15", "Luật Công chứng 2024"},
		    {NULL, NULL}}},
	[SE_XD] = {{"Bản vẽ thiết kế xây dựng", "Giấy chứng nhận quyền sử dụng đất",
		    "Sơ đồ vị trí công trình", "Báo cáo kết quả thẩm định thiết kế xây dựng",
		    "Bản cam kết bảo đảm an toàn đối với công trình liền kề", NULL},
		   {{"50/2014/QH13", "Luật Xây dựng 2014"},
		    {"15/2021/NĐ-CP",
		     "Nghị định 15/2021/NĐ-CP quy định chi tiết một số nội dung về "
		     "quản lý dự án đầu tư xây dựng"},
		    {"27/2023/QH15", "Luật Nhà ở 2023"},
		    {"29/2023/QH15", "Luật Kinh doanh bất động sản 2023"},
		    {NULL, NULL}}},
	[SE_TC] = {{"Danh sách thành viên góp vốn", "Điều lệ công ty",
		    "Giấy đề nghị đăng ký hộ kinh doanh", "Hợp đồng thuê địa điểm kinh doanh",
		    "Đề xuất dự án đầu tư", "Báo cáo năng lực tài chính của nhà đầu tư", NULL},
		   {{"59/2020/QH14", "Luật Doanh nghiệp 2020"},
		    {"01/2021/NĐ-CP", "Nghị định 01/2021/NĐ-CP về đăng ký doanh nghiệp"},
		    {"61/2020/QH14", "Luật Đầu tư 2020"},
		    {"31/2021/NĐ-CP", "Nghị định 31/2021/NĐ-CP quy định chi tiết và hướng dẫn thi "
				      "hành một số điều của Luật Đầu tư"},
		    {NULL, NULL}}},
	[SE_YT] = {{"Bản sao văn bằng chuyên môn", "Giấy xác nhận thời gian thực hành chuyên môn",
		    "Giấy chứng nhận đủ sức khỏe hành nghề", "Danh sách nhân sự",
		    "Bản kê khai cơ sở vật chất, trang thiết bị", NULL},
		   {{"105/2016/QH13", "Luật Dược 2016"},
		    {"54/2017/NĐ-CP", "Nghị định 54/2017/NĐ-CP quy định chi tiết một số điều và "
				      "biện pháp thi hành Luật Dược"},
		    {"15/2023/QH15", "Luật Khám bệnh, chữa bệnh 2023"},
		    {"96/2023/NĐ-CP", "Nghị định 96/2023/NĐ-CP quy định chi tiết một số điều của "
				      "Luật Khám bệnh, chữa bệnh"},
		    {"55/2010/QH12", "Luật An toàn thực phẩm 2010"},
		    {"15/2018/NĐ-CP", "Nghị định 15/2018/NĐ-CP quy định chi tiết thi hành một số "
				      "điều của Luật An toàn thực phẩm"},
		    {NULL, NULL}}},
	[SE_NNMT] = {{"Giấy chứng nhận quyền sử dụng đất", "Trích lục bản đồ địa chính",
		      "Báo cáo đánh giá tác động môi trường",
		      "Hợp đồng chuyển nhượng quyền sử dụng đất",
		      "Văn bản thỏa thuận phân chia di sản thừa kế", NULL},
		     {{"31/2024/QH15", "Luật Đất đai 2024"},
		      {"101/2024/NĐ-CP", "Nghị định 101/2024/NĐ-CP quy định về điều tra cơ bản đất "
					 "đai; đăng ký, cấp Giấy chứng nhận quyền sử dụng đất"},
		      {"72/2020/QH14", "Luật Bảo vệ môi trường 2020"},
		      {"08/2022/NĐ-CP", "Nghị định 08/2022/NĐ-CP quy định chi tiết một số điều của "
					"Luật Bảo vệ môi trường"},
		      {"79/2015/QH13", "Luật Thú y 2015"},
		      {NULL, NULL}}},
	[SE_CT] = {{"Bản sao hợp đồng mua bán với thương nhân phân phối",
		    "Bản vẽ mặt bằng cửa hàng",
		    "Giấy chứng nhận đủ điều kiện về phòng cháy và chữa cháy", NULL},
		   {{"36/2005/QH11", "Luật Thương mại 2005"},
		    {"87/2018/NĐ-CP", "Nghị định 87/2018/NĐ-CP về kinh doanh khí"},
		    {"67/2013/NĐ-CP", "Nghị định 67/2013/NĐ-CP quy định chi tiết một số điều và "
				      "biện pháp thi hành Luật Phòng, chống tác hại của thuốc lá"},
		    {NULL, NULL}}},
	[SE_GD] = {{"Bản sao văn bằng, chứng chỉ", "Đề án thành lập trường", "Báo cáo tự đánh giá",
		    "Biên bản kiểm tra của đoàn kiểm tra công nhận", NULL},
		   {{"43/2019/QH14", "Luật Giáo dục 2019"},
		    {"125/2024/NĐ-CP", "Nghị định 125/2024/NĐ-CP quy định về điều kiện đầu tư và "
				       "hoạt động trong lĩnh vực giáo dục"},
		    {NULL, NULL}}},
	[SE_VH] = {{"Chương trình tổ chức lễ hội", "Bản sao chứng chỉ nghiệp vụ hướng dẫn du lịch",
		    "Phương án kinh doanh lữ hành", NULL},
		   {{"09/2017/QH14", "Luật Du lịch 2017"},
		    {"168/2017/NĐ-CP", "Nghị định 168/2017/NĐ-CP quy định chi tiết một số điều của "
				       "Luật Du lịch"},
		    {"110/2018/NĐ-CP", "Nghị định 110/2018/NĐ-CP quy định về quản lý và tổ chức lễ "
				       "hội"},
		    {NULL, NULL}}},
	[SE_KHCN] = {{"Danh mục thiết bị thử nghiệm", "Mẫu nhãn hàng hóa", NULL},
		     {{"05/2007/QH12", "Luật Chất lượng sản phẩm, hàng hóa 2007"},
		      {"04/2011/QH13", "Luật Đo lường 2011"},
		      {NULL, NULL}}},
	[SE_NV] = {{"Bản tóm tắt thành tích", "Hộ chiếu của người lao động nước ngoài",
		    "Phiếu lý lịch tư pháp", "Sổ bảo hiểm xã hội",
		    "Quyết định chấm dứt hợp đồng lao động",
		    "Tờ khai thông tin đối tượng hưởng trợ cấp xã hội", NULL},
		   {{"06/2022/QH15", "Luật Thi đua, khen thưởng 2022"},
		    {"98/2023/NĐ-CP", "Nghị định 98/2023/NĐ-CP quy định chi tiết thi hành một số "
				      "điều của Luật Thi đua, khen thưởng"},
		    {"45/2019/QH14", "Bộ luật Lao động 2019"},
		    {"152/2020/NĐ-CP", "Nghị định 152/2020/NĐ-CP quy định về người lao động nước "
				       "ngoài làm việc tại Việt Nam"},
		    {"20/2021/NĐ-CP", "Nghị định 20/2021/NĐ-CP quy định chính sách trợ giúp xã hội "
				      "đối với đối tượng bảo trợ xã hội"},
		    {NULL, NULL}}},
	[SE_DTTG] = {{"Danh sách người tham gia sinh hoạt tôn giáo",
		      "Văn bản cam kết của chủ sở hữu địa điểm", NULL},
		     {{"02/2016/QH14", "Luật Tín ngưỡng, tôn giáo 2016"},
		      {"95/2023/NĐ-CP", "Nghị định 95/2023/NĐ-CP quy định chi tiết Luật Tín "
					"ngưỡng, tôn giáo"},
		      {NULL, NULL}}},
	[SE_CA] = {{"Tờ khai thay đổi thông tin cư trú", "Giấy tờ chứng minh chỗ ở hợp pháp", NULL},
		   {{"68/2020/QH14", "Luật Cư trú 2020"},
		    {"62/2021/NĐ-CP", "Nghị định 62/2021/NĐ-CP quy định chi tiết một số điều của "
				      "Luật Cư trú"},
		    {NULL, NULL}}},
	[SE_TTRA] = {{"Đơn khiếu nại", "Đơn tố cáo", "Tài liệu, chứng cứ kèm theo", NULL},
		     {{"02/2011/QH13", "Luật Khiếu nại 2011"},
		      {"25/2018/QH14", "Luật Tố cáo 2018"},
		      {"124/2020/NĐ-CP", "Nghị định 124/2020/NĐ-CP quy định chi tiết một số điều "
					 "và biện pháp thi hành Luật Khiếu nại"},
		      {NULL, NULL}}},
	[SE_VP] = {{"Văn bản phản ánh, kiến nghị", NULL},
		   {{"20/2008/NĐ-CP", "Nghị định 20/2008/NĐ-CP về tiếp nhận, xử lý phản ánh, kiến "
				      "nghị của cá nhân, tổ chức về quy định hành chính"},
		    {NULL, NULL}}},
};

/* Documents any procedure may ask for. */
static const char *const generic_docs[] = {
	"Tờ khai theo mẫu",
	"Đơn đề nghị theo mẫu",
	"Bản sao Căn cước công dân",
	"Bản sao Căn cước công dân hoặc Hộ chiếu",
	"Giấy ủy quyền (trường hợp ủy quyền thực hiện thủ tục)",
	"Giấy tờ chứng minh nơi cư trú",
	"Ảnh chân dung cỡ 4 x 6 cm",
	"Văn bản đề nghị của tổ chức",
	"Bản sao Giấy chứng nhận đăng ký doanh nghiệp",
};

static const struct law generic_laws[] = {
	{"61/2018/NĐ-CP", "Nghị định 61/2018/NĐ-CP về thực hiện cơ chế một cửa, một cửa liên "
			  "thông trong giải quyết thủ tục hành chính"},
	{"97/2015/QH13", "Luật Phí và lệ phí 2015"},
};

/* ---- tables: fields of work ------------------------------------------ */

enum profile {
	PR_PROVINCE, /* decided by a department of the province */
	PR_COMMUNE,  /* decided by the commune (formerly also the district) */
};

static const struct field {
	const char *code;	 /* MALINHVUC */
	const char *name;	 /* TENLINHVUC */
	const char *sector_code; /* MANGANH */
	unsigned sector;
	unsigned agency;
	enum profile profile;
} fields[] = {
	{"TP-HT", "Hộ tịch", "TP", SE_TP, AG_STP, PR_COMMUNE},
	{"TP-LLTP", "Lý lịch tư pháp", "TP", SE_TP, AG_STP, PR_PROVINCE},
	{"TP-CT", "Chứng thực", "TP", SE_TP, AG_STP, PR_COMMUNE},
	{"TP-LS", "Luật sư", "TP", SE_TP, AG_STP, PR_PROVINCE},
	{"TP-CC", "Công chứng", "TP", SE_TP, AG_STP, PR_PROVINCE},
	{"XD-CPXD", "Cấp phép xây dựng", "XD", SE_XD, AG_SXD, PR_PROVINCE},
	{"XD-NO", "Nhà ở và thị trường bất động sản", "XD", SE_XD, AG_SXD, PR_PROVINCE},
	{"TC-HKD", "Thành lập và hoạt động của hộ kinh doanh", "TC", SE_TC, AG_STC, PR_COMMUNE},
	{"TC-DN", "Thành lập và hoạt động của doanh nghiệp", "TC", SE_TC, AG_STC, PR_PROVINCE},
	{"TC-DT", "Đầu tư tại Việt Nam", "TC", SE_TC, AG_STC, PR_PROVINCE},
	{"YT-DUOC", "Dược phẩm", "YT", SE_YT, AG_SYT, PR_PROVINCE},
	{"YT-KCB", "Khám bệnh, chữa bệnh", "YT", SE_YT, AG_SYT, PR_PROVINCE},
	{"YT-ATTP", "An toàn thực phẩm và dinh dưỡng", "YT", SE_YT, AG_SYT, PR_PROVINCE},
	{"NNMT-DD", "Đất đai", "NNMT", SE_NNMT, AG_SNNMT, PR_COMMUNE},
	{"NNMT-MT", "Môi trường", "NNMT", SE_NNMT, AG_SNNMT, PR_PROVINCE},
	{"NNMT-TY", "Thú y", "NNMT", SE_NNMT, AG_SNNMT, PR_PROVINCE},
	{"CT-KDK", "Kinh doanh khí", "CT", SE_CT, AG_SCT, PR_PROVINCE},
	{"CT-LTHH", "Lưu thông hàng hóa trong nước", "CT", SE_CT, AG_SCT, PR_PROVINCE},
	{"GD-VBCC", "Văn bằng, chứng chỉ", "GD", SE_GD, AG_SGDDT, PR_PROVINCE},
	{"GD-GDDT", "Giáo dục và Đào tạo thuộc hệ thống giáo dục quốc dân", "GD", SE_GD, AG_SGDDT,
	 PR_PROVINCE},
	{"VH-DL", "Du lịch", "VH", SE_VH, AG_SVHTTDL, PR_PROVINCE},
	{"VH-VHCS", "Văn hóa cơ sở", "VH", SE_VH, AG_SVHTTDL, PR_COMMUNE},
	{"KHCN-TDC", "Tiêu chuẩn, đo lường, chất lượng", "KHCN", SE_KHCN, AG_SKHCN, PR_PROVINCE},
	{"NV-TDKT", "Thi đua, khen thưởng", "NV", SE_NV, AG_SNV, PR_COMMUNE},
	{"NV-VL", "Việc làm", "NV", SE_NV, AG_SNV, PR_PROVINCE},
	{"NV-BTXH", "Bảo trợ xã hội", "NV", SE_NV, AG_SNV, PR_COMMUNE},
	{"DTTG-TG", "Tín ngưỡng, tôn giáo", "DTTG", SE_DTTG, AG_SDTTG, PR_COMMUNE},
	{"CA-CT", "Đăng ký, quản lý cư trú", "CA", SE_CA, AG_CATINH, PR_COMMUNE},
	{"TTRA-KNTC", "Giải quyết khiếu nại, tố cáo", "TTRA", SE_TTRA, AG_TTRA, PR_COMMUNE},
	{"VP-KSTT", "Kiểm soát thủ tục hành chính", "VP", SE_VP, AG_VP, PR_PROVINCE},
};

enum {
	F_TP_HT,
	F_TP_LLTP,
	F_TP_CT,
	F_TP_LS,
	F_TP_CC,
	F_XD_CPXD,
	F_XD_NO,
	F_TC_HKD,
	F_TC_DN,
	F_TC_DT,
	F_YT_DUOC,
	F_YT_KCB,
	F_YT_ATTP,
	F_NNMT_DD,
	F_NNMT_MT,
	F_NNMT_TY,
	F_CT_KDK,
	F_CT_LTHH,
	F_GD_VBCC,
	F_GD_GDDT,
	F_VH_DL,
	F_VH_VHCS,
	F_KHCN_TDC,
	F_NV_TDKT,
	F_NV_VL,
	F_NV_BTXH,
	F_DTTG_TG,
	F_CA_CT,
	F_TTRA_KNTC,
	F_VP_KSTT,
	F__COUNT,
};

/* ---- tables: what procedures are about, and how names are built ------ */

/* Name templates: prefix + object + suffix (+ one of the object's qualifiers). */
enum kind {
	K_LICENSE,
	K_ISSUE,
	K_REG,
	K_BIZ,
	K_RECOG,
	K_SETTLE,
	K_CERT,
	K_PROVIDE,
	K_APPROVE,
	K_APPRAISE,
	K_PERMIT,
	K_AWARD,
	K_RES,
	K_CONFIRM,
	K_RECEIVE,
	K__COUNT,
};

#define MAX_TEMPLATES 5

static const struct tmpl {
	const char *pre; /* NULL ends the list */
	const char *post;
} templates[K__COUNT][MAX_TEMPLATES + 1] = {
	[K_LICENSE] = {{"Cấp ", ""},
		       {"Cấp lại ", ""},
		       {"Điều chỉnh ", ""},
		       {"Gia hạn ", ""},
		       {"Cấp đổi ", ""}},
	[K_ISSUE] = {{"Cấp ", ""}, {"Cấp lại ", ""}},
	[K_REG] = {{"Đăng ký ", ""}, {"Đăng ký lại ", ""}},
	[K_BIZ] = {{"Đăng ký thành lập ", ""},
		   {"Đăng ký thay đổi nội dung đăng ký ", ""},
		   {"Tạm ngừng kinh doanh ", ""},
		   {"Chấm dứt hoạt động ", ""}},
	[K_RECOG] = {{"Thủ tục công nhận ", ""}, {"Công nhận lại ", ""}},
	[K_SETTLE] = {{"Giải quyết ", ""}},
	[K_CERT] = {{"Chứng thực ", ""}},
	[K_PROVIDE] = {{"Cung cấp ", ""}},
	[K_APPROVE] = {{"Chấp thuận ", ""}, {"Điều chỉnh ", ""}},
	[K_APPRAISE] = {{"Thẩm định ", ""}, {"Thẩm định điều chỉnh ", ""}},
	[K_PERMIT] = {{"Cho phép ", ""}, {"Cho phép ", " trở lại"}},
	[K_AWARD] = {{"Thủ tục tặng ", ""}, {"Thủ tục xét tặng ", ""}},
	[K_RES] = {{"Đăng ký ", ""}, {"Xóa đăng ký ", ""}},
	[K_CONFIRM] = {{"Xác nhận ", ""}},
	[K_RECEIVE] = {{"Tiếp nhận, xử lý ", ""}},
};

enum fee_class { FC_FREE, FC_LOW, FC_MID, FC_HIGH };

static const struct object {
	unsigned field;
	enum kind kind;
	enum fee_class fee_class;
	const char *phrase;
	const char *result; /* TENKETQUA */
	const char *fee;    /* MOTA of the first fee line */
	const char *quals;  /* qualifiers appended to some names, '|'-separated; none also */
} objects[] = {
	{F_TP_HT, K_REG, FC_FREE, "khai sinh", "Giấy khai sinh", "Lệ phí đăng ký khai sinh",
	 " lưu động| kết hợp nhận cha, mẹ, con| có yếu tố nước ngoài"},
	{F_TP_HT, K_REG, FC_FREE, "kết hôn", "Giấy chứng nhận kết hôn", "Lệ phí đăng ký kết hôn",
	 " lưu động| có yếu tố nước ngoài"},
	{F_TP_HT, K_REG, FC_FREE, "khai tử", "Trích lục khai tử", "Lệ phí đăng ký khai tử",
	 " lưu động"},
	{F_TP_HT, K_REG, FC_LOW, "nhận cha, mẹ, con", "Trích lục đăng ký nhận cha, mẹ, con",
	 "Lệ phí đăng ký nhận cha, mẹ, con", " có yếu tố nước ngoài"},
	{F_TP_HT, K_REG, FC_LOW, "giám hộ", "Trích lục đăng ký giám hộ", "Lệ phí đăng ký giám hộ",
	 ""},
	{F_TP_HT, K_REG, FC_LOW, "thay đổi, cải chính, bổ sung thông tin hộ tịch",
	 "Trích lục thay đổi, cải chính, bổ sung thông tin hộ tịch",
	 "Lệ phí thay đổi, cải chính hộ tịch", " cho người từ đủ 14 tuổi trở lên"},
	{F_TP_HT, K_ISSUE, FC_LOW, "bản sao trích lục hộ tịch", "Bản sao trích lục hộ tịch",
	 "Phí cấp bản sao trích lục hộ tịch", ""},
	{F_TP_HT, K_ISSUE, FC_FREE, "Giấy xác nhận tình trạng hôn nhân",
	 "Giấy xác nhận tình trạng hôn nhân", "Lệ phí cấp Giấy xác nhận tình trạng hôn nhân", ""},
	{F_TP_LLTP, K_ISSUE, FC_MID, "Phiếu lý lịch tư pháp", "Phiếu lý lịch tư pháp",
	 "Phí cung cấp thông tin lý lịch tư pháp",
	 " cho công dân Việt Nam, người nước ngoài đang cư trú tại Việt Nam| cho cơ quan tiến hành "
	 "tố tụng"},
	{F_TP_CT, K_CERT, FC_LOW, "bản sao từ bản chính giấy tờ, văn bản",
	 "Bản sao được chứng thực từ bản chính", "Phí chứng thực bản sao từ bản chính",
	 " do cơ quan có thẩm quyền của Việt Nam cấp| do cơ quan có thẩm quyền của nước ngoài cấp"},
	{F_TP_CT, K_CERT, FC_LOW, "chữ ký trong các giấy tờ, văn bản",
	 "Giấy tờ, văn bản được chứng thực chữ ký", "Phí chứng thực chữ ký",
	 " (áp dụng cho cả trường hợp chứng thực điểm chỉ)"},
	{F_TP_CT, K_CERT, FC_MID, "hợp đồng, giao dịch liên quan đến tài sản là động sản",
	 "Hợp đồng, giao dịch được chứng thực", "Phí chứng thực hợp đồng, giao dịch", ""},
	{F_TP_LS, K_REG, FC_MID, "hoạt động của tổ chức hành nghề luật sư",
	 "Giấy đăng ký hoạt động của tổ chức hành nghề luật sư", "Lệ phí đăng ký hoạt động", ""},
	{F_TP_CC, K_ISSUE, FC_MID, "thẻ công chứng viên", "Thẻ công chứng viên",
	 "Lệ phí cấp thẻ công chứng viên", ""},
	{F_TP_CC, K_REG, FC_HIGH, "hoạt động Văn phòng công chứng",
	 "Giấy đăng ký hoạt động của Văn phòng công chứng",
	 "Phí thẩm định điều kiện hoạt động Văn phòng công chứng", ""},
	{F_XD_CPXD, K_LICENSE, FC_MID, "giấy phép xây dựng", "Giấy phép xây dựng",
	 "Lệ phí cấp giấy phép xây dựng",
	 " đối với công trình cấp III| đối với nhà ở riêng lẻ| theo giai đoạn"},
	{F_XD_CPXD, K_LICENSE, FC_MID, "giấy phép di dời công trình", "Giấy phép di dời công trình",
	 "Lệ phí cấp giấy phép di dời công trình", ""},
	{F_XD_NO, K_LICENSE, FC_MID, "chứng chỉ hành nghề môi giới bất động sản",
	 "Chứng chỉ hành nghề môi giới bất động sản", "Phí sát hạch cấp chứng chỉ hành nghề", ""},
	{F_XD_NO, K_RECOG, FC_FREE, "chủ đầu tư dự án nhà ở thương mại",
	 "Quyết định công nhận chủ đầu tư", "Lệ phí", ""},
	{F_TC_HKD, K_BIZ, FC_LOW, "hộ kinh doanh", "Giấy chứng nhận đăng ký hộ kinh doanh",
	 "Lệ phí đăng ký hộ kinh doanh", ""},
	{F_TC_DN, K_BIZ, FC_MID, "doanh nghiệp tư nhân", "Giấy chứng nhận đăng ký doanh nghiệp",
	 "Lệ phí đăng ký doanh nghiệp", ""},
	{F_TC_DN, K_BIZ, FC_MID, "công ty trách nhiệm hữu hạn một thành viên",
	 "Giấy chứng nhận đăng ký doanh nghiệp", "Lệ phí đăng ký doanh nghiệp", ""},
	{F_TC_DN, K_BIZ, FC_MID, "công ty cổ phần", "Giấy chứng nhận đăng ký doanh nghiệp",
	 "Lệ phí đăng ký doanh nghiệp", ""},
	{F_TC_DN, K_BIZ, FC_LOW, "chi nhánh, văn phòng đại diện, địa điểm kinh doanh",
	 "Giấy chứng nhận đăng ký hoạt động chi nhánh, văn phòng đại diện",
	 "Lệ phí đăng ký hoạt động chi nhánh", ""},
	{F_TC_DT, K_LICENSE, FC_FREE, "Giấy chứng nhận đăng ký đầu tư",
	 "Giấy chứng nhận đăng ký đầu tư", "Phí thẩm định hồ sơ dự án đầu tư",
	 " đối với dự án không thuộc diện chấp thuận chủ trương đầu tư"},
	{F_TC_DT, K_APPROVE, FC_FREE, "chủ trương đầu tư của Ủy ban nhân dân cấp tỉnh",
	 "Quyết định chấp thuận chủ trương đầu tư", "Phí thẩm định dự án đầu tư", ""},
	{F_YT_DUOC, K_LICENSE, FC_MID, "chứng chỉ hành nghề dược", "Chứng chỉ hành nghề dược",
	 "Phí thẩm định cấp chứng chỉ hành nghề dược",
	 " theo hình thức xét hồ sơ| theo hình thức thi"},
	{F_YT_DUOC, K_LICENSE, FC_HIGH, "Giấy chứng nhận đủ điều kiện kinh doanh dược",
	 "Giấy chứng nhận đủ điều kiện kinh doanh dược", "Phí thẩm định điều kiện kinh doanh dược",
	 " cho cơ sở bán lẻ thuốc| cho cơ sở bán buôn thuốc"},
	{F_YT_KCB, K_LICENSE, FC_MID, "giấy phép hành nghề khám bệnh, chữa bệnh",
	 "Giấy phép hành nghề khám bệnh, chữa bệnh", "Phí thẩm định cấp giấy phép hành nghề",
	 " đối với chức danh bác sĩ| đối với chức danh điều dưỡng| đối với chức danh y sĩ"},
	{F_YT_KCB, K_LICENSE, FC_HIGH, "giấy phép hoạt động đối với phòng khám",
	 "Giấy phép hoạt động khám bệnh, chữa bệnh", "Phí thẩm định cấp giấy phép hoạt động",
	 " chuyên khoa| đa khoa"},
	{F_YT_ATTP, K_LICENSE, FC_HIGH, "Giấy chứng nhận cơ sở đủ điều kiện an toàn thực phẩm",
	 "Giấy chứng nhận cơ sở đủ điều kiện an toàn thực phẩm",
	 "Phí thẩm định cơ sở đủ điều kiện an toàn thực phẩm",
	 " đối với cơ sở sản xuất| đối với cơ sở kinh doanh dịch vụ ăn uống"},
	{F_YT_ATTP, K_REG, FC_MID, "bản công bố sản phẩm",
	 "Giấy tiếp nhận đăng ký bản công bố sản phẩm", "Phí thẩm định hồ sơ đăng ký bản công bố",
	 " dinh dưỡng y học"},
	{F_NNMT_DD, K_LICENSE, FC_LOW,
	 "Giấy chứng nhận quyền sử dụng đất, quyền sở hữu tài sản gắn liền với đất",
	 "Giấy chứng nhận quyền sử dụng đất, quyền sở hữu tài sản gắn liền với đất",
	 "Lệ phí cấp Giấy chứng nhận quyền sử dụng đất",
	 " lần đầu| cho hộ gia đình, cá nhân| cho tổ chức"},
	{F_NNMT_DD, K_REG, FC_LOW, "biến động đất đai, tài sản gắn liền với đất",
	 "Giấy chứng nhận đã được xác nhận thay đổi", "Lệ phí đăng ký biến động đất đai",
	 " do chuyển nhượng| do thừa kế, tặng cho"},
	{F_NNMT_DD, K_PROVIDE, FC_LOW, "thông tin, dữ liệu đất đai",
	 "Văn bản cung cấp thông tin, dữ liệu đất đai", "Phí khai thác và sử dụng tài liệu đất đai",
	 ""},
	{F_NNMT_DD, K_SETTLE, FC_FREE, "tranh chấp đất đai",
	 "Quyết định giải quyết tranh chấp đất đai", "Lệ phí", " lần đầu| lần hai"},
	{F_NNMT_MT, K_LICENSE, FC_HIGH, "giấy phép môi trường", "Giấy phép môi trường",
	 "Phí thẩm định cấp giấy phép môi trường", " (cấp tỉnh)"},
	{F_NNMT_MT, K_APPRAISE, FC_HIGH, "báo cáo đánh giá tác động môi trường",
	 "Quyết định phê duyệt kết quả thẩm định báo cáo đánh giá tác động môi trường",
	 "Phí thẩm định báo cáo đánh giá tác động môi trường", ""},
	{F_NNMT_TY, K_LICENSE, FC_LOW, "chứng chỉ hành nghề thú y", "Chứng chỉ hành nghề thú y",
	 "Lệ phí cấp chứng chỉ hành nghề thú y", ""},
	{F_NNMT_TY, K_LICENSE, FC_MID, "Giấy chứng nhận đủ điều kiện vệ sinh thú y",
	 "Giấy chứng nhận đủ điều kiện vệ sinh thú y", "Phí thẩm định điều kiện vệ sinh thú y", ""},
	{F_CT_KDK, K_LICENSE, FC_HIGH,
	 "Giấy chứng nhận đủ điều kiện thương nhân kinh doanh mua bán LPG",
	 "Giấy chứng nhận đủ điều kiện thương nhân kinh doanh mua bán LPG",
	 "Phí thẩm định điều kiện kinh doanh khí", ""},
	{F_CT_KDK, K_LICENSE, FC_HIGH, "Giấy chứng nhận đủ điều kiện cửa hàng bán lẻ LPG chai",
	 "Giấy chứng nhận đủ điều kiện cửa hàng bán lẻ LPG chai",
	 "Phí thẩm định điều kiện kinh doanh khí", ""},
	{F_CT_LTHH, K_LICENSE, FC_MID, "Giấy phép bán lẻ sản phẩm thuốc lá",
	 "Giấy phép bán lẻ sản phẩm thuốc lá", "Phí thẩm định cấp giấy phép kinh doanh", ""},
	{F_CT_LTHH, K_LICENSE, FC_HIGH, "Giấy phép bán buôn sản phẩm rượu",
	 "Giấy phép bán buôn sản phẩm rượu", "Phí thẩm định cấp giấy phép kinh doanh", ""},
	{F_GD_VBCC, K_ISSUE, FC_LOW, "bản sao văn bằng, chứng chỉ từ sổ gốc",
	 "Bản sao văn bằng, chứng chỉ từ sổ gốc", "Phí cấp bản sao văn bằng, chứng chỉ", ""},
	{F_GD_VBCC, K_LICENSE, FC_FREE, "văn bằng, chứng chỉ", "Văn bằng, chứng chỉ đã chỉnh sửa",
	 "Lệ phí", ""},
	{F_GD_GDDT, K_RECOG, FC_FREE, "trường mầm non đạt chuẩn quốc gia",
	 "Quyết định công nhận trường đạt chuẩn quốc gia", "Lệ phí", ""},
	{F_GD_GDDT, K_RECOG, FC_FREE, "trường tiểu học đạt chuẩn quốc gia",
	 "Quyết định công nhận trường đạt chuẩn quốc gia", "Lệ phí", ""},
	{F_GD_GDDT, K_PERMIT, FC_FREE, "trung tâm ngoại ngữ, tin học hoạt động giáo dục",
	 "Quyết định cho phép hoạt động giáo dục", "Lệ phí", ""},
	{F_VH_DL, K_LICENSE, FC_MID, "thẻ hướng dẫn viên du lịch", "Thẻ hướng dẫn viên du lịch",
	 "Phí thẩm định cấp thẻ hướng dẫn viên du lịch", " nội địa| quốc tế"},
	{F_VH_DL, K_LICENSE, FC_HIGH, "giấy phép kinh doanh dịch vụ lữ hành nội địa",
	 "Giấy phép kinh doanh dịch vụ lữ hành nội địa",
	 "Phí thẩm định cấp giấy phép kinh doanh dịch vụ lữ hành", ""},
	{F_VH_DL, K_RECOG, FC_HIGH, "hạng cơ sở lưu trú du lịch",
	 "Quyết định công nhận hạng cơ sở lưu trú du lịch",
	 "Phí thẩm định công nhận hạng cơ sở lưu trú du lịch", ": hạng 1 sao, 2 sao"},
	{F_VH_VHCS, K_RECOG, FC_FREE, "danh hiệu Gia đình văn hóa",
	 "Giấy công nhận danh hiệu Gia đình văn hóa", "Lệ phí", ""},
	{F_VH_VHCS, K_REG, FC_FREE, "tổ chức lễ hội", "Văn bản chấp thuận tổ chức lễ hội", "Lệ phí",
	 " cấp xã"},
	{F_KHCN_TDC, K_LICENSE, FC_MID, "Giấy chứng nhận đăng ký hoạt động thử nghiệm",
	 "Giấy chứng nhận đăng ký hoạt động thử nghiệm", "Phí thẩm định điều kiện hoạt động", ""},
	{F_KHCN_TDC, K_REG, FC_LOW, "sử dụng dấu định lượng trên nhãn hàng đóng gói sẵn",
	 "Giấy chứng nhận đăng ký sử dụng dấu định lượng", "Phí thẩm định", ""},
	{F_NV_TDKT, K_AWARD, FC_FREE, "danh hiệu Chiến sĩ thi đua cơ sở",
	 "Quyết định tặng danh hiệu Chiến sĩ thi đua cơ sở", "Lệ phí", ""},
	{F_NV_TDKT, K_AWARD, FC_FREE, "Bằng khen của Chủ tịch Ủy ban nhân dân tỉnh",
	 "Bằng khen của Chủ tịch Ủy ban nhân dân tỉnh", "Lệ phí",
	 " về thành tích thực hiện nhiệm vụ chính trị| theo đợt, chuyên đề"},
	{F_NV_TDKT, K_AWARD, FC_FREE, "Giấy khen của Chủ tịch Ủy ban nhân dân cấp xã",
	 "Giấy khen của Chủ tịch Ủy ban nhân dân cấp xã", "Lệ phí", ""},
	{F_NV_VL, K_LICENSE, FC_MID,
	 "giấy phép lao động cho người lao động nước ngoài làm việc tại Việt Nam",
	 "Giấy phép lao động", "Lệ phí cấp giấy phép lao động", ""},
	{F_NV_VL, K_SETTLE, FC_FREE, "hưởng trợ cấp thất nghiệp",
	 "Quyết định về việc hưởng trợ cấp thất nghiệp", "Lệ phí", ""},
	{F_NV_BTXH, K_SETTLE, FC_FREE, "trợ cấp xã hội hàng tháng",
	 "Quyết định trợ cấp xã hội hàng tháng", "Lệ phí",
	 " đối với người cao tuổi| đối với người khuyết tật"},
	{F_NV_BTXH, K_SETTLE, FC_FREE, "hỗ trợ chi phí mai táng",
	 "Quyết định hỗ trợ chi phí mai táng", "Lệ phí", ""},
	{F_DTTG_TG, K_REG, FC_FREE, "sinh hoạt tôn giáo tập trung",
	 "Văn bản chấp thuận đăng ký sinh hoạt tôn giáo tập trung", "Lệ phí", ""},
	{F_DTTG_TG, K_REG, FC_FREE, "hoạt động tín ngưỡng", "Văn bản chấp thuận đăng ký", "Lệ phí",
	 " hằng năm"},
	{F_CA_CT, K_RES, FC_LOW, "thường trú",
	 "Thông báo kết quả giải quyết thủ tục đăng ký cư trú", "Lệ phí đăng ký cư trú", ""},
	{F_CA_CT, K_RES, FC_LOW, "tạm trú", "Thông báo kết quả giải quyết thủ tục đăng ký cư trú",
	 "Lệ phí đăng ký cư trú", ""},
	{F_CA_CT, K_CONFIRM, FC_FREE, "thông tin về cư trú", "Giấy xác nhận thông tin về cư trú",
	 "Lệ phí", ""},
	{F_TTRA_KNTC, K_SETTLE, FC_FREE, "khiếu nại lần đầu", "Quyết định giải quyết khiếu nại",
	 "Lệ phí", " tại cấp tỉnh| tại cấp xã"},
	{F_TTRA_KNTC, K_SETTLE, FC_FREE, "khiếu nại lần hai", "Quyết định giải quyết khiếu nại",
	 "Lệ phí", " tại cấp tỉnh"},
	{F_TTRA_KNTC, K_SETTLE, FC_FREE, "tố cáo", "Kết luận nội dung tố cáo", "Lệ phí",
	 " tại cấp tỉnh| tại cấp xã"},
	{F_VP_KSTT, K_RECEIVE, FC_FREE, "phản ánh, kiến nghị về quy định hành chính",
	 "Văn bản trả lời phản ánh, kiến nghị", "Lệ phí", ""},
};

/* Amounts in VND per fee class (0 = free). */
static const uint32_t amounts[][7] = {
	[FC_FREE] = {0, 0, 0, 0, 0, 0, 8000},
	[FC_LOW] = {0, 8000, 10000, 20000, 30000, 50000, 15000},
	[FC_MID] = {50000, 75000, 100000, 150000, 200000, 300000, 500000},
	[FC_HIGH] = {500000, 1000000, 1200000, 1500000, 2500000, 3000000, 5000000},
};

/* Second fee lines. */
static const char *const extra_fees[] = {
	"Phí thẩm định hồ sơ",
	"Lệ phí cấp bản sao",
	"Phí gửi kết quả qua dịch vụ bưu chính công ích",
};

static const char *const case_names[] = {
	"Trường hợp thông thường",
	"Trường hợp cấp lần đầu",
	"Trường hợp cấp lại do bị mất, hư hỏng",
	"Trường hợp thay đổi nội dung",
	"Đối với cá nhân",
	"Đối với tổ chức",
	"Trường hợp nộp hồ sơ trực tuyến",
	"Trường hợp ủy quyền cho người khác thực hiện",
};

static const char *const subjects[] = {
	"Công dân Việt Nam", "Người nước ngoài",
	"Doanh nghiệp",	     "Tổ chức (không bao gồm doanh nghiệp, hợp tác xã)",
	"Hợp tác xã",	     "Cán bộ, công chức, viên chức",
};

static const char *const requirements[] = {
	"Không",
	"Không",
	"Không",
	"Người đề nghị phải có đủ năng lực hành vi dân sự",
	"Cơ sở phải đáp ứng đủ điều kiện theo quy định của pháp luật chuyên ngành",
	"Hồ sơ phải được nộp trước thời hạn ít nhất 15 ngày làm việc",
};

static const char *const second_result =
	"Văn bản trả lời nêu rõ lý do (trường hợp không giải quyết)";

/* Time units: the clean donVi and the national spellings (spec §1). */
enum unit { U_WORKDAY, U_DAY, U_HOUR, U_MONTH, U__COUNT };

static const struct {
	const char *clean;
	const char *text[3]; /* NULL-terminated spellings */
} units[U__COUNT] = {
	[U_WORKDAY] = {"ngay_lam_viec", {"Ngày làm việc", "ngày làm việc", " Ngày làm việc "}},
	[U_DAY] = {"ngay", {"Ngày", NULL}},
	[U_HOUR] = {"gio", {"Giờ", NULL}},
	[U_MONTH] = {"thang", {"Tháng", NULL}},
};

/* Time limits in halves of a unit (1 = 0.5). */
static const uint16_t unit_values_x2[U__COUNT][10] = {
	[U_WORKDAY] = {1, 2, 6, 6, 10, 14, 20, 30, 40, 60},
	[U_DAY] = {2, 6, 10, 14, 20, 30, 60, 60, 90, 120},
	[U_HOUR] = {8, 16, 24, 48, 48, 96, 16, 8, 24, 48},
	[U_MONTH] = {2, 2, 4, 4, 6, 6, 12, 2, 4, 6},
};

/* Level names of the clean record, by CAPTHUCHIEN 0..3 (table "level"). */
static const char *const level_names[4] = {"bo", "tinh", "huyen", "xa"};
/* The levels in the byte order of their names: bo, huyen, tinh, xa. */
static const unsigned level_name_order[4] = {0, 2, 1, 3};

/* ---- NFD: Vietnamese letters decomposed (generated with Python's unicodedata) */

static const struct {
	uint32_t cp;
	const char *nfd; /* UTF-8 */
} nfd_table[] = {
	{0x00c0, "\x41\xcc\x80"},	  /* À */
	{0x00c1, "\x41\xcc\x81"},	  /* Á */
	{0x00c2, "\x41\xcc\x82"},	  /* Â */
	{0x00c3, "\x41\xcc\x83"},	  /* Ã */
	{0x00c8, "\x45\xcc\x80"},	  /* È */
	{0x00c9, "\x45\xcc\x81"},	  /* É */
	{0x00ca, "\x45\xcc\x82"},	  /* Ê */
	{0x00cc, "\x49\xcc\x80"},	  /* Ì */
	{0x00cd, "\x49\xcc\x81"},	  /* Í */
	{0x00d2, "\x4f\xcc\x80"},	  /* Ò */
	{0x00d3, "\x4f\xcc\x81"},	  /* Ó */
	{0x00d4, "\x4f\xcc\x82"},	  /* Ô */
	{0x00d5, "\x4f\xcc\x83"},	  /* Õ */
	{0x00d9, "\x55\xcc\x80"},	  /* Ù */
	{0x00da, "\x55\xcc\x81"},	  /* Ú */
	{0x00dd, "\x59\xcc\x81"},	  /* Ý */
	{0x00e0, "\x61\xcc\x80"},	  /* à */
	{0x00e1, "\x61\xcc\x81"},	  /* á */
	{0x00e2, "\x61\xcc\x82"},	  /* â */
	{0x00e3, "\x61\xcc\x83"},	  /* ã */
	{0x00e8, "\x65\xcc\x80"},	  /* è */
	{0x00e9, "\x65\xcc\x81"},	  /* é */
	{0x00ea, "\x65\xcc\x82"},	  /* ê */
	{0x00ec, "\x69\xcc\x80"},	  /* ì */
	{0x00ed, "\x69\xcc\x81"},	  /* í */
	{0x00f2, "\x6f\xcc\x80"},	  /* ò */
	{0x00f3, "\x6f\xcc\x81"},	  /* ó */
	{0x00f4, "\x6f\xcc\x82"},	  /* ô */
	{0x00f5, "\x6f\xcc\x83"},	  /* õ */
	{0x00f9, "\x75\xcc\x80"},	  /* ù */
	{0x00fa, "\x75\xcc\x81"},	  /* ú */
	{0x00fd, "\x79\xcc\x81"},	  /* ý */
	{0x0102, "\x41\xcc\x86"},	  /* Ă */
	{0x0103, "\x61\xcc\x86"},	  /* ă */
	{0x0128, "\x49\xcc\x83"},	  /* Ĩ */
	{0x0129, "\x69\xcc\x83"},	  /* ĩ */
	{0x0168, "\x55\xcc\x83"},	  /* Ũ */
	{0x0169, "\x75\xcc\x83"},	  /* ũ */
	{0x01a0, "\x4f\xcc\x9b"},	  /* Ơ */
	{0x01a1, "\x6f\xcc\x9b"},	  /* ơ */
	{0x01af, "\x55\xcc\x9b"},	  /* Ư */
	{0x01b0, "\x75\xcc\x9b"},	  /* ư */
	{0x1ea0, "\x41\xcc\xa3"},	  /* Ạ */
	{0x1ea1, "\x61\xcc\xa3"},	  /* ạ */
	{0x1ea2, "\x41\xcc\x89"},	  /* Ả */
	{0x1ea3, "\x61\xcc\x89"},	  /* ả */
	{0x1ea4, "\x41\xcc\x82\xcc\x81"}, /* Ấ */
	{0x1ea5, "\x61\xcc\x82\xcc\x81"}, /* ấ */
	{0x1ea6, "\x41\xcc\x82\xcc\x80"}, /* Ầ */
	{0x1ea7, "\x61\xcc\x82\xcc\x80"}, /* ầ */
	{0x1ea8, "\x41\xcc\x82\xcc\x89"}, /* Ẩ */
	{0x1ea9, "\x61\xcc\x82\xcc\x89"}, /* ẩ */
	{0x1eaa, "\x41\xcc\x82\xcc\x83"}, /* Ẫ */
	{0x1eab, "\x61\xcc\x82\xcc\x83"}, /* ẫ */
	{0x1eac, "\x41\xcc\xa3\xcc\x82"}, /* Ậ */
	{0x1ead, "\x61\xcc\xa3\xcc\x82"}, /* ậ */
	{0x1eae, "\x41\xcc\x86\xcc\x81"}, /* Ắ */
	{0x1eaf, "\x61\xcc\x86\xcc\x81"}, /* ắ */
	{0x1eb0, "\x41\xcc\x86\xcc\x80"}, /* Ằ */
	{0x1eb1, "\x61\xcc\x86\xcc\x80"}, /* ằ */
	{0x1eb2, "\x41\xcc\x86\xcc\x89"}, /* Ẳ */
	{0x1eb3, "\x61\xcc\x86\xcc\x89"}, /* ẳ */
	{0x1eb4, "\x41\xcc\x86\xcc\x83"}, /* Ẵ */
	{0x1eb5, "\x61\xcc\x86\xcc\x83"}, /* ẵ */
	{0x1eb6, "\x41\xcc\xa3\xcc\x86"}, /* Ặ */
	{0x1eb7, "\x61\xcc\xa3\xcc\x86"}, /* ặ */
	{0x1eb8, "\x45\xcc\xa3"},	  /* Ẹ */
	{0x1eb9, "\x65\xcc\xa3"},	  /* ẹ */
	{0x1eba, "\x45\xcc\x89"},	  /* Ẻ */
	{0x1ebb, "\x65\xcc\x89"},	  /* ẻ */
	{0x1ebc, "\x45\xcc\x83"},	  /* Ẽ */
	{0x1ebd, "\x65\xcc\x83"},	  /* ẽ */
	{0x1ebe, "\x45\xcc\x82\xcc\x81"}, /* Ế */
	{0x1ebf, "\x65\xcc\x82\xcc\x81"}, /* ế */
	{0x1ec0, "\x45\xcc\x82\xcc\x80"}, /* Ề */
	{0x1ec1, "\x65\xcc\x82\xcc\x80"}, /* ề */
	{0x1ec2, "\x45\xcc\x82\xcc\x89"}, /* Ể */
	{0x1ec3, "\x65\xcc\x82\xcc\x89"}, /* ể */
	{0x1ec4, "\x45\xcc\x82\xcc\x83"}, /* Ễ */
	{0x1ec5, "\x65\xcc\x82\xcc\x83"}, /* ễ */
	{0x1ec6, "\x45\xcc\xa3\xcc\x82"}, /* Ệ */
	{0x1ec7, "\x65\xcc\xa3\xcc\x82"}, /* ệ */
	{0x1ec8, "\x49\xcc\x89"},	  /* Ỉ */
	{0x1ec9, "\x69\xcc\x89"},	  /* ỉ */
	{0x1eca, "\x49\xcc\xa3"},	  /* Ị */
	{0x1ecb, "\x69\xcc\xa3"},	  /* ị */
	{0x1ecc, "\x4f\xcc\xa3"},	  /* Ọ */
	{0x1ecd, "\x6f\xcc\xa3"},	  /* ọ */
	{0x1ece, "\x4f\xcc\x89"},	  /* Ỏ */
	{0x1ecf, "\x6f\xcc\x89"},	  /* ỏ */
	{0x1ed0, "\x4f\xcc\x82\xcc\x81"}, /* Ố */
	{0x1ed1, "\x6f\xcc\x82\xcc\x81"}, /* ố */
	{0x1ed2, "\x4f\xcc\x82\xcc\x80"}, /* Ồ */
	{0x1ed3, "\x6f\xcc\x82\xcc\x80"}, /* ồ */
	{0x1ed4, "\x4f\xcc\x82\xcc\x89"}, /* Ổ */
	{0x1ed5, "\x6f\xcc\x82\xcc\x89"}, /* ổ */
	{0x1ed6, "\x4f\xcc\x82\xcc\x83"}, /* Ỗ */
	{0x1ed7, "\x6f\xcc\x82\xcc\x83"}, /* ỗ */
	{0x1ed8, "\x4f\xcc\xa3\xcc\x82"}, /* Ộ */
	{0x1ed9, "\x6f\xcc\xa3\xcc\x82"}, /* ộ */
	{0x1eda, "\x4f\xcc\x9b\xcc\x81"}, /* Ớ */
	{0x1edb, "\x6f\xcc\x9b\xcc\x81"}, /* ớ */
	{0x1edc, "\x4f\xcc\x9b\xcc\x80"}, /* Ờ */
	{0x1edd, "\x6f\xcc\x9b\xcc\x80"}, /* ờ */
	{0x1ede, "\x4f\xcc\x9b\xcc\x89"}, /* Ở */
	{0x1edf, "\x6f\xcc\x9b\xcc\x89"}, /* ở */
	{0x1ee0, "\x4f\xcc\x9b\xcc\x83"}, /* Ỡ */
	{0x1ee1, "\x6f\xcc\x9b\xcc\x83"}, /* ỡ */
	{0x1ee2, "\x4f\xcc\x9b\xcc\xa3"}, /* Ợ */
	{0x1ee3, "\x6f\xcc\x9b\xcc\xa3"}, /* ợ */
	{0x1ee4, "\x55\xcc\xa3"},	  /* Ụ */
	{0x1ee5, "\x75\xcc\xa3"},	  /* ụ */
	{0x1ee6, "\x55\xcc\x89"},	  /* Ủ */
	{0x1ee7, "\x75\xcc\x89"},	  /* ủ */
	{0x1ee8, "\x55\xcc\x9b\xcc\x81"}, /* Ứ */
	{0x1ee9, "\x75\xcc\x9b\xcc\x81"}, /* ứ */
	{0x1eea, "\x55\xcc\x9b\xcc\x80"}, /* Ừ */
	{0x1eeb, "\x75\xcc\x9b\xcc\x80"}, /* ừ */
	{0x1eec, "\x55\xcc\x9b\xcc\x89"}, /* Ử */
	{0x1eed, "\x75\xcc\x9b\xcc\x89"}, /* ử */
	{0x1eee, "\x55\xcc\x9b\xcc\x83"}, /* Ữ */
	{0x1eef, "\x75\xcc\x9b\xcc\x83"}, /* ữ */
	{0x1ef0, "\x55\xcc\x9b\xcc\xa3"}, /* Ự */
	{0x1ef1, "\x75\xcc\x9b\xcc\xa3"}, /* ự */
	{0x1ef2, "\x59\xcc\x80"},	  /* Ỳ */
	{0x1ef3, "\x79\xcc\x80"},	  /* ỳ */
	{0x1ef4, "\x59\xcc\xa3"},	  /* Ỵ */
	{0x1ef5, "\x79\xcc\xa3"},	  /* ỵ */
	{0x1ef6, "\x59\xcc\x89"},	  /* Ỷ */
	{0x1ef7, "\x79\xcc\x89"},	  /* ỷ */
	{0x1ef8, "\x59\xcc\x83"},	  /* Ỹ */
	{0x1ef9, "\x79\xcc\x83"},	  /* ỹ */
};

/* Appends s to b, each Vietnamese precomposed letter decomposed (NFD). */
static void add_nfd(struct sim_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		uint32_t cp;
		size_t n;
		size_t lo = 0, hi = SIM_ARRAY_SIZE(nfd_table);

		if (*p < 0x80) {
			sim_buf_add(b, p++, 1);
			continue;
		}
		/* Our texts are valid UTF-8 (tables in this file). */
		if ((*p & 0xe0) == 0xc0) {
			n = 2;
			cp = *p & 0x1fu;
		} else if ((*p & 0xf0) == 0xe0) {
			n = 3;
			cp = *p & 0x0fu;
		} else {
			n = 4;
			cp = *p & 0x07u;
		}
		for (size_t k = 1; k < n; k++)
			cp = (cp << 6) | (p[k] & 0x3fu);
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (nfd_table[mid].cp < cp)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < SIM_ARRAY_SIZE(nfd_table) && nfd_table[lo].cp == cp)
			sim_buf_adds(b, nfd_table[lo].nfd);
		else
			sim_buf_add(b, p, n);
		p += n;
	}
}

/* ---- JSON building (every failure is out of memory) ------------------ */

static json_t *jcheck(json_t *j)
{
	if (j == NULL)
		sim_die("catalog: cannot build JSON (out of memory)");
	return j;
}

static void put(json_t *o, const char *key, json_t *v)
{
	if (v == NULL || json_object_set_new(o, key, v) != 0)
		sim_die("catalog: cannot set \"%s\" (out of memory)", key);
}

static void push(json_t *a, json_t *v)
{
	if (v == NULL || json_array_append_new(a, v) != 0)
		sim_die("catalog: cannot append (out of memory)");
}

static json_t *jstr(const char *s)
{
	return jcheck(json_string(s));
}

static json_t *jint(int64_t v)
{
	return jcheck(json_integer((json_int_t)v));
}

static char *dump(const json_t *j, size_t *len)
{
	char *text = json_dumps(j, SIM_JSON_DUMP_FLAGS | JSON_ENCODE_ANY);

	if (text == NULL)
		sim_die("catalog: json_dumps: out of memory");
	if (len != NULL)
		*len = strlen(text);
	return text;
}

/* ---- the model ------------------------------------------------------- */

/* Sub-streams of SIM_STREAM_DATA used here. */
enum {
	ST_CODE = 1, /* code of index n */
	ST_CONTENT,  /* the model of one index */
	ST_MESS,     /* the national spelling variants of one index */
	ST_PICK,     /* which procedures carry the seeded differences */
	ST_PROV,     /* how a seeded difference changes the provincial copy */
	ST_UNKNOWN,  /* codes of the provincial-only procedures */
};

static uint64_t stream(unsigned kind, uint64_t index)
{
	return sim_mix64(((uint64_t)SIM_STREAM_DATA << 48) ^ ((uint64_t)kind << 40) ^ index);
}

enum malformed { MAL_NONE, MAL_NO_NAME, MAL_STRING };

/* A national procedure: its identity, its state and its rendering. */
struct proc {
	char code[SIM_CATALOG_CODE_MAX];
	uint64_t index;	  /* the model's content stream */
	unsigned changes; /* "change" ops applied */
	enum malformed malformed;
	bool withdrawn;
	bool unmappable; /* executed by the retired 000.00.15.H31 */
	char *text;	 /* LayThuTuc result[0], JSON, owned */
	size_t text_len;
	char *entry; /* LayDanhSachTTHC element, JSON, owned */
	size_t entry_len;
};

struct mdoc {
	const char *name;
	const char *form; /* TENMAUDON, "" when none */
	unsigned orig, copies;
};

struct mcase {
	const char *name;
	unsigned n_docs;
	struct mdoc docs[MAX_DOCS];
};

struct mfee {
	const char *desc;
	uint32_t code;
	uint64_t amount;
};

/* The content of one procedure, built on demand (indices and borrowed texts). */
struct model {
	const char *code;
	char name[NAME_MAX_LEN];
	uint32_t id, decision;
	unsigned loai;
	unsigned n_levels, levels[MAX_LEVELS]; /* national order, may repeat */
	unsigned n_fields, fields[MAX_FIELDS];
	unsigned n_agencies, agencies[MAX_AGENCIES];
	unsigned n_channels, channels[MAX_CHANNELS]; /* national order */
	enum unit unit;
	unsigned value_x2;  /* the time limit in halves of the unit */
	unsigned value2_x2; /* a second, longer time block; 0 when none */
	unsigned n_fees;
	struct mfee fees[MAX_FEES];
	unsigned n_cases;
	struct mcase cases[MAX_CASES];
	unsigned n_results;
	const char *results[MAX_RESULTS];
	unsigned n_laws;
	const struct law *laws[MAX_LAWS];
	unsigned n_subjects;
	const char *subjects[MAX_SUBJECTS];
	const char *requirement;
	bool commune;
};

static unsigned below(struct sim_rng *rng, unsigned n)
{
	return (unsigned)sim_rng_below(rng, n);
}

/* Percent chance. */
static bool chance(struct sim_rng *rng, unsigned pct)
{
	return below(rng, 100) < pct;
}

static unsigned count_strings(const char *const *v)
{
	unsigned n = 0;

	while (v[n] != NULL)
		n++;
	return n;
}

/* The number of qualifier alternatives in quals, "no qualifier" included. */
static unsigned qual_count(const char *quals)
{
	unsigned n = quals[0] != '\0' ? 2 : 1;

	for (; *quals; quals++)
		n += *quals == '|';
	return n;
}

/* Alternative k of quals (0: none) as *q, *len. */
static void qual_pick(const char *quals, unsigned k, const char **q, size_t *len)
{
	*q = "";
	*len = 0;
	if (k == 0)
		return;
	while (--k > 0)
		quals = strchr(quals, '|') + 1;
	*q = quals;
	*len = strcspn(quals, "|");
}

/* Stable codes for document and result names, as a national catalogue has. */
static uint32_t name_code(const char *s)
{
	uint64_t h = 0xcbf29ce484222325u;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3u;
	}
	return (uint32_t)(sim_mix64(h) % 1000000u);
}

static bool has(const unsigned *v, unsigned n, unsigned x)
{
	for (unsigned i = 0; i < n; i++) {
		if (v[i] == x)
			return true;
	}
	return false;
}

static void add_agency(struct model *m, unsigned ag)
{
	if (m->n_agencies < MAX_AGENCIES && !has(m->agencies, m->n_agencies, ag))
		m->agencies[m->n_agencies++] = ag;
}

/* The levels, which never mix 1 and 2 (see the README: sorted by name or code agree). */
static void gen_levels(struct model *m, struct sim_rng *rng, const struct field *f)
{
	unsigned r = below(rng, 100);
	unsigned *l = m->levels;

	if (f->profile == PR_PROVINCE) {
		if (r < 65) {
			l[0] = 1, m->n_levels = 1;
		} else if (r < 80) {
			l[0] = 0, l[1] = 1, m->n_levels = 2;
		} else if (r < 90) {
			l[0] = 1, l[1] = 1, m->n_levels = 2; /* one entry per receiving office */
		} else {
			l[0] = 1, l[1] = 3, m->n_levels = 2;
		}
	} else {
		if (r < 55) {
			l[0] = 3, m->n_levels = 1;
		} else if (r < 75) {
			l[0] = 1, l[1] = 3, m->n_levels = 2;
		} else if (r < 85) {
			l[0] = 2, l[1] = 3, m->n_levels = 2; /* old record: district level */
		} else if (r < 92) {
			l[0] = 2, m->n_levels = 1;
		} else {
			l[0] = 3, l[1] = 3, m->n_levels = 2;
		}
	}
	if (m->n_levels == 2 && chance(rng, 30)) {
		unsigned t = l[0];

		l[0] = l[1];
		l[1] = t;
	}
}

static void gen_channels(struct model *m, struct sim_rng *rng)
{
	static const unsigned sets[][3] = {{1, 0, 0}, {1, 2, 0}, {1, 2, 3}, {1, 3, 0}, {2, 0, 0}};
	static const unsigned weights[] = {20, 25, 35, 10, 10};
	unsigned r = below(rng, 100), k = 0, acc = weights[0];

	while (r >= acc)
		acc += weights[++k];
	for (m->n_channels = 0; m->n_channels < 3 && sets[k][m->n_channels] != 0; m->n_channels++)
		m->channels[m->n_channels] = sets[k][m->n_channels];
	if (m->n_channels > 1 && chance(rng, 25)) {
		unsigned i = below(rng, m->n_channels), j = below(rng, m->n_channels);
		unsigned t = m->channels[i];

		m->channels[i] = m->channels[j];
		m->channels[j] = t;
	}
}

/* Picks k distinct indices below n into out (partial Fisher-Yates on a small pool). */
static void pick_distinct(struct sim_rng *rng, unsigned n, unsigned k, unsigned *out)
{
	unsigned pool[32];

	if (n > SIM_ARRAY_SIZE(pool))
		n = SIM_ARRAY_SIZE(pool);
	if (k > n)
		k = n;
	for (unsigned i = 0; i < n; i++)
		pool[i] = i;
	for (unsigned i = 0; i < k; i++) {
		unsigned j = i + below(rng, n - i);
		unsigned t = pool[i];

		pool[i] = pool[j];
		pool[j] = t;
		out[i] = pool[i];
	}
}

static void gen_cases(struct model *m, struct sim_rng *rng, const struct sector *se)
{
	unsigned n_gen = SIM_ARRAY_SIZE(generic_docs);
	unsigned n_sec = count_strings(se->docs);
	unsigned r = below(rng, 100);
	unsigned names[MAX_CASES];

	m->n_cases = r < 55 ? 1 : r < 90 ? 2 : 3;
	pick_distinct(rng, SIM_ARRAY_SIZE(case_names), m->n_cases, names);
	for (unsigned c = 0; c < m->n_cases; c++) {
		struct mcase *mc = &m->cases[c];
		unsigned idx[MAX_DOCS];

		mc->name = case_names[names[c]];
		mc->n_docs = 2 + below(rng, MAX_DOCS - 1);
		pick_distinct(rng, n_gen + n_sec, mc->n_docs, idx);
		for (unsigned d = 0; d < mc->n_docs; d++) {
			struct mdoc *md = &mc->docs[d];
			bool copy;

			md->name = idx[d] < n_sec ? se->docs[idx[d]] : generic_docs[idx[d] - n_sec];
			copy = strncmp(md->name, "Bản sao", strlen("Bản sao")) == 0;
			md->orig = copy ? 0 : 1;
			md->copies = copy ? 1 : chance(rng, 30) ? 1 : 0;
			md->form = strstr(md->name, "theo mẫu") != NULL ? "Mẫu số 01" : "";
		}
	}
}

/*
 * Builds the model of p: the content from p's index, then p's state
 * (changes, retired agency). code is borrowed from p.
 */
static void model_gen(struct model *m, const struct proc *p)
{
	struct sim_rng rng;
	const struct object *ob;
	const struct field *f;
	const struct sector *se;
	const struct tmpl *t;
	const char *q;
	unsigned n, r;
	size_t len, qlen;

	memset(m, 0, sizeof(*m));
	sim_rng_init(&rng, stream(ST_CONTENT, p->index));
	m->code = p->code;
	ob = &objects[below(&rng, SIM_ARRAY_SIZE(objects))];
	f = &fields[ob->field];
	se = &sectors[f->sector];
	for (n = 0; templates[ob->kind][n].pre != NULL; n++)
		;
	t = &templates[ob->kind][below(&rng, n)];
	qual_pick(ob->quals, below(&rng, qual_count(ob->quals)), &q, &qlen);
	snprintf(m->name, sizeof(m->name), "%s%s%s%.*s", t->pre, ob->phrase, t->post, (int)qlen, q);
	/* A double space inside, as typed: the clean form keeps it. */
	if (chance(&rng, 3)) {
		char *sp = strchr(m->name, ' ');

		len = strlen(m->name);
		if (sp != NULL && len + 1 < sizeof(m->name)) {
			memmove(sp + 1, sp, len - (size_t)(sp - m->name) + 1);
		}
	}
	m->id = 100000u + (uint32_t)(p->index % 1000000u) * 3u + below(&rng, 3);
	m->decision = 2000u + (uint32_t)(p->index % 100000u) / 40u;
	m->loai = chance(&rng, 85) ? 1 : 2;

	gen_levels(m, &rng, f);
	m->commune = has(m->levels, m->n_levels, 3) || has(m->levels, m->n_levels, 2);
	m->fields[m->n_fields++] = ob->field;
	if (chance(&rng, 10)) {
		/* A second field of the same sector, when there is one. */
		for (unsigned k = 0; k < F__COUNT; k++) {
			unsigned g = (ob->field + 1 + k) % F__COUNT;

			if (fields[g].sector == f->sector && g != ob->field) {
				m->fields[m->n_fields++] = g;
				break;
			}
		}
	}
	if (has(m->levels, m->n_levels, 0) || has(m->levels, m->n_levels, 1)) {
		add_agency(m, f->agency);
		if (chance(&rng, 20))
			add_agency(m, AG_UBND_TINH);
	}
	if (m->commune)
		add_agency(m, AG_UBND_XA);

	gen_channels(m, &rng);

	r = below(&rng, 100);
	m->unit = r < 60 ? U_WORKDAY : r < 80 ? U_DAY : r < 90 ? U_HOUR : U_MONTH;
	m->value_x2 = unit_values_x2[m->unit][below(&rng, 10)];
	if (chance(&rng, 15))
		m->value2_x2 = m->value_x2 < 2 ? 10 : m->value_x2 * 2;

	m->n_fees = chance(&rng, 70) ? 1 : 2;
	for (unsigned i = 0; i < m->n_fees; i++) {
		enum fee_class fc = i == 0 ? ob->fee_class : chance(&rng, 50) ? FC_LOW : FC_MID;

		m->fees[i].desc = i == 0 ? ob->fee : extra_fees[below(&rng, 3)];
		m->fees[i].code = 100000u + below(&rng, 900000);
		m->fees[i].amount = amounts[fc][below(&rng, 7)];
	}

	gen_cases(m, &rng, se);

	m->results[m->n_results++] = ob->result;
	if (chance(&rng, 25))
		m->results[m->n_results++] = second_result;

	n = 0;
	while (se->laws[n].number != NULL)
		n++;
	{
		unsigned idx[MAX_LAWS];
		unsigned k = 1 + below(&rng, n < 3 ? n : 3);

		pick_distinct(&rng, n, k, idx);
		for (unsigned i = 0; i < k; i++)
			m->laws[m->n_laws++] = &se->laws[idx[i]];
		if (chance(&rng, 40))
			m->laws[m->n_laws++] = &generic_laws[below(&rng, 2)];
	}
	{
		unsigned idx[MAX_SUBJECTS];

		m->n_subjects = 1 + below(&rng, MAX_SUBJECTS);
		pick_distinct(&rng, SIM_ARRAY_SIZE(subjects), m->n_subjects, idx);
		for (unsigned i = 0; i < m->n_subjects; i++)
			m->subjects[i] = subjects[idx[i]];
	}
	m->requirement = requirements[below(&rng, SIM_ARRAY_SIZE(requirements))];

	/* The state on top of the content. */
	if (p->changes > 0) {
		len = strlen(m->name);
		snprintf(m->name + len, sizeof(m->name) - len, " (sửa đổi)");
		m->fees[0].amount += 1000u * (uint64_t)p->changes;
	}
	if (p->unmappable) {
		m->agencies[0] = AG_SKHDT;
		m->n_agencies = 1;
	}
}

/* ---- a small JSON writer ------------------------------------------------ */

/*
 * The records are written as JSON text directly: building jansson trees
 * only to dump them made start-up five times slower. The text is what
 * json_dumps(JSON_COMPACT) writes, so a record stored back after an edit
 * keeps its bytes.
 */
struct jw {
	struct sim_buf b;
	bool comma; /* a value was written: the next one needs a comma first */
};

static void jw_sep(struct jw *w)
{
	if (w->comma)
		sim_buf_add(&w->b, ",", 1);
	w->comma = true;
}

static void jw_open(struct jw *w, char c)
{
	jw_sep(w);
	sim_buf_add(&w->b, &c, 1);
	w->comma = false;
}

static void jw_close(struct jw *w, char c)
{
	sim_buf_add(&w->b, &c, 1);
	w->comma = true;
}

/* s[0..n) escaped as jansson escapes it (UTF-8 kept as is). */
static void add_escaped(struct sim_buf *b, const char *s, size_t n)
{
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char u[8];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sim_buf_add(b, s + start, i - start);
		start = i + 1;
		switch (c) {
		case '"': sim_buf_adds(b, "\\\""); break;
		case '\\': sim_buf_adds(b, "\\\\"); break;
		case '\b': sim_buf_adds(b, "\\b"); break;
		case '\f': sim_buf_adds(b, "\\f"); break;
		case '\n': sim_buf_adds(b, "\\n"); break;
		case '\r': sim_buf_adds(b, "\\r"); break;
		case '\t': sim_buf_adds(b, "\\t"); break;
		default: snprintf(u, sizeof(u), "\\u%04X", c); sim_buf_adds(b, u);
		}
	}
	sim_buf_add(b, s + start, n - start);
}

static void jw_strn(struct jw *w, const char *s, size_t n)
{
	jw_sep(w);
	sim_buf_add(&w->b, "\"", 1);
	add_escaped(&w->b, s, n);
	sim_buf_add(&w->b, "\"", 1);
}

static void jw_str(struct jw *w, const char *s)
{
	jw_strn(w, s, strlen(s));
}

static void jw_key(struct jw *w, const char *key)
{
	jw_str(w, key);
	sim_buf_add(&w->b, ":", 1);
	w->comma = false;
}

static void jw_int(struct jw *w, int64_t v)
{
	char t[24];
	int n = snprintf(t, sizeof(t), "%lld", (long long)v);

	jw_sep(w);
	sim_buf_add(&w->b, t, (size_t)n);
}

static void jw_kstr(struct jw *w, const char *key, const char *s)
{
	jw_key(w, key);
	jw_str(w, s);
}

static void jw_kint(struct jw *w, const char *key, int64_t v)
{
	jw_key(w, key);
	jw_int(w, v);
}

/* A time limit: an integer, or a real for half units (0.5 as jansson prints it). */
static void jw_time_value(struct jw *w, unsigned value_x2)
{
	if (value_x2 % 2 == 0) {
		jw_int(w, value_x2 / 2);
		return;
	}
	jw_sep(w);
	sim_buf_addf(&w->b, "%u.5", value_x2 / 2);
}

/* Hands the text over (NUL-terminated, no slack: it is kept) and resets w. */
static char *jw_steal(struct jw *w, size_t *len)
{
	size_t n;
	char *text = sim_buf_steal(&w->b, &n);

	w->comma = false;
	*len = n;
	return sim_xrealloc(text, n + 1);
}

/* ---- the clean (provincial) rendering, spec §3 ------------------------ */

/* The record a correct mapping makes of m's national rendering. */
static void write_clean(struct jw *w, const struct model *m)
{
	const char *dot = strchr(m->code, '.');
	size_t short_len = strlen(m->code);
	unsigned mask = 0;

	/* "1.001193" of "1.001193.000.00.00.H31" */
	if (dot != NULL && (dot = strchr(dot + 1, '.')) != NULL)
		short_len = (size_t)(dot - m->code);
	jw_open(w, '{');
	jw_kstr(w, "maThuTuc", m->code);
	jw_key(w, "maQuocGia");
	jw_strn(w, m->code, short_len);
	jw_kstr(w, "tenThuTuc", m->name);
	for (unsigned i = 0; i < m->n_levels; i++)
		mask |= 1u << m->levels[i];
	jw_key(w, "capThucHien");
	jw_open(w, '[');
	for (unsigned i = 0; i < 4; i++) {
		if (mask & (1u << level_name_order[i]))
			jw_str(w, level_names[level_name_order[i]]);
	}
	jw_close(w, ']');
	jw_key(w, "linhVuc");
	jw_open(w, '[');
	for (unsigned i = 0; i < m->n_fields; i++)
		jw_str(w, fields[m->fields[i]].code);
	jw_close(w, ']');
	jw_key(w, "coQuanThucHien");
	jw_open(w, '[');
	for (unsigned i = 0; i < m->n_agencies; i++)
		jw_str(w, agencies[m->agencies[i]].code);
	jw_close(w, ']');
	mask = 0;
	for (unsigned i = 0; i < m->n_channels; i++)
		mask |= 1u << m->channels[i];
	jw_key(w, "kenhNop");
	jw_open(w, '[');
	for (unsigned k = 1; k <= 3; k++) {
		if (mask & (1u << k))
			jw_int(w, k);
	}
	jw_close(w, ']');
	jw_key(w, "thoiHanGiaiQuyet");
	jw_open(w, '{');
	jw_key(w, "giaTri");
	jw_time_value(w, m->value_x2);
	jw_kstr(w, "donVi", units[m->unit].clean);
	jw_close(w, '}');
	jw_key(w, "phiLePhi");
	jw_open(w, '[');
	for (unsigned i = 0; i < m->n_fees; i++) {
		char ma[16];

		snprintf(ma, sizeof(ma), "PL%06u", (unsigned)m->fees[i].code);
		jw_open(w, '{');
		jw_kstr(w, "ma", ma);
		jw_kint(w, "soTien", (int64_t)m->fees[i].amount);
		jw_kstr(w, "moTa", m->fees[i].desc);
		jw_close(w, '}');
	}
	jw_close(w, ']');
	jw_key(w, "thanhPhanHoSo");
	jw_open(w, '[');
	for (unsigned c = 0; c < m->n_cases; c++) {
		jw_open(w, '{');
		jw_kstr(w, "truongHop", m->cases[c].name);
		jw_key(w, "giayTo");
		jw_open(w, '[');
		for (unsigned d = 0; d < m->cases[c].n_docs; d++) {
			const struct mdoc *md = &m->cases[c].docs[d];
			char ma[16];

			snprintf(ma, sizeof(ma), "GT%06u", (unsigned)name_code(md->name));
			jw_open(w, '{');
			jw_kstr(w, "ma", ma);
			jw_kstr(w, "ten", md->name);
			jw_kint(w, "soBanChinh", md->orig);
			jw_kint(w, "soBanSao", md->copies);
			jw_close(w, '}');
		}
		jw_close(w, ']');
		jw_close(w, '}');
	}
	jw_close(w, ']');
	jw_key(w, "ketQua");
	jw_open(w, '[');
	for (unsigned i = 0; i < m->n_results; i++)
		jw_str(w, m->results[i]);
	jw_close(w, ']');
	jw_kstr(w, "trangThai", "cong_bo");
	jw_close(w, '}');
}

/* The clean rendering of m as a JSON text (caller frees). */
static char *clean_text(const struct model *m, size_t *len)
{
	struct jw w = {0};

	write_clean(&w, m);
	return jw_steal(&w, len);
}

/* The clean rendering of m as a tree (new reference). */
static json_t *clean_json(const struct model *m)
{
	size_t len;
	char *text = clean_text(m, &len);
	json_t *j = json_loadb(text, len, 0, NULL);

	free(text);
	return jcheck(j);
}

/* ---- the national rendering, spec §1 ---------------------------------- */

/*
 * A name as the national data spells it: from the bits of one draw d,
 * sometimes decomposed (NFD), sometimes with spaces around.
 */
static void jw_messy(struct jw *w, const char *s, uint64_t d, unsigned nfd_pct, unsigned space_pct)
{
	unsigned sp = (d >> 8) % 100 < space_pct ? 1 + (unsigned)((d >> 16) % 3) : 0;

	jw_sep(w);
	sim_buf_adds(&w->b, sp == 1 ? "\" " : sp == 3 ? "\"  " : "\"");
	if (d % 100 < nfd_pct) {
		struct sim_buf t = {0};

		add_nfd(&t, s);
		add_escaped(&w->b, t.data, t.len);
		sim_buf_free(&t);
	} else {
		add_escaped(&w->b, s, strlen(s));
	}
	sim_buf_adds(&w->b, sp == 2 ? " \"" : sp == 3 ? "  \"" : "\"");
}

/* "1.200.000" */
static void dotted(char *buf, size_t len, uint64_t v)
{
	char digits[24];
	size_t n = (size_t)snprintf(digits, sizeof(digits), "%llu", (unsigned long long)v);
	size_t o = 0;

	for (size_t i = 0; i < n && o + 2 < len; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			buf[o++] = '.';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
}

/* SOTIEN in one of the spellings of spec §1, chosen by d. */
static void jw_money(struct jw *w, uint64_t amount, uint64_t d)
{
	static const char *const zero[] = {"Không", "Miễn phí", "0"};
	static const char *const suffix[] = {"", " đồng", " đồng/hồ sơ", " Đồng"};
	char num[32], text[64];
	unsigned v = (unsigned)((d >> 24) % 5);

	if (amount == 0) {
		jw_str(w, zero[v % 3]);
	} else if (v == 4) {
		jw_int(w, (int64_t)amount);
	} else {
		dotted(num, sizeof(num), amount);
		snprintf(text, sizeof(text), "%s%s", num, suffix[v]);
		jw_str(w, text);
	}
}

/* THOIGIANGIAIQUYET: "15", "03", "0,5", or a number, chosen by d. */
static void jw_time_text(struct jw *w, unsigned value_x2, uint64_t d)
{
	char text[32];
	unsigned v = (unsigned)(d % 100);

	if (value_x2 % 2 != 0) {
		if (v < 60) {
			snprintf(text, sizeof(text), "%u,5", value_x2 / 2);
			jw_str(w, text);
		} else {
			jw_time_value(w, value_x2);
		}
		return;
	}
	if (v < 40) {
		jw_int(w, value_x2 / 2);
		return;
	}
	snprintf(text, sizeof(text), v < 60 && value_x2 / 2 < 10 ? "%02u" : "%u", value_x2 / 2);
	jw_str(w, text);
}

/* An integer, or sometimes the same integer as text. */
static void jw_int_or_text(struct jw *w, unsigned v, bool as_text)
{
	char text[16];

	if (!as_text) {
		jw_int(w, v);
		return;
	}
	snprintf(text, sizeof(text), "%u", v);
	jw_str(w, text);
}

static const char *const step_texts[2][4] = {
	{"Bước 1: Tổ chức, cá nhân chuẩn bị hồ sơ đầy đủ theo quy định.",
	 "Bước 2: Nộp hồ sơ tại Trung tâm Phục vụ hành chính công tỉnh hoặc qua Cổng Dịch vụ "
	 "công quốc gia.",
	 "Bước 3: Cơ quan có thẩm quyền thẩm định hồ sơ và giải quyết theo quy định.",
	 "Bước 4: Nhận kết quả tại nơi nộp hồ sơ hoặc qua dịch vụ bưu chính công ích."},
	{"Bước 1: Cá nhân, tổ chức chuẩn bị hồ sơ theo quy định.",
	 "Bước 2: Nộp hồ sơ tại Bộ phận Một cửa Ủy ban nhân dân cấp xã hoặc trực tuyến.",
	 "Bước 3: Công chức tiếp nhận kiểm tra hồ sơ, trình Chủ tịch Ủy ban nhân dân cấp xã.",
	 "Bước 4: Trả kết quả cho người yêu cầu."},
};

static const char *const level_offices[4] = {
	"Bộ, cơ quan ngang bộ",
	NULL, /* the department's name */
	"Ủy ban nhân dân cấp huyện",
	"Ủy ban nhân dân cấp xã",
};

/* The THOIGIAN array, written once and repeated in every channel (fees identical). */
static void write_time_blocks(struct jw *w, const struct model *m, const struct proc *p,
			      const uint64_t *dfee, uint64_t dtime, uint64_t dunit)
{
	unsigned n_units = 0;

	while (n_units < 3 && units[m->unit].text[n_units] != NULL)
		n_units++;
	jw_open(w, '[');
	for (unsigned b = 0; b < (m->value2_x2 ? 2u : 1u); b++) {
		jw_open(w, '{');
		jw_key(w, "THOIGIANGIAIQUYET");
		jw_time_text(w, b == 0 ? m->value_x2 : m->value2_x2, dtime);
		jw_kstr(w, "DONVITINH", units[m->unit].text[dunit % n_units]);
		jw_kstr(w, "MOTA",
			b == 0 ? "Kể từ ngày nhận đủ hồ sơ hợp lệ"
			       : "Trường hợp phải xác minh, thẩm tra thêm");
		jw_key(w, "PHILEPHI");
		jw_open(w, '[');
		for (unsigned i = 0; i < m->n_fees; i++) {
			char ma[16];

			snprintf(ma, sizeof(ma), "PL%06u", (unsigned)m->fees[i].code);
			jw_open(w, '{');
			jw_kstr(w, "MAPHILEPHI", ma);
			jw_key(w, "SOTIEN");
			if (p->malformed == MAL_NO_NAME && i == 0)
				jw_str(w, "abc");
			else
				jw_money(w, m->fees[i].amount, dfee[i]);
			jw_kstr(w, "DONVI", (dfee[i] >> 40) % 2 ? "VNĐ" : "Đồng");
			jw_key(w, "MOTA");
			jw_messy(w, m->fees[i].desc, dfee[i] >> 44, 8, 5);
			jw_kstr(w, "URL", "");
			jw_close(w, '}');
		}
		jw_close(w, ']');
		jw_close(w, '}');
	}
	jw_close(w, ']');
}

/*
 * The national record of p (model m) as LayThuTuc's result[0]. The
 * spellings come from p's own stream, drawn in a fixed number per item so
 * that a change of content keeps every other spelling.
 */
static void write_national(struct jw *w, const struct model *m, const struct proc *p)
{
	struct sim_rng rng;
	uint64_t dname, dtime, dunit, dfee[MAX_FEES];
	struct jw blocks = {0};
	size_t blocks_len;
	char *blocks_text;
	char text[160];

	sim_rng_init(&rng, stream(ST_MESS, p->index));
	dname = sim_rng_next(&rng);
	dtime = sim_rng_next(&rng);
	dunit = sim_rng_next(&rng);
	for (unsigned i = 0; i < MAX_FEES; i++)
		dfee[i] = sim_rng_next(&rng);

	if (p->malformed == MAL_STRING) {
		snprintf(text, sizeof(text), "Dữ liệu thủ tục hành chính %s không hợp lệ", m->code);
		jw_str(w, text);
		return;
	}
	jw_open(w, '{');
	jw_kint(w, "ID", m->id);
	jw_kstr(w, "MATTHC", m->code);
	if (p->malformed != MAL_NO_NAME) {
		jw_key(w, "TENTTHC");
		jw_messy(w, m->name, dname, 10, 8);
	}
	jw_kint(w, "LOAITTHC", m->loai);
	jw_kint(w, "TRANGTHAI", p->withdrawn ? 0 : 1);
	jw_kstr(w, "MACOQUANCONGBO", agencies[AG_UBND_TINH].madonvi);
	jw_kint(w, "IDQUYETDINHCONGBO", m->decision);

	jw_key(w, "CAPTHUCHIEN");
	jw_open(w, '[');
	for (unsigned i = 0; i < m->n_levels; i++) {
		unsigned l = m->levels[i];
		const char *office = level_offices[l];

		if (office == NULL)
			office = agencies[fields[m->fields[0]].agency].name;
		jw_open(w, '{');
		jw_kint(w, "CAPTHUCHIEN", l);
		jw_kstr(w, "MOTACOQUANTHUCHIEN", office);
		jw_kstr(w, "DIACHITIEPNHAN",
			l == 3 || l == 2 ? "Bộ phận Một cửa Ủy ban nhân dân cấp xã"
					 : "Trung tâm Phục vụ hành chính công tỉnh Hưng Yên");
		jw_close(w, '}');
	}
	jw_close(w, ']');
	jw_key(w, "LINHVUCTHUCHIEN");
	jw_open(w, '[');
	for (unsigned i = 0; i < m->n_fields; i++) {
		jw_open(w, '{');
		jw_kstr(w, "MALINHVUC", fields[m->fields[i]].code);
		jw_kstr(w, "TENLINHVUC", fields[m->fields[i]].name);
		jw_close(w, '}');
	}
	jw_close(w, ']');
	jw_key(w, "COQUANTHUCHIEN");
	jw_open(w, '[');
	for (unsigned i = 0; i < m->n_agencies; i++) {
		jw_open(w, '{');
		jw_kstr(w, "MADONVI", agencies[m->agencies[i]].madonvi);
		jw_kstr(w, "TENDONVI", agencies[m->agencies[i]].name);
		jw_close(w, '}');
	}
	jw_close(w, ']');
	jw_key(w, "DOITUONGTHUCHIEN");
	jw_open(w, '[');
	for (unsigned i = 0; i < m->n_subjects; i++) {
		jw_open(w, '{');
		jw_kstr(w, "TENDOITUONG", m->subjects[i]);
		jw_close(w, '}');
	}
	jw_close(w, ']');
	jw_key(w, "TRINHTUTHUCHIEN");
	jw_open(w, '[');
	for (unsigned c = 0; c < m->n_cases; c++) {
		jw_open(w, '{');
		jw_kstr(w, "TRUONGHOP", m->cases[c].name);
		jw_key(w, "TRINHTU");
		jw_open(w, '[');
		for (unsigned s = 0; s < 4; s++) {
			jw_open(w, '{');
			jw_kstr(w, "TENTRINHTU", step_texts[m->commune][s]);
			jw_close(w, '}');
		}
		jw_close(w, ']');
		jw_close(w, '}');
	}
	jw_close(w, ']');

	write_time_blocks(&blocks, m, p, dfee, dtime, dunit);
	blocks_text = jw_steal(&blocks, &blocks_len);
	jw_key(w, "CACHTHUCTHUCHIEN");
	jw_open(w, '[');
	for (unsigned i = 0; i < m->n_channels; i++) {
		uint64_t dk = sim_rng_next(&rng);

		jw_open(w, '{');
		jw_key(w, "KENH");
		jw_int_or_text(w, m->channels[i], dk % 100 < 20);
		jw_key(w, "THOIGIAN");
		jw_sep(w);
		sim_buf_add(&w->b, blocks_text, blocks_len);
		jw_close(w, '}');
	}
	jw_close(w, ']');
	free(blocks_text);

	jw_key(w, "THANHPHANHOSO");
	jw_open(w, '[');
	for (unsigned c = 0; c < m->n_cases; c++) {
		uint64_t dc = sim_rng_next(&rng);

		jw_open(w, '{');
		jw_key(w, "TRUONGHOP");
		jw_messy(w, m->cases[c].name, dc, 8, 5);
		jw_key(w, "GIAYTO");
		jw_open(w, '[');
		for (unsigned d = 0; d < m->cases[c].n_docs; d++) {
			const struct mdoc *md = &m->cases[c].docs[d];
			uint64_t dd = sim_rng_next(&rng);
			char ma[16];

			snprintf(ma, sizeof(ma), "GT%06u", (unsigned)name_code(md->name));
			jw_open(w, '{');
			jw_kstr(w, "MAGIAYTO", ma);
			jw_key(w, "TENGIAYTO");
			jw_messy(w, md->name, dd, 8, 6);
			jw_kstr(w, "TENMAUDON", md->form);
			jw_kstr(w, "URL", "");
			jw_key(w, "SOBANCHINH");
			jw_int_or_text(w, md->orig, (dd >> 32) % 100 < 25);
			jw_key(w, "SOBANSAO");
			jw_int_or_text(w, md->copies, (dd >> 40) % 100 < 25);
			jw_close(w, '}');
		}
		jw_close(w, ']');
		jw_close(w, '}');
	}
	jw_close(w, ']');
	jw_key(w, "KETQUATHUCHIEN");
	jw_open(w, '[');
	for (unsigned i = 0; i < m->n_results; i++) {
		uint64_t dr = sim_rng_next(&rng);

		snprintf(text, sizeof(text), "KQ%06u", (unsigned)name_code(m->results[i]));
		jw_open(w, '{');
		jw_kstr(w, "MAKETQUA", text);
		jw_key(w, "TENKETQUA");
		jw_messy(w, m->results[i], dr, 8, 5);
		jw_close(w, '}');
	}
	jw_close(w, ']');
	jw_key(w, "CANCUPHAPLY");
	jw_open(w, '[');
	for (unsigned i = 0; i < m->n_laws; i++) {
		jw_open(w, '{');
		jw_kstr(w, "SOVANBAN", m->laws[i]->number);
		jw_kstr(w, "TENVANBAN", m->laws[i]->title);
		jw_close(w, '}');
	}
	jw_close(w, ']');
	jw_kstr(w, "YEUCAU", m->requirement);
	jw_kstr(w, "MOTADOITUONGTHUCHIEN", m->subjects[0]);
	jw_close(w, '}');
}

/* The first draw of p's spelling stream: the spelling of its name. */
static uint64_t name_draw(const struct proc *p)
{
	struct sim_rng rng;

	sim_rng_init(&rng, stream(ST_MESS, p->index));
	return sim_rng_next(&rng);
}

/*
 * (Re)renders p's national record and its list entry from its model; the
 * model is left in m for the caller.
 */
static void proc_render(struct proc *p, struct model *m)
{
	struct jw w = {0};

	model_gen(m, p);
	write_national(&w, m, p);
	free(p->text);
	p->text = jw_steal(&w, &p->text_len);
	/* The list spells the name as the record does (even a broken record's). */
	jw_open(&w, '{');
	jw_kstr(&w, "MATTHC", p->code);
	jw_key(&w, "TENTTHC");
	jw_messy(&w, m->name, name_draw(p), 10, 8);
	jw_close(&w, '}');
	free(p->entry);
	p->entry = jw_steal(&w, &p->entry_len);
}

/* ---- the state --------------------------------------------------------- */

/* What differs between the clean rendering and the stored record. */
enum {
	D_FEE = 1 << 0,
	D_TIME = 1 << 1,
	D_CHANNEL = 1 << 2,
	D_DOCS = 1 << 3,
	D_AGENCY = 1 << 4,
	D_OTHER = 1 << 5, /* differs, but in no compared aspect */
};

/* A provincial record, as stored. */
struct prov {
	char *text; /* JSON object, owned */
	size_t len;
	int diff;    /* D_* against the national clean rendering; -1 until computed */
	char code[]; /* owned with the struct */
};

static struct {
	pthread_mutex_t lock;
	struct proc **procs; /* sorted by code, owned */
	size_t n_procs, cap_procs;
	struct sim_map *procs_by_code; /* code -> struct proc, borrowed */
	uint64_t next_index;	       /* content index of the next "add" */
	struct prov **provs;	       /* sorted by code, owned */
	size_t n_provs, cap_provs;
	struct sim_map *provs_by_code; /* code -> struct prov, borrowed */
	char *list;		       /* LayDanhSachTTHC result, owned; NULL: rebuild */
	size_t list_len;
	bool empty_list;
	struct sim_map *puts; /* code -> count (as a pointer-sized integer) */
	uint64_t puts_total;
} C = {.lock = PTHREAD_MUTEX_INITIALIZER};

bool sim_catalog_code_valid(const char *code)
{
	size_t n = 0;

	for (; code[n] != '\0'; n++) {
		char c = code[n];

		if (n + 1 >= SIM_CATALOG_CODE_MAX ||
		    !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      c == '.' || c == '-' || c == '_'))
			return false;
	}
	return n > 0;
}

static int proc_cmp(const void *a, const void *b)
{
	const struct proc *x = *(const struct proc *const *)a;
	const struct proc *y = *(const struct proc *const *)b;

	return strcmp(x->code, y->code);
}

static int prov_cmp(const void *a, const void *b)
{
	const struct prov *x = *(const struct prov *const *)a;
	const struct prov *y = *(const struct prov *const *)b;

	return strcmp(x->code, y->code);
}

/* The code of national index i: "1.001193.000.00.00.H31"-like, unique per index. */
static void national_code(uint64_t i, char *buf, size_t len)
{
	uint64_t r = sim_rand_at(stream(ST_CODE, 0), i);

	snprintf(buf, len, "%u.%06llu.000.00.00.H31", (r >> 32) % 10 < 8 ? 1u : 2u,
		 (unsigned long long)(1000u + 5u * i + r % 5u));
}

static struct proc *proc_new(uint64_t index)
{
	struct proc *p = sim_xcalloc(1, sizeof(*p));

	p->index = index;
	national_code(index, p->code, sizeof(p->code));
	return p;
}

static void proc_free(struct proc *p)
{
	if (p == NULL)
		return;
	free(p->text);
	free(p->entry);
	free(p);
}

static void procs_append(struct proc *p)
{
	if (C.n_procs == C.cap_procs) {
		C.cap_procs = C.cap_procs ? C.cap_procs * 2 : 1024;
		C.procs = sim_xrealloc(C.procs, C.cap_procs * sizeof(*C.procs));
	}
	C.procs[C.n_procs++] = p;
	sim_map_put(C.procs_by_code, p->code, p);
}

static struct prov *prov_new(const char *code, char *text, size_t len, int diff)
{
	size_t n = strlen(code);
	struct prov *v = sim_xmalloc(sizeof(*v) + n + 1);

	memcpy(v->code, code, n + 1);
	v->text = text;
	v->len = len;
	v->diff = diff;
	return v;
}

static void prov_free(struct prov *v)
{
	if (v == NULL)
		return;
	free(v->text);
	free(v);
}

/* Position of code in C.provs, or where it belongs; *found tells which. */
static size_t prov_pos(const char *code, bool *found)
{
	size_t lo = 0, hi = C.n_provs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(C.provs[mid]->code, code);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static void provs_reserve(void)
{
	if (C.n_provs == C.cap_provs) {
		C.cap_provs = C.cap_provs ? C.cap_provs * 2 : 1024;
		C.provs = sim_xrealloc(C.provs, C.cap_provs * sizeof(*C.provs));
	}
}

/* Stores text (stolen) as code's record, in code order. Lock held. */
static int prov_store(const char *code, char *text, size_t len)
{
	bool found;
	size_t i = prov_pos(code, &found);
	struct prov *v;

	if (found) {
		v = C.provs[i];
		free(v->text);
		v->text = text;
		v->len = len;
		v->diff = -1;
		return 0;
	}
	if (C.n_provs >= MAX_PROV_RECORDS) {
		free(text);
		return -ENOSPC;
	}
	provs_reserve();
	v = prov_new(code, text, len, -1);
	memmove(&C.provs[i + 1], &C.provs[i], (C.n_provs - i) * sizeof(*C.provs));
	C.provs[i] = v;
	C.n_provs++;
	sim_map_put(C.provs_by_code, v->code, v);
	return 0;
}

/* The cached compare result of code's record is stale. Lock held. */
static void prov_invalidate(const char *code)
{
	struct prov *v = sim_map_get(C.provs_by_code, code);

	if (v != NULL)
		v->diff = -1;
}

/* ---- seeded differences ----------------------------------------------- */

enum mark {
	MK_NONE,
	MK_MISSING,
	MK_FEE,
	MK_TIME,
	MK_CHANNEL,
	MK_DOCS,
	MK_AGENCY,
	MK_TAKEN, /* carries a national-side difference */
};

/* The count of a seeded difference for --procedures (spec §5). */
static size_t seeded(unsigned base)
{
	uint64_t n = sim_config.procedures;
	uint64_t c = (base * n + BASE_PROCEDURES / 2) / BASE_PROCEDURES;

	if (c == 0 && n >= 100)
		c = 1;
	return (size_t)c;
}

/* Changes the clean record rec the way mark says (a provincial copy that drifted). */
static void drift(json_t *rec, enum mark mark, struct sim_rng *rng)
{
	json_t *a, *o;

	switch (mark) {
	case MK_FEE:
		a = json_object_get(rec, "phiLePhi");
		o = json_array_get(a, below(rng, (unsigned)json_array_size(a)));
		put(o, "soTien",
		    jint(json_integer_value(json_object_get(o, "soTien")) +
			 10000 * (1 + (int64_t)below(rng, 5))));
		break;
	case MK_TIME: {
		json_t *g;

		o = json_object_get(rec, "thoiHanGiaiQuyet");
		g = json_object_get(o, "giaTri");
		put(o, "giaTri", jint(json_is_integer(g) ? json_integer_value(g) + 5 : 1));
		break;
	}
	case MK_CHANNEL: {
		unsigned mask = 0;
		size_t i;

		a = json_object_get(rec, "kenhNop");
		json_array_foreach (a, i, o)
			mask |= 1u << json_integer_value(o);
		if (mask == 0xe) {
			mask &= ~(1u << 3);
		} else {
			for (unsigned k = 1; k <= 3; k++) {
				if (!(mask & (1u << k))) {
					mask |= 1u << k;
					break;
				}
			}
		}
		json_array_clear(a);
		for (unsigned k = 1; k <= 3; k++) {
			if (mask & (1u << k))
				push(a, jint(k));
		}
		break;
	}
	case MK_DOCS:
		a = json_object_get(rec, "thanhPhanHoSo");
		o = json_array_get(a, below(rng, (unsigned)json_array_size(a)));
		a = json_object_get(o, "giayTo");
		json_array_remove(a, below(rng, (unsigned)json_array_size(a)));
		break;
	case MK_AGENCY: {
		unsigned ag;
		bool dup;

		a = json_object_get(rec, "coQuanThucHien");
		do {
			size_t i;

			ag = below(rng, AG__COUNT);
			dup = ag == AG_SKHDT;
			json_array_foreach (a, i, o)
				dup = dup || strcmp(json_string_value(o), agencies[ag].code) == 0;
		} while (dup);
		json_array_set_new(a, 0, jstr(agencies[ag].code));
		break;
	}
	case MK_NONE:
	case MK_MISSING:
	case MK_TAKEN: break;
	}
}

/* Does the model of index i run through Sở Tài chính (to retire it as SKHĐT)? */
static bool by_finance(struct proc *p)
{
	struct model m;

	model_gen(&m, p);
	return has(m.agencies, m.n_agencies, AG_STC);
}

/*
 * Builds the initial state for --seed and --procedures: every national
 * procedure, the provincial copy of each, and the seeded differences of
 * spec §5 on procedures drawn without replacement. Lock held (or before
 * the server starts).
 */
static void catalog_build(void)
{
	size_t n = sim_config.procedures;
	enum mark *mark = sim_xcalloc(n ? n : 1, sizeof(*mark));
	uint32_t *perm = sim_xmalloc((n ? n : 1) * sizeof(*perm));
	struct sim_rng rng;
	size_t next = 0;
	static const struct {
		unsigned base;
		enum mark mark;
	} provincial_marks[] = {
		{10, MK_MISSING}, {6, MK_FEE},	{5, MK_TIME},
		{3, MK_CHANNEL},  {4, MK_DOCS}, {3, MK_AGENCY},
	};

	C.procs_by_code = sim_map_new();
	C.provs_by_code = sim_map_new();
	C.puts = sim_map_new();
	for (size_t i = 0; i < n; i++)
		procs_append(proc_new(i));
	C.next_index = n;

	sim_rng_init(&rng, stream(ST_PICK, 0));
	for (size_t i = 0; i < n; i++)
		perm[i] = (uint32_t)i;
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)sim_rng_below(&rng, i);
		uint32_t t = perm[i - 1];

		perm[i - 1] = perm[j];
		perm[j] = t;
	}
	for (size_t k = 0; k < SIM_ARRAY_SIZE(provincial_marks); k++) {
		for (size_t c = seeded(provincial_marks[k].base); c > 0 && next < n; c--)
			mark[perm[next++]] = provincial_marks[k].mark;
	}
	for (size_t c = seeded(4); c > 0 && next < n; c--) {
		C.procs[perm[next]]->withdrawn = true;
		mark[perm[next++]] = MK_TAKEN;
	}
	/* Retired-agency procedures are drawn among those of Sở Tài chính when possible. */
	for (size_t c = seeded(2); c > 0 && next < n; c--) {
		size_t j = next;

		while (j < n && !by_finance(C.procs[perm[j]]))
			j++;
		if (j < n) {
			uint32_t t = perm[j];

			perm[j] = perm[next];
			perm[next] = t;
		}
		C.procs[perm[next]]->unmappable = true;
		mark[perm[next++]] = MK_TAKEN;
	}
	for (size_t c = 0; c < seeded(2) && next < n; c++) {
		C.procs[perm[next]]->malformed = c % 2 == 0 ? MAL_NO_NAME : MAL_STRING;
		mark[perm[next++]] = MK_TAKEN;
	}

	for (size_t i = 0; i < n; i++) {
		struct proc *p = C.procs[i];
		struct model m;
		json_t *rec;
		char *text;
		size_t len;

		proc_render(p, &m);
		if (mark[i] == MK_MISSING)
			continue;
		if (mark[i] != MK_NONE && mark[i] != MK_TAKEN) {
			rec = clean_json(&m);
			sim_rng_init(&rng, stream(ST_PROV, p->index));
			drift(rec, mark[i], &rng);
			text = dump(rec, &len);
			json_decref(rec);
		} else {
			text = clean_text(&m, &len);
		}
		provs_reserve();
		C.provs[C.n_provs] = prov_new(p->code, text, len,
					      mark[i] == MK_NONE || mark[i] == MK_TAKEN ? 0 : -1);
		sim_map_put(C.provs_by_code, p->code, C.provs[C.n_provs]);
		C.n_provs++;
	}
	/* Provincial-only codes, from a range the national side never uses. */
	for (size_t j = 0; j < seeded(3); j++) {
		struct proc tmp;
		struct model m;
		char *text;
		size_t len;
		uint64_t r = sim_rand_at(stream(ST_UNKNOWN, 0), j);

		memset(&tmp, 0, sizeof(tmp));
		tmp.index = (UINT64_C(1) << 39) + j;
		snprintf(tmp.code, sizeof(tmp.code), "1.%06llu.000.00.00.H31",
			 (unsigned long long)(UNKNOWN_CODE_FIRST + 7u * j + r % 7u));
		model_gen(&m, &tmp);
		text = clean_text(&m, &len);
		provs_reserve();
		C.provs[C.n_provs] = prov_new(tmp.code, text, len, 0);
		sim_map_put(C.provs_by_code, tmp.code, C.provs[C.n_provs]);
		C.n_provs++;
	}
	if (C.n_procs) /* qsort with a NULL base is undefined, even for 0 items */
		qsort(C.procs, C.n_procs, sizeof(*C.procs), proc_cmp);
	if (C.n_provs)
		qsort(C.provs, C.n_provs, sizeof(*C.provs), prov_cmp);
	free(perm);
	free(mark);
}

/* Frees the whole state. Lock held (or after the server stopped). */
static void catalog_clear(void)
{
	for (size_t i = 0; i < C.n_procs; i++)
		proc_free(C.procs[i]);
	for (size_t i = 0; i < C.n_provs; i++)
		prov_free(C.provs[i]);
	free(C.procs);
	free(C.provs);
	free(C.list);
	sim_map_free(C.procs_by_code, NULL);
	sim_map_free(C.provs_by_code, NULL);
	sim_map_free(C.puts, NULL);
	C.procs = NULL;
	C.provs = NULL;
	C.list = NULL;
	C.procs_by_code = C.provs_by_code = C.puts = NULL;
	C.n_procs = C.cap_procs = C.n_provs = C.cap_provs = 0;
	C.list_len = 0;
	C.puts_total = 0;
	C.empty_list = false;
}

/* ---- comparing the two sides ---------------------------------------- */

static bool same(const json_t *a, const json_t *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && json_equal(a, b));
}

/* [rec[arr][].key] (json null for a missing key); with sub, [rec[arr][].sub[].key]. */
static json_t *pluck(const json_t *rec, const char *arr, const char *sub, const char *key)
{
	json_t *out = jcheck(json_array());
	const json_t *a = json_object_get(rec, arr);

	for (size_t i = 0; i < json_array_size(a); i++) {
		const json_t *e = json_array_get(a, i);

		if (sub == NULL) {
			json_t *v = json_object_get(e, key);

			push(out, v ? json_incref(v) : json_null());
			continue;
		}
		for (size_t k = 0; k < json_array_size(json_object_get(e, sub)); k++) {
			json_t *v =
				json_object_get(json_array_get(json_object_get(e, sub), k), key);

			push(out, v ? json_incref(v) : json_null());
		}
	}
	return out;
}

static bool same_plucked(const json_t *a, const json_t *b, const char *arr, const char *sub,
			 const char *key)
{
	json_t *x = pluck(a, arr, sub, key), *y = pluck(b, arr, sub, key);
	bool r = json_equal(x, y);

	json_decref(x);
	json_decref(y);
	return r;
}

/* The aspects of spec §3's "compare" section in which got differs from want. */
static int compare(const json_t *want, const json_t *got)
{
	int d = 0;

	if (!json_is_object(got))
		return D_OTHER;
	if (!same_plucked(want, got, "phiLePhi", NULL, "soTien"))
		d |= D_FEE;
	if (!same(json_object_get(want, "thoiHanGiaiQuyet"),
		  json_object_get(got, "thoiHanGiaiQuyet")))
		d |= D_TIME;
	if (!same(json_object_get(want, "kenhNop"), json_object_get(got, "kenhNop")))
		d |= D_CHANNEL;
	if (!same_plucked(want, got, "thanhPhanHoSo", "giayTo", "ten"))
		d |= D_DOCS;
	if (!same(json_object_get(want, "coQuanThucHien"), json_object_get(got, "coQuanThucHien")))
		d |= D_AGENCY;
	if (d == 0 && !json_equal(want, got))
		d = D_OTHER;
	return d;
}

/* v's differences from p's clean rendering, computed once per change. Lock held. */
static int prov_diff(const struct proc *p, struct prov *v)
{
	struct model m;
	json_t *want, *got;

	if (v->diff >= 0)
		return v->diff;
	model_gen(&m, p);
	want = clean_json(&m);
	got = json_loadb(v->text, v->len, 0, NULL);
	v->diff = compare(want, got);
	json_decref(want);
	json_decref(got);
	return v->diff;
}

/* ---- the national side ------------------------------------------------- */

char *sim_catalog_list_result(void)
{
	char *out;

	pthread_mutex_lock(&C.lock);
	if (C.empty_list) {
		pthread_mutex_unlock(&C.lock);
		return sim_xstrdup("[]");
	}
	if (C.list == NULL) {
		struct sim_buf b = {0};
		bool first = true;

		sim_buf_add(&b, "[", 1);
		for (size_t i = 0; i < C.n_procs; i++) {
			if (C.procs[i]->withdrawn)
				continue;
			if (!first)
				sim_buf_add(&b, ",", 1);
			sim_buf_add(&b, C.procs[i]->entry, C.procs[i]->entry_len);
			first = false;
		}
		sim_buf_add(&b, "]", 1);
		C.list = sim_buf_steal(&b, &C.list_len);
	}
	out = sim_xmalloc(C.list_len + 1);
	memcpy(out, C.list, C.list_len + 1);
	pthread_mutex_unlock(&C.lock);
	return out;
}

char *sim_catalog_record_result(const char *code)
{
	const struct proc *p;
	char *out = NULL;

	pthread_mutex_lock(&C.lock);
	p = C.procs_by_code ? sim_map_get(C.procs_by_code, code) : NULL;
	if (p != NULL) {
		out = sim_xmalloc(p->text_len + 3);
		out[0] = '[';
		memcpy(out + 1, p->text, p->text_len);
		out[p->text_len + 1] = ']';
		out[p->text_len + 2] = '\0';
	}
	pthread_mutex_unlock(&C.lock);
	return out;
}

json_t *sim_catalog_agencies(void)
{
	json_t *a = jcheck(json_array());

	for (unsigned i = 0; i < AG__COUNT; i++)
		push(a, json_pack("{s:s, s:s, s:i}", "MADONVI", agencies[i].madonvi, "TENDONVI",
				  agencies[i].name, "CAPDONVI", (int)agencies[i].capdonvi));
	for (size_t i = 0; i < sim_n_communes; i++) {
		char id[16];

		snprintf(id, sizeof(id), "H31.%s", sim_communes[i].code);
		push(a, json_pack("{s:s, s:s, s:i}", "MADONVI", id, "TENDONVI",
				  sim_communes[i].name, "CAPDONVI", 3));
	}
	return a;
}

json_t *sim_catalog_fields(void)
{
	json_t *a = jcheck(json_array());

	for (unsigned i = 0; i < F__COUNT; i++)
		push(a, json_pack("{s:s, s:s, s:s}", "MALINHVUC", fields[i].code, "TENLINHVUC",
				  fields[i].name, "MANGANH", fields[i].sector_code));
	return a;
}

/* ---- the provincial side ----------------------------------------------- */

char *sim_catalog_prov_page(uint64_t page, unsigned size, size_t *len)
{
	struct sim_buf b = {0};
	uint64_t start = (page - 1) * (uint64_t)size;

	pthread_mutex_lock(&C.lock);
	sim_buf_adds(&b, "{\"data\":[");
	for (uint64_t i = start; i < C.n_provs && i < start + size; i++) {
		if (i > start)
			sim_buf_add(&b, ",", 1);
		sim_buf_add(&b, C.provs[i]->text, C.provs[i]->len);
	}
	sim_buf_addf(&b, "],\"page\":%llu,\"size\":%u,\"total\":%zu}", (unsigned long long)page,
		     size, C.n_provs);
	pthread_mutex_unlock(&C.lock);
	return sim_buf_steal(&b, len);
}

char *sim_catalog_prov_get(const char *code, size_t *len)
{
	const struct prov *v;
	char *out = NULL;

	pthread_mutex_lock(&C.lock);
	v = C.provs_by_code ? sim_map_get(C.provs_by_code, code) : NULL;
	if (v != NULL) {
		out = sim_xmalloc(v->len + 1);
		memcpy(out, v->text, v->len + 1);
		*len = v->len;
	}
	pthread_mutex_unlock(&C.lock);
	return out;
}

int sim_catalog_prov_put(const char *code, const json_t *record)
{
	size_t len;
	char *text = dump(record, &len); /* outside the lock: the record is the caller's */
	uintptr_t n;
	int r;

	pthread_mutex_lock(&C.lock);
	r = prov_store(code, text, len);
	if (r == 0) {
		n = (uintptr_t)sim_map_get(C.puts, code);
		sim_map_put(C.puts, code, (void *)(n + 1));
		C.puts_total++;
	}
	pthread_mutex_unlock(&C.lock);
	return r;
}

int sim_catalog_prov_edit(const char *code, const json_t *set)
{
	struct prov *v;
	json_t *rec;
	int r = -ENOENT;

	pthread_mutex_lock(&C.lock);
	v = sim_map_get(C.provs_by_code, code);
	if (v != NULL) {
		rec = json_loadb(v->text, v->len, 0, NULL);
		if (!json_is_object(rec) || json_object_update(rec, (json_t *)set) != 0)
			sim_die("catalog: cannot merge into a stored record");
		free(v->text);
		v->text = dump(rec, &v->len);
		v->diff = -1;
		json_decref(rec);
		r = 0;
	}
	pthread_mutex_unlock(&C.lock);
	return r;
}

int sim_catalog_prov_delete(const char *code)
{
	bool found;
	size_t i;
	int r = -ENOENT;

	pthread_mutex_lock(&C.lock);
	i = prov_pos(code, &found);
	if (found) {
		sim_map_remove(C.provs_by_code, code);
		prov_free(C.provs[i]);
		memmove(&C.provs[i], &C.provs[i + 1], (C.n_provs - i - 1) * sizeof(*C.provs));
		C.n_provs--;
		r = 0;
	}
	pthread_mutex_unlock(&C.lock);
	return r;
}

static int add_put(const char *key, void *value, void *ud)
{
	put(ud, key, jint((int64_t)(uintptr_t)value));
	return 0;
}

json_t *sim_catalog_prov_puts(void)
{
	json_t *by_code = jcheck(json_object());
	json_t *o;

	pthread_mutex_lock(&C.lock);
	sim_map_each(C.puts, add_put, by_code);
	o = json_pack("{s:I, s:o}", "total", (json_int_t)C.puts_total, "by_code", by_code);
	pthread_mutex_unlock(&C.lock);
	return jcheck(o);
}

/* ---- /_sim/catalog ------------------------------------------------------ */

static void get_catalog(struct sim_request *rq, struct sim_reply *rp)
{
	size_t withdrawn = 0;
	json_t *o;

	(void)rq;
	pthread_mutex_lock(&C.lock);
	for (size_t i = 0; i < C.n_procs; i++)
		withdrawn += C.procs[i]->withdrawn;
	o = json_pack("{s:I, s:I, s:I, s:I, s:b}", "procedures", (json_int_t)C.n_procs, "published",
		      (json_int_t)(C.n_procs - withdrawn), "withdrawn", (json_int_t)withdrawn,
		      "provincial", (json_int_t)C.n_provs, "empty_list", C.empty_list);
	pthread_mutex_unlock(&C.lock);
	sim_reply_json(rp, MHD_HTTP_OK, jcheck(o));
}

static void get_differences(struct sim_request *rq, struct sim_reply *rp)
{
	static const char *const names[] = {"missing",	  "unknown",   "withdrawn", "fee",
					    "time_limit", "channel",   "documents", "agency",
					    "unmappable", "malformed", "other"};
	enum {
		L_MISSING,
		L_UNKNOWN,
		L_WITHDRAWN,
		L_FEE,
		L_TIME,
		L_CHANNEL,
		L_DOCS,
		L_AGENCY,
		L_UNMAPPABLE,
		L_MALFORMED,
		L_OTHER,
		L__COUNT,
	};
	json_t *lists[L__COUNT];
	json_t *o = jcheck(json_object());

	(void)rq;
	for (unsigned k = 0; k < L__COUNT; k++)
		lists[k] = jcheck(json_array());
	pthread_mutex_lock(&C.lock);
	for (size_t i = 0; i < C.n_procs; i++) {
		struct proc *p = C.procs[i];
		struct prov *v = sim_map_get(C.provs_by_code, p->code);
		int d;

		if (p->malformed != MAL_NONE) {
			push(lists[L_MALFORMED], jstr(p->code));
		} else if (p->unmappable) {
			push(lists[L_UNMAPPABLE], jstr(p->code));
		} else if (p->withdrawn) {
			if (v != NULL)
				push(lists[L_WITHDRAWN], jstr(p->code));
		} else if (v == NULL) {
			push(lists[L_MISSING], jstr(p->code));
		} else if ((d = prov_diff(p, v)) != 0) {
			static const struct {
				int bit;
				unsigned list;
			} aspects[] = {{D_FEE, L_FEE},	       {D_TIME, L_TIME},
				       {D_CHANNEL, L_CHANNEL}, {D_DOCS, L_DOCS},
				       {D_AGENCY, L_AGENCY},   {D_OTHER, L_OTHER}};

			for (size_t k = 0; k < SIM_ARRAY_SIZE(aspects); k++) {
				if (d & aspects[k].bit)
					push(lists[aspects[k].list], jstr(p->code));
			}
		}
	}
	for (size_t i = 0; i < C.n_provs; i++) {
		if (sim_map_get(C.procs_by_code, C.provs[i]->code) == NULL)
			push(lists[L_UNKNOWN], jstr(C.provs[i]->code));
	}
	pthread_mutex_unlock(&C.lock);
	for (unsigned k = 0; k < L__COUNT; k++)
		put(o, names[k], lists[k]);
	sim_reply_json(rp, MHD_HTTP_OK, o);
}

/* GET /_sim/catalog/expected?code=C: what a correct mapping makes of C today. */
static void get_expected(struct sim_request *rq, struct sim_reply *rp)
{
	const char *code = sim_request_query(rq, "code");
	struct proc *p;
	struct model m;
	char *text = NULL;
	size_t len = 0;

	pthread_mutex_lock(&C.lock);
	p = code ? sim_map_get(C.procs_by_code, code) : NULL;
	if (p != NULL) {
		model_gen(&m, p);
		text = clean_text(&m, &len);
	}
	pthread_mutex_unlock(&C.lock);
	if (text == NULL) {
		sim_reply_error(rp, MHD_HTTP_NOT_FOUND, "not_found",
				"Không có thủ tục %.80s trên hệ thống quốc gia", code ? code : "");
		return;
	}
	sim_reply_buffer(rp, MHD_HTTP_OK, "application/json; charset=utf-8", text, len);
}

/* The "add" op: count new published procedures. Lock held. */
static json_t *op_add(json_int_t count)
{
	json_t *codes = jcheck(json_array());

	for (json_int_t k = 0; k < count; k++) {
		struct proc *p = proc_new(C.next_index++);
		struct model m;

		proc_render(p, &m);
		procs_append(p);
		push(codes, jstr(p->code));
	}
	qsort(C.procs, C.n_procs, sizeof(*C.procs), proc_cmp);
	return codes;
}

static void post_catalog(struct sim_request *rq, struct sim_reply *rp)
{
	json_t *req = sim_request_json_object(rq, rp);
	const char *op, *code;
	struct proc *p = NULL;
	json_t *answer;

	if (req == NULL)
		return;
	op = json_string_value(json_object_get(req, "op"));
	code = json_string_value(json_object_get(req, "code"));
	if (op == NULL) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
				"\"op\" must be change, add, withdraw, reinstate, malform, "
				"empty_list or reseed");
		return;
	}
	if (strcmp(op, "add") == 0) {
		json_t *jc = json_object_get(req, "count");
		json_int_t n = json_integer_value(jc);

		if (!json_is_integer(jc) || n < 1 || n > MAX_ADD_PER_CALL) {
			sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
					"\"count\" must be an integer from 1 to %d",
					MAX_ADD_PER_CALL);
			return;
		}
		pthread_mutex_lock(&C.lock);
		if (C.n_procs + (size_t)n > MAX_TOTAL_PROCS) {
			pthread_mutex_unlock(&C.lock);
			sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
					"at most %d national procedures", MAX_TOTAL_PROCS);
			return;
		}
		answer = json_pack("{s:b, s:o}", "ok", 1, "codes", op_add(n));
		free(C.list);
		C.list = NULL;
		pthread_mutex_unlock(&C.lock);
		sim_log(SIM_LOG_INFO, "catalog: %lld procedures added", (long long)n);
		sim_reply_json(rp, MHD_HTTP_OK, jcheck(answer));
		return;
	}
	if (strcmp(op, "empty_list") == 0) {
		json_t *on = json_object_get(req, "on");

		if (!json_is_boolean(on)) {
			sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request",
					"\"on\" must be true or false");
			return;
		}
		pthread_mutex_lock(&C.lock);
		C.empty_list = json_is_true(on);
		pthread_mutex_unlock(&C.lock);
		sim_reply_json(
			rp, MHD_HTTP_OK,
			jcheck(json_pack("{s:b, s:b}", "ok", 1, "empty_list", json_is_true(on))));
		return;
	}
	if (strcmp(op, "reseed") == 0) {
		pthread_mutex_lock(&C.lock);
		catalog_clear();
		catalog_build();
		pthread_mutex_unlock(&C.lock);
		sim_log(SIM_LOG_INFO, "catalog: reseeded");
		sim_reply_json(rp, MHD_HTTP_OK, jcheck(json_pack("{s:b}", "ok", 1)));
		return;
	}
	if (strcmp(op, "change") != 0 && strcmp(op, "withdraw") != 0 &&
	    strcmp(op, "reinstate") != 0 && strcmp(op, "malform") != 0) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request", "unknown op \"%.40s\"",
				op);
		return;
	}
	if (code == NULL) {
		sim_reply_error(rp, MHD_HTTP_BAD_REQUEST, "bad_request", "\"code\" is required");
		return;
	}
	pthread_mutex_lock(&C.lock);
	p = sim_map_get(C.procs_by_code, code);
	if (p != NULL) {
		struct model m;

		if (strcmp(op, "change") == 0) {
			p->changes++;
			prov_invalidate(code);
		} else if (strcmp(op, "withdraw") == 0) {
			p->withdrawn = true;
		} else if (strcmp(op, "reinstate") == 0) {
			p->withdrawn = false;
		} else {
			const char *kind = json_string_value(json_object_get(req, "kind"));

			p->malformed =
				kind && strcmp(kind, "string") == 0 ? MAL_STRING : MAL_NO_NAME;
		}
		proc_render(p, &m);
		free(C.list);
		C.list = NULL;
	}
	pthread_mutex_unlock(&C.lock);
	if (p == NULL) {
		sim_reply_error(rp, MHD_HTTP_NOT_FOUND, "not_found",
				"Không có thủ tục %.80s trên hệ thống quốc gia", code);
		return;
	}
	sim_log(SIM_LOG_INFO, "catalog: %s %s", op, code);
	sim_reply_json(rp, MHD_HTTP_OK, jcheck(json_pack("{s:b, s:s}", "ok", 1, "code", code)));
}

/* ---- module -------------------------------------------------------------- */

static int catalog_init(void)
{
	uint64_t t0 = sim_now_us();

	pthread_mutex_lock(&C.lock);
	catalog_build();
	pthread_mutex_unlock(&C.lock);
	sim_log(SIM_LOG_INFO, "catalog: %zu procedures, %zu provincial records (%.0f ms)",
		C.n_procs, C.n_provs, (double)(sim_now_us() - t0) / 1000.0);
	sim_route_add(
		&(struct sim_route){"GET", "/_sim/catalog", SIM_ROUTE_CONTROL, get_catalog, NULL});
	sim_route_add(&(struct sim_route){"POST", "/_sim/catalog",
					  SIM_ROUTE_CONTROL | SIM_ROUTE_JSON, post_catalog, NULL});
	sim_route_add(&(struct sim_route){"GET", "/_sim/catalog/differences", SIM_ROUTE_CONTROL,
					  get_differences, NULL});
	sim_route_add(&(struct sim_route){"GET", "/_sim/catalog/expected", SIM_ROUTE_CONTROL,
					  get_expected, NULL});
	return 0;
}

static void catalog_fini(void)
{
	pthread_mutex_lock(&C.lock);
	catalog_clear();
	pthread_mutex_unlock(&C.lock);
}

const struct sim_module sim_catalog_module = {"catalog", catalog_init, catalog_fini};
