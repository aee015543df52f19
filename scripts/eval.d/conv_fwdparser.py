"""crisp-oss/email-forward-parser: test/fixtures/*_body.txt (bodies of forwarded mails as
Apple Mail, Gmail, Outlook (Live/365, 2013, 2019, new 2019), Yahoo, Thunderbird, HubSpot,
Missive, IONOS, MailMate write them, in up to 22 locales) with the expectations of
test/index.js. (An independent library; not one of the reply parsers held out.)

Each fixture is a body only: it is wrapped in a minimal text/plain UTF-8 message (lib.synth_eml)
whose Subject is the fixture's subject file when the test passes one, else
"Fwd: Integer consequat non purus" (the forwarded subject the suite uses).

Mapping of test/index.js's expectations to the ticket body (DESIGN.md: body = the new text;
a forward without a comment keeps the forwarded mail so that nothing is lost):
  result.message == MESSAGE (skipMessage false)
        -> body == MESSAGE: the sender's comment above the forward, nothing else
  result.message == null (testCommon) and email.body == BODY
        -> body_contains [BODY]: no comment, so the forwarded text must be in the body
  message not stated (skipMessage true without the null check)
        -> excluded: the comment is not stated, no body can be derived
  forwarded == false (variant 4: replies)
        -> excluded: the source states only that these are not forwards
"""

import re

from lib import synth_eml

TEST = "test/index.js"
FIX = "test/fixtures"
SUBJECT = "Integer consequat non purus"


def js_consts(src):
    consts = {}
    for m in re.finditer(r'const (\w+) = ("(?:[^"\\]|\\.)*");', src):
        consts[m.group(1)] = m.group(2)[1:-1].encode().decode("unicode_escape").encode("latin-1").decode("utf-8")
    return consts


def convert(repo, out):
    src = repo.text(TEST)
    consts = js_consts(src)
    message, body = consts["MESSAGE"], consts["BODY"]
    for tm in re.finditer(r"(test\w+): function\(test\) \{(.*?)test\.done\(\);", src, re.S):
        tname, block = tm.group(1), tm.group(2)
        lm = re.search(r"loopTests\(\s*\[(.*?)\],\s*\(result", block, re.S)
        entries = []
        for em in re.finditer(r'\[\s*"([^"]+)",\s*"([^"]+)"\s*\]|"([^"]+)"', lm.group(1)):
            entries.append((em.group(1), em.group(2)) if em.group(1) else (em.group(3), None))
        cb = block[lm.end():]
        te = re.search(r"testEmail\((.*?)\);", cb, re.S)
        flags = []
        if te:
            args = re.sub(r"//[^\n]*", "", te.group(1))
            flags = [a.strip() == "true" for a in args.split(",")[2:] if a.strip()]
        flags += [False] * (5 - len(flags))
        skip_message, skip_body = flags[3], flags[4]
        not_forward = "result.forwarded, false" in cb
        message_null = "strictEqual(result.message, null)" in cb
        for name, subj_name in entries:
            path = f"{FIX}/{name}.txt"
            text = repo.read(path)
            if subj_name:
                subject = repo.text(f"{FIX}/{subj_name}.txt").strip()
            else:
                subject = SUBJECT if not_forward else "Fwd: " + SUBJECT
            cid = name + (f"+{subj_name}" if subj_name else "")
            raw = synth_eml(text, "fwdparser-" + cid, subject)
            origin = path + (f" (subject {FIX}/{subj_name}.txt)" if subj_name else "")
            expect, excluded, note = {}, None, f"{tname}"
            if not_forward:
                excluded = f"{tname}: the source states only that this mail is not a forward (no body expectation)"
            elif not skip_message:
                expect["body"] = message
                note += ": the comment above the forward"
            elif message_null and not skip_body:
                expect["body_contains"] = [body]
                note += ": no comment, the forwarded text must stay in the body"
            else:
                excluded = f"{tname}: the source does not state the comment (result.message) of this variant"
            out.add(cid, raw, origin, expect, excluded=excluded, note=note, synthesized=True,
                    name=cid.replace("+", "__") + ".eml")
