# Reads a run directory back with TensorBoard's own event-file loader, run BY
# THE TARGET interpreter after _common.py (it needs the target's tensorboard).
# Reports, per run (sub-directory), every scalar (step -> value) and which
# histogram / text / graph / hparams records exist, and per file how many
# events it held and whether the loader hit a truncated or corrupt record.
# Python 3.8+.
import logging


class TruncationLog(logging.Handler):
    """The loader swallows a truncated or corrupt record after logging it; keep that."""

    def __init__(self):
        logging.Handler.__init__(self, logging.DEBUG)
        self.messages = []

    def emit(self, record):
        message = record.getMessage()
        if "Truncated record" in message or "DataLoss" in message or "crc" in message:
            self.messages.append(message)


def main():
    ctx = context()
    root = ctx["run_dir"]
    tensorboard_without_tensorflow()  # the loader needs no TensorFlow; importing it costs seconds
    try:
        from tensorboard.backend.event_processing import event_file_loader
        from tensorboard.util import tensor_util
        import tensorboard
    except Exception as exc:
        missing = isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == "tensorboard"
        emit({"error": first_line(exc), "missing": missing})
        return
    try:  # the loader logs through tensorboard's own logger
        from tensorboard.util import tb_logging
        log = tb_logging.get_logger()
    except Exception:
        log = logging.getLogger("tensorboard")
    handler = TruncationLog()
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    runs, files = {}, []
    for folder, _dirs, names in sorted(os.walk(root)):
        for name in sorted(n for n in names if "tfevents" in n):
            path = os.path.join(folder, name)
            rel = os.path.relpath(folder, root).replace(os.sep, "/")
            run = runs.setdefault(rel, {"scalars": {}, "histograms": [], "text": [], "graph": False, "hparams": False})
            del handler.messages[:]
            count, error = 0, ""
            try:
                for event in event_file_loader.EventFileLoader(path).Load():
                    count += 1
                    read_event(event, run, tensor_util)
            except Exception as exc:
                error = first_line(exc)
            if handler.messages and not error:
                error = handler.messages[0].replace(path, "").strip()
            files.append({"path": path, "run": rel, "bytes": os.path.getsize(path), "events": count, "error": error})
    emit({"tensorboard": tensorboard.__version__, "runs": runs, "files": files})


def read_event(event, run, tensor_util):
    if event.HasField("graph_def"):
        run["graph"] = True
    if not event.HasField("summary"):
        return
    for value in event.summary.value:
        plugin = value.metadata.plugin_data.plugin_name
        if plugin == "scalars":
            if value.HasField("tensor"):
                number = tensor_util.make_ndarray(value.tensor).item()
            else:
                number = value.simple_value
            run["scalars"].setdefault(value.tag, []).append([event.step, float(number)])
        elif plugin in ("histograms", "text") and value.tag not in run[plugin]:
            run[plugin].append(value.tag)
        elif plugin == "hparams":
            run["hparams"] = True
        elif plugin == "graphs":
            run["graph"] = True


main()
