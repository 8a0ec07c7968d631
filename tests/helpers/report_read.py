#!/usr/bin/env python3
"""Reads back the reports of daemon/report.c for tests/unit/test_report.c.

An independent reader (Python's stdlib: csv, zipfile, xml.etree,
html.parser), so that the C test does not check its files with its own
code. Prints one JSON document on stdout: what was read, and "problems", a
list of every rule the file breaks (empty when it is sound).

  report_read.py csv FILE
  report_read.py xlsx FILE [--brief] [--forbid TEXT]...
  report_read.py html FILE [--xml-only] [--forbid TEXT]...

--brief: no cell values, only the sheets and their row counts.
--forbid: a text that must not appear anywhere in the file (a citizen's
identifier in clear); for the XLSX every decompressed part is searched.
--xml-only: the page is only parsed as XML (fast, for big files).
"""
import csv
import html.parser
import io
import json
import re
import sys
import xml.etree.ElementTree as ET
import zipfile

NS = {
    "m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "pr": "http://schemas.openxmlformats.org/package/2006/relationships",
    "ct": "http://schemas.openxmlformats.org/package/2006/content-types",
}
RID = "{%s}id" % NS["r"]


def strict_csv(text, problems):
    """RFC 4180 with CRLF record ends, fields quoted or not; rows."""
    rows, row, field, i, n = [], [], [], 0, len(text)
    at_start = True
    while i < n:
        c = text[i]
        if at_start and c == '"':
            i += 1
            while True:
                if i >= n:
                    problems.append("csv: unterminated quoted field")
                    return rows
                if text[i] == '"':
                    if i + 1 < n and text[i + 1] == '"':
                        field.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                field.append(text[i])
                i += 1
            at_start = False
            if i < n and text[i] not in ",\r":
                problems.append("csv: text after a closing quote at %d" % i)
            continue
        if c == ",":
            row.append("".join(field))
            field, at_start = [], True
            i += 1
        elif c == "\r":
            if i + 1 >= n or text[i + 1] != "\n":
                problems.append("csv: CR without LF at %d" % i)
            row.append("".join(field))
            rows.append(row)
            row, field, at_start = [], [], True
            i += 2
        elif c == "\n":
            problems.append("csv: bare LF ending a record at %d" % i)
            row.append("".join(field))
            rows.append(row)
            row, field, at_start = [], [], True
            i += 1
        else:
            if c == '"':
                problems.append("csv: quote inside an unquoted field at %d" % i)
            field.append(c)
            at_start = False
            i += 1
    if row or field:
        problems.append("csv: last record does not end with CRLF")
        row.append("".join(field))
        rows.append(row)
    return rows


def read_csv(path):
    problems = []
    data = open(path, "rb").read()
    bom = data.startswith(b"\xef\xbb\xbf")
    if not bom:
        problems.append("csv: no UTF-8 BOM")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return {"problems": ["csv: not UTF-8: %s" % e]}
    rows = strict_csv(text, problems)
    lib = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    if lib != rows:
        problems.append("csv: Python's csv module reads it differently")
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        problems.append("csv: rows of different widths %s" % sorted(widths))
    return {"bom": bom, "rows": rows, "problems": problems}


def col_index(ref):
    m = re.match(r"([A-Z]+)(\d+)$", ref)
    if not m:
        return None, None
    c = 0
    for ch in m.group(1):
        c = c * 26 + (ord(ch) - 64)
    return c - 1, int(m.group(2))


