"""``tbdoctor schema [NAME]``: print a published JSON Schema, or list them."""

from __future__ import annotations

import sys

from tbdoctor import schemas
from tbdoctor.errors import EXIT_OK, UsageError


# What produces each contract, for the listing.
PRODUCED_BY = {"report": "check --json", "verify": "verify --json", "facts": "check --save-facts",
               "bugreport": "report --json", "compat": "compat --json", "logdir": "logdir --json",
               "fleet": "fleet --json"}


def run(args) -> int:
    if not args.name:
        for name in schemas.NAMES:
            print(f"{name:<10} {f'tbdoctor.{name}/1':<21} {PRODUCED_BY[name]}")
        return EXIT_OK
    if args.name not in schemas.NAMES:
        raise UsageError(f"schema {args.name!r}: unknown; one of {', '.join(schemas.NAMES)}")
    sys.stdout.write(schemas.text(args.name))
    return EXIT_OK
