# Shared by the training jobs (train_torch.py, train_tf.py), which import it;
# run BY THE TARGET interpreter. Phase
# bookkeeping, progress marks (so tbdoctor knows how far a job that died got), and one-line reasons and fixes for import and write errors. Stdlib only.
import errno
import json
import math
import os
import shlex
import subprocess
import sys
import threading
import time

from ._common import emit, first_line

PHASE_MARK = "@@tbdoctor-phase@@"  # a phase begins
PHASE_DONE_MARK = "@@tbdoctor-phase-done@@"  # a phase ended: its JSON follows
PROGRESS_MARK = "@@tbdoctor-progress@@"  # training progress: {"step", "steps", "loss"} follows
PROGRESS_EVERY = 0.1  # seconds between progress marks
JOB_PHASES = ("import", "data", "train", "log")
THREAD_ERRORS = []  # exceptions raised in writer threads (tensorboardX writes asynchronously)


def _thread_hook(args):
    THREAD_ERRORS.append(args.exc_value)


threading.excepthook = _thread_hook


def command(*argv):
    if os.name == "nt":
        return subprocess.list2cmdline([str(a) for a in argv])
    return " ".join(shlex.quote(str(a)) for a in argv)


def pip_install(requirement):
    return command(sys.executable, "-m", "pip", "install", requirement)


def check_fix():
    return "run `tbdoctor check --python %s` for the cause" % sys.executable


def import_fix(exc, module, requirement):
    """pip install when the module is absent; otherwise point at tbdoctor check."""
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == module:
        return pip_install(requirement)
    return check_fix()


def write_error(exc, where):
    """(reason, fix) for an error writing the event files under ``where``."""
    code = getattr(exc, "errno", None)
    path = getattr(exc, "filename", None) or where
    text = first_line(exc)
    strerror = getattr(exc, "strerror", None) or text
    other = "pass --logdir with a directory you can write to"
    if type(exc).__name__ == "TBNotInstalledError" or isinstance(exc, ImportError):
        return "writing the event files needs the tensorboard package, which is missing (%s)" % text, \
            pip_install("tensorboard")
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)) or "No space left" in text:
        return ("disk full while writing the event files in %s (%s)" % (path, strerror),
                "free space on that file system, or pass --logdir on another one")
    if code == errno.EFBIG:
        return ("file size limit reached while writing %s (%s)" % (path, strerror),
                "raise the limit (`ulimit -f unlimited`) or free space")
    if code in (errno.ENOTDIR, errno.EEXIST) or "Not a directory" in text:
        probe = path
        while probe and not os.path.exists(probe) and os.path.dirname(probe) != probe:
            probe = os.path.dirname(probe)
        if probe and os.path.isfile(probe):
            return ("%s is a file where the log directory should be" % probe,
                    "rename or remove that file, or " + other)
    if code == errno.EROFS or "Read-only file system" in text:
        return ("%s is on a read-only file system (%s)" % (path, strerror), other)
    if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return ("the log directory is not writable: %s (%s)" % (path, strerror),
                other + ", or fix its permissions")
    return ("cannot write the event files in %s: %s" % (where, text), other)


class PhaseLog:
    """The job's phases, in order, each with status, seconds, detail and fix."""

    def __init__(self):
        self.phases = {}
        self.last_progress = 0.0

    def begin(self, name):
        sys.stdout.write("\n%s%s\n" % (PHASE_MARK, name))
        sys.stdout.flush()
        return time.perf_counter()

    def done(self, name, start, status="pass", detail="", fix="", seconds=None):
        if seconds is None:
            seconds = time.perf_counter() - start if start is not None else 0.0
        self.phases[name] = {"name": name, "status": status, "seconds": round(seconds, 3),
                             "detail": detail, "fix": fix}
        sys.stdout.write("\n%s%s\n" % (PHASE_DONE_MARK, json.dumps(self.phases[name])))
        sys.stdout.flush()

    def progress(self, step, steps, loss):
        """A progress mark for the live display, at most every PROGRESS_EVERY s (and the last step)."""
        now = time.perf_counter()
        if now - self.last_progress < PROGRESS_EVERY and step != steps - 1:
            return
        self.last_progress = now
        loss = loss if math.isfinite(loss) else str(loss)
        sys.stdout.write("\n%s%s\n" % (PROGRESS_MARK, json.dumps({"step": step + 1, "steps": steps, "loss": loss})))
        sys.stdout.flush()

    def failed(self, name, start, reason, fix, seconds=None):
        self.done(name, start, "fail", reason, fix, seconds)

    def import_failed(self, start, exc, module):
        """The import phase failed on ``module`` (its own requirement): the others are skipped."""
        self.failed("import", start, "%s cannot be imported: %s" % (module, first_line(exc)),
                    import_fix(exc, module, module))
        for name in ("data", "train", "log"):
            self.skip(name, "%s could not be imported" % module)

    def skip(self, name, reason):
        self.phases.setdefault(name, {"name": name, "status": "skipped", "seconds": 0.0,
                                      "detail": reason, "fix": ""})

    def crashed(self, exc):
        """An unforeseen exception: fail the first phase not yet reported."""
        running = [p for p in JOB_PHASES if p not in self.phases]
        self.failed(running[0] if running else "log", None, "the job failed: " + first_line(exc), check_fix())

    def ordered(self):
        return [self.phases[p] for p in JOB_PHASES if p in self.phases]


def converged(ctx, w, b, loss):
    """The reference criterion: parameters within the tolerance, loss below the bound."""
    off = max(abs(w - float(ctx["weight"])), abs(b - float(ctx["bias"])))
    return off <= float(ctx["tolerance"]) and loss < float(ctx["loss_bound"])


def not_converged(ctx, w, b, loss):
    return ("did not converge: weight %.4f, bias %.4f, loss %.5f (need within %g of %g and %g, loss below %g)"
            % (w, b, loss, float(ctx["tolerance"]), ctx["weight"], ctx["bias"], float(ctx["loss_bound"])))


def diverged(value, step, lr):
    return ("the loss became %s at step %d (learning rate %g): training diverged" % (value, step, lr),
            "lower the learning rate (--lr; the reference is 0.1)")


IMAGE_SIZE = (48, 64)  # height, width of the fitted-line picture


def fit_picture(xs, ys, w, b):
    """A uint8 CHW picture of the fitted line (red) over the first 256 points (grey), drawn with NumPy."""
    import numpy as np
    height, width = IMAGE_SIZE
    picture = np.full((3, height, width), 255, dtype=np.uint8)
    xs, ys = list(xs)[:256], list(ys)[:256]
    low, high = min(ys + [b - abs(w)]), max(ys + [b + abs(w)])

    def row(value):
        return min(height - 1, max(0, int(round((high - value) / ((high - low) or 1.0) * (height - 1)))))
    for xv, yv in zip(xs, ys):
        col = min(width - 1, max(0, int(round((xv + 1) / 2 * (width - 1)))))
        picture[:, row(yv), col] = 160
    for col in range(width):
        r = row(w * (col / (width - 1.0) * 2 - 1) + b)
        picture[:, r, col] = (220, 30, 30)
    return picture


def finish(out, log):
    """Emit the report and leave at once: a writer queue whose thread died
    (disk full) would otherwise block interpreter exit."""
    out["phases"] = log.ordered()
    emit(out)
    sys.stderr.flush()
    os._exit(0)
