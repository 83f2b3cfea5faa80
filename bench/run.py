"""Run every benchmark in bench/ and print one table (``make bench``).

Each ``bench_*.py`` module exposes ``run() -> list[dict]`` whose rows carry
name, value, unit, baseline, ratio, target and pass. Baselines run side by side
with Keel in the same process so the ratios hold on any machine. Results are
also written to bench/results/latest.json and latest.md (git-ignored); the
figures worth keeping go to docs/benchmarks.md with the machine they ran on.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).parent


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def main(argv: list[str]) -> int:
    only = set(argv)
    rows = []
    for path in sorted(HERE.glob("bench_*.py")):
        if only and path.stem not in only:
            continue
        print(f"running {path.stem} ...", file=sys.stderr, flush=True)
        for row in load(path).run():
            rows.append({"bench": path.stem, **row})
    lines = [
        f"Machine: {machine()}",
        "",
        "| bench | measure | value | unit | baseline | ratio | target | pass |",
        "|---|---|---|---|---|---|---|---|",
    ]
    columns = ("bench", "name", "value", "unit", "baseline", "ratio", "target", "pass")
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(k)) for k in columns) + " |")
    report = "\n".join(lines)
    print(report)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2, default=str))
    (out / "latest.md").write_text(report + "\n")
    return 0 if all(r.get("pass", True) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
