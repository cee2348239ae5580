"""test_dkim_sign - DKIM signing as mail is queued, checked by real verifiers.

A corpus of messages goes in through every source that signs (mta-inject,
root's sendmail, SMTP AUTH, a relay client, a local user's sendmail by
drop/, mta-send's own bounces); the message as the queue (or, past
mta-send, the Maildir) holds it is verified by dkimpy (python3-dkim, its
dnsfunc answering with the TXT records `vadmin dkim show --json` printed)
and by OpenDKIM's libopendkim (opendkim-tools brings it; loaded with
ctypes and its test query method, a key file instead of DNS), for RSA and
Ed25519, one signature at a time. Mail from a client that is neither
authenticated nor a relay client, and vdeliver's forwards, are not signed.
"""
import base64
import ctypes
import ctypes.util
import os
import re
import sys

import smtplib

from helpers import Sender, queued, read_queue_file
from test_sendmail_user import can_switch, user_sendmail
from test_smtpd import Server, tls_ctx

try:
    import dkim
except ImportError:     # python3-dkim lives in Debian's own python path
    sys.path.append("/usr/lib/python3/dist-packages")
    import dkim

D = "example.test"
ME = "mx.example.test"

# each: (name, message with LF line ends)
CORPUS = [
    ("plain", "From: Bob <bob@example.test>\nTo: Alice <a@remote.test>\n"
     "Subject: hello\nDate: Sun, 6 Dec 2026 05:40:00 +0000\n"
     "Message-ID: <1@example.test>\n\nHello, world.\n"),
    ("folded", "From: \"Doe, Bob\"\n <bob@example.test>\nTo: a@remote.test,"
     "\n\tb@remote.test,\n  c@remote.test\nSubject: a subject   that is\n"
     "  folded\tover lines  \nX-Extra:   spaced    out   \n\nbody  with "
     " runs\t\tof white  \nspace\n"),
    ("eight_bit", "From: bob@example.test\nSubject: =?utf-8?q?caf=C3=A9?=\n"
     "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
     "Content-Transfer-Encoding: 8bit\n\nCaf\u00e9 cr\u00e8me, \u00fcber "
     "stra\u00dfe \u2014 \u65e5\u672c\n"),
    ("empty_body", "From: bob@example.test\nSubject: nothing\n\n"),
    ("no_body_at_all", "From: bob@example.test\nSubject: no empty line\n"),
    ("trailing_blank_lines", "From: bob@example.test\nSubject: t\n\ntext\n"
     "\n\n  \n\n"),
    ("long_lines", "From: bob@example.test\nSubject: long\n\n" +
     "x" * 990 + "\n" + "word " * 190 + "\n"),
    ("dots", "From: bob@example.test\nSubject: dots\n\n.\n..\n.leading\n"),
    ("two_to_fields", "From: bob@example.test\nTo: a@remote.test\n"
     "To: b@remote.test\nSubject: s\n\nx\n"),
]


def setup(t, types=("rsa",)):
    """A root with example.test, bob@ (password 'secret'), keys of TYPES;
    the DNS records that `vadmin dkim show --json` gives"""
    t.init()
    with open(t.path("control", "me"), "w") as f:
        f.write(ME + "\n")
    t.run("vadmin", "adddomain", D, input="pw\n", check=0)
    t.run("vadmin", "adduser", "bob@" + D, "secret", check=0)
    t.run("vadmin", "adduser", "c@" + D, "secret", check=0)
    for ty in types:
        t.run("vadmin", "dkim", "add", D, "--type", ty, check=0)
    return records(t, D) if types else {}


def records(t, *domains):
    """{name: txt} of every key of DOMAINS, from vadmin dkim show --json"""
    import json
    out = {}
    for d in domains:
        p = t.run("vadmin", "dkim", "show", d, "--json", check=0)
        for k in json.loads(p.out):
            out[k["name"]] = k["txt"]
    return out


def crlf(b):
    return re.sub(rb"\r?\n", b"\r\n", b)


def signatures(msg):
    """the DKIM-Signature fields of a message (bytes, LF or CRLF)"""
    head = re.split(rb"\r?\n\r?\n", msg, maxsplit=1)[0] + b"\n"
    return re.findall(rb"^DKIM-Signature:.*\n(?:[ \t].*\n)*", head,
                      re.M | re.I)


