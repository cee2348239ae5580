"""test_dkim_interop - OpenDKIM signs; we, dkimpy and libopendkim verify.

The other half of test_dkim_sign (where dkimpy and OpenDKIM verify what
Facteur signs): OpenDKIM's own milter (the `opendkim` daemon of the
Debian package, a private instance on a loopback port, with a KeyTable
and a SigningTable in the test's directory, stopped by its PID) signs
test_dkim_sign's corpus (folded headers, 8-bit body, empty body, no body,
trailing blank lines, long lines, dots, a repeated field) with an
RSA-2048 and an Ed25519 key, in each of the four header/body
canonicalizations; a tiny milter client below plays the MTA. One opendkim
signs with one algorithm only (its SignatureAlgorithm setting applies to
every key: conf_signalg in opendkim/opendkim.c of 2.11), so two instances
sign in turn, as two milters of one MTA would.
The signed messages go to mta-smtpd from an MX client, the keys served
by dnsmasq; each signature's dkim= result in our Authentication-Results
is compared with dkimpy's and libopendkim's verdicts on the same records
(test_dkim_sign's OpenDKIM, its file query method). A copy of each with
its body changed must fail in all three. The counts of agreements and
disagreements are printed; there must be no disagreement but the two
that docs/authentication.md ("Interoperability") lists with the RFC 6376
text that decides: OpenDKIM's Ed25519 signatures in simple header
canonicalization, which no verifier accepts (the field is folded after
it was hashed; refolded as hashed, they pass everywhere), and
libopendkim's verifier alone failing a message that has no empty line
after its header.

opendkim-testmsg (opendkim-tools) is not used as the signer: its source
(opendkim/opendkim-testmsg.c, 2.11) fixes the algorithm to rsa-sha1,
which RFC 8301 makes invalid, and Debian's build refuses every message
with "dkim_chunk(): Syntax error".
"""
import base64
import os
import socket
import struct
import subprocess

from helpers import OPENDKIM, OpenDKIMd, dnsmasq, rsa_key, txt_opt
from test_dkim_sign import CORPUS, OpenDKIM, crlf, signatures, tags
from test_dkim_verify import D, dkimpy_verdicts, results, send
from test_smtpd import setup

CANONS = ("relaxed/relaxed", "relaxed/simple", "simple/relaxed",
          "simple/simple")


def ed25519_key():
    """(PEM private key, p= value: the raw 32-byte public key) of a new
    Ed25519 key made by the openssl tool, as OpenDKIM's KeyTable takes it"""
    pem = subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"],
                         input=pem, check=True, capture_output=True).stdout
    return pem, base64.b64encode(der[-32:]).decode()


