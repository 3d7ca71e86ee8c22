#!/usr/bin/env python3
"""ctest check: run acpi-inspect on one corpus machine, require valid JSON whose `madt` object
matches the machine's expected.json (iasl's decoding) and whose `cpus` list is consistent.

Usage: check_acpi_inspect.py ACPI_INSPECT MACHINE_ID FULL_CORPUS SUBSET_CORPUS

The corpus is $COHORT_ACPI_CORPUS when set, else FULL_CORPUS when it exists, else
SUBSET_CORPUS: the order the corpus unit test uses. A machine that a subset (a corpus with a
machines.txt) does not list is a skip (exit 77): the committed subset has only the linuxhw
machines. A machine missing from a full corpus is a failure.
"""
import json
import os
import subprocess
import sys

SKIP = 77


def find_corpus(full, subset):
    env = os.environ.get('COHORT_ACPI_CORPUS')
    if env:
        return env, 'COHORT_ACPI_CORPUS'
    if os.path.isdir(full):
        return full, 'full corpus beside the source tree'
    return subset, 'subset kept in the repository'


IGNORED = {'decoded_by_iasl'}  # iasl metadata with no counterpart in acpi-inspect


def compare(expected, actual, path, out):
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            out.append('%s: not an object' % path)
            return
        for k, v in expected.items():
            if k in IGNORED:
                continue
            if k not in actual:
                out.append('%s.%s: missing' % (path, k))
            else:
                compare(v, actual[k], '%s.%s' % (path, k), out)
    elif isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            out.append('%s: list length differs' % path)
            return
        for i, (e, a) in enumerate(zip(expected, actual)):
            compare(e, a, '%s[%d]' % (path, i), out)
    elif expected != actual or type(expected) is not type(actual):
        out.append('%s: expected %r, got %r' % (path, expected, actual))


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    tool, machine_id, full, subset = sys.argv[1:]
    corpus, origin = find_corpus(full, subset)
    print('acpi corpus: %s (%s)' % (corpus, origin))
    machine = os.path.join(corpus, machine_id)
    listed = os.path.join(corpus, 'machines.txt')
    if os.path.isfile(listed):
        with open(listed) as fh:
            if machine_id not in fh.read().split():
                print('SKIP: %s is not in this subset; it is in the full corpus '
                      '(../shared/corpus/acpi beside the source tree, or COHORT_ACPI_CORPUS)'
                      % machine_id)
                return SKIP
    proc = subprocess.run([tool, machine], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit('acpi-inspect exited %d: %s' % (proc.returncode, proc.stderr))
    got = json.loads(proc.stdout)
    with open('%s/expected.json' % machine) as fh:
        want = json.load(fh)
    problems = []
    compare(want['tables']['apic.dat']['madt'], got.get('madt'), 'madt', problems)
    counts = want['tables']['apic.dat']['madt']['counts']
    if len(got['cpus']) != counts['cpus_total'] - counts['local_apic_id_ff'] - sum(
            1 for e in want['tables']['apic.dat']['madt']['local_x2apics']
            if e['x2apic_id'] == 0xFFFFFFFF):
        problems.append('cpus: %d listed' % len(got['cpus']))
    if got['errors']:
        problems.append('errors: %r' % got['errors'])
    for p in problems:
        print(p, file=sys.stderr)
    print('acpi-inspect %s: %d problems' % (machine, len(problems)))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
