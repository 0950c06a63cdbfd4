"""``tbdoctor report``: one redacted Markdown (or JSON) document for a bug report,
built from the same facts and findings as ``check``."""

from __future__ import annotations

import sys

from tbdoctor import render
from tbdoctor.commands.check import build_report
from tbdoctor.errors import EXIT_OK
from tbdoctor.render import bugreport


def run(args) -> int:
    report = render.redacted(build_report(args), identities=not args.no_redact)
    text = bugreport.to_json(report) if args.json else bugreport.to_markdown(report)
    if args.output:
        render.write_file(args.output, text)
        print(f"tbdoctor: wrote the report to {args.output}; review it, then paste it into your issue",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK
