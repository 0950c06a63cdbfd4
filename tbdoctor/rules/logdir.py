"""Rules of the user's logdir as TensorBoard's own loader read it (facts["logdir"],
from ``tbdoctor logdir DIR`` or ``check --logdir DIR``): tensorboard.logdir-*. Pure."""

from __future__ import annotations

import os

from tbdoctor.findings import ERROR, OK, WARNING, Finding, quote_command
from tbdoctor.rules.common import manual, pip_install

MANY_RUNS = 1000  # TensorBoard re-reads every run every 5 s: thousands make it slow to show anything
# scheme -> (what reads it with TensorFlow installed, without; the packages to install without TensorFlow)
_READERS = {
    "s3": ("tensorflow-io", "boto3 (TensorBoard's own S3 reader) or fsspec + s3fs", ("boto3",)),
    "gs": ("TensorFlow itself", "fsspec + gcsfs", ("fsspec", "gcsfs")),
    "hdfs": ("tensorflow-io", "fsspec + pyarrow (with a Hadoop client)", ("fsspec", "pyarrow")),
}


def _command(path: str) -> str:
    return quote_command(["tensorboard", "--logdir", path])


def summary(facts: dict) -> list[Finding]:
    log = facts.get("logdir")
    if not log or log.get("scheme"):
        return []
    if log.get("error"):
        if log.get("missing"):
            return [Finding("tensorboard.logdir-unreadable", ERROR,
                            f"TensorBoard is not installed in this environment to read {log['logdir']}",
                            hint="Install it (or point --python at the environment you run `tensorboard` from).",
                            fixes=(pip_install(facts, "tensorboard"),))]
        return [Finding("tensorboard.logdir-unreadable", ERROR,
                        f"TensorBoard's loader cannot run to read {log['logdir']}: {log['error']}",
                        hint="Fix the TensorBoard install first (see the TensorBoard section of `tbdoctor check`).")]
    if not log.get("file_count"):
        return [_empty(log)]
    runs, tags = log.get("run_count", 0), sum(len(t) for r in log.get("runs", ()) for t in r["tags"].values())
    findings = [Finding("tensorboard.logdir", OK,
                        f"{log['logdir']}: {runs} run{'s' if runs != 1 else ''}, {tags} tag{'s' if tags != 1 else ''}, "
                        f"{log['file_count']} event file{'s' if log['file_count'] != 1 else ''} read by "
                        f"TensorBoard {log.get('tensorboard')}'s loader")]
    if runs >= MANY_RUNS:
        findings.append(Finding(
            "tensorboard.logdir-many-runs", WARNING, f"{runs} runs under {log['logdir']}",
            detail="TensorBoard loads and re-polls every run (every 5 s by default): with thousands the page "
                   "stays empty or slow for minutes and the server uses a lot of memory.",
            hint="Point --logdir at the sub-folder of the experiment you want to see (or name a few with "
                 "--logdir_spec), and raise --reload_interval."))
    return findings


def _empty(log: dict) -> Finding:
    near = log.get("nearby") or []
    detail = ("TensorBoard shows \"No dashboards are active for the current data set\": there is no "
              "events.out.tfevents.* file in this folder or below it.")
    if not near:
        return Finding("tensorboard.logdir-empty", ERROR, f"No event file under {log['logdir']}",
                       detail=detail + " None was found nearby either (its parents, ./runs, the current directory).",
                       hint="Check the log_dir your SummaryWriter writes to (torch.utils.tensorboard's default is "
                            "./runs/<date>_<host> in the directory the script ran in), and that it calls flush() "
                            "or close().")
    root = os.path.commonpath([n["dir"] for n in near])
    listing = "; ".join(f"{n['dir']} ({n['files']} file{'s' if n['files'] != 1 else ''})" for n in near[:5])
    return Finding("tensorboard.logdir-empty", ERROR, f"No event file under {log['logdir']}; there are some in {root}",
                   detail=f"{detail} Found nearby: {listing}" + (f" and {len(near) - 5} more." if len(near) > 5 else "."),
                   hint="Point TensorBoard at the folder the writer used:", fixes=(manual(_command(root)),))


