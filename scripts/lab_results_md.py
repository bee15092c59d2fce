#!/usr/bin/env python3
"""Renders the results section of docs/lab.md from `resin lab` run directories.

usage: scripts/lab_results_md.py RUN_ROOT DOCS_PLOT_DIR > results.md
For every RUN_ROOT/<experiment>/metrics.json (in `resin lab list` order when a summary exists),
prints the date, machine, command, a verdict table and links to the plots copied under
DOCS_PLOT_DIR/<experiment>/ (the caller copies the SVGs; paths are relative to docs/).
"""
import json
import os
import sys


def main():
    root, plots = sys.argv[1], sys.argv[2]
    names = sorted(d for d in os.listdir(root) if os.path.exists(os.path.join(root, d, "metrics.json")))
    order = []
    summary = os.path.join(root, "summary.md")
    if os.path.exists(summary):
        for line in open(summary, encoding="utf-8"):
            if line.startswith("| ["):
                order.append(line.split("]")[0][3:])
    names = [n for n in order if n in names] + [n for n in names if n not in order]
    out = ["| experiment | verdicts | date | machine | command |", "|---|---|---|---|---|"]
    for n in names:
        m = json.load(open(os.path.join(root, n, "metrics.json"), encoding="utf-8"))
        v = "; ".join(f"{x['id']} {x['verdict']}" for x in m["verdicts"])
        out.append(f"| [{n}](#{n}) | {v} | {m['date'][:10]} | {m['machine']} | `{m['command']}` |")
    out.append("")
    for n in names:
        m = json.load(open(os.path.join(root, n, "metrics.json"), encoding="utf-8"))
        out.append(f"### {n}\n")
        out.append(f"{m['date'][:10]} · {m['machine']} · {m['seconds']:.0f} s · "
                   f"seeds {', '.join(str(s) for s in m['seeds']) or 'none'}  ")
        out.append(f"`{m['command']}`\n")
        out.append("| id | criterion | verdict | measured |\n|---|---|---|---|")
        for v in m["verdicts"]:
            cell = lambda s: s.replace("|", "\\|")
            out.append(f"| {v['id']} | {cell(v['criterion'])} | **{v['verdict']}** | {cell(v['measured'])} |")
        out.append("")
        for p in m["plots"]:
            out.append(f"![{n} {p}]({plots}/{n}/{p})")
        out.append("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
