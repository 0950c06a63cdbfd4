"""Scripts run BY THE TARGET interpreter (never imported by tbdoctor itself).

Each is standard library only, Python 3.8 compatible, and is sent on stdin
after ``_common.py``; it ends by calling ``emit(dict)``.
"""
