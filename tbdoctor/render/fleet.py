"""The fleet table: a machine per row, drift marked, then the verdict.

``draw`` prints with rich on a terminal; ``to_text`` is the same table as plain
aligned text (piped output and ``--output``; hand-aligned because rich takes
seconds to lay out thousands of rows), ``to_json`` the ``tbdoctor.fleet/1``
object. Pure apart from ``draw``'s printing.
"""

from __future__ import annotations

import json
import sys

from tbdoctor.fleet import COLUMNS

_SHOWN = 10  # machine names listed per value / violation before "and N more"


def _headers(fleet: dict) -> list[tuple[str, str]]:
    keys = fleet["columns"]
    return [("machine", "Machine")] + [(k, COLUMNS.get(k, k) + (" ≠" if k in fleet["drift"] else "")) for k in keys] \
        + [("errors", "Errors")]


def _cells(fleet: dict, machine: dict) -> list[tuple[str, bool]]:
    """(text, differs from the majority) per column."""
    majority = fleet["majority"]
    name = machine["machine"] + (" !" if machine["violations"] else "")
    cells = [(name, bool(machine["violations"]))]
    cells += [(machine[k], k in fleet["drift"] and machine[k] != majority.get(k)) for k in fleet["columns"]]
    cells.append((", ".join(machine["errors"]) or "-", bool(machine["errors"])))
    return cells


def _names(machines: list[str]) -> str:
    more = f" and {len(machines) - _SHOWN} more" if len(machines) > _SHOWN else ""
    return ", ".join(machines[:_SHOWN]) + more


def verdict_lines(fleet: dict) -> list[str]:
    machines = fleet["machines"]
    lines = [f"{len(machines)} machines" + (f", {len(fleet['skipped'])} files skipped" if fleet["skipped"] else "")]
    for key, counts in fleet["drift"].items():
        values = "; ".join(f"{v} ×{n}" for v, n in counts.items())
        lines.append(f"drift in {COLUMNS.get(key, key)}: {values}")
        minority = [m["machine"] for m in machines if m[key] != fleet["majority"][key]]
        lines.append(f"  not {fleet['majority'][key]}: {_names(minority)}")
    for key, same in fleet["uniform"].items():
        lines.append(f"--uniform {key}: " + ("same on every machine" if same else "DIFFERS (exit 1)"))
    violating = [m for m in machines if m["violations"]]
    if fleet["policy"] or violating:
        source = fleet["policy"] or "the machines' own policies"
        if violating:
            lines.append(f"policy ({source}) violated on {len(violating)} machines (exit 1):")
            lines += [f"  {m['machine']}: {'; '.join(m['violations'])}" for m in violating[:_SHOWN]]
            if len(violating) > _SHOWN:
                lines.append(f"  and {len(violating) - _SHOWN} more")
        else:
            lines.append(f"policy ({source}) met on every machine")
    for skip in fleet["skipped"]:
        lines.append(f"skipped {skip['file']}: {skip['reason']}")
    lines.append("FAIL" if fleet["status"] == "fail" else "PASS")
    return lines


def to_text(fleet: dict) -> str:
    headers = [h for _, h in _headers(fleet)]
    rows = [[text + (" *" if differs and i and i <= len(fleet["columns"]) else "")
             for i, (text, differs) in enumerate(_cells(fleet, m))] for m in fleet["machines"]]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    legend = "(≠ values differ across machines; * differs from the majority; ! violates the policy)"
    return "\n".join(lines + ["", legend, ""] + verdict_lines(fleet)) + "\n"


def to_json(fleet: dict) -> str:
    return json.dumps(fleet, indent=2) + "\n"


def draw(fleet: dict, stream=None) -> None:
    """Print the fleet: a rich table on a terminal wide enough for it, else plain text."""
    stream = stream or sys.stdout
    text = to_text(fleet)
    if not stream.isatty() or len(fleet["machines"]) > 500:
        stream.write(text)
        return
    from rich.table import Table
    from rich.text import Text

    from tbdoctor.render.console import make_console
    console = make_console(stream)
    if len(text.splitlines()[0]) + 3 * len(fleet["columns"]) + 10 > console.width:
        stream.write(text)  # rich would cut every cell to "…": complete lines are better
        return
    table = Table(show_lines=False, header_style="bold")
    for _, header in _headers(fleet):
        table.add_column(header, no_wrap=True)
    for m in fleet["machines"]:
        cells = _cells(fleet, m)
        styles = ["red" if cells[0][1] else ""] + ["yellow bold" if d else "" for _, d in cells[1:-1]] \
            + ["red" if cells[-1][1] else "dim"]
        table.add_row(*(Text(text, style=style) for (text, _), style in zip(cells, styles)))
    console.print(table)
    for line in verdict_lines(fleet):
        console.print(Text(line, style="red" if line == "FAIL" or "(exit 1)" in line else ""))
