"""matrix - what test_crash.py and test_faults.py share: one walk of one
scenario on a root of its own, its counts printed, its failures an
assertion that lists them.

Not a test module itself (run.py collects test_*.py only).
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hostile  # noqa: E402
import scenarios  # noqa: E402

# the fast subset (make check): every 7th crash point of each call, every
# other write fault with the three errnos in turn (a fault leaves more
# behind than a kill, so more of them stay in the fast subset; every
# other one keeps make check under its 8 minutes); the slow matrix (make
# check-slow): every crash point, every write fault with each errno
FAST_STRIDE = 7
FAST_FAULT_STRIDE = 2


def run_walk(t, cls, mode, slow):
    """walk one scenario; SKIP where strace cannot run"""
    why = hostile.skip_reason()
    if why:
        print(f"SKIP {why}")
        return None
    sc = cls()
    if getattr(sc, "peer", False) and not (
            os.path.exists(scenarios.DOVECOT_POP3) and
            os.path.exists("/usr/sbin/postdrop")):
        print("SKIP the peer is not installed (tools/deps.sh test)")
        return None
    try:
        tally = hostile.walk(t, sc, mode,
                             stride=1 if slow else FAST_FAULT_STRIDE
                             if mode == "fault" else FAST_STRIDE,
                             every_errno=slow)
    finally:
        if hasattr(sc, "close"):
            sc.close()
        if t.root:
            shutil.rmtree(t.root, ignore_errors=True)
    assert tally.runs > 0, f"{cls.name}: no injection point"
    assert tally.hits > 0, f"{cls.name}: no injection happened"
    # a peer's failures are its figures (docs/security.md), not ours
    assert getattr(sc, "peer", False) or not tally.failures(), (
        tally.line() + "\n" + "\n".join(tally.examples))
    return tally


def make_tests(namespace, mode):
    """test_MODE_NAME (fast) and slow_MODE_NAME (the whole walk) for every
    scenario, defined in the calling module"""
    for cls in scenarios.MAIL + scenarios.VADMIN + scenarios.PEERS:
        key = cls.name.replace("-", "_")

        def fast(t, cls=cls):
            run_walk(t, cls, mode, slow=False)

        def slow(t, cls=cls):
            run_walk(t, cls, mode, slow=True)
        fast.__doc__ = f"{mode} walk (fast subset): {cls.__doc__}"
        slow.__doc__ = f"{mode} walk (every point): {cls.__doc__}"
        # the peers' walks (their column of the table) only in the slow
        # matrix: make check is about Facteur
        if not getattr(cls, "peer", False):
            namespace[f"test_{mode}_{key}"] = fast
        namespace[f"slow_{mode}_{key}"] = slow
