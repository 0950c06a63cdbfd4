# Imported by every payload (``from ._common import ...``). Standard library only, Python 3.8+.
import faulthandler
import json
import os
import re
import signal
import sys

MARKER = "@@tbdoctor-result@@"
STEP_MARKER = "@@tbdoctor-step@@"
# A crash prints the Python stack (tbdoctor also passes -X faulthandler, for crashes at
# start-up), and so does SIGUSR1: tbdoctor sends it to a probe that hangs before stopping it.
faulthandler.enable()
if hasattr(signal, "SIGUSR1"):
    faulthandler.register(signal.SIGUSR1, all_threads=True)
_PART = None


def begin(part, facts):
    """Start on the facts of ``part`` (a facts key): what is known so far goes to stderr,
    so that a crash or hang from here on is charged to ``part`` with these facts."""
    global _PART
    _PART = part
    _say({"part": part, "facts": facts})


def step(what, key=None, facts=None):
    """Say on stderr what is about to run. If it crashes or hangs, tbdoctor records the
    failure (a failure record) in the current part's ``key``, with ``facts`` as its facts
    (default: the last given); without ``key`` the probe's own finding names the step."""
    _say({"part": _PART, "step": what, "key": key, "facts": facts})


def _say(record):
    stream = sys.__stderr__
    if stream is not None:
        stream.write("\n" + STEP_MARKER + json.dumps(record, default=str) + "\n")
        stream.flush()


def context():
    """The JSON object tbdoctor passes as the first argument."""
    return json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}


def emit(data):
    """Print the result where tbdoctor looks for it, after any noise."""
    sys.stdout.write("\n" + MARKER + json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


def first_line(exc):
    """The most useful single line of an exception."""
    text = "%s: %s" % (type(exc).__name__, exc)
    return text.strip().splitlines()[0][:500] if text.strip() else type(exc).__name__


# Why an import failed, recognised from its text (traceback plus stderr): the
# most specific first. Each entry: (reason, substrings). tbdoctor's rules explain each reason.
_REASONS = (
    ("numpy-abi", ("compiled using NumPy 1.x", "_ARRAY_API not found", "multiarray failed to import",
                   "_multiarray_umath failed to import", "may indicate binary incompatibility",
                   "compiled against ABI version", "compiled against API version")),
    ("numpy-removed-alias", ("was removed in the NumPy 2.0 release", "module 'numpy' has no attribute")),
    ("numpy-array-scalar", ("only 0-dimensional arrays can be converted to Python scalars",)),
    ("protobuf-gencode-too-old", ("Descriptors cannot be created directly",)),
    ("protobuf-runtime-too-old", ("cannot import name 'builder' from 'google.protobuf.internal'",
                                  "cannot import name 'runtime_version' from 'google.protobuf'",
                                  "Detected incompatible Protobuf Gencode/Runtime versions")),
    ("pkg-resources-missing", ("No module named 'pkg_resources'",)),
    ("distutils-version", ("module 'distutils' has no attribute 'version'",)),
    ("cuda-driver-too-old", ("NVIDIA driver on your system is too old", "driver version is insufficient")),
    ("undefined-symbol", ("undefined symbol",)),
    ("missing-shared-library", ("cannot open shared object file", "DLL load failed", "Library not loaded",
                                "image not found")),
    ("duplicate-plugins", ("Duplicate plugins for name",)),
    ("missing-module", ("No module named",)),
)
_EXC_LINE = None  # compiled on first use


def classify(text):
    """(reason, first useful line) for the text of a failure; reason 'other' when unknown."""
    import re
    global _EXC_LINE
    _EXC_LINE = _EXC_LINE or re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)|[\w.]*Warning)\b.*")
    lines = [l.strip() for l in (text or "").splitlines() if l.strip()]
    reason = "other"
    for name, needles in _REASONS:
        if any(n in (text or "") for n in needles):
            reason = name
            break
    useful = [l for l in lines if _EXC_LINE.match(l)]
    line = (useful[-1] if useful else (lines[-1] if lines else ""))[:500]
    return reason, line