def tags(sig):
    v = re.sub(rb"\s+", b"", sig.split(b":", 1)[1]).decode()
    return dict(x.split("=", 1) for x in v.split(";") if x)


def dkimpy_ok(msg, recs):
    """dkimpy verifies every signature of MSG, each on its own"""
    def dnsfunc(name, timeout=5):
        n = name.decode().rstrip(".") if isinstance(name, bytes) else \
            name.rstrip(".")
        return recs.get(n, "").encode()
    m = crlf(msg)
    d = dkim.DKIM(m)
    n = len(signatures(msg))
    try:
        return n > 0 and all(d.verify(idx=i, dnsfunc=dnsfunc) for i in
                             range(n))
    except dkim.ValidationError:
        return False


class OpenDKIM:
    """libopendkim 2.11 verifying with its file query method (dkim.h:
    DKIM_OP_SETOPT 1, DKIM_OPTS_QUERYMETHOD 6, DKIM_OPTS_QUERYINFO 7,
    DKIM_QUERY_FILE 1, DKIM_STAT_OK 0)"""

    def __init__(self, tmp):
        name = ctypes.util.find_library("opendkim") or "libopendkim.so.11"
        L = self.L = ctypes.CDLL(name)
        vp = ctypes.c_void_p
        L.dkim_init.restype = vp
        L.dkim_init.argtypes = [vp, vp]
        L.dkim_options.argtypes = [vp, ctypes.c_int, ctypes.c_int, vp,
                                   ctypes.c_size_t]
        L.dkim_verify.restype = vp
        L.dkim_verify.argtypes = [vp, ctypes.c_char_p, vp,
                                  ctypes.POINTER(ctypes.c_int)]
        L.dkim_chunk.argtypes = [vp, ctypes.c_char_p, ctypes.c_size_t]
        L.dkim_eom.argtypes = [vp, vp]
        L.dkim_free.argtypes = [vp]
        L.dkim_close.argtypes = [vp]
        self.keyfile = os.path.join(tmp, "opendkim.keys")

    def ok(self, msg, recs):
        """each signature of MSG verified alone (the others removed:
        DKIM-Signature fields are not among those signed)"""
        with open(self.keyfile, "w") as f:
            for name, txt in recs.items():
                f.write(f"{name} {txt}\n")
        sigs = signatures(msg)
        if not sigs:
            return False
        for keep in sigs:
            m = msg
            for s in sigs:
                if s != keep:
                    m = m.replace(s, b"", 1)
            if self.verify_one(crlf(m)) != 0:
                return False
        return True

    def verify_one(self, m):
        L = self.L
        lib = L.dkim_init(None, None)
        q = ctypes.c_int(1)
        L.dkim_options(lib, 1, 6, ctypes.byref(q), ctypes.sizeof(q))
        path = self.keyfile.encode()
        L.dkim_options(lib, 1, 7, ctypes.c_char_p(path), len(path))
        st = ctypes.c_int(-1)
        h = L.dkim_verify(lib, b"test", None, ctypes.byref(st))
        assert h and st.value == 0, st.value
        r = L.dkim_chunk(h, m, len(m))
        if r == 0:
            r = L.dkim_chunk(h, None, 0)
        if r == 0:
            r = L.dkim_eom(h, None)
        L.dkim_free(h)
        L.dkim_close(lib)
        return r


def both_ok(t, msg, recs, want_sigs=1):
    sigs = signatures(msg)
    assert len(sigs) == want_sigs, (len(sigs), msg[:2000])
    assert dkimpy_ok(msg, recs), ("dkimpy refused", msg[:3000])
    assert OpenDKIM(t.tmp).ok(msg, recs), ("OpenDKIM refused", msg[:3000])
    for s in sigs:
        tg = tags(s)
        assert tg["c"] == "relaxed/relaxed" and tg["d"] == D and \
            "l" not in tg, tg
        assert tg["h"].split(":").count("from") == 2, tg["h"]
        assert max(len(x) for x in s.split(b"\n")) <= 80, s
    return sigs


def newest(t):
    files = queued(t)
    assert files
    return max(files, key=os.path.getmtime)


def inject(t, body, *args):
    t.run("mta-inject", *args, "-f", "bob@" + D, "a@remote.test",
          input=body, check=0)
    return read_queue_file(newest(t))[1]


