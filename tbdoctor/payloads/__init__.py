"""Scripts run BY THE TARGET interpreter (never imported by tbdoctor itself).

Each is standard library only and Python 3.8 compatible. The target imports this
folder from memory as the package ``_tbdoctor_payloads`` (see ``_boot.py``), so a
payload imports its helpers with ``from ._common import emit``; it ends by calling
``emit(dict)``.
"""
