"""test_dnsbl - control/rblservers and RBLSMTPD in mta-smtpd.

A real DNS server, dnsmasq, answers on a free loopback port named in
control/resolvers: it lists 127.0.0.1 and 2001:db8::1 in bl.test and
answers NXDOMAIN for every other name of bl.test and none.test. Sessions
run through `mta-smtpd --inetd` with TCPREMOTEIP as the client address.
"""
import socket
import time

from helpers import dnsmasq as helpers_dnsmasq, queued
from test_smtpd import auth_plain, codes, inetd, setup

V6 = "2001:db8::1"
V6_NAME = ".".join(reversed("20010db8" + "0" * 23 + "1")) + ".bl.test"


def dnsmasq(t):
    """dnsmasq listing 127.0.0.1 and 2001:db8::1 in bl.test"""
    return helpers_dnsmasq(
        t, "--local=/bl.test/", "--local=/none.test/",
        "--host-record=1.0.0.127.bl.test,127.0.0.2",
        f"--host-record={V6_NAME},127.0.0.4")


def rbl_setup(t, zones="bl.test\n"):
    setup(t, ("rblservers", zones))


def rules(t, text):
    with open(t.path("control", "relayrules"), "w") as f:
        f.write(text)
    t.run("mta-rules", check=0)


SESSION = (b"EHLO c\r\nMAIL FROM:<a@elsewhere.org>\r\n"
           b"RCPT TO:<bob@example.test>\r\nQUIT\r\n")


def test_dnsbl_listed_refused_at_mail_and_rcpt(t):
    # the first zone does not list it: the reply names the one that does
    rbl_setup(t, "none.test\nbl.test.\n")
    with dnsmasq(t):
        lines, err = inetd(t, SESSION, ip="127.0.0.1")
    want = "554 5.7.1 127.0.0.1 is listed in bl.test."
    assert codes(lines) == ["220", "250", "554", "554", "221"], lines
    assert lines.count(want) == 2, lines
    assert "refused 2 last: " + want + "; end quit; rbl listed in bl.test." \
        in err, err
    assert queued(t) == []


def test_dnsbl_not_listed_accepted(t):
    rbl_setup(t, "bl.test\nnone.test\n")
    with dnsmasq(t):
        lines, err = inetd(t, SESSION + b"", ip="192.0.2.7")
        assert codes(lines) == ["220", "250", "250", "250", "221"], lines
        lines, err = inetd(t, b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@"
                           b"example.test>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
                           ip="127.0.0.9")
    assert codes(lines) == ["220", "250", "250", "250", "354", "250",
                            "221"], lines
    assert len(queued(t)) == 1
    assert "rbl" not in err, err


def test_dnsbl_ipv6_client(t):
    rbl_setup(t)
    with dnsmasq(t):
        lines, err = inetd(t, SESSION, ip=V6)
        assert lines.count(f"554 5.7.1 {V6} is listed in bl.test") == 2, \
            lines
        # a neighbour is not listed
        lines, _ = inetd(t, SESSION, ip="2001:db8::2")
        assert codes(lines) == ["220", "250", "250", "250", "221"], lines


def test_dnsbl_rblsmtpd_empty_skips_check(t):
    rbl_setup(t)
    rules(t, '127.0.0.1:allow,RELAYCLIENT="",RBLSMTPD=""\n:allow\n')
    with dnsmasq(t):
        lines, err = inetd(t, SESSION, ip="127.0.0.1")
        assert codes(lines) == ["220", "250", "250", "250", "221"], lines
        assert "rbl" not in err, err
        # a RELAYCLIENT rule alone does not skip it
        rules(t, '127.0.0.1:allow,RELAYCLIENT=""\n:allow\n')
        lines, _ = inetd(t, SESSION, ip="127.0.0.1")
        assert codes(lines) == ["220", "250", "554", "554", "221"], lines


def test_dnsbl_rblsmtpd_text_blocks(t):
    # as rblsmtpd: a non-empty RBLSMTPD blocks without a lookup, 451;
    # with a leading hyphen 553; no rblservers needed
    setup(t)
    rules(t, '192.0.2.8:allow,RBLSMTPD="go away"\n'
             '192.0.2.9:allow,RBLSMTPD="-gone for good"\n:allow\n')
    lines, err = inetd(t, SESSION, ip="192.0.2.8")
    assert codes(lines) == ["220", "250", "451", "451", "221"], lines
    assert lines.count("451 4.7.1 go away") == 2, lines
    assert "; rbl blocked by RBLSMTPD" in err, err
    lines, _ = inetd(t, SESSION, ip="192.0.2.9")
    assert lines.count("553 5.7.1 gone for good") == 2, lines
    lines, _ = inetd(t, SESSION, ip="192.0.2.10")
    assert codes(lines) == ["220", "250", "250", "250", "221"], lines


def test_dnsbl_auth_lifts_the_block(t):
    rbl_setup(t)
    with dnsmasq(t):
        lines, err = inetd(t, (
            "EHLO c\r\nMAIL FROM:<bob@example.test>\r\nAUTH PLAIN " +
            auth_plain("bob@example.test", "secret") + "\r\n"
            "MAIL FROM:<bob@example.test>\r\nRCPT TO:<x@elsewhere.org>\r\n"
            "DATA\r\nhi\r\n.\r\nQUIT\r\n").encode(), ip="127.0.0.1")
    assert codes(lines) == ["220", "250", "554", "235", "250", "250", "354",
                            "250", "221"], lines
    assert len(queued(t)) == 1
    assert "auth bob@example.test" in err and "rbl listed in bl.test" in err


def test_dnsbl_dns_down_fails_open(t):
    rbl_setup(t)
    with dnsmasq(t) as p:
        p.terminate()
        p.wait(timeout=10)
        lines, err = inetd(t, SESSION, ip="127.0.0.1")
    assert codes(lines) == ["220", "250", "250", "250", "221"], lines
    assert "; rbl error bl.test" in err, err
    # a server that never answers: a timeout, bounded, not a listing
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        with open(t.path("control", "resolvers"), "w") as f:
            f.write(f"127.0.0.1:{silent.getsockname()[1]}\n")
        t0 = time.monotonic()
        lines, err = inetd(t, SESSION, ip="127.0.0.1")
        took = time.monotonic() - t0
    finally:
        silent.close()
    assert codes(lines) == ["220", "250", "250", "250", "221"], lines
    assert "; rbl error bl.test" in err, err
    assert 1.0 < took < 8.0, took
