"""test_soak - the soak of issue 15 (soak.py), short: three minutes of
mixed SMTP, submission, sendmail, remote and POP3 load on `facteur run`
while processes are killed and writes fail, then a calm tail of the same
load; every accepted message is found whole (delivered, bounced or
queued), duplicates at most one per kill or fault, RSS flat within each
process's life and no descriptor left behind. `make soak` runs the hour.
test_soak_rss_rule checks the RSS rule itself on made-up samples."""
import json
import os
import sys

import helpers  # noqa: F401 (the runner gives t)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from soak import fds_grown, flat, KIB  # noqa: E402
from soak import soak  # noqa: E402


def slow_soak_3min(t):
    fig, broken = soak(t, 180, kill_every=6.0, fault_every=30.0, seed=3)
    print(json.dumps(fig, default=str))
    assert not broken, (broken, fig)
    assert fig["kill count"] >= 10, fig
    assert fig["accepted"] >= 1000, fig


def life(pid, t_from, t_to, rss_kib, grow_kib=0):
    """samples every 5 s of one process: (time, RSS, fds, pid, anon,
    file), its RSS going from RSS_KIB up by GROW_KIB in a straight line"""
    out = []
    for k in range(t_from, t_to, 5):
        r = rss_kib + grow_kib * (k - t_from) // max(1, t_to - t_from - 5)
        out.append((float(k), r * KIB, 10, pid, r * KIB, 0))
    return out


def test_soak_rss_rule(t):
    # the run is 0-100 s, its calm tail 110-170 s
    def judge(samples):
        return flat(samples, 0.0, 100.0, 110.0, 170.0)[1]

    # the figures: mta-send killed and started again met a bigger
    # backlog (3,604 KiB early, 5,204 KiB late), then stayed flat: a high
    # water of a new process, not growth of one
    restarted = life(11, 0, 50, 3604) + life(12, 50, 175, 5204)
    got = judge({"mta-send": restarted})
    assert got == [], got
    # the same process growing over the calm tail: a leak
    leaking = life(11, 0, 50, 3604) + life(12, 50, 110, 5204) + \
        life(12, 110, 175, 5204, grow_kib=1500)
    got = judge({"mta-send": leaking})
    assert got == ["mta-send (calm tail)"], got
    # within the slack (10 % + 256 KiB): flat
    noise = life(11, 0, 50, 3604) + life(12, 50, 110, 5204) + \
        life(12, 110, 175, 5204, grow_kib=700)
    got = judge({"mta-send": noise})
    assert got == [], got
    # a process never killed, growing over the run: judged as before
    # (and in the calm tail, where it goes on growing)
    got = judge({"facteur": life(7, 0, 175, 3000, grow_kib=3000)})
    assert got == ["facteur", "facteur (calm tail)"], got
    # a process that is started again in the calm tail (nothing killed
    # it): its growth cannot be judged, and that is itself a failure
    died = life(11, 0, 100, 3604) + life(12, 100, 140, 3604) + \
        life(13, 140, 175, 3604)
    got = judge({"mta-send": died})
    assert got == ["mta-send (started again in the calm tail)"], got
    # the backlog samples are no role
    got = judge({"queue/new": [(float(k), 5000) for k in range(0, 175, 5)],
                 "facteur": life(7, 0, 175, 3000)})
    assert got == [], got


def test_soak_fds_rule(t):
    before = {"facteur": (7, 13), "mta-send": (11, 9), "pop3d": (20, 11)}
    # the same counts; mta-send, restarted or not, with the two it opens
    # on its first delivery: nothing grew
    same = {"facteur": (7, 13), "mta-send": (12, 11), "pop3d": (21, 11)}
    assert fds_grown(before, same) == []
    same["mta-send"] = (11, 11)
    assert fds_grown(before, same) == []
    # one more in any other process, restarted or not: growth
    got = fds_grown(before, {"facteur": (7, 14), "mta-send": (11, 9),
                             "pop3d": (21, 12)})
    assert got == ["facteur", "pop3d"], got
    # mta-send past the two it may open late
    got = fds_grown(before, {"mta-send": (11, 12)})
    assert got == ["mta-send"], got
