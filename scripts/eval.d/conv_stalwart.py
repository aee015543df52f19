"""stalwartlabs/mail-parser: resources/eml/{rfc,legacy,thirdparty,malformed}/NNN.eml with the
parse result the suite pins for each (NNN.json, checked by src/parsers/message.rs
parse_full_messages on the message with LF line ends).

This is the upstream of the MIME parser psa-mail-agent itself uses (mail-parser 0.11), so the
source guards what the ticket builder does on top of it (header decoding, body choice,
attachments) more than it checks the MIME parsing independently.

Mapping (pinned result -> ticket field):
  headers from / to / cc      -> from.address + from.name, to, cc (group members flattened)
  subject, message_id         -> subject, message_id
  date (DateTime)             -> date (same instant)
  text_body = [one Text part] -> body_full (only when the message has a text part of its own:
                                 text_body differs from html_body)
  attachments = [parts]       -> attachments.count, and per part content_type, filename
                                 (content-disposition filename, else content-type name) and,
                                 for binary parts, size and SHA-256 of the decoded bytes
Not mapped: a header the message carries more than once (the pinned result lists each, not
which one counts), a date the source could not read. Contract conflicts are excluded per
check with their reason (CONFLICT_* below).
"""

import hashlib
import json
import re

from lib import rfc3339_utc  # noqa: F401  (kept for symmetry with the other converters)

SUITES = ["rfc", "legacy", "thirdparty", "malformed"]
BASE = "resources/eml"

COMMENT_NAME = ("the source keeps the '(comment)' of the address in the display name; the ticket's "
                "name leaves comments out (issue #11 item 4: 'Name (comment) <addr>' gives the name "
                "without the comment)")


NO_TEXT = ("the message has no text (an empty text part beside its attachments); the source's body is "
           "empty, the ticket's body says what the attachments are (issue #11 item 3: a mail whose "
           "content is an image, a PDF or an invitation gets a body that says what it is)")
UU_PART = ("Content-Transfer-Encoding: x-uuencode: mail-parser leaves the part encoded, the ticket "
           "carries the decoded file (issue #11 item 3; zbateson expects the decoded bytes too)")
UU_TEXT = ("the text body holds uuencoded files ('begin 666 name' ... 'end'): the source keeps them as "
           "text, the ticket makes them attachments and leaves them out of the body (issue #11 item 3; "
           "zbateson m0018 expects the same)")
UU_BEGIN = re.compile(rb"^begin [0-7]{3,4} \S", re.M)


def uu_part(part):
    for h in part.get("headers") or []:
        if str(h.get("name", "")).lower().replace("_", "-") in ("content-transfer-encoding",):
            v = h.get("value")
            text = v.get("Text") if isinstance(v, dict) else v
            if isinstance(text, str) and "uu" in text.lower():
                return True
    return False


NO_ADDRESS = ("the source lists a recipient without an address (a group name or a bare phrase); a "
              "ticket's to/cc entry is an address")
REPLACEMENT = ("the source reads raw 8-bit header bytes as U+FFFD; the ticket decodes them (UTF-8, "
               "else the message's charset, else Windows-1252: issue #11 item 4, never U+FFFD where "
               "a reading exists)")
UTF7 = ("the message declares charset UTF-7 and the source leaves the header's UTF-7 undecoded "
        "('+APY-'); the ticket reads raw header text in the message's own charset (issue #11 item 4)")


def utf7_literal(raw, value):
    """The pinned value keeps UTF-7 shifts (+...-) of a message whose charset is UTF-7."""
    return bool(re.search(r"charset\s*=\s*\"?utf-7", (raw or b"").decode("latin-1"), re.I)) and bool(
        re.search(r"\+[A-Za-z0-9+/]+-", value or ""))


def hval(part, name):
    vals = [h["value"] for h in part["headers"] if h["name"] == name]
    return vals


def attrs(ct):
    return {a["name"].lower(): a["value"] for a in (ct.get("attributes") or [])}


def addresses(v):
    a = v.get("Address") if isinstance(v, dict) else None
    if not a:
        return None
    if "List" in a:
        return [{"address": x.get("address"), "name": x.get("name")} for x in a["List"]]
    out = []
    for g in a.get("Group", []):
        out += [{"address": x.get("address"), "name": x.get("name")} for x in g.get("addresses") or []]
    return out


def date_of(v):
    d = v.get("DateTime") if isinstance(v, dict) else None
    if not d or not d.get("year"):
        return None
    sign = -1 if d.get("tz_before_gmt") else 1
    off = sign * (d.get("tz_hour", 0) * 60 + d.get("tz_minute", 0))
    import datetime

    dt = datetime.datetime(d["year"], d["month"], d["day"], d["hour"], d["minute"], d["second"],
                           tzinfo=datetime.timezone(datetime.timedelta(minutes=off)))
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def raw_header(raw, name):
    text = raw.decode("latin-1").replace("\r\n", "\n")
    head = text.split("\n\n", 1)[0]
    unfolded = re.sub(r"\n[ \t]+", " ", head)
    return [line.split(":", 1)[1] for line in unfolded.split("\n")
            if line.lower().startswith(name.lower() + ":")]


