"""Unit tests for tools/ktap.py.

Run from the repo root: python3 -m unittest discover -s tools/tests
(or: python3 tools/tests/test_ktap.py)
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import ktap  # noqa: E402


GOOD = """\
[  0.000100] [cpu0] cohort: serial up
KTAP version 1
1..3
[  0.010000] [cpu0] running alloc tests
ok 1 pmm_alloc
# checking the free list
ok 2 vmm_map
ok 3 spinlock_smp
# cohort-tests: 3 passed, 0 failed
"""


class GoodStream(unittest.TestCase):
    def test_all_pass(self):
        rep = ktap.parse(GOOD)
        self.assertEqual(rep.errors, [])
        self.assertEqual(rep.warnings, [])
        self.assertTrue(rep.ok)
        self.assertEqual(rep.version, 1)
        self.assertEqual(rep.plan, 3)
        self.assertEqual([r.name for r in rep.results], ["pmm_alloc", "vmm_map", "spinlock_smp"])
        self.assertEqual((rep.passed, rep.failed, rep.skipped), (3, 0, 0))
        self.assertEqual((rep.summary.passed, rep.summary.failed), (3, 0))

    def test_diagnostic_attaches_to_following_result(self):
        rep = ktap.parse(GOOD)
        self.assertEqual(rep.results[1].diagnostics, ["# checking the free list"])
        self.assertEqual(rep.results[0].diagnostics, [])

    def test_log_lines_kept_as_output_not_ktap(self):
        rep = ktap.parse(GOOD)
        self.assertEqual(rep.results[0].output, ["[  0.010000] [cpu0] running alloc tests"])

    def test_log_prefix_in_front_of_ktap_is_tolerated(self):
        text = "\n".join("[  1.000000] [cpu1] " + l for l in GOOD.splitlines()[1:])
        rep = ktap.parse(text)
        self.assertTrue(rep.ok, rep.errors)
        self.assertEqual(rep.plan, 3)

    def test_crlf_and_incremental_feed(self):
        p = ktap.Parser()
        for line in GOOD.replace("\n", "\r\n").splitlines(keepends=True):
            self.assertFalse(p.summary_seen)
            p.feed(line)
        self.assertTrue(p.summary_seen)
        self.assertTrue(p.finish().ok)

    def test_firmware_ansi_noise_is_ignored(self):
        noise = ("\x1b[0m\x1b[30m\x1b[47mWelcome to GRUB!\r\n"
                 "\x1b[H\x1b[J\x1b[1;1H  Booting `Cohort'\r\n\r\x1b[2J")
        rep = ktap.parse(noise + GOOD)
        self.assertTrue(rep.ok, rep.errors)
        self.assertEqual(rep.results[0].output, ["[  0.010000] [cpu0] running alloc tests"])

    def test_lines_after_summary_ignored(self):
        rep = ktap.parse(GOOD + "ok 4 stray\nPANIC-free shutdown text\n")
        # A PANIC after the summary still counts: the kernel did panic.
        self.assertEqual(len(rep.results), 3)
        self.assertFalse(rep.ok)


class FailedTest(unittest.TestCase):
    TEXT = """\
KTAP version 1
1..3
ok 1 a
# expected 4, got 5
# at kernel/tests/b.cpp:42
not ok 2 b # assertion failed
ok 3 c
# cohort-tests: 2 passed, 1 failed
"""

    def test_failure_reported_with_diagnostics(self):
        rep = ktap.parse(self.TEXT)
        self.assertEqual(rep.errors, [])  # the stream itself is consistent
        self.assertFalse(rep.ok)
        self.assertEqual(rep.failed, 1)
        bad = rep.failed_results[0]
        self.assertEqual((bad.number, bad.name, bad.reason), (2, "b", "assertion failed"))
        self.assertEqual(bad.diagnostics, ["# expected 4, got 5", "# at kernel/tests/b.cpp:42"])
        text = ktap.format_failures(rep)
        self.assertIn("not ok 2 b # assertion failed", text)
        self.assertIn("# expected 4, got 5", text)

    def test_trailing_diagnostics_attach_to_last_result(self):
        rep = ktap.parse("KTAP version 1\n1..1\nnot ok 1 only\n# why it failed\n")
        self.assertEqual(rep.results[0].diagnostics, ["# why it failed"])

    def test_summary_disagreeing_with_results(self):
        rep = ktap.parse(self.TEXT.replace("2 passed, 1 failed", "3 passed, 0 failed"))
        self.assertFalse(rep.ok)
        self.assertTrue(any("summary says 0 failed" in e for e in rep.errors), rep.errors)

    def test_todo_is_not_a_failure(self):
        rep = ktap.parse("KTAP version 1\n1..1\nnot ok 1 flaky # TODO known bug\n"
                         "# cohort-tests: 0 passed, 0 failed\n")
        self.assertEqual(rep.failed, 0)
        self.assertEqual(rep.results[0].directive, "TODO")


class CrashMidStream(unittest.TestCase):
    TEXT = """\
