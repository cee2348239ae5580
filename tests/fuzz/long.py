#!/usr/bin/env python3
"""long.py - run each libFuzzer target for a given amount of CPU time.

usage: long.py [--fuzzo DIR] [--cpu SECONDS] [--jobs N] [--nice N]
               [--log FILE] [--resume] TARGET...
       long.py --table [--cpu SECONDS] [--log FILE] TARGET...

Issue 15 asks for at least one CPU-hour of fuzzing per parser. A wall-clock
limit (libFuzzer's -max_total_time) gives less than that on a machine that
does anything else, so this driver reads each fuzzer's own CPU time from
/proc/PID/stat and interrupts it (SIGINT, libFuzzer's clean exit, status 72)
once it has used --cpu seconds (default 3600). Fuzzers run at nice 19 by
default and under SCHED_IDLE where the kernel has it, so the scheduler
gives them only CPU that nothing else wants. That does not make them free:
on a 2-core VM a `make check` beside two of them took 746 s instead of
447 s, so stop them (SIGSTOP) while measuring anything; stopping one
with SIGSTOP for a while costs it nothing but wall time (keep a pause under
libFuzzer's 1,200 s per-input timeout).

Each target's corpus grows in DIR/corpus/NAME, seeded from
tests/fuzz/corpus/NAME; `make fuzz-corpus` then merges it back. The output
of a run goes to DIR/long/NAME.log and one line per finished run is
appended to --log (default DIR/long.tsv): date, target, CPU and wall
seconds, runs, coverage (edges, features), corpus size, peak RSS and the
result: "ok", "crash ARTIFACT" or "stopped" (interrupted early by the user).
--resume counts the CPU of a target's earlier runs in the log that found
nothing (finished or interrupted) and runs it only for what is left, so a
long campaign can be spread over several days. `make fuzz-long` keeps
its log in tests/fuzz/long.tsv, committed, so the campaign also outlives
the machine; lines starting with '#' are comments.

--table runs nothing: it prints, from the log, the Markdown table that
docs/security.md shows (per target: CPU credited, executions, coverage
at its last run, findings) and the total.

Exit status: 0 when every target ran its time without a finding, 1 when a
fuzzer found a crash, leak or timeout (its artifact is named), 2 on bad
arguments.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# targets whose inputs must cross lib/conn's 16 KiB buffer and the 1000-byte
# line limit; libFuzzer's default grows lengths to 4 KiB only
MAX_LEN = {"fuzz_conn_line": 40000, "fuzz_smtpd_data": 40000,
           "fuzz_smtpd": 40000}
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """user + system CPU of a live process, from /proc; None once gone"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return None
    # the command name may hold spaces: fields count from after ')'
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def idle():
    """SCHED_IDLE where the kernel has it: the scheduler runs the fuzzer
    only on CPU that nothing else wants (the work beside it still slows:
    shared caches, and a VM's cores may be one physical core's threads)"""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass


def parse_log(path):
    """the figures libFuzzer printed: final stats and the last status line"""
    out = {"runs": "", "cov": "", "ft": "", "corp": "", "rss": "",
           "artifact": ""}
    with open(path, errors="replace") as f:
        text = f.read()
    m = re.search(r"stat::number_of_executed_units: (\d+)", text)
    if m:
        out["runs"] = m.group(1)
    m = re.search(r"stat::peak_rss_mb:\s+(\d+)", text)
    if m:
        out["rss"] = m.group(1)
    for m in re.finditer(r"cov: (\d+) ft: (\d+) corp: (\d+)", text):
        out["cov"], out["ft"], out["corp"] = m.groups()
    m = re.search(r"Test unit written to (\S+)", text)
    if m:
        out["artifact"] = m.group(1)
    return out


class Run:
    """one fuzzer process and its CPU budget"""

    def __init__(self, args, name, budget):
        self.name = name
        self.budget = budget
        corpus = os.path.join(args.fuzzo, "corpus", name)
        os.makedirs(corpus, exist_ok=True)
        os.makedirs(os.path.join(args.fuzzo, "long"), exist_ok=True)
        self.logpath = os.path.join(args.fuzzo, "long", name + ".log")
        cmd = ["nice", "-n", str(args.nice),
               os.path.join(args.fuzzo, name),
               "-max_total_time=0", "-print_final_stats=1",
               f"-artifact_prefix={args.fuzzo}/{name}-"]
        d = os.path.join(HERE, name + ".dict")
        if os.path.exists(d):
            cmd.append("-dict=" + d)
        if name in MAX_LEN:
            cmd.append(f"-max_len={MAX_LEN[name]}")
        cmd.append(corpus)
        seeds = os.path.join(HERE, "corpus", name)
        if os.path.isdir(seeds):
            cmd.append(seeds)
        self.log = open(self.logpath, "w")
        self.start = time.monotonic()
        self.cpu = 0.0
        self.interrupted = False
        self.proc = subprocess.Popen(cmd, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     preexec_fn=idle)

    def poll(self):
        """True once the process has ended; interrupts it at its budget"""
        budget = self.budget
        c = cpu_seconds(self.proc.pid)
        if c is not None:
            self.cpu = max(self.cpu, c)
        if self.proc.poll() is not None:
            return True
        if self.cpu >= budget and not self.interrupted:
            self.proc.send_signal(signal.SIGINT)
            self.interrupted = True
        return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait()

    def result(self):
        budget = self.budget
        self.log.close()
        fig = parse_log(self.logpath)
        rc = self.proc.returncode
        if rc == 72 and self.cpu >= budget:
            res = "ok"
        elif rc == 72:
            res = "stopped"
        else:
            res = f"crash {fig['artifact'] or 'rc=' + str(rc)}"
        wall = time.monotonic() - self.start
        row = [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               self.name, f"{self.cpu:.0f}", f"{wall:.0f}", fig["runs"],
               fig["cov"], fig["ft"], fig["corp"], fig["rss"], res]
        return row, res