def read_xlsx(path, brief, forbid):
    problems = []
    out = {"sheets": [], "problems": problems}
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        return {"problems": ["xlsx: not a ZIP: %s" % e]}
    bad = z.testzip()
    if bad:
        problems.append("xlsx: CRC error in %s" % bad)
    names = z.namelist()
    if len(set(names)) != len(names):
        problems.append("xlsx: duplicate part names")
    parts = {}
    for n in names:
        data = z.read(n)
        for f in forbid:
            if f.encode() in data:
                problems.append("xlsx: %s holds a forbidden text in clear" % n)
        if n.endswith(".xml") or n.endswith(".rels"):
            try:
                parts[n] = ET.fromstring(data)
            except ET.ParseError as e:
                problems.append("xlsx: %s is not well-formed XML: %s" % (n, e))
    if problems:
        return out
    ct = parts.get("[Content_Types].xml")
    if ct is None:
        problems.append("xlsx: no [Content_Types].xml")
        return out
    defaults = {d.get("Extension"): d.get("ContentType") for d in ct.findall("ct:Default", NS)}
    overrides = {o.get("PartName"): o.get("ContentType") for o in ct.findall("ct:Override", NS)}
    for p in overrides:
        if p.lstrip("/") not in names:
            problems.append("xlsx: content type for a missing part %s" % p)
    for n in names:
        if n == "[Content_Types].xml":
            continue
        if "/" + n not in overrides and n.rsplit(".", 1)[-1] not in defaults:
            problems.append("xlsx: part %s has no content type" % n)

    def rels(name):
        t = parts.get(name)
        if t is None:
            problems.append("xlsx: missing %s" % name)
            return {}
        return {r.get("Id"): (r.get("Type"), r.get("Target")) for r in t.findall("pr:Relationship", NS)}

    root = rels("_rels/.rels")
    wb_targets = [t for ty, t in root.values() if ty.endswith("/officeDocument")]
    if wb_targets != ["xl/workbook.xml"]:
        problems.append("xlsx: the package does not point at xl/workbook.xml")
        return out
    for ty, t in root.values():
        if t not in names:
            problems.append("xlsx: package relationship to missing %s" % t)
    wb = parts["xl/workbook.xml"]
    if overrides.get("/xl/workbook.xml") != (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"):
        problems.append("xlsx: workbook content type wrong")
    wbrels = rels("xl/_rels/workbook.xml.rels")
    for ty, t in wbrels.values():
        if "xl/" + t not in names:
            problems.append("xlsx: workbook relationship to missing %s" % t)

    # Styles: number format and boldness of each cellXfs index.
    st = parts.get("xl/styles.xml")
    numfmts = {"0": "General", "3": "#,##0"}
    xf_fmt, xf_bold = [], []
    if st is None:
        problems.append("xlsx: no styles")
    else:
        for nf in st.findall("m:numFmts/m:numFmt", NS):
            numfmts[nf.get("numFmtId")] = nf.get("formatCode")
        fonts = [f.find("m:b", NS) is not None for f in st.findall("m:fonts/m:font", NS)]
        for xf in st.findall("m:cellXfs/m:xf", NS):
            xf_fmt.append(numfmts.get(xf.get("numFmtId", "0"), "?" + xf.get("numFmtId")))
            fid = int(xf.get("fontId", "0"))
            xf_bold.append(fonts[fid] if fid < len(fonts) else False)
        cnt = st.find("m:cellXfs", NS).get("count")
        if cnt is not None and int(cnt) != len(xf_fmt):
            problems.append("xlsx: cellXfs count %s for %d" % (cnt, len(xf_fmt)))

    seen_names = set()
    sheets = wb.findall("m:sheets/m:sheet", NS)
    if not sheets:
        problems.append("xlsx: no sheets")
    for sh in sheets:
        name = sh.get("name")
        units = len(name.encode("utf-16-le")) // 2
        if units > 31 or not name or re.search(r"[\[\]:*?/\\]", name):
            problems.append("xlsx: sheet name not allowed: %r" % name)
        if name.lower() in seen_names:
            problems.append("xlsx: sheet name twice: %r" % name)
        seen_names.add(name.lower())
        rel = wbrels.get(sh.get(RID))
        if not rel or not rel[0].endswith("/worksheet"):
            problems.append("xlsx: sheet %r has no worksheet relationship" % name)
            continue
        part = "xl/" + rel[1]
        if overrides.get("/" + part) != (
                "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"):
            problems.append("xlsx: %s content type wrong" % part)
        ws = parts.get(part)
        if ws is None:
            problems.append("xlsx: missing %s" % part)
            continue
        order = [c.tag.split("}")[1] for c in ws]
        want = ["sheetPr", "dimension", "sheetViews", "sheetFormatPr", "cols", "sheetData",
                "pageMargins", "pageSetup"]
        pos = [want.index(t) for t in order if t in want]
        if pos != sorted(pos) or "sheetData" not in order:
            problems.append("xlsx: %s elements out of order: %s" % (part, order))
        rows, fmt, bold_rows, last_r = [], {}, [], 0
        for row in ws.findall("m:sheetData/m:row", NS):
            r = int(row.get("r"))
            if r <= last_r:
                problems.append("xlsx: %s row %d after row %d" % (part, r, last_r))
            while len(rows) < r - 1:
                rows.append([])
            last_r = r
            vals, all_bold, last_c = [], True, -1
            for c in row.findall("m:c", NS):
                ci, cr = col_index(c.get("r"))
                if ci is None or cr != r or ci <= last_c:
                    problems.append("xlsx: %s bad cell ref %s in row %d" % (part, c.get("r"), r))
                    continue
                last_c = ci
                while len(vals) < ci:
                    vals.append(None)
                s = int(c.get("s", "0"))
                t = c.get("t", "n")
                if t == "inlineStr":
                    v = "".join(x.text or "" for x in c.iter("{%s}t" % NS["m"]))
                elif t == "n":
                    txt = c.find("m:v", NS).text
                    v = int(txt) if re.fullmatch(r"-?\d+", txt) else float(txt)
                    fmt.setdefault(chr(65 + ci), set()).add(
                        xf_fmt[s] if s < len(xf_fmt) else "?")
                else:
                    problems.append("xlsx: %s unexpected cell type %s" % (part, t))
                    v = None
                if s >= len(xf_fmt):
                    problems.append("xlsx: %s style %d out of range" % (part, s))
                elif not xf_bold[s]:
                    all_bold = False
                vals.append(v)
            if vals and all_bold:
                bold_rows.append(r)
            rows.append(vals)
        views = ws.find("m:sheetViews/m:sheetView/m:pane", NS)
        widths = {}
        for col in ws.findall("m:cols/m:col", NS):
            widths[col.get("min")] = float(col.get("width"))
        entry = {"name": name, "nrows": len(rows), "bold_rows": bold_rows,
                 "fmt": {k: sorted(v) for k, v in fmt.items()},
                 "frozen": views is not None and views.get("state") == "frozen",
                 "widths": widths}
        if not brief:
            entry["rows"] = rows
        out["sheets"].append(entry)
    for dn in wb.findall("m:definedNames/m:definedName", NS):
        i = int(dn.get("localSheetId", "-1"))
        m = re.fullmatch(r"'((?:[^']|'')+)'!\$1:\$1", dn.text or "")
        if not (0 <= i < len(sheets)) or not m or m.group(1).replace("''", "'") != sheets[i].get("name"):
            problems.append("xlsx: defined name %r does not fit sheet %d" % (dn.text, i))
    return out


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.problems = [], []
        self.tables, self.sections, self.lang, self.charset = [], [], None, None
        self.svg_rects, self.svg_texts, self.titles = 0, [], []
        self.cell, self.row, self.table = None, None, None
        self.section, self.in_style, self.in_title, self.style = None, False, False, ""
        self.head_done = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("src", "href", "xlink:href", "action", "data"):
            v = a.get(k)
            if v is not None and not v.startswith("#"):
                self.problems.append("html: external resource %s=%r" % (k, v))
        if tag in ("link", "script", "iframe", "img", "object", "embed"):
            self.problems.append("html: <%s> element" % tag)
        if tag == "html":
            self.lang = a.get("lang")
        if tag == "meta" and "charset" in a:
            self.charset = a["charset"]
        if tag in VOID:
            return
        self.stack.append(tag)
        if tag == "section":
            self.section = a.get("id")
            self.sections.append(self.section)
        elif tag == "table":
            self.table = {"section": self.section, "class": a.get("class"), "rows": []}
            self.tables.append(self.table)
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "rect":
            self.svg_rects += 1
        elif tag == "style":
            self.in_style = True
        elif tag == "title":
            self.in_title = True
            self.titles.append("")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append("html: </%s> closes <%s>" % (tag, self.stack[-1] if self.stack else "nothing"))
            return
        self.stack.pop()
        if tag in ("td", "th") and self.row is not None:
            self.row.append("".join(self.cell))
            self.cell = None
        elif tag == "tr" and self.table is not None:
            self.table["rows"].append(self.row)
            self.row = None
        elif tag == "style":
            self.in_style = False
        elif tag == "title":
            self.in_title = False
        elif tag == "section":
            self.section = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)
        if self.in_style:
            self.style += data
        if self.in_title:
            self.titles[-1] += data
        if self.stack and self.stack[-1] == "text":
            self.svg_texts.append(data)