def failure(exc=None, text="", captured=""):
    """A classified failure record: reason, first useful line, and the full text for -v."""
    import traceback
    if exc is not None:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    full = (captured + "\n" + text).strip() if captured else text
    reason, line = classify(full)
    if exc is not None:
        line = first_line(exc)
    return {"reason": reason, "line": line, "traceback": full[-4000:]}


def guarded_import(name, key=None, facts=None):
    """Import ``name`` with stderr captured; (module, None) or (None, failure record).
    ``key``, ``facts``: where a crash or hang of this import is recorded (see ``step``)."""
    import contextlib
    import importlib
    import io
    import warnings
    step("import " + name, key, facts)
    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name), None
    except BaseException as exc:  # SystemExit and friends from a broken package too
        if isinstance(exc, KeyboardInterrupt):
            raise
        return None, failure(exc, captured=buf.getvalue())


def dist_version(*names):
    """(name, version) of the first of ``names`` that is installed, else (None, None)."""
    from importlib import metadata
    for name in names:
        try:
            return name, metadata.version(name)
        except Exception:
            continue
    return None, None


def tensorboard_without_tensorflow():
    """Make TensorBoard use its TensorFlow stub, through its own switch (the module
    ``tensorboard.compat.notf``, as in its //tensorboard/compat:no_tensorflow build).
    TensorBoard and torch.utils.tensorboard otherwise import all of TensorFlow when it
    is installed; the tensorflow probe already does, in parallel. Returns whether
    TensorFlow is installed (and so was kept out)."""
    import importlib.util
    import types
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    return importlib.util.find_spec("tensorflow") is not None


def canonical(name):
    """A distribution name normalised as PEP 503 does (tb-nightly == TB_Nightly)."""
    return re.sub(r"[-_.]+", "-", name).lower()


class Headers(dict):
    """Metadata headers, name (any case) -> values; ``h["Name"]`` is the first value or
    None, ``h.get_all("Requires-Dist")`` all of them or None (as email.message.Message)."""

    def __getitem__(self, name):
        values = dict.get(self, name.lower())
        return values[0] if values else None

    def get_all(self, name):
        return dict.get(self, name.lower())


def parse_headers(text):
    """The RFC 822 header block of a METADATA/PKG-INFO text (folded lines joined as the
    email package's compat32 policy joins them). Hand-written: email's parser costs
    more than the rest of reading a distribution, and the header block is all we read."""
    found = Headers()
    last = None
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line:  # a line of blanks is a folded line's, as in a PKG-INFO's Description
            break
        if line[0] in " \t":
            if last is not None:
                last[-1] += "\n" + line
            continue
        name, colon, value = line.partition(":")
        if not colon:
            continue
        last = found.setdefault(name.strip().lower(), [])
        last.append(value.strip())
    return found


_LISTINGS = {}


def read_meta(dist, name):
    """``dist.read_text(name)``, without trying files its metadata folder does not have."""
    path = getattr(dist, "_path", None)
    if path is not None:
        key = str(path)
        if key not in _LISTINGS:
            try:
                _LISTINGS[key] = frozenset(os.listdir(key))
            except OSError:  # an egg-info file, a zip: ask the distribution
                _LISTINGS[key] = None
        if _LISTINGS[key] is not None:
            if name not in _LISTINGS[key]:
                return None
            try:  # as read_text does, without building a Path
                with open(os.path.join(key, name), encoding="utf-8") as fh:
                    return fh.read()
            except (OSError, UnicodeDecodeError):
                return None
    return dist.read_text(name)


