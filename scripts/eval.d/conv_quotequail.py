"""closeio/quotequail: the reply/forward cases of tests/test_quote.py, test_quote_html.py,
test_unwrap.py and test_unwrap_html.py (inputs inline or in tests/files/*.html). Read with
Python's ast (literal values only; nothing of the suite is executed).

Inputs are bodies: wrapped in minimal UTF-8 messages (text/plain or text/html, lib.synth_eml).
Mapping to the ticket body (DESIGN.md: the new text, quote and signature removed; a forward
without a comment keeps the forwarded mail):
  quote(text, quote_intro_line=True) -> [(True, top), ...]      body == top
  quote_html(html, quote_intro_line=True) -> [(True, top), ...] body_from_html == top
  unwrap(text) -> None                                          body == text (nothing quoted)
  unwrap(text) -> {text_top, text_bottom?}                      body == text_top + text_bottom
  unwrap(text) -> {type: forward, text} without text_top        body_contains [text]
  unwrap_html(html) -> {html_top, ...}                          body_from_html == html_top
  unwrap_html(html) -> {type: forward, html} without html_top   body_contains [text of html]
  unwrap_html(html) -> None                                     body_from_html == html
(body_from_html: the scorer reads the expected HTML as text the way it reads body_html_text.)
Contract conflicts (reviewed by hand) are in CONFLICTS with their reason.
"""

import ast
import re

from lib import synth_eml

T = "tests"
SUBJECT = "Re: Lorem ipsum"

NOTHING_NEW = ("the source's new text is empty; the ticket body keeps the whole text when nothing new "
               "is left, so that a ticket never loses what the sender wrote (src/ticket/quote.rs, "
               "DESIGN.md: a forward without a comment keeps the forwarded mail)")
CONFLICTS = {
    "unwrap/9": "the source's text_bottom '--\\nkthxbye' is a signature block; the ticket body drops "
                "signatures (DESIGN.md), the source keeps it as new text",
    "unwrap/10": "the source keeps a lone '> ...' line as new text (one line is no quote to it); the "
                 "ticket body removes '>'-quoted lines",
    "unwrap_html/gmail_reply": "the source's html_bottom is the '-- ' signature block (gmail_signature), "
                               "which the ticket body drops",
    "unwrap_html/mailru_forward": "the forwarded text ends with a '--' signature block, which the ticket "
                                  "body drops",
    "quote_html/1": NOTHING_NEW,
    "quote_html/5": NOTHING_NEW,
    "unwrap_html/ios_mail_reply_unescaped_address": "the source's html_top ends with the tagline 'Sent from my "
                 "iPhone', which the ticket body removes (issue #11 item 2)",
}


def html_text(s):
    """The forwarded text of an HTML expectation, read as the scorer reads HTML."""
    import html

    block = r"br|p|div|li|ul|ol|tr|td|th|table|h[1-6]|blockquote|hr|pre|center|dl|dt|dd"
    s = re.sub(r"<!--.*?-->", "", s, flags=re.S)
    s = re.sub(r"<(head|style|script|title)\b.*?</\1\s*>", "", s, flags=re.S | re.I)
    s = re.sub(r"</?(?:" + block + r")\b[^>]*>", "\n", s, flags=re.I)
    s = re.sub(r"<[^>]*>", "", s)
    return html.unescape(s.replace("&nbsp;", " "))


def parametrized(tree):
    """(function name, argument names, list of value tuples) of every @pytest.mark.parametrize."""
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        for d in fn.decorator_list:
            if isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "parametrize":
                names = ast.literal_eval(d.args[0])
                names = names.split(",") if isinstance(names, str) else list(names)
                yield fn.name, [n.strip() for n in names], ast.literal_eval(d.args[1])


def plain_functions(tree):
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and not fn.decorator_list and fn.name.startswith("test_"):
            yield fn


