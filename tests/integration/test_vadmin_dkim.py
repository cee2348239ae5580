"""test_vadmin_dkim - `vadmin dkim add|list|show|rotate|del` and
`adddomain --dkim`: the DNS records printed (strings of at most 255
bytes, the exact public key of the file, checked with the openssl tool),
the key files (0600, the mail user's), control/dkim.cdb, --json, and the
refusals (SPEC.md "Administration"; docs/authentication.md).
"""
import base64
import json
import os
import re
import stat
import subprocess
import time

import helpers
from vadmin_util import D, add_domain, fast_root, mailuser, refused, vadmin


def today():
    return time.strftime("%Y%m%d", time.gmtime())


def key_path(t, sel, domain=D):
    return t.path("control", "dkim", domain, sel + ".pem")


def dkim_table(t):
    p = t.path("control", "dkim.cdb")
    return {k.decode(): v.split(b"\0") for k, v in
            helpers.cdb_dict(p).items()} if os.path.exists(p) else {}


def zone_parts(line):
    """NAME and the strings of a zone line NAME IN TXT "..." "..." """
    m = re.fullmatch(r'(\S+)\. IN TXT((?: "[^"]*")+)', line)
    assert m, line
    return m.group(1), re.findall(r'"([^"]*)"', m.group(2))


def public_of(pem_path, ed25519):
    """the p= value the private key file implies, by the openssl tool"""
    der = subprocess.run(["openssl", "pkey", "-in", pem_path, "-pubout",
                          "-outform", "DER"], capture_output=True,
                         check=True).stdout
    return base64.b64encode(der[-32:] if ed25519 else der).decode()


def setup(t):
    fast_root(t)
    add_domain(t)


def test_dkim_add_prints_record_of_the_key_file(t):
    setup(t)
    p = vadmin(t, "dkim", "add", D)
    sel = "f" + today()
    (line,) = p.out.splitlines()
    name, strings = zone_parts(line)
    assert name == f"{sel}._domainkey.{D}"
    assert all(len(s) <= 255 for s in strings) and len(strings) == 2
    txt = "".join(strings)
    assert txt == "v=DKIM1; k=rsa; p=" + public_of(key_path(t, sel), False)
    # 0600 in a 0700 directory, the mail user's
    st = os.stat(key_path(t, sel))
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(key_path(t, sel))).st_mode)\
        == 0o700
    if os.geteuid() == 0:
        assert st.st_uid == mailuser(t).pw_uid
    assert dkim_table(t) == {D: [sel.encode(), b"rsa"]}
    # ed25519: the 32 raw bytes (RFC 8463), one string; its own selector
    p = vadmin(t, "dkim", "add", D, "--type", "ed25519", "--json")
    (k,) = json.loads(p.out)
    assert k["selector"] == sel + "e" and k["type"] == "ed25519"
    assert k["txt"] == "v=DKIM1; k=ed25519; p=" + public_of(
        key_path(t, sel + "e"), True)
    assert k["record"] == f'{k["name"]}. IN TXT "{k["txt"]}"'
    assert dkim_table(t) == {D: [sel.encode(), b"rsa", sel.encode() + b"e",
                                 b"ed25519"]}


def test_dkim_bits_and_selector(t):
    setup(t)
    p = vadmin(t, "dkim", "add", D, "--bits", "3072", "--selector", "big",
               "--json")
    (k,) = json.loads(p.out)
    assert k["bits"] == 3072 and k["selector"] == "big"
    # a 3072-bit key's record needs three strings
    assert len(zone_parts(k["record"])[1]) == 3
    assert k["txt"].endswith(public_of(key_path(t, "big"), False))
    refused(t, "dkim", "add", D, "--selector", "big", want="already has")


def test_dkim_list_show_json(t):
    setup(t)
    add_domain(t, "other.test")
    vadmin(t, "dkim", "add", D, "--selector", "s1")
    vadmin(t, "dkim", "add", "other.test", "--type", "ed25519",
           "--selector", "s2")
    lines = vadmin(t, "dkim", "list").out.splitlines()
    assert [l.split()[:4] for l in lines] == [
        [D, "s1", "rsa", "2048"], ["other.test", "s2", "ed25519", "256"]]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                        lines[0].split()[4])
    assert vadmin(t, "dkim", "list", "other.test").out.splitlines() == \
        lines[1:]
    j = json.loads(vadmin(t, "dkim", "list", "--json").out)
    assert [(k["domain"], k["selector"]) for k in j] == [
        (D, "s1"), ("other.test", "s2")]
    show = vadmin(t, "dkim", "show", D).out.splitlines()
    assert show == [j[0]["record"]]
    assert json.loads(vadmin(t, "dkim", "show", D, "--json").out) == j[:1]
    add_domain(t, "nokey.test")
    assert vadmin(t, "dkim", "list", "nokey.test").out == ""
    refused(t, "dkim", "show", "nokey.test", want="has no DKIM key")


