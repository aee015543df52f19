"""Foundry376/Mailspring (GPL-3.0; list-only, never committed): the pairs
app/spec/fixtures/emails/email_N.html -> email_N_stripped.html that
app/spec/services/quoted-html-transformer-spec.ts checks with
QuotedHTMLTransformer.removeQuotedHTML(html, {keepIfWholeBodyIsQuote: true}).

Only those HTML pairs are read (the same folder holds text fixtures of another project, which
this converter never opens). Each input is wrapped in a minimal text/html UTF-8 message;
body_from_html == the stripped HTML (read as text by the scorer).
"""

import re

from lib import synth_eml

INTERLEAVED = ("the source keeps the quoted passages of an inline (interleaved) reply; the ticket body "
               "removes quoted lines and keeps the answers between them (DESIGN.md)")
CONFLICTS = {
    "email_5": "the source keeps a forwarded message below the sender's comment (it removes only reply "
               "quotes); the ticket body of a forward with a comment is the comment",
    "email_12": INTERLEAVED,
    "email_26": INTERLEAVED,
    "email_27": INTERLEAVED,
    "email_21": "the source's expected result keeps a Gmail reply quote ('On Fri, Nov 4, 2016 ... wrote:' "
                "and its blockquote); the ticket body removes quoted history",
    "email_17": "the fixture is HTML still in quoted-printable form ('=3D', '=' soft line breaks); both "
                "readings of the broken markup are arbitrary",
}

SPEC = "app/spec/services/quoted-html-transformer-spec.ts"
DIR = "app/spec/fixtures/emails"


def convert(repo, out):
    spec = repo.text(SPEC)
    m = re.search(r"for \(let n = (\d+); n <= (\d+); n\+\+\) \{\s*it\(`properly parses email_\$\{n\}`", spec)
    lo, hi = int(m.group(1)), int(m.group(2))
    assert "keepIfWholeBodyIsQuote: true" in spec[m.end():m.end() + 300]
    for n in range(lo, hi + 1):
        src, want = f"{DIR}/email_{n}.html", f"{DIR}/email_{n}_stripped.html"
        html = repo.read(src)
        stripped = repo.text(want).strip()
        raw = synth_eml(html, f"mailspring-email_{n}", "Re: Lorem ipsum", content_type="text/html")
        cid = f"email_{n}"
        expect, exclude = {"body_from_html": stripped}, None
        if cid in CONFLICTS:
            exclude = [{"field": "body_from_html", "expected": stripped, "reason": CONFLICTS[cid]}]
            expect = {}
        out.add(cid, raw, f"{src} -> {want}", expect, exclude=exclude, synthesized=True)
