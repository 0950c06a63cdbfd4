"""The ``tbdoctor.report/1`` JSON object (a public contract: extend, never break)."""

from __future__ import annotations

import json

from tbdoctor.findings import Report
from tbdoctor.render import for_output

SCHEMA = "tbdoctor.report/1"


def to_dict(report: Report) -> dict:
    report = for_output(report)
    return {
        "schema": SCHEMA,
        "tbdoctor": report.tbdoctor_version,
        "target": {k: report.target.get(k) for k in ("python", "chosen_by")},
        "summary": report.summary(),
        "checks": [f.to_dict() for f in report.findings],
        "notes": list(report.notes),
        "facts": report.facts,
    }


def render(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, sort_keys=False) + "\n"