def test_mta_inject_corpus_rsa_and_ed25519(t):
    recs = setup(t, ("rsa", "ed25519"))
    for name, text in CORPUS:
        for data in (text.encode(), crlf(text.encode())):
            msg = inject(t, data)
            sigs = both_ok(t, msg, recs, want_sigs=2)
            algs = sorted(tags(s)["a"] for s in sigs)
            assert algs == ["ed25519-sha256", "rsa-sha256"], (name, algs)
            # the queue keeps LF line ends, the signatures first after
            # our Received line, and the message itself unchanged
            assert b"\r" not in msg, name
            assert msg.split(b"\n")[2].startswith(b"DKIM-Signature:"), msg
            assert msg.endswith(text.encode()), (name, msg[-200:])
    # and the verifiers do refuse: a body byte changed; a Subject: added
    # (present fields are signed once more than they occur)
    m = inject(t, CORPUS[0][1].encode())
    for bad in (m.replace(b"Hello", b"Jello"),
                m.replace(b"\nSubject:", b"\nSubject: x\nSubject:", 1)):
        assert bad != m
        assert not dkimpy_ok(bad, recs)
        assert not OpenDKIM(t.tmp).ok(bad, recs)


def test_sendmail_and_smtp_sources(t):
    recs = setup(t, ("ed25519",))
    text = CORPUS[1][1].encode()
    # root's sendmail (through mta-inject)
    t.run("sendmail", "-f", "bob@" + D, "a@remote.test", input=text, check=0)
    both_ok(t, read_queue_file(newest(t))[1], recs)
    # sendmail -bs: an SMTP session on pipes, a local (relay) client
    before = set(queued(t))
    t.run("sendmail", "-bs", input=(
        f"EHLO c\r\nMAIL FROM:<bob@{D}>\r\nRCPT TO:<c@{D}>\r\nDATA\r\n"
    ).encode() + crlf(text).replace(b"\r\n.", b"\r\n..") +
        b".\r\nQUIT\r\n", check=0)
    (f,) = set(queued(t)) - before
    both_ok(t, read_queue_file(f)[1], recs)
    # SMTP: authenticated (relay client 127.0.0.1 may AUTH in plaintext),
    # a relay client without AUTH, and an MX client that is neither
    auth = base64.b64encode(b"\0bob@example.test\0secret").decode()
    wire = crlf(text).replace(b"\r\n.", b"\r\n..")
    for ip, pre, signed in (("127.0.0.1", f"AUTH PLAIN {auth}\r\n", True),
                            ("127.0.0.1", "", True),
                            ("192.0.2.7", "", False)):
        before = set(queued(t))
        p = t.run("mta-smtpd", "--inetd", input=(
            f"EHLO c\r\n{pre}MAIL FROM:<bob@{D}>\r\nRCPT TO:<c@{D}>\r\n"
            "DATA\r\n").encode() + wire + b".\r\nQUIT\r\n",
            env={"TCPREMOTEIP": ip}, check=0)
        assert "Sanitizer" not in p.err, p.err
        (f,) = set(queued(t)) - before
        msg = read_queue_file(f)[1]
        if signed:
            both_ok(t, msg, recs)
        else:
            assert signatures(msg) == [], msg[:500]


def test_local_user_sendmail_and_bounce_signed_forward_not(t):
    if not can_switch():
        return
    recs = setup(t, ("rsa",))
    # bounces say From: MAILER-DAEMON@ME: ME is hosted, with its own key
    t.run("vadmin", "adddomain", ME, "--dkim", input="pw\n", check=0)
    recs.update(records(t, ME))
    t.run("vadmin", "forward", "bob@" + D, "c@" + D, check=0)
    text = "From: c@example.test\nSubject: by drop\n\nvia drop/\n"
    p = user_sendmail(t, "-f", "c@" + D, "c@" + D, input=text)
    assert p.returncode == 0, p.err
    s = Sender(t)
    try:
        s.wait_log("new msg")
        # a bounce: c@ writes to nobody@ (mta-inject skips RCPT checks)
        t.run("mta-inject", "-f", "c@" + D, "nobody@" + D,
              input=b"From: c@example.test\nSubject: x\n\ny\n", check=0)
        # MX mail to bob@, forwarded to c@ by vdeliver: not ours to sign
        t.run("mta-smtpd", "--inetd", input=(
            f"EHLO c\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:<bob@{D}>\r\n"
            "DATA\r\nFrom: bob@example.test\r\nSubject: spoof\r\n\r\nz\r\n"
            ".\r\nQUIT\r\n").encode(), env={"TCPREMOTEIP": "192.0.2.9"},
            check=0)
        s.wait_log(r"bounce msg ")
        s.wait_drained()
    finally:
        s.stop()
    d = t.path("domains", D, "c", "Maildir", "new")
    got = {}
    for n in os.listdir(d):
        with open(os.path.join(d, n), "rb") as f:
            m = f.read()
        key = "drop" if b"via drop/" in m else "bounce" if \
            b"MAILER-DAEMON" in m.split(b"\n\n")[0] else "forward" if \
            b"spoof" in m else n
        got[key] = m
    assert sorted(got) == ["bounce", "drop", "forward"], sorted(got)
    both_ok(t, got["drop"], recs)
    sig = signatures(got["bounce"])
    assert len(sig) == 1 and tags(sig[0])["d"] == ME, got["bounce"][:800]
    assert dkimpy_ok(got["bounce"], recs)
    assert OpenDKIM(t.tmp).ok(got["bounce"], recs)
    assert signatures(got["forward"]) == [], got["forward"][:800]