class Milter:
    """The MTA's side of the milter protocol (version 6, as Postfix and
    sendmail speak it) for one message from 127.0.0.1: every step sent,
    every reply read; the header fields the filter inserts or adds are
    returned. SMFIP_HDR_LEADSPC is offered so that a field's value goes
    over exactly as it follows the colon, and the filter signs the very
    bytes that travel."""
    ACTIONS = 0x1ff           # SMFIF_ADDHDRS ... SMFIF_SETSYMLIST
    LEADSPC = 0x100000        # SMFIP_HDR_LEADSPC

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.f = self.s.makefile("rb")

    def put(self, cmd, data=b""):
        self.s.sendall(struct.pack(">I", len(data) + 1) + cmd + data)

    def get(self):
        (n,) = struct.unpack(">I", self.f.read(4))
        pkt = self.f.read(n)
        assert len(pkt) == n and n >= 1, pkt
        return pkt[:1], pkt[1:]

    def step(self, cmd, data=b""):
        """send one step; its reply must be continue"""
        self.put(cmd, data)
        r, d = self.get()
        assert r == b"c", (cmd, r, d)

    def sign(self, msg, sender):
        """the fields the filter adds to MSG (CR LF bytes), as
        [(name, value)] with CR LF folds"""
        self.put(b"O", struct.pack(">III", 6, self.ACTIONS, self.LEADSPC))
        r, d = self.get()
        assert r == b"O", (r, d)
        self.step(b"C", b"localhost\0" + b"4" + struct.pack(">H", 25) +
                  b"127.0.0.1\0")
        self.step(b"H", b"client.example\0")
        self.step(b"M", b"<" + sender + b">\0")
        self.step(b"R", b"<bob@example.test>\0")
        self.step(b"T")
        head, sep, body = msg.partition(b"\r\n\r\n")
        if not sep:
            head, body = msg.removesuffix(b"\r\n"), b""
        fields = []
        for line in head.split(b"\r\n"):
            if line[:1] in (b" ", b"\t"):
                fields[-1] += b"\r\n" + line
            else:
                fields.append(line)
        for f in fields:
            name, value = f.split(b":", 1)
            self.step(b"L", name + b"\0" + value + b"\0")
        self.step(b"N")
        for i in range(0, len(body), 65535):
            self.step(b"B", body[i:i + 65535])
        self.put(b"E")
        added = []
        while True:
            r, d = self.get()
            if r in (b"c", b"a"):
                break
            assert r in (b"i", b"h"), (r, d)
            if r == b"i":
                d = d[4:]                  # the index: ours go on top
            name, value = d.split(b"\0")[:2]
            added.append((name, value))
        self.put(b"Q")
        self.f.close()
        self.s.close()
        return added


def sign(signers, msg):
    """MSG (CR LF) with the signature fields of SIGNERS (helpers.OpenDKIMd,
    in turn, as one MTA's milters) on top"""
    for d in signers:
        top = b""
        for name, value in Milter(d.port).sign(msg, b"bob@" + D.encode()):
            value = value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            if value[:1] not in (b" ", b"\t"):
                value = b" " + value
            top += name + b":" + value + b"\r\n"
        msg = top + msg
    return msg


def keyfile(t, name, pem):
    path = os.path.join(t.tmp, name + ".pem")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
        f.write(pem)
    return path


def corpus():
    """test_dkim_sign's corpus as CR LF bytes, its From: in signer.test"""
    return [(name, crlf(text.replace("@example.test", "@" + D).encode()))
            for name, text in CORPUS]


def refold(msg):
    """MSG with its top signature field (the Ed25519 one) folded as
    OpenDKIM hashed it: b= on the line before (see the module's end)"""
    (first,) = [s for s in signatures(msg) if tags(s)["s"] == "ed"]
    fixed = first.replace(b";\r\n\tb=", b"; b=", 1)
    assert fixed != first, first
    return msg.replace(first, fixed, 1)


def others(t, m, recs):
    """{selector: (dkimpy's verdict, libopendkim's verdict)} on each
    signature of M, the same records as ours"""
    sigs = signatures(m)
    py = dkimpy_verdicts(m, recs)
    assert len(py) == len(sigs), (py, sigs)
    out = {}
    for sig, ok in zip(sigs, py):
        alone = m
        for o in sigs:
            if o != sig:
                alone = alone.replace(o, b"", 1)
        out[tags(sig)["s"]] = (ok, OpenDKIM(t.tmp).ok(alone, recs))
    return out


def signed_cases(t, rsa, ed):
    """[(label, message, want pass, kind)]: OpenDKIM's signatures of the
    corpus in each canonicalization, each also with its body changed;
    with simple header canonicalization, each also refolded"""
    cases = []
    for canon in CANONS:
        c = canon.replace("/", "-")
        signers = [OpenDKIMd(t.tmp, "rsa-" + c, D, "rsa", rsa,
                             "rsa-sha256", canon),
                   OpenDKIMd(t.tmp, "ed-" + c, D, "ed", ed,
                             "ed25519-sha256", canon)]
        try:
            for name, m in corpus():
                signed = sign(signers, m)
                assert len(signatures(signed)) == 2, (canon, name, signed)
                assert all(tags(x)["c"] == canon
                           for x in signatures(signed)), (canon, signed)
                label = f"{canon} {name}"
                cases.append((label, signed, True, "signed"))
                # no_body_at_all gets a body, the others one line more
                sep = b"" if b"\r\n\r\n" in signed else b"\r\n"
                cases.append((label + " body changed",
                              signed + sep + b"changed\r\n", False,
                              "changed"))
                if canon.startswith("simple/"):
                    cases.append((label + " refolded", refold(signed),
                                  True, "refolded"))
        finally:
            for s in signers:
                s.stop()
    return cases


