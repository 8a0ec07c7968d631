/*
 * sim_dossier_text.c: the Vietnamese vocabulary of the simulated dossiers:
 * people's names (family names with their real frequencies, middle and
 * given names by gender), organisations that apply, addresses in the
 * communes of Hưng Yên (old and new), the posts of the officials who record
 * processing steps, and the texts of those steps.
 *
 * Only tables and small pure functions of a random generator live here;
 * sim_dossier.c decides who applies for what, where and when.
 */
#include <string.h>

#include "sim_dossier.h"

/* ---- people ------------------------------------------------------------ */

/* Family names with their share per 1000 (surveys of Vietnamese surnames). */
static const struct {
	const char *name;
	unsigned weight;
} family_names[] = {
	{"Nguyễn", 380}, {"Trần", 110}, {"Lê", 95},  {"Phạm", 70},  {"Hoàng", 41}, {"Vũ", 39},
	{"Phan", 25},	 {"Đặng", 21},	{"Bùi", 20}, {"Đỗ", 18},    {"Ngô", 13},   {"Dương", 10},
	{"Đào", 9},	 {"Đinh", 8},	{"Hồ", 7},   {"Lương", 6},  {"Mai", 6},	   {"Trịnh", 6},
	{"Cao", 5},	 {"Lưu", 5},	{"Tạ", 4},   {"Đoàn", 4},   {"Phùng", 4},  {"Tô", 3},
	{"Vương", 3},	 {"Hà", 3},	{"Chu", 3},  {"Lâm", 2},    {"Quách", 2},  {"Triệu", 2},
	{"Kiều", 2},	 {"Lại", 2},	{"Khúc", 2}, {"Nghiêm", 2}, {"Lý", 2},
};

static const char *const middle_male[] = {
	"Văn",	"Văn",	"Văn",	"Đức", "Minh",	"Quang", "Hữu", "Công",	 "Xuân",  "Thành", "Đình",
	"Ngọc", "Tiến", "Mạnh", "Duy", "Trọng", "Quốc",	 "Anh", "Hoàng", "Thanh", "Việt",  "Bá",
};

static const char *const middle_female[] = {
	"Thị",	"Thị",	"Thị",	"Thị", "Ngọc",	"Thu", "Thanh", "Minh", "Phương", "Thùy",
	"Hồng", "Diệu", "Bích", "Mai", "Khánh", "Hải", "Kim",	"Lan",	"Thúy",	  "Hoài",
};

static const char *const given_male[] = {
	"Anh",	 "Hùng",  "Dũng",  "Tuấn",  "Minh",   "Hải",   "Hoàng", "Long", "Nam",	"Quân",
	"Sơn",	 "Thắng", "Trung", "Tùng",  "Việt",   "Cường", "Đức",	"Hiếu", "Huy",	"Khánh",
	"Phong", "Phúc",  "Quang", "Thành", "Toàn",   "Vinh",  "Bình",	"Hưng", "Kiên", "Lâm",
	"Lộc",	 "Nghĩa", "Tài",   "Thịnh", "Trường", "Vũ",    "Đạt",	"Hòa",	"Hậu",	"Công",
	"Khải",	 "Chiến", "Duy",   "Tú",    "Thái",   "Quý",   "Tâm",	"Định", "Luân", "Mạnh",
};

static const char *const given_female[] = {
	"Anh",	  "Hà",	   "Hằng",  "Hạnh", "Hiền",  "Hoa",  "Hương",  "Huyền", "Lan",	 "Linh",
	"Loan",	  "Mai",   "Nga",   "Ngọc", "Nhung", "Oanh", "Phương", "Quỳnh", "Thảo",	 "Thu",
	"Thúy",	  "Trang", "Tuyết", "Vân",  "Yến",   "Dung", "Giang",  "Hồng",	"Liên",	 "Ly",
	"My",	  "Nhàn",  "Thơm",  "Xuân", "Châu",  "Diệp", "Hường",  "Lệ",	"Mơ",	 "Ngân",
	"Nguyệt", "Quyên", "Tâm",   "Thủy", "Trinh", "Uyên", "Vy",     "Hòa",	"Duyên", "Lý",
};