def headers(dist):
    """The metadata headers, parsed once and without the long description
    (importlib.metadata re-parses the whole file for every field it returns)."""
    text = read_meta(dist, "METADATA") or read_meta(dist, "PKG-INFO") or ""
    path = getattr(dist, "_path", None)
    if not text and path is not None and os.path.isfile(str(path)):  # an egg-info file is the PKG-INFO itself
        with open(str(path), encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    return parse_headers(text)


def top_level_names(dist):
    """The importable top-level names a distribution installs (top_level.txt, else RECORD)."""
    text = read_meta(dist, "top_level.txt")
    if text:
        return sorted({n.strip().split("/")[0] for n in text.splitlines() if n.strip()})
    record = read_meta(dist, "RECORD")  # read directly: dist.files builds an object per line
    paths = ([line.split(",", 1)[0] for line in record.splitlines()] if record is not None
             else [str(f) for f in dist.files or ()])
    names = set()
    for path in paths:
        parts = path.replace("\\", "/").split("/")
        first = parts[0]
        if not first or first == ".." or first.endswith((".dist-info", ".egg-info", ".data")) or first == "__pycache__":
            continue
        if len(parts) == 1:
            if first.endswith(".py"):
                names.add(first[:-3])
            continue
        names.add(first)
    return sorted(n for n in names if n.isidentifier())


def _record_rows(record):
    """RECORD's rows (path, hash, size); csv only for the rare quoted line (a comma in a path)."""
    import csv
    for line in record.splitlines():
        if '"' in line:
            yield from csv.reader([line])
        elif line:
            yield line.split(",")


def integrity(dist, how="files"):
    """The files ``dist``'s RECORD lists that are missing on disk. ``how``: "files" (each
    file), "hashes" (each file, and those whose sha256 differs from RECORD: compiled
    .pyc files are not compared, Python rewrites them) or "folders" (--quick: the files
    of every listed folder that is gone). None without a RECORD (conda, egg-info)."""
    import base64
    import hashlib
    record = read_meta(dist, "RECORD")
    if record is None:
        return None
    path = getattr(dist, "_path", None)
    base = os.path.dirname(str(path)) if path is not None else None  # RECORD paths are relative to it
    exists, isdir, folders = os.path.exists, os.path.isdir, {}
    missing, changed, files = [], [], 0
    for row in _record_rows(record):
        if not row or row[0].endswith(".pyc") or "__pycache__" in row[0]:
            continue
        files += 1
        full = os.path.join(base, row[0]) if base is not None else str(dist.locate_file(row[0]))
        if how == "folders":
            folder = os.path.dirname(full)
            if folder not in folders:
                folders[folder] = isdir(folder)
            if not folders[folder]:
                missing.append(row[0])
        elif not exists(full):
            missing.append(row[0])
        elif how == "hashes" and len(row) > 1 and row[1].startswith("sha256="):
            digest = hashlib.sha256()
            try:
                with open(full, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(chunk)
            except OSError:
                continue
            if base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode() != row[1][7:]:
                changed.append(row[0])
    missing.sort(key=lambda p: p.startswith(".."))  # the package's own files first, then scripts
    meta = headers(dist)
    return {"name": meta["Name"], "version": meta["Version"], "files": files, "hashed": how == "hashes",
            "checked": how, "missing": missing[:20], "missing_count": len(missing), "changed": changed[:20],
            "changed_count": len(changed)}


def dist_integrity(*names):
    """``integrity`` with hashes of the first of ``names`` installed (after an import failed)."""
    from importlib import metadata
    for name in names:
        try:
            return integrity(metadata.distribution(name), "hashes")
        except metadata.PackageNotFoundError:
            continue
        except Exception:
            return None
    return None


def loader_log(wanted):
    """A logging handler that keeps the messages ``wanted`` accepts: TensorBoard's event
    loader swallows a cut-short or corrupt record after logging it. (logging is imported
    here, not by every probe that loads this module.)"""
    import logging

    class LoaderLog(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if wanted(message):
                self.messages.append(message)

    handler = LoaderLog(logging.DEBUG)
    handler.messages = []
    return handler
