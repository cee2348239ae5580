"""helpers - what every integration test shares, written once.

Ctx(bindir) gives a test the built programs and temporary roots that are
removed afterwards. Roots live in a 0755 directory so that, when the tests
run as root, the mail user that the programs drop to can reach them.

And the four pieces that tests of mail flow need, each here and nowhere
else:
  ports       free_port() for a program that binds a port itself (from a
              control file): the kernel picks it (bind to port 0), never
              a guess; a fake server keeps its own socket (MX binds 0).
  a fake MX   MX: a scripted SMTP server on loopback, in a thread, that
              records every session and every message it accepted, with
              modes for misbehaving servers (MX.MODES).
  mta-send    Sender: the scheduler in the background on a test root, its
              log in a file, waits on the log and on the queue, stopped
              by its own PID (SIGTERM, or kill -9 of it or its group).
  queue files qf_parse/read_queue_file read one as docs/queue.md describes
              it (independent of lib/queue.c), qf_build/qf_new write one,
              queue_files/queued list the queue.

And OpenDKIMd: a private OpenDKIM milter on loopback, the signer of
test_dkim_interop and the peer of bench/sign_compare.py.
"""
import base64
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time


def alone(fn):
    """mark a test that measures time (a delay, a gap, a deadline) to run
    with no other test beside it when run.py runs tests in parallel (-j);
    a module whose every test does so says ALONE = True instead"""
    fn.alone = True
    return fn


class Ctx:
    def __init__(self, bindir):
        self.bindir = bindir
        self.tmp = tempfile.mkdtemp(prefix="facteur-test-")
        os.chmod(self.tmp, 0o755)
        self.root = None

    def bin(self, prog):
        return os.path.join(self.bindir, prog)

    def run(self, prog, *args, input=None, root=True, env=None, check=None,
            timeout=120):
        """Run a built program; root=True adds --root of the current root,
        first: mta-inject, sendmail, vdeliver and mta-remote end their
        options at the first address (lib/args.h)."""
        argv = [self.bin(prog)]
        if root and self.root:
            argv += ["--root", self.root]
        argv += [str(a) for a in args]
        e = dict(os.environ)
        e.pop("FACTEUR_ROOT", None)
        e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "detect_leaks=1")
        if env:
            e.update(env)
        if isinstance(input, str):
            input = input.encode()
        p = subprocess.run(argv, input=input if input is not None else b"",
                           capture_output=True, env=e, timeout=timeout)
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        if check is not None:
            assert p.returncode == check, (
                f"{prog} {' '.join(map(str, args))}: exit {p.returncode}, "
                f"want {check}\nstdout: {p.out}\nstderr: {p.err}")
        return p

    def init(self, *args, machine_dns=False):
        """Create a root with `facteur init --dev` and make it current;
        with no resolver that answers (no_dns) unless machine_dns, which
        leaves control/ as init made it (the machine's resolver)."""
        self.root = os.path.join(self.tmp, "root")
        self.run("facteur", "init", "--root", self.root, "--dev", *args,
                 root=False, check=0)
        if not machine_dns:
            self.no_dns()
        return self.root

    def no_dns(self):
        """control/resolvers naming UDP port 9 of loopback, where nothing
        listens: every question fails at once (port unreachable), so that
        the checks of the MX path (SPF, DKIM, DMARC, DNSBL) never ask this
        machine's own resolver, which may be slow or absent (CI). Tests
        that want answers start dnsmasq(), which rewrites the file."""
        path = self.path("control", "resolvers")
        with open(path, "w") as f:
            f.write("127.0.0.1:9\n")
        if os.geteuid() == 0:
            st = os.stat(self.path("control"))
            os.lchown(path, st.st_uid, st.st_gid)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


# --- constant databases (D. J. Bernstein's cdb format, as tinycdb writes it)
# A 2048-byte header of 256 (position, length) pairs of little-endian 32-bit
# numbers, then the records (klen, vlen, key, value), then the hash tables.

def cdb_records(path):
    """Every (key, value) record of a CDB file, in file order, as bytes."""
    import struct
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 2048:
        raise ValueError(f"{path}: {len(data)} bytes, shorter than a header")
    heads = struct.unpack("<512I", data[:2048])
    end = min(heads[0::2])
    if end < 2048 or end > len(data):
        raise ValueError(f"{path}: bad header")
    out, pos = [], 2048
    while pos < end:
        klen, vlen = struct.unpack("<II", data[pos:pos + 8])
        pos += 8
        if pos + klen + vlen > end:
            raise ValueError(f"{path}: record past the end of the data")
        out.append((data[pos:pos + klen], data[pos + klen:pos + klen + vlen]))
        pos += klen + vlen
    return out


