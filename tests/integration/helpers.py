"""helpers - what every integration test shares.

Ctx(bindir) gives a test the built programs and temporary roots that are
removed afterwards. Roots live in a 0755 directory so that, when the tests
run as root, the mail user that the programs drop to can reach them.
"""
import os
import shutil
import subprocess
import tempfile


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

    def init(self, *args):
        """Create a root with `facteur init --dev` and make it current."""
        self.root = os.path.join(self.tmp, "root")
        self.run("facteur", "init", "--root", self.root, "--dev", *args,
                 root=False, check=0)
        return self.root

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
