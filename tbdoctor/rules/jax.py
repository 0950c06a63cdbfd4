"""Rules of the JAX section (jax.*): version, backend and devices, import. Pure."""

from __future__ import annotations

from tbdoctor.findings import INFO, OK, Finding
from tbdoctor.rules.common import import_failed


def version(facts: dict) -> list[Finding]:
    jax = facts.get("jax")
    if jax is None:
        return []
    if not jax.get("installed"):
        return [Finding("jax.version", INFO, "JAX is not installed")]
    if not jax.get("import_ok"):
        return [Finding("jax.version", INFO, f"jax {jax.get('dist_version')} is installed")] + \
            import_failed(facts, "jax", "jax", jax.get("dist_version"), jax.get("import_error") or {})
    devices = jax.get("devices") or []
    return [Finding("jax.version", OK, f"jax {jax['version']} (jaxlib {jax.get('jaxlib')}), backend {jax.get('backend')}",
                    detail=f"Devices: {', '.join(devices) or 'none'}.")]


RULES = (version,)