def test_opendkim_signs_facteur_dkimpy_opendkim_verify(t):
    if not os.path.exists(OPENDKIM):
        print("SKIP: no opendkim (tools/deps.sh test installs it)")
        return
    setup(t)
    rsa, rsa_p = rsa_key(2048)
    ed, ed_p = ed25519_key()
    recs = {f"rsa._domainkey.{D}": f"v=DKIM1; k=rsa; p={rsa_p}",
            f"ed._domainkey.{D}": f"v=DKIM1; k=ed25519; p={ed_p}"}
    cases = signed_cases(t, keyfile(t, "rsa", rsa), keyfile(t, "ed", ed))
    opts = [f"--local=/{D}/"] + [txt_opt(n, v) for n, v in recs.items()]
    with dnsmasq(t, *opts):
        got = []
        for i in range(0, len(cases), 24):
            got += send(t, [m for _, m, _, _ in cases[i:i + 24]])
    agree, disagree, unsigned, quirk = 0, [], [], []
    for (label, m, want, kind), q in zip(cases, got):
        ours = {s: r for r, _, s in results(q)}
        theirs = others(t, m, recs)
        assert sorted(ours) == sorted(theirs) == ["ed", "rsa"], \
            (label, ours, theirs)
        for sel, res in sorted(ours.items()):
            verdicts = {res == "pass", *theirs[sel]}
            if len(verdicts) == 1:
                agree += 1
                if verdicts != {want}:
                    unsigned.append((label, sel))
            elif lone_libopendkim(t, label, m, sel, res, theirs[sel], recs):
                quirk.append((label, sel))
            else:
                disagree.append((label, sel, res, theirs[sel]))
    # what no verifier accepts is OpenDKIM's Ed25519 signature in
    # simple header canonicalization, every one, and nothing else; the
    # same field refolded (kind "refolded") passes everywhere
    want_bad = [(label, "ed") for label, _, _, kind in cases
                if kind == "signed" and label.startswith("simple/")]
    sigs = 2 * len(cases)
    print(f"interop: OpenDKIM signed {len(cases)} messages, {sigs} "
          f"signatures (rsa-sha256 and ed25519-sha256, {len(CANONS)} "
          "canonicalizations, body changed, refolded); Facteur, dkimpy and "
          f"libopendkim agree on {agree}, disagree on {len(disagree)}; "
          f"{len(unsigned)} that OpenDKIM meant to pass fail in all three "
          "(its Ed25519 simple-header folding); on "
          f"{len(quirk)} libopendkim alone fails a message without a blank "
          "line (docs/authentication.md)")
    assert not disagree, disagree
    assert unsigned == want_bad, (unsigned, want_bad)
    assert len(quirk) == 6, quirk
    assert agree + len(quirk) == sigs


def lone_libopendkim(t, label, m, sel, res, theirs, recs):
    """libopendkim's verifier, fed a message with no empty line after its
    header, fails simple header canonicalization where Facteur, dkimpy
    and OpenDKIM's signer (which saw the header end: the milter's EOH)
    pass; given the same message with the empty line, it passes too"""
    return ("no_body_at_all" in label and label.startswith("simple/") and
            b"\r\n\r\n" not in m and res == "pass" and
            theirs == (True, False) and
            others(t, m + b"\r\n", recs)[sel] == (True, True))
