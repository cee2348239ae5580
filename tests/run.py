#!/usr/bin/env python3
"""run.py - the one test runner behind `make check`.

Runs every C unit-test program in --unit (each prints `ok NAME` or
`FAIL NAME: why` lines) and every `test_*` function of the Python modules in
tests/integration/ and tests/hostile/ (each gets a Ctx: the built programs and a temporary
root). Functions named `slow_*` run only with --slow. Ends with the line
`N passed, M failed, K skipped` (a test that printed a line starting
with SKIP could not run here and checked nothing: counted apart) and exits
1 when anything failed. With -j N, the tests run in N processes at once,
but for those that measure time (a module's ALONE = True, or a function
marked @helpers.alone): they run afterwards, one at a time, with nothing
beside them. --durations N lists the N slowest tests (each C
unit-test program counts as one) with the sum of all tests' times and the
wall-clock time, so that what makes `make check` slow can be seen and moved
to `slow_*`.

    tests/run.py --bin build/san/bin --unit build/san/tests [--slow] \
        [-k PATTERN]... [-j N] [--durations N]
"""
import argparse
import concurrent.futures
import contextlib
import io
import importlib.util
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = "skip"   # a result's status besides True (passed) and False

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "integration"))

import helpers  # noqa: E402


def selected(label, patterns):
    """-k PATTERN, given once or more: a test runs when any matches"""
    return not patterns or any(p in label for p in patterns)


def run_unit(unit_dir, patterns, results, times):
    if not unit_dir or not os.path.isdir(unit_dir):
        return
    for name in sorted(os.listdir(unit_dir)):
        path = os.path.join(unit_dir, name)
        if not (name.startswith("test_") and os.access(path, os.X_OK)):
            continue
        if not selected(name, patterns):
            continue
        t0 = time.monotonic()
        p = subprocess.run([path], capture_output=True, text=True,
                           timeout=600)
        times.append((time.monotonic() - t0, name))
        seen = 0
        for line in p.stdout.splitlines():
            if line.startswith("ok "):
                results.append((True, f"{name}: {line[3:]}", ""))
                seen += 1
            elif line.startswith("FAIL "):
                results.append((False, f"{name}: {line[5:]}", ""))
                seen += 1
        if p.returncode != 0 or seen == 0:
            results.append((False, f"{name}: exit {p.returncode}",
                            p.stderr[-4000:]))


def test_files():
    """(name, path) of every test module: tests/integration/ drives the
    programs one feature at a time, tests/hostile/ attacks the whole system
    (crash points, write faults, floods); both use helpers.Ctx"""
    found = []
    for sub in ("integration", "hostile"):
        d = os.path.join(HERE, sub)
        if not os.path.isdir(d):
            continue
        found += [(f, os.path.join(d, f)) for f in os.listdir(d)
                  if f.startswith("test_") and f.endswith(".py")]
    return sorted(found)


def collect(slow, patterns, results):
    """[(label, function, alone)] of the selected tests, in name order; a
    module that does not load is a failure of its own"""
    tests = []
    for fname, path in test_files():
        spec = importlib.util.spec_from_file_location(fname[:-3], path)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception:  # a module that does not load fails, alone
            if not patterns or any(p in fname or fname[:-3] in p
                                   for p in patterns):
                results.append((False, fname[:-3], traceback.format_exc()))
            continue
        for attr in sorted(dir(mod)):
            fn = getattr(mod, attr)
            if not callable(fn):
                continue
            if not (attr.startswith("test_") or
                    (slow and attr.startswith("slow_"))):
                continue
            label = f"{fname[:-3]}.{attr}"
            if selected(label, patterns):
                alone = getattr(mod, "ALONE", False) or \
                    getattr(fn, "alone", False)
                tests.append((label, fn, alone))
    return tests


def run_one(bindir, label, fn):
    """one test on a fresh Ctx: (result, its output, seconds)"""
    ctx = helpers.Ctx(bindir)
    t0 = time.monotonic()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            fn(ctx)
        res = passed_or_skipped(label, out.getvalue())
    except Exception:  # a failed assertion or a crash of the test
        res = (False, label, traceback.format_exc())
    finally:
        ctx.cleanup()
    return res, out.getvalue(), time.monotonic() - t0


TESTS = []      # what a forked worker runs, by index (inherited, not sent)


def run_index(bindir, i):
    label, fn, _ = TESTS[i]
    return run_one(bindir, label, fn)


