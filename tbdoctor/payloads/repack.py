# Repack installed distributions into wheels, from the files their RECORD lists,
# so that a tbdoctor snapshot can reinstall exactly what was there, offline.
# Stdlib only, 3.8+. Context: {"names": [canonical names], "outdir": folder}; with "outdir"
# null it only says which of them cannot be repacked (writes nothing).
import base64
import csv
import hashlib
import json
import os
import re
import sys
import sysconfig
import zipfile

from importlib import metadata

from ._common import canonical, context, emit, first_line

_SKIP_INFO = ("RECORD", "INSTALLER", "REQUESTED", "RECORD.jws", "RECORD.p7s")  # pip writes these anew
_DEFAULT_WHEEL = "Wheel-Version: 1.0\nGenerator: tbdoctor\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def escape(text):
    return re.sub(r"[^\w\d.+]+", "_", text)


def entry_point_scripts(dist):
    """Script names pip generates from entry points (not copied: pip writes them again)."""
    names = set()
    for ep in dist.entry_points:
        if ep.group in ("console_scripts", "gui_scripts"):
            names.update({ep.name, ep.name + ".exe", ep.name + "-script.py", ep.name + "-script.pyw"})
    return names


def compressed_tag(wheel_meta):
    """The wheel file name's tag for every ``Tag:`` line (PEP 425 compressed tag set,
    e.g. py2.py3-none-any), so that pip accepts the file wherever the original applied."""
    parts = [[], [], []]
    for line in wheel_meta.splitlines():
        if line.startswith("Tag:"):
            fields = line.split(":", 1)[1].strip().split("-")
            if len(fields) == 3:
                for seen, value in zip(parts, fields):
                    if value not in seen:
                        seen.append(value)
    if not all(parts):
        return "py3-none-any"
    return "-".join(".".join(values) for values in parts)


def editable_source(dist):
    """The project folder of an editable install (PEP 610 direct_url.json), else None."""
    try:
        data = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return None
    if (data.get("dir_info") or {}).get("editable"):
        return data.get("url") or "a local folder"
    return None


def under(path, folder):
    return os.path.normcase(path).startswith(os.path.normcase(os.path.realpath(folder)) + os.sep)


def repack(dist, outdir):
    info_dir = os.path.realpath(str(dist._path))
    site = os.path.dirname(info_dir)
    info_name = os.path.basename(info_dir)
    if not info_name.endswith(".dist-info"):
        return None, "is installed as %s (a legacy setup.py install, not a wheel): cannot be repacked" % info_name
    record = dist.read_text("RECORD")
    if record is None:
        return None, "has no RECORD file: cannot tell which files are its own"
    editable = editable_source(dist)
    if editable:
        return None, ("is an editable install of %s: its code lives there, a copy would not be the same install"
                      % editable)
    wheel_meta = dist.read_text("WHEEL") or _DEFAULT_WHEEL
    tag = compressed_tag(wheel_meta)
    name, version = dist.metadata["Name"], dist.version
    if outdir is None:
        return {"name": name, "version": version}, None
    path = os.path.join(outdir, "%s-%s-%s.whl" % (escape(name), escape(version), tag))
    data_dir = info_name[: -len(".dist-info")] + ".data"
    scripts = os.path.realpath(sysconfig.get_path("scripts"))
    skip_scripts = entry_point_scripts(dist)
    rows, seen, missing = [], set(), []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for row in csv.reader(record.splitlines()):
            if not row or not row[0]:
                continue
            source = os.path.realpath(os.path.join(site, row[0]))
            if under(source, site):
                arc = os.path.relpath(source, site).replace(os.sep, "/")
                if arc.split("/")[0] == info_name and arc.split("/")[-1] in _SKIP_INFO:
                    continue
            elif under(source, scripts) and os.path.basename(source) in skip_scripts:
                continue
            elif under(source, sys.prefix):
                arc = data_dir + "/data/" + os.path.relpath(source, os.path.realpath(sys.prefix)).replace(os.sep, "/")
            else:
                missing.append(row[0] + " (outside the environment)")
                continue
            if arc in seen or "/__pycache__/" in "/" + arc:
                continue
            if not os.path.isfile(source):
                missing.append(row[0])
                continue
            seen.add(arc)
            with open(source, "rb") as fh:
                content = fh.read()
            info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (os.stat(source).st_mode & 0o777 | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content, compresslevel=1)
            digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
            rows.append((arc, "sha256=" + digest, str(len(content))))
        if info_name + "/WHEEL" not in seen:
            zf.writestr(info_name + "/WHEEL", wheel_meta)
            rows.append((info_name + "/WHEEL", "", ""))
        rows.append((info_name + "/RECORD", "", ""))
        zf.writestr(info_name + "/RECORD", "".join(",".join(r) + "\n" for r in rows))
    return {"name": name, "version": version, "wheel": path, "files": len(rows) - 1, "missing": missing}, None


ctx = context()
wanted = set(ctx["names"])
done, failed, skipped = [], {}, {}
for dist in metadata.distributions():  # sys.path order: the first of a name is the one pip acts on
    name = dist.metadata["Name"] if dist.metadata is not None else None
    key = canonical(name) if name else None
    if key not in wanted:
        continue
    wanted.discard(key)
    if not under(os.path.realpath(str(dist._path)), sys.prefix):
        skipped[key] = "outside this environment (pip leaves it alone)"
        continue
    try:
        result, why = repack(dist, ctx["outdir"])
    except OSError as exc:
        result, why = None, first_line(exc)
    if result:
        done.append(result)
    else:
        failed[key] = why
for key in wanted:
    skipped[key] = "not installed"
emit({"wheels": done, "failed": failed, "skipped": skipped})
