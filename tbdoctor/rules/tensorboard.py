"""Rules of the tensorboardX and TensorBoard sections (tensorboardx.*,
tensorboard.*): installed, importable, a SummaryWriter writes, the CLI starts,
the `tensorboard` script, the data server, notebook instance records,
localhost and port 6006. Pure."""

from __future__ import annotations

from packaging.utils import canonicalize_name

from tbdoctor.findings import ERROR, INFO, OK, WARNING, Finding, Fix
from tbdoctor.rules import logdir
from tbdoctor.rules.common import import_failed, pip_install, pip_uninstall, remove_folder
from tbdoctor.rules.stack import duplicate_families


def tensorboardx(facts: dict) -> list[Finding]:
    x = facts.get("tensorboardx")
    if x is None:
        return []
    if not x.get("installed"):
        return [Finding("tensorboardx.missing", ERROR, "tensorboardX is not installed",
                        detail="It is the SummaryWriter this tool checks (tensorboardX.SummaryWriter).",
                        hint="Install it into this environment.", fixes=(pip_install(facts, "tensorboardX"),))]
    version = x.get("version")
    if not x.get("import_ok"):
        return [Finding("tensorboardx.version", INFO, f"tensorboardX {version} is installed")] + \
            import_failed(facts, "tensorboardx", "tensorboardX", version, x.get("import_error") or {})
    if x.get("writer_ok") is False:
        return [Finding("tensorboardx.version", INFO, f"tensorboardX {version} imports")] + import_failed(
            facts, "tensorboardx", "tensorboardX", version, x.get("writer_error") or {},
            what="SummaryWriter.add_scalar", finding_id="tensorboardx.write-failed")
    return [Finding("tensorboardx.version", OK, f"tensorboardX {version}: a SummaryWriter wrote a scalar event file",
                    detail=f"{x.get('event_bytes')} bytes written to a temporary folder.")]


def tensorboard(facts: dict) -> list[Finding]:
    tb = facts.get("tensorboard")
    if tb is None:
        return []
    if not tb.get("installed"):
        return [Finding("tensorboard.missing", WARNING, "TensorBoard is not installed",
                        detail="Needed to view logs (the `tensorboard` command, %tensorboard) and by "
                               "torch.utils.tensorboard; tensorflow >= 2.21 no longer installs it.",
                        hint="Install it into this environment.", fixes=(pip_install(facts, "tensorboard"),))]
    label = f"{tb.get('distribution')} {tb.get('version')}"
    if not tb.get("import_ok"):
        return [Finding("tensorboard.version", INFO, f"{label} is installed")] + \
            import_failed(facts, "tensorboard", tb["distribution"], tb.get("version"), tb.get("import_error") or {})
    findings = [Finding("tensorboard.version", OK, f"TensorBoard {tb.get('module_version') or tb.get('version')}"
                        + (f" ({tb['distribution']})" if tb.get("distribution") != "tensorboard" else ""),
                        detail=_server_detail(facts, tb))]
    module_version = tb.get("module_version")
    duplicated = any(f.id == "tensorboard.duplicate-install" for f in duplicate_families(facts))
    if module_version and tb.get("version") and module_version != tb["version"] and not duplicated:
        findings.append(Finding(
            "tensorboard.version-mismatch", ERROR,
            f"The tensorboard package files are version {module_version}, but {label} is what is installed",
            detail="Left over from overlapping or interrupted installs (tensorboard / tb-nightly / tf-nightly): "
                   "errors like \"module 'tensorboard' has no attribute 'lazy'\" follow.",
            hint=f"Reinstall {tb['distribution']} over the stale files.",
            fixes=(pip_install(facts, f"{tb['distribution']}=={tb['version']}", options=("--force-reinstall", "--no-deps")),)))
    seen = set()  # the CLI imports the protos too: one cause, one finding
    for key, what in (("protos_error", "import TensorBoard's protobuf messages"), ("cli_error", "start the `tensorboard` command")):
        error = tb.get(key)
        if error and (error.get("reason") == "other" or error.get("reason") not in seen):
            seen.add(error.get("reason"))
            findings += import_failed(facts, "tensorboard", tb["distribution"], tb.get("version"), error, what=what)
    return findings


