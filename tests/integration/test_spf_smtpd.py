"""test_spf_smtpd - SPF in mta-smtpd (the MX path).

dnsmasq serves the SPF records of a few domains; a client that is
neither authenticated nor a relay client (192.0.2.7) sends mail from
them, and the queued message's Authentication-Results header carries
spf=RESULT smtp.mailfrom=DOMAIN before dkim= (smtp.helo=NAME for <>).
control/spfreject refuses a fail at MAIL with 550 5.7.23 and nothing
else; a resolver that never answers is temperror, accepted even then.
An authenticated client is not checked: no DNS question at all (dnsmasq
logs every question). A new MAIL in the same session gets a new result.
"""
import base64
import os
import re
import time

from helpers import ar, dns_queries, dnsmasq, free_dns_port, queued, \
    read_queue_file, txt_opt
from test_smtpd import codes, inetd, setup

ME = "mx.example.test"
IP = "192.0.2.7"
RECORDS = [
    "--local=/test/", "--log-queries",
    txt_opt("pass.test", f"v=spf1 ip4:{IP}/32 -all"),
    txt_opt("fail.test", "v=spf1 ip4:198.51.100.1 -all"),
    txt_opt("soft.test", "v=spf1 ~all"),
    txt_opt("perm.test", "v=spf1 bogus:x -all"),
    txt_opt("helo.test", f"v=spf1 ip4:{IP} -all"),
    # none.test: no record (--local: NXDOMAIN, not a refusal)
]
MSG = b"From: a@b.test\r\nSubject: spf\r\n\r\nhello\r\n.\r\n"


def txn(sender, msg=MSG, rcpt="bob@example.test"):
    """one transaction's commands and MSG (CR LF, ending in ".")"""
    return (f"MAIL FROM:<{sender}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n"
            .encode() + msg)


def run(t, *txns, helo="client.example", pre="", ip=IP):
    """one session; (reply lines, the new queued messages in order);
    its log line in t.err"""
    before = set(queued(t))
    data = f"EHLO {helo}\r\n{pre}".encode() + b"".join(
        x if isinstance(x, bytes) else txn(x) for x in txns) + b"QUIT\r\n"
    lines, t.err = inetd(t, data, ip=ip)
    new = sorted(set(queued(t)) - before,
                 key=lambda f: int(os.path.basename(f).split(".")[0], 16))
    return lines, [read_queue_file(f)[1] for f in new]


def spf(msg):
    """[(result, property, value)] of the spf= results of our A-R field,
    and the methods in their order"""
    (f,) = [a for a in ar(msg) if ME.encode() in a.split(b";")[0]]
    out, methods = [], []
    for ri in f.decode().split(";")[1:]:
        m = re.match(r"\s*(\w+)=(\w+)", ri)
        methods.append(m.group(1))
        if m.group(1) == "spf":
            p = re.search(r"smtp\.(mailfrom|helo)=(\S+)", ri)
            out.append((m.group(2), p and p.group(1), p and p.group(2)))
    return out, methods


def test_spf_results_in_header_spf_dkim_dmarc(t):
    setup(t)
    with dnsmasq(t, *RECORDS):
        lines, msgs = run(t, "x@pass.test", "x@fail.test", "x@soft.test",
                          "x@none.test", "x@perm.test")
    assert codes(lines).count("250") == 1 + 5 * 3, lines
    got = [spf(m) for m in msgs]
    assert [g[0] for g in got] == [
        [("pass", "mailfrom", "pass.test")],
        [("fail", "mailfrom", "fail.test")],
        [("softfail", "mailfrom", "soft.test")],
        [("none", "mailfrom", "none.test")],
        [("permerror", "mailfrom", "perm.test")]], got
    assert all(g[1] == ["spf", "dkim", "dmarc"] for g in got), got
    # the log line names the last transaction's result
    assert "; last spf permerror perm.test" in t.err, t.err


def test_null_sender_checks_helo(t):
    setup(t)
    with dnsmasq(t, *RECORDS):
        _, (m,) = run(t, "", helo="helo.test")
    assert spf(m)[0] == [("pass", "helo", "helo.test")], spf(m)


def test_spfreject_refuses_fail_only_at_mail(t):
    setup(t, ("spfreject", "1\n"))
    with dnsmasq(t, *RECORDS):
        lines, msgs = run(t, "x@fail.test", b"RSET\r\n", "x@soft.test",
                          "x@perm.test", "x@none.test", "x@pass.test")
    assert any(l.startswith("550 5.7.23 ") and "SPF" in l
               for l in lines), lines
    # the refused MAIL's RCPT and DATA find no transaction
    assert codes(lines)[2:5] == ["550", "503", "503"], lines
    assert [spf(m)[0][0][0] for m in msgs] == [
        "softfail", "permerror", "none", "pass"]
    # and off (the default) a fail is accepted
    os.unlink(t.path("control", "spfreject"))
    with dnsmasq(t, *RECORDS):
        _, (m,) = run(t, "x@fail.test")
    assert spf(m)[0] == [("fail", "mailfrom", "fail.test")]


def test_resolver_never_answers_is_temperror_accepted(t):
    setup(t, ("spfreject", "1\n"))
    with open(t.path("control", "resolvers"), "w") as f:
        f.write(f"127.0.0.1:{free_dns_port()}\n")     # nobody answers
    start = time.monotonic()
    lines, (m,) = run(t, "x@fail.test")
    took = time.monotonic() - start
    assert spf(m)[0] == [("temperror", "mailfrom", "fail.test")], spf(m)
    assert "550" not in codes(lines), lines
    assert took < 25, took      # SPF's 10 s bound, then DKIM has nothing


def test_new_mail_gets_fresh_result(t):
    setup(t)
    with dnsmasq(t, *RECORDS):
        lines, msgs = run(t, b"MAIL FROM:<x@fail.test>\r\nRSET\r\n",
                          "x@pass.test", "x@soft.test")
    assert [spf(m)[0] for m in msgs] == [
        [("pass", "mailfrom", "pass.test")],
        [("softfail", "mailfrom", "soft.test")]], msgs


def test_authenticated_client_not_checked_no_dns(t):
    setup(t, ("spfreject", "1\n"))
    auth = base64.b64encode(b"\0bob@example.test\0secret").decode()
    with dnsmasq(t, *RECORDS):
        lines, (m,) = run(t, "x@fail.test", ip="127.0.0.1",
                          pre=f"AUTH PLAIN {auth}\r\n")
        assert "235" in codes(lines), lines
        assert ar(m) == [], m[:300]
        assert not any("fail.test" in q for q in dns_queries(t)), \
            dns_queries(t)
        # the same server, the MX path: the question is asked
        run(t, "x@fail.test")
        assert "fail.test" in dns_queries(t), dns_queries(t)