KTAP version 1
1..4
ok 1 a
ok 2 b
[  0.500000] [cpu2] PANIC: page fault at 0xdeadbeef
[  0.500001] [cpu2] rip=ffffffff80001234
"""

    def test_panic_and_missing_results(self):
        rep = ktap.parse(self.TEXT)
        self.assertFalse(rep.ok)
        self.assertEqual(rep.panic_lines, ["[  0.500000] [cpu2] PANIC: page fault at 0xdeadbeef"])
        joined = "\n".join(rep.errors)
        self.assertIn("only 2 of 4 planned results", joined)
        self.assertIn("missing test number(s): 3, 4", joined)
        self.assertIn("PANIC", joined)
        self.assertIn("summary", joined)

    def test_live_panic_flag(self):
        p = ktap.Parser()
        for line in self.TEXT.splitlines()[:4]:
            p.feed(line)
        self.assertFalse(p.panicked)
        p.feed(self.TEXT.splitlines()[4])
        self.assertTrue(p.panicked)

    def test_lowercase_panic_is_not_a_panic(self):
        rep = ktap.parse(GOOD.replace("pmm_alloc", "panic_handler_installed"))
        self.assertEqual(rep.panic_lines, [])
        self.assertTrue(rep.ok)

    def test_empty_stream(self):
        rep = ktap.parse("")
        self.assertFalse(rep.ok)
        self.assertTrue(any("missing plan" in e for e in rep.errors))

    def test_bail_out(self):
        rep = ktap.parse("KTAP version 1\n1..2\nok 1 a\nBail out! no memory\n")
        self.assertTrue(any("Bail out! no memory" in e for e in rep.errors))


class CountMismatch(unittest.TestCase):
    def test_missing_plan(self):
        rep = ktap.parse("KTAP version 1\nok 1 a\n# cohort-tests: 1 passed, 0 failed\n")
        self.assertFalse(rep.ok)
        self.assertIn("missing plan line '1..N'", rep.errors)

    def test_more_results_than_planned(self):
        rep = ktap.parse("KTAP version 1\n1..1\nok 1 a\nok 2 b\n"
                         "# cohort-tests: 2 passed, 0 failed\n")
        self.assertFalse(rep.ok)
        self.assertTrue(any("2 results but the plan says 1" in e for e in rep.errors))
        self.assertTrue(any("beyond the plan" in e for e in rep.errors))

    def test_fewer_results_with_summary(self):
        rep = ktap.parse("KTAP version 1\n1..3\nok 1 a\nok 2 b\n"
                         "# cohort-tests: 2 passed, 0 failed\n")
        self.assertFalse(rep.ok)
        self.assertTrue(any("only 2 of 3" in e for e in rep.errors))

    def test_duplicate_number(self):
        rep = ktap.parse("KTAP version 1\n1..2\nok 1 a\nok 1 b\n"
                         "# cohort-tests: 2 passed, 0 failed\n")
        self.assertFalse(rep.ok)
        self.assertTrue(any("duplicate test number 1" in e for e in rep.errors))

    def test_out_of_sequence(self):
        rep = ktap.parse("KTAP version 1\n1..2\nok 2 b\nok 1 a\n"
                         "# cohort-tests: 2 passed, 0 failed\n")
        self.assertTrue(any("out of sequence" in e for e in rep.errors))

    def test_summary_pass_count_wrong(self):
        rep = ktap.parse("KTAP version 1\n1..2\nok 1 a\nok 2 b\n"
                         "# cohort-tests: 5 passed, 0 failed\n")
        self.assertFalse(rep.ok)
        self.assertTrue(any("summary says 5 passed" in e for e in rep.errors))



class Skip(unittest.TestCase):
    TEXT = """\
KTAP version 1
1..3
ok 1 a
ok 2 hpet # SKIP no HPET on this machine
ok 3 c
# cohort-tests: {p} passed, 0 failed{s}
"""

    def test_skip_directive(self):
        rep = ktap.parse(self.TEXT.format(p=3, s=""))
        self.assertTrue(rep.ok, rep.errors)
        r = rep.results[1]
        self.assertTrue(r.skipped and r.ok)
        self.assertEqual((r.directive, r.reason, r.name), ("SKIP", "no HPET on this machine", "hpet"))
        self.assertEqual((rep.passed, rep.skipped), (2, 1))

    def test_summary_may_count_skips_as_passed_or_not(self):
        self.assertTrue(ktap.parse(self.TEXT.format(p=2, s="")).ok)
        self.assertTrue(ktap.parse(self.TEXT.format(p=2, s=", 1 skipped")).ok)
        self.assertFalse(ktap.parse(self.TEXT.format(p=3, s=", 1 skipped")).ok)

    def test_lowercase_skip(self):
        rep = ktap.parse("KTAP version 1\n1..1\nok 1 a # skip nope\n"
                         "# cohort-tests: 1 passed, 0 failed\n")
        self.assertEqual(rep.skipped, 1)


class Nested(unittest.TestCase):
    TEXT = """\
