# The reference training job for PyTorch, run BY THE TARGET interpreter with
# _common.py and _job.py (so it tests that environment). Unlike the probes it imports
# torch and tensorboardX, but it never dies on them: every failure becomes a
# failed phase with a one-line reason and a fix. Python 3.8+.
#
# y = w*x + b + seeded Gaussian noise, one linear layer, full-batch SGD.
# Under torchrun (context "distributed") every rank trains on its shard with
# DistributedDataParallel, the parameters are gathered and compared, and only
# rank 0 writes to TensorBoard.
import math
import os
import sys
import time

from ._common import context, dist_version, first_line, tensorboard_without_tensorflow
from ._job import (
    PhaseLog, THREAD_ERRORS, check_fix, command, converged, diverged,
    finish, fit_picture, import_fix, not_converged, pip_install, write_error,
)


class Job(PhaseLog):
    def __init__(self, ctx):
        PhaseLog.__init__(self)
        self.ctx = ctx
        self.started = time.perf_counter()
        self.rank = int(os.environ.get("RANK", "0")) if ctx.get("distributed") else 0
        self.world = int(os.environ.get("WORLD_SIZE", "1")) if ctx.get("distributed") else 1
        self.out = {"framework": "torch", "rank": self.rank, "world_size": self.world,
                    "versions": {}, "written": {}, "notes": []}

    def run(self):
        t = self.begin("import")
        tensorboard_without_tensorflow()  # torch.utils.tensorboard would import all of TensorFlow (seconds)
        try:
            import torch
        except Exception as exc:
            return self.import_failed(t, exc, "torch")
        self.torch = torch
        self.out["versions"]["torch"] = torch.__version__
        self.out["versions"]["cuda"] = torch.version.cuda
        tbx, tbx_error = None, None
        try:
            import tensorboardX as tbx
            self.out["versions"]["tensorboardX"] = tbx.__version__
        except Exception as exc:
            tbx_error = exc
        self.utb = None
        try:
            from torch.utils.tensorboard import SummaryWriter as utb
            self.utb = utb
        except Exception as exc:
            self.out["notes"].append("torch.utils.tensorboard unavailable (%s): no sibling run"
                                     % first_line(exc))
        if tbx_error is not None:
            self.failed("import", t, "tensorboardX cannot be imported: " + first_line(tbx_error),
                        import_fix(tbx_error, "tensorboardX", "tensorboardX"))
        else:
            self.done("import", t, detail=", ".join("%s %s" % kv for kv in self.out["versions"].items() if kv[1]))

        t = self.begin("data")
        try:
            device = self.choose_device()
        except RuntimeError as exc:
            self.failed("data", t, str(exc), check_fix() + ", or pass --device cpu to verify on the CPU only")
            self.skip("train", "no usable device")
            self.skip("log", "no usable device")
            return
        self.device = device
        self.out["device"] = str(device)
        x, y = self.make_data()
        self.done("data", t, detail="%d samples of y = %gx + %g + N(0, %g^2) on %s" % (
            len(x), self.ctx["weight"], self.ctx["bias"], self.ctx["noise"], device))

        logger = Logger(self) if tbx is not None and self.rank == 0 else None
        if logger is not None:
            logger.open(tbx)
        self.train(x, y, logger)
        if logger is not None:
            logger.close()
            if logger.error:
                self.failed("log", None, logger.error[0], logger.error[1], seconds=logger.seconds)
            else:
                self.done("log", None, detail=logger.summary(), seconds=logger.seconds)
            self.out["written"] = logger.written
            self.out["kind_errors"] = logger.kind_errors
        elif tbx is None:
            self.skip("log", "tensorboardX could not be imported")
        else:
            self.skip("log", "only rank 0 writes to TensorBoard")

    def choose_device(self):
        torch = self.torch
        want = self.ctx.get("device") or "auto"
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if want == "auto":
            if torch.cuda.is_available():
                return torch.device("cuda", local % torch.cuda.device_count())
            mps = getattr(torch.backends, "mps", None)
            if mps is not None and mps.is_available():
                return torch.device("mps")
            gpu = next((p for p in ("/dev/nvidia0", "/proc/driver/nvidia/version") if os.path.exists(p)), None)
            if gpu:
                why = ("this torch is a CPU-only build" if torch.version.cuda is None
                       else "torch.cuda.is_available() is False (torch built for CUDA %s)" % torch.version.cuda)
                raise RuntimeError("an NVIDIA GPU is present (%s) but torch cannot use it: %s" % (gpu, why))
            return torch.device("cpu")
        try:
            device = torch.device(want)
        except Exception as exc:
            raise RuntimeError("--device %s: %s" % (want, first_line(exc)))
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError("--device %s: torch cannot use CUDA here (%s)" % (
                    want, "CPU-only build" if torch.version.cuda is None else "no usable GPU"))
            index = device.index if device.index is not None else 0
            if index >= torch.cuda.device_count():
                raise RuntimeError("--device %s: only %d CUDA device(s)" % (want, torch.cuda.device_count()))
            return torch.device("cuda", index)
        if device.type == "mps":
            mps = getattr(torch.backends, "mps", None)
            if mps is None or not mps.is_available():
                raise RuntimeError("--device mps: MPS is not available to this torch")
        return device

    def make_data(self):
        torch, ctx = self.torch, self.ctx
        gen = torch.Generator(device=self.device).manual_seed(int(ctx["seed"]))
        n = int(ctx["samples"])
        x = torch.rand(n, 1, generator=gen, device=self.device) * 2 - 1
        noise = torch.randn(n, 1, generator=gen, device=self.device) * float(ctx["noise"])
        y = float(ctx["weight"]) * x + float(ctx["bias"]) + noise
        return x, y

    def train(self, x, y, logger):
        torch, ctx = self.torch, self.ctx
        t = self.begin("train")
        start = time.perf_counter()
        torch.manual_seed(int(ctx["seed"]))
        plain = torch.nn.Linear(1, 1).to(self.device)
        model = plain
        if self.world > 1:
            import torch.distributed  # loaded for DistributedDataParallel
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = torch.nn.parallel.DistributedDataParallel(plain, device_ids=ids)
        xs, ys = x[self.rank::self.world], y[self.rank::self.world]
        lr = float(ctx["lr"])
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        steps = int(ctx["steps"])
        every = max(1, int(ctx.get("histogram_every", 10)))
        if logger is not None:
            logger.static(plain, xs[:8])
        losses = []
        for step in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(xs), ys)
            loss.backward()
            opt.step()
            value = loss.item()
            losses.append(value)
            if self.rank == 0:
                self.progress(step, steps, value)
            if not math.isfinite(value):
                self.failed("train", t, *diverged(value, step, lr))
                self.out["losses"] = losses
                if logger is not None:
                    logger.step(step, value, plain, lr, hist=False)
                return
            if logger is not None:
                hist = step % every == 0 or step == steps - 1
                residuals = (ys - plain(xs)).detach() if hist else None
                logger.step(step, value, plain, lr, hist=hist, residuals=residuals)
        with torch.no_grad():
            final = torch.nn.functional.mse_loss(plain(x), y).item()
        w, b = plain.weight.item(), plain.bias.item()
        self.out.update(params={"weight": w, "bias": b}, final_loss=final, steps=steps, losses=losses)
        if self.world > 1:
            self.out["distributed"] = self.gather(w, b)
        if self.device.type == "cuda":
            try:
                self.out["gpu"] = gpu_extras(torch, self.device)
            except Exception as exc:
                self.failed("train", t, "GPU checks failed on %s: %s" % (self.device, first_line(exc)), check_fix())
                return
        if logger is not None:
            logger.final(w, b, final, steps, lr)
            logger.image(xs, ys, w, b, steps)
        seconds = time.perf_counter() - start - (logger.seconds if logger else 0.0)
        if converged(ctx, w, b, final):
            self.done("train", t, detail="%d steps of SGD (lr %g): weight %.4f, bias %.4f, loss %.5f" % (
                steps, lr, w, b, final), seconds=seconds)
        else:
            self.failed("train", t, not_converged(ctx, w, b, final), "raise --steps or use the reference --lr 0.1",
                        seconds=seconds)

    def gather(self, w, b):
        import torch.distributed as dist
        got = [None] * self.world
        store = arrival_store(self.ctx)
        if store is not None:
            store.set("tbdoctor/arrived/%d" % self.rank, "1")
        try:
            dist.all_gather_object(got, {"rank": self.rank, "weight": w, "bias": b, "node": self.node_facts()})
        except Exception as exc:  # bounded by the collective timeout: say which ranks got there
            arrived = [r for r in range(self.world)
                       if store is not None and store.check(["tbdoctor/arrived/%d" % r])]
            return {"backend": dist.get_backend(), "world_size": self.world, "ranks": [],
                    "hung": {"arrived": arrived, "seconds": self.ctx.get("collective_timeout"),
                             "error": first_line(exc)}}
        spread = max(max(g["weight"] for g in got) - min(g["weight"] for g in got),
                     max(g["bias"] for g in got) - min(g["bias"] for g in got))
        return {"backend": dist.get_backend(), "world_size": self.world, "ranks": got, "max_spread": spread}

    def node_facts(self):
        """What this rank's machine is, for the per-node table (multi-node verify)."""
        import socket
        torch, env = self.torch, os.environ
        try:
            nccl = ".".join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else None
        except Exception:
            nccl = None
        try:
            address = socket.gethostbyname(socket.gethostname())
        except OSError:
            address = None
        return {"hostname": socket.gethostname(), "address": address, "group_rank": int(env.get("GROUP_RANK", "0")),
                "local_rank": int(env.get("LOCAL_RANK", "0")), "torch": torch.__version__,
                "cuda": torch.version.cuda, "nccl": nccl, "gloo": bool(torch.distributed.is_gloo_available()),
                "device": str(self.device), "python": "%d.%d.%d" % sys.version_info[:3],
                "interface": env.get("NCCL_SOCKET_IFNAME") or env.get("GLOO_SOCKET_IFNAME") or "",
                "seconds": round(time.perf_counter() - self.started, 3)}


