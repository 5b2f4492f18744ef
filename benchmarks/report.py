"""Render a results JSON (default benchmarks/results/latest.json) as the Markdown tables of BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.common import verdict
from benchmarks.run import RESULTS_DIR, TABLES, Table


def markdown_table(table: Table) -> str:
    columns, rows = table
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_lines(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    return [
        f"- run: {report['started_at']} ({report['duration_s']:.0f} s, "
        f"{'quick' if report['quick'] else 'full'}), git {m['git']}",
        f"- machine: {m['cores']} cores, {m['cpu_model']}, {m['memory_gib']} GiB, kernel {m['kernel']}",
        f"- **load average** (1/5/15 min): {m['load_average']} at start, {report['load_average_end']} at end",
        f"- python {m['python']}; {packages}; {m['wrk']}",
    ] + [
        f"- re-run and merged: {', '.join(r['benchmarks'])} at {r['started_at']} "
        f"(load average {r['load_average']} at start, {r['load_average_end']} at end, git {r['git']})"
        for r in report.get("rerun", {}).get("runs", [])
    ]


def profile_tables(result: dict[str, Any], top: int = 6) -> list[str]:
    """One small table per py-spy profile: the predictor's time buckets, else the top self-time frames."""
    parts = []
    for server in [result, *result.get("servers", {}).values()]:
        for point, profile in server.get("profiles", {}).items():
            label = f"{server.get('server', result.get('benchmark', ''))}, {point}"
            if "error" in profile:
                parts.append(f"Profile {label}: {profile['error']}")
                continue
            rows = profile.get("buckets") or profile["self"][:top]
            kind = "share of non-idle samples (inclusive)" if profile.get("buckets") else "self time"
            table = markdown_table(
                (["where", kind], [[name.replace("  ", "&nbsp;&nbsp;"), f"{v:.1%}"] for name, v in rows])
            )
            parts.append(
                f"Profile {label} ({profile['samples']} samples, `{profile['raw_stacks']}`):\n\n{table}"
            )
    return parts


def render(report: dict[str, Any]) -> str:
    parts = ["\n".join(machine_lines(report))]
    parts.append(
        markdown_table(
            (
                ["result", "benchmark", "target", "goal", "measured"],
                [
                    [
                        {"FAIL": "**FAIL**"}.get(verdict(t), verdict(t)),
                        t["benchmark"],
                        t["name"],
                        t["goal"],
                        t["measured"],
                    ]
                    for t in report["targets"]
                ],
            )
        )
    )
    for name, result in report["benchmarks"].items():
        load = result.get("load_average_after")
        heading = f"### {name} ({result.get('wall_s', 0):.0f} s; load average after: {load})"
        if "error" in result:
            parts.append(f"{heading}\n\nBROKEN: `{result['error'][:500]}`")
            continue
        try:
            parts.append(f"{heading}\n\n{markdown_table(TABLES[name](result))}")
            parts += profile_tables(result)
        except (KeyError, TypeError, ValueError) as exc:
            parts.append(f"{heading}\n\n(no table: {type(exc).__name__}: {exc}; see the JSON)")
    return "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__)
    parser.add_argument("results", type=Path, nargs="?", default=RESULTS_DIR / "latest.json")
    args = parser.parse_args(argv)
    print(render(json.loads(args.results.read_text())), end="")


if __name__ == "__main__":
    main()
