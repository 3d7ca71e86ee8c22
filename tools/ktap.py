"""KTAP version 1 parser for Cohort's serial test output.

The kernel prints KTAP raw, but it shares COM1 with the timestamped log, so the
stream is interleaved with lines like ``[  0.012345] [cpu0] message``. Those are
kept as per-test output (useful in failure reports) but never parsed as KTAP,
except that a log prefix in front of a KTAP line is tolerated, because a caller
may hand us either raw serial or pre-stripped text.

Use :func:`parse` for a whole text, or :class:`Parser` to feed lines as they
arrive (tools/run does this so it can notice the summary or a PANIC live).

Only the top level decides the verdict; nested subtests are parsed and attached
to their parent result so reports can show them, and their inconsistencies are
reported as warnings.

Besides what makes a stream incomplete, three things Cohort once printed are
errors here, because other KTAP consumers (Linux's kunit_parser) misread them:
a top-level diagnostic that is indented (indentation means a subtest), a plan
of 0 (a selection that matched nothing must fail as a result, not pass as an
empty run), and a PANIC during a test that is not followed by a ``not ok``
result naming that test.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable, List, Optional

# The kernel's log prefix: "[  0.012345] " optionally followed by "[cpu0] ".
LOG_PREFIX_RE = re.compile(r"^\[\s*\d+\.\d+\]\s?(?:\[cpu\d+\]\s?)?")
VERSION_RE = re.compile(r"^K?TAP version (\d+)\s*$")
PLAN_RE = re.compile(r"^1\.\.(\d+)\s*(?:#.*)?$")
RESULT_RE = re.compile(
    r"^(?P<ok>ok|not ok)\s+(?P<num>\d+)(?:\s+-)?(?:\s+(?P<name>[^#]*?))?\s*"
    r"(?:#\s*(?P<directive>.*))?$")
DIRECTIVE_RE = re.compile(r"^(?P<kind>SKIP|TODO|XFAIL|TIMEOUT|ERROR)\b\s*(?P<reason>.*)$",
                          re.IGNORECASE)
SUMMARY_RE = re.compile(
    r"^#\s*cohort-tests:\s*(?P<passed>\d+)\s+passed,\s*(?P<failed>\d+)\s+failed"
    r"(?:,\s*(?P<skipped>\d+)\s+skipped)?\s*$")
SUBTEST_RE = re.compile(r"^#\s*Subtest:\s*(.*)$")
# KTAP diagnostics are "# text". A backtrace's "  #0  0xffff..." is not one: it is
# an unknown line, which KTAP allows at any indentation.
DIAG_RE = re.compile(r"^#(?:\s|$)")
# What the kernel prints in place of a result when it panics between two tests.
PANIC_NO_TEST_RE = re.compile(r"^#\s*PANIC\b.*\bwhile no test was running")
BAIL_RE = re.compile(r"^Bail out!(.*)$")
# Case-sensitive on purpose: test names and messages say "panic" freely, the
# kernel's panic banner is the only thing that shouts.
PANIC_RE = re.compile(r"\bPANIC\b")
# GRUB and OVMF paint the serial console with ANSI sequences; they can end up
# glued to the front of the kernel's first lines.
ANSI_RE = re.compile(r"\x1b(?:\[[0-9;=?]*[ -/]*[@-~]|[@-Z\\-_])")


@dataclasses.dataclass
class TestResult:
    number: int
    name: str
    ok: bool
    directive: Optional[str] = None  # "SKIP", "TODO", ... upper-cased
    reason: str = ""  # text after the directive keyword, or after '#' for not-ok
    diagnostics: List[str] = dataclasses.field(default_factory=list)
    output: List[str] = dataclasses.field(default_factory=list)  # non-KTAP lines
    subtests: List["TestResult"] = dataclasses.field(default_factory=list)
    line_no: int = 0

    @property
    def skipped(self) -> bool:
        return self.directive == "SKIP"

    @property
    def failed(self) -> bool:
        # KTAP: a TODO test is expected to fail, so it does not count against us.
        return not self.ok and self.directive != "TODO"


@dataclasses.dataclass
class Summary:
    passed: int
    failed: int
    skipped: Optional[int]
    line_no: int


@dataclasses.dataclass
class Report:
    version: Optional[int] = None
    plan: Optional[int] = None
    results: List[TestResult] = dataclasses.field(default_factory=list)
    summary: Optional[Summary] = None
    panic_lines: List[str] = dataclasses.field(default_factory=list)
    bail_out: Optional[str] = None
    errors: List[str] = dataclasses.field(default_factory=list)
    warnings: List[str] = dataclasses.field(default_factory=list)
    lines: int = 0

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.ok and not r.skipped)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if r.failed)

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.results if r.skipped)

    @property
    def failed_results(self) -> List[TestResult]:
        return [r for r in self.results if r.failed]

    @property
    def ok(self) -> bool:
        """True when the stream proves every planned test ran and passed."""
        return (not self.errors and self.summary is not None
                and self.summary.failed == 0 and self.failed == 0)


class _Level:
    """One plan/result block: the top level or an indented subtest block."""

    def __init__(self, indent: int):
        self.indent = indent
        self.plan: Optional[int] = None
        self.results: List[TestResult] = []
        self.pending_diag: List[str] = []
        self.pending_output: List[str] = []
        self.subtest_name: Optional[str] = None
        self.version_seen = False


class Parser:
    def __init__(self) -> None:
        self._levels: List[_Level] = [_Level(0)]
        self._report = Report()
        self._seen_numbers: set = set()
        self._finished = False
        # Set when a subtest block closed without its parent result line yet;
        # the next result at the outer level adopts it.
        self._orphan_subtests: Optional[_Level] = None
        # Top-level results printed before a PANIC that came after the plan and
        # before the summary: the test numbered one more was running.
        self._panic_after: Optional[int] = None
        self._panic_between_tests = False

    @property
    def report(self) -> Report:
        """The report so far; complete only after :meth:`finish`."""
        return self._report

    @property
    def summary_seen(self) -> bool:
        return self._report.summary is not None

    @property
    def panicked(self) -> bool:
        return bool(self._report.panic_lines)

    def feed(self, raw: str) -> None:
        rep = self._report
        rep.lines += 1
        line_no = rep.lines
        line = raw.rstrip("\r\n")
        # Serial can carry stray CRs and NULs from firmware; they would defeat
        # the anchored regexes below.
        line = ANSI_RE.sub("", line.replace("\r", "").replace("\x00", ""))
        if PANIC_RE.search(line):
            if (not rep.panic_lines and rep.summary is None
                    and self._levels[0].plan is not None):
                self._panic_after = len(self._levels[0].results)
            rep.panic_lines.append(line)

        prefixed = LOG_PREFIX_RE.match(line)
        body = line[prefixed.end():] if prefixed else line
        stripped = body.lstrip(" \t")
        indent = len(body) - len(stripped)
        stripped = stripped.rstrip()

        if rep.summary is not None:
            # Anything after the summary is the kernel shutting down; it is
            # kept for the log tail by the caller, not interpreted.
            return

        m = SUMMARY_RE.match(stripped)
        if m and indent == 0:
            self._close_levels_deeper_than(0)
            rep.summary = Summary(int(m["passed"]), int(m["failed"]),
                                  int(m["skipped"]) if m["skipped"] else None, line_no)
            return

        m = BAIL_RE.match(stripped)
        if m:
            rep.bail_out = m.group(1).strip() or "(no reason)"
            return

        kind = None
        if VERSION_RE.match(stripped):
            kind = "version"
        elif PLAN_RE.match(stripped):
            kind = "plan"
        elif RESULT_RE.match(stripped):
            kind = "result"
        elif DIAG_RE.match(stripped):
            kind = "diag"

        if kind is None:
            # Ordinary log output: remember it for the next result's report.
            self._levels[-1].pending_output.append(line)
            return

        if kind == "diag" and indent > self._levels[-1].indent and not SUBTEST_RE.match(stripped):
            # An indented diagnostic on its own does not open a subtest block, but a
            # KTAP reader that trusts indentation files it under a subtest that
            # does not exist.
            if len(self._levels) == 1:
                rep.errors.append(f"line {line_no}: indented diagnostic at the top level "
                                  f"(indentation means a subtest; start it in column 0): "
                                  f"'{stripped}'")
            else:
                rep.warnings.append(f"line {line_no}: subtest diagnostic indented deeper "
                                    f"than its block: '{stripped}'")
            indent = self._levels[-1].indent

        if indent > self._levels[-1].indent:
            self._levels.append(_Level(indent))
        elif indent < self._levels[-1].indent:
            self._close_levels_deeper_than(indent)
        level = self._levels[-1]
        if kind in ("version", "plan"):
            # Boot chatter before the header is not any test's output.
            level.pending_output = []

        if kind == "version":
            if len(self._levels) == 1:
                if rep.version is not None:
                    rep.warnings.append(f"line {line_no}: repeated KTAP version line")
                rep.version = int(VERSION_RE.match(stripped).group(1))
            level.version_seen = True
        elif kind == "plan":
            if level.plan is not None:
                self._problem(level, f"line {line_no}: second plan line '{stripped}'")
            level.plan = int(PLAN_RE.match(stripped).group(1))
            if len(self._levels) == 1:
                rep.plan = level.plan
                if level.results:
                    rep.warnings.append(f"line {line_no}: plan comes after results")
        elif kind == "diag":
            sub = SUBTEST_RE.match(stripped)
            if sub:
                level.subtest_name = sub.group(1).strip()
            else:
                if PANIC_NO_TEST_RE.match(stripped) and len(self._levels) == 1:
                    self._panic_between_tests = True
                level.pending_diag.append(stripped)
        else:
            self._add_result(level, RESULT_RE.match(stripped), line_no)

    def _problem(self, level: _Level, msg: str) -> None:
        target = self._report.errors if level is self._levels[0] else self._report.warnings
        target.append(msg if level is self._levels[0] else f"subtest: {msg}")

    def _close_levels_deeper_than(self, indent: int) -> None:
        while len(self._levels) > 1 and self._levels[-1].indent > indent:
            closed = self._levels.pop()
            self._check_level(closed, nested=True)
            self._orphan_subtests = closed

    def _check_level(self, level: _Level, nested: bool) -> None:
        where = f"subtest block{' ' + repr(level.subtest_name) if level.subtest_name else ''}: " \
            if nested else ""
        sink = self._report.warnings if nested else self._report.errors
        if level.plan is None:
            if level.results or not nested:
                sink.append(f"{where}missing plan line '1..N'")
        else:
            n = len(level.results)
            if n < level.plan:
                have = {r.number for r in level.results}
                missing = [i for i in range(1, level.plan + 1) if i not in have]
                shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
                sink.append(f"{where}only {n} of {level.plan} planned results "
                            f"(missing test number(s): {shown})")
            elif n > level.plan:
                sink.append(f"{where}{n} results but the plan says {level.plan}")

    def _add_result(self, level: _Level, m: re.Match, line_no: int) -> None:
        number = int(m["num"])
        name = (m["name"] or "").strip()
        ok = m["ok"] == "ok"
        directive, reason = None, ""
        if m["directive"] is not None:
            d = DIRECTIVE_RE.match(m["directive"].strip())
            if d:
                directive, reason = d["kind"].upper(), d["reason"].strip()
            else:
                reason = m["directive"].strip()
        res = TestResult(number, name, ok, directive, reason,
                         diagnostics=level.pending_diag, output=level.pending_output,
                         line_no=line_no)
        level.pending_diag, level.pending_output = [], []
        if self._orphan_subtests is not None:
            res.subtests = self._orphan_subtests.results
            self._orphan_subtests = None

        top = level is self._levels[0]
        seen = self._seen_numbers if top else {r.number for r in level.results}
        expected = len(level.results) + 1
        if number in seen:
            self._problem(level, f"line {line_no}: duplicate test number {number} ({name})")
        elif number != expected:
            self._problem(level, f"line {line_no}: test number {number} out of sequence "
                                 f"(expected {expected})")
        if level.plan is not None and number > level.plan:
            self._problem(level, f"line {line_no}: test number {number} is beyond the "
                                 f"plan 1..{level.plan}")
        if top:
            self._seen_numbers.add(number)
        level.results.append(res)

    def finish(self) -> Report:
        if self._finished:
            return self._report
        self._finished = True
        rep = self._report
        self._close_levels_deeper_than(0)
        top = self._levels[0]
        # Diagnostics after the last result belong to it (e.g. a failure
        # explanation printed after "not ok").
        if top.results and top.pending_diag:
            top.results[-1].diagnostics.extend(top.pending_diag)
        if top.results and top.pending_output:
            top.results[-1].output.extend(top.pending_output)
        rep.results = top.results

        if rep.version is None:
            rep.warnings.append("no 'KTAP version 1' header")
        elif rep.version != 1:
            rep.warnings.append(f"KTAP version {rep.version}, expected 1")
        self._check_level(top, nested=False)
        if rep.plan == 0:
            rep.errors.append("plan 1..0: nothing ran, which KTAP counts as a pass; a "
                              "selection that matches no test must print 'not ok'")
        self._check_panic_names_test(top)
        if rep.bail_out is not None:
            rep.errors.append(f"Bail out! {rep.bail_out}")
        if rep.panic_lines:
            rep.errors.append(f"kernel PANIC: {rep.panic_lines[0].strip()}")
        if rep.summary is None:
            rep.errors.append("no '# cohort-tests: P passed, F failed' summary line "
                              "(kernel crashed, hung or was cut off)")
        else:
            s = rep.summary
            if s.failed != rep.failed:
                rep.errors.append(f"summary says {s.failed} failed but {rep.failed} "
                                  f"'not ok' results were printed")
            # Whether SKIPs count as passed is the kernel's choice; accept both
            # unless the summary reports skips separately.
            ok_incl_skip = rep.passed + rep.skipped
            if s.skipped is not None:
                if s.passed != rep.passed or s.skipped != rep.skipped:
                    rep.errors.append(
                        f"summary says {s.passed} passed, {s.skipped} skipped but the "
                        f"results show {rep.passed} passed, {rep.skipped} skipped")
            elif s.passed not in (rep.passed, ok_incl_skip):
                rep.errors.append(f"summary says {s.passed} passed but the results show "
                                  f"{ok_incl_skip} ok ({rep.skipped} of them skipped)")
        return rep


    def _check_panic_names_test(self, top: _Level) -> None:
        if self._panic_after is None or self._panic_between_tests:
            return
        number = self._panic_after + 1
        for r in top.results[self._panic_after:]:
            if r.number == number and not r.ok and PANIC_RE.search(r.reason):
                return
        self._report.errors.append(
            f"the PANIC does not name the test that was running: expected "
            f"'not ok {number} <name> # PANIC ...' after it (or '# PANIC ... while no "
            f"test was running')")


def parse(text_or_lines) -> Report:
    """Parse a whole stream (a string or an iterable of lines)."""
    lines: Iterable[str] = (text_or_lines.splitlines()
                            if isinstance(text_or_lines, str) else text_or_lines)
    p = Parser()
    for line in lines:
        p.feed(line)
    return p.finish()


def format_failures(rep: Report, max_output: int = 20) -> str:
    """Human-readable list of failed tests with their diagnostics."""
    out = []
    for r in rep.failed_results:
        head = f"not ok {r.number} {r.name}"
        if r.reason:
            head += f" # {r.reason}"
        out.append(head)
        for d in r.diagnostics:
            out.append(f"    {d}")
        for sub in r.subtests:
            if sub.failed:
                out.append(f"    not ok {sub.number} {sub.name}"
                           + (f" # {sub.reason}" if sub.reason else ""))
                out.extend(f"        {d}" for d in sub.diagnostics)
        if r.output:
            tail = r.output[-max_output:]
            if len(r.output) > max_output:
                out.append(f"    ... ({len(r.output) - max_output} earlier log lines)")
            out.extend(f"    | {o}" for o in tail)
    return "\n".join(out)