def _server_detail(facts: dict, tb: dict) -> str:
    server = tb.get("data_server") or {}
    detail = f"Data server: {server['output']}. " if server.get("ok") else ""
    if (facts.get("tensorflow") or {}).get("installed") is False:
        detail += "TensorFlow is not installed: TensorBoard's \"running with reduced feature set\" is normal."
    return detail.strip()


def data_server(facts: dict) -> list[Finding]:
    tb = facts.get("tensorboard") or {}
    server = tb.get("data_server")
    if not tb.get("import_ok") or not server or server.get("ok"):
        return []
    error = server.get("error") or {}
    fix = pip_install(facts, "tensorboard-data-server", options=("--force-reinstall",))
    return [Finding("tensorboard.data-server", WARNING,
                    "TensorBoard's fast data server does not run: " + (error.get("line") or "not installed"),
                    detail="TensorBoard falls back to its slow Python loader (or fails with --load_fast=true).",
                    hint="Reinstall tensorboard-data-server.", fixes=(fix,), verbose_detail=error.get("traceback") or "")]


def script(facts: dict) -> list[Finding]:
    tb = facts.get("tensorboard") or {}
    info = tb.get("script")
    if not tb.get("import_ok") or not info:
        return []
    python = (facts.get("target") or {}).get("python") or "python"
    if info.get("on_path") and not info.get("same"):
        shebang = f" (it runs {info['shebang']})" if info.get("shebang") else ""
        own = info.get("own") or f"{python} -m tensorboard.main"
        return [Finding("tensorboard.script-elsewhere", WARNING,
                        f"`tensorboard` on PATH is {info['on_path']}, not this environment's{shebang}",
                        detail="Typing `tensorboard` starts another environment's TensorBoard, with its own versions.",
                        hint=f"Activate this environment, or run {own}.")]
    if not info.get("own"):
        return [Finding("tensorboard.script-missing", WARNING, "This environment has no `tensorboard` script",
                        detail=f"Expected in {info.get('scripts_dir')}.",
                        hint=f"Run it as `{python} -m tensorboard.main`, or reinstall tensorboard.",
                        fixes=(pip_install(facts, f"{tb['distribution']}=={tb['version']}",
                                           options=("--force-reinstall", "--no-deps")),))]
    if not info.get("on_path"):
        return [Finding("tensorboard.script", INFO, f"`tensorboard` is {info['own']} (not on PATH: activate the "
                                                    "environment or use the full path)")]
    return []


def instances(facts: dict) -> list[Finding]:
    tb = facts.get("tensorboard") or {}
    info = tb.get("instances")
    if not info:
        return []
    findings = []
    if info.get("writable") is False:
        findings.append(Finding("tensorboard.info-dir", WARNING, f"{info['dir']} is not writable",
                                detail="TensorBoard records running instances there; notebooks' %tensorboard fails.",
                                hint="Fix its permissions or delete it (it is recreated).",
                                fixes=(remove_folder(facts, info["dir"]),)))
    stale = [e for e in info.get("entries", ()) if e.get("alive") is False or e.get("error")]
    if stale:
        listing = "; ".join(f"pid {e.get('pid')} port {e.get('port')} logdir {e.get('logdir')}" for e in stale)
        findings.append(Finding("tensorboard.stale-instances", WARNING,
                                f"{len(stale)} record(s) of TensorBoard processes that no longer run",
                                detail=f"{listing}. A notebook's %tensorboard may 'reuse' a dead server.",
                                hint="Delete the stale records.",
                                fixes=tuple(remove_folder(facts, e["file"]) for e in stale)))
    return findings