def cdb_dict(path):
    """A CDB file as {key: value} (bytes); the first record of a key wins,
    as in a lookup."""
    d = {}
    for k, v in cdb_records(path):
        d.setdefault(k, v)
    return d


def _cdb_hash(key):
    h = 5381
    for c in key:
        h = ((h << 5) + h ^ c) & 0xFFFFFFFF
    return h


def cdb_write(path, records):
    """Write (key, value) byte pairs as a CDB file (for tests that tamper
    with a generated table)."""
    import struct
    body, slots = bytearray(), [[] for _ in range(256)]
    for k, v in records:
        if isinstance(k, str):
            k = k.encode()
        if isinstance(v, str):
            v = v.encode()
        slots[_cdb_hash(k) & 255].append((_cdb_hash(k), 2048 + len(body)))
        body += struct.pack("<II", len(k), len(v)) + k + v
    header, tables = bytearray(), bytearray()
    tpos = 2048 + len(body)
    for entries in slots:
        n = len(entries) * 2
        table = [(0, 0)] * n
        for h, p in entries:
            i = (h >> 8) % n
            while table[i][1]:
                i = (i + 1) % n
            table[i] = (h, p)
        header += struct.pack("<II", tpos + len(tables), n)
        for h, p in table:
            tables += struct.pack("<II", h, p)
    with open(path, "wb") as f:
        f.write(bytes(header) + bytes(body) + bytes(tables))


# --- ports ----

