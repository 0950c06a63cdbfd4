# JAX: version, backend, devices. Stdlib only, 3.8+. Imports jax only when installed.
import importlib.util
import warnings

from ._common import begin, dist_version, emit, failure, guarded_import, step


def probe():
    name, version = dist_version("jax")
    if name is None and importlib.util.find_spec("jax") is None:
        return {"installed": False}
    _, jaxlib_version = dist_version("jaxlib")
    out = {"installed": True, "dist_version": version, "jaxlib": jaxlib_version, "import_ok": False,
           "import_error": None, "version": None, "backend": None, "devices": None, "warnings": []}
    begin("jax", out)
    jax, err = guarded_import("jax", "import_error")
    if jax is None:
        out["import_error"] = err
        return out
    out["import_ok"] = True
    out["version"] = str(getattr(jax, "__version__", None))
    step("jax.devices()", "import_error", dict(out, import_ok=False))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out["backend"] = jax.default_backend()
            out["devices"] = [str(d) for d in jax.devices()]
        out["warnings"] = [str(w.message).splitlines()[0] for w in caught][:5]
    except Exception as exc:
        out["import_error"] = failure(exc)
    return out


emit(probe())
