"""test_dmarc_smtpd - DMARC in mta-smtpd (the MX path).

dnsmasq serves _dmarc records with every policy (none, quarantine,
reject, sp= for subdomains, pct=0, strict alignment), SPF records and a
DKIM key; messages from a client that is neither authenticated nor a
relay client get dmarc=RESULT header.from=DOMAIN after spf= and dkim=
in their Authentication-Results header. A p=reject failure is refused
after DATA with 550 5.7.1 and nothing is queued; with control/dmarcreject
0 it is queued with dmarc=fail. A resolver that never answers is
temperror, accepted. An authenticated client is not checked: no _dmarc
question is asked.
"""
import base64
import re

from helpers import ar, dns_queries, dnsmasq, free_dns_port, rsa_key, \
    txt_opt
from test_dkim_verify import sign
from test_smtpd import codes, setup
from test_spf_smtpd import IP, ME, run, txn

SPF_OK = f"v=spf1 ip4:{IP} -all"
RECORDS = [
    "--local=/test/", "--log-queries",
    txt_opt("_dmarc.rej.test", "v=DMARC1; p=reject"),
    txt_opt("rej.test", SPF_OK),
    txt_opt("other.test", SPF_OK),
    txt_opt("_dmarc.quar.test", "v=DMARC1; p=quarantine"),
    txt_opt("_dmarc.none.test", "v=DMARC1; p=none; rua=mailto:r@none.test"),
    txt_opt("_dmarc.sp.test", "v=DMARC1; p=reject; sp=none"),
    txt_opt("_dmarc.pct.test", "v=DMARC1; p=reject; pct=0"),
    txt_opt("_dmarc.strict.test", "v=DMARC1; p=none; aspf=s; adkim=s"),
    txt_opt("mail.strict.test", SPF_OK),
    txt_opt("_dmarc.two.test", "v=DMARC1; p=reject"),
    txt_opt("_dmarc.two.test", "v=DMARC1; p=none"),
]


def msg(frm, extra=b""):
    return (f"From: A <a@{frm}>\r\nTo: bob@example.test\r\n"
            f"Subject: dmarc\r\nMessage-ID: <m@{frm}>\r\n".encode() +
            extra + b"\r\nhello\r\n")


def data(m):
    return m.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def dmarc(m):
    """(result, header.from, policy.dmarc) of our A-R field, and the
    order of its methods"""
    (f,) = [a for a in ar(m) if ME.encode() in a.split(b";")[0]]
    methods = [re.match(r"\s*(\w+)=", ri).group(1)
               for ri in f.decode().split(";")[1:]]
    (d,) = [ri for ri in f.decode().split(";") if "dmarc=" in ri]
    res = re.search(r"dmarc=(\w+)", d).group(1)
    hf = re.search(r"header\.from=(\S+)", d)
    pol = re.search(r"policy\.dmarc=(\w+)", d)
    return (res, hf and hf.group(1), pol and pol.group(1)), methods


def one(t, sender, m):
    """one message: (reply lines, the queued message or None)"""
    lines, msgs = run(t, txn(sender, data(m)))
    return lines, msgs[0] if msgs else None


def test_policies_and_alignment(t):
    setup(t)
    with dnsmasq(t, *RECORDS):
        cases = [
            # (MAIL FROM, From: domain, want (result, policy applied))
            ("x@rej.test", "rej.test", ("pass", None)),
            ("x@other.test", "quar.test", ("fail", "quarantine")),
            ("x@other.test", "none.test", ("fail", "none")),
            ("x@other.test", "sub.sp.test", ("fail", "none")),
            ("x@other.test", "pct.test", ("fail", "quarantine")),
            ("x@mail.strict.test", "strict.test", ("fail", "none")),
            ("x@other.test", "nodmarc.test", ("none", None)),
            ("x@other.test", "two.test", ("none", None)),
        ]
        for sender, frm, (res, pol) in cases:
            lines, m = one(t, sender, msg(frm))
            assert m is not None, (frm, lines)
            got, methods = dmarc(m)
            assert got == (res, frm, pol), (frm, got)
            assert methods[0] == "spf" and methods[-1] == "dmarc", methods


