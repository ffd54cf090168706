"""The test suite must leave the git checkout as it found it: `make test` records the state of
every changed or untracked (not ignored) file before the suite and compares after it.

    python scripts/tree_state.py > STATE        # record
    python scripts/tree_state.py --check STATE  # exit 1, naming the files, if anything moved

Outside a git checkout (an unpacked release) there is nothing to compare: both do nothing.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, check=False)


def in_checkout() -> bool:
    return _git("rev-parse", "--is-inside-work-tree").stdout.strip() == b"true"


def state() -> dict[str, str]:
    """Each path `git status` reports (ignored files excluded), with a hash of its content."""
    out = _git("status", "--porcelain=v1", "-z", "--untracked-files=all").stdout
    root = Path(_git("rev-parse", "--show-toplevel").stdout.decode().strip())
    entries = out.decode("utf-8", "surrogateescape").split("\0")
    result: dict[str, str] = {}
    skip_next = False
    for entry in entries:
        if skip_next or not entry:
            skip_next = False
            continue
        code, path = entry[:2], entry[3:]
        skip_next = "R" in code or "C" in code  # a rename's source path follows it
        file = root / path
        digest = hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else "-"
        result[path] = f"{code} {digest}"
    return result


def main(argv: list[str]) -> int:
    if not in_checkout():
        if argv[1:2] == ["--check"]:
            print("Not a git checkout: the tree check is skipped.")
        else:
            print("{}")
        return 0
    if argv[1:2] != ["--check"]:
        print(json.dumps(state()))
        return 0
    before = json.loads(Path(argv[2]).read_text())
    after = state()
    moved = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    if moved:
        print("The test run changed the checkout (a test must not write tracked files):")
        for path in moved:
            print(f"  {path}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
