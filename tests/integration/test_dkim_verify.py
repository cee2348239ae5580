"""test_dkim_verify - DKIM verification of mail from others (the MX path).

Messages signed by dkimpy (rsa-sha256 and ed25519-sha256, relaxed and
simple, with and without l=), with keys served by dnsmasq as TXT records
(long ones as several strings), go over SMTP to mta-smtpd from a client
that is neither authenticated nor a relay client; the queued message's
Authentication-Results header carries one dkim= result a signature, and
those results equal dkimpy's own verdicts on the same records. Then the
bad cases: modified body, missing, revoked, small or not-a-key records,
rsa-sha1, b= not base64, a 64 KiB TXT record, 50 signatures, a 1 MiB
signature, a resolver that never answers, forged A-R headers, and an
authenticated client (no A-R at all).
"""
import base64
import os
import re
import subprocess
import sys
import time

from helpers import ar, dnsmasq, free_dns_port, queued, read_queue_file, \
    rsa_key, txt_opt
from test_smtpd import codes, inetd, setup

sys.path.append("/usr/lib/python3/dist-packages")
import dkim          # noqa: E402  python3-dkim
import nacl.signing  # noqa: E402  python3-nacl, dkimpy's Ed25519

D = "signer.test"
ME = "mx.example.test"


def ed_key():
    """(dkimpy's private key: the base64 seed, p= value)"""
    sk = nacl.signing.SigningKey.generate()
    return (base64.b64encode(bytes(sk)),
            base64.b64encode(bytes(sk.verify_key)).decode())


MSG = (b"From: Bob <bob@signer.test>\r\nTo: a@example.test\r\n"
       b"Subject: verify   me\r\n\tplease\r\n"
       b"Date: Sun, 6 Dec 2026 06:00:00 +0000\r\n"
       b"Message-ID: <v1@signer.test>\r\n\r\n"
       b"Hello,  world. \r\n\r\nA second paragraph.\r\n\r\n\r\n")


def sign(msg, sel, key, algo=b"rsa-sha256", canon=(b"relaxed", b"relaxed"),
         length=False, domain=D):
    return dkim.sign(msg, sel.encode(), domain.encode(), key,
                     canonicalize=canon, signature_algorithm=algo,
                     include_headers=[b"from", b"to", b"subject", b"date",
                                      b"message-id"], length=length) + msg


def session(msgs, pre=""):
    """one SMTP session carrying every message of MSGS (CR LF bytes)"""
    data = f"EHLO client.example\r\n{pre}".encode()
    for m in msgs:
        data += (b"MAIL FROM:<bob@signer.test>\r\nRCPT TO:<bob@example.test>"
                 b"\r\nDATA\r\n" + m.replace(b"\r\n.", b"\r\n..") +
                 b".\r\n")
    return data + b"QUIT\r\n"


def send(t, msgs, ip="192.0.2.7", pre=""):
    """the queued messages (bytes, LF ends) of one session, in order"""
    before = set(queued(t))
    lines, err = inetd(t, session(msgs, pre), ip=ip)
    got = [l for l in lines if l[:4] in ("250 ", "451 ", "554 ", "552 ")
           and " ok " in l or l[:1] in "45"]
    assert len(got) == len(msgs) and all(" ok " in l for l in got), \
        (got, err)
    new = sorted(set(queued(t)) - before,
                 key=lambda f: int(os.path.basename(f).split(".")[0], 16))
    assert len(new) == len(msgs), new
    return [read_queue_file(f)[1] for f in new]


def results(msg):
    """[(result, header.d, header.s)] of our one A-R field, which must be
    the first line of the message"""
    (f,) = [a for a in ar(msg) if a.split(b":", 1)[1].split(b";")[0]
            .strip() == ME.encode()]
    assert msg.startswith(f), msg[:300]
    out = []
    for ri in f.decode().split(";")[1:]:
        m = re.match(r"\s*dkim=(\w+)", ri)
        if m:
            d = re.search(r"header\.d=(\S+)", ri)
            s = re.search(r"header\.s=(\S+)", ri)
            out.append((m.group(1), d and d.group(1), s and s.group(1)))
    return out


def dkimpy_verdicts(msg, recs):
    """dkimpy's verdict on each signature of MSG (as received, CR LF)"""
    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        return recs.get(n.rstrip("."), "").encode()
    d = dkim.DKIM(msg)
    n = len(re.findall(rb"^DKIM-Signature:", msg.split(b"\r\n\r\n")[0],
                       re.M | re.I))
    out = []
    for i in range(n):
        try:
            out.append(bool(d.verify(idx=i, dnsfunc=dnsfunc)))
        except dkim.DKIMException:
            out.append(False)
    return out