def convert(repo, out):
    for suite in SUITES:
        for path in sorted(p for p in repo.ls(f"{BASE}/{suite}") if p.endswith(".eml")):
            num = path.rsplit("/", 1)[1][:-4]
            raw = repo.read_or_none(path)
            # NNN.json pins the result for the message with LF line ends, NNN.crlf.json with
            # CRLF: take the one that describes the file as it is.
            crlf = raw is not None and b"\r\n" in raw
            res = json.loads(repo.read(path[:-4] + (".crlf.json" if crlf else ".json")))
            root = res["parts"][0]
            expect, exclude = {}, []
            for field in ("from", "to", "cc"):
                vals = hval(root, field)
                if len(vals) != 1:
                    continue
                addrs = addresses(vals[0])
                if addrs is None:
                    continue
                if field == "from":
                    if not addrs:
                        continue
                    expect["from.address"] = addrs[0]["address"]
                    name = addrs[0]["name"]
                    raw_from = raw_header(raw or b"", "from")
                    if name and "(" in name and raw_from and re.search(r"\)\s*$", raw_from[0].strip()):
                        exclude.append({"field": "from.name", "expected": name, "reason": COMMENT_NAME})
                    elif name and "\ufffd" in name:
                        exclude.append({"field": "from.name", "expected": name, "reason": REPLACEMENT})
                    elif utf7_literal(raw, name):
                        exclude.append({"field": "from.name", "expected": name, "reason": UTF7})
                    else:
                        expect["from.name"] = name
                elif any(not x["address"] for x in addrs):
                    exclude.append({"field": field, "expected": addrs, "reason": NO_ADDRESS})
                elif any("\ufffd" in (x["name"] or "") or utf7_literal(raw, x["name"]) for x in addrs):
                    # The addresses are still checked; the names the source misreads are not.
                    kept = []
                    for x in addrs:
                        name = x["name"] or ""
                        why = REPLACEMENT if "\ufffd" in name else UTF7 if utf7_literal(raw, name) else None
                        if why:
                            exclude.append({"field": field + ".name", "expected": x, "reason": why})
                            kept.append({"address": x["address"]})
                        else:
                            kept.append(x)
                    expect[field] = kept
                else:
                    expect[field] = addrs
            for field, key in (("subject", "subject"), ("message_id", "message_id")):
                vals = hval(root, field)
                if len(vals) == 1 and isinstance(vals[0], dict) and "Text" in vals[0]:
                    if "\ufffd" in vals[0]["Text"]:
                        exclude.append({"field": key, "expected": vals[0]["Text"], "reason": REPLACEMENT})
                    elif key == "subject" and utf7_literal(raw, vals[0]["Text"]):
                        exclude.append({"field": key, "expected": vals[0]["Text"], "reason": UTF7})
                    else:
                        expect[key] = vals[0]["Text"]
            vals = hval(root, "date")
            if len(vals) == 1 and date_of(vals[0]):
                expect["date"] = date_of(vals[0])
            tb, hb = res.get("text_body") or [], res.get("html_body") or []
            atts = res.get("attachments") or []
            uu_in_text = bool(UU_BEGIN.search(raw or b""))
            if len(tb) == 1 and tb != hb and "Text" in res["parts"][tb[0]]["body"]:
                text = res["parts"][tb[0]]["body"]["Text"]
                if not text.strip() and atts:
                    exclude.append({"field": "body_full", "expected": text, "reason": NO_TEXT})
                elif uu_in_text and UU_BEGIN.search(text.encode("utf-8", "replace")):
                    exclude.append({"field": "body_full", "expected": text, "reason": UU_TEXT})
                else:
                    expect["body_full"] = text
            if uu_in_text and not any(uu_part(res["parts"][i]) for i in atts):
                exclude.append({"field": "attachments.count", "expected": len(atts), "reason": UU_TEXT})
            else:
                expect["attachments.count"] = len(atts)
            listed = []
            for i in atts:
                p = res["parts"][i]
                ct = next(iter(hval(p, "content_type")), {})
                ct = (ct.get("ContentType") if isinstance(ct, dict) else None) or {}
                cd = next(iter(hval(p, "content_disposition")), {})
                cd = (cd.get("ContentType") if isinstance(cd, dict) else None) or {}
                entry = {}
                if ct.get("c_type"):
                    entry["content_type"] = f"{ct['c_type']}/{ct.get('c_subtype') or ''}".rstrip("/")
                name = attrs(cd).get("filename") or attrs(ct).get("name")
                if name:
                    entry["filename"] = name
                kind, body = next(iter(p["body"].items()))
                if uu_part(p) and kind in ("Binary", "InlineBinary"):
                    exclude.append({"field": "attachments", "expected": f"size and sha256 of {name!r}",
                                    "reason": UU_PART})
                elif kind in ("Binary", "InlineBinary"):
                    data = bytes(body)
                    entry["size"] = len(data)
                    entry["sha256"] = hashlib.sha256(data).hexdigest()
                listed.append(entry)
            if listed:
                expect["attachments"] = listed
            out.add(f"{suite}/{num}", raw, path, expect, exclude=exclude or None,
                    name=f"{suite}-{num}.eml")