def network(facts: dict) -> list[Finding]:
    tb = facts.get("tensorboard") or {}
    findings = []
    local = tb.get("localhost")
    if local and not local.get("loopback"):
        findings.append(Finding("tensorboard.localhost", WARNING,
                                "`localhost` does not resolve to the loopback address: "
                                + (", ".join(local.get("addresses") or ()) or local.get("error", "no address")),
                                hint="Fix /etc/hosts (127.0.0.1 localhost), or open http://127.0.0.1:6006 instead."))
    port = tb.get("port")
    if port and not port.get("free"):
        owners = [e for e in (tb.get("instances") or {}).get("entries", ())
                  if e.get("port") == port["port"] and e.get("alive")]
        owner = port.get("owner") or {}
        who = f"TensorBoard pid {owners[0]['pid']} (logdir {owners[0]['logdir']})" if owners else \
            f"pid {owner['pid']} ({owner.get('command') or '?'})" if owner.get("pid") else "another program"
        findings.append(Finding("tensorboard.port-in-use", INFO if owners else WARNING,
                                f"Port {port['port']} is in use by {who}",
                                detail=port.get("error") or "",
                                hint="Start TensorBoard with --port 0 (any free port), or stop the other process."))
    return findings


def plugins(facts: dict) -> list[Finding]:
    tb = facts.get("tensorboard") or {}
    own = canonicalize_name(tb.get("distribution") or "tensorboard")
    broken = not tb.get("import_ok") or tb.get("protos_error") or tb.get("cli_error")
    findings = []
    for p in tb.get("plugins") or ():
        error = p.get("error")
        if not error:
            continue
        if canonicalize_name(p["dist"]) == own:  # TensorBoard's own plugin: never "uninstall TensorBoard"
            if not broken:  # else the import findings above name the cause (an old protobuf, ...)
                findings.append(Finding(
                    "tensorboard.plugin-failed", ERROR,
                    f"TensorBoard's own plugin {p['name']} ({p['dist']} {p['version']}) fails to load: "
                    f"{error.get('line')}",
                    detail=f"Entry point {p['name']} = {p['value']}: the `tensorboard` command stops with this "
                           "traceback. Its files are damaged or mixed with another release's.",
                    hint=f"Reinstall {p['dist']} over them.", subject=p["dist"],
                    fixes=(pip_install(facts, f"{p['dist']}=={p['version']}", options=("--force-reinstall", "--no-deps")),),
                    verbose_detail=error.get("traceback") or ""))
            continue
        findings.append(Finding(
            "tensorboard.plugin-failed", ERROR,
            f"The TensorBoard plugin {p['name']} of {p['dist']} {p['version']} fails to load: {error.get('line')}",
            detail=f"Entry point {p['name']} = {p['value']} (group tensorboard_plugins). TensorBoard loads every "
                   "plugin at start-up: while it is installed the `tensorboard` command stops with this traceback.",
            hint=f"Upgrade {p['dist']} to a release made for this TensorBoard, or uninstall it.",
            fixes=(pip_uninstall(facts, p["dist"]),), verbose_detail=error.get("traceback") or "", subject=p["dist"]))
    return findings


_JS_FIX = ("On Windows the registry key HKEY_CLASSES_ROOT\\.js (value \"Content Type\"), often set by an editor's "
           "installer, says text/plain: `reg add HKCR\\.js /v \"Content Type\" /t REG_SZ /d text/javascript /f`. "
           "Elsewhere fix the file named above, or a sitecustomize/.pth calling mimetypes.add_type. "
           "Then restart TensorBoard.")