def test_verify_corpus_agrees_with_dkimpy(t):
    setup(t)
    rsa, rsa_p = rsa_key(2048)
    rsa1k, rsa1k_p = rsa_key(1024)
    small, small_p = rsa_key(512)
    ed, ed_p = ed_key()
    recs = {f"r2048._domainkey.{D}": f"v=DKIM1; k=rsa; p={rsa_p}",
            f"r1024._domainkey.{D}": f"v=DKIM1; p={rsa1k_p}",
            f"small._domainkey.{D}": f"v=DKIM1; k=rsa; p={small_p}",
            f"ed._domainkey.{D}": f"v=DKIM1; k=ed25519; p={ed_p}",
            f"revoked._domainkey.{D}": "v=DKIM1; k=rsa; p=",
            f"notakey._domainkey.{D}": "v=DKIM1; k=rsa; p=AAAAAAAA",
            f"garbage._domainkey.{D}": "this is not a key record",
            f"huge._domainkey.{D}": "v=DKIM1; k=rsa; p=" + "A" * 65000}
    tampered = sign(MSG, "r2048", rsa).replace(b"A second", b"A forged")
    extended = sign(MSG, "r1024", rsa1k, length=True) + b"appended\r\n"
    sig = dkim.sign(MSG, b"ed", D.encode(), ed,
                    signature_algorithm=b"ed25519-sha256")
    assert sig.rsplit(b";", 1)[1].strip().startswith(b"b=")
    bad_b = sig.rsplit(b";", 1)[0] + b"; b=!!!not*base64!!!\r\n" + MSG
    corpus = [
        ("rsa relaxed", sign(MSG, "r2048", rsa), ["pass"]),
        ("rsa simple", sign(MSG, "r2048", rsa, canon=(b"simple", b"simple")),
         ["pass"]),
        ("ed25519 relaxed/simple", sign(MSG, "ed", ed, algo=b"ed25519-sha256",
                                        canon=(b"relaxed", b"simple")),
         ["pass"]),
        ("ed25519 simple/relaxed", sign(MSG, "ed", ed, algo=b"ed25519-sha256",
                                        canon=(b"simple", b"relaxed")),
         ["pass"]),
        ("l= and text after it", extended, ["pass"]),
        ("two signatures", sign(sign(MSG, "r2048", rsa), "ed", ed,
                                algo=b"ed25519-sha256"), ["pass", "pass"]),
        ("body modified", tampered, ["fail"]),
        ("no key record", sign(MSG, "missing", rsa), ["permerror"]),
        ("revoked key", sign(MSG, "revoked", rsa), ["fail"]),
        ("512-bit key", sign(MSG, "small", small), ["fail"]),
        ("p= not a key", sign(MSG, "notakey", rsa), ["permerror"]),
        ("record not a key record", sign(MSG, "garbage", rsa),
         ["permerror"]),
        ("64 KiB record", sign(MSG, "huge", rsa), ["permerror"]),
        ("b= not base64", bad_b, ["permerror"]),
        ("unsigned", MSG, ["none"]),
    ]
    # --local: names of signer.test that have no record are NXDOMAIN
    opts = [f"--local=/{D}/"] + [txt_opt(n, v) for n, v in recs.items()]
    with dnsmasq(t, *opts):
        got = send(t, [m for _, m, _ in corpus])
    for (name, m, want), q in zip(corpus, got):
        res = results(q)
        assert [r[0] for r in res] == want, (name, res)
        if want != ["none"]:
            assert all(r[1] == D for r in res), (name, res)
        # dkimpy on the same records: pass where we pass, nothing else
        if want != ["none"]:
            assert dkimpy_verdicts(m, recs) == [w == "pass" for w in want], \
                name
    sels = [r[2] for r in results(got[5])]
    assert sels == ["ed", "r2048"], sels


def test_rsa_sha1_fails(t):
    setup(t)
    rsa, rsa_p = rsa_key(1024)
    m = sign(MSG, "r", rsa, algo=b"rsa-sha1")
    with dnsmasq(t, txt_opt(f"r._domainkey.{D}", f"v=DKIM1; p={rsa_p}")):
        (q,) = send(t, [m])
    # RFC 8301: never valid, whatever dkimpy would say
    assert results(q) == [("fail", D, "r")], results(q)


def test_bounds_many_and_huge_signatures(t):
    setup(t)
    ed, ed_p = ed_key()
    many = MSG
    for _ in range(50):
        many = sign(many, "ed", ed, algo=b"ed25519-sha256")
    # a 1 MiB signature field: the queue's header limit is passed
    huge = (b"DKIM-Signature: v=1; a=rsa-sha256; d=signer.test; s=x;"
            b" h=from; bh=AAAA; b=" + b"\r\n\t".join([b"A" * 900] * 1200)
            + b"\r\n" + MSG)
    with dnsmasq(t, txt_opt(f"ed._domainkey.{D}",
                            f"v=DKIM1; k=ed25519; p={ed_p}")):
        start = time.monotonic()
        q1, q2 = send(t, [many, huge])
        took = time.monotonic() - start
    res = results(q1)
    # the top five are checked; the message is whole
    assert len(res) == 5 and all(r[0] == "pass" for r in res), res
    assert q1.count(b"\nDKIM-Signature:") == 50
    assert results(q2) == [("permerror", None, None)], results(q2)
    assert q2.endswith(b"A second paragraph.\n\n\n")
    assert took < 30, took