def test_reject_refused_after_data_nothing_queued(t):
    setup(t)
    with dnsmasq(t, *RECORDS):
        lines, m = one(t, "x@other.test", msg("rej.test"))
        assert m is None
        assert any(l.startswith("550 5.7.1 ") and "DMARC" in l
                   for l in lines), lines
        # the 550 is DATA's final reply: MAIL, RCPT and 354 went before
        assert codes(lines)[2:5] == ["250", "250", "354"], lines
        # the org domain's p= covers a subdomain without sp=
        lines, m = one(t, "x@other.test", msg("sp.test"))
        assert m is None and "550" in codes(lines), lines
        # with dmarcreject 0: queued, the failure in the header
        with open(t.path("control", "dmarcreject"), "w") as f:
            f.write("0\n")
        lines, m = one(t, "x@other.test", msg("rej.test"))
        assert m is not None, lines
        assert dmarc(m)[0] == ("fail", "rej.test", "reject"), dmarc(m)


def test_dkim_relaxed_alignment_through_org_record(t):
    setup(t)
    pem, p = rsa_key(1024)
    recs = RECORDS + [txt_opt("s._domainkey.rej.test", f"v=DKIM1; p={p}"),
                      txt_opt("s._domainkey.strict.test",
                              f"v=DKIM1; p={p}")]
    with dnsmasq(t, *recs):
        # From: news.rej.test, no record of its own: rej.test's p=reject;
        # the SPF domain is not aligned, DKIM's d=rej.test is (relaxed)
        m0 = msg("news.rej.test")
        lines, m = one(t, "x@other.test", sign(m0, "s", pem,
                                               domain="rej.test"))
        assert m is not None, lines
        assert dmarc(m)[0] == ("pass", "news.rej.test", None), dmarc(m)
        # adkim=s: d=strict.test does not align with sub.strict.test
        m1 = msg("sub.strict.test")
        lines, m = one(t, "x@other.test", sign(m1, "s", pem,
                                               domain="strict.test"))
        assert dmarc(m)[0] == ("fail", "sub.strict.test", "none"), dmarc(m)
        # and no record at _dmarc.news.rej.test was enough to ask the org
        q = dns_queries(t)
        assert "_dmarc.news.rej.test" in q and "_dmarc.rej.test" in q, q


def test_not_one_from_is_permerror_accepted(t):
    setup(t)
    with dnsmasq(t, *RECORDS):
        two = msg("rej.test", b"From: b@other.test\r\n")
        lines, m = one(t, "x@other.test", two)
        assert m is not None, lines
        assert dmarc(m)[0] == ("permerror", None, None), dmarc(m)


def test_aligned_spf_temperror_is_temperror_not_refused(t):
    setup(t)
    port = free_dns_port()      # slow.test is forwarded there: no answer
    recs = RECORDS + [f"--server=/slow.test/127.0.0.1#{port}",
                      txt_opt("tmp.rej.test",
                              "v=spf1 include:a.slow.test -all")]
    with dnsmasq(t, *recs):
        # the MAIL FROM domain aligns with From: but SPF could not say:
        # p=reject must not turn that into a permanent 550
        lines, m = one(t, "x@tmp.rej.test", msg("rej.test"))
        assert m is not None, lines
        (f,) = [a for a in ar(m) if ME.encode() in a.split(b";")[0]]
        assert re.search(rb"spf=temperror .*smtp\.mailfrom=tmp\.rej\.test",
                         f), f
        assert dmarc(m)[0] == ("temperror", "rej.test", None), dmarc(m)
        # an unaligned SPF temperror changes nothing: refused
        lines, m = one(t, "x@a.slow.test", msg("rej.test"))
        assert m is None and "550" in codes(lines), lines


def test_dns_never_answers_is_temperror_accepted(t):
    setup(t)
    with open(t.path("control", "resolvers"), "w") as f:
        f.write(f"127.0.0.1:{free_dns_port()}\n")     # nobody answers
    lines, m = one(t, "x@other.test", msg("rej.test"))
    assert m is not None, lines
    assert dmarc(m)[0] == ("temperror", "rej.test", None), dmarc(m)


def test_authenticated_client_not_checked(t):
    setup(t)
    auth = base64.b64encode(b"\0bob@example.test\0secret").decode()
    with dnsmasq(t, *RECORDS):
        lines, msgs = run(t, txn("x@other.test", data(msg("rej.test"))),
                          ip="127.0.0.1", pre=f"AUTH PLAIN {auth}\r\n")
        assert len(msgs) == 1 and ar(msgs[0]) == [], lines
        assert not any(q.startswith("_dmarc.") for q in dns_queries(t))
