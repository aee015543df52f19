"""apache/james-mime4j: core/src/test/resources/{testmsgs,mimetools-testmsgs}/NAME.msg with the
decoded structure mime4j's tests pin for each (NAME_decoded.xml, whose leaves name the decoded
bodies NAME_decoded_*.txt / *.bin, checked by MimeStreamParserExampleMessagesTest and friends).

Mapping: every binary leaf of the message itself (not of a message attached to it, which a
ticket carries whole as its .eml) -> attachments: an attachment with exactly those decoded bytes
(size and SHA-256). This is the "no part ends up nowhere" check of issue #11 item 3 with the
expectation of an independent MIME parser. Text leaves are not mapped (body or attachment, the
source does not say which).
"""

import hashlib
import xml.etree.ElementTree as ET

from lib import sha256  # noqa: F401


def convert(repo, out, folder):
    for path in sorted(p for p in repo.ls(folder) if p.endswith(".msg")):
        name = path.rsplit("/", 1)[1][:-4]
        raw = repo.read_or_none(path)
        xml = repo.read_or_none(f"{folder}/{name}_decoded.xml")
        if xml is None:
            continue
        try:
            root = ET.fromstring(xml)
        except ET.ParseError as e:
            out.add(name, raw, path, {}, excluded=f"the source's {name}_decoded.xml is not well-formed XML ({e})")
            continue
        expect = {}
        listed = []

        def walk(el, nested):
            for child in el:
                if child.tag == "binary-body" and not nested:
                    data = repo.read(f"{folder}/{child.get('name')}")
                    listed.append({"size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
                elif child.tag == "message":
                    walk(child, True)
                else:
                    walk(child, nested)

        walk(root, False)
        if listed:
            expect["attachments"] = listed
            out.add(name, raw, path, expect, note="binary leaves of the message: each must be an attachment")
        else:
            out.add(name, raw, path, {}, excluded="no binary leaf outside attached messages: nothing the "
                                                   "source states maps to a ticket field")