static const char *pick(struct sim_rng *rng, const char *const *v, size_t n)
{
	return v[sim_rng_below(rng, n)];
}

#define PICK(rng, v) pick((rng), (v), SIM_ARRAY_SIZE(v))

void sim_dossier_person(struct sim_rng *rng, char *buf, size_t len, bool *female)
{
	unsigned total = 0, r;
	const char *family = family_names[0].name, *given;
	bool f = sim_rng_below(rng, 2) == 0;

	for (size_t i = 0; i < SIM_ARRAY_SIZE(family_names); i++)
		total += family_names[i].weight;
	r = (unsigned)sim_rng_below(rng, total);
	for (size_t i = 0; i < SIM_ARRAY_SIZE(family_names); i++) {
		if (r < family_names[i].weight) {
			family = family_names[i].name;
			break;
		}
		r -= family_names[i].weight;
	}
	given = f ? PICK(rng, given_female) : PICK(rng, given_male);
	if (sim_rng_below(rng, 100) < 22) {
		/* Two middle names: "Nguyễn Thị Thu Hương", "Trần Văn Minh Đức". */
		const char *m1 = f ? "Thị" : "Văn";
		const char *m2 = f ? PICK(rng, middle_female) : PICK(rng, middle_male);

		if (strcmp(m2, m1) == 0)
			m2 = f ? "Thu" : "Minh";
		if (strcmp(m2, given) == 0)
			m2 = f ? "Ngọc" : "Đức";
		snprintf(buf, len, "%s %s %s %s", family, m1, m2, given);
	} else {
		const char *m = f ? PICK(rng, middle_female) : PICK(rng, middle_male);

		if (strcmp(m, given) == 0)
			m = f ? "Thị" : "Văn";
		snprintf(buf, len, "%s %s %s", family, m, given);
	}
	if (female != NULL)
		*female = f;
}

/* ---- organisations ----------------------------------------------------- */

static const char *const company_forms[] = {
	"Công ty TNHH",	    "Công ty TNHH",	    "Công ty Cổ phần",
	"Công ty TNHH MTV", "Doanh nghiệp tư nhân",
};

static const char *const company_trades[] = {
	"Thương mại và Dịch vụ",
	"Xây dựng",
	"Đầu tư và Phát triển",
	"Sản xuất và Thương mại",
	"Vận tải",
	"Nông sản",
	"Cơ khí",
	"Dệt may",
	"Thực phẩm",
	"Vật liệu xây dựng",
	"Công nghệ",
	"Dược phẩm",
};

static const char *const company_names[] = {
	"Hưng Phát",	  "Phố Hiến",	"Minh Anh",	"Thành Đạt", "An Khang",
	"Phú Thịnh",	  "Hoàng Long", "Đại Việt",	"Tân Tiến",  "Kim Ngân",
	"Thái Bình Xanh", "Hưng Yên",	"Sao Mai",	"Nhãn Lồng", "Quang Minh",
	"Bảo An",	  "Việt Hưng",	"Trường Thịnh", "Đồng Tâm",  "Hồng Hà",
};

static const char *const state_bodies[] = {
	"Trường Tiểu học", "Trường Trung học cơ sở", "Trường Mầm non", "Trạm Y tế",
	"Nhà văn hóa",	   "Hội Nông dân",
};

static const char *const other_bodies[] = {
	"Hợp tác xã Nông nghiệp", "Hợp tác xã Dịch vụ điện năng", "Hội Người cao tuổi",
	"Hội Cựu chiến binh",	  "Chi hội Chữ thập đỏ",
};

/* "Xã Tân Hưng" -> "Tân Hưng". */
static const char *place_short(const char *place)
{
	static const char *const prefixes[] = {"Phường ", "Xã ", "Thị trấn "};

	for (size_t i = 0; i < SIM_ARRAY_SIZE(prefixes); i++) {
		size_t n = strlen(prefixes[i]);

		if (strncmp(place, prefixes[i], n) == 0)
			return place + n;
	}
	return place;
}

