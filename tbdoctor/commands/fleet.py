"""``tbdoctor fleet``: merge many machines' ``check --json`` reports; exit 1 on a
policy violation or a ``--uniform`` key that differs."""

from __future__ import annotations

import sys

from tbdoctor import fleet, policy as policy_mod, redact, render
from tbdoctor.errors import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE
from tbdoctor.render import fleet as fleet_render


def run(args) -> int:
    pol = policy_mod.load_file(args.policy).to_dict() if args.policy else None
    merged = redact.value(fleet.merge(args.reports, pol, tuple(dict.fromkeys(args.uniform))))  # before layout
    if not merged["machines"]:  # nothing to judge: no table, no verdict
        for skip in merged["skipped"]:
            print(f"tbdoctor: skipped {skip['file']}: {skip['reason']}", file=sys.stderr)
        print("tbdoctor: error: none of the files is a readable `tbdoctor check --json` report", file=sys.stderr)
        return EXIT_USAGE
    if args.json or args.output:  # the table's own text lists them otherwise
        for skip in merged["skipped"]:
            print(f"tbdoctor: skipped {skip['file']}: {skip['reason']}", file=sys.stderr)
    if args.json:
        text = fleet_render.to_json(merged)
    elif args.output:
        text = fleet_render.to_text(merged)
    else:
        text = None
        fleet_render.draw(merged)
    if text is not None:
        if args.output:
            render.write_file(args.output, text)
        else:
            sys.stdout.write(text)
    return EXIT_PROBLEMS if merged["status"] == "fail" else EXIT_OK
