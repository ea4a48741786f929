"""Where the suite's time and CPU go: sums the per-test lines ``O4O_CPU_ACCOUNTING=1`` wrote.

Usage: ``O4O_CPU_ACCOUNTING=1 make test`` then ``python -m bench.suite_cpu [artifacts-dir]``. Prints, per
directory and for the costliest modules, wall seconds and CPU seconds (the tested processes included), and
each worker's total wall time. Prints figures only.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from pathlib import Path


def main(argv: list[str]) -> int:
    artifacts = Path(argv[0] if argv else os.environ.get("O4O_ARTIFACTS")
                     or Path(os.environ.get("TMPDIR", "/tmp")) / "o4o-artifacts")
    per_module: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    per_directory: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    per_worker: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for path in sorted(artifacts.glob("cpu-*.tsv")):
        for line in path.read_text().splitlines():
            nodeid, wall, cpu = line.split("\t")
            module = nodeid.split("::", 1)[0].removeprefix("tests/")
            for table, key in ((per_module, module), (per_directory, module.split("/", 1)[0]),
                               (per_worker, path.stem.removeprefix("cpu-"))):
                table[key][0] += float(wall)
                table[key][1] += float(cpu)
    total_cpu = sum(cpu for _, cpu in per_directory.values())
    print(f"{'':44} {'wall s':>8} {'cpu s':>8} {'cpu %':>6}")
    for title, table, limit in (("directory", per_directory, 99), ("module", per_module, 25),
                                ("worker", per_worker, 99)):
        print(f"-- per {title}")
        for key, (wall, cpu) in sorted(table.items(), key=lambda kv: -kv[1][1])[:limit]:
            print(f"{key[:44]:44} {wall:8.0f} {cpu:8.0f} {100 * cpu / max(total_cpu, 1):6.1f}")
    print(f"total cpu {total_cpu:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