void sim_dossier_organisation(struct sim_rng *rng, unsigned loai, const char *place, char *buf,
			      size_t len)
{
	switch (loai) {
	case 2:
		snprintf(buf, len, "%s %s %s", PICK(rng, company_forms), PICK(rng, company_trades),
			 PICK(rng, company_names));
		break;
	case 3: snprintf(buf, len, "%s %s", PICK(rng, state_bodies), place_short(place)); break;
	default: snprintf(buf, len, "%s %s", PICK(rng, other_bodies), place_short(place)); break;
	}
}

/* ---- addresses --------------------------------------------------------- */

static const char *const villages[] = {
	"Thôn Đông",	"Thôn Đoài",	 "Thôn Nam",	  "Thôn Bắc",	   "Thôn Thượng",
	"Thôn Hạ",	"Thôn Trung",	 "Thôn Tiền",	  "Thôn Hậu",	   "Thôn An Lạc",
	"Thôn Phú Cốc", "Thôn Đồng Lạc", "Thôn Xuân Nội", "Thôn Cao Xá",   "Thôn Lực Điền",
	"Thôn Tân Mỹ",	"Xóm Mới",	 "Xóm Chùa",	  "Thôn Ngọc Lập", "Thôn Đa Ngưu",
};

static const char *const streets[] = {
	"Nguyễn Văn Linh", "Điện Biên",
	"Lê Lợi",	   "Trần Hưng Đạo",
	"Bạch Đằng",	   "Nguyễn Thiện Thuật",
	"Chùa Chuông",	   "Hải Thượng Lãn Ông",
	"Lý Bôn",	   "Trần Thái Tông",
	"Quang Trung",	   "Lê Quý Đôn",
	"Phạm Ngũ Lão",	   "Tô Hiệu",
	"Nguyễn Trãi",	   "Triệu Quang Phục",
	"Lê Văn Lương",	   "Hai Bà Trưng",
	"Kỳ Đồng",	   "Lê Thánh Tông",
};

void sim_dossier_address(struct sim_rng *rng, const char *commune, const char *district,
			 const char *province, char *buf, size_t len)
{
	char street[96];
	bool ward = strncmp(commune, "Phường ", strlen("Phường ")) == 0 ||
		    strncmp(commune, "Thị trấn ", strlen("Thị trấn ")) == 0;

	if (ward) {
		unsigned kind = (unsigned)sim_rng_below(rng, 3);

		if (kind == 0)
			snprintf(street, sizeof(street), "Số %u đường %s",
				 1 + (unsigned)sim_rng_below(rng, 250), PICK(rng, streets));
		else if (kind == 1)
			snprintf(street, sizeof(street), "Số %u, ngõ %u phố %s",
				 1 + (unsigned)sim_rng_below(rng, 60),
				 2 + (unsigned)sim_rng_below(rng, 120), PICK(rng, streets));
		else
			snprintf(street, sizeof(street), "Tổ dân phố số %u",
				 1 + (unsigned)sim_rng_below(rng, 12));
	} else {
		snprintf(street, sizeof(street), "%s", PICK(rng, villages));
	}
	if (district != NULL)
		snprintf(buf, len, "%s, %s, %s, %s", street, commune, district, province);
	else
		snprintf(buf, len, "%s, %s, tỉnh Hưng Yên", street, commune);
}

/* ---- ASCII folding --------------------------------------------------------- */

/* The Vietnamese letters by their base letter (lowercase and uppercase). */
static const struct {
	char base;
	const char *letters;
} folds[] = {
	{'a', "àáảãạăằắẳẵặâầấẩẫậÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬ"},
	{'e', "èéẻẽẹêềếểễệÈÉẺẼẸÊỀẾỂỄỆ"},
	{'i', "ìíỉĩịÌÍỈĨỊ"},
	{'o', "òóỏõọôồốổỗộơờớởỡợÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢ"},
	{'u', "ùúủũụưừứửữựÙÚỦŨỤƯỪỨỬỮỰ"},
	{'y', "ỳýỷỹỵỲÝỶỸỴ"},
	{'d', "đĐ"},
};