def test_dkim_rotate_then_del(t):
    setup(t)
    vadmin(t, "dkim", "add", D)
    vadmin(t, "dkim", "add", D, "--type", "ed25519")
    sel = "f" + today()
    out = vadmin(t, "dkim", "rotate", D).out.splitlines()
    names = [zone_parts(l)[0] for l in out]
    assert names == [f"{sel}-2._domainkey.{D}", f"{sel}e-2._domainkey.{D}"]
    # old and new sign until the old ones are deleted
    assert dkim_table(t)[D] == [x.encode() for x in (
        sel, "rsa", sel + "e", "ed25519", sel + "-2", "rsa", sel + "e-2",
        "ed25519")]
    vadmin(t, "dkim", "del", D, sel)
    vadmin(t, "dkim", "del", D, sel + "e")
    assert dkim_table(t)[D] == [x.encode() for x in (
        sel + "-2", "rsa", sel + "e-2", "ed25519")]
    assert not os.path.exists(key_path(t, sel))
    assert os.path.exists(key_path(t, sel + "-2"))
    refused(t, "dkim", "del", D, sel, want="no key with selector")
    refused(t, "dkim", "rotate", "nokey.test", want="does not exist")
    add_domain(t, "nokey.test")
    refused(t, "dkim", "rotate", "nokey.test", want="no DKIM key to rotate")


def test_dkim_refusals(t):
    setup(t)
    for args, want in (
            (("bad..test",), "invalid domain"),
            (("unknown.test",), "does not exist"),
            ((D, "--bits", "1024"), "2048 to 4096"),
            ((D, "--bits", "8192"), "2048 to 4096"),
            ((D, "--bits", "2k"), "2048 to 4096"),
            ((D, "--type", "dsa"), "unknown key type"),
            ((D, "--type", "ed25519", "--bits", "2048"), "--bits is for RSA"),
            ((D, "--selector", "Bad_Sel"), "invalid selector"),
            ((D, "--selector", "-x"), "invalid selector")):
        refused(t, "dkim", "add", *args, want=want)
    assert dkim_table(t) == {}
    assert not os.path.exists(t.path("control", "dkim", D))
    for args in ((), ("frob",), ("add",), ("del", D), ("show",),
                 ("list", "--selector", "x"), ("add", D, "--nope")):
        refused(t, "dkim", *args, code=2)
    # at most 8 keys sign for a domain
    for i in range(8):
        vadmin(t, "dkim", "add", D, "--type", "ed25519", "--selector",
               f"k{i}")
    refused(t, "dkim", "add", D, "--type", "ed25519", want="8 keys")


def test_adddomain_dkim_deldomain_rebuild(t):
    fast_root(t)
    p = vadmin(t, "adddomain", D, "--dkim", input="pm-Secret-1\n")
    name, _ = zone_parts(p.out.splitlines()[0])
    assert name == f"f{today()}._domainkey.{D}"
    assert list(dkim_table(t)) == [D]
    os.unlink(t.path("control", "dkim.cdb"))
    vadmin(t, "rebuild")
    assert list(dkim_table(t)) == [D]
    # a key file nobody recorded (a vadmin killed before its commit) goes
    # at the next change of the keys
    with open(key_path(t, "stray"), "w") as f:
        f.write("x")
    vadmin(t, "deldomain", D)
    # no key left: no table (the signer takes a missing one for none)
    assert not os.path.exists(t.path("control", "dkim.cdb"))
    assert not os.path.exists(t.path("control", "dkim", D))


def test_check_and_repair_of_keys(t):
    setup(t)
    vadmin(t, "dkim", "add", D, "--selector", "s1", "--type", "ed25519")
    assert "ok: the files match" in vadmin(t, "check").out
    os.unlink(t.path("control", "dkim.cdb"))
    os.chmod(key_path(t, "s1"), 0o644)
    with open(key_path(t, "stray"), "w") as f:
        f.write("x")
    out = vadmin(t, "check", check=1).out
    assert "problem: control/dkim.cdb does not match the database" in out
    assert f"problem: the DKIM key {key_path(t, 's1')} has mode 0644" in out
    assert "problem: control/dkim/example.test/stray.pem is the file of " \
        "no DKIM key" in out, out
    out = vadmin(t, "check", "--repair").out
    assert out.count("repaired: ") == 2 and "ok: the files" in out, out
    assert dkim_table(t) == {D: [b"s1", b"ed25519"]}
    assert stat.S_IMODE(os.stat(key_path(t, "s1")).st_mode) == 0o600
    assert not os.path.exists(key_path(t, "stray"))
    # a lost key cannot be repaired: said, and left
    os.unlink(key_path(t, "s1"))
    out = vadmin(t, "check", "--repair", check=1).out
    assert "problem: the DKIM key " in out and "is missing" in out, out
