"""test_spf - lib/spf (RFC 7208) against the RFC 7208 test suite and pyspf.

tests/data/rfc7208-tests.yml (the openspf.org suite, from pyspf's
repository; licence beside it) gives scenarios: DNS zone data and test
cases (client IP, MAIL FROM, HELO, the expected result or results). For
each scenario one dnsmasq serves its zone on a loopback port; every case
of the scenario goes through tests/unit/spfcheck (lib/spf over lib/dns)
in one run, and through pyspf (python3-spf, its dnspython resolver
pointed at the same dnsmasq). Both are compared with the suite and with
each other; the counts are printed, and a case that is not expressible
in dnsmasq is listed with its reason (docs/testing.md).

How the zone is served: every record is a raw --dns-rr (TXT strings cut
at 255 bytes, MX and PTR names in wire form), so dnsmasq adds no reverse
records of its own; --local=/#/ makes every other name NXDOMAIN. A name
whose entry is TIMEOUT is forwarded to a UDP socket that never answers.
As pyspf's own test driver does, an SPF-type record is served as TXT
when the name has no TXT entry ("TXT: NONE": no TXT at all).

Then bad input: include loops, deep include chains, a TXT record of
64 KiB, a resolver that never answers (temperror within the deadline).
"""
import os
import socket
import subprocess
import sys
import time

from helpers import dnsmasq

try:
    import spf
    import yaml
except ImportError:  # Debian's python3-spf and -yaml, from another Python
    sys.path.append("/usr/lib/python3/dist-packages")
    import spf
    import yaml
import dns.resolver

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.join(HERE, "..", "data", "rfc7208-tests.yml")

# cases whose DNS data dnsmasq cannot serve: they are run by neither side
NOT_EXPRESSIBLE = {
    "ptr-cname-loop": "a CNAME loop: dnsmasq's --cname needs a target it "
                      "holds as a host, and a --dns-rr CNAME is returned "
                      "only to CNAME questions",
    "cname-aliasing": "a CNAME to a TXT record: as above",
}

# cases where Facteur's result differs from pyspf's; each says which
# RFC 7208 text decides (both are still checked against the suite)
DIFFER_FROM_PYSPF = {
    "multispf1": "two identical TXT records: RFC 7208 4.5, \"If the "
                 "resultant record set includes more than one record, "
                 "check_host() produces the 'permerror' result\"; "
                 "dnspython keeps an RRset as a set, so pyspf sees one "
                 "record and says fail (the suite allows both)",
}

# cases where Facteur's result is none of the suite's; each with the text
DIFFER_FROM_SUITE = {}


def spfcheck(t):
    """the driver, in tests/run.py's --unit directory"""
    unit = os.environ.get("FACTEUR_UNIT_DIR",
                          os.path.join(t.bindir, "..", "tests"))
    path = os.path.join(unit, "spfcheck")
    assert os.access(path, os.X_OK), f"{path}: build it with `make unit`"
    return path


def wire_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        b = label.encode()
        if not b or len(b) > 63:
            raise ValueError(f"label {label!r} cannot be sent")
        out += bytes([len(b)]) + b
    return out + b"\0"


def rdata(rtype, value):
    """(type number, rdata) of one suite record"""
    if rtype == "A":
        return 1, socket.inet_aton(value)
    if rtype == "AAAA":
        return 28, socket.inet_pton(socket.AF_INET6, value)
    if rtype == "MX":
        return 15, value[0].to_bytes(2, "big") + wire_name(value[1])
    if rtype == "PTR":
        return 12, wire_name(value)
    if rtype == "TXT":
        strings = [value] if isinstance(value, str) else list(value)
        out = b""
        for s in strings:
            b = s.encode("utf-8") if isinstance(s, str) else s
            chunks = [b[i:i + 255] for i in range(0, len(b), 255)] or [b""]
            for c in chunks:
                out += bytes([len(c)]) + c
        return 16, out
    raise ValueError(f"type {rtype}")


def zone_records(zonedata):
    """{name: [(type, value)]} as pyspf's test driver reads the suite,
    and the names whose entry is TIMEOUT"""
    zone, timeout = {}, set()
    for name, entries in zonedata.items():
        recs, spf_recs, has_txt = [], [], False
        for e in entries:
            if e == "TIMEOUT":
                timeout.add(name)
                continue
            ((rtype, value),) = e.items()
            if rtype == "SPF":
                spf_recs.append(value)
                continue
            if rtype == "TXT":
                has_txt = True
                if value == "NONE":
                    continue
            if rtype == "CNAME":
                continue  # NOT_EXPRESSIBLE
            recs.append((rtype, value))
        if not has_txt:
            recs += [("TXT", v) for v in spf_recs]
        zone[name] = recs
    return zone, timeout


