"""The include list and the skip list of tools/tempest, read and checked.

Both are stestr list files (a regex per line, ``#`` starts a comment). The
skip list must give a reason for every entry, and every entry must take out
at least one test the include list selects: an entry that matches nothing
is a typo or a test tempest renamed, and would hide nothing while looking
as if it did.
"""

import os
import re

TOOLS_DIR = os.path.dirname(os.path.abspath(__file__))
INCLUDE_LIST = os.path.join(TOOLS_DIR, 'include-list.txt')
SKIP_LIST = os.path.join(TOOLS_DIR, 'skip-list.txt')


def read_list(path):
    """[(regex, comment)] of a stestr list file, comment '' when none."""
    entries = []
    with open(path) as f:
        for line in f:
            regex, _, comment = line.strip().partition('#')
            if regex.strip():
                entries.append((regex.strip(), comment.strip()))
    return entries


def problems(include, skip):
    """What is wrong with the entries themselves (no tests needed)."""
    found = []
    for regex, reason in include + skip:
        try:
            re.compile(regex)
        except re.error as exc:
            found.append('%s: not a regex (%s)' % (regex, exc))
    for regex, reason in skip:
        if not reason:
            found.append('%s: no reason given' % regex)
    return found


def apply(test_ids, include, skip):
    """(selected ids, {skip regex: ids it takes out})."""
    includes = [re.compile(r) for r, _ in include]
    chosen = [t for t in test_ids if any(r.search(t) for r in includes)]
    taken = {regex: [t for t in chosen if re.search(regex, t)]
             for regex, _ in skip}
    out = {t for ids in taken.values() for t in ids}
    return [t for t in chosen if t not in out], taken