void sim_dossier_ascii(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	while (*s != '\0' && n + 1 < len) {
		unsigned char c = (unsigned char)*s;
		size_t clen = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
		char out = 0;

		if (c < 0x80) {
			if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
				out = (char)c;
			else if (c >= 'A' && c <= 'Z')
				out = (char)(c - 'A' + 'a');
		} else {
			for (size_t i = 0; i < SIM_ARRAY_SIZE(folds) && out == 0; i++) {
				const char *p = folds[i].letters;

				for (; *p != '\0'; p++) {
					if (strncmp(p, s, clen) == 0) {
						out = folds[i].base;
						break;
					}
				}
			}
		}
		if (out != 0)
			buf[n++] = out;
		for (size_t k = 0; k < clen && *s != '\0'; k++)
			s++;
	}
	if (len > 0)
		buf[n] = '\0';
}

/* ---- officials ------------------------------------------------------------- */

static const struct {
	const char *code;
	const char *offices[3]; /* the specialists' offices */
	const char *board;	/* the leaders' office */
	const char *leaders[2]; /* deputy, head */
} depts[] = {
	{"UBND-TINH",
	 {"Văn phòng UBND tỉnh", "Văn phòng UBND tỉnh", "Văn phòng UBND tỉnh"},
	 "Lãnh đạo UBND tỉnh",
	 {"Phó Chủ tịch UBND tỉnh", "Chủ tịch UBND tỉnh"}},
	{"VP-UBND",
	 {"Phòng Kiểm soát thủ tục hành chính", "Phòng Tổng hợp", "Phòng Hành chính - Tổ chức"},
	 "Lãnh đạo Văn phòng",
	 {"Phó Chánh Văn phòng", "Chánh Văn phòng"}},
	{"SNV",
	 {"Phòng Tổ chức, biên chế", "Phòng Lao động - Việc làm", "Phòng Người có công"},
	 "Ban Giám đốc",
	 {"Phó Giám đốc Sở", "Giám đốc Sở"}},
	{"STP",
	 {"Phòng Hành chính tư pháp", "Phòng Bổ trợ tư pháp", "Phòng Xây dựng và kiểm tra văn bản"},
	 "Ban Giám đốc",
	 {"Phó Giám đốc Sở", "Giám đốc Sở"}},
	{"STC",
	 {"Phòng Đăng ký kinh doanh", "Phòng Quản lý ngân sách", "Phòng Tài chính doanh nghiệp"},
	 "Ban Giám đốc",
	 {"Phó Giám đốc Sở", "Giám đốc Sở"}},
	{"SCT",
	 {"Phòng Quản lý thương mại", "Phòng Quản lý năng lượng",
	  "Phòng Kỹ thuật an toàn - Môi trường"},
	 "Ban Giám đốc",
	 {"Phó Giám đốc Sở", "Giám đốc Sở"}},
	{"SNNMT",
	 {"Phòng Đất đai", "Chi cục Thủy lợi", "Phòng Môi trường"},
	 "Ban Giám đốc",
	 {"Phó Giám đốc Sở", "Giám đốc Sở"}},
	{"SXD",
	 {"Phòng Quản lý xây dựng", "Phòng Quản lý hoạt động xây dựng", "Phòng Quản lý vận tải"},
	 "Ban Giám đốc",
	 {"Phó Giám đốc Sở", "Giám đốc Sở"}},
	{"SGDDT",
	 {"Phòng Quản lý chất lượng", "Phòng Giáo dục trung học", "Phòng Tổ chức cán bộ"},
	 "Ban Giám đốc",
	 {"Phó Giám đốc Sở", "Giám đốc Sở"}},
	{"SYT",
	 {"Phòng Nghiệp vụ Y", "Phòng Nghiệp vụ Dược", "Phòng Quản lý hành nghề"},
	 "Ban Giám đốc",
	 {"Phó Giám đốc Sở", "Giám đốc Sở"}},
	{"SVHTTDL",
	 {"Phòng Quản lý văn hóa", "Phòng Quản lý du lịch", "Phòng Quản lý thể dục thể thao"},
	 "Ban Giám đốc",
	 {"Phó Giám đốc Sở", "Giám đốc Sở"}},
	{"SKHCN",
	 {"Phòng Quản lý khoa học", "Phòng Quản lý công nghệ",
	  "Chi cục Tiêu chuẩn Đo lường Chất lượng"},
	 "Ban Giám đốc",
	 {"Phó Giám đốc Sở", "Giám đốc Sở"}},
	{"SDTTG",
	 {"Phòng Quản lý tôn giáo", "Phòng Chính sách dân tộc", "Văn phòng Sở"},
	 "Ban Giám đốc",
	 {"Phó Giám đốc Sở", "Giám đốc Sở"}},
	{"TTRA",
	 {"Phòng Tiếp công dân và xử lý đơn thư", "Phòng Nghiệp vụ 1", "Phòng Nghiệp vụ 2"},
	 "Lãnh đạo Thanh tra",
	 {"Phó Chánh Thanh tra", "Chánh Thanh tra"}},
	{"CATINH",
	 {"Phòng Cảnh sát quản lý hành chính về trật tự xã hội", "Phòng Quản lý xuất nhập cảnh",
	  "Phòng Cảnh sát giao thông"},
	 "Ban Giám đốc",
	 {"Phó Giám đốc Công an tỉnh", "Giám đốc Công an tỉnh"}},
	{"SKHDT",
	 {"Phòng Đăng ký kinh doanh", "Phòng Kinh tế đối ngoại", "Văn phòng Sở"},
	 "Ban Giám đốc",
	 {"Phó Giám đốc Sở", "Giám đốc Sở"}},
};

