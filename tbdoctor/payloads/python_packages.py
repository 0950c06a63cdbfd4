# The interpreter (``python``) and its installed distributions (``packages``), in one
# process: they share Python's start-up and importlib.metadata. Stdlib only, 3.8+.
from ._common import begin, context, emit
from .distributions import probe as probe_packages
from .python_env import probe as probe_python

# Parts (facts keys) to gather; tbdoctor asks for one at a time when a run of both crashed or hung.
ctx = context()
parts = ctx.get("only") or ("python", "packages")
result = {}
if "python" in parts:
    begin("python", None)
    result["python"] = probe_python(ctx)
if "packages" in parts:
    begin("packages", None)
    result["packages"] = probe_packages(ctx)
emit(result)
