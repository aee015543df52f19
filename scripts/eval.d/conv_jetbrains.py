"""JetBrains/email-parser: src/test/resources/testEmls/<set>/<n>.eml (real mails of a
helpdesk mailbox, anonymised, many Russian) with the expected quote header of
src/test/kotlin/quoteParser/QuoteParser*Specs.kt: QuoteHeader(startIndex, endIndex, text)
or null (no quote).

The source's parser takes the first text/plain part (depth first, as JavaMail's getContent
decodes it) and splits it into lines; startIndex is the first line of the quote (its header,
or the first '>' line when the header text is empty). So the new text is lines[0:startIndex],
or every line when the expected header is null, and it maps to the ticket's `body`. The
converter re-derives the lines with Python's email package and checks that
lines[startIndex:endIndex] equal the header text the source states; a case where they do not
is excluded (the line index could not be reproduced).

Sets used: SL (single-line headers), ML (multi-line headers), AB (quote marks only),
phrases, recursive (outer header), empty (no quote). Not used: `error`, whose specs pin known
wrong outputs of that parser (e.g. 166.eml: 'Time: 2014-06-05 12:20 GMT+4 (MSK)' in the
middle of a bug report taken as a quote header) - each is listed as excluded with its reason.
"""

import email
import email.policy
import re

SPECS = "src/test/kotlin/quoteParser"
EMLS = "src/test/resources/testEmls"
SETS = {"SL": "SL", "ML": "ML", "AB": "AB", "Phrase": "phrases", "Rec": "recursive",
        "Empty": "empty", "Error": "error"}

# Contract conflicts, found by reading every expected body that today's parse misses
# (reviewed by hand; the reason is written into cases.json).
SIGNATURE = ("the source's new text keeps the '-- ' signature block; the ticket body drops "
             "signatures (DESIGN.md)")
INTERLEAVED = ("the source's new text keeps '>'-quoted lines (an interleaved reply, or quoting "
               "without a header); the ticket body removes quoted lines and keeps the answers "
               "between them (DESIGN.md, tests/fixtures/mail/interleaved-reply)")
LATE_HEADER = ("the source's quote header starts below the first line(s) of the mail client's "
               "header block (From:/Da:/От: ...), which its new text keeps; the ticket body cuts the "
               "whole block")
ATTRIBUTION_KEPT = ("the source's quote starts at the first '>' line (set AB: quote marks only), so its "
                    "new text keeps the attribution line ('Zhuk Pavel wrote:') above the quote; the ticket "
                    "body removes reply headers with the quote (issue #11 item 1)")
CONFLICTS = {
    "SL/75": SIGNATURE, "AB/149": ATTRIBUTION_KEPT,
    "SL/10": SIGNATURE, "SL/259": SIGNATURE, "SL/11461": SIGNATURE, "ML/3697": SIGNATURE,
    "ML/3715": SIGNATURE,
    "SL/245": INTERLEAVED, "SL/599": INTERLEAVED, "SL/1066": INTERLEAVED, "SL/4169": INTERLEAVED,
    "AB/4237": INTERLEAVED, "AB/5370": INTERLEAVED, "empty/205": INTERLEAVED,
    "empty/1165": INTERLEAVED,
    "ML/82": LATE_HEADER, "ML/279": LATE_HEADER, "ML/348": LATE_HEADER, "ML/17747": LATE_HEADER,
}


def kotlin_string(tok):
    if tok.startswith('"""'):
        return tok[3:-3]
    body = tok[1:-1]
    esc = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "$": "$"}
    return re.sub(r"\\(.)", lambda m: esc.get(m.group(1), m.group(1)), body)


STR = r'"""(?:.|\n)*?"""|"(?:[^"\\\n]|\\.)*"'


def specs(repo, kind):
    src = repo.text(f"{SPECS}/QuoteParser{kind}Specs.kt")
    # Each given("eml file") block: emailNum, then the first QuoteHeader(...) or `null`.
    for block in re.split(r'given\("eml file"\)', src)[1:]:
        num = int(re.search(r"val emailNum = (\d+)", block).group(1))
        m = re.search(r"QuoteHeader\(\s*startIndex = (\d+),\s*endIndex = (\d+),\s*text = listOf\((.*?)\)\s*\)",
                      block, re.S)
        if m:
            # listOf("a", "b" + "c"): elements split at commas between literals, `+` joins.
            elems, cur = [], []
            for tok in re.findall(STR + r"|,", m.group(3)):
                if tok == ",":
                    elems.append("".join(cur))
                    cur = []
                else:
                    cur.append(kotlin_string(tok))
            if cur:
                elems.append("".join(cur))
            texts = elems
            yield num, (int(m.group(1)), int(m.group(2)), texts)
        elif re.search(r"val expectedQuoteHeader(?:: QuoteHeader\?)? = null", block):
            yield num, None
        else:
            raise ValueError(f"{kind} {num}: no expectation found")


def first_plain(part):
    if part.get_content_type() == "text/plain":
        data = part.get_payload(decode=True) or b""
        cs = part.get_content_charset() or "us-ascii"
        if cs.lower() in ("us-ascii", "ascii", "iso-8859-1", "latin1", "latin-1"):
            # As mail clients read these labels (WHATWG Encoding: windows-1252).
            cs = "cp1252"
        try:
            return data.decode(cs)
        except (LookupError, UnicodeDecodeError):
            return data.decode("latin-1")
    if part.is_multipart():
        for sub in part.get_payload():
            t = first_plain(sub)
            if t is not None:
                return t
    return None


def kotlin_lines(text):
    return re.split(r"\r\n|\n|\r", text)


def convert(repo, out):
    for kind, folder in SETS.items():
        for num, header in specs(repo, kind):
            path = f"{EMLS}/{folder}/{num}.eml"
            raw = repo.read(path)
            cid = f"{folder}/{num}"
            if kind == "Error":
                out.add(cid, raw, path, {}, name=f"{folder}-{num}.eml",
                        excluded="source's `error` set pins known-wrong outputs of its parser, "
                                 f"not the true quote start (expected header: {header[2] if header else None})")
                continue
            msg = email.message_from_bytes(raw, policy=email.policy.compat32)
            text = first_plain(msg)
            lines = kotlin_lines(text)
            if header is None:
                body = "\n".join(lines)
            else:
                start, end, texts = header
                if texts and [x.rstrip() for x in lines[start:end]] != [x.rstrip() for x in texts]:
                    out.add(cid, raw, path, {}, name=f"{folder}-{num}.eml",
                            excluded=f"could not reproduce the source's line index: lines {start}..{end} "
                                     f"are {lines[start:end]!r}, the source states {texts!r}")
                    continue
                body = "\n".join(lines[:start])
            expect, exclude = {"body": body}, None
            if cid in CONFLICTS:
                exclude = [{"field": "body", "expected": body, "reason": CONFLICTS[cid]}]
                expect = {}
            out.add(cid, raw, path, expect, exclude=exclude, name=f"{folder}-{num}.eml",
                    note=(f"quote header at line {header[0]}: {header[2]!r}" if header and header[2]
                          else f"quote marks from line {header[0]}" if header else "no quote"))
