"""The ``tbdoctor.report/1`` JSON object (a public contract: extend, never break)."""

from __future__ import annotations

import json

from tbdoctor import compat
from tbdoctor.findings import Report

SCHEMA = "tbdoctor.report/1"


def to_dict(report: Report) -> dict:
    return {
        "schema": SCHEMA,
        "tbdoctor": report.tbdoctor_version,
        "target": {k: report.target.get(k) for k in ("python", "chosen_by")},
        "summary": report.summary(),
        "checks": [f.to_dict() for f in report.findings],
        "notes": list(report.notes),
        "knowledge_base": {"date": compat.kb_date()},
        "facts": report.facts,
    }


def render(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, sort_keys=False) + "\n"
