"""``tbdoctor check``: probe the target, apply the rules, render the report."""

from __future__ import annotations

from tbdoctor import render
from tbdoctor.diagnose import diagnose
from tbdoctor.errors import EXIT_OK, EXIT_PROBLEMS
from tbdoctor.findings import Report


def build_report(args) -> Report:
    """The diagnosis that ``check`` and ``report`` ask for with their flags."""
    return diagnose(args.python, args.only, args.timeout, ignore=args.ignore, quick=args.quick,
                    use_cache=not args.no_cache, verbose=bool(getattr(args, "verbose", False)),
                    facts_file=args.facts, save_facts=args.save_facts, policy=getattr(args, "policy", None),
                    logdir=getattr(args, "logdir", None))


def run(args) -> int:
    report = build_report(args)
    strict = args.strict or bool((report.facts.get("policy") or {}).get("strict"))
    code = EXIT_PROBLEMS if report.failed(strict=strict) else EXIT_OK
    if getattr(args, "verify", False):  # then the job: tbdoctor/commands/verify.py
        from tbdoctor.commands import verify
        return verify.after_check(args, report, code, strict)
    render.emit(report, "json" if args.json else args.format, args.output, strict=strict, verbose=args.verbose)
    return code
