/*
 * pay_gen: the data of the payment benchmark (bench/bench-payment.sh): one
 * Asia/Ho_Chi_Minh day (2025-06-02) of a province's online fee payments,
 * written twice — into a lienthong store through the store's own API (the
 * payment flow's tables, and the dossier outbox with the header the portal
 * acknowledged for each dossier), as the daemon would hold it after its
 * passes, and as CSV files for the analysts' tools (pandas, sqlite3):
 *
 *   transactions.csv  MaThamChieu,MaGiaoDich,MaHoSo,SoTien,TrangThaiGD,ThoiGianGD,verified
 *   fees.csv          maThamChieu,maHoSo,soTien,trangThai,hinhThuc,thoiGian
 *   portal.csv        MaHoSo,DuocThanhToanTrucTuyen,SoDongLePhi
 *
 * Dossiers are drawn one by one (seeded: the same arguments give the same
 * bytes) until N platform transactions exist. Most pay online and match;
 * FAULTS per 1,000 dossiers fall into each discrepancy class of
 * payment-spec §4 (so 8 x FAULTS per 1,000 in all), and 2 x FAULTS per
 * 1,000 pay at the desk (a fee record without a transaction), which keeps
 * the fee records about as many as the transactions. What a correct
 * reconciliation finds is printed as "expected CLASS COUNT" lines.
 *
 * The store holds what the flow stores: every row with its raw text (the
 * signed list row, the fee record's JSON), every dossier with a mapped
 * header of the size the dossier flow sends (~1.3 KB), acknowledged.
 *
 *   pay_gen --store PATH --csv DIR [--n N] [--seed S] [--faults F] [--group G]
 *
 * Prints "gen NAME VALUE" lines (counts, seconds) and the expected counts.
 *
 *   pay_gen --data-version
 *
 * prints the version of the data this generator writes (raised whenever the
 * data changes: the benchmark reuses data of the same version).
 *
 *   pay_gen --phases PATH
 *
 * times, on the store at PATH, the parts of the daemon's on-demand report
 * that its own API exposes, in the daemon's order: the day's load
 * (store_pay_load), the matching (reconcile) and, for every item not
 * matched, the dossier's description and the explanation (what the report
 * adds to each listed item); "phase NAME VALUE" lines, with this process's
 * peak RSS after each.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "log.h"
#include "reconcile.h"
#include "store.h"
#include "util.h"

#define PAY_GEN_DATA_VERSION 4

/* 2025-06-02T00:00:00+07:00 */
#define DAY_START_MS 1748797200000LL
#define HOUR_MS	     3600000LL
#define VN_OFFSET_MS (7 * HOUR_MS)

enum gen_class {
	G_NORMAL,
	G_PLATFORM_ONLY,
	G_LOCAL_ONLY,
	G_AMOUNT_DIFFERS,
	G_PAID_TWICE,
	G_PENDING,
	G_BAD_SIGNATURE,
	G_PORTAL_WITHOUT_FEE,
	G_UNKNOWN_DOSSIER,
	G_CASH,
};

static uint64_t rng_state;

/* splitmix64 */
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