def test_unsignable_and_unkeyed_pass_unsigned(t):
    recs = setup(t, ("rsa",))
    for text in ("From: a@b.test, c@example.test\nSubject: two\n\nx\n",
                 "From: bob@example.test\nFrom: bob@example.test\n\nx\n",
                 "From: x@other.test\nSubject: not hosted\n\nx\n",
                 "Subject: no from\n\nx\n",
                 "From: bob@example.test\nnot a header line\n\nx\n"):
        msg = inject(t, text.encode())
        assert signatures(msg) == [] and msg.endswith(text.encode()), msg
    # --no-dkim (vdeliver's forwards)
    msg = inject(t, CORPUS[0][1].encode(), "--no-dkim")
    assert signatures(msg) == []
    # a deleted key stops signing at once (the cache follows dkim.cdb)
    sel = next(iter(recs)).split(".")[0]
    t.run("vadmin", "dkim", "del", D, sel, check=0)
    assert signatures(inject(t, CORPUS[0][1].encode())) == []


def test_alias_domain_signs_with_its_own_key_only(t):
    setup(t, ())
    t.run("vadmin", "aliasdomain", "add", "alias.test", D, check=0)
    t.run("vadmin", "dkim", "add", D, check=0)
    text = "From: bob@alias.test\nSubject: via alias\n\nx\n"
    assert signatures(inject(t, text.encode())) == []
    t.run("vadmin", "dkim", "add", "alias.test", "--type", "ed25519",
          check=0)
    recs = records(t, "alias.test")
    msg = inject(t, text.encode())
    (sig,) = signatures(msg)
    assert tags(sig)["d"] == "alias.test"
    assert dkimpy_ok(msg, recs) and OpenDKIM(t.tmp).ok(msg, recs)


def test_signatures_do_not_count_against_databytes(t):
    recs = setup(t, ("rsa", "ed25519"))
    text = CORPUS[0][1].encode()
    with open(t.path("control", "databytes"), "w") as f:
        f.write(f"{len(text)}\n")
    msg = inject(t, text)      # exactly databytes: queued, and signed
    both_ok(t, msg, recs, want_sigs=2)
    p = t.run("mta-inject", "-f", "bob@" + D, "a@remote.test",
              input=text + b"x", check=100)
    assert "5.3.4" in p.err, p.err


def test_long_lived_mta_send_follows_key_changes(t):
    """mta-send keeps its keys in memory: a key added or deleted while it
    runs signs, or stops signing, from the next bounce on"""
    setup(t, ())
    t.run("vadmin", "adddomain", ME, input="pw\n", check=0)
    s = Sender(t)

    def bounce(n):
        t.run("mta-inject", "-f", "c@" + D, f"nobody{n}@" + D,
              input=b"From: c@example.test\nSubject: x\n\ny\n", check=0)
        s.wait_log(r"bounce msg ", count=n)
        s.wait_drained()
        d = t.path("domains", D, "c", "Maildir", "new")
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                m = f.read()
            if f"nobody{n}@".encode() in m:
                return m
        raise AssertionError(f"bounce {n} not delivered")
    try:
        assert signatures(bounce(1)) == []
        t.run("vadmin", "dkim", "add", ME, "--type", "ed25519", check=0)
        recs = records(t, ME)
        m = bounce(2)
        (sig,) = signatures(m)
        assert tags(sig)["d"] == ME and dkimpy_ok(m, recs)
        t.run("vadmin", "dkim", "del", ME, tags(sig)["s"], check=0)
        assert signatures(bounce(3)) == []
    finally:
        s.stop()


