"""test_tls - testssl.sh (Debian's testssl.sh) against Facteur's TLS
(issue 15).

`facteur run` with every listener; testssl.sh against 465 (implicit
TLS) in make check (protocols, server defaults, vulnerabilities: -p -S
-U), and all of --fast against 465, 587 (STARTTLS), 995 (implicit TLS)
and 110 (STLS) in check-slow, its findings rated HIGH or
CRITICAL read from its JSON output.

Proved: no finding rated high or critical about protocols, ciphers,
renegotiation, compression or the known vulnerabilities (Heartbleed,
CCS, ROBOT, POODLE, SWEET32, BEAST, LUCKY13, FREAK, Logjam, DROWN...).
The certificate findings are left out and printed: they are about the
self-signed test certificate that `facteur init` makes (no chain of
trust, no CRL or OCSP address, a validity over 825 days), which an
operator replaces with one from a CA (docs/security.md says so).
"""
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile_net import System  # noqa: E402

# the services and how testssl.sh reaches each
TARGETS = {"smtps": [], "submission": ["-t", "smtp"], "pop3s": [],
           "pop3": ["-t", "pop3"]}


def testssl(t, port, extra, checks):
    """testssl.sh's findings of severity HIGH or CRITICAL on port:
    [(id, severity, finding)]"""
    out = os.path.join(t.tmp, f"testssl-{port}.json")
    p = subprocess.run(["testssl", "--quiet", "--warnings", "off", "--fast",
                        "--color", "0", "--severity", "HIGH", "-oj", out,
                        *checks, *extra, f"127.0.0.1:{port}"],
                       capture_output=True, text=True, timeout=600)
    assert os.path.exists(out), p.stdout[-3000:] + p.stderr[-3000:]
    with open(out) as f:
        found = json.load(f)
    return [(x["id"], x["severity"], x["finding"]) for x in found
            if x["severity"] in ("HIGH", "CRITICAL")], p.stdout


def scan(t, services, checks=()):
    if not shutil.which("testssl"):
        print("SKIP: testssl.sh is needed (tools/deps.sh test installs it)")
        return
    sysx = System(t, timeout=60)
    try:
        with ThreadPoolExecutor(len(services)) as ex:
            res = dict(zip(services, ex.map(
                lambda s: testssl(t, sysx.ports[s], TARGETS[s], checks),
                services)))
    finally:
        sysx.stop()
    bad = {}
    for svc, (found, text) in res.items():
        # the scan ran: it names TLS 1.2 or 1.3 as offered
        assert "TLS 1.2" in text or "TLS 1.3" in text, (svc, text[-3000:])
        cert = [f for f in found if f[0].startswith("cert")]
        other = [f for f in found if not f[0].startswith("cert")]
        print(f"testssl {svc}: {len(other)} high/critical; certificate "
              f"(self-signed test one): {[f[0] for f in cert]}")
        if other:
            bad[svc] = other
    assert bad == {}, bad


def test_tls_testssl_465(t):
    # protocols, the server's defaults and the vulnerabilities: half the
    # time of the whole --fast run
    scan(t, ["smtps"], ["-p", "-S", "-U"])


def slow_tls_testssl_every_port(t):
    scan(t, list(TARGETS))
