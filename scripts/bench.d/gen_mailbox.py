#!/usr/bin/env python3
"""Writes a realistic helpdesk mailbox as maildir files (for scripts/bench).

    gen_mailbox.py MAILDIR COUNT [KIND]

KIND "mixed" (the default): 70% short text replies (quoted history, signatures), 20% HTML newsletters and notifications
with inline images (multipart/related), 10% with one 100 KB - 5 MB attachment (log-uniform),
and every 2000th message (at least one) about 25 MB. Deterministic for a given COUNT. The files
go straight into MAILDIR/cur, unread (":2,"), named with S= (file size) and W= (size with CRLF)
so Dovecot indexes them without reading them. Prints the number of messages, their bytes and
the largest message's bytes (all with CRLF, as IMAP sends them).

KIND "small": every message 5-50 KB (replies with long quoted history, newsletters with small
inline images, small attachments), where the cost per message dominates the cost per byte.
KIND "big": like "small", but the middle message is about 100 MB (a 75 MB attachment in base64):
peak memory must stay within that one message plus a bound.
"""
import base64
import os
import random
import sys

MB = 1024 * 1024


def main():
    maildir, count = sys.argv[1], int(sys.argv[2])
    kind = sys.argv[3] if len(sys.argv) > 3 else "mixed"
    if kind not in ("mixed", "small", "big"):
        sys.exit(f"gen_mailbox.py: unknown KIND {kind!r} (mixed, small or big)")
    rng = random.Random(20261128)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    # One pool of base64 text (76-character lines), sliced for every attachment and image:
    # random bytes, so nothing compresses and every slice differs.
    pool = base64.encodebytes(rng.randbytes(20 * MB))
    line = 77  # 76 characters and LF

    def b64(size):
        """About `size` decoded bytes as base64 lines, from a random place in the pool."""
        n = (size * 4 // 3) // line * line + line
        n = min(n, len(pool) - line)
        start = rng.randrange(0, (len(pool) - n) // line) * line
        return pool[start:start + n]

    words = ("printer", "VPN", "password", "invoice", "laptop", "Outlook", "server", "license",
             "Teams", "backup", "screen", "update", "account", "access", "network", "phone")
    people = ("Anna Schmidt", "Bob Miller", "Chloé Dubois", "Diego Ruiz", "Eva Novak",
              "Femi Adeyemi", "Grace Lee", "Hiro Tanaka", "Ines Costa", "Jan de Vries")

    def addr(name):
        return name.lower().replace(" ", ".").replace("é", "e") + "@customer.example"

    def sentence():
        return " ".join(rng.choice(words) if rng.random() < 0.3 else rng.choice(
            ("the", "is", "not", "working", "since", "this", "morning", "please", "can", "you",
             "check", "again", "after", "we", "restarted", "it", "and", "still", "no", "luck"))
            for _ in range(rng.randint(6, 18))).capitalize() + "."

    def headers(i, subject, sender, extra=""):
        day = 1 + i % 28
        return (f"Return-Path: <{addr(sender)}>\n"
                f"Received: from mx.customer.example (mx.customer.example [192.0.2.{i % 250 + 1}])\n"
                f"\tby mail.contoso.test with ESMTPS id {i:08x}; Mon, {day} Nov 2026 09:{i % 60:02d}:00 +0000\n"
                f"From: {sender} <{addr(sender)}>\n"
                f"To: Helpdesk <helpdesk@contoso.test>\n"
                f"Subject: {subject}\n"
                f"Date: Mon, {day} Nov 2026 09:{i % 60:02d}:{i % 59:02d} +0100\n"
                f"Message-ID: <bench-{i}@customer.example>\n"
                f"MIME-Version: 1.0\n{extra}")

    def reply(i, quoted_lines=(5, 40)):
        sender = rng.choice(people)
        ticket = 10000 + rng.randrange(5000)
        body = "\n\n".join(sentence() + " " + sentence() for _ in range(rng.randint(1, 4)))
        quoted = "\n".join("> " + sentence() for _ in range(rng.randint(*quoted_lines)))
        text = (f"Hi,\n\n{body}\n\nThanks,\n{sender}\n\n-- \n{sender}\nCustomer Ltd, IT\n"
                f"+44 20 7946 0{i % 1000:03d}\n\n"
                f"On Fri, 20 Nov 2026 at 10:00, Helpdesk <helpdesk@contoso.test> wrote:\n{quoted}\n")
        return (headers(i, f"RE: [Ticket #{ticket}] {rng.choice(words)} issue", sender,
                        f"In-Reply-To: <ticket-{ticket}@contoso.test>\n"
                        f"References: <ticket-{ticket}@contoso.test>\n")
                + "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
                + text).encode()

    def newsletter(i, image=(5_000, 60_000)):
        sender = rng.choice(("Contoso News", "Monitoring", "Vendor Updates", "SaaS Status"))
        images = rng.randint(1, 3)
        paras = "".join(f"<p style=\"font-family:Arial;font-size:14px\">{sentence()} {sentence()}</p>\n"
                        for _ in range(rng.randint(5, 30)))
        imgs = "".join(f'<img src="cid:img{k}.{i}@contoso" width="600" alt="banner {k}">\n'
                       for k in range(images))
        html = (f"<html><head><style>td {{ padding: 4px }}</style></head><body><table><tr><td>\n"
                f"{imgs}{paras}<a href=\"https://news.example/unsubscribe?u={i}\">Unsubscribe</a>"
                f"</td></tr></table></body></html>\n")
        text = "\n\n".join(sentence() for _ in range(rng.randint(5, 15)))
        parts = [f"--alt{i}\nContent-Type: text/plain; charset=utf-8\n\n{text}\n",
                 f"--alt{i}\nContent-Type: text/html; charset=utf-8\n\n{html}\n--alt{i}--\n"]
        out = [headers(i, f"{sender}: {rng.choice(words)} weekly digest #{i}", sender,
                       f"List-Unsubscribe: <https://news.example/unsubscribe?u={i}>\n"
                       + ("Precedence: bulk\n" if i % 2 else "Auto-Submitted: auto-generated\n"))
               .encode(),
               f"Content-Type: multipart/related; boundary=\"rel{i}\"\n\n--rel{i}\n"
               f"Content-Type: multipart/alternative; boundary=\"alt{i}\"\n\n".encode(),
               "".join(parts).encode()]
        for k in range(images):
            out.append(f"\n--rel{i}\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n"
                       f"Content-ID: <img{k}.{i}@contoso>\nContent-Disposition: inline; "
                       f"filename=\"banner{k}.png\"\n\n".encode())
            out.append(b64(rng.randint(*image)))
        out.append(f"--rel{i}--\n".encode())
        return b"".join(out)

    def attachment(i, size):
        sender = rng.choice(people)
        name, ctype = rng.choice((("report.pdf", "application/pdf"),
                                  ("logs.zip", "application/zip"),
                                  ("screenshot.jpg", "image/jpeg"),
                                  ("offer.docx", "application/vnd.openxmlformats-officedocument"
                                                 ".wordprocessingml.document")))
        text = "\n\n".join(sentence() for _ in range(rng.randint(2, 6)))
        return b"".join((
            headers(i, f"{rng.choice(words)} problem, see attached", sender).encode(),
            f"Content-Type: multipart/mixed; boundary=\"mix{i}\"\n\n--mix{i}\n"
            f"Content-Type: text/plain; charset=utf-8\n\n{text}\n\nRegards,\n{sender}\n\n--mix{i}\n"
            f"Content-Type: {ctype}; name=\"{name}\"\nContent-Transfer-Encoding: base64\n"
            f"Content-Disposition: attachment; filename=\"{name}\"\n\n".encode(),
            b64(size) if size < 15 * MB else b"".join(b64(size // 2) for _ in range(2)) if size < 30 * MB
            else b"".join(b64(size // 5) for _ in range(5)),
            f"--mix{i}--\n".encode()))

    if kind == "mixed":
        huge = set(range(1000, count, 2000)) or {count // 2}
    else:
        huge = set()
    total = largest = 0
    for i in range(count):
        r = rng.random()
        if kind == "big" and i == count // 2:
            raw = attachment(i, 75_000_000)  # about 100 MB once in base64
        elif kind != "mixed":
            # 5-50 KB: 60% replies with longer quoted history, 25% newsletters with small
            # images, 15% a small attachment.
            if r < 0.60:
                raw = reply(i, (60, 600))
            elif r < 0.85:
                raw = newsletter(i, (3_000, 12_000))
            else:
                raw = attachment(i, rng.randint(4_000, 34_000))
        elif i in huge:
            raw = attachment(i, 18_500_000)  # about 25 MB once in base64
        elif r < 0.70:
            raw = reply(i)
        elif r < 0.90:
            raw = newsletter(i)
        else:
            raw = attachment(i, int(100_000 * (50 ** rng.random())))  # 100 KB .. 5 MB
        vsize = len(raw) + raw.count(b"\n")
        total += vsize
        largest = max(largest, vsize)
        name = f"{1795000000 + i}.M{i}P1.bench,S={len(raw)},W={vsize}:2,"
        with open(os.path.join(maildir, "cur", name), "wb") as f:
            f.write(raw)
    print(f"{count} {total} {largest}")


if __name__ == "__main__":
    main()