def dnsmasq_args(zone, timeout, hole_port):
    args = ["--local=/#/"]
    for name, recs in zone.items():
        for rtype, value in recs:
            try:
                wire_name(name)
                num, data = rdata(rtype, value)
            except ValueError:
                continue  # a name no DNS message can carry
            args.append(f"--dns-rr={name},{num},{data.hex()}")
    for name in timeout:
        if zone.get(name):
            # spftimeout: its TXT is served; only type SPF, which neither
            # side asks, would time out
            continue
        args.append(f"--server=/{name}/127.0.0.1#{hole_port}")
        # names below it that the zone holds stay local
        for other in zone:
            if other.lower().endswith("." + name.lower()):
                args.append(f"--local=/{other}/")
    return args


def pyspf_result(port, case):
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = port
    r.timeout = r.lifetime = 1.0
    dns.resolver.default_resolver = r
    q = spf.query(i=case["host"], s=case["mailfrom"], h=case["helo"],
                  timeout=1, querytime=0)
    return q.check()[0]


def run_scenario(t, scenario, hole_port, report):
    zone, timeout = zone_records(scenario["zonedata"])
    cases = [(n, c) for n, c in scenario["tests"].items()
             if n not in NOT_EXPRESSIBLE]
    with dnsmasq(t, *dnsmasq_args(zone, timeout, hole_port)):
        port = int(open(t.path("control", "resolvers")).read().split(":")[1])
        lines = "".join(f"{c['host']}\t{c['mailfrom']}\t{c['helo']}\n"
                        for _, c in cases)
        p = subprocess.run([spfcheck(t), t.root, "3000", "300"],
                           input=lines.encode(), capture_output=True,
                           timeout=120)
        assert p.returncode == 0, p.stderr.decode(errors="replace")
        ours = p.stdout.decode().splitlines()
        assert len(ours) == len(cases), (ours, p.stderr)
        for (name, case), line in zip(cases, ours):
            want = case["result"]
            want = want if isinstance(want, list) else [want]
            got, why, _ms = line.split("\t")
            py = pyspf_result(port, case)
            report.append((name, want, got, why, py))


def test_spf_rfc7208_suite_and_pyspf(t):
    t.root = os.path.join(t.tmp, "root")
    os.makedirs(t.path("control"))
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hole.bind(("127.0.0.1", 0))  # never read: every query times out
    report = []
    try:
        with open(SUITE, "rb") as f:
            for scenario in yaml.safe_load_all(f):
                run_scenario(t, scenario, hole.getsockname()[1], report)
    finally:
        hole.close()
    suite_ok = [r for r in report if r[2] in r[1]]
    py_suite_ok = [r for r in report if r[4] in r[1]]
    same = [r for r in report if r[2] == r[4]]
    print(f"spf: {len(report)} cases run, {len(NOT_EXPRESSIBLE)} not "
          f"expressible in dnsmasq; Facteur agrees with the suite on "
          f"{len(suite_ok)}, pyspf on {len(py_suite_ok)}; Facteur and pyspf "
          f"agree on {len(same)}")
    bad_suite = [r for r in report if r[2] not in r[1]
                 and r[0] not in DIFFER_FROM_SUITE]
    bad_py = [r for r in report if r[2] != r[4]
              and r[0] not in DIFFER_FROM_PYSPF]
    assert not bad_suite and not bad_py, (
        "name, suite, facteur, why, pyspf:\n" + "\n".join(
            map(str, bad_suite)) + "\n---\n" + "\n".join(map(str, bad_py)))
    # the listed differences still differ (else the list is stale)
    for name in DIFFER_FROM_PYSPF:
        r = [x for x in report if x[0] == name]
        assert r and r[0][2] != r[0][4], (name, r)
    assert len(report) + len(NOT_EXPRESSIBLE) > 200, len(report)


# --- bad input ---

def txt_rr(name, text):
    return f"--dns-rr={name},16,{rdata('TXT', text)[1].hex()}"


def check(t, cases, *records, deadline=5000, query=1000):
    """spfcheck over dnsmasq serving records: [(result, why, ms)]"""
    t.root = os.path.join(t.tmp, "root")
    os.makedirs(t.path("control"), exist_ok=True)
    with dnsmasq(t, "--local=/#/", *records):
        return run_driver(t, cases, deadline, query)