def family_of(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def free_port(ip="127.0.0.1", kind=socket.SOCK_STREAM):
    """A port the kernel picked as free on ip (bound to port 0, read,
    released), for a program under test that binds it itself from a
    control file (mta-smtpd, pop3d, facteur run, dnsmasq, the one port of
    every peer of mta-remote). A fake server of the test's own keeps its
    socket instead (MX)."""
    with socket.socket(family_of(ip), kind) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def free_dns_port(ip="127.0.0.1"):
    """free_port() for dnsmasq, which listens on UDP and TCP: a port free
    for both, or a test beside it that holds the TCP port (an MX on port
    0) would stop it"""
    for _ in range(100):
        with socket.socket(family_of(ip), socket.SOCK_DGRAM) as u:
            u.bind((ip, 0))
            port = u.getsockname()[1]
            with socket.socket(family_of(ip), socket.SOCK_STREAM) as s:
                try:
                    s.bind((ip, port))
                except OSError:
                    continue
                return port
    raise AssertionError(f"no port free for UDP and TCP on {ip}")


DNSMASQ = "/usr/sbin/dnsmasq"


@contextlib.contextmanager
def dnsmasq(t, *records):
    """dnsmasq on a free loopback port with RECORDS (its options: --local,
    --host-record, --mx-host...), named in t's control/resolvers; yields
    the process"""
    port = free_dns_port()
    logpath = os.path.join(t.tmp, f"dnsmasq-{port}.log")
    with open(logpath, "wb") as log:
        p = subprocess.Popen([
            DNSMASQ, "--no-daemon", "--no-resolv", "--no-hosts",
            "--conf-file=/dev/null", "--pid-file=", f"--port={port}",
            "--listen-address=127.0.0.1", "--bind-interfaces", *records],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        end = time.monotonic() + 10
        while b"started, version" not in open(logpath, "rb").read():
            assert p.poll() is None, open(logpath).read()
            assert time.monotonic() < end, "dnsmasq did not start"
            time.sleep(0.05)
        with open(t.path("control", "resolvers"), "w") as f:
            f.write(f"127.0.0.1:{port}\n")
        yield p
    finally:
        if p.poll() is None:
            p.terminate()
            p.wait(timeout=10)


@contextlib.contextmanager
def mute_resolver(t):
    """a UDP port on loopback that takes DNS questions and never answers,
    named in t's control/resolvers: what a deadline must bound"""
    mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mute.bind(("127.0.0.1", 0))
    try:
        path = t.path("control", "resolvers")
        with open(path, "w") as f:
            f.write(f"127.0.0.1:{mute.getsockname()[1]}\n")
        if os.geteuid() == 0:
            st = os.stat(t.path("control"))
            os.lchown(path, st.st_uid, st.st_gid)
        yield mute
    finally:
        mute.close()


def txt_opt(name, txt):
    """dnsmasq's --txt-record for NAME: strings of at most 255 bytes (on
    its command line dnsmasq takes quotes as part of the text), as a
    long DKIM key record is published"""
    parts = [txt[i:i + 255] for i in range(0, len(txt), 255)] or [""]
    return f"--txt-record={name}," + ",".join(parts)


def rsa_key(bits):
    """(PEM private key, DKIM p= value: the DER public key in base64) of
    a new RSA key of BITS, made by the openssl tool"""
    pem = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA",
                          "-pkeyopt", f"rsa_keygen_bits:{bits}"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"],
                         input=pem, check=True, capture_output=True).stdout
    return pem, base64.b64encode(der).decode()


OPENDKIM = "/usr/sbin/opendkim"


class OpenDKIMd:
    """A private `opendkim` (the Debian package's milter, never the
    system's) in the foreground on a free loopback port, with its own
    config, KeyTable, SigningTable and PidFile in TMP/opendkim-NAME: it
    signs mail from every address of DOMAIN with KEYFILE (selector SEL)
    in algorithm ALG and canonicalization CANON, as an MTA's milter.
    One instance signs with one algorithm: SignatureAlgorithm applies to
    every key (conf_signalg in opendkim/opendkim.c of 2.11), so an RSA
    and an Ed25519 signature take two instances in a row. With UNIX, it
    listens on a Unix socket in its directory instead (mode 0777: the
    MTA's user must connect), as Debian's own configuration does.
    `milter` is the socket as Postfix's smtpd_milters names it. Stopped
    by its PID (stop())."""

    def __init__(self, tmp, name, domain, sel, keyfile, alg,
                 canon="relaxed/relaxed", extra=(), unix=False):
        self.dir = os.path.join(tmp, "opendkim-" + name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.path = os.path.join(self.dir, "sock") if unix else None
        sock = ([f"Socket local:{self.path}", "UMask 000"] if unix else
                [f"Socket inet:{self.port}@127.0.0.1"])
        self.milter = (f"unix:{self.path}" if unix else
                       f"inet:127.0.0.1:{self.port}")
        self.pidfile = os.path.join(self.dir, "opendkim.pid")
        conf = os.path.join(self.dir, "opendkim.conf")
        files = {
            "keytable": [f"{sel} {domain}:{sel}:{keyfile}"],
            "signingtable": [f"*@{domain} {sel}"],
            "opendkim.conf": [
                "Mode s", "Background no", "Syslog no",
                # temporary directories sit in /tmp or /var/tmp, which
                # others may write: never a "safe" path to OpenDKIM
                "RequireSafeKeys no",
                *sock,
                f"PidFile {self.pidfile}",
                f"KeyTable file:{self.dir}/keytable",
                f"SigningTable refile:{self.dir}/signingtable",
                f"SignatureAlgorithm {alg}",
                f"Canonicalization {canon}", *extra]}
        for fname, lines in files.items():
            with open(os.path.join(self.dir, fname), "w") as f:
                f.write("".join(x + "\n" for x in lines))
        self.logpath = os.path.join(self.dir, "log")
        with open(self.logpath, "wb") as log:
            self.p = subprocess.Popen([OPENDKIM, "-f", "-x", conf],
                                      stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=log)
        end = time.monotonic() + 20
        while True:
            assert self.p.poll() is None, self.logtext()
            try:
                if unix:
                    with socket.socket(socket.AF_UNIX) as u:
                        u.connect(self.path)
                else:
                    socket.create_connection(("127.0.0.1", self.port),
                                             1).close()
                break
            except OSError:
                assert time.monotonic() < end, self.logtext()
                time.sleep(0.05)

    def logtext(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            self.p.wait(timeout=20)


def dns_queries(t):
    """the names asked of t's dnsmasq servers started with --log-queries"""
    out = []
    for path in glob.glob(os.path.join(t.tmp, "dnsmasq-*.log")):
        out += re.findall(r"query\[\w+\] (\S+) from", open(path).read())
    return out


def ar(msg):
    """the Authentication-Results fields of MSG's header"""
    head = msg.split(b"\n\n", 1)[0] + b"\n"
    return re.findall(rb"^Authentication-Results:.*\n(?:[ \t].*\n)*", head,
                      re.M | re.I)


# --- a fake MX ----

class MX:
    """A scripted SMTP server on (ip, port); port 0 (the default): the
    kernel picks it, and the socket is kept for the MX's life (.port).

    mode, read at each connection (a test may change it meanwhile):
      accept (or good)  a plain server: 250 to everything
      tempfail          451 to every RCPT
      greet421          421 greeting, then close
      drop              close at once
      silent            accept, never answer (read until the client goes)
      trickle (or slow) the greeting a byte a second
      bigline (or huge) a 10 MB greeting line
      manylines         a greeting of 151 lines
      closedata         take the whole message, close without a reply
                        (or close_after_data)
      noread            stop reading in DATA
      noehlo            502 to EHLO (HELO works)
      badtls            garbage after 220 to STARTTLS
      mailhangup        close after refusing MAIL (see mail)
    rcpt maps a local part to the reply to RCPT; mail maps a sender to
    the reply to MAIL; data and final replace the replies to DATA and to
    the end of data; ext lists EHLO keywords; tls, an ssl context, offers
    STARTTLS.

    Records: sessions, one dict a connection: cmds (command lines),
    batches (the commands that arrived before the server answered any of
    them), data (raw DATA bytes up to the final dot), tls. got: (MAIL FROM
    argument, accepted recipients, data) of every message answered 2xx.
    refused: recipients answered other than 2xx. conns: (monotonic time,
    mode) of every connection. Lists change under .lock.
    """

    ALIASES = {"good": "accept", "slow": "trickle", "huge": "bigline",
               "close_after_data": "closedata"}

    def __init__(self, ip="127.0.0.1", port=0, mode="accept",
                 ext=("8BITMIME",), rcpt=None, mail=None, tls=None,
                 data="354 go ahead", final="250 2.0.0 Ok queued as X1"):
        self.ip, self.mode = ip, mode
        self.ext, self.rcpt, self.mail = list(ext), rcpt or {}, mail or {}
        self.tls, self.data, self.final = tls, data, final
        self.sessions, self.got, self.refused, self.conns = [], [], [], []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sock = socket.socket(family_of(ip), socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.open = []
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            mode = self.mode
            with self.lock:
                self.conns.append((time.monotonic(), mode))
                self.open.append(c)
            threading.Thread(target=self.session, args=(c, mode),
                             daemon=True).start()

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()
        with self.lock:
            for c in self.open:
                try:
                    c.close()
                except OSError:
                    pass

    def session(self, c, mode):
        s = {"cmds": [], "batches": [], "data": None, "tls": False}
        with self.lock:
            self.sessions.append(s)
        c.settimeout(30)
        try:
            if not self.misbehave(c, self.ALIASES.get(mode, mode)):
                self.converse(c, s, self.ALIASES.get(mode, mode))
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def drain(self, c):
        """read until the client goes or the MX is closed"""
        c.settimeout(0.5)
        while not self.stop.is_set():
            try:
                if not c.recv(65536):
                    return
            except socket.timeout:
                continue

    def misbehave(self, c, m):
        """the modes that never get to a conversation; True if handled"""
        if m == "drop":
            return True
        if m == "greet421":
            c.sendall(b"421 4.3.2 busy, try later\r\n")
        elif m == "trickle":
            for b in b"220 slow server at one byte a second\r\n":
                if self.stop.wait(1):
                    return True
                c.sendall(bytes([b]))
            self.drain(c)
        elif m == "bigline":
            c.sendall(b"220 ")
            for _ in range(160):        # 10 MB, one line
                c.sendall(b"x" * 65536)
            c.sendall(b"\r\n")
            self.drain(c)
        elif m == "manylines":
            c.sendall(b"220-hello\r\n" * 150 + b"220 done\r\n")
            self.drain(c)
        elif m == "silent":
            self.drain(c)
        else:
            return False
        return True

    def ehlo(self, s):
        ext = list(self.ext)
        if self.tls and not s["tls"]:
            ext.append("STARTTLS")
        lines = ["peer"] + ext
        return "".join(f"250{'-' if i < len(lines) - 1 else ' '}{x}\r\n"
                       for i, x in enumerate(lines))

    def rcpt_reply(self, m, line, s):
        addr = line[8:].strip().strip("<>")
        reply = ("451 4.3.0 try again later" if m == "tempfail" else
                 self.rcpt.get(addr.split("@")[0], "250 2.1.5 ok"))
        with self.lock:
            (s["ok"] if reply.startswith("2") else self.refused).append(addr)
        return reply + "\r\n"

    def converse(self, c, s, m):
        c.sendall(b"220 peer ESMTP\r\n")
        buf = b""
        while True:
            data = c.recv(65536)
            if not data:
                return
            buf += data
            out, batch = [], []
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                line = line.rstrip(b"\r").decode("utf-8", "replace")
                s["cmds"].append(line)
                batch.append(line.split(" ")[0].split(":")[0].upper())
                verb = batch[-1]
                if verb == "EHLO" and m == "noehlo":
                    out.append("502 5.5.1 no EHLO here\r\n")
                elif verb in ("EHLO", "HELO"):
                    out.append(self.ehlo(s))
                elif verb == "STARTTLS":
                    c.sendall("".join(out).encode() + b"220 2.0.0 go\r\n")
                    out = []
                    if m == "badtls":
                        c.sendall(b"this is not TLS\r\n" * 4)
                        return
                    c = self.tls.wrap_socket(c, server_side=True)
                    s["tls"] = True
                    buf = b""
                    break
                elif verb == "MAIL":
                    sender = line[10:].split(">")[0].lstrip("<")
                    s["mail"], s["ok"] = line[10:], []
                    out.append(self.mail.get(sender, "250 2.1.0 ok") + "\r\n")
                    if m == "mailhangup" and sender in self.mail:
                        c.sendall("".join(out).encode())
                        return
                    if sender in self.mail:
                        s["mail_refused"] = True
                elif verb == "RCPT" and s.get("mail_refused"):
                    out.append("503 5.5.1 MAIL first\r\n")
                elif verb == "DATA" and s.get("mail_refused"):
                    out.append("503 5.5.1 no valid recipients\r\n")
                elif verb == "RCPT":
                    out.append(self.rcpt_reply(m, line, s))
                elif verb == "DATA":
                    out.append(self.data + "\r\n")
                    c.sendall("".join(out).encode())
                    out = []
                    s["batches"].append(batch)
                    batch = []
                    if not self.data.startswith("354"):
                        continue
                    if m == "noread":
                        self.stop.wait(30)
                        return
                    while b"\r\n.\r\n" not in b"\r\n" + buf:
                        more = c.recv(65536)
                        if not more:
                            return
                        buf += more
                    end = (b"\r\n" + buf).index(b"\r\n.\r\n")
                    s["data"], buf = buf[:end], buf[end + 3:]
                    if m == "closedata":
                        return
                    if self.final.startswith("2"):
                        with self.lock:
                            self.got.append((s.get("mail"),
                                             list(s.get("ok", [])),
                                             s["data"]))
                    out.append(self.final + "\r\n")
                elif verb == "QUIT":
                    c.sendall("".join(out).encode() + b"221 bye\r\n")
                    return
                elif verb in ("RSET", "NOOP"):
                    out.append("250 ok\r\n")
                else:
                    out.append("502 5.5.2 what?\r\n")
            if batch:
                s["batches"].append(batch)
            if out:
                c.sendall("".join(out).encode())

    def transactions(self):
        """(MAIL FROM argument, every RCPT TO address, raw DATA) of each
        session that got as far as its data; unlike got, recipients the
        MX refused count too"""
        out = []
        for sess in self.sessions:
            if sess["data"] is None:
                continue
            cmds = sess["cmds"]
            mail = [c[10:] for c in cmds if c.upper().startswith("MAIL")]
            rcpts = [c[8:].strip("<>") for c in cmds
                     if c.upper().startswith("RCPT")]
            out.append((mail[-1], rcpts, sess["data"]))
        return out

    def seqs(self):
        """{seq: copies} of the messages answered 2xx, by their X-Seq
        header, one copy per accepted recipient"""
        out = {}
        with self.lock:
            for _, rcpts, data in self.got:
                m = re.search(rb"^X-Seq: (\d+)\r$", data, re.M)
                if m:
                    k = int(m.group(1))
                    out[k] = out.get(k, 0) + len(rcpts)
        return out


def peers(port, *specs):
    """MX servers on one port (mta-remote has one remoteport for all),
    each (ip, {MX keyword arguments})"""
    return [MX(ip, port, **kw) for ip, kw in specs]


def close_all(*things):
    for x in things:
        x.close()


# --- mta-send ----

def wait_for(what, cond, timeout, daemon=None):
    """cond()'s first true value within timeout seconds; a daemon that
    dies meanwhile fails the wait at once, with its log"""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        if daemon is not None:
            assert daemon.p.poll() is None, (
                f"mta-send died waiting for {what}:\n" + daemon.log())
        time.sleep(0.05)
    raise AssertionError(f"timed out ({timeout} s) waiting for {what}" +
                         ("\n" + daemon.log()[-6000:] if daemon else ""))


def children(pid):
    """the PIDs of a process's children (none once it is gone)"""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Sender:
    """mta-send on the test's root in the background, in its own process
    group (so that kill -9 can take its children too), stderr (its log)
    in a file; stopped by its own PID"""

    def __init__(self, t, env=None):
        self.t = t
        self.logpath = os.path.join(t.tmp, f"send-{time.monotonic_ns()}.log")
        self.logf = open(self.logpath, "wb")
        e = dict(os.environ)
        e.pop("FACTEUR_ROOT", None)
        e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "detect_leaks=1")
        if env:
            e.update(env)
        self.p = subprocess.Popen([t.bin("mta-send"), "--root", t.root],
                                  stdin=subprocess.DEVNULL,
                                  stdout=self.logf, stderr=self.logf, env=e,
                                  start_new_session=True)

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def count(self, pattern):
        return len(re.findall(pattern, self.log()))

    def wait_log(self, pattern, count=1, timeout=20):
        wait_for(f"{pattern!r} x{count} in the log",
                 lambda: self.count(pattern) >= count, timeout, self)

    def wait_drained(self, timeout=20):
        """until the queue holds no message"""
        wait_for("an empty queue", lambda: not queue_files(self.t),
                 timeout, self)

    def children(self):
        return children(self.p.pid)

    def kill9(self, group=False):
        if group:
            os.killpg(self.p.pid, signal.SIGKILL)
        else:
            self.p.kill()
        self.p.wait(timeout=10)
        self.logf.close()
        self.check_sanitizers()

    def check_sanitizers(self):
        log = self.log()
        assert "ERROR: AddressSanitizer" not in log, log
        assert "runtime error" not in log, log
        assert "LeakSanitizer" not in log, log

    def stop(self):
        """SIGTERM; it must exit 0 with a clean log, which is returned"""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        rc = self.p.wait(timeout=30)
        self.logf.close()
        assert rc == 0, f"mta-send exit {rc}:\n{self.log()}"
        self.check_sanitizers()
        return self.log()


# --- queue files (docs/queue.md), read and written here, independently
# of lib/queue.c: "FQ1\n", records of a type byte and a 32-bit
# little-endian length, then "M", a 64-bit length and the message

def qf_parse(data):
    """(records as [(type, bytes)], message bytes) of a queue file's
    bytes; every length must match"""
    assert data[:4] == b"FQ1\n", data[:4]
    pos, recs = 4, []
    while True:
        t = data[pos:pos + 1]
        if t == b"M":
            (n,) = struct.unpack("<Q", data[pos + 1:pos + 9])
            body = data[pos + 9:]
            assert len(body) == n, (len(body), n)
            return recs, body
        assert t, f"no M record after {pos} bytes"
        (n,) = struct.unpack("<I", data[pos + 1:pos + 5])
        assert pos + 5 + n <= len(data), f"record {t!r} past the end"
        recs.append((t.decode(), data[pos + 5:pos + 5 + n]))
        pos += 5 + n


def read_queue_file(path):
    """qf_parse() of the file at path"""
    with open(path, "rb") as f:
        return qf_parse(f.read())


def qf_build(recs, body):
    """the bytes of a queue file of these records (type str or bytes,
    value bytes) and this message"""
    out = [b"FQ1\n"]
    for ty, v in recs:
        ty = ty.encode() if isinstance(ty, str) else ty
        out.append(ty + struct.pack("<I", len(v)) + v)
    out.append(b"M" + struct.pack("<Q", len(body)) + body)
    return b"".join(out)


def qf_new(sender, rcpts, body, extra=()):
    """a new queue file: arrival time now, the sender, the recipients,
    extra records, the message"""
    recs = [("T", struct.pack("<Q", int(time.time() * 1e6))),
            ("F", sender.encode())]
    recs += [("R", r.encode()) for r in rcpts]
    return qf_build(recs + list(extra), body)


def queued(t):
    """the files in queue/new, not yet taken by a scheduler"""
    d = t.path("queue", "new")
    return sorted(os.path.join(d, f) for f in os.listdir(d))


def queue_files(t):
    """every message file of the queue: new/ and msg/*/ (ID and ID.s)"""
    out = glob.glob(t.path("queue", "new", "*"))
    out += glob.glob(t.path("queue", "msg", "*", "*"))
    return sorted(out)


# --- PostgreSQL ----

def quota_lock(maildir):
    """a descriptor of the Maildir's quota lock file (lib/mdquota's
    MDQ_LOCK_FILE), made as the Maildir's owner would make it, for a test
    to flock as a delivery or a recalculation does"""
    path = os.path.join(maildir, "quota.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    st = os.stat(maildir)
    os.fchown(fd, st.st_uid, st.st_gid)
    return fd


def postgres_bindir():
    """the directory of Debian's newest PostgreSQL server programs, or None
    (tools/deps.sh test installs the postgresql package)"""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(p.split("/")[4]) if
                   p.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


class Postgres:
    """A private PostgreSQL server for one test: initdb into a directory
    of the test's temporary directory, the server on a free loopback port
    (and its Unix socket in that directory), trust authentication for its
    one role, fsync off unless asked (the tests measure no durability of
    PostgreSQL's; bench/store_bench.py asks).
    PostgreSQL refuses to run as root: a test run as root starts it as the
    postgres user (the package's), else as itself. stop() ends it by its
    PID. Usable by several roots at once (the multi-host tests): each
    createdb() is an empty database, conninfo() the libpq string that
    control/accountdb takes.

        with helpers.Postgres(t) as pg:
            pg.createdb("facteur")
            put accountdb = pg.conninfo("facteur")
    """

    def __init__(self, t, name="postgres", fsync=False):
        self.bindir = postgres_bindir()
        assert self.bindir, "no PostgreSQL server: run tools/deps.sh test"
        self.dir = os.path.join(t.tmp, name)
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.p = None
        self.fsync = fsync
        os.mkdir(self.dir, 0o700)
        self.user = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.user = {"user": pw.pw_uid, "group": pw.pw_gid,
                         "extra_groups": []}
        self._run("initdb", "-D", self.data, "-U", "facteur",
                  "--auth=trust", "--no-instructions", "-E", "UTF8",
                  "--locale=C.UTF-8")
        self.start()

    def _run(self, prog, *args):
        p = subprocess.run([os.path.join(self.bindir, prog), *args],
                           capture_output=True, text=True, timeout=120,
                           cwd=self.dir, **self.user)
        assert p.returncode == 0, f"{prog}: {p.stdout}{p.stderr}"
        return p

    def start(self):
        """start the server (again, after stop) and wait until it answers"""
        log = open(os.path.join(self.dir, "log"), "ab")
        self.p = subprocess.Popen(
            [os.path.join(self.bindir, "postgres"), "-D", self.data,
             "-k", self.dir, "-p", str(self.port), "-c",
             "listen_addresses=127.0.0.1", "-c",
             "fsync=" + ("on" if self.fsync else "off"), "-c",
             "max_connections=40"],
            stdout=log, stderr=log, cwd=self.dir, **self.user)
        log.close()
        wait_for("PostgreSQL to answer", self.ready, 60)

    def ready(self):
        assert self.p.poll() is None, "postgres died:\n" + self.log()
        return subprocess.run(
            [os.path.join(self.bindir, "pg_isready"), "-q", "-h",
             "127.0.0.1", "-p", str(self.port)]).returncode == 0

    def log(self):
        with open(os.path.join(self.dir, "log"), errors="replace") as f:
            return f.read()[-4000:]

    def conninfo(self, db="facteur"):
        return (f"host=127.0.0.1 port={self.port} dbname={db} "
                f"user=facteur connect_timeout=5")

    def createdb(self, db="facteur"):
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "facteur", db)
        return self.conninfo(db)

    def sql(self, query, db="facteur"):
        """one query through psql; its rows, fields split on |"""
        p = subprocess.run(
            [os.path.join(self.bindir, "psql"), "-X", "-A", "-t", "-q",
             "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
             str(self.port), "-U", "facteur", "-d", db, "-c", query],
            capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, f"psql {query!r}: {p.stderr}"
        return [line.split("|") for line in p.stdout.splitlines()]

    def stop(self):
        """fast shutdown by PID (SIGINT), and wait for it"""
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.p = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