def report(label, res, out, dt, results, times):
    results.append(res)
    times.append((dt, label))
    sys.stdout.write(out)
    if dt > 20:
        print(f"note: {label} took {dt:.0f} s", flush=True)
    sys.stdout.flush()


def run_integration(bindir, slow, patterns, results, times, jobs):
    """Every selected test; with jobs > 1, those not marked alone run in
    that many forked workers first (each test on its own root, its own
    ports: helpers), then the ones marked alone (they measure time: a
    neighbour's load would change what they measure) one by one."""
    TESTS[:] = collect(slow, patterns, results)
    together = {i for i, (_, _, alone) in enumerate(TESTS)
                if jobs > 1 and not alone}
    if together:
        sys.stdout.flush()      # or each worker would print it again
        ctx = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(jobs, ctx) as pool:
            futs = {pool.submit(run_index, bindir, i): i
                    for i in sorted(together)}
            for f in concurrent.futures.as_completed(futs):
                label = TESTS[futs[f]][0]
                try:
                    res, out, dt = f.result()
                except Exception:  # a worker that died: its test failed
                    res, out, dt = ((False, label, traceback.format_exc()),
                                    "", 0.0)
                report(label, res, out, dt, results, times)
    for i, (label, fn, _) in enumerate(TESTS):
        if i not in together:
            report(label, *run_one(bindir, label, fn), results, times)


def passed_or_skipped(label, out):
    """A test that said SKIP (it could not run here: no root, no tool)
    checked nothing: it is counted apart, never as a pass"""
    why = [l for l in out.splitlines() if l.startswith("SKIP")]
    return (SKIP, label, why[0]) if why else (True, label, "")


def reachable_bin(bindir):
    """As root, the services that the tests start drop to the mail user,
    which must reach the programs; a clone in a 0700 home (root's, or a
    Debian 12 user's) is out of its reach. The programs are then copied to
    a fresh 0755 directory, removed at the end. Returns (bindir, tmp)."""
    if os.geteuid() != 0:
        return bindir, None
    d = bindir
    while os.stat(d).st_mode & 0o001:
        parent = os.path.dirname(d)
        if parent == d:
            return bindir, None
        d = parent
    tmp = tempfile.mkdtemp(prefix="facteur-bin-")
    os.chmod(tmp, 0o755)
    dst = os.path.join(tmp, "bin")
    shutil.copytree(bindir, dst, symlinks=True)
    print(f"note: {d} is closed to other users: the programs run from a "
          f"copy in {dst}", flush=True)
    return dst, tmp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--unit")
    ap.add_argument("--slow", action="store_true")
    ap.add_argument("-k", dest="patterns", action="append",
                    help="run only tests whose name contains this; "
                    "may be given more than once")
    ap.add_argument("-j", dest="jobs", type=int, default=1, metavar="N",
                    help="run the tests not marked alone in N processes")
    ap.add_argument("--durations", type=int, metavar="N",
                    help="list the N slowest tests and the time of all")
    a = ap.parse_args()
    t0 = time.monotonic()
    bindir, copied = reachable_bin(os.path.abspath(a.bin))
    # the test drivers built beside the unit tests (tests/unit/spfcheck.c),
    # which integration tests run themselves
    if a.unit:
        os.environ["FACTEUR_UNIT_DIR"] = os.path.abspath(a.unit)
    results, times = [], []
    try:
        run_unit(a.unit, a.patterns, results, times)
        run_integration(bindir, a.slow, a.patterns, results, times,
                        a.jobs)
    finally:
        if copied:
            shutil.rmtree(copied, ignore_errors=True)
    for ok, label, detail in results:
        if ok is SKIP:
            print(f"SKIP {label}: {detail}", flush=True)
            continue
        print(("ok   " if ok else "FAIL ") + label, flush=True)
        if not ok and detail:
            print("     " + detail.rstrip().replace("\n", "\n     "))
    passed = sum(1 for r in results if r[0] is True)
    skipped = sum(1 for r in results if r[0] is SKIP)
    failed = len(results) - passed - skipped
    if a.durations is not None:
        durations(times, a.durations, time.monotonic() - t0)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or not passed else 0


def durations(times, n, wall):
    """the n slowest, then the sum of every test's time beside the wall
    clock: on a loaded machine the two differ by the runner's own time"""
    print(f"slowest {min(n, len(times))} of {len(times)} tests:")
    for dt, label in sorted(times, reverse=True)[:n]:
        print(f"  {dt:7.2f} s  {label}")
    print(f"sum of test times {sum(t for t, _ in times):.1f} s, "
          f"wall {wall:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
