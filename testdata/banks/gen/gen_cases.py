#!/usr/bin/env python3
"""Writes the golden case inputs (and the expected render output, built here
independently of the Go renderer) under testdata/banks/<profile>/<case>/.

Run from the repository root: python3 testdata/banks/gen/gen_cases.py
expected.json / expected.err files are written by `go test ./banks -update`
and reviewed by hand."""
import json, os

ROOT = os.path.join(os.path.dirname(__file__), "..")

BATCH = {"bank_batch_no": "B20261128000001", "file_seq": 1, "date": "2026-11-28", "memo": "耕地地力补贴",
         "subsidy_code": "GDDL", "subsidy_name": "耕地地力保护补贴", "tenant": "210102", "period": "2026-11",
         "batch_id": "210102-GDDL-2026-11-001"}

BASE = [
    dict(seq=1, name="张三", id_number="11010519491231002X", account="6222021234567890128", account_kind="card", amount_fen=12345, remark="一季度"),
    dict(seq=2, name="李四", id_number="110105195001010010", account="6228480402564890018", account_kind="card", amount_fen=100, remark=""),
    dict(seq=3, name="王小明", id_number="210102198803150617", account="62170012345678901", account_kind="passbook", amount_fen=9876500, remark="补发"),
    dict(seq=4, name="欧阳娜娜", id_number="21010219900101002X", account="6217856100012345678", account_kind="sscard", amount_fen=1, remark=""),
]
NONBMP = dict(seq=5, name="𠮷田", id_number="210102197001010011", account="6222021234567890011", account_kind="card", amount_fen=50000, remark="")
DOTS = [
    dict(seq=1, name="阿依古丽·买买提", id_number="650102198001010026", account="6222020000000000011", account_kind="card", amount_fen=20000, remark="U+00B7"),
    dict(seq=2, name="阿依古丽•买买提", id_number="650102198001010026", account="6222020000000000029", account_kind="card", amount_fen=20000, remark="U+2022"),
    dict(seq=3, name="阿依古丽．买买提", id_number="650102198001010026", account="6222020000000000037", account_kind="card", amount_fen=20000, remark="U+FF0E"),
    dict(seq=4, name="阿依古丽.买买提", id_number="650102198001010026", account="6222020000000000045", account_kind="card", amount_fen=20000, remark="ASCII"),
]

def yuan(f): return "%d.%02d" % (f // 100, f % 100)

def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)

def batch_json(recs, bank_batch_no):
    b = dict(BATCH, bank_batch_no=bank_batch_no, count=len(recs), total_fen=sum(r["amount_fen"] for r in recs))
    return (json.dumps({"batch": b, "records": recs}, ensure_ascii=False, indent=1) + "\n").encode()

def fw(s, width, enc, right=False, pad=" "):
    b = s.encode(enc)
    assert len(b) <= width, (s, width)
    p = (pad * (width - len(b))).encode()
    return p + b if right else b + p

def num(n, width): return fw(str(n), width, "ascii", True, "0")

ALLDOTS = "·•．.・‧﹒"
def dot(name, to="·"):
    return "".join(to if c in ALLDOTS else c for c in name)

# ---- results: (record, code, message, serial, paid)
def results(recs, outcome):
    out = []
    for r in recs:
        code, msg = outcome.get(r["seq"], ("OK", ""))
        out.append((r, code, msg, "SN%08d" % r["seq"]))
    return out

# ---------------------------------------------------------------- RCC (fixed GBK)
def rcc_out(recs, bbn):
    lines = []
    for r in recs:
        lines.append(b"D" + num(r["seq"], 8) + fw(r["account"], 32, "gbk") + fw(dot(r["name"]), 60, "gbk") +
                     fw(r["id_number"], 18, "gbk") + num(r["amount_fen"], 15) + fw(BATCH["memo"], 12, "gbk") + fw(r["remark"], 40, "gbk"))
    lines.append(b"T" + fw(bbn, 20, "gbk") + b"20261128" + num(len(recs), 8) + num(sum(r["amount_fen"] for r in recs), 15))
    return b"".join(l + b"\r\n" for l in lines)

