/*
 * test_store_payment: the payment tables of the store (migration 5) on a
 * real SQLite file — a transaction and a fee record are one row each that
 * later states replace, refusals, the Asia/Ho_Chi_Minh day — and the
 * loader: a day range on a read-only connection of its own, a snapshot
 * that does not see (nor wait for) the loop's open transaction, what the
 * portal was sent from the outbox, and reconcile() over what it loaded.
 * `test_store_payment --bench N` stores N transactions and N fee records
 * and times the load and the matching (bench lines).
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "reconcile.h"
#include "store.h"
#include "tap.h"
#include "util.h"

#define H 3600000LL
/* 2025-06-02T00:00:00+07:00 */
#define DAY2 1748797200000LL

static char tmpdir[] = "/tmp/test_store_payment.XXXXXX";

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static struct store *open_store(const char *path)
{
	struct conf_store c = {.path = (char *)path,
			       .busy_timeout_ms = 2000,
			       .synchronous = 0,
			       .retry_interval_ms = 1000};
	struct store *s = NULL;
	char *err = NULL;
	if (store_open(&c, &s, &err) != 0) {
		printf("# store_open: %s\n", err ? err : "?");
		free(err);
	}
	return s;
}

static struct store_pay_tx tx(const char *ref, const char *m, int64_t amount, int state, int64_t at)
{
	return (struct store_pay_tx){.ref = ref,
				     .txid = "GD1",
				     .mahoso = m,
				     .amount = amount,
				     .state = state,
				     .at_ms = at,
				     .verified = true,
				     .source = "list",
				     .raw = "{}"};
}

static struct store_fee_record fee(const char *ref, const char *m, int64_t amount,
				   const char *state, int64_t at)
{
	return (struct store_fee_record){.ref = ref,
					 .mahoso = m,
					 .amount = amount,
					 .state = state,
					 .method = "TRUC_TUYEN",
					 .at_ms = at};
}

static void test_day(void)
{
	is_int(store_pay_day(DAY2), 20250602, "midnight in Hà Nội is the new day");
	is_int(store_pay_day(DAY2 - 1), 20250601, "a millisecond before is the day before");
	is_int(store_pay_day(1735664400000LL), 20250101, "2025-01-01T00:00+07:00");
	is_int(store_pay_day(0), 19700101, "the epoch is 07:00 on 1 January 1970");
	is_int(store_pay_day(-8 * H), 19691231, "before the epoch");
	is_int(store_pay_day(1709139600000LL), 20240229, "a leap day");
}