def convert(repo, out):
    def add(cid, body, ctype, origin, expect, note):
        if cid in CONFLICTS:
            exclude = [{"field": k, "expected": v, "reason": CONFLICTS[cid]} for k, v in expect.items()]
            expect = {}
        else:
            exclude = None
        subject = "Fwd: Lorem ipsum" if note.startswith("forward") else SUBJECT
        raw = synth_eml(body, "quotequail-" + cid, subject, content_type=ctype)
        out.add(cid, raw, origin, expect, exclude=exclude, note=note, synthesized=True,
                name=cid.replace("/", "-") + (".eml"))

    def read_file(name):
        return repo.text(f"{T}/files/{name}")

    # quote() and quote_html()
    for mod, ctype in (("test_quote", "text/plain"), ("test_quote_html", "text/html")):
        tree = ast.parse(repo.text(f"{T}/{mod}.py"))
        for fname, names, rows in parametrized(tree):
            if "expected_quote_intro_line" not in names:
                continue
            for i, row in enumerate(rows):
                args = dict(zip(names, row))
                inp = args.get("text", args.get("html"))
                top = args["expected_quote_intro_line"][0]
                assert top[0] is True
                key = "body" if ctype == "text/plain" else "body_from_html"
                add(f"{mod[5:]}/{i}", inp, ctype, f"{T}/{mod}.py {fname}[{i}]", {key: top[1]},
                    "quote_intro_line=True: the part above the quote")

    # unwrap() and unwrap_html()
    for mod, ctype in (("test_unwrap", "text/plain"), ("test_unwrap_html", "text/html")):
        tree = ast.parse(repo.text(f"{T}/{mod}.py"))
        cases = []
        for fname, names, rows in parametrized(tree):
            for i, row in enumerate(rows):
                args = dict(zip(names, row))
                if "file" in args:
                    cases.append((f"{mod[5:]}/{args['file'][:-5]}", read_file(args["file"]),
                                  f"{T}/files/{args['file']} ({mod}.py {fname})", args["expected"]))
                else:
                    inp = args.get("text", args.get("html"))
                    cases.append((f"{mod[5:]}/{i}", inp, f"{T}/{mod}.py {fname}[{i}]", args["expected"]))
        for fn in plain_functions(tree):
            src = ast.get_source_segment(repo.text(f"{T}/{mod}.py"), fn)
            m = re.search(r'data = read_file\(\s*"([^"]+)"\s*\)', src)
            if not m or "unwrap_html(data)" not in src:
                continue
            fname = m.group(1)
            exp = None
            for node in ast.walk(fn):
                if (isinstance(node, ast.Compare) and isinstance(node.left, ast.Call)
                        and getattr(node.left.func, "id", "") == "unwrap_html"):
                    exp = ast.literal_eval(node.comparators[0])
            if exp is None:
                exp = {}
                for km in re.finditer(r'result\["(\w+)"\] == (read_file\(\s*"([^"]+)"\s*\)|"[^"]*")', src):
                    exp[km.group(1)] = read_file(km.group(3)) if km.group(3) else ast.literal_eval(km.group(2))
            cases.append((f"{mod[5:]}/{fname[:-5]}", read_file(fname), f"{T}/files/{fname} ({mod}.py {fn.name})", exp))
        for cid, inp, origin, exp in cases:
            html_mode = ctype == "text/html"
            if exp is None:
                add(cid, inp, ctype, origin, {"body_from_html" if html_mode else "body": inp},
                    "nothing quoted or forwarded: the whole text is new")
                continue
            top = exp.get("html_top" if html_mode else "text_top")
            bottom = exp.get("html_bottom" if html_mode else "text_bottom")
            if top is not None:
                if html_mode:
                    if bottom is not None:
                        top = top + "\n" + bottom
                    add(cid, inp, ctype, origin, {"body_from_html": top}, f"{exp.get('type')}: the text above (and below) the quote")
                else:
                    add(cid, inp, ctype, origin, {"body": top + ("\n\n" + bottom if bottom else "")},
                        f"{exp.get('type')}: the text above (and below) the quote")
            elif exp.get("type") == "forward" and (exp.get("html") or exp.get("text")):
                kept = html_text(exp["html"]) if html_mode else exp["text"]
                add(cid, inp, ctype, origin, {"body_contains": [kept]},
                    "forward without a comment: the forwarded text stays in the body")
            else:
                raw = synth_eml(inp, "quotequail-" + cid, SUBJECT, content_type=ctype)
                out.add(cid, raw, origin, {}, synthesized=True, name=cid.replace("/", "-") + ".eml",
                        excluded=f"the source states no new text and no forwarded text ({sorted(exp)})")
