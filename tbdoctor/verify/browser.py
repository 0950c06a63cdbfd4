"""The browser phase: TensorBoard's page in a real headless Chromium.

Playwright (the optional ``tbdoctor[browser]`` extra) drives a Chromium or
Chrome already on the machine (``$TBDOCTOR_BROWSER``, ``chromium``,
``chromium-browser``, ``google-chrome`` on PATH, or Playwright's own installed
browsers); nothing is downloaded. The page must list every run verify wrote,
show a ``loss`` chart that drew a line for each run that logged a loss, and log
no JavaScript errors. A PNG of the scalars dashboard is saved in the run
directory. Then the images dashboard must show each image written at its size,
and the histograms dashboard each histogram written with one slice per step
(their own screenshots beside). The blank page of a JavaScript bundle served with the wrong
Content-Type, "No dashboards are active" and a page that never loads are each
recognised with their fix. Runs in tbdoctor's own interpreter, not the target.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import tempfile
import time
import urllib.parse

from tbdoctor.verify.result import FAIL, PASS, SKIPPED, Phase

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ENABLE = ("no headless browser to open TensorBoard's page: to enable this phase, "
          "`pip install 'tbdoctor[browser]'` and install Chromium (e.g. `apt-get install chromium`)")
SCREENSHOT = "tensorboard-scalars.png"
KIND_SCREENSHOT = "tensorboard-{kind}.png"
# Every <img> the page shows, through the shadow DOM: [src, natural width, natural height].
_IMAGES = """() => {
  const out = [];
  const walk = root => root.querySelectorAll('*').forEach(e => {
    if (e.tagName === 'IMG' && e.complete) out.push([e.src, e.naturalWidth, e.naturalHeight]);
    if (e.shadowRoot) walk(e.shadowRoot);
  });
  walk(document);
  return out;
}"""
# Every histogram card the page shows: [run, tag, slices drawn (one per step)].
_HISTOGRAMS = """() => {
  const out = [];
  const walk = root => root.querySelectorAll('*').forEach(e => {
    if (e.tagName === 'TF-HISTOGRAM-LOADER') {
      const chart = e.shadowRoot && e.shadowRoot.querySelector('vz-histogram-timeseries');
      out.push([e.run, e.tag, chart && chart.shadowRoot ? chart.shadowRoot.querySelectorAll('g.histogram').length : 0]);
    }
    if (e.shadowRoot) walk(e.shadowRoot);
  });
  walk(document);
  return out;
}"""
# The scalars dashboard with only the loss chart, unsmoothed.
FRAGMENT = "scalars&tagFilter=%5Eloss%24&_smoothingWeight=0"
WRONG_TYPE_FIX = ("the system's MIME table maps .js to text/plain (on Windows the registry key "
                  "HKEY_CLASSES_ROOT\\.js, value \"Content Type\", often set by an installer): set it to "
                  "text/javascript (`reg add HKCR\\.js /v \"Content Type\" /t REG_SZ /d text/javascript /f`) "
                  "or upgrade tensorboard (2.2+ overrides it), then restart TensorBoard")

# What the page shows, read through the shadow DOM of TensorBoard's Polymer
# dashboard (tf-scalar-dashboard inside the Angular tb-webapp).
_LOOK = """() => {
  const all = (root, sel, out = []) => {
    root.querySelectorAll(sel).forEach(e => out.push(e));
    root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) all(e.shadowRoot, sel, out); });
    return out;
  };
  const text = document.body ? document.body.innerText : '';
  const runs = [].concat(...all(document, 'tf-runs-selector').map(r => r.runs || []));
  const cards = all(document, 'tf-scalar-card').filter(c => c.tag === 'loss').map(c => ({
    runs: (c.dataToLoad || []).map(d => d.run),
    lines: all(c.shadowRoot || c, 'path.line').map(p => (p.getAttribute('d') || '').split(/[LC]/).length - 1),
  }));
  return {booted: !!document.querySelector('tb-webapp') && all(document, 'app-header, mat-toolbar').length > 0,
          runs, cards, noDashboards: /No dashboards are active/.test(text), plugin: location.hash.slice(1)};
}"""


def executable() -> str:
    """The browser to drive: $TBDOCTOR_BROWSER, else the first of BROWSERS on PATH ('' if none)."""
    named = os.environ.get("TBDOCTOR_BROWSER")
    if named:
        return shutil.which(named) or ""
    return next((found for name in BROWSERS if (found := shutil.which(name))), "")


def _own_browser(playwright) -> str:
    """Playwright's own installed Chromium, if someone ran `playwright install` ('' if not)."""
    try:
        path = playwright.chromium.executable_path
    except Exception:  # noqa: BLE001 (Playwright raises its own error types)
        return ""
    return path if path and os.path.exists(path) else ""


def _expected(written: dict) -> tuple[list[str], list[str]]:
    """(runs with scalars, runs that logged a loss)."""
    runs = sorted(run for run, rec in written.items() if rec.get("scalars"))
    return runs, [run for run in runs if written[run]["scalars"].get("loss")]


