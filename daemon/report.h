/*
 * report: the provincial office's reconciliation reports, rendered from one
 * reconciliation result (payment-spec §5, the reports' only input) into
 * files the office opens in Excel or a browser: CSV (UTF-8 with BOM, RFC
 * 4180, CRLF), XLSX (an Office Open XML workbook written by hand: a ZIP of
 * deflated XML parts), one self-contained HTML page (inline CSS and SVG, no
 * external resources, printable) and JSON (the result itself, for machines).
 * Labels are Vietnamese.
 *
 * Files are named doi-soat-thanh-toan_<from>_<to>.<ext> (from and to as
 * YYYYMMDD) and written atomically: every requested format goes to a hidden
 * temporary file in the reports directory first, each is fsynced, and only
 * when all are complete are they renamed into place (then the directory is
 * fsynced). A failure while writing leaves no temporary file and no new
 * report behind (only a failing rename, within one directory, could leave
 * part of a set published).
 *
 * Writing is streamed and memory is bounded whatever the number of items:
 * apart from one byte per item (its class), buffers are of fixed size; the
 * XLSX parts are deflated into the file as they are produced.
 *
 * Citizens' identifiers (an item's applicant_id) are masked in every file,
 * the JSON included: the first 3 and last 3 characters are kept and the rest
 * become '*'; an identifier shorter than 7 characters becomes all '*'. Where
 * an identifier of 7 characters or more also appears inside another text of
 * its item (an explanation), it is masked there too.
 *
 * Matched items (class "matched") can number a million: the HTML page never
 * lists them (its summary and daily table count them); CSV, XLSX and JSON
 * list every non-matched item, and matched items only with
 * REPORT_INCLUDE_MATCHED. The HTML page lists at most REPORT_HTML_MAX_ROWS
 * items per class and says where the rest are (CSV, XLSX).
 *
 * Amounts: the CSV holds plain integers (whole đồng, so that Excel can sum
 * them; the column labels say "(đồng)"); the XLSX holds numbers with the
 * number format #,##0 "₫"; the HTML shows "1.234.567 ₫". Dates are shown
 * as dd/mm/yyyy (text in the XLSX).
 *
 * The functions touch no global state and may run on a worker thread;
 * report_write_payments() writes the formats asked for at once, a thread
 * each, and returns when all are written.
 */
#ifndef LT_REPORT_H
#define LT_REPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Bits of report_write_payments()'s formats. */
#define REPORT_CSV  0x01u
#define REPORT_XLSX 0x02u
#define REPORT_HTML 0x04u
#define REPORT_JSON 0x08u
#define REPORT_ALL  (REPORT_CSV | REPORT_XLSX | REPORT_HTML | REPORT_JSON)
/* Not a format: also list matched items in the CSV, XLSX and JSON. */
#define REPORT_INCLUDE_MATCHED 0x100u

/* Items of one class the HTML page lists before pointing at CSV/XLSX. */
#define REPORT_HTML_MAX_ROWS 20000

/* Bytes report_vnd() needs at most, with the NUL. */
#define REPORT_VND_LEN 32

/*
 * Rows of items per XLSX worksheet (under the header row) before a class
 * continues on a further sheet "<name> (2)", ...: Excel's 1,048,576 rows
 * minus the header. Read by report_write_payments(); tests lower it.
 */
extern unsigned report_xlsx_rows_per_sheet;

/*
 * Writes the reports of one reconciliation result into dir (created with
 * mode 0750 if missing; files get mode 0640).
 *
 * result: the §5 document (borrowed, not modified). "from" and "to" must be
 * YYYY-MM-DD dates, "items" an array (absent = none) of objects each with a
 * string "class". Other values are rendered leniently: a field missing or of
 * the wrong type shows as empty. "summary" and "daily" are used as given
 * when present, computed from the items otherwise.
 * formats: REPORT_CSV | REPORT_XLSX | REPORT_HTML | REPORT_JSON, at least
 * one, optionally | REPORT_INCLUDE_MATCHED.
 * paths: if not NULL, on success *paths is a new object {"csv": path, ...}
 * with the path of each file written (caller decrefs).
 * err: if not NULL, on failure *err is a message naming the path or the
 * field at fault (caller frees).
 *
 * A report of the same name that existed is replaced, and a compressed
 * older copy of it (<name>.gz, see report_compress_older) is removed.
 * Returns 0; -EINVAL for a result or formats that do not fit the contract;
 * -EFBIG when an XLSX part would pass 4 GiB (no ZIP64); or -errno of the
 * file system. No temporary file is left in dir either way.
 */
int report_write_payments(const json_t *result, const char *dir, unsigned formats, json_t **paths,
			  char **err);

/*
 * Compresses with gzip every report file in dir ("doi-soat-*" ending in
 * .csv, .xlsx, .html or .json) last modified more than older_than_ms ago:
 * <name>.gz is written to a temporary file, fsynced and renamed into place
 * (keeping the original's mtime) before the original is unlinked. .gz files
 * and other files are left alone; temporary files of an interrupted writer
 * (".doi-soat-*") older than older_than_ms are removed.
 * n_compressed: if not NULL, the number of files compressed.
 * err: if not NULL, on failure a message naming the file (caller frees).
 * Returns 0, or the -errno of the first failure (the other files are still
 * processed).
 */
int report_compress_older(const char *dir, int64_t older_than_ms, unsigned *n_compressed,
			  char **err);

/*
 * A list of formats as the configuration and lienthongctl name them,
 * "csv,xlsx,html,json" (commas or spaces; "matched" adds
 * REPORT_INCLUDE_MATCHED) -> the bits of report_write_payments(); 0 with
 * *err (caller frees) naming the word that is not a format, or saying that
 * none is.
 */
unsigned report_formats_parse(const char *text, char **err);

/* What the office reads for class name ("platform_only" -> "Đã thanh toán
 * trên nền tảng, tỉnh chưa ghi nhận"); a class without a label gets the
 * label of "other". Static. */
const char *report_class_label(const char *name);

/*
 * Formats an amount in whole VND as the office writes it: "1.234.567 ₫",
 * "-1.000 ₫", "0 ₫". Returns buf; len >= REPORT_VND_LEN always suffices (a
 * smaller buffer gets "").
 */
char *report_vnd(int64_t vnd, char *buf, size_t len);

/*
 * "2025-06-02" (or an ISO 8601 time starting so) -> "02/06/2025" into buf
 * (len >= 11). Anything else is copied as it is, truncated to fit; NULL
 * gives "". Returns buf.
 */
char *report_date_vn(const char *iso, char *buf, size_t len);

/*
 * The masked form of a citizen's identifier (see above) into buf, truncated
 * to fit; NULL gives "". Characters are UTF-8 code points. Returns buf.
 */
char *report_mask_id(const char *id, char *buf, size_t len);

#endif
