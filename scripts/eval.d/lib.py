"""Shared helpers of the public-corpus converters (scripts/eval.d/build).

A converter reads one upstream repository at its pinned commit (through `git show`, so a bare
mirror, a clone or a shallow fetch all work), turns the upstream test suite's own expectations
into ticket-field expectations once, and writes messages plus a cases.json. Nothing here guesses
an expectation from our own parser: a value is either copied from the source's test code/data
or derived from it by a rule written in the converter (and stated in the case's `note`).
"""

import email.utils
import hashlib
import json
import os
import re
import subprocess
import sys
import unicodedata


class Repo:
    """Read-only view of one upstream repository at one commit."""

    def __init__(self, git_dir, commit):
        self.git_dir = git_dir
        self.commit = commit
        out = self._git("rev-parse", "--verify", commit + "^{commit}")
        if out.decode().strip() != commit:
            sys.exit(f"{git_dir}: commit {commit} not found")

    def _git(self, *args):
        r = subprocess.run(["git", "-C", self.git_dir, *args], capture_output=True)
        if r.returncode != 0:
            raise FileNotFoundError(f"git {' '.join(args)}: {r.stderr.decode().strip()}")
        return r.stdout

    def read(self, path):
        return self._git("show", f"{self.commit}:{path}")

    def read_or_none(self, path):
        """The file, or None when the snapshot lacks its content (some mirrors drop files of
        4 MiB and more)."""
        try:
            return self.read(path)
        except FileNotFoundError:
            return None

    def text(self, path):
        return self.read(path).decode("utf-8")

    def ls(self, folder):
        """Paths of the files directly or indirectly under folder."""
        out = self._git("ls-tree", "-r", "--name-only", self.commit, "--", folder.rstrip("/") + "/")
        return [p for p in out.decode().split("\n") if p]

    def size(self, path):
        out = self._git("cat-file", "-s", f"{self.commit}:{path}")
        return int(out.decode().strip())


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def synth_eml(body, case_id, subject, content_type="text/plain", sender=None, extra_headers=()):
    """Wraps a body-only fixture (a text or HTML snippet of a reply-trimming suite) into a
    minimal RFC 5322 message: fixed neutral headers, UTF-8, 8bit, LF line ends. The body bytes
    are the fixture's, untouched."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    name, addr = sender or ("Eval Sender", "sender@example.org")
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", case_id)
    head = [
        f"From: {name} <{addr}>",
        "To: Helpdesk <helpdesk@example.net>",
        f"Subject: {encode_header(subject)}",
        "Date: Mon, 01 Jan 2024 12:00:00 +0000",
        f"Message-ID: <{safe}@eval.psa-mail-agent.invalid>",
        *extra_headers,
        "MIME-Version: 1.0",
        f"Content-Type: {content_type}; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    return ("\n".join(head) + "\n\n").encode("ascii") + body


def encode_header(value):
    if all(32 <= ord(c) < 127 for c in value):
        return value
    import email.header

    return email.header.Header(value, "utf-8").encode()


def rfc3339_utc(date_text):
    """RFC 5322 date text -> RFC 3339 UTC, the ticket's `date` form."""
    import datetime

    dt = email.utils.parsedate_to_datetime(date_text)
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


MAX_MESSAGE = 512 * 1024


