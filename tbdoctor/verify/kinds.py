"""Per summary kind (scalars, histograms, images, text, graph, hparams): was it
written, read back with the values written, served by TensorBoard's plugin?

Scalars are the pipeline the phases judge; the other kinds are optional: one
that fails is its own named result and does not hide passing scalars.
"""

from __future__ import annotations

from tbdoctor.verify.result import FAIL, PASS, KindResult

KINDS = ("scalars", "histograms", "images", "text", "graph", "hparams")
# The job's record of each kind's values (what can be compared); a run that wrote
# a kind without them (the TensorFlow job) leaves that kind's later stages unchecked.
VALUES = {"histograms": "histogram_counts", "images": "images", "text": "text_values", "graph": "graph_op",
          "hparams": "hparams_metrics"}


def from_jobs(jobs) -> dict[str, KindResult]:
    """The written stage, from what each job wrote and the kinds it could not write."""
    results = {}
    for kind in KINDS:
        result = KindResult(kind)
        runs = sorted(run for job in jobs for run, rec in job.written.items() if rec.get(kind))
        errors = [job.kind_errors[kind] for job in jobs if kind in job.kind_errors]
        if errors:
            result.fail("written", errors[0]["detail"], errors[0]["fix"])
        elif runs:
            result.written = PASS
        result.runs = runs
        results[kind] = result
    return results


def read_back(written: dict, found: dict) -> dict[str, str]:
    """Per kind, the first difference between what was written and what was read ('' if none)."""
    runs = found.get("runs", {})
    problems: dict[str, str] = {}

    def note(kind: str, text: str) -> None:
        problems.setdefault(kind, text)
    for run, expect in sorted(written.items()):
        got = runs.get(run) or {}
        for tag, points in expect.get("histogram_counts", {}).items():
            totals = dict((step, total) for step, total in got.get("histogram_counts", {}).get(tag, []))
            for step, samples in points:
                if step not in totals:
                    note("histograms", f"run {run}, histogram {tag}: step {step} not read back")
                elif round(totals[step]) != samples:
                    note("histograms", f"run {run}, histogram {tag}, step {step}: the buckets hold "
                                       f"{totals[step]:g} samples, {samples} were written")
        for tag, (height, width, _channels) in expect.get("images", {}).items():
            images = got.get("images", {}).get(tag, [])
            if not images:
                note("images", f"run {run}: image {tag} not read back")
            for _step, w, h, dw, dh, why in images:
                if why:
                    note("images", f"run {run}, image {tag}: the PNG does not decode ({why})")
                elif (w, h, dw, dh) != (width, height, width, height):
                    note("images", f"run {run}, image {tag}: decodes to {dw}x{dh} (header {w}x{h}), "
                                   f"{width}x{height} was written")
        for tag, text in expect.get("text_values", {}).items():
            if got.get("text_values", {}).get(tag) != text:
                note("text", f"run {run}: text {tag} does not read back as written")
        if expect.get("graph_op") and expect["graph_op"] not in got.get("graph_ops", []):
            note("graph", f"run {run}: the graph has no {expect['graph_op']} node (the linear layer)")
        for tag in expect.get("hparams_metrics", []):
            if tag not in got.get("hparams_metrics", []):
                note("hparams", f"run {run}: the hparams experiment does not declare the metric {tag}")
    return problems


def judge(results: dict[str, KindResult], stage: str, problems: dict[str, str], fix: str, written: dict) -> None:
    """Mark ``stage`` for every kind that got that far and whose values were recorded:
    failed where a problem was found."""
    for kind, result in results.items():
        if kind == "scalars" or result.last() != PASS or not any(rec.get(VALUES[kind]) for rec in written.values()):
            continue
        if kind in problems:
            result.fail(stage, problems[kind], fix)
        else:
            setattr(result, stage, PASS)


def phase_stage(results: dict[str, KindResult], stage: str, status: str) -> None:
    """Scalars follow the phase itself (readback, server, browser)."""
    scalars = results.get("scalars")
    if scalars is not None and scalars.last() == PASS and status in (PASS, FAIL):
        if status == FAIL:
            scalars.fail(stage, "", "")
        else:
            setattr(scalars, stage, PASS)