/* wall ms in Asia/Ho_Chi_Minh time, by the strftime format fmt, into out[len] */
static void vn_time(int64_t ms, const char *fmt, char *out, size_t len)
{
	time_t t = (time_t)((ms + VN_OFFSET_MS) / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	if (strftime(out, len, fmt, &tm) == 0)
		out[0] = '\0';
}

/* wall ms -> yyyyMMddHHmmss */
static void vn_compact(int64_t ms, char out[15])
{
	vn_time(ms, "%Y%m%d%H%M%S", out, 15);
}

/* wall ms -> "2025-06-02T14:53:36+07:00" */
static void vn_iso(int64_t ms, char out[26])
{
	vn_time(ms, "%Y-%m-%dT%H:%M:%S+07:00", out, 26);
}

static const int64_t amounts[] = {20000,  30000,  50000,  100000, 150000,
				  200000, 300000, 500000, 530000, 1000000};

static const struct {
	const char *code, *name, *field, *field_name, *fee_name;
} procs[] = {
	{"1.006964.000.00.00.H31",
	 "Đăng ký thay đổi nội dung đăng ký chi nhánh, văn phòng đại diện, địa điểm kinh doanh",
	 "TC-DN", "Thành lập và hoạt động của doanh nghiệp", "Lệ phí đăng ký hoạt động chi nhánh"},
	{"1.001612.000.00.00.H31", "Cấp giấy phép xây dựng mới đối với nhà ở riêng lẻ", "XD",
	 "Hoạt động xây dựng", "Lệ phí cấp giấy phép xây dựng"},
	{"2.000986.000.00.00.H31", "Đăng ký khai sinh", "HT", "Hộ tịch", "Lệ phí đăng ký hộ tịch"},
	{"1.004227.000.00.00.H31", "Cấp Giấy chứng nhận quyền sử dụng đất lần đầu", "DD", "Đất đai",
	 "Lệ phí cấp giấy chứng nhận"},
	{"2.001823.000.00.00.H31", "Cấp giấy phép lái xe", "GT", "Đường bộ",
	 "Lệ phí cấp giấy phép lái xe"},
};

static const char *const family[] = {"Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi"};
static const char *const given[] = {"Văn An",	"Thị Bình", "Mạnh Cường", "Thu Hà",
				    "Đức Minh", "Ngọc Lan", "Quang Huy",  "Thị Mai"};

struct gen {
	struct store *s;
	FILE *tx_csv, *fee_csv, *portal_csv;
	size_t n_tx, n_fee, n_portal, writes, group;
	size_t expected[REC__COUNT];
	uint64_t txid_next;
	int64_t seen_ms;
	int failed;
};

static void group_tick(struct gen *g)
{
	if (++g->writes % g->group)
		return;
	if (store_commit(g->s) || store_begin(g->s))
		g->failed = 1;
}

static void put_tx(struct gen *g, const char *ref, const char *mahoso, int64_t amount, int state,
		   int64_t at_ms, bool verified)
{
	char txid[24], when[15], mac[65];
	snprintf(txid, sizeof(txid), "GD%012" PRIu64, g->txid_next++);
	vn_compact(at_ms, when);
	for (int i = 0; i < 64; i += 16)
		snprintf(mac + i, 17, "%016" PRIx64, rnd());
	/* the signed list row as the flow keeps it (raw), keys sorted */
	char raw[1024];
	snprintf(raw, sizeof(raw),
		 "{\"LoaiBanTin\":\"CONFIRM\",\"MaDoiTac\":\"HUNGYEN\",\"MaGiaoDich\":\"%s\","
		 "\"MaHoSo\":\"%s\",\"MaLoi\":\"00\",\"MaNganHang\":\"VCB\",\"MaThamChieu\":\"%s\","
		 "\"MaTienTe\":\"704\",\"MaXacThuc\":\"%s\",\"SoTien\":%" PRId64 ","
		 "\"ThoiGianCapNhat\":\"%s\",\"ThoiGianGD\":\"%s\",\"ThongTinGiaoDich\":\"Thanh "
		 "toan "
		 "le phi ho so %s\",\"TrangThaiGD\":%d}",
		 txid, mahoso, ref, mac, amount, when, when, mahoso, state);
	/* an untrusted row is stored as put_tx() of the flow stores it: nothing of it used */
	struct store_pay_tx t = {.ref = ref,
				 .txid = verified ? txid : NULL,
				 .mahoso = mahoso,
				 .amount = verified ? amount : 0,
				 .state = verified ? state : 0,
				 .at_ms = at_ms,
				 .verified = verified,
				 .source = "list",
				 .raw = raw};
	if (store_pay_tx_put(g->s, &t, g->seen_ms) != 0)
		g->failed = 1;
	group_tick(g);
	fprintf(g->tx_csv, "%s,%s,%s,%" PRId64 ",%d,%s,%d\n", ref, txid, mahoso, amount, state,
		when, verified ? 1 : 0);
	g->n_tx++;
}

static void put_fee(struct gen *g, const char *ref, const char *mahoso, int64_t amount,
		    const char *state, const char *method, int64_t at_ms)
{
	char when[26], raw[1024], refq[96];
	vn_iso(at_ms, when);
	if (ref)
		snprintf(refq, sizeof(refq), "\"%s\"", ref);
	else
		snprintf(refq, sizeof(refq), "null");
	snprintf(raw, sizeof(raw),
		 "{\"hinhThuc\":\"%s\",\"maHoSo\":\"%s\",\"maThamChieu\":%s,\"soTien\":%" PRId64
		 ",\"thoiGian\":\"%s\",\"trangThai\":\"%s\"}",
		 method, mahoso, refq, amount, when, state);
	struct store_fee_record f = {.ref = ref,
				     .mahoso = mahoso,
				     .amount = amount,
				     .state = state,
				     .method = method,
				     .at_ms = at_ms,
				     .raw = raw};
	if (store_fee_put(g->s, &f, g->seen_ms) != 0)
		g->failed = 1;
	group_tick(g);
	fprintf(g->fee_csv, "%s,%s,%" PRId64 ",%s,%s,%s\n", ref ? ref : "", mahoso, amount, state,
		method, when);
	g->n_fee++;
}

/* The dossier as the dossier flow sent it to the portal, acknowledged. */
static void put_portal(struct gen *g, size_t i, const char *mahoso, unsigned unit, int64_t amount,
		       int paid_online, bool fee_lines, int64_t at_ms)
{
	char header[4096], agency[24], recv[15], due[15], done[15];
	unsigned p = below(LT_ARRAY_SIZE(procs));
	const char *fam = family[below(LT_ARRAY_SIZE(family))];
	const char *giv = given[below(LT_ARRAY_SIZE(given))];
	char fees[512] = "";
	char applicant[16];
	snprintf(applicant, sizeof(applicant), "0%011" PRIu64, (uint64_t)(rnd() % 100000000000ULL));
	vn_compact(at_ms - HOUR_MS, recv);
	vn_compact(at_ms + 7 * 24 * HOUR_MS, due);
	vn_compact(at_ms + 3 * 24 * HOUR_MS, done);
	snprintf(agency, sizeof(agency), "000.00.%02u.H31", unit % 100);
	if (fee_lines)
		snprintf(fees, sizeof(fees),
			 "{\"TenPhiLePhi\":\"%s\",\"MaPhiLePhi\":\"PL%06u\",\"HinhThucThu\":%d,"
			 "\"Gia\":%" PRId64 ",\"LoaiPhiLePhi\":2}",
			 procs[p].fee_name, 900000 + p, paid_online ? 1 : 2, amount);
	int n = snprintf(
		header, sizeof(header),
		"{\"MaHoSo\":\"%s\",\"MaTTHC\":\"%s\",\"TenTTHC\":\"%s\",\"MaLinhVuc\":\"%s\","
		"\"TenLinhVuc\":\"%s\",\"KenhThucHien\":%d,\"ChuHoSo\":\"%s "
		"%s\",\"LoaiDoiTuong\":1,"
		"\"SoDienThoai\":\"09%08u\",\"Email\":\"cong.dan%zu@example.vn\","
		"\"TrichYeuHoSo\":\"%s (%s %s)\",\"NgayNopHoSo\":\"%s\",\"NgayTiepNhan\":\"%s\","
		"\"NgayHenTra\":\"%s\",\"NgayKetThucXuLy\":\"%s\",\"NgayTra\":\"%s\","
		"\"TrangThaiHoSo\":10,\"DonViXuLy\":\"H31.%05u\",\"NoiNopHoSo\":\"Bộ phận Một cửa "
		"UBND Xã số %u\",\"HoSoCoThanhPhanSoHoa\":1,\"TaiKhoanDuocXacThucVoiVNeID\":1,"
		"\"DuocThanhToanTrucTuyen\":%d,\"DinhDanhCHS\":[{\"LoaiDinhDanh\":1,"
		"\"SoDinhDanh\":\"%s\"}],\"TaiLieuNop\":[{\"TenTepDinhKem\":\"Tờ khai "
		"theo mẫu\",\"DuocSoHoa\":1,\"DuocTaiSuDung\":0,\"DuocLayTuKhoDMQG\":0},"
		"{\"TenTepDinhKem\":\"Bản sao Căn cước công dân hoặc Hộ chiếu\",\"DuocSoHoa\":0,"
		"\"DuocTaiSuDung\":1,\"DuocLayTuKhoDMQG\":1}],\"DanhSachLePhi\":[%s],"
		"\"DanhSachHoSoBoSung\":[],\"DanhSachGiayToKetQua\":[{\"TenGiayTo\":\"Kết quả "
		"giải quyết thủ tục hành chính\",\"DuongDanTepTinKetQua\":\"https://"
		"dichvucong.hungyen.gov.vn/ket-qua/%s/1.pdf\"}]}",
		mahoso, procs[p].code, procs[p].name, procs[p].field, procs[p].field_name,
		paid_online ? 2 : 1, fam, giv, below(100000000), i, procs[p].name, fam, giv, recv,
		recv, due, done, done, 12000 + unit, unit, paid_online, applicant, fees, mahoso);
	if (n < 0 || (size_t)n >= sizeof(header)) {
		g->failed = 1;
		return;
	}
	struct store_outbox_change c = {.mahoso = mahoso,
					.agency = agency,
					.header = header,
					.status = 10,
					.due_ms = at_ms + 7 * 24 * HOUR_MS,
					.changed_ms = at_ms,
					.seen_ms = at_ms,
					.seq = (int64_t)i + 1,
					/* as the dossier flow stores them with the header */
					.fees_known = true,
					.paid_online = paid_online,
					.fee_lines = fee_lines,
					.applicant_id = applicant};
	if (store_outbox_enqueue(g->s, &c, NULL) != 0 ||
	    store_outbox_header_acked(g->s, mahoso, 1, at_ms) != 0)
		g->failed = 1;
	group_tick(g);
	fprintf(g->portal_csv, "%s,%d,%d\n", mahoso, paid_online, fee_lines ? 1 : 0);
	g->n_portal++;
}

static enum gen_class draw_class(unsigned faults)
{
	unsigned u = below(1000);
	if (u < 8 * faults)
		return (enum gen_class)(G_PLATFORM_ONLY + u / faults);
	if (u < 10 * faults)
		return G_CASH;
	return G_NORMAL;
}

/* One dossier of the day and its payments. */
static void dossier(struct gen *g, size_t i, unsigned faults)
{
	enum gen_class c = draw_class(faults);
	unsigned unit = (unsigned)(i % 977);
	char mahoso[64], ref[96], ref2[96], when[15];
	int64_t amount = amounts[below(LT_ARRAY_SIZE(amounts))];
	/* between 07:00 and 19:00 */
	int64_t at = DAY_START_MS + 7 * HOUR_MS + (int64_t)below(12 * 3600) * 1000;
	size_t *e = g->expected;
	if (c == G_UNKNOWN_DOSSIER)
		snprintf(mahoso, sizeof(mahoso), "H31.99999-250602-%07zu", i);
	else
		snprintf(mahoso, sizeof(mahoso), "H31.%05u-250602-%07zu", 12000 + unit, i);
	vn_compact(at, when);
	snprintf(ref, sizeof(ref), "%s-%s", mahoso, when);

	switch (c) {
	case G_NORMAL:
		put_tx(g, ref, mahoso, amount, 1, at, true);
		put_fee(g, ref, mahoso, amount, "DA_THANH_TOAN", "TRUC_TUYEN", at + 60000);
		put_portal(g, i, mahoso, unit, amount, 1, true, at);
		e[REC_MATCHED]++;
		break;
	case G_CASH:
		put_fee(g, NULL, mahoso, amount, "DA_THANH_TOAN", "TIEN_MAT", at);
		put_portal(g, i, mahoso, unit, amount, 0, true, at);
		break;
	case G_PLATFORM_ONLY:
		put_tx(g, ref, mahoso, amount, 1, at, true);
		if (i % 2) /* recorded as not paid; else no record at all */
			put_fee(g, ref, mahoso, amount, "CHUA_THANH_TOAN", "TRUC_TUYEN", at);
		put_portal(g, i, mahoso, unit, amount, 1, true, at);
		e[REC_PLATFORM_ONLY]++;
		break;
	case G_LOCAL_ONLY:
		if (i % 2) /* a failed attempt on the platform; else none */
			put_tx(g, ref, mahoso, amount, 4, at, true);
		put_fee(g, ref, mahoso, amount, "DA_THANH_TOAN", "TRUC_TUYEN", at + 60000);
		put_portal(g, i, mahoso, unit, amount, 1, true, at);
		e[REC_LOCAL_ONLY]++;
		break;
	case G_AMOUNT_DIFFERS: {
		int64_t d = 1000 * (1 + (int64_t)below(50));
		put_tx(g, ref, mahoso, amount, 1, at, true);
		put_fee(g, ref, mahoso, i % 2 ? amount + d : amount - d, "DA_THANH_TOAN",
			"TRUC_TUYEN", at + 60000);
		put_portal(g, i, mahoso, unit, amount, 1, true, at);
		e[REC_AMOUNT_DIFFERS]++;
		break;
	}
	case G_PAID_TWICE: {
		int64_t at2 = at + 60000 * (1 + (int64_t)below(60));
		vn_compact(at2, when);
		snprintf(ref2, sizeof(ref2), "%s-%s", mahoso, when);
		put_tx(g, ref, mahoso, amount, 1, at, true);
		put_fee(g, ref, mahoso, amount, "DA_THANH_TOAN", "TRUC_TUYEN", at + 60000);
		put_tx(g, ref2, mahoso, amount, 1, at2, true);
		put_portal(g, i, mahoso, unit, amount, 1, true, at);
		e[REC_MATCHED]++;
		e[REC_PAID_TWICE]++;
		break;
	}
	case G_PENDING:
		/* the day is long past: older than any query_max_age */
		put_tx(g, ref, mahoso, amount, 3, at, true);
		put_fee(g, ref, mahoso, amount, "CHO_XAC_NHAN", "TRUC_TUYEN", at);
		put_portal(g, i, mahoso, unit, amount, 1, true, at);
		e[REC_PENDING_TOO_LONG]++;
		break;
	case G_BAD_SIGNATURE:
		put_tx(g, ref, mahoso, amount, 1, at, false);
		put_fee(g, ref, mahoso, amount, "DA_THANH_TOAN", "TRUC_TUYEN", at + 60000);
		put_portal(g, i, mahoso, unit, amount, 1, true, at);
		e[REC_BAD_SIGNATURE]++;
		break;
	case G_PORTAL_WITHOUT_FEE:
		put_tx(g, ref, mahoso, amount, 1, at, true);
		put_fee(g, ref, mahoso, amount, "DA_THANH_TOAN", "TRUC_TUYEN", at + 60000);
		/* the header sent said not paid online, or listed no fee */
		put_portal(g, i, mahoso, unit, amount, i % 2 ? 0 : 1, i % 2 ? true : false, at);
		e[REC_MATCHED]++;
		e[REC_PORTAL_WITHOUT_FEE]++;
		break;
	case G_UNKNOWN_DOSSIER:
		put_tx(g, ref, mahoso, amount, 1, at, true);
		e[REC_UNKNOWN_DOSSIER]++;
		break;
	}
}

static double since_s(uint64_t t0)
{
	return (double)(now_mono_us() - t0) / 1e6;
}

static FILE *csv_open(const char *dir, const char *name, const char *head)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "pay_gen: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	fprintf(f, "%s\n", head);
	return f;
}