static void test_puts_and_load(const char *path)
{
	struct store *s = open_store(path);
	if (!s) {
		ok(0, "the store opens");
		return;
	}
	struct store_pay_tx t = tx("R1", "D1", 530000, 3, DAY2 + 9 * H);
	is_int(store_pay_tx_put(s, &t, DAY2), 0, "a pending transaction is stored");
	t.state = 1;
	is_int(store_pay_tx_put(s, &t, DAY2 + H), 0, "its success replaces it");
	struct store_pay_tx t2 = tx("R2", "D2", 100000, 1, DAY2 + 10 * H);
	t2.verified = false;
	is_int(store_pay_tx_put(s, &t2, DAY2), 0, "an unverified one is stored, marked so");
	struct store_pay_tx t3 = tx("R3", "D3", 5, 1, DAY2 - H); /* the day before */
	is_int(store_pay_tx_put(s, &t3, DAY2), 0, "one of the day before");
	struct store_pay_tx bad = tx(NULL, "D", 1, 1, DAY2);
	is_int(store_pay_tx_put(s, &bad, DAY2), -EINVAL,
	       "a transaction without MaThamChieu is refused");

	struct store_fee_record f = fee("R1", "D1", 530000, "CHO_XAC_NHAN", DAY2 + 9 * H);
	is_int(store_fee_put(s, &f, DAY2), 0, "a fee record waiting for confirmation");
	f.state = "DA_THANH_TOAN";
	is_int(store_fee_put(s, &f, DAY2 + H), 0, "then paid: the same row");
	struct store_fee_record cash = fee(NULL, "D4", 38000, "DA_THANH_TOAN", DAY2 + 11 * H);
	cash.method = "TIEN_MAT";
	is_int(store_fee_put(s, &cash, DAY2), 0, "a desk payment without MaThamChieu");
	struct store_fee_record bf = fee("X", "D", 1, "PAID", DAY2);
	is_int(store_fee_put(s, &bf, DAY2), -EINVAL, "an unknown state is refused");
	bf.state = "DA_THANH_TOAN";
	bf.method = "CASH";
	is_int(store_fee_put(s, &bf, DAY2), -EINVAL, "an unknown method is refused");
	char big[5000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	bf = fee("X", big, 1, "DA_THANH_TOAN", DAY2);
	is_int(store_fee_put(s, &bf, DAY2), -EINVAL, "an over-long dossier code is refused");

	/* What the portal was sent: D1's header was acknowledged (paid online
	 * missing from it), D3's too but D3 paid on another day, D2's was not. */
	const char *h1 = "{\"MaHoSo\":\"D1\",\"DuocThanhToanTrucTuyen\":0,"
			 "\"DanhSachLePhi\":[{\"MucPhi\":530000}]}";
	struct store_outbox_change c = {.mahoso = "D1",
					.header = h1,
					.row = "{\"r\":1}",
					.status = 4,
					.changed_ms = DAY2,
					.seen_ms = DAY2,
					.seq = 1};
	is_int(store_outbox_enqueue(s, &c, NULL), 0, "D1 is in the outbox");
	is_int(store_outbox_header_acked(s, "D1", 1, DAY2), 0, "and the portal has its header");
	c.mahoso = "D3";
	c.header = "{\"MaHoSo\":\"D3\",\"DuocThanhToanTrucTuyen\":0,\"DanhSachLePhi\":[]}";
	is_int(store_outbox_enqueue(s, &c, NULL), 0, "D3 is in the outbox");
	is_int(store_outbox_header_acked(s, "D3", 1, DAY2), 0, "with its header acknowledged");
	c.mahoso = "D2";
	c.header = "{\"MaHoSo\":\"D2\",\"DuocThanhToanTrucTuyen\":0,\"DanhSachLePhi\":[]}";
	is_int(store_outbox_enqueue(s, &c, NULL), 0, "D2 is in the outbox, not yet sent");

	/* The loop holds a write transaction open: the loader neither sees nor waits. */
	is_int(store_begin(s), 0, "the loop opens a group");
	struct store_pay_tx t9 = tx("R9", "D9", 9, 1, DAY2 + 12 * H);
	store_pay_tx_put(s, &t9, DAY2);
	struct store_pay_set *set = NULL;
	char *err = NULL;
	uint64_t t0 = now_mono_us();
	int r = store_pay_load(path, 20250602, 20250602, &set, &err);
	uint64_t took = now_mono_us() - t0;
	is_int(r, 0, "the day loads while the group is open (%s)", err ? err : "ok");
	ok(took < 1000000, "without waiting for the group (%llu us)", (unsigned long long)took);
	const struct rec_input *in = store_pay_input(set);
	ok(in && in->n_tx == 2 && in->n_fee == 2,
	   "the day's 2 transactions and 2 records, not the day before's nor the open group's");
	ok(in && in->n_tx == 2 && !strcmp(in->tx[0].ref, "R1") && in->tx[0].state == 1 &&
		   in->tx[0].amount == 530000 && in->tx[0].txid && !strcmp(in->tx[0].txid, "GD1") &&
		   !in->tx[1].verified,
	   "each as last stored, verification kept");
	ok(in && in->n_fee == 2 && in->fee[0].state == REC_FEE_PAID && in->fee[1].ref == NULL &&
		   in->fee[1].method == REC_CASH,
	   "fee states and methods read back; no MaThamChieu is NULL");
	ok(in && in->n_portal == 1 && !strcmp(in->portal[0].mahoso, "D1") &&
		   in->portal[0].paid_online == 0 && in->portal[0].fee_lines == 1,
	   "what the portal was sent, for the day's trusted successes with an acknowledged "
	   "header: D1's fields (not D2: not trusted, not sent; not D3: another day)");
	store_commit(s);

	/* reconcile over what was loaded */
	struct rec_input ri = *in;
	ri.now_ms = DAY2 + 20 * H;
	ri.pending_max_ms = 24 * H;
	struct rec_result res;
	is_int(reconcile(&ri, &res), 0, "the loaded day reconciles");
	is_int(res.count[REC_MATCHED], 1, "R1 matches its record");
	is_int(res.count[REC_BAD_SIGNATURE], 1, "R2 is not trusted");
	is_int(res.count[REC_PORTAL_WITHOUT_FEE], 1,
	       "D1 paid online but the portal was told otherwise");
	rec_free(&res);
	const char *agency = "x", *applicant = "x";
	is_int(store_pay_describe(set, "D1", &agency, &applicant), 0, "D1 is described");
	ok(agency == NULL && applicant == NULL,
	   "no agency or applicant id recorded for D1: both NULL, not empty texts");
	is_int(store_pay_describe(set, "NOPE", &agency, &applicant), 0,
	       "an unknown dossier is no error");
	store_pay_set_free(set);

	/* what still waits for a confirmation, for QUERY */
	struct store_fee_record w = fee("W1", "D7", 70000, "CHO_XAC_NHAN", DAY2 + 8 * H);
	store_fee_put(s, &w, DAY2 + 8 * H);
	struct store_pay_tx pend = tx("W2", "D8", 80000, 3, DAY2 + 7 * H);
	store_pay_tx_put(s, &pend, DAY2 + 7 * H);
	struct store_fee_record w3 = fee("W3", "D9", 90000, "CHO_XAC_NHAN", DAY2 + 6 * H);
	store_fee_put(s, &w3, DAY2 + 6 * H);
	struct store_pay_tx done = tx("W3", "D9", 90000, 1, DAY2 + 6 * H);
	store_pay_tx_put(s, &done, DAY2 + 9 * H);
	json_t *pl = store_pay_pending(s, DAY2, DAY2 + 12 * H, 0);
	ok(json_array_size(pl) == 2 &&
		   !strcmp(json_string_value(json_object_get(json_array_get(pl, 0), "ref")),
			   "W2") &&
		   !strcmp(json_string_value(json_object_get(json_array_get(pl, 1), "ref")),
			   "W1") &&
		   !strcmp(json_string_value(json_object_get(json_array_get(pl, 1), "mahoso")),
			   "D7"),
	   "awaiting confirmation: the platform's pending W2 and the province's W1, oldest "
	   "first, with their dossiers; not W3 (its success is known)");
	json_decref(pl);
	pl = store_pay_pending(s, DAY2 + 7 * H + 1, DAY2 + 12 * H, 0);
	is_int(json_array_size(pl), 1, "the age window bounds it (W2 is older)");
	json_decref(pl);
	pl = store_pay_pending(s, DAY2, DAY2 + 12 * H, 1);
	is_int(json_array_size(pl), 1, "and the limit");
	json_decref(pl);

	/* a day read whole again: what it no longer lists goes, QUERY answers stay */
	struct store_pay_tx q = tx("Q1", "D1", 1, 4, DAY2 + 5 * H);
	q.source = "query";
	store_pay_tx_put(s, &q, DAY2);
	struct store_pay_tx again = tx("R1", "D1", 530000, 1, DAY2 + 9 * H);
	store_pay_tx_put(s, &again, DAY2 + 20 * H);
	unsigned gone = 0;
	is_int(store_pay_prune(s, false, 20250602, DAY2 + 20 * H, &gone), 0,
	       "pruning a day's list");
	r = store_pay_load(path, 20250602, 20250602, &set, &err);
	in = store_pay_input(set);
	ok(r == 0 && in->n_tx == 2 && gone == 4,
	   "only R1 (seen again) and the QUERY answer Q1 remain of the day (%u removed)", gone);
	store_pay_set_free(set);
	is_int(store_pay_prune(s, true, 20250602, DAY2 + 20 * H, &gone), 0,
	       "pruning a day's fee records");
	ok(gone >= 3, "the records not seen again are removed (%u)", gone);

	r = store_pay_load("/nonexistent/dir/x.db", 1, 2, &set, &err);
	ok(r < 0 && err && strstr(err, "/nonexistent/dir/x.db"),
	   "a store that cannot be opened is an error naming it (%s)", err ? err : "-");
	free(err);
	store_close(s);
}

static int bench(size_t n)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/bench.db", tmpdir);
	struct store *s = open_store(path);
	if (!s)
		return 1;
	uint64_t t0 = now_mono_us();
	store_begin(s);
	for (size_t i = 0; i < n; i++) {
		char ref[64], m[48];
		snprintf(m, sizeof(m), "H31.%05zu-250602-%06zu", i % 977, i);
		snprintf(ref, sizeof(ref), "%s-20250602%06zu", m, i % 240000);
		struct store_pay_tx t = tx(ref, m, 10000 + (int64_t)(i % 97) * 5000, 1,
					   DAY2 + (int64_t)(i % 86400) * 1000);
		t.raw = NULL;
		struct store_fee_record f =
			fee(ref, m, t.amount, i % 100 == 1 ? "CHUA_THANH_TOAN" : "DA_THANH_TOAN",
			    t.at_ms);
		if (store_pay_tx_put(s, &t, DAY2) || store_fee_put(s, &f, DAY2))
			return 1;
		if (i % 50000 == 49999) {
			store_commit(s);
			store_begin(s);
		}
	}
	store_commit(s);
	double ingest = (double)(now_mono_us() - t0) / 1e6;
	struct store_pay_set *set = NULL;
	char *err = NULL;
	t0 = now_mono_us();
	if (store_pay_load(path, 20250602, 20250602, &set, &err) != 0) {
		printf("# %s\n", err);
		return 1;
	}
	double load = (double)(now_mono_us() - t0) / 1e6;
	struct rec_input in = *store_pay_input(set);
	in.now_ms = DAY2 + 30 * H;
	in.pending_max_ms = 24 * H;
	struct rec_result res;
	t0 = now_mono_us();
	reconcile(&in, &res);
	double match = (double)(now_mono_us() - t0) / 1e6;
	printf("bench payment.store_ingest_s %.2f s\n", ingest);
	printf("bench payment.store_load_s %.2f s\n", load);
	printf("bench payment.match_s %.2f s\n", match);
	printf("# %zu transactions and %zu records loaded, %zu matched, %zu platform_only\n",
	       in.n_tx, in.n_fee, res.count[REC_MATCHED], res.count[REC_PLATFORM_ONLY]);
	rec_free(&res);
	store_pay_set_free(set);
	store_close(s);
	return 0;
}

int main(int argc, char **argv)
{
	log_setup(LOG_TARGET_STDERR, getenv("TEST_VERBOSE") ? LOG_DEBUG : LOG_CRIT);
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	int rc = 0;
	if (argc == 3 && !strcmp(argv[1], "--bench")) {
		rc = bench((size_t)strtoull(argv[2], NULL, 10));
	} else {
		char *path = xasprintf("%s/pay.db", tmpdir);
		test_day();
		test_puts_and_load(path);
		free(path);
		rc = tap_done();
	}
	if (!getenv("KEEP"))
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	else
		printf("# kept %s\n", tmpdir);
	return rc;
}