static const char *const specialist_titles[] = {"Chuyên viên", "Chuyên viên chính",
						"Phó Trưởng phòng"};

/* New communes (from 1 July 2025) have specialised offices; old ones had posts. */
static const struct {
	const char *office, *title;
} commune_specialists[2][3] = {
	{
		{"Văn phòng HĐND và UBND", "Công chức Tư pháp - Hộ tịch"},
		{"Phòng Kinh tế", "Chuyên viên Phòng Kinh tế"},
		{"Phòng Văn hóa - Xã hội", "Chuyên viên Phòng Văn hóa - Xã hội"},
	},
	{
		{"", "Công chức Tư pháp - Hộ tịch"},
		{"", "Công chức Địa chính - Xây dựng"},
		{"", "Công chức Văn hóa - Xã hội"},
	},
};

void sim_dossier_staff_post(const char *dept, bool old, enum sim_staff_role role, unsigned k,
			    const char **office, const char **title)
{
	if (dept == NULL) {
		switch (role) {
		case SIM_STAFF_DESK:
			*office = "Bộ phận Một cửa";
			*title = k % 2 ? "Công chức Văn phòng - Thống kê"
				       : "Công chức Bộ phận Một cửa";
			return;
		case SIM_STAFF_SPECIALIST:
			*office = commune_specialists[old][k % 3].office;
			*title = commune_specialists[old][k % 3].title;
			return;
		default:
			*office = "Lãnh đạo";
			*title = k % 2 ? "Chủ tịch UBND" : "Phó Chủ tịch UBND";
			return;
		}
	}
	for (size_t i = 0; i < SIM_ARRAY_SIZE(depts); i++) {
		if (strcmp(depts[i].code, dept) != 0)
			continue;
		switch (role) {
		case SIM_STAFF_DESK:
			*office = "Trung tâm Phục vụ hành chính công tỉnh";
			*title = k % 2 ? "Viên chức Trung tâm Phục vụ hành chính công"
				       : "Công chức tiếp nhận hồ sơ";
			return;
		case SIM_STAFF_SPECIALIST:
			*office = depts[i].offices[k % 3];
			*title = specialist_titles[k % 3];
			return;
		default:
			*office = depts[i].board;
			*title = depts[i].leaders[k % 2];
			return;
		}
	}
	*office = "Văn phòng";
	*title = "Chuyên viên";
}

/* ---- step texts ---------------------------------------------------------- */