def rcc_ret_lines(res, bbn, enc="gbk", count=None, total=None):
    lines, paid, tot = [], 0, 0
    for r, code, msg, sn in res:
        ok = code == "0000"
        amt = r["amount_fen"] if ok else 0
        paid += ok; tot += amt
        lines.append(b"D" + num(r["seq"], 8) + fw(r["account"], 32, enc) + fw(dot(r["name"]) if enc == "gbk" else r["name"], 60, enc) +
                     num(r["amount_fen"], 15) + num(amt, 15) + fw(code, 4, enc) + fw(sn if ok else "", 20, enc) + fw(msg, 60, enc))
    n = len(res)
    lines.append(b"T" + fw(bbn, 20, "gbk") + num(count if count is not None else n, 8) + num(total if total is not None else tot, 15) +
                 num(paid, 8) + num(n - paid, 8))
    return lines

RCC_OK = lambda recs, extra={}: {r["seq"]: extra.get(r["seq"], ("0000", "交易成功")) for r in recs}

def gen_rcc():
    d = os.path.join(ROOT, "rcc")
    bbn = "RCC20261128000001"
    write(f"{d}/render_all/batch.json", batch_json(BASE, bbn))
    write(f"{d}/render_all/expected.out", rcc_out(BASE, bbn))
    write(f"{d}/render_dots/batch.json", batch_json(DOTS, bbn))
    write(f"{d}/render_dots/expected.out", rcc_out(DOTS, bbn))
    write(f"{d}/render_nonbmp/batch.json", batch_json(BASE + [NONBMP], bbn))  # GBK: refused
    long = dict(BASE[0], name="张" * 31)  # 62 GBK bytes > 60
    write(f"{d}/render_too_long/batch.json", batch_json([long], bbn))
    crlf = lambda ls: b"".join(l + b"\r\n" for l in ls)
    ok = results(BASE, RCC_OK(BASE))
    write(f"{d}/all_paid/input", crlf(rcc_ret_lines(ok, bbn)))
    mixed = results(BASE, RCC_OK(BASE, {2: ("1001", "户名与账号不符"), 3: ("1007", "久悬户，请激活后再试"), 4: ("1999", "卡或帐号已销户")}))
    write(f"{d}/mixed_failures/input", crlf(rcc_ret_lines(mixed, bbn)))
    write(f"{d}/lf/input", b"".join(l + b"\n" for l in rcc_ret_lines(ok, bbn)))
    write(f"{d}/crlf/input", crlf(rcc_ret_lines(mixed, bbn)))
    write(f"{d}/bom/input", b"\xef\xbb\xbf" + crlf(rcc_ret_lines(ok, bbn)))
    write(f"{d}/trailing_blanks/input", b"".join(l + b"    \r\n" for l in rcc_ret_lines(ok, bbn)) + b"\r\n  \r\n")
    full = crlf(rcc_ret_lines(ok, bbn))
    write(f"{d}/truncated/input", full[: len(full) // 2])
    write(f"{d}/summary_mismatch/input", crlf(rcc_ret_lines(ok, bbn, count=5, total=12345)))
    ls = rcc_ret_lines(ok, bbn)
    write(f"{d}/duplicate_line/input", crlf(ls[:2] + [ls[1]] + ls[2:-1] + [rcc_ret_lines(ok + [ok[1]], bbn)[-1]]))
    unk = results(BASE, RCC_OK(BASE, {1: ("7777", "未知错误，请联系网点")}))
    write(f"{d}/unknown_code/input", crlf(rcc_ret_lines(unk, bbn)))
    dots = [x for x in DOTS if "•" not in x["name"]]
    # A GBK return file with the dot variants GBK has (· ． .), kept as sent.
    lines = []
    for r in dots:
        lines.append(b"D" + num(r["seq"], 8) + fw(r["account"], 32, "gbk") + fw(r["name"], 60, "gbk") + num(r["amount_fen"], 15) +
                     num(r["amount_fen"], 15) + b"0000" + fw("SN1", 20, "gbk") + fw("交易成功", 60, "gbk"))
    lines.append(b"T" + fw(bbn, 20, "gbk") + num(3, 8) + num(60000, 15) + num(3, 8) + num(0, 8))
    write(f"{d}/minority_dots/input", crlf(lines))
    # 𠮷 can only come as GB18030 4-byte bytes, which a GBK file cannot hold.
    nb = results([NONBMP], RCC_OK([NONBMP]))
    write(f"{d}/nonbmp_name/input", crlf(rcc_ret_lines(nb, bbn, enc="gb18030")))

# ---------------------------------------------------------------- PIPE (| GB18030 yuan)
def pipe_out(recs, bbn):
    total = sum(r["amount_fen"] for r in recs)
    lines = ["H|%s|20261128|%d|%s|%s|" % (bbn, len(recs), yuan(total), BATCH["memo"])]
    for r in recs:
        lines.append("%d|%s|%s|%s|%s|%s|" % (r["seq"], r["account"], r["name"], r["id_number"], yuan(r["amount_fen"]), r["remark"]))
    return "".join(l + "\n" for l in lines).encode("gb18030")

def pipe_ret_lines(res, bbn, count=None):
    paid = [r for r, c, m, s in res if c == "S"]
    tot = sum(r["amount_fen"] for r, *_ in res)
    lines = ["H|%s|%d|%s|%d|%s|" % (bbn, count if count is not None else len(res), yuan(tot), len(paid), yuan(sum(r["amount_fen"] for r in paid)))]
    for r, code, msg, sn in res:
        lines.append("%s|%s|%s|%s|%s|%s|" % (r["account"], r["name"], yuan(r["amount_fen"]), code, msg, sn if code == "S" else ""))
    return lines

PIPE_OK = lambda recs, extra={}: {r["seq"]: extra.get(r["seq"], ("S", "成功")) for r in recs}

def gen_delim(code, out_fn, ret_fn, ok_fn, fail_map, unknown, sep_bad, default_eol, other_eol, dot_ok):
    d = os.path.join(ROOT, code)
    bbn = code.upper() + "20261128000001"
    enc = lambda ls, eol=default_eol: "".join(l + eol for l in ls).encode("gb18030")
    write(f"{d}/render_all/batch.json", batch_json(BASE, bbn))
    write(f"{d}/render_all/expected.out", out_fn(BASE, bbn))
    write(f"{d}/render_dots/batch.json", batch_json(DOTS, bbn))
    write(f"{d}/render_dots/expected.out", out_fn(DOTS, bbn))
    write(f"{d}/render_nonbmp/batch.json", batch_json(BASE + [NONBMP], bbn))
    write(f"{d}/render_nonbmp/expected.out", out_fn(BASE + [NONBMP], bbn))
    write(f"{d}/render_separator/batch.json", batch_json([dict(BASE[0], remark=sep_bad)], bbn))
    ok = results(BASE, ok_fn(BASE))
    write(f"{d}/all_paid/input", enc(ret_fn(ok, bbn)))
    mixed = results(BASE, ok_fn(BASE, fail_map))
    write(f"{d}/mixed_failures/input", enc(ret_fn(mixed, bbn)))
    write(f"{d}/lf/input", enc(ret_fn(mixed, bbn), "\n"))
    write(f"{d}/crlf/input", enc(ret_fn(mixed, bbn), "\r\n"))
    write(f"{d}/bom/input", b"\x84\x31\x95\x33" + enc(ret_fn(ok, bbn)))
    write(f"{d}/bom_utf8/input", b"\xef\xbb\xbf" + enc(ret_fn(ok, bbn)))
    write(f"{d}/trailing_blanks/input", enc([l + "   " for l in ret_fn(ok, bbn)]) + b"\n   \n\n")
    full = enc(ret_fn(ok, bbn))
    write(f"{d}/truncated/input", full[: len(full) * 2 // 3])
    write(f"{d}/summary_mismatch/input", enc(ret_fn(ok, bbn, count=3)))
    ls = ret_fn(ok + [ok[2]], bbn)
    write(f"{d}/duplicate_line/input", enc(ls))
    unk = results(BASE, ok_fn(BASE, unknown))
    write(f"{d}/unknown_code/input", enc(ret_fn(unk, bbn)))
    write(f"{d}/minority_dots/input", enc(ret_fn(results(DOTS, ok_fn(DOTS)), bbn)))
    write(f"{d}/nonbmp_name/input", enc(ret_fn(results(BASE + [NONBMP], ok_fn(BASE + [NONBMP])), bbn)))

# ---------------------------------------------------------------- DEMO (| GB18030 fen, seq)
def demo_out(recs, bbn):
    total = sum(r["amount_fen"] for r in recs)
    lines = ["H|%s|1|20261128|%d|%d|%s" % (bbn, len(recs), total, BATCH["memo"])]
    for r in recs:
        lines.append("%d|%s|%s|%s|%d|%s" % (r["seq"], r["account"], r["name"], r["id_number"], r["amount_fen"], r["remark"]))
    return "".join(l + "\n" for l in lines).encode("gb18030")

def demo_ret_lines(res, bbn, count=None):
    paid = [r for r, c, m, s in res if c == "0000"]
    tot = sum(r["amount_fen"] for r, *_ in res)
    lines = ["H|%s|%d|%d|%d|%d|%d" % (bbn, count if count is not None else len(res), tot, len(paid), sum(r["amount_fen"] for r in paid), len(res) - len(paid))]
    for r, code, msg, sn in res:
        lines.append("%d|%s|%s|%d|%s|%s|%s" % (r["seq"], r["account"], r["name"], r["amount_fen"], code, msg, sn if code == "0000" else ""))
    return lines

DEMO_OK = lambda recs, extra={}: {r["seq"]: extra.get(r["seq"], ("0000", "成功")) for r in recs}

# ---------------------------------------------------------------- XML (GB18030 direct connect)
def xml_doc(head, body, details, eol="\n"):
    out = ['<?xml version="1.0" encoding="GB18030"?>', "<CMS>", "  <Head>"]
    out += ["    <%s>%s</%s>" % (k, v, k) for k, v in head]
    out += ["  </Head>", "  <Body>"]
    out += ["    <%s>%s</%s>" % (k, v, k) for k, v in body]
    out += ["    <Details>"]
    for d in details:
        out += ["      <Detail>"] + ["        <%s>%s</%s>" % (k, v, k) for k, v in d] + ["      </Detail>"]
    out += ["    </Details>", "  </Body>", "</CMS>"]
    return eol.join(out) + eol

def xml_out(recs, bbn):
    total = sum(r["amount_fen"] for r in recs)
    head = [("TrxCode", "BATPAY"), ("CustId", "YKT0001"), ("TrxDate", "20261128"), ("TrxTime", "000000"), ("ReqSerial", bbn)]
    body = [("TotalNum", len(recs)), ("TotalAmt", yuan(total)), ("Purpose", BATCH["memo"])]
    det = [[("Seq", r["seq"]), ("AcctNo", r["account"]), ("AcctName", r["name"]), ("IdNo", r["id_number"]), ("Amount", yuan(r["amount_fen"])), ("Remark", r["remark"])] for r in recs]
    return xml_doc(head, body, det).encode("gb18030")

def xml_ret(res, bbn, eol="\n", count=None, batch=("AAAAAAA", "交易处理完成"), dup=False):
    paid = [r for r, c, m, s in res if c == "AAAAAAA"]
    head = [("TrxCode", "BATPAY"), ("ReqSerial", bbn), ("RetCode", batch[0]), ("RetMsg", batch[1])]
    body = [("TotalNum", count if count is not None else len(res)), ("TotalAmt", yuan(sum(r["amount_fen"] for r, *_ in res))),
            ("SuccNum", len(paid)), ("SuccAmt", yuan(sum(r["amount_fen"] for r in paid)))]
    det = [[("Seq", r["seq"]), ("AcctNo", r["account"]), ("AcctName", r["name"]), ("Amount", yuan(r["amount_fen"])),
            ("RetCode", c), ("RetMsg", m), ("BankSerial", s if c == "AAAAAAA" else "")] for r, c, m, s in res]
    return xml_doc(head, body, det, eol)

XML_OK = lambda recs, extra={}: {r["seq"]: extra.get(r["seq"], ("AAAAAAA", "成功")) for r in recs}

def gen_xml():
    d = os.path.join(ROOT, "xml")
    bbn = "XMLB20261128000001"
    g = lambda s: s.encode("gb18030")
    write(f"{d}/render_all/batch.json", batch_json(BASE, bbn))
    write(f"{d}/render_all/expected.out", xml_out(BASE, bbn))
    write(f"{d}/render_dots/batch.json", batch_json(DOTS, bbn))
    write(f"{d}/render_dots/expected.out", xml_out(DOTS, bbn))
    write(f"{d}/render_nonbmp/batch.json", batch_json(BASE + [NONBMP], bbn))
    write(f"{d}/render_nonbmp/expected.out", xml_out(BASE + [NONBMP], bbn))
    esc = dict(BASE[0], remark="A&B<C>")
    write(f"{d}/render_escape/batch.json", batch_json([esc], bbn))
    write(f"{d}/render_escape/expected.out", xml_out([dict(esc, remark="A&amp;B&lt;C&gt;")], bbn))
    ok = results(BASE, XML_OK(BASE))
    write(f"{d}/all_paid/input", g(xml_ret(ok, bbn)))
    mixed = results(BASE, XML_OK(BASE, {2: ("EAC0002", "户名与账号不符"), 3: ("EAC0005", "睡眠户"), 4: ("ESY9999", "银行原因，请重新发送")}))
    write(f"{d}/mixed_failures/input", g(xml_ret(mixed, bbn, batch=("BBBBBBB", "部分成功"))))
    write(f"{d}/lf/input", g(xml_ret(ok, bbn)))
    write(f"{d}/crlf/input", g(xml_ret(ok, bbn, "\r\n")))
    write(f"{d}/bom/input", b"\x84\x31\x95\x33" + g(xml_ret(ok, bbn)))
    write(f"{d}/bom_utf8/input", b"\xef\xbb\xbf" + g(xml_ret(ok, bbn)))
    write(f"{d}/trailing_blanks/input", g(xml_ret(ok, bbn).replace("\n", "   \n") + "\n\n  \n"))
    full = g(xml_ret(ok, bbn))
    write(f"{d}/truncated/input", full[: len(full) // 2])
    write(f"{d}/summary_mismatch/input", g(xml_ret(ok, bbn, count=3)))
    write(f"{d}/duplicate_line/input", g(xml_ret(ok + [ok[0]], bbn)))
    unk = results(BASE, XML_OK(BASE, {1: ("EZZ1234", "未定义的错误")}))
    write(f"{d}/unknown_code/input", g(xml_ret(unk, bbn)))
    write(f"{d}/minority_dots/input", g(xml_ret(results(DOTS, XML_OK(DOTS)), bbn)))
    write(f"{d}/nonbmp_name/input", g(xml_ret(results(BASE + [NONBMP], XML_OK(BASE + [NONBMP])), bbn)))

gen_rcc()
gen_delim("pipe", pipe_out, pipe_ret_lines, PIPE_OK,
          {2: ("F", "户名与账号不符"), 3: ("F", "卡或帐号已销户"), 4: ("F", "E01姓名错误")},
          {1: ("X", "待人工处理")}, "含|竖线", "\n", "\r\n", True)
gen_delim("demo", demo_out, demo_ret_lines, DEMO_OK,
          {2: ("E101", "户名与账号不符"), 3: ("E107", "睡眠户"), 4: ("E999", "银行原因，请重新发送")},
          {1: ("E777", "未知错误")}, "含|竖线", "\n", "\r\n", True)
gen_xml()