def rows(log):
    """the log's run lines, split into their ten fields (comments and
    short lines skipped); none when there is no log yet"""
    if not os.path.exists(log):
        return
    with open(log) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if not line.startswith("#") and len(p) >= 10:
                yield p


def credited(log):
    """CPU seconds each target has had in earlier runs that ended without
    a finding ("ok" or "stopped"): a run that resumes starts from the
    corpus those grew, so together they are one campaign"""
    cpu = {}
    for p in rows(log):
        if p[9] in ("ok", "stopped"):
            cpu[p[1]] = cpu.get(p[1], 0.0) + float(p[2])
    return cpu


def summary(log, targets):
    """per target, from the log: CPU credited, executions summed over the
    credited runs, coverage at the last run, and the runs with a finding"""
    out = {t: {"cpu": 0.0, "runs": 0, "cov": "", "ft": "", "found": 0}
           for t in targets}
    for p in rows(log):
        o = out.get(p[1])
        if o is None:
            continue
        if p[9] in ("ok", "stopped"):
            o["cpu"] += float(p[2])
            o["runs"] += int(p[4] or 0)
        else:
            o["found"] += 1
        if p[5]:
            o["cov"], o["ft"] = p[5], p[6]
    return out


def table(log, targets, hour):
    """the Markdown table of docs/security.md's campaign section"""
    s = summary(log, targets)
    rows = sorted(targets, key=lambda t: (-min(s[t]["cpu"], hour), t))
    print("| target | CPU s credited (of {:,.0f}) | runs (executions) | "
          "edges / features at the last run | findings |".format(hour))
    print("| --- | --- | --- | --- | --- |")
    total, done = 0.0, 0
    for t in rows:
        o = s[t]
        total += min(o["cpu"], hour)
        done += o["cpu"] >= hour
        cpu = "{:,.0f}".format(o["cpu"]) + (" (done)" if o["cpu"] >= hour
                                             else "")
        runs = "{:,}".format(o["runs"]) if o["runs"] else ""
        cov = f"{o['cov']} / {o['ft']}" if o["cov"] else ""
        print(f"| `{t}` | {cpu} | {runs} | {cov} | {o['found']} |")
    print(f"\n{total:,.0f} CPU seconds of {hour * len(targets):,.0f}; "
          f"{done} of {len(targets)} targets done.")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fuzzo", default="build/fuzz")
    ap.add_argument("--cpu", type=float, default=3600)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--nice", type=int, default=19)
    ap.add_argument("--log")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--table", action="store_true")
    ap.add_argument("targets", nargs="+")
    args = ap.parse_args()
    log = args.log or os.path.join(args.fuzzo, "long.tsv")
    if args.table:
        return table(log, args.targets, args.cpu)
    for t in args.targets:
        if not os.access(os.path.join(args.fuzzo, t), os.X_OK):
            sys.exit(f"long.py: {args.fuzzo}/{t}: not built (make fuzz)")
    todo = [(t, args.cpu) for t in args.targets]
    if args.resume:
        had = credited(log)
        todo = [(t, args.cpu - had.get(t, 0.0)) for t in args.targets
                if args.cpu - had.get(t, 0.0) > 0]
        print(f"long.py: {len(args.targets) - len(todo)} done before, "
              f"{len(todo)} to run")
    running, failed = [], []
    # a shell's background job starts with SIGINT ignored: take it back
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while todo or running:
            while todo and len(running) < args.jobs:
                running.append(Run(args, *todo.pop(0)))
                print(f"long.py: {running[-1].name} started", flush=True)
            time.sleep(2)
            for r in [r for r in running if r.poll()]:
                running.remove(r)
                row, res = r.result()
                with open(log, "a") as f:
                    f.write("\t".join(row) + "\n")
                print("long.py: " + " ".join(row), flush=True)
                if res != "ok":
                    failed.append(r.name)
    except KeyboardInterrupt:
        for r in running:
            r.stop()
            row, _ = r.result()
            with open(log, "a") as f:
                f.write("\t".join(row) + "\n")
            print("long.py: " + " ".join(row), flush=True)
        return 1
    if failed:
        print("long.py: not ok: " + " ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