def reach(facts: dict) -> list[Finding]:
    """How a browser reaches a TensorBoard started here: SSH, containers, JupyterHub, the .js type."""
    tb = facts.get("tensorboard") or {}
    r = tb.get("reach")
    if not r or not tb.get("installed"):
        return []
    findings = []
    risk = ("--bind_all serves it on every interface with no authentication: anyone who reaches port 6006 sees "
            "(and can download) your logs")
    if r.get("container"):
        findings.append(Finding(
            "tensorboard.in-container", INFO, f"Inside a container ({r['container']}): TensorBoard's default "
                                              "address 127.0.0.1 is not reachable from outside it",
            detail="`tensorboard --logdir DIR` listens on the container's own loopback only. Start it with --host "
                   "0.0.0.0 and publish the port (docker run -p 127.0.0.1:6006:6006 ...); " + risk + "."))
    if r.get("ssh"):
        server = (facts.get("system") or {}).get("hostname") or "<this host>"
        findings.append(Finding(
            "tensorboard.ssh-session", INFO, "An SSH session: TensorBoard listens on 127.0.0.1 here, which your "
                                             "laptop's browser cannot open directly",
            detail=f"On your laptop: `ssh -L 6006:127.0.0.1:6006 <user>@{server}`, then open http://127.0.0.1:6006 "
                   f"(with another --port, forward that one). Or start it with --bind_all: {risk}."))
    if r.get("jupyterhub") and not r.get("proxy_url"):
        prefix = r["jupyterhub"] if r["jupyterhub"].startswith("/") else "$JUPYTERHUB_SERVICE_PREFIX"
        fixes = [] if r.get("server_proxy") else [pip_install(facts, "jupyter-server-proxy")]
        fixes.append(Fix("env", f"export TENSORBOARD_PROXY_URL={prefix.rstrip('/')}/proxy/%PORT%/"))
        findings.append(Finding(
            "tensorboard.proxy-url", WARNING, "JupyterHub without TENSORBOARD_PROXY_URL: %tensorboard shows a blank "
                                              "frame",
            detail="The notebook's frame points the browser at localhost:6006 of your own laptop. Through "
                   "jupyter-server-proxy, TENSORBOARD_PROXY_URL makes it use the hub's URL instead"
                   + ("" if r.get("server_proxy") else " (jupyter-server-proxy is not installed)") + "; a "
                   "TensorBoard started by hand behind a proxy needs --path_prefix.",
            hint="Set it in the kernel's environment (before %load_ext tensorboard):", fixes=tuple(fixes)))
    wildcard = r.get("bind_all") or {}
    if wildcard and not wildcard.get("ok"):
        findings.append(Finding(
            "tensorboard.bind-all", WARNING, f"`tensorboard --bind_all` fails here: it binds {wildcard.get('address')}, "
                                             f"which this machine refuses ({wildcard.get('error')})",
            detail="TensorBoard picks the first IPv6 wildcard address the resolver offers; with IPv6 disabled in the "
                   "kernel it stops with \"could not bind to unsupported address family\".",
            hint="Use --host 0.0.0.0 instead of --bind_all (same exposure: every IPv4 interface, no authentication)."))
    js = r.get("js") or {}
    if js and not js.get("ok"):
        where = f" (set by {js['source']})" if js.get("source") else ""
        findings.append(Finding(
            "tensorboard.js-mime-type", ERROR, f"Python's mimetypes maps .js to {js.get('type') or 'nothing'}{where}: "
                                               "TensorBoard's page stays blank",
            detail="TensorBoard serves its JavaScript with the type mimetypes.guess_type gives; browsers refuse to "
                   "run a script served as text/plain (\"strict MIME type checking\").",
            hint=_JS_FIX))
    return findings


def pillow(facts: dict) -> list[Finding]:
    """A Pillow that is installed but does not import (a missing Pillow is pip's missing requirement)."""
    info = (facts.get("tensorboard") or {}).get("pillow") or {}
    error = info.get("error")
    if not error:
        return []
    return [Finding(
        "tensorboard.pillow-broken", ERROR, f"Pillow {info.get('version')} is installed but does not import: "
                                            f"{error.get('line')}",
        detail="The image summaries of torch.utils.tensorboard and tensorboardX import it when they run: add_image, "
               "add_images, add_figure and add_embedding(label_img=...) fail, while scalars still work.",
        hint="Reinstall Pillow.", fixes=(pip_install(facts, f"pillow=={info.get('version')}",
                                                     options=("--force-reinstall", "--no-deps")),),
        verbose_detail=error.get("traceback") or "", subject="pillow")]


RULES = (tensorboardx, tensorboard, data_server, script, instances, network, plugins, reach, pillow) + logdir.RULES
