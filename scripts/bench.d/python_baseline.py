#!/usr/bin/env python3
"""The Python standard-library baseline for scripts/bench: what many helpdesk scripts do.

imaplib over TLS, UID SEARCH ALL, then one UID FETCH BODY.PEEK[] per message, email.parser
(policy=default) and the same ticket fields as psa-mail-agent (addresses, date, priority,
text/HTML bodies, attachments with SHA-256, threading headers), one JSON line each to stdout.

Environment: PMA_BENCH_HOST PMA_BENCH_PORT PMA_BENCH_CA PMA_BENCH_USER PMA_BENCH_PASSWORD
[PMA_BENCH_FOLDER]. Prints `python: MESSAGES messages BYTES bytes` to stderr.
"""
import email
import email.policy
import email.utils
import hashlib
import imaplib
import json
import os
import ssl
import sys


def addresses(msg, name):
    return [{"name": n or None, "address": a}
            for n, a in email.utils.getaddresses(msg.get_all(name, []))]


def ticket(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    body = text.get_content() if text is not None else ""
    attachments = []
    for part in msg.walk():
        if part.is_multipart() or part in (text, html):
            continue
        data = part.get_payload(decode=True) or b""
        attachments.append({
            "filename": part.get_filename(),
            "content_type": part.get_content_type(),
            "size": len(data),
            "inline": part.get_content_disposition() == "inline",
            "content_id": (part.get("Content-ID") or "").strip("<>") or None,
            "sha256": hashlib.sha256(data).hexdigest(),
        })
    date = msg.get("Date")
    try:
        date = email.utils.parsedate_to_datetime(date).isoformat() if date else None
    except (TypeError, ValueError):
        date = None
    sender = addresses(msg, "From")
    return {
        "message_id": (msg.get("Message-ID") or "").strip("<>") or None,
        "subject": str(msg.get("Subject", "")),
        "from": sender[0] if sender else None,
        "reply_to": addresses(msg, "Reply-To"),
        "to": addresses(msg, "To"),
        "cc": addresses(msg, "Cc"),
        "date": date,
        "priority": "high" if (msg.get("X-Priority") or "3")[:1] in "12" else "normal",
        # Quoted history cut at the first "On ... wrote:" line, as simple scripts do.
        "body": body.split("\nOn ")[0].strip(),
        "body_full": body,
        "body_html": html.get_content() if html is not None else None,
        "attachments": attachments,
        "thread": {"in_reply_to": msg.get("In-Reply-To"),
                   "references": (msg.get("References") or "").split()},
        "auto_generated": "bulk" if msg.get("Precedence") == "bulk" else None,
    }


def main():
    env = os.environ
    ctx = ssl.create_default_context(cafile=env["PMA_BENCH_CA"])
    imap = imaplib.IMAP4_SSL(env["PMA_BENCH_HOST"], int(env["PMA_BENCH_PORT"]), ssl_context=ctx)
    imap.login(env["PMA_BENCH_USER"], env["PMA_BENCH_PASSWORD"])
    imap.select(env.get("PMA_BENCH_FOLDER") or "INBOX", readonly=True)
    _, data = imap.uid("SEARCH", None, "ALL")
    count = size = 0
    out = sys.stdout
    for uid in data[0].split():
        _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
        raw = parts[0][1]
        out.write(json.dumps(ticket(raw)) + "\n")
        count += 1
        size += len(raw)
    imap.logout()
    print(f"python: {count} messages {size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