def read_html(path, xml_only, forbid):
    problems = []
    data = open(path, "rb").read()
    for f in forbid:
        if f.encode() in data:
            problems.append("html: holds a forbidden text in clear")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return {"problems": ["html: not UTF-8: %s" % e]}
    try:
        ET.fromstring(re.sub(r"^<!DOCTYPE html>", "", text))
        xml_ok = True
    except ET.ParseError as e:
        xml_ok = False
        problems.append("html: not well-formed as XML: %s" % e)
    out = {"xml_ok": xml_ok, "bytes": len(data), "problems": problems}
    if xml_only:
        return out
    p = Page()
    p.feed(text)
    p.close()
    problems.extend(p.problems)
    if p.stack:
        problems.append("html: unclosed %s" % p.stack)
    if p.lang != "vi":
        problems.append("html: lang is %r" % p.lang)
    if (p.charset or "").lower() != "utf-8":
        problems.append("html: charset is %r" % p.charset)
    if re.search(r"url\(|@import", p.style):
        problems.append("html: the style loads something")
    if "@media print" not in p.style or "table-header-group" not in p.style:
        problems.append("html: no print style repeating table headers")
    out.update({"tables": p.tables, "sections": p.sections, "svg_rects": p.svg_rects,
                "svg_texts": p.svg_texts, "titles": p.titles})
    return out


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    kind, path, rest = argv[1], argv[2], argv[3:]
    forbid = [rest[i + 1] for i, a in enumerate(rest) if a == "--forbid" and i + 1 < len(rest)]
    if kind == "csv":
        out = read_csv(path)
    elif kind == "xlsx":
        out = read_xlsx(path, "--brief" in rest, forbid)
    elif kind == "html":
        out = read_html(path, "--xml-only" in rest, forbid)
    else:
        print("unknown kind %s" % kind, file=sys.stderr)
        return 2
    json.dump(out, sys.stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
