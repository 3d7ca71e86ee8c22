"""tools/bench kernel scale: ratio math, target marks and plot, from synthetic serial logs."""
import argparse
import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench")
_loader = importlib.machinery.SourceFileLoader("bench_tool", BENCH)
_spec = importlib.util.spec_from_loader("bench_tool", _loader)
bench = importlib.util.module_from_spec(_spec)
_loader.exec_module(bench)

COUNTS = [1, 2, 4, 8, 16, 32, 64, 128, 255]
OPS = ["control", "page", "page16", "kmalloc64", "kmalloc2k", "task", "timer", "wake", "shootdown"]


def line(op, cpus, ops_per_s, locks=1.0, ipis=0.5):
    return "bench: " + json.dumps({"bench": "scale", "op": op, "cpus": cpus, "ops_per_s": ops_per_s,
                                   "global_lock_acq_per_kop": locks, "ipis_per_kop": ipis})


def synthetic(task_ipis_255=10, counts=COUNTS):
    """Serial-log lines, one per op and count. control scales perfectly (1000 ops/s per CPU);
    every other op runs at 500 ops/s per CPU times an efficiency chosen per case below, so the
    expected ratios are exact."""
    eff = {  # (op, cpus) -> efficiency against perfect scaling from 2 CPUs; default 1
        ("page", 64): 0.75, ("page", 255): 0.55,           # relative 0.75 / 0.55: PASS
        ("kmalloc2k", 64): 0.69, ("kmalloc2k", 255): 0.5,  # 0.69 < 0.7 FAIL; 0.5 is enough
        ("shootdown", 4): 0.125, ("shootdown", 8): 0.125,  # ratios 0.25 and 0.5: below 1
    }
    lines = []
    for n in counts:
        lines.append(f"[cpu0] smp: {n} of {n} CPUs online in 1000 us")
        for op in OPS:
            rate = 1000 * n if op == "control" else 500 * n * eff.get((op, n), 1.0)
            locks = {"timer": 31.0, "page16": 31.5 if n == 128 else 3.0}.get(op, 1.0)
            ipis = task_ipis_255 if (op, n) == ("task", 255) else 0.5
            lines.append(line(op, n, rate, locks, ipis))
        lines.append("bench: done (1 benchmarks)")
    return lines


def tables(markdown):
    """{section heading: {first cell: [cells]}} for every table in the document."""
    out, heading = {}, None
    for text in markdown.splitlines():
        if text.startswith("## "):
            heading = text[3:].strip()
        elif text.startswith("|") and not text.startswith("| ---"):
            cells = [c.strip() for c in text.strip().strip("|").split("|")]
            out.setdefault(heading, {})[cells[0]] = cells[1:]
    return out