def test_unreadable_key_is_a_temporary_failure(t):
    """a key that dkim.cdb names but that cannot be used: nothing is
    queued (exit 111, 451 at SMTP), rather than mail sent unsigned"""
    recs = setup(t, ("rsa",))
    sel = next(iter(recs)).split(".")[0]
    path = t.path("control", "dkim", D, sel + ".pem")
    with open(path, "rb") as f:
        good = f.read()
    with open(path, "wb") as f:
        f.write(b"-----BEGIN PRIVATE KEY-----\nbroken\n")
    before = queued(t)
    p = t.run("mta-inject", "-f", "bob@" + D, "a@remote.test",
              input=CORPUS[0][1].encode(), check=111)
    assert "nothing was queued" in p.err, p.err
    auth = base64.b64encode(b"\0bob@example.test\0secret").decode()
    p = t.run("mta-smtpd", "--inetd", input=(
        f"EHLO c\r\nAUTH PLAIN {auth}\r\nMAIL FROM:<bob@{D}>\r\n"
        f"RCPT TO:<c@{D}>\r\nDATA\r\n").encode() +
        crlf(CORPUS[0][1].encode()) + b".\r\nQUIT\r\n",
        env={"TCPREMOTEIP": "127.0.0.1"}, check=0)
    assert "\r\n451 4.3.0 " in p.out, p.out
    assert queued(t) == before
    # mail of other domains is not held up by it
    inject(t, b"From: x@other.test\nSubject: s\n\nx\n")
    assert len(queued(t)) == len(before) + 1
    with open(path, "wb") as f:
        f.write(good)
    both_ok(t, inject(t, CORPUS[0][1].encode()), recs)


def test_submission_with_starttls_and_auth_signed_mx_not(t):
    """real listeners; 127.0.0.1 made an ordinary client (no relay rule),
    so that only AUTH makes it ours: submission after STARTTLS and AUTH
    is signed, the same message to port 25 over TLS is not"""
    recs = setup(t, ("rsa", "ed25519"))
    with open(t.path("control", "relayrules"), "w") as f:
        f.write(":allow\n")
    t.run("mta-rules", check=0)
    text = crlf(CORPUS[2][1].encode())
    srv = Server(t, smtp=1, submission=1)
    try:
        with smtplib.SMTP("127.0.0.1", srv.ports["submission"]) as c:
            c.starttls(context=tls_ctx())
            c.login("bob@example.test", "secret")
            c.sendmail("bob@example.test", ["c@example.test"], text)
        (sub,) = queued(t)
        with smtplib.SMTP("127.0.0.1", srv.ports["smtp"]) as c:
            c.starttls(context=tls_ctx())
            c.sendmail("bob@example.test", ["c@example.test"], text)
    finally:
        srv.stop()
    (mx,) = set(queued(t)) - {sub}
    assert dict(read_queue_file(sub)[0])["P"] == b"ESMTPSA"
    assert dict(read_queue_file(mx)[0])["P"] == b"ESMTPS"
    both_ok(t, read_queue_file(sub)[1], recs, want_sigs=2)
    assert signatures(read_queue_file(mx)[1]) == []


def test_long_domain_and_selector(t):
    """a 63-byte selector and a long domain: the field stays folded under
    80 columns where the names allow, and verifies"""
    setup(t, ())
    dom = "a" * 60 + ".example.test"
    t.run("vadmin", "adddomain", dom, input="pw\n", check=0)
    t.run("vadmin", "dkim", "add", dom, "--type", "ed25519", "--selector",
          "s" * 63, check=0)
    recs = records(t, dom)
    msg = inject(t, f"From: x@{dom}\nSubject: long\n\nx\n".encode())
    (sig,) = signatures(msg)
    assert tags(sig)["d"] == dom and tags(sig)["s"] == "s" * 63
    assert max(len(x) for x in sig.split(b"\n")) <= 80, sig
    assert dkimpy_ok(msg, recs) and OpenDKIM(t.tmp).ok(msg, recs)
