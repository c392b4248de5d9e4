#!/usr/bin/env python3
"""Lists public Swift declarations under Sources/ without a /// doc comment.

A declaration counts as documented when the nearest line above it that is not
an attribute (@inlinable, @discardableResult, ...) is a /// comment. Prints one
line per undocumented declaration and a summary per module; exit status 1 if
any is undocumented (used by scripts/test.sh).
"""
import os, re, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Sources")
decl = re.compile(r'^\s*(?:@\S+\s+)*(?:public|open)\s+(?:(?:static|final|override|mutating|nonmutating|consuming|borrowing|convenience|required|indirect|private\(set\)|fileprivate\(set\)|internal\(set\))\s+)*(?:func|var|let|init|struct|class|enum|protocol|typealias|case|subscript|actor|extension)\b')
attr = re.compile(r'^\s*@\S+(\(.*\))?\s*$')
missing = []
totals = {}
for dirpath, _, files in os.walk(root):
    for name in sorted(files):
        if not name.endswith(".swift"):
            continue
        path = os.path.join(dirpath, name)
        module = os.path.relpath(path, root).split(os.sep)[0]
        lines = open(path, encoding="utf-8").read().split("\n")
        for i, line in enumerate(lines):
            if not decl.match(line) or re.match(r'^\s*(?:@\S+\s+)*public\s+extension\b', line):
                continue
            j = i - 1
            while j >= 0 and attr.match(lines[j]):
                j -= 1
            documented = j >= 0 and lines[j].strip().startswith("///")
            done, total = totals.get(module, (0, 0))
            totals[module] = (done + documented, total + 1)
            if not documented:
                missing.append(f"{os.path.relpath(path, os.path.join(root, '..'))}:{i + 1}: {line.strip()}")
for m in missing:
    print(m)
for module, (done, total) in sorted(totals.items()):
    print(f"{module}: {done}/{total} public declarations documented ({100 * done // max(total, 1)} %)")
sys.exit(1 if missing else 0)