KTAP version 1
1..2
    KTAP version 1
    # Subtest: mm
    1..2
    ok 1 pmm
    # inner diagnostic
    not ok 2 vmm # bad mapping
not ok 1 mm
    KTAP version 1
    # Subtest: smp
    1..1
    ok 1 ipi
ok 2 smp
# cohort-tests: 1 passed, 1 failed
"""

    def test_top_level_counts(self):
        rep = ktap.parse(self.TEXT)
        self.assertEqual(rep.errors, [])
        self.assertEqual(len(rep.results), 2)
        self.assertEqual((rep.passed, rep.failed), (1, 1))
        self.assertFalse(rep.ok)

    def test_subtests_attached_to_parent(self):
        rep = ktap.parse(self.TEXT)
        mm = rep.results[0]
        self.assertEqual([s.name for s in mm.subtests], ["pmm", "vmm"])
        self.assertEqual(mm.subtests[1].diagnostics, ["# inner diagnostic"])
        self.assertEqual(mm.subtests[1].reason, "bad mapping")
        self.assertEqual([s.name for s in rep.results[1].subtests], ["ipi"])
        self.assertIn("not ok 2 vmm # bad mapping", ktap.format_failures(rep))

    def test_nested_numbers_do_not_clash_with_top_level(self):
        rep = ktap.parse(self.TEXT)
        self.assertFalse(any("duplicate" in e for e in rep.errors + rep.warnings))

    def test_nested_plan_mismatch_is_a_warning(self):
        text = self.TEXT.replace("    1..1\n", "    1..3\n")
        rep = ktap.parse(text)
        self.assertEqual(rep.errors, [])
        self.assertTrue(any("only 1 of 3" in w for w in rep.warnings), rep.warnings)

    def test_all_passing_nested(self):
        text = self.TEXT.replace("not ok 2 vmm # bad mapping", "ok 2 vmm") \
                        .replace("not ok 1 mm", "ok 1 mm").replace("1 passed, 1 failed", "2 passed, 0 failed")
        rep = ktap.parse(text)
        self.assertTrue(rep.ok, rep.errors)


class KtapDetails(unittest.TestCase):
    """What Linux's kunit_parser warned about in Cohort's output: flagged so it cannot return."""

    # A test that fails and one whose fault is caught, as the kernel prints them.
    KERNEL = """\
KTAP version 1
1..2
# kernel/tests/cpu_tests.cc:40: check failed: cr4 & kSmep
not ok 1 cpu.security_features_enabled # 1 check(s) failed

*** cpu0: exception #PF page fault (vector 14, error code 0) at rip 0xffffffff8015adce
    read access of 0xffffc0ffffff0000 from kernel mode: page not present
  rip 0xffffffff8015adce  cs 0x8  rflags 0x246
backtrace:
  #0  0xffffffff8015adce cohort::(anonymous namespace)::read_unmapped(void*)+0xe
  #1  0xffffffff8012616b cohort::run_catching_faults(void (*)(void*), void*, cohort::FaultInfo*, bool)+0x1db
    (recovered: the fault ends the current test)