class Logger:
    """tensorboardX writer (plus torch.utils.tensorboard into a sibling run);
    records what it wrote and the first error, and never raises."""

    def __init__(self, job):
        self.job = job
        self.root = job.ctx["run_dir"]
        self.seconds = 0.0
        self.error = None
        self.written = {}
        self.writers = {}
        self.kind_errors = {}  # kind -> {"detail", "fix"}: an optional summary kind that failed

    def _do(self, fn, *args, **kwargs):
        """Call a writer method; False (and the first error kept) when it fails.
        ``kind=NAME``: an optional summary kind; its failure is kept per kind
        (with its cause and fix) and does not stop the scalars."""
        kind = kwargs.pop("kind", None)
        if self.error or kind in self.kind_errors:
            return False
        start = time.perf_counter()
        try:
            fn(*args, **kwargs)
            if THREAD_ERRORS:
                raise THREAD_ERRORS[0]
            return True
        except Exception as exc:
            if kind and exc not in THREAD_ERRORS:  # a writer thread's error (disk full) is no kind's
                self.kind_errors[kind] = kind_error(kind, exc, self.job.out["versions"])
            else:
                self.error = write_error(exc, self.root)
            return False
        finally:
            self.seconds += time.perf_counter() - start

    def _record(self, run):
        return self.written.setdefault(run, {"scalars": {}, "histograms": [], "text": [],
                                             "graph": False, "hparams": False, "histogram_counts": {},
                                             "images": {}, "text_values": {}, "hparams_metrics": []})

    def open(self, tbx):
        def make():
            os.makedirs(self.root, exist_ok=True)
            # A queue large enough never to block: a writer thread that died (disk full)
            # must not hang the job; the error surfaces at close.
            self.writers["torch"] = tbx.SummaryWriter(os.path.join(self.root, "torch"), max_queue=100000)
        self._do(make)
        if self.error or self.job.utb is None:
            return
        try:
            self.writers["torch-utils"] = self.job.utb(os.path.join(self.root, "torch-utils"), max_queue=100000)
        except Exception as exc:
            self.job.out["notes"].append("torch.utils.tensorboard writer failed: " + first_line(exc))

    def static(self, model, sample):
        """Once per run: the graph and a text summary of the environment."""
        writer = self.writers.get("torch")
        if writer is None:
            return
        if self._do(writer.add_graph, model, sample, kind="graph"):
            record = self._record("torch")
            record["graph"], record["graph_op"] = True, "aten::linear"
        versions = self.job.out["versions"]
        table = "| package | version |\n|---|---|\n" + "\n".join(
            "| %s | %s |" % kv for kv in sorted(versions.items()))
        table += "\n\npython %s on %s, device %s" % (sys.version.split()[0], sys.platform, self.job.device)
        if self._do(writer.add_text, "environment", table, 0, kind="text"):
            record = self._record("torch")
            record["text"].append("environment/text_summary")
            record["text_values"]["environment/text_summary"] = table

    def step(self, step, loss, model, lr, hist, residuals=None):
        values = (("loss", loss), ("weight", model.weight.item()), ("bias", model.bias.item()), ("lr", lr))
        for run, writer in list(self.writers.items()):
            scalars = self._record(run)["scalars"]
            for tag, value in values:
                if self._do(writer.add_scalar, tag, value, step):
                    scalars.setdefault(tag, []).append([step, value])
        writer = self.writers.get("torch")
        if hist and writer is not None:
            record = self._record("torch")
            tensors = [("%s/%s" % (kind, name), tensor) for name, p in (("weight", model.weight), ("bias", model.bias))
                       for kind, tensor in (("params", p), ("grads", p.grad))]
            if residuals is not None:
                tensors.append(("residuals", residuals))
            for tag, tensor in tensors:
                if tensor is None:
                    continue
                values = tensor.detach().cpu()
                if self._do(writer.add_histogram, tag, values, step, kind="histograms"):
                    if tag not in record["histograms"]:
                        record["histograms"].append(tag)
                    record["histogram_counts"].setdefault(tag, []).append([step, int(values.numel())])

    def final(self, w, b, loss, steps, lr):
        writer = self.writers.get("torch")
        if writer is None:
            return
        metrics = {"hparam/final_loss": loss, "hparam/weight": w, "hparam/bias": b}
        hparams = {"lr": lr, "steps": steps, "seed": int(self.job.ctx["seed"]), "device": str(self.job.device)}
        if self._do(writer.add_hparams, hparams, metrics, name="hparams", global_step=steps, kind="hparams"):
            record = self._record("torch/hparams")
            record["hparams"] = True
            record["hparams_metrics"] = sorted(metrics)
            for tag, value in metrics.items():
                record["scalars"][tag] = [[steps, value]]

    def image(self, x, y, w, b, steps):
        """The fitted line over the data, drawn into a small RGB array (CHW), into every run."""
        try:
            picture = fit_picture(x.detach().cpu().reshape(-1).tolist(), y.detach().cpu().reshape(-1).tolist(), w, b)
        except Exception as exc:
            self.kind_errors["images"] = kind_error("images", exc, self.job.out["versions"])
            return
        for run, writer in list(self.writers.items()):
            if self._do(writer.add_image, "fit", picture, steps, kind="images"):
                self._record(run)["images"]["fit"] = list(picture.shape[1:]) + [picture.shape[0]]

    def close(self):
        for writer in self.writers.values():
            self._do(writer.close)

    def summary(self):
        scalars = sum(len(p) for r in self.written.values() for p in r["scalars"].values())
        kinds = [k for k in ("histograms", "images", "text", "graph", "hparams")
                 if any(r[k] for r in self.written.values())]
        text = "%d scalar points, %s into runs %s" % (scalars, ", ".join(kinds), ", ".join(sorted(self.written)))
        if self.kind_errors:
            text += "; not written: " + ", ".join(sorted(self.kind_errors))
        return text