class ScaleFromLog(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def write(self, name, lines):
        with open(self.path(name), "w") as f:
            f.write("\r\n".join(lines) + "\r\n")  # serial logs end lines with CR LF
        return self.path(name)

    def run_bench(self, logs, *extra):
        proc = subprocess.run([sys.executable, BENCH, "kernel", "scale", "--from-log", *logs,
                               "--markdown", self.path("scale.md"), "--svg", self.path("scale.svg"),
                               *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(self.path("scale.md")) as f:
            return f.read()

    def test_ratio_math_and_marks(self):
        lines = synthetic()
        # Two logs, as from two sessions: the small counts and the large ones.
        split = lines.index("[cpu0] smp: 64 of 64 CPUs online in 1000 us")
        md = self.run_bench([self.write("a.log", lines[:split]), self.write("b.log", lines[split:])])
        t = tables(md)
        thr = t["Throughput (operations per second, all CPUs together)"]
        self.assertEqual(thr["op \\ CPUs"], [str(n) for n in COUNTS])
        self.assertEqual(thr["control"][COUNTS.index(255)], "255,000")

        ratio = t["Throughput ratio against 2 CPUs"]
        self.assertEqual(ratio["op \\ CPUs"][-2:], ["relative @64", "relative @255"])
        col = {h: i for i, h in enumerate(ratio["op \\ CPUs"])}
        self.assertEqual(ratio["control"][col["255"]], "127.50")    # 255,000 / 2,000
        self.assertEqual(ratio["page"][col["64"]], "24.00")         # 500*64*0.75 / 1,000
        self.assertEqual(ratio["page"][col["relative @64"]], "0.75")
        self.assertEqual(ratio["page"][col["relative @255"]], "0.55")
        self.assertEqual(ratio["shootdown"][col["1"]], "0.50")
        self.assertEqual(ratio["shootdown"][col["4"]], "0.25")
        self.assertEqual(ratio["control"][col["relative @64"]], "1.00")

        marks = t["Targets"]
        self.assertEqual(marks["page"][:2], ["0.750 PASS", "0.550 PASS"])
        self.assertEqual(marks["kmalloc2k"][:2], ["0.690 **FAIL**", "0.500 PASS"])
        self.assertEqual(marks["timer"][2], "31 (at 255) PASS")       # the limit itself passes
        self.assertEqual(marks["page16"][2], "31.50 (at 128) **FAIL**")
        self.assertEqual(marks["task"][3], "10 PASS")
        self.assertNotIn("wake", marks)                               # no targets for wake
        self.assertIn("Checks: 17 PASS, 2 FAIL, 0 not measured.", md)

        locks = t["Machine-wide lock acquisitions per 1000 operations"]
        self.assertEqual(locks["page16"][COUNTS.index(128)], "31.50")
        ipis = t["IPIs per 1000 operations"]
        self.assertEqual(ipis["task"][COUNTS.index(255)], "10")

    def test_task_ipis_over_the_limit_fail(self):
        md = self.run_bench([self.write("a.log", synthetic(task_ipis_255=10.5))])
        self.assertEqual(tables(md)["Targets"]["task"][3], "10.50 **FAIL**")
        self.assertIn("Checks: 16 PASS, 3 FAIL, 0 not measured.", md)

    def test_svg_plots_ratios_below_one(self):
        self.run_bench([self.write("a.log", synthetic())])
        with open(self.path("scale.svg")) as f:
            svg = f.read()
        self.assertTrue(svg.startswith("<svg"))
        series = {}
        for m in re.finditer(r'<polyline [^>]*points="([^"]*)"/>\s*<text [^>]*>([^<]*)</text>', svg):
            series[m.group(2)] = [tuple(map(float, p.split(","))) for p in m.group(1).split()]
        self.assertEqual(set(series), set(OPS))
        # shootdown: ratio 0.5 at 1 CPU, 0.25 at 4, 0.5 at 8. Below 1 they must neither be
        # clamped to 1 nor leave the plot area (y from 60 to 360).
        (_, y1), (_, y2), (_, y4), (_, y8) = series["shootdown"][:4]
        self.assertAlmostEqual(y1, y8)
        self.assertGreater(y4, y8)   # 0.25 plots lower (larger y) than 0.5
        self.assertGreater(y8, y2)   # 0.5 lower than 1
        for pts in series.values():
            for _, y in pts:
                self.assertTrue(60 - 1e-6 <= y <= 360 + 1e-6, y)

    def test_without_two_cpus_the_base_is_the_next_count_and_said_so(self):
        md = self.run_bench([self.write("a.log", synthetic(counts=[1, 4, 8, 64]))])
        self.assertIn("There is no 2-CPU measurement", md)
        ratio = tables(md)["Throughput ratio against 4 CPUs"]
        col = {h: i for i, h in enumerate(ratio["op \\ CPUs"])}
        self.assertEqual(ratio["control"][col["64"]], "16.00")
        self.assertEqual(ratio["page"][col["relative @64"]], "0.75")
        self.assertEqual(tables(md)["Targets"]["page"][1], "not measured")

    def test_own_output_reads_back_and_cpus_filters(self):
        # What tools/bench prints while booting: bare JSON, one record a line.
        bare = [json.dumps(json.loads(x[len("bench: "):])) for x in synthetic()
                if x.startswith("bench: {")]
        md = self.run_bench([self.write("out.txt", bare)], "--cpus", "2,64")
        self.assertEqual(tables(md)["Throughput (operations per second, all CPUs together)"]
                         ["op \\ CPUs"], ["2", "64"])


class ScaleUnits(unittest.TestCase):
    def test_relative_ratio(self):
        rows = [{"bench": "scale", "op": op, "cpus": n, "ops_per_s": v}
                for op, n, v in [("control", 2, 10), ("control", 64, 300),
                                 ("page", 2, 4), ("page", 64, 60)]]
        s = bench.Scale(rows)
        self.assertEqual(s.base, 2)
        self.assertAlmostEqual(s.ratio("page", 64), 15.0)
        self.assertAlmostEqual(s.relative("page", 64), 0.5)
        self.assertIsNone(s.relative("page", 255))

    def test_boot_command(self):
        """Memory, timeout, topology and QEMU words as given to tools/run (nothing is booted)."""
        args = argparse.Namespace(
            bench="scale", build_dir=None, preset="release", topology="4x8x2",
            qemu_args="-numa node,nodeid=0 -numa node,nodeid=1")
        done = subprocess.CompletedProcess([], 0, line("control", 1, 1) + "\n")
        for n, mem, timeout in ((64, "512M", "300"), (128, "1G", "600"), (255, "1G", "600")):
            with mock.patch.object(bench.subprocess, "run", return_value=done) as run, \
                    mock.patch("sys.stdout"):
                bench.boot_bench(n, args)
            cmd = run.call_args[0][0]
            self.assertEqual(cmd[cmd.index("--mem") + 1], mem)
            self.assertEqual(cmd[cmd.index("--timeout") + 1], timeout)
            self.assertEqual(cmd[cmd.index("--topology") + 1], "4x8x2")
            self.assertEqual([c for c in cmd if c.startswith("--qemu-arg")],
                             ["--qemu-arg=-numa", "--qemu-arg=node,nodeid=0",
                              "--qemu-arg=-numa", "--qemu-arg=node,nodeid=1"])
            self.assertEqual(cmd[cmd.index("--") + 1:], ["bench=scale", "loglevel=warn"])


if __name__ == "__main__":
    unittest.main()
