# The reference training job for TensorFlow, run BY THE TARGET interpreter with
# _common.py and _job.py: the same regression as train_torch.py, logged with tf.summary into
# the run "tf". It imports tensorflow but never dies on it: every failure becomes
# a failed phase with a one-line reason and a fix. Python 3.8+.
import math
import os
import sys
import time

from ._common import context, first_line
from ._job import (
    PhaseLog, check_fix, converged, diverged, finish, fit_picture,
    not_converged, write_error,
)

class Job(PhaseLog):
    def __init__(self, ctx):
        PhaseLog.__init__(self)
        self.ctx = ctx
        self.out = {"framework": "tf", "rank": 0, "world_size": 1, "versions": {}, "written": {}, "notes": []}

    def run(self):
        ctx = self.ctx
        t = self.begin("import")
        try:
            import tensorflow as tf
        except Exception as exc:
            return self.import_failed(t, exc, "tensorflow")
        self.out["versions"]["tensorflow"] = tf.__version__
        try:
            from tensorboard.plugins.hparams import api as hp
        except Exception as exc:
            hp = None
            self.out["notes"].append("no hparams record: tensorboard's hparams API is unavailable (%s)" % first_line(exc))
        self.done("import", t, detail="tensorflow %s" % tf.__version__)

        t = self.begin("data")
        try:
            device = self.choose_device(tf)
        except RuntimeError as exc:
            self.failed("data", t, str(exc), check_fix() + ", or pass --device cpu")
            self.skip("train", "no usable device")
            self.skip("log", "no usable device")
            return
        n, seed = int(ctx["samples"]), int(ctx["seed"])
        with tf.device(device):
            gen = tf.random.Generator.from_seed(seed)
            x = gen.uniform([n, 1], -1.0, 1.0)
            y = float(ctx["weight"]) * x + float(ctx["bias"]) + gen.normal([n, 1]) * float(ctx["noise"])
        name = "cuda:" + device.split(":")[-1] if "GPU" in device else "cpu"
        self.out["device"] = name
        self.done("data", t, detail="%d samples on %s" % (n, device))
        self.train(tf, hp, device, x, y)

    def choose_device(self, tf):
        want = self.ctx.get("device") or "auto"
        gpus = tf.config.list_physical_devices("GPU")
        if want == "cpu":
            return "/CPU:0"
        if want.startswith("cuda"):
            index = int(want.split(":")[1]) if ":" in want else 0
            if index >= len(gpus):
                raise RuntimeError("--device %s: TensorFlow sees %d GPU(s)" % (want, len(gpus)))
            return "/GPU:%d" % index
        if want != "auto":
            raise RuntimeError("--device %s: the TensorFlow job runs on cpu or cuda[:N]" % want)
        if gpus:
            return "/GPU:0"
        gpu = next((p for p in ("/dev/nvidia0", "/proc/driver/nvidia/version") if os.path.exists(p)), None)
        if gpu:
            raise RuntimeError("an NVIDIA GPU is present (%s) but TensorFlow cannot use it (built with CUDA: %s)"
                               % (gpu, tf.test.is_built_with_cuda()))
        return "/CPU:0"

    def train(self, tf, hp, device, x, y):
        ctx = self.ctx
        t = self.begin("train")
        steps, lr = int(ctx["steps"]), float(ctx["lr"])
        every = max(1, int(ctx.get("histogram_every", 10)))
        root = os.path.join(ctx["run_dir"], "tf")
        record = {"scalars": {}, "histograms": [], "text": [], "graph": False, "hparams": False, "images": {},
                  "histogram_counts": {}, "text_values": {}}
        log = {"seconds": 0.0, "error": None}

        def do(fn):
            if log["error"]:
                return False
            start = time.perf_counter()
            try:
                fn()
                return True
            except Exception as exc:
                log["error"] = write_error(exc, root)
                return False
            finally:
                log["seconds"] += time.perf_counter() - start

        writer = []
        do(lambda: (os.makedirs(root, exist_ok=True), writer.append(tf.summary.create_file_writer(root))))
        with tf.device(device):
            init = tf.random.Generator.from_seed(int(ctx["seed"]) + 1)
            w = tf.Variable(init.uniform([1, 1], -1.0, 1.0))
            b = tf.Variable(tf.zeros([1]))

            @tf.function
            def step_fn():
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y))
                gw, gb = tape.gradient(loss, [w, b])
                w.assign_sub(lr * gw)
                b.assign_sub(lr * gb)
                return loss, gw, gb

            def scalar(tag, value, step):
                if do(lambda: tf.summary.scalar(tag, value, step=step)):
                    record["scalars"].setdefault(tag, []).append([step, value])

            if writer:
                with writer[0].as_default():
                    if hasattr(tf.summary, "graph") and do(lambda: tf.summary.graph(step_fn.get_concrete_function().graph)):
                        record["graph"], record["graph_op"] = True, "MatMul"
                    text = "tensorflow %s, python %s, device %s" % (tf.__version__, sys.version.split()[0], device)
                    if do(lambda: tf.summary.text("environment", text, step=0)):
                        record["text"].append("environment")
                        record["text_values"]["environment"] = text
            losses = []
            for step in range(steps):
                loss, gw, gb = step_fn()
                value = float(loss.numpy())
                losses.append(value)
                self.progress(step, steps, value)
                if writer:
                    with writer[0].as_default():
                        for tag, v in (("loss", value), ("weight", float(w.numpy()[0, 0])),
                                       ("bias", float(b.numpy()[0])), ("lr", lr)):
                            scalar(tag, v, step)
                        if step % every == 0 or step == steps - 1:
                            for tag, tensor in (("params/weight", w), ("params/bias", b), ("grads/weight", gw), ("grads/bias", gb)):
                                if do(lambda: tf.summary.histogram(tag, tensor, step=step)):
                                    if tag not in record["histograms"]:
                                        record["histograms"].append(tag)
                                    record["histogram_counts"].setdefault(tag, []).append([step, int(tf.size(tensor))])
                if not math.isfinite(value):
                    self.out["losses"] = losses
                    self.failed("train", t, *diverged(value, step, lr))
                    break
            final = float(tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y)).numpy())
        wv, bv = float(w.numpy()[0, 0]), float(b.numpy()[0])
        if "train" not in self.phases:
            self.out.update(params={"weight": wv, "bias": bv}, final_loss=final, steps=steps, losses=losses)
            seconds = time.perf_counter() - t - log["seconds"]
            if converged(ctx, wv, bv, final):
                self.done("train", t, detail="%d steps of SGD (lr %g): weight %.4f, bias %.4f, loss %.5f"
                          % (steps, lr, wv, bv, final), seconds=seconds)
            else:
                self.failed("train", t, not_converged(ctx, wv, bv, final), "raise --steps or use the reference --lr 0.1",
                            seconds=seconds)
            if writer and hp is not None:
                with writer[0].as_default():
                    hparams = {"lr": lr, "steps": steps, "seed": int(ctx["seed"]), "device": device}
                    if do(lambda: hp.hparams(hparams, trial_id="tbdoctor-verify")):
                        record["hparams"] = True
                    for tag, value in (("hparam/final_loss", final), ("hparam/weight", wv), ("hparam/bias", bv)):
                        scalar(tag, value, steps)
                    picture = fit_picture(x.numpy().reshape(-1).tolist(), y.numpy().reshape(-1).tolist(), wv, bv)
                    hwc = picture.transpose(1, 2, 0)[None]  # tf.summary.image takes [k, h, w, c]
                    if do(lambda: tf.summary.image("fit", hwc, step=steps)):
                        record["images"] = {"fit": list(hwc.shape[1:])}
        if writer:
            do(writer[0].close)
        if log["error"]:
            self.failed("log", None, log["error"][0], log["error"][1], seconds=log["seconds"])
        elif writer:
            points = sum(len(p) for p in record["scalars"].values())
            self.done("log", None, detail="%d scalar points into run tf with tf.summary" % points, seconds=log["seconds"])
        self.out["written"] = {"tf": record} if writer else {}


def main():
    job = Job(context())
    try:
        job.run()
    except Exception as exc:  # a bug or an unforeseen failure: still one classified line
        job.crashed(exc)
    finish(job.out, job)


main()