def run_driver(t, cases, deadline, query):
    lines = "".join(f"{ip}\t{s}\t{h}\n" for ip, s, h in cases)
    p = subprocess.run([spfcheck(t), t.root, str(deadline), str(query)],
                       input=lines.encode(), capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    out = [line.split("\t") for line in p.stdout.decode().splitlines()]
    assert len(out) == len(cases), out
    return [(r, why, int(ms)) for r, why, ms in out]


def test_spf_loops_and_recursion_are_permerror(t):
    chain = [txt_rr(f"d{i}.test", f"v=spf1 include:d{i + 1}.test -all")
             for i in range(30)]
    got = check(t, [("192.0.2.1", "a@loop1.test", "h.test"),
                    ("192.0.2.1", "a@self.test", "h.test"),
                    ("192.0.2.1", "a@d0.test", "h.test"),
                    ("192.0.2.1", "a@d20.test", "h.test")],
                txt_rr("loop1.test", "v=spf1 include:loop2.test -all"),
                txt_rr("loop2.test", "v=spf1 include:loop1.test -all"),
                txt_rr("self.test", "v=spf1 redirect=self.test"),
                *chain)
    for r, why, _ in got[:3]:
        assert (r, why) == ("permerror", "more than 10 DNS lookups"), got
    # 10 includes from d20 reach d30, which has no record (RFC 7208 5.2)
    assert got[3][:2] == ("permerror",
                          "include of a domain without SPF record"), got


def test_spf_void_and_mx_limits(t):
    mx = [f"--dns-rr=many.test,15,{(i).to_bytes(2, 'big').hex()}"
          f"{wire_name(f'mx{i}.test').hex()}" for i in range(11)]
    got = check(t, [("192.0.2.1", "a@v2.test", ""),
                    ("192.0.2.1", "a@v3.test", ""),
                    ("192.0.2.1", "a@many.test", ""),
                    ("192.0.2.1", "", "v3.test"),
                    ("192.0.2.1", "a@" + "x." * 1000 + "v2.test", "")],
                txt_rr("v2.test", "v=spf1 a:n1.test a:n2.test -all"),
                txt_rr("v3.test", "v=spf1 a:n1.test a:n2.test a:n3.test "
                       "-all"),
                txt_rr("many.test", "v=spf1 mx -all"), *mx)
    assert got[0][:2] == ("fail", "-all"), got
    assert got[1][:2] == ("permerror", "more than 2 void lookups"), got
    assert got[2][:2] == ("permerror", "more than 10 MX names"), got
    # <>: the HELO identity is checked
    assert got[3][:2] == ("permerror", "more than 2 void lookups"), got
    # over SPF_INPUT_MAX: none, without a question
    assert got[4][:2] == ("none", "-"), got


def test_spf_txt_of_64k(t):
    # the most one DNS message holds: c-ares gets it over TCP
    big = "v=spf1 " + "ip4:192.0.2.1 " * 4590 + "-all"
    junk = "v=spf1 " + "x" * 64000
    assert len(big) > 64000
    got = check(t, [("192.0.2.9", "a@big.test", "h.test"),
                    ("192.0.2.1", "a@big.test", "h.test"),
                    ("192.0.2.1", "a@junk.test", "h.test")],
                txt_rr("big.test", big), txt_rr("junk.test", junk))
    assert got[0][:2] == ("fail", "-all"), got
    assert got[1][:2] == ("pass", "ip4:192.0.2.1"), got
    assert got[2][:2] == ("permerror", "bad mechanism"), got


def test_spf_resolver_never_answers_is_temperror(t):
    t.root = os.path.join(t.tmp, "root")
    os.makedirs(t.path("control"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))
        with open(t.path("control", "resolvers"), "w") as f:
            f.write(f"127.0.0.1:{hole.getsockname()[1]}\n")
        t0 = time.monotonic()
        # one try of 300 ms, twice: the query's own timeout
        got = run_driver(t, [("192.0.2.1", "a@x.test", "h.test")], 20000,
                         300)
        # a try of 10 s, a deadline of 1 s: the deadline wins
        got += run_driver(t, [("192.0.2.1", "", "h.x.test")], 1000, 10000)
        elapsed = time.monotonic() - t0
    assert got[0][:2] == ("temperror", "DNS timeout or error"), got
    assert 500 <= got[0][2] < 1500, got
    assert got[1][:2] == ("temperror", "DNS timeout or error"), got
    assert 950 <= got[1][2] < 1500, got
    assert elapsed < 5, elapsed