static const char *const txt_submit[] = {
	"Công dân nộp hồ sơ trực tuyến",
	"Nộp hồ sơ trực tuyến qua Cổng Dịch vụ công",
};
static const char *const txt_accept[] = {
	"Tiếp nhận hồ sơ, cấp giấy tiếp nhận và hẹn trả kết quả",
	"Tiếp nhận hồ sơ đầy đủ, hợp lệ",
	"Kiểm tra thành phần hồ sơ và tiếp nhận",
};
static const char *const txt_reject[] = {
	"Từ chối tiếp nhận: hồ sơ không đúng thành phần theo quy định",
	"Từ chối tiếp nhận: thủ tục không thuộc thẩm quyền giải quyết của đơn vị",
	"Từ chối tiếp nhận: tệp đính kèm không đọc được, đề nghị nộp lại",
};
static const char *const txt_transfer[] = {
	"Chuyển hồ sơ đến phòng chuyên môn xử lý",
	"Chuyển hồ sơ cho cán bộ thụ lý",
};
static const char *const txt_review[] = {
	"Thẩm định hồ sơ",
	"Kiểm tra, xác minh nội dung hồ sơ",
	"Thẩm định và dự thảo kết quả giải quyết",
};
static const char *const txt_consult[] = {
	"Lấy ý kiến các cơ quan, đơn vị liên quan",
	"Xác minh thực tế tại địa phương",
};
static const char *const txt_sign[] = {
	"Trình lãnh đạo xem xét, ký duyệt",
	"Trình ký kết quả giải quyết",
};
static const char *const txt_supplement[] = {
	"Yêu cầu bổ sung: bản sao có chứng thực giấy tờ chứng minh nhân thân",
	"Yêu cầu bổ sung: tờ khai chưa đủ chữ ký của người yêu cầu",
	"Yêu cầu bổ sung: giấy tờ về quyền sử dụng đất còn thiếu trang",
	"Yêu cầu bổ sung: văn bản ủy quyền chưa được chứng thực",
	"Yêu cầu bổ sung: bản vẽ, sơ đồ kèm theo chưa đúng mẫu",
};
static const char *const txt_resume[] = {
	"Công dân đã nộp bổ sung hồ sơ, tiếp tục xử lý",
	"Tiếp nhận hồ sơ bổ sung, tiếp tục thụ lý",
};
static const char *const txt_fee[] = {
	"Thông báo thực hiện nghĩa vụ tài chính",
	"Thông báo nộp phí, lệ phí",
};
static const char *const txt_paid[] = {
	"Công dân đã hoàn thành nghĩa vụ tài chính, tiếp tục xử lý",
	"Đã nhận chứng từ nộp phí, lệ phí",
};
static const char *const txt_withdraw[] = {
	"Công dân có đơn đề nghị rút hồ sơ",
	"Rút hồ sơ theo đề nghị của người nộp",
};
static const char *const txt_stop[] = {
	"Dừng xử lý: công dân không bổ sung hồ sơ trong thời hạn",
	"Dừng xử lý: hồ sơ không đủ điều kiện giải quyết theo quy định",
	"Dừng xử lý theo văn bản của cơ quan có thẩm quyền",
};
static const char *const txt_done[] = {
	"Lãnh đạo đã ký duyệt, chuyển kết quả về Bộ phận Một cửa",
	"Đã có kết quả giải quyết",
};
static const char *const txt_return[] = {
	"Trả kết quả cho công dân",
	"Trả kết quả, công dân đã nhận",
	"Trả kết quả điện tử qua Cổng Dịch vụ công",
};

static const struct {
	const char *const *v;
	unsigned n;
} step_texts[SIM_TXT__COUNT] = {
#define T(k, a) [k] = {a, SIM_ARRAY_SIZE(a)}
	T(SIM_TXT_SUBMIT, txt_submit), T(SIM_TXT_ACCEPT, txt_accept),
	T(SIM_TXT_REJECT, txt_reject), T(SIM_TXT_TRANSFER, txt_transfer),
	T(SIM_TXT_REVIEW, txt_review), T(SIM_TXT_CONSULT, txt_consult),
	T(SIM_TXT_SIGN, txt_sign),     T(SIM_TXT_SUPPLEMENT, txt_supplement),
	T(SIM_TXT_RESUME, txt_resume), T(SIM_TXT_FEE, txt_fee),
	T(SIM_TXT_PAID, txt_paid),     T(SIM_TXT_WITHDRAW, txt_withdraw),
	T(SIM_TXT_STOP, txt_stop),     T(SIM_TXT_DONE, txt_done),
	T(SIM_TXT_RETURN, txt_return),
#undef T
};

const char *const *sim_dossier_step_texts(enum sim_step_text t, unsigned *n)
{
	*n = step_texts[t].n;
	return step_texts[t].v;
}
