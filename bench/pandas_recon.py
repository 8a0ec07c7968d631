"""pandas_recon: the payment benchmark's analyst (bench/bench-payment.sh).

Reconciles the day that bench/pay_gen.c wrote as CSV files the way an
analyst would with pandas: read the platform's transactions, the province's
fee records and what the portal was sent, merge the successful transactions
with the fee records on MaThamChieu (outer, with indicator), compare the
amounts, rank each dossier's successes to find the second payments, then the
province's records that no success took. The classes and their rules are
those of daemon/reconcile.h, reduced to what this data needs (no fallback
match on dossier and amount). The list of discrepancies is written to a CSV
file, as the analyst would hand it on.

    python3 pandas_recon.py DIR CUTOFF OUT.csv

CUTOFF: yyyyMMddHHmmss (Asia/Ho_Chi_Minh): a pending payment older than it
is pending_too_long (the daemon's query_max_age before now).
Prints "pandas NAME VALUE" lines: version, import_s, read_s, total_s (read
to written, the import of pandas not included) and one "class NAME COUNT"
line per class.
"""
import sys
import time

t_import = time.perf_counter()
import pandas as pd  # noqa: E402

CLASSES = ["matched", "platform_only", "local_only", "amount_differs", "paid_twice",
           "pending_too_long", "bad_signature", "portal_without_fee", "unknown_dossier"]


def main():
    if len(sys.argv) != 4:
        sys.stderr.write("usage: pandas_recon.py DIR CUTOFF OUT.csv\n")
        return 2
    d, cutoff, out = sys.argv[1], sys.argv[2], sys.argv[3]
    print("pandas version %s" % pd.__version__)
    print("pandas import_s %.2f" % (time.perf_counter() - t_import))
    t0 = time.perf_counter()
    tx = pd.read_csv(d + "/transactions.csv",
                     dtype={"MaThamChieu": str, "MaGiaoDich": str, "MaHoSo": str,
                            "SoTien": "int64", "TrangThaiGD": "int8", "ThoiGianGD": str,
                            "verified": "int8"})
    fees = pd.read_csv(d + "/fees.csv",
                       dtype={"maThamChieu": str, "maHoSo": str, "soTien": "int64",
                              "trangThai": str, "hinhThuc": str, "thoiGian": str})
    portal = pd.read_csv(d + "/portal.csv", dtype={"MaHoSo": str})
    print("pandas read_s %.2f" % (time.perf_counter() - t0))
    cut = pd.Timestamp(cutoff[0:4] + "-" + cutoff[4:6] + "-" + cutoff[6:8] + " " +
                       cutoff[8:10] + ":" + cutoff[10:12] + ":" + cutoff[12:14])
    tx["at"] = pd.to_datetime(tx["ThoiGianGD"], format="%Y%m%d%H%M%S")
    fees["at"] = pd.to_datetime(fees["thoiGian"].str.slice(0, 19), format="%Y-%m-%dT%H:%M:%S")

    parts = []

    def found(cls, frame, ref, mahoso):
        parts.append(pd.DataFrame({"class": cls, "MaThamChieu": frame[ref].values,
                                   "MaHoSo": frame[mahoso].values}))

    # 1. an unverified transaction: nothing of it is used; it takes its record
    bad = tx[tx["verified"] == 0]
    found("bad_signature", bad, "MaThamChieu", "MaHoSo")
    good = tx[tx["verified"] == 1]
    succ = good[good["TrangThaiGD"] == 1]

    # 2. successes against the fee records on MaThamChieu
    m = succ.merge(fees, how="outer", left_on="MaThamChieu", right_on="maThamChieu",
                   indicator=True)
    ms = m[m["_merge"] != "right_only"].copy()
    ms["fee_paid"] = (ms["_merge"] == "both") & (ms["trangThai"] == "DA_THANH_TOAN")
    # 3. the dossier's payment: the one the province recorded as paid, else the earliest
    ms = ms.sort_values(["MaHoSo", "fee_paid", "at_x", "MaThamChieu"],
                        ascending=[True, False, True, True])
    ms["nth"] = ms.groupby("MaHoSo").cumcount()
    found("paid_twice", ms[ms["nth"] > 0], "MaThamChieu", "MaHoSo")
    first = ms[ms["nth"] == 0]
    no_rec = first[first["_merge"] == "left_only"]
    known = no_rec["MaHoSo"].isin(fees["maHoSo"]) | no_rec["MaHoSo"].isin(portal["MaHoSo"])
    found("unknown_dossier", no_rec[~known], "MaThamChieu", "MaHoSo")
    found("platform_only", no_rec[known], "MaThamChieu", "MaHoSo")
    has_rec = first[first["_merge"] == "both"]
    found("platform_only", has_rec[~has_rec["fee_paid"]], "MaThamChieu", "MaHoSo")
    paid = has_rec[has_rec["fee_paid"]]
    found("matched", paid[paid["SoTien"] == paid["soTien"]], "MaThamChieu", "MaHoSo")
    found("amount_differs", paid[paid["SoTien"] != paid["soTien"]], "MaThamChieu", "MaHoSo")

    # 4. pending too long, on either side (once per attempt)
    old_pending = good[(good["TrangThaiGD"] == 3) & (good["at"] < cut)]
    found("pending_too_long", old_pending, "MaThamChieu", "MaHoSo")
    taken = pd.concat([succ["MaThamChieu"], bad["MaThamChieu"]])
    online = fees[fees["hinhThuc"] == "TRUC_TUYEN"]
    untaken = online[~online["maThamChieu"].isin(taken)]
    waiting = untaken[(untaken["trangThai"] == "CHO_XAC_NHAN") & (untaken["at"] < cut) &
                   ~untaken["maThamChieu"].isin(old_pending["MaThamChieu"])]
    found("pending_too_long", waiting, "maThamChieu", "maHoSo")
    # 5. paid online at the province, no success took the record
    found("local_only", untaken[untaken["trangThai"] == "DA_THANH_TOAN"], "maThamChieu", "maHoSo")
    # 6. the portal was told the dossier is not paid online, or lists no fee
    told = portal[(portal["DuocThanhToanTrucTuyen"] == 0) | (portal["SoDongLePhi"] == 0)]
    pw = told[told["MaHoSo"].isin(succ["MaHoSo"])].assign(MaThamChieu=None)
    found("portal_without_fee", pw, "MaThamChieu", "MaHoSo")

    result = pd.concat(parts, ignore_index=True)
    counts = result["class"].value_counts()
    result[result["class"] != "matched"].to_csv(out, index=False)
    print("pandas total_s %.2f" % (time.perf_counter() - t0))
    for c in CLASSES:
        print("class %s %d" % (c, counts.get(c, 0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
