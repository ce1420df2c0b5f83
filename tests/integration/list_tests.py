#!/usr/bin/env python3
"""Lists the integration tests of a directory: every <name>.test.mjs, by name, one per line, sorted.

meson.build registers what this prints at configure time, so no test file can be left out of the suite.
With --expect NAME..., it instead checks that the directory still holds exactly the tests registered
(meson does not re-run a configure-time listing when a file is added), and says how to fix it if not.
"""
import pathlib
import sys

SUFFIX = '.test.mjs'


def names(directory):
    return sorted(p.name[:-len(SUFFIX)] for p in pathlib.Path(directory).glob('*' + SUFFIX) if p.is_file())


def main(argv):
    if len(argv) < 2:
        print('usage: list_tests.py DIR [--expect NAME...]', file=sys.stderr)
        return 2
    found = names(argv[1])
    if len(argv) > 2 and argv[2] == '--expect':
        registered = set(argv[3:])
        added = [n for n in found if n not in registered]
        removed = sorted(registered - set(found))
        for n in added:
            print(f'{argv[1]}/{n}{SUFFIX} is not registered in this build: run `meson setup --reconfigure <builddir>`')
        for n in removed:
            print(f'{argv[1]}/{n}{SUFFIX} is registered but no longer exists: run `meson setup --reconfigure <builddir>`')
        if added or removed:
            return 1
        print(f'{len(found)} integration test files, all registered')
        return 0
    if not found:
        print(f'no *{SUFFIX} in {argv[1]}', file=sys.stderr)
        return 1
    print('\n'.join(found))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