def _missing(seen: dict, runs: list[str], loss_runs: list[str]) -> str:
    """What the page does not show yet ('' when it shows everything)."""
    absent = [run for run in runs if run not in seen["runs"]]
    if absent:
        return f"run {absent[0]} is not listed in the runs selector"
    if loss_runs and not seen["cards"]:
        return "no chart for the tag loss"
    drawn = {run for card in seen["cards"] for run in card["runs"]}
    points = max((n for card in seen["cards"] for n in card["lines"]), default=0)
    if not set(loss_runs) <= drawn:
        return f"the loss chart lacks run {sorted(set(loss_runs) - drawn)[0]}"
    if loss_runs and points < 2:
        return "the loss chart drew no line"
    return ""


def phase(url: str, written: dict, run_dir: str, timeout: float,
          shown: dict | None = None) -> tuple[Phase, str]:
    """Open the page and judge it; returns the phase and the screenshot path ('' if none).
    ``shown`` (when given) gets, per other summary kind looked at, '' or what the page lacks."""
    start = time.monotonic()
    try:
        from playwright.sync_api import Error as PlaywrightError, sync_playwright
    except ImportError:
        return Phase("browser", SKIPPED, 0.0, ENABLE), ""
    profile = tempfile.mkdtemp(prefix="tbdoctor-chromium-")
    try:
        with sync_playwright() as playwright:
            exe = executable() or _own_browser(playwright)
            if not exe:
                return Phase("browser", SKIPPED, time.monotonic() - start, ENABLE), ""
            try:
                context = playwright.chromium.launch_persistent_context(
                    profile, executable_path=exe, args=ARGS, headless=True,
                    viewport={"width": 1100, "height": 600}, timeout=timeout * 1000)
            except PlaywrightError as exc:  # the browser is broken, not TensorBoard: no verdict on the page
                return Phase("browser", SKIPPED, time.monotonic() - start,
                             f"cannot start the browser {exe} ({_first_line(exc)}): point TBDOCTOR_BROWSER "
                             "at a Chromium or Chrome that starts headless, or pass --no-browser"), ""
            try:
                phase, shot = _look(context, url, written, run_dir, timeout, start, PlaywrightError)
                for kind, what in (("images", "every image at its size"),
                                   ("histograms", "every histogram, a slice per step")):
                    if phase.status == PASS and shown is not None and _WANTED[kind](written):
                        shown[kind] = _look_kind(context.pages[0], kind, written, run_dir,
                                                 start + timeout - time.monotonic(), PlaywrightError)
                        phase.detail += f"; the {kind} dashboard drew {what}" if not shown[kind] else "; " + shown[kind]
            finally:
                context.close()
            if phase.status == PASS:
                phase.detail = f"{os.path.basename(exe)} {phase.detail}"
            return phase, shot
    except PlaywrightError as exc:  # the Playwright driver itself failed
        return Phase("browser", FAIL, time.monotonic() - start, f"Playwright failed: {_first_line(exc)}",
                     "reinstall it: pip install --force-reinstall 'tbdoctor[browser]'"), ""
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _look(context, url: str, written: dict, run_dir: str, timeout: float, start: float,
          error_type) -> tuple[Phase, str]:
    runs, loss_runs = _expected(written)
    page = context.pages[0] if context.pages else context.new_page()
    errors: list[str] = []
    wrong_type: list[str] = []
    page.on("pageerror", lambda exc: errors.append(_first_line(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    def on_response(response) -> None:
        kind = (response.headers.get("content-type") or "").split(";")[0].strip()
        if response.request.resource_type == "script" and "javascript" not in kind and "ecmascript" not in kind:
            wrong_type.append(f"{response.url.split('?')[0]} as {kind or 'no Content-Type'}")
    page.on("response", on_response)

    def done(status: str, detail: str, fix: str = "") -> tuple[Phase, str]:
        shot = os.path.join(run_dir, SCREENSHOT)
        try:
            page.screenshot(path=shot)
        except error_type:
            shot = ""
        if shot and status != PASS:
            detail += f"; screenshot {shot}"
        return Phase("browser", status, time.monotonic() - start, detail, fix), shot

    try:
        page.goto(url, wait_until="load", timeout=timeout * 1000)
    except error_type as exc:
        return Phase("browser", FAIL, time.monotonic() - start,
                     f"the page {url} never loaded in the browser within {timeout:g} s: {_first_line(exc)}",
                     f"open {url} yourself; check that no proxy setting (HTTP_PROXY without NO_PROXY=127.0.0.1) "
                     "or firewall intercepts 127.0.0.1, or raise --server-timeout"), ""
    loaded, deadline = time.monotonic(), start + timeout
    seen = {"booted": False, "runs": [], "cards": [], "noDashboards": False, "plugin": ""}

    def watch(enough) -> str:
        """Look at the page until ``enough(seen)`` holds, the page is blank for want of its
        JavaScript, or time is up; returns what is still missing."""
        nonlocal seen
        while True:
            try:
                seen = page.evaluate(_LOOK)
            except error_type as exc:
                missing = f"the page could not be inspected: {_first_line(exc)}"
            else:
                missing = enough(seen) if seen["booted"] else "the page stayed blank"
            blank = wrong_type and not seen["booted"] and time.monotonic() - loaded > 2
            if not missing or seen["noDashboards"] or blank or time.monotonic() >= deadline:
                return missing
            page.wait_for_timeout(250)

    # The landing page picks a dashboard (or says there is none); then the scalars one, loss only.
    missing = watch(lambda now: "" if now["plugin"] else "no dashboard was chosen")
    if not missing and not seen["noDashboards"]:
        page.evaluate("fragment => { location.hash = fragment; }", FRAGMENT)
        missing = watch(lambda now: _missing(now, runs, loss_runs))
    if wrong_type and not seen["booted"]:
        return done(FAIL, f"TensorBoard served its JavaScript ({wrong_type[0]}): the browser refuses to run it "
                    "and the page stays blank", WRONG_TYPE_FIX)
    if seen["noDashboards"]:
        return done(FAIL, "the page says \"No dashboards are active for the current data set\": "
                    "TensorBoard found no event files", f"start TensorBoard with --logdir at the run "
                    f"directory that holds the event files ({run_dir})")
    if missing:
        return done(FAIL, f"after {timeout:g} s the scalars dashboard at {url} shows no loss curve: {missing}",
                    f"open {url}#scalars yourself, or raise --server-timeout")
    if errors:
        return done(FAIL, f"the page logged a JavaScript error: {errors[0][:300]}",
                    f"open {url} in a browser and look at its console")
    return done(PASS, f"drew the loss curve of runs {', '.join(loss_runs)} on the scalars "
                f"dashboard; {len(runs)} runs listed, no JavaScript errors")


def _wanted_images(written: dict) -> dict:
    """(run, tag) -> (width, height) of every image verify wrote."""
    return {(run, tag): (size[1], size[0]) for run, rec in written.items() for tag, size in rec.get("images", {}).items()}


def _image_key(src: str) -> tuple:
    """(run, tag) of an individualImage URL (its blob_key is base64 JSON: [experiment, run, tag, step, index])."""
    key = urllib.parse.parse_qs(urllib.parse.urlparse(src).query).get("blob_key", [""])[0]
    try:
        data = json.loads(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))
        return data[1], data[2]
    except (ValueError, TypeError, IndexError, KeyError):
        return ()


def _wanted_histograms(written: dict) -> dict:
    """(run, tag) -> number of steps of every histogram verify wrote."""
    return {(run, tag): len(points) for run, rec in written.items()
            for tag, points in rec.get("histogram_counts", {}).items()}


_WANTED = {"images": _wanted_images, "histograms": _wanted_histograms}


def _drawn(page, kind: str) -> dict:
    """(run, tag) -> what the dashboard draws: (width, height) of an image, slices of a histogram."""
    if kind == "images":
        return {_image_key(src): (w, h) for src, w, h in page.evaluate(_IMAGES) if "individualImage" in src}
    return {(run, tag): slices for run, tag, slices in page.evaluate(_HISTOGRAMS)}


def _describe(kind: str, value) -> str:
    return f"{value[0]}x{value[1]}" if kind == "images" else f"{value} slices"


def _look_kind(page, kind: str, written: dict, run_dir: str, timeout: float, error_type) -> str:
    """A kind's dashboard draws everything written ('' when it does, else what it does not)."""
    wanted = _WANTED[kind](written)
    tags = "|".join(sorted({re.escape(tag) for _run, tag in wanted}))
    missing, deadline = f"the {kind} dashboard was not opened", time.monotonic() + max(timeout, 5.0)
    try:  # a tag filter: the dashboard renders filtered cards at once, not as they scroll into view
        page.evaluate("fragment => { location.hash = fragment; }",
                      f"{kind}&tagFilter={urllib.parse.quote(f'^({tags})$')}")
        while True:
            drawn = _drawn(page, kind)
            missing = next((f"run {run}: {kind[:-1]} {tag} " + (
                f"is drawn as {_describe(kind, drawn[(run, tag)])}, {_describe(kind, value)} written"
                if (run, tag) in drawn else "is not drawn")
                for (run, tag), value in sorted(wanted.items()) if drawn.get((run, tag)) != value), "")
            if not missing or time.monotonic() >= deadline:
                break
            page.wait_for_timeout(250)
        page.screenshot(path=os.path.join(run_dir, KIND_SCREENSHOT.format(kind=kind)))
    except error_type as exc:
        return f"the {kind} dashboard: {missing} ({_first_line(exc)})"
    return missing and f"the {kind} dashboard: {missing}"


def _first_line(exc) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else type(exc).__name__
