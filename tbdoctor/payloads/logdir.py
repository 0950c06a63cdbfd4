# The user's logdir as TensorBoard sees it, run BY THE TARGET interpreter with
# _common.py: every event file read with TensorBoard's own loader (runs, tags per
# plugin through TensorBoard's own data_compat, steps, last write), each file's
# records and whether the loader stopped at a cut-short or corrupt record; with no
# event file, the nearby folders that have some; for s3:// gs:// hdfs:// logdirs,
# which file-system modules the environment has. Nothing is written. Python 3.8+.
import logging
import os
import time

from ._common import context, emit, first_line, loader_log, tensorboard_without_tensorflow

_FS_MODULES = ("tensorflow", "tensorflow_io", "boto3", "fsspec", "s3fs", "gcsfs", "pyarrow")
_MAX_RUNS_KEPT = 200  # runs listed in the facts; all are counted
_NEARBY_DIRS = 4000  # folders looked at in all, when searching nearby


def is_event_file(name):
    return "tfevents" in name


def modules():
    import importlib.util
    found = {}
    for name in _FS_MODULES:
        try:
            found[name] = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found[name] = False
    return found


def read_file(path, loader_mod, data_compat, log):
    """(file facts, {tag: [plugin, min step, max step, count]}, last wall time)."""
    del log.messages[:]
    info = {"path": path, "bytes": 0, "mtime": 0.0, "records": 0, "headers": 0, "summaries": 0, "problem": "",
            "message": ""}
    tags, last = {}, 0.0
    try:
        info["bytes"], info["mtime"] = os.path.getsize(path), os.path.getmtime(path)
        for event in loader_mod.EventFileLoader(path).Load():
            info["records"] += 1
            last = max(last, event.wall_time)
            if event.HasField("file_version"):
                info["headers"] += 1
            if not event.HasField("summary"):
                continue
            info["summaries"] += 1
            for value in event.summary.value:
                try:
                    value = data_compat.migrate_value(value)
                except Exception:
                    pass
                plugin = value.metadata.plugin_data.plugin_name or "unknown"
                seen = tags.setdefault(value.tag, [plugin, event.step, event.step, 0])
                seen[1], seen[2], seen[3] = min(seen[1], event.step), max(seen[2], event.step), seen[3] + 1
    except Exception as exc:
        info["problem"], info["message"] = "unreadable", first_line(exc)
    if log.messages and not info["problem"]:
        message = log.messages[0]  # "Truncated record in PATH (b'PATH' failed event crc32 check)"
        inner = message[message.find("(") + 1:message.rfind(")")] if "(" in message else message
        message = inner.replace("b'%s' " % path, "").replace(path, "the file")
        info["problem"] = "corrupt" if "crc32 check" in message else "truncated"
        info["message"] = message
    return info, tags, last


def read_local(root, out):
    tensorboard_without_tensorflow()  # the loader needs no TensorFlow; importing it costs seconds
    try:
        from tensorboard import data_compat
        from tensorboard.backend.event_processing import event_file_loader
        from tensorboard.util import tb_logging
        import tensorboard
    except Exception as exc:
        out["error"] = first_line(exc)
        name = getattr(exc, "name", None) or ""
        out["missing"] = isinstance(exc, ImportError) and name == "tensorboard"  # not a partial install
        return
    out["tensorboard"] = getattr(tensorboard, "__version__", None)
    log = loader_log(lambda m: m.startswith("Truncated record"))  # event_file_loader's words for a DataLossError
    logger = tb_logging.get_logger()
    logger.addHandler(log)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    runs, files, merged, count = [], [], [], 0
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        events = sorted(n for n in names if is_event_file(n))
        if not events:
            continue
        count += 1
        name = os.path.relpath(folder, root).replace(os.sep, "/")
        run = {"name": name, "files": len(events), "records": 0, "tags": {}, "steps": None, "last_write": 0.0}
        by_tag = {}  # tag -> [(file, min, max)] to see writers that overlap in one run
        for event_name in events:
            info, tags, last = read_file(os.path.join(folder, event_name), event_file_loader, data_compat, log)
            info["run"] = name
            files.append(info)
            run["records"] += info["records"]
            run["last_write"] = max(run["last_write"], last, info["mtime"])
            for tag, (plugin, low, high, _n) in tags.items():
                run["tags"].setdefault(plugin, [])
                if tag not in run["tags"][plugin]:
                    run["tags"][plugin].append(tag)
                steps = run["steps"] or [low, high]
                run["steps"] = [min(steps[0], low), max(steps[1], high)]
                by_tag.setdefault(tag, []).append((event_name, low, high))
        for tag, spans in sorted(by_tag.items()):
            spans.sort(key=lambda s: s[1])
            overlap = [(a, b) for a, b in zip(spans, spans[1:]) if b[1] <= a[2]]
            if overlap:
                merged.append({"run": name, "tag": tag, "files": [overlap[0][0][0], overlap[0][1][0]],
                               "steps": [overlap[0][1][1], overlap[0][0][2]]})
                break
        if len(runs) < _MAX_RUNS_KEPT:
            runs.append(run)
    noted = [f for f in files if f["problem"] or not f["summaries"] or f["headers"] > 1]  # the rules' cases
    out.update(runs=runs, run_count=count, files=noted[:50], file_count=len(files), merged=merged[:20])


def nearby(root, cwd):
    """Folders near ``root`` that hold event files: its parents (and so its siblings),
    ./runs (the PyTorch writer's default) and the current directory."""
    candidates, seen = [], set()
    parent = os.path.dirname(root.rstrip(os.sep)) or root
    for base in (parent, os.path.dirname(parent), os.path.join(cwd, "runs"), cwd):
        if base and os.path.isdir(base) and base not in seen:
            seen.add(base)
            candidates.append(base)
    found, visited = [], 0
    for base in candidates:
        depth0 = base.rstrip(os.sep).count(os.sep)
        for folder, dirs, names in os.walk(base):
            visited += 1
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("node_modules", "site-packages"))
            if folder.count(os.sep) - depth0 >= 4:
                dirs[:] = []
            n = sum(1 for name in names if is_event_file(name))
            if n and folder not in [f["dir"] for f in found]:
                found.append({"dir": folder, "files": n, "searched": base})
            if visited > _NEARBY_DIRS or len(found) >= 20:
                return found
        if found:  # the nearest place with event files
            return found
    return found


def main():
    ctx = context()
    logdir = ctx["logdir"]
    scheme = logdir.split("://", 1)[0].lower() if "://" in logdir else ""
    out = {"logdir": logdir, "scheme": scheme, "read_at": time.time(), "modules": modules(),
           "runs": [], "run_count": 0, "files": [], "file_count": 0, "merged": [], "nearby": [], "error": None}
    if scheme:
        emit(out)  # a remote logdir: what can read it is in "modules"; nothing is fetched
        return
    read_local(logdir, out)
    if not out["error"] and not out["file_count"]:
        out["nearby"] = nearby(logdir, ctx.get("cwd") or os.getcwd())
    emit(out)


main()
