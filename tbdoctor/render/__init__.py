"""Renderers: pure functions from a Report to text."""


def for_output(report):
    """The Report as renderers show it: GPU UUIDs redacted in findings and facts (facts.py)."""
    from dataclasses import replace

    from tbdoctor.facts import redact_identifiers
    from tbdoctor.findings import Finding
    return replace(report, facts=redact_identifiers(report.facts),
                   findings=[Finding.from_dict(redact_identifiers(f.to_dict())) for f in report.findings])