ok 2 cpu.crash_report_names_the_function # time=10.504ms
# cohort-tests: 1 passed, 1 failed, 0 skipped
"""

    def test_column_zero_diagnostics_and_fault_reports_are_clean(self):
        rep = ktap.parse(self.KERNEL)
        self.assertEqual((rep.errors, rep.warnings), ([], []))
        self.assertEqual(rep.results[0].diagnostics,
                         ["# kernel/tests/cpu_tests.cc:40: check failed: cr4 & kSmep"])

    def test_backtrace_lines_are_not_diagnostics(self):
        rep = ktap.parse(self.KERNEL)
        self.assertEqual(rep.results[1].diagnostics, [])
        self.assertTrue(any("#0  0xffffffff8015adce" in o for o in rep.results[1].output))

    def test_indented_top_level_diagnostic_is_an_error(self):
        rep = ktap.parse(self.KERNEL.replace("# kernel/tests/", "    # kernel/tests/"))
        self.assertFalse(rep.ok)
        self.assertEqual(len(rep.errors), 1, rep.errors)
        self.assertIn("line 3: indented diagnostic at the top level", rep.errors[0])
        # Still attached to its result, so the failure report shows it.
        self.assertEqual(rep.results[0].diagnostics,
                         ["# kernel/tests/cpu_tests.cc:40: check failed: cr4 & kSmep"])

    def test_indented_diagnostic_of_a_passing_run_fails_it(self):
        rep = ktap.parse(GOOD.replace("# checking", "  # checking"))
        self.assertFalse(rep.ok)
        self.assertTrue(any("indented diagnostic" in e for e in rep.errors), rep.errors)

    def test_indented_subtest_header_and_subtest_diagnostics_are_fine(self):
        rep = ktap.parse(Nested.TEXT)
        self.assertEqual(rep.errors, [])
        self.assertFalse(any("indented" in w for w in rep.warnings), rep.warnings)

    def test_empty_plan_is_an_error(self):
        rep = ktap.parse("KTAP version 1\n1..0\n# cohort-tests: 0 passed, 0 failed\n")
        self.assertFalse(rep.ok)
        self.assertTrue(any("plan 1..0" in e for e in rep.errors), rep.errors)

    def test_empty_plan_with_a_failure_count_is_an_error(self):
        # What the kernel printed before: the summary counts a failure no result shows.
        rep = ktap.parse("KTAP version 1\n1..0\n# no test matches test=x\n"
                         "# cohort-tests: 0 passed, 1 failed\n")
        self.assertTrue(any("plan 1..0" in e for e in rep.errors), rep.errors)
        self.assertTrue(any("summary says 1 failed but 0" in e for e in rep.errors), rep.errors)

    def test_unmatched_selection_as_a_failed_result(self):
        rep = ktap.parse("KTAP version 1\n1..1\n# see `test=all`, or a name such as mm.*\n"
                         "not ok 1 selection # no test matches test=no.such.test\n"
                         "# cohort-tests: 0 passed, 1 failed, 0 skipped\n")
        self.assertEqual((rep.errors, rep.warnings), ([], []))
        self.assertFalse(rep.ok)
        self.assertEqual(rep.failed_results[0].reason, "no test matches test=no.such.test")

    PANIC = """\
KTAP version 1
1..4
ok 1 a
ok 2 b
*** cpu1: stopped by NMI at rip 0xffffffff801444aa (idle_main()+0x7a)

*** PANIC on cpu0: harness.panic asked for a panic
*** 1 other CPUs stopped (1 reported)
{named}  rip 0xffffffff8012807d  cs 0  rflags 0x46
backtrace:
  #0  0xffffffff8012806d cohort::panic(char const*, ...)+0x9d
*** end of panic report
"""

    def test_panic_naming_the_running_test(self):
        rep = ktap.parse(self.PANIC.format(
            named="not ok 3 c # PANIC on cpu0: harness.panic asked for a panic\n"))
        self.assertFalse(rep.ok)
        self.assertFalse(any("does not name" in e for e in rep.errors), rep.errors)
        self.assertEqual([r.name for r in rep.failed_results], ["c"])
        self.assertTrue(any("only 3 of 4" in e for e in rep.errors), rep.errors)

    def test_panic_not_naming_the_running_test_is_an_error(self):
        rep = ktap.parse(self.PANIC.format(named=""))
        self.assertTrue(any("does not name the test that was running: expected 'not ok 3"
                            in e for e in rep.errors), rep.errors)

    def test_panic_naming_the_wrong_test_is_an_error(self):
        for wrong in ("not ok 4 d # PANIC on cpu0: x\n",   # not the one that was running
                      "ok 3 c\n",                            # not a failure
                      "not ok 3 c # 1 check(s) failed\n"):   # not the panic
            rep = ktap.parse(self.PANIC.format(named=wrong))
            self.assertTrue(any("does not name" in e for e in rep.errors), (wrong, rep.errors))

    def test_panic_between_tests_says_so(self):
        rep = ktap.parse(self.PANIC.format(
            named="# PANIC on cpu0 while no test was running (2 of 4 finished)\n"))
        self.assertFalse(any("does not name" in e for e in rep.errors), rep.errors)
        self.assertFalse(rep.ok)

    def test_panic_outside_the_run_names_no_test(self):
        before = "*** PANIC on cpu0: no memory\n"
        rep = ktap.parse(before)
        self.assertFalse(any("does not name" in e for e in rep.errors), rep.errors)
        rep = ktap.parse(GOOD + before)
        self.assertFalse(any("does not name" in e for e in rep.errors), rep.errors)
        self.assertFalse(rep.ok)


if __name__ == "__main__":
    unittest.main()
