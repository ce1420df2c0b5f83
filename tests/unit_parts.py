#!/usr/bin/env python3
# Checks that the parts the unit tests run in (tests/meson.build: one meson test per part, each the doctest
# binary with its own filters) together run every test case of the binary exactly once: none left out by
# the filters, none run twice. Usage: unit_parts.py UNIT_TESTS_BINARY -- PART1_ARGS... -- PART2_ARGS...
#
# The parts run with --no-skipped-summary: doctest counts the cases a filter leaves out as skipped, which
# would make every part report the others' cases as skipped. A case marked doctest::skip() is then counted
# here instead, in a line of doctest's summary format that tools/test adds up like the parts' own.
import collections
import subprocess
import sys


def case_names(binary, filters, with_skipped=True):
    out = subprocess.run([binary, '--list-test-cases', '--no-version', f'--no-skip={str(with_skipped).lower()}', *filters],
                         check=True, capture_output=True, text=True).stdout
    # The listing: a header line, a rule, one name a line, a rule, then the count.
    lines = out.split('\n')
    rules = [i for i, line in enumerate(lines) if line.startswith('=====')]
    if len(rules) < 2:
        sys.exit(f'unexpected doctest listing for {filters}:\n{out}')
    return collections.Counter(lines[rules[0] + 1:rules[1]])


def main():
    if len(sys.argv) < 3 or sys.argv[2] != '--':
        sys.exit('usage: unit_parts.py UNIT_TESTS_BINARY -- PART1_ARGS... -- PART2_ARGS...')
    binary = sys.argv[1]
    parts = [[]]
    for arg in sys.argv[3:]:
        if arg == '--':
            parts.append([])
        else:
            parts[-1].append(arg)
    every = case_names(binary, [])
    covered = collections.Counter()
    for filters in parts:
        covered += case_names(binary, filters)
    missing = every - covered
    twice = covered - every
    for name in sorted(missing):
        print(f'in no part: {name}')
    for name in sorted(twice):
        print(f'in more than one part: {name}')
    if missing or twice:
        sys.exit(1)
    print(f'{len(parts)} parts cover the {sum(every.values())} test cases, each once')
    marked_skip = sum(every.values()) - sum(case_names(binary, [], with_skipped=False).values())
    print(f'[doctest] test cases: 0 | 0 passed | 0 failed | {marked_skip} skipped (marked doctest::skip)')


main()