static double peak_rss_mb(void)
{
	char line[256];
	double kb = 0;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %lf", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb / 1024;
}

/* --phases: see the top of the file. */
static int phases(const char *path)
{
	struct store_pay_set *set = NULL;
	struct rec_result res = {0};
	char *err = NULL;
	int64_t day = store_pay_day(DAY_START_MS + 12 * HOUR_MS);
	uint64_t t0 = now_mono_us();
	if (store_pay_load(path, day, day, &set, &err) != 0) {
		fprintf(stderr, "pay_gen: %s\n", err ? err : "cannot load the day");
		free(err);
		return 1;
	}
	printf("phase load_s %.2f\nphase load_peak_rss_mb %.1f\n", since_s(t0), peak_rss_mb());
	struct rec_input in = *store_pay_input(set);
	in.now_ms = now_wall_ms();
	in.pending_max_ms = 2 * 24 * HOUR_MS;
	t0 = now_mono_us();
	if (reconcile(&in, &res) != 0)
		return 1;
	printf("phase match_s %.2f\nphase match_peak_rss_mb %.1f\n", since_s(t0), peak_rss_mb());
	t0 = now_mono_us();
	size_t listed = 0;
	for (size_t i = 0; i < res.n; i++) {
		const struct rec_item *it = &res.items[i];
		if (it->cls == REC_MATCHED)
			continue;
		const struct rec_tx *t = it->tx != REC_NONE ? &in.tx[it->tx] : NULL;
		const struct rec_fee *f = it->fee != REC_NONE ? &in.fee[it->fee] : NULL;
		const char *m = t && t->mahoso ? t->mahoso : f ? f->mahoso : NULL;
		const char *agency, *applicant;
		if (m)
			(void)store_pay_describe(set, m, &agency, &applicant);
		free(rec_explain(&in, it));
		listed++;
	}
	printf("phase describe_s %.2f\nphase listed %zu\n", since_s(t0), listed);
	t0 = now_mono_us();
	rec_free(&res);
	store_pay_set_free(set);
	printf("phase free_s %.2f\n", since_s(t0));
	return 0;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: pay_gen --store PATH --csv DIR [--n N] [--seed S] [--faults F] "
		"[--group G]\n       pay_gen --phases PATH\n       pay_gen --data-version\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *store_path = NULL, *csv_dir = NULL;
	size_t n = 1000000, group = 5000;
	unsigned long long seed = 7;
	unsigned faults = 10;
	if (argc == 2 && !strcmp(argv[1], "--data-version")) {
		printf("%d\n", PAY_GEN_DATA_VERSION);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "--phases")) {
		log_setup(LOG_TARGET_STDERR, LOG_ERR);
		return phases(argv[2]);
	}
	for (int a = 1; a < argc; a++) {
		const char *v = a + 1 < argc ? argv[a + 1] : NULL;
		if (!v)
			return usage();
		if (!strcmp(argv[a], "--store"))
			store_path = v;
		else if (!strcmp(argv[a], "--csv"))
			csv_dir = v;
		else if (!strcmp(argv[a], "--n"))
			n = strtoull(v, NULL, 10);
		else if (!strcmp(argv[a], "--seed"))
			seed = strtoull(v, NULL, 10);
		else if (!strcmp(argv[a], "--faults"))
			faults = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(argv[a], "--group"))
			group = strtoull(v, NULL, 10);
		else
			return usage();
		a++;
	}
	if (!store_path || !csv_dir || n == 0 || group == 0 || faults == 0 || faults > 100)
		return usage();
	log_setup(LOG_TARGET_STDERR, LOG_ERR);
	rng_state = seed;

	struct conf_store sc = {.path = (char *)store_path,
				.busy_timeout_ms = 5000,
				.synchronous = 1,
				.retry_interval_ms = 1000};
	struct gen g = {.group = group, .txid_next = 1, .seen_ms = DAY_START_MS + 86400000LL};
	char *err = NULL;
	if (store_open(&sc, &g.s, &err) != 0) {
		fprintf(stderr, "pay_gen: %s\n", err ? err : "cannot open the store");
		free(err);
		return 1;
	}
	g.tx_csv = csv_open(csv_dir, "transactions.csv",
			    "MaThamChieu,MaGiaoDich,MaHoSo,SoTien,TrangThaiGD,ThoiGianGD,verified");
	g.fee_csv = csv_open(csv_dir, "fees.csv",
			     "maThamChieu,maHoSo,soTien,trangThai,hinhThuc,thoiGian");
	g.portal_csv = csv_open(csv_dir, "portal.csv", "MaHoSo,DuocThanhToanTrucTuyen,SoDongLePhi");
	if (!g.tx_csv || !g.fee_csv || !g.portal_csv)
		return 1;

	uint64_t t0 = now_mono_us();
	if (store_begin(g.s) != 0)
		return 1;
	for (size_t i = 0; g.n_tx < n && !g.failed; i++)
		dossier(&g, i, faults);
	if (store_commit(g.s) != 0 || g.failed) {
		fprintf(stderr, "pay_gen: writing the store failed\n");
		return 1;
	}
	store_close(g.s);
	if (fclose(g.tx_csv) || fclose(g.fee_csv) || fclose(g.portal_csv)) {
		fprintf(stderr, "pay_gen: writing the CSV files: %s\n", strerror(errno));
		return 1;
	}
	printf("gen ingest_s %.2f\n", since_s(t0));
	printf("gen transactions %zu\ngen fee_records %zu\ngen portal %zu\n", g.n_tx, g.n_fee,
	       g.n_portal);
	for (int c = 0; c < REC__COUNT; c++)
		printf("expected %s %zu\n", rec_class_name((enum rec_class)c), g.expected[c]);
	return 0;
}