def test_names_that_are_not_names_are_left_out(t):
    """a d= or s= that is no DNS name is a permerror, and the A-R field
    names no such d= or s= (fuzz_dkimv kept one, 2026-12-07)"""
    setup(t)
    tail = (b" h=from; bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;"
            b" b=AAAA\r\n")
    msg = (b"DKIM-Signature: v=1; a=rsa-sha256; d=a..example; s=s1;" + tail
           + b"DKIM-Signature: v=1; a=rsa-sha256; d=signer.test; s=b!x;"
           + tail + MSG)
    (q,) = send(t, [msg])
    assert results(q) == [("permerror", None, None),
                          ("permerror", "signer.test", None)], results(q)


def test_dns_never_answers_is_temperror_and_accepted(t):
    setup(t)
    ed, _ = ed_key()
    port = free_dns_port()      # nobody answers there
    with open(t.path("control", "resolvers"), "w") as f:
        f.write(f"127.0.0.1:{port}\n")
    start = time.monotonic()
    (q,) = send(t, [sign(MSG, "ed", ed, algo=b"ed25519-sha256")])
    took = time.monotonic() - start
    assert results(q) == [("temperror", D, "ed")], results(q)
    assert took < 10, took      # 1.5 s + 3 s of tries, then the reply


def test_forged_ar_removed_other_ids_kept_auth_gets_none(t):
    setup(t)
    forged = (b"Authentication-Results: MX.Example.Test; dkim=pass\r\n"
              b"Authentication-Results: (a comment) \"mx.example.test\";"
              b"\r\n\tspf=pass\r\n"
              b"Authentication-Results: other.example; dkim=pass\r\n" + MSG)
    (q,) = send(t, [forged])
    fields = ar(q)
    assert len(fields) == 2, fields
    # no resolver answers here (helpers.Ctx.no_dns): SPF and DMARC are
    # temperror (test_spf_smtpd and test_dmarc_smtpd check the others)
    tmp = rb' reason="DNS timeout or error"'
    assert fields[0] == (b"Authentication-Results: mx.example.test;\n"
                         b"\tspf=temperror" + tmp +
                         b" smtp.mailfrom=signer.test;\n\tdkim=none;\n"
                         b"\tdmarc=temperror" + tmp +
                         b" header.from=signer.test\n"), fields
    assert fields[1] == b"Authentication-Results: other.example; " \
        b"dkim=pass\n", fields
    # authenticated (127.0.0.1 may AUTH in plaintext): nothing added or
    # removed
    auth = base64.b64encode(b"\0bob@example.test\0secret").decode()
    (q,) = send(t, [forged], ip="127.0.0.1", pre=f"AUTH PLAIN {auth}\r\n")
    assert len(ar(q)) == 3 and q.startswith(b"Received:"), q[:200]


def test_room_sized_by_signatures(t):
    """the A-R room is made once the header is read, for the results
    that can come: a one-signature message's queue file carries about
    2 KiB of room, not the 5 KiB of 7 results; a message that ends
    inside its header gets the room for 7 and its header at the top"""
    setup(t)
    ed, ed_p = ed_key()
    headonly = b"From: a@signer.test\r\nSubject: no body, no empty line\r\n"
    before = set(queued(t))
    with dnsmasq(t, txt_opt(f"ed._domainkey.{D}",
                            f"v=DKIM1; k=ed25519; p={ed_p}")):
        one, head = send(t, [sign(MSG, "ed", ed, algo=b"ed25519-sha256"),
                             headonly])
    assert results(one) == [("pass", D, "ed")], results(one)
    assert results(head) == [("none", None, None)], results(head)
    assert head.endswith(b"Subject: no body, no empty line\n"), head[-80:]
    files = sorted(set(queued(t)) - before,
                   key=lambda f: int(os.path.basename(f).split(".")[0], 16))
    # the file = envelope + unused room + the message (A-R included)
    spare = os.path.getsize(files[0]) - len(one)
    assert spare < 2800, spare          # 7 results' room: over 5,000
    # no empty line: the signatures were never all known, so 7 results'
    # room, and the header still first (results() checks it)
    spare_head = os.path.getsize(files[1]) - len(head)
    assert 4000 < spare_head < 6000, spare_head