def kind_error(kind, exc, versions):
    """(detail, fix) for an optional summary kind that could not be written."""
    text = first_line(exc)
    torch_version = versions.get("torch") or "?"
    if kind == "images":
        pillow = dist_version("pillow")[1]
        if isinstance(exc, ImportError) and "PIL" in str(exc) and pillow is None:
            return {"detail": "add_image needs Pillow, which is not installed (%s)" % text,
                    "fix": pip_install("pillow")}
        if "ANTIALIAS" in str(exc):  # removed in Pillow 10; tensorboardX < 2.6 still uses it
            return {"detail": "add_image: tensorboardX %s uses Image.ANTIALIAS, which Pillow %s no longer has (%s)"
                    % (versions.get("tensorboardX"), pillow, text),
                    "fix": pip_install("tensorboardX>=2.6") + "  (or: " + pip_install("pillow<10") + ")"}
        if isinstance(exc, ImportError) and "PIL" in str(exc):
            return {"detail": "add_image: Pillow %s is installed but cannot be loaded by Python %s (%s)"
                    % (pillow, sys.version.split()[0], text),
                    "fix": command(sys.executable, "-m", "pip", "install", "--force-reinstall", "pillow")}
        return {"detail": "add_image failed (Pillow %s): %s" % (pillow, text), "fix": check_fix()}
    if kind == "graph":
        if os.environ.get("PYTORCH_JIT") == "0":
            return {"detail": "add_graph cannot trace the model: PYTORCH_JIT=0 turns torch.jit.trace off "
                              "(torch %s: %s)" % (torch_version, text),
                    "fix": "unset PYTORCH_JIT (it disables the tracer add_graph uses)"}
        return {"detail": "add_graph cannot trace the model (torch %s): %s" % (torch_version, text),
                "fix": "trace it yourself with torch.jit.trace(model, example) to see where; "
                       "pass example inputs as tensors (add_graph cannot trace other inputs)"}
    if kind == "histograms":
        return {"detail": "add_histogram failed (NumPy %s): %s" % (dist_version("numpy")[1], text),
                "fix": check_fix()}
    if kind == "hparams":
        return {"detail": "add_hparams failed: %s" % text, "fix": check_fix()}
    return {"detail": "add_%s failed: %s" % (kind, text), "fix": check_fix()}