class Out:
    """Collects the cases of one source and writes them with their messages."""

    def __init__(self, out_dir, source):
        self.dir = out_dir
        self.source = source
        self.cases = []
        self.files = {}

    def add(self, case_id, raw, origin, expect, exclude=None, note=None, synthesized=False,
            excluded=None, name=None):
        fname = "messages/" + (name or re.sub(r"[^A-Za-z0-9._-]", "_", case_id) + ".eml")
        if raw is None or len(raw) > MAX_MESSAGE:
            why = "message content not available at the pinned commit" if raw is None else (
                f"message is {len(raw)} bytes; not vendored (corpus kept small, limit {MAX_MESSAGE})")
            excluded = excluded or why
            raw = None
            fname = None
        elif fname in self.files and self.files[fname] != raw:
            raise ValueError(f"{self.source}: two different messages for {fname}")
        if fname is not None:
            self.files[fname] = raw
        case = {"id": f"{self.source}/{case_id}", "file": fname, "sha256": sha256(raw) if raw else None,
                "origin": origin}
        if fname is None:
            del case["file"]
            del case["sha256"]
        if synthesized:
            case["synthesized"] = True
        if note:
            case["note"] = note
        case["expect"] = {k: v for k, v in expect.items() if v is not None or k == "from.name"}
        if exclude:
            case["exclude"] = exclude
        if excluded:
            case["excluded"] = excluded
        self.cases.append(case)

    def write(self, meta):
        os.makedirs(os.path.join(self.dir, "messages"), exist_ok=True)
        keep = set()
        for fname, raw in self.files.items():
            path = os.path.join(self.dir, fname)
            keep.add(os.path.normpath(path))
            with open(path, "wb") as f:
                f.write(raw)
        # Drop messages of an earlier run that no case uses any more.
        mdir = os.path.join(self.dir, "messages")
        for f in os.listdir(mdir):
            if os.path.normpath(os.path.join(mdir, f)) not in keep:
                os.remove(os.path.join(mdir, f))
        doc = dict(meta)
        doc["cases"] = self.cases
        with open(os.path.join(self.dir, "cases.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")


# --- a reader for the PHP array literals of PHP test suites ---------------------------------

_PHP_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>//[^\n]*|\#[^\n]*|/\*.*?\*/)
      | (?P<sq>'(?:[^'\\]|\\.)*')
      | (?P<dq>"(?:[^"\\]|\\.)*")
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<arrow>=>)
      | (?P<word>new\s+\\?DateTime|array|true|false|null|TRUE|FALSE|NULL)
      | (?P<punct>[\[\](),])
    )""",
    re.S | re.X,
)


def _php_tokens(src):
    pos = 0
    src = src.rstrip()
    while pos < len(src):
        m = _PHP_TOKEN.match(src, pos)
        if not m:
            raise ValueError(f"PHP literal: cannot read {src[pos:pos + 40]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "comment":
            continue
        yield kind, m.group(kind)


def _php_string(kind, tok):
    body = tok[1:-1]
    if kind == "sq":
        return re.sub(r"\\([\\'])", r"\1", body)
    esc = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "$", "0": "\0"}
    return re.sub(r"\\(.)", lambda m: esc.get(m.group(1), "\\" + m.group(1)), body)


def php_literal(src):
    """Parses a PHP literal made of arrays ([...] or array(...)), strings, numbers, booleans,
    null and `new DateTime('...')` (returned as {"DateTime": text})."""
    toks = list(_php_tokens(src))
    pos = 0

    def value():
        nonlocal pos
        kind, tok = toks[pos]
        pos += 1
        if kind in ("sq", "dq"):
            return _php_string(kind, tok)
        if kind == "num":
            return float(tok) if "." in tok else int(tok)
        if kind == "word":
            w = tok.lower()
            if w in ("true", "false"):
                return w == "true"
            if w == "null":
                return None
            if w == "array":
                assert toks[pos][1] == "("
                pos += 1
                return array(")")
            if w.startswith("new"):
                assert toks[pos][1] == "("
                pos += 1
                arg = value()
                assert toks[pos][1] == ")"
                pos += 1
                return {"DateTime": arg}
        if tok == "[":
            return array("]")
        raise ValueError(f"PHP literal: unexpected {tok!r}")

    def array(close):
        nonlocal pos
        items = []
        keyed = False
        while toks[pos][1] != close:
            v = value()
            if toks[pos][0] == "arrow":
                pos += 1
                items.append((v, value()))
                keyed = True
            else:
                items.append((None, v))
            if toks[pos][1] == ",":
                pos += 1
        pos += 1
        if keyed:
            return dict((k if k is not None else i, v) for i, (k, v) in enumerate(items))
        return [v for _, v in items]

    v = value()
    return v


def php_call_args(src, start):
    """Returns the text between the parenthesis at src[start] and its match."""
    assert src[start] == "("
    depth = 0
    i = start
    in_str = None
    while i < len(src):
        c = src[i]
        if in_str:
            if c == "\\":
                i += 2
                continue
            if c == in_str:
                in_str = None
        elif c in "'\"":
            in_str = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return src[start + 1:i]
        i += 1
    raise ValueError("unbalanced parenthesis")


def split_top_level(src, sep=","):
    """Splits PHP/JS argument text at top-level separators."""
    parts, depth, cur, in_str, i = [], 0, [], None, 0
    while i < len(src):
        c = src[i]
        if in_str:
            cur.append(c)
            if c == "\\":
                cur.append(src[i + 1])
                i += 2
                continue
            if c == in_str:
                in_str = None
        elif c in "'\"":
            in_str = c
            cur.append(c)
        elif c in "([{":
            depth += 1
            cur.append(c)
        elif c in ")]}":
            depth -= 1
            cur.append(c)
        elif c == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    if "".join(cur).strip():
        parts.append("".join(cur))
    return parts


def nfc(s):
    return unicodedata.normalize("NFC", s)