def files(facts: dict) -> list[Finding]:
    log = facts.get("logdir") or {}
    findings = []
    for f in log.get("files", ()):
        where = f"{f['path']} ({f['bytes']} bytes, run {f['run']})"
        if f.get("problem") == "corrupt":
            findings.append(Finding(
                "tensorboard.logdir-corrupt", ERROR, f"A corrupt record (CRC mismatch) in {f['path']}",
                detail=f"{where}: TensorBoard read {f['records']} record(s) and stops at record "
                       f"{f['records'] + 1}: {f['message']}. Nothing after it is shown.",
                hint="The file was changed after it was written (a copy or sync that altered it, a disk error, two "
                     "processes writing one file). Re-copy it from the source, or move it out of the logdir.",
                subject=f["path"]))
        elif f.get("problem") == "truncated":
            findings.append(Finding(
                "tensorboard.logdir-truncated", WARNING, f"{f['path']} is cut short after {f['records']} record(s)",
                detail=f"{where}: its last record is incomplete ({f['message']}). The writer was killed, or is still "
                       "running with the rest of the record in its buffer.",
                hint="Call writer.flush() or writer.close() when the job ends (a killed job loses what was not "
                     "flushed); a smaller flush_secs writes more often.", subject=f["path"]))
        elif f.get("problem"):
            findings.append(Finding("tensorboard.logdir-corrupt", ERROR, f"TensorBoard cannot read {f['path']}",
                                    detail=f"{where}: {f['message']}", subject=f["path"]))
        elif not f.get("summaries"):
            what = "is empty" if not f["records"] else f"holds only its header ({f['records']} record(s), no data)"
            findings.append(Finding(
                "tensorboard.logdir-no-data", WARNING, f"{f['path']} {what}",
                detail=f"{where}: a writer opened it but nothing it logged reached the file.",
                hint="The writer was never flushed or closed: call writer.flush() or writer.close() (or use it as a "
                     "context manager); its flush_secs (default 120 s) is how long data may wait in memory.",
                subject=f["path"]))
        if f.get("headers", 0) > 1:
            findings.append(Finding(
                "tensorboard.logdir-runs-merged", WARNING, f"{f['headers']} writers wrote into one event file, {f['path']}",
                detail=f"{where}: it starts over {f['headers']} times (one file_version header per writer); their "
                       "steps interleave in one run.",
                hint="Give each writer (each process, each restart) its own log_dir sub-folder; never append "
                     "to or concatenate event files.", subject=f["path"]))
    for m in log.get("merged", ()):
        findings.append(Finding(
            "tensorboard.logdir-runs-merged", WARNING,
            f"Two writers logged \"{m['tag']}\" into one run ({m['run']}) with overlapping steps",
            detail=f"{m['files'][0]} and {m['files'][1]} both have steps around {m['steps'][0]}-{m['steps'][1]}. "
                   "TensorBoard merges every event file of a folder into one run: the curves zig-zag.",
            hint="Give each run (or each restart, or each rank) its own log_dir sub-folder.", subject=m["run"]))
    return findings


def remote(facts: dict) -> list[Finding]:
    log = facts.get("logdir") or {}
    scheme = log.get("scheme")
    if not scheme:
        return []
    have = log.get("modules") or {}
    if scheme not in _READERS:
        return [Finding("tensorboard.logdir-scheme", WARNING, f"{scheme}:// is not a file system TensorBoard knows",
                        detail="Without TensorFlow, TensorBoard reads s3:// (boto3) and what fsspec handles.",
                        hint="Install the fsspec implementation of this scheme, or copy the logs to a local folder.")]
    with_tf, without_tf, packages = _READERS[scheme]
    if have.get("tensorflow"):
        ok = scheme == "gs" or have.get("tensorflow_io")
        reader, install = with_tf, ("tensorflow-io",)
    else:
        ok = {"s3": have.get("boto3") or (have.get("fsspec") and have.get("s3fs")),
              "gs": have.get("fsspec") and have.get("gcsfs"),
              "hdfs": have.get("fsspec") and have.get("pyarrow")}[scheme]
        reader, install = without_tf, packages
    if ok:
        return [Finding("tensorboard.logdir-scheme", OK, f"{scheme}:// logdirs can be read here ({reader})",
                        detail="Nothing was fetched: credentials and network are not checked.")]
    return [Finding("tensorboard.logdir-scheme", ERROR, f"This environment cannot read {scheme}:// logdirs",
                    detail=f"TensorBoard {'uses TensorFlow' if have.get('tensorflow') else 'runs without TensorFlow'}"
                           f" here; {scheme}:// then needs {reader}, which is not installed. TensorBoard shows no "
                           "data (or 'No recognized filesystem').",
                    hint="Install it into this environment.", fixes=(pip_install(facts, *install),))]


RULES = (summary, files, remote)
