# Reads a run directory back with TensorBoard's own event-file loader, run BY
# THE TARGET interpreter with _common.py (it needs the target's tensorboard).
# Reports, per run (sub-directory), every scalar (step -> value), which
# histogram / image / text / graph / hparams records exist and what they hold
# (bucket counts summed, image sizes from the decoded PNG, the text, the graph's
# ops, the hparams metrics), and per file how many events it held and whether
# the loader hit a truncated or corrupt record.
# Python 3.8+.
import logging
import os
import struct
import zlib

from ._common import context, emit, first_line, loader_log, tensorboard_without_tensorflow


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
    handler = loader_log(lambda m: "Truncated record" in m or "DataLoss" in m or "crc" in m)
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    runs, files = {}, []
    for folder, _dirs, names in sorted(os.walk(root)):
        for name in sorted(n for n in names if "tfevents" in n):
            path = os.path.join(folder, name)
            rel = os.path.relpath(folder, root).replace(os.sep, "/")
            run = runs.setdefault(rel, {"scalars": {}, "histograms": [], "text": [], "graph": False, "hparams": False,
                                        "histogram_counts": {}, "images": {}, "text_values": {}, "graph_ops": [],
                                        "hparams_metrics": []})
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
        graph_ops(event.graph_def, run)
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
            continue
        if plugin in ("histograms", "text") and value.tag not in run[plugin]:
            run[plugin].append(value.tag)
        if plugin == "histograms":
            buckets = tensor_util.make_ndarray(value.tensor)
            total = float(buckets[:, 2].sum()) if buckets.size else 0.0
            run["histogram_counts"].setdefault(value.tag, []).append([event.step, total])
        elif plugin == "text":
            texts = tensor_util.make_ndarray(value.tensor).reshape(-1)
            run["text_values"][value.tag] = texts[0].decode("utf-8", "replace") if len(texts) else ""
        elif plugin == "images":
            blobs = tensor_util.make_ndarray(value.tensor).reshape(-1)
            width, height = int(blobs[0]), int(blobs[1])
            for blob in blobs[2:]:
                run["images"].setdefault(value.tag, []).append([event.step, width, height] + png_size(blob))
        elif plugin == "hparams":
            run["hparams"] = True
            hparams_metrics(value.metadata.plugin_data.content, run)
        elif plugin == "graphs":
            run["graph"] = True


def png_size(data):
    """[width, height, ""] of a PNG decoded with zlib, or [0, 0, why it does not decode]."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return [0, 0, "not a PNG"]
    pos, header, idat = 8, None, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if zlib.crc32(kind + chunk) & 0xFFFFFFFF != struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]:
            return [0, 0, "bad CRC in the %s chunk" % kind.decode("ascii", "replace")]
        if kind == b"IHDR":
            header = struct.unpack(">IIBB", chunk[:10])
        elif kind == b"IDAT":
            idat.append(chunk)
        pos += 12 + length
    if header is None or not idat:
        return [0, 0, "no image header or data"]
    width, height, depth, colour = header
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 0)
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        return [0, 0, "the pixel data does not inflate: %s" % exc]
    if len(raw) != height * (1 + (width * channels * depth + 7) // 8):
        return [0, 0, "%d bytes of pixels for %dx%d" % (len(raw), width, height)]
    return [width, height, ""]


def graph_ops(data, run):
    try:
        from tensorboard.compat.proto import graph_pb2
        graph = graph_pb2.GraphDef.FromString(data)
    except Exception:
        return
    for node in graph.node:
        if node.op not in run["graph_ops"]:
            run["graph_ops"].append(node.op)


def hparams_metrics(content, run):
    """The metric tags an hparams experiment record declares."""
    try:
        from tensorboard.plugins.hparams import plugin_data_pb2
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
    except Exception:
        return
    if data.HasField("experiment"):
        for info in data.experiment.metric_infos:
            if info.name.tag not in run["hparams_metrics"]:
                run["hparams_metrics"].append(info.name.tag)


main()
