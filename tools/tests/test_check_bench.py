"""tools/check_bench: the bench smoke test must be able to fail."""
import importlib.machinery
import importlib.util
import os
import unittest

_path = os.path.join(os.path.dirname(__file__), "..", "check_bench")
_loader = importlib.machinery.SourceFileLoader("check_bench", _path)
_spec = importlib.util.spec_from_loader("check_bench", _loader)
check_bench = importlib.util.module_from_spec(_spec)
_loader.exec_module(check_bench)

GOOD = [
    'bench: {"name":"ipi.round_trip","cpus":2,"median_cycles":35091,"p99_cycles":754005,"runs":200}',
    'bench: {"name":"locks.ticket","cpus":2,"acquisitions_per_s":69400,"contended":0,"max_wait_cycles":0}',
    "bench: done (2 benchmarks)",
]


class CheckBench(unittest.TestCase):
    def test_plausible_output_passes(self):
        problems, names = check_bench.check(GOOD, 2, ["ipi", "locks"])
        self.assertEqual(problems, [])
        self.assertEqual(names, {"ipi.round_trip", "locks.ticket"})

    def test_zero_timing_fails(self):
        lines = [GOOD[0].replace('"median_cycles":35091', '"median_cycles":0')] + GOOD[1:]
        problems, _ = check_bench.check(lines, 2, [])
        self.assertTrue(any("median_cycles is 0" in p for p in problems))

    def test_p99_below_median_fails(self):
        lines = [GOOD[0].replace('"p99_cycles":754005', '"p99_cycles":10')] + GOOD[1:]
        problems, _ = check_bench.check(lines, 2, [])
        self.assertTrue(any("below median" in p for p in problems))

    def test_missing_family_and_unfinished_run_fail(self):
        problems, _ = check_bench.check(GOOD[:1], 2, ["ipi", "tlb"])
        self.assertTrue(any("tlb.*" in p for p in problems))
        self.assertTrue(any("did not finish" in p for p in problems))

    def test_wrong_cpu_count_and_bad_json_fail(self):
        problems, _ = check_bench.check(['bench: {"name":"x.y","cpus":4}', "bench: {oops",
                                         "bench: done (1 benchmarks)"], 2, [])
        self.assertTrue(any("cpus 4" in p for p in problems))
        self.assertTrue(any("not JSON" in p for p in problems))


if __name__ == "__main__":
    unittest.main()