def arrival_store(ctx):
    """A client of torchrun's store (MASTER_ADDR:MASTER_PORT) for arrival marks; None if unreachable."""
    if not ctx.get("collective_timeout"):
        return None
    try:
        import datetime
        import torch.distributed as dist
        return dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                             timeout=datetime.timedelta(seconds=ctx["collective_timeout"]))
    except Exception:
        return None


def gpu_extras(torch, device):
    """What a real GPU job also needs: cuDNN convolution, a mixed-precision step, peak memory."""
    torch.cuda.reset_peak_memory_stats(device)
    if not torch.backends.cudnn.is_available():
        raise RuntimeError("cuDNN is not available to torch")
    conv = torch.nn.Conv2d(3, 8, 3).to(device)
    conv(torch.randn(4, 3, 32, 32, device=device)).sum().backward()
    bf16 = torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if bf16 else torch.float16
    model = torch.nn.Linear(64, 64).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    amp = getattr(torch, "amp", None)
    scaler = (amp.GradScaler("cuda", enabled=not bf16) if hasattr(amp, "GradScaler")
              else torch.cuda.amp.GradScaler(enabled=not bf16))
    with torch.autocast("cuda", dtype=dtype):
        loss = model(torch.randn(32, 64, device=device)).float().pow(2).mean()
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    torch.cuda.synchronize(device)
    if not math.isfinite(loss.item()):
        raise RuntimeError("the mixed-precision step produced %s" % loss.item())
    return {"name": torch.cuda.get_device_name(device), "cudnn": torch.backends.cudnn.version(),
            "amp": "bf16" if bf16 else "fp16 with GradScaler",
            "peak_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)}


def main():
    job = Job(context())
    dist = None
    try:
        if job.ctx.get("distributed"):
            import torch
            import torch.distributed as dist
            backend = job.ctx.get("backend") or "auto"
            if backend == "auto":  # NCCL on GPUs, gloo on CPU
                on_gpu = torch.cuda.is_available() and not str(job.ctx.get("device")).startswith(("cpu", "mps"))
                backend = "nccl" if on_gpu else "gloo"
            if job.ctx.get("collective_timeout"):  # multi-node: a hung collective ends, named
                import datetime
                dist.init_process_group(backend, timeout=datetime.timedelta(seconds=job.ctx["collective_timeout"]))
            else:
                dist.init_process_group(backend)
        job.run()
    except Exception as exc:  # a bug or an unforeseen failure: still one classified line
        job.crashed(exc)
    finally:
        if dist is not None and dist.is_initialized():
            dist.destroy_process_group()
    finish(job.out, job)


main()
