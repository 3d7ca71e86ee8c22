#!/usr/bin/env python3
"""ctest check: run acpi-inspect on one corpus machine, require valid JSON whose `madt` object
matches the machine's expected.json (iasl's decoding) and whose `cpus` list is consistent.

Usage: check_acpi_inspect.py ACPI_INSPECT MACHINE_DIR
"""
import json
import subprocess
import sys

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
    tool, machine = sys.argv[1], sys.argv[2]
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
