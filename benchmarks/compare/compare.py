#!/usr/bin/python3
"""Side-by-side timing of facenet against ONNX Runtime, PyTorch and OpenCV dnn (issue #7).

Each network is built in PyTorch from tests/fixtures/make_model_fixtures.py (the parity-test twins)
and given seeded random weights, saved with torch.save; facenet reads that file through its
conversion driver (io/convert.hpp, what `facenet convert` runs), so every contender runs the same
numbers. The ONNX file (opset 10: OpenCV 4.6 reads neither opset-11 Pad nor
Where) feeds ONNX Runtime (npm onnxruntime-node) and OpenCV dnn. PyTorch runs eager and
TorchScript-frozen, tuned as a user would: OpenBLAS-OpenMP and jemalloc preloaded, channels-last
when it is faster. Every contender first embeds the same input; its max |difference| from the float64
PyTorch output must be <= 1e-4, so nobody is fast by being wrong.

Contenders run one after another, in rounds whose order rotates, so machine noise spreads over all
of them; the figure is the median of every timed run after warm-up.

facenet's contender is facenet_timer.cpp (one small translation unit timing what `facenet bench`
times, as a persistent process like the others).

Usage (normally through run.sh, which installs the dependencies and builds the programs):
  /usr/bin/python3 compare.py --timer BUILD/facenet_timer --peak BUILD/benchmarks/bench_peak
                              --node-modules DIR [--quick] [--threads 2] [--cases irv1_b1,nn4_b64,...]
  compare.py worker torch|opencv      (internal: a contender process speaking JSON lines)
"""
import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
sys.path.insert(0, FIXTURES)

SIZES = {"inception_resnet_v1": 160, "nn4_small2": 96}
EMBEDDING = {"inception_resnet_v1": 512, "nn4_small2": 128}
SEED = {"inception_resnet_v1": 1, "nn4_small2": 2}  # the parity fixtures' seeds
TOLERANCE = 1e-4


def anchor(unit, value):
    """An issue-#7 anchor as ms per batch call ('ms' given per call, 'img/s' converted by the caller)."""
    return (unit, value)


# Issue #7's anchors (fp32, 2 threads, measured by the CEO on the project machine).
CASES = {
    "irv1_b1": dict(title="IRv1 160x160, batch 1", arch="inception_resnet_v1", batch=1, train=False,
                    anchors={"ort": anchor("ms", 10.5), "torch_frozen": anchor("ms", 19.2), "opencv": anchor("ms", 27.5)}),
    "irv1_b16": dict(title="IRv1, batch 16", arch="inception_resnet_v1", batch=16, train=False,
                     anchors={"ort": anchor("img/s", 125), "torch_frozen": anchor("img/s", 97),
                              "opencv": anchor("img/s", 61)}),
    "nn4_b1": dict(title="NN4-small2 96x96, batch 1", arch="nn4_small2", batch=1, train=False,
                   anchors={"ort": anchor("ms", 4.2), "torch_frozen": anchor("ms", 6.4), "opencv": anchor("ms", 5.0)}),
    "nn4_b64": dict(title="NN4-small2, batch 64", arch="nn4_small2", batch=64, train=False,
                    anchors={"ort": anchor("img/s", 302), "torch_eager": anchor("img/s", 336),
                             "opencv": anchor("img/s", 334)}),
    "nn4_train_b96": dict(title="NN4-small2 training step, batch 96", arch="nn4_small2", batch=96, train=True,
                          anchors={"torch_train": anchor("img/s", 119)}),
}
LABELS = {"facenet": "facenet", "ort": "ONNX Runtime", "torch_eager": "PyTorch eager",
          "torch_frozen": "PyTorch TorchScript-frozen", "torch_train": "PyTorch", "opencv": "OpenCV dnn"}


# ------------------------------------------------------------------------------------------ networks

def build_modules():
    """The parity fixtures' PyTorch twins, with NN4's L2 pool written without torch.where (the guard
    only shapes the gradient of all-zero windows; forward values are the same), which OpenCV 4.6
    cannot import. Returns make(arch)."""
    import torch
    from torch.nn import functional as F
    import make_model_fixtures as mmf
    irv1_cls, nn4_cls = mmf.build_modules()
    forward = nn4_cls.forward
    cell = forward.__closure__[forward.__code__.co_freevars.index("l2_pool")]
    cell.cell_contents = lambda x: torch.sqrt(F.avg_pool2d(x * x, 3, 3) * 9)
    return lambda arch: irv1_cls(dropout_prob=0.0) if arch == "inception_resnet_v1" else nn4_cls()


def exportable(model):
    """A copy whose LRN exports as the ONNX LRN operator instead of F.local_response_norm's pad/pool
    chain (whose opset-10 Pad OpenCV 4.6 reads, but which no ONNX user would ship). Inference only."""
    import copy
    import torch
    from torch.nn import functional as F

    class lrn_op(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, size, alpha, beta, k):
            return F.local_response_norm(x, size, alpha, beta, k)

        @staticmethod
        def symbolic(g, x, size, alpha, beta, k):
            # ONNX LRN divides alpha by size, as PyTorch's average over the window does.
            return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)

    class onnx_lrn(torch.nn.LocalResponseNorm):
        def forward(self, x):
            return lrn_op.apply(x, self.size, self.alpha, self.beta, self.k)

    model = copy.deepcopy(model)
    if isinstance(getattr(model, "lrn", None), torch.nn.LocalResponseNorm):
        model.lrn = onnx_lrn(model.lrn.size, model.lrn.alpha, model.lrn.beta, model.lrn.k)
    return model


def seeded_network(arch):
    """The network with the parity fixtures' random weights (same seed, same calibration)."""
    import torch
    import make_model_fixtures as mmf
    model = build_modules()(arch)
    size, seed = SIZES[arch], SEED[arch]
    g = torch.Generator().manual_seed(seed + 1)
    mmf.randomize(model, torch.randn(16, 3, size, size, generator=g), seed)
    return model.eval()


def count_flops(model, x):
    """2 x multiply-adds of every convolution and linear layer, per image."""
    import torch
    total = [0]

    def hook(m, inputs, out):
        fan_in = m.weight[0].numel()  # Cin / groups x kh x kw, or in_features
        total[0] += 2 * out.numel() * fan_in

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total[0] // x.shape[0]


def inputs_digest():
    """What the prepared files depend on: the fixture networks and the code here that builds,
    seeds and exports them (not the timing code, so editing that keeps the slow exports)."""
    import inspect
    import make_model_fixtures as mmf
    h = hashlib.sha256()
    for fn in (mmf.build_modules, mmf.randomize, build_modules, exportable, seeded_network, count_flops, export):
        h.update(inspect.getsource(fn).encode())
    return h.hexdigest()


def prepare(work, arch, batches):
    """Weights (.pt), one static-batch ONNX per batch, a check input per batch and its float64
    reference embeddings. Reused while the code that defines them is unchanged."""
    d = os.path.join(work, arch)
    os.makedirs(d, exist_ok=True)
    stamp = os.path.join(d, "stamp")
    digest = inputs_digest()
    files = {"pt": os.path.join(d, "weights.pt"), "dir": d}
    have = os.path.exists(stamp) and open(stamp).read().strip() == digest and all(
        os.path.exists(os.path.join(d, f"b{b}.onnx")) for b in batches)
    if not have:
        export(d, arch, batches, files)
        with open(stamp, "w") as f:
            f.write(digest + "\n")
    with open(os.path.join(d, "flops.json")) as f:
        files["flops"] = json.load(f)["flops_per_image"]
    return files


def export(d, arch, batches, files):
    import copy
    import numpy as np
    import torch
    print(f"  preparing {arch}: weights, ONNX export, float64 references", flush=True)
    model = seeded_network(arch)
    torch.save(model.state_dict(), files["pt"])
    size = SIZES[arch]
    reference = copy.deepcopy(model).double()
    g = torch.Generator().manual_seed(100 + SEED[arch])
    for b in batches:
        x = torch.rand(b, 3, size, size, generator=g) * 2 - 1
        np.save(os.path.join(d, f"x{b}.npy"), x.numpy())
        x.numpy().astype("<f4").tofile(os.path.join(d, f"x{b}.f32"))
        with torch.no_grad():
            np.save(os.path.join(d, f"ref{b}.npy"), reference(x.double()).numpy())
        torch.onnx.export(exportable(model), x, os.path.join(d, f"b{b}.onnx"), opset_version=10, input_names=["input"],
                          output_names=["embedding"])
    flops = count_flops(model, torch.zeros(1, 3, size, size))
    with open(os.path.join(d, "flops.json"), "w") as f:
        json.dump({"flops_per_image": flops}, f)


# ------------------------------------------------------------------------------------------ workers

def serve(handlers):
    """JSON-lines loop of a contender process: one command in, one reply out."""
    for line in sys.stdin:
        try:
            msg = json.loads(line)
            reply = handlers[msg["cmd"]](msg)
        except Exception as e:  # the driver reports it against this contender and goes on
            reply = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def time_calls(fn, n):
    ms = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    return ms


def fastest(candidates, warmup):
    """Picks the fastest of {name: callable} on a few runs after warm-up, as a user tuning would."""
    best = None
    for name, fn in candidates.items():
        for _ in range(warmup):
            fn()
        t = statistics.median(time_calls(fn, 3))
        if best is None or t < best[1]:
            best = (name, t, fn)
    return best[0], best[2]


def torch_worker():
    import numpy as np
    import torch
    state = {}

    def load(msg):
        torch.set_num_threads(msg["threads"])
        arch, batch, variant = msg["arch"], msg["batch"], msg["variant"]
        model = build_modules()(arch)
        model.load_state_dict(torch.load(msg["weights"]))
        size = SIZES[arch]
        x = torch.rand(batch, 3, size, size)
        if variant == "train":
            model.train()
            dy = torch.full((batch, EMBEDDING[arch]), 1.0 / (batch * EMBEDDING[arch]))

            def step(m, xx):
                def run():
                    for p in m.parameters():
                        p.grad = None
                    m(xx).backward(dy)
                return run
            candidates = {"contiguous": step(model, x),
                          "channels-last": step(copy_model(model).to(memory_format=torch.channels_last),
                                                x.contiguous(memory_format=torch.channels_last))}
        else:
            model.eval()
            cl = copy_model(model).to(memory_format=torch.channels_last)
            xcl = x.contiguous(memory_format=torch.channels_last)
            if variant == "eager":
                plain = {"contiguous": (model, x), "channels-last": (cl, xcl)}
            else:
                with torch.no_grad():
                    frozen = torch.jit.freeze(torch.jit.trace(model, x))
                    frozen_cl = torch.jit.freeze(torch.jit.trace(cl, xcl))
                    optimized = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x)))
                plain = {"frozen": (frozen, x), "frozen channels-last": (frozen_cl, xcl),
                         "frozen + optimize_for_inference": (optimized, x)}
            candidates = {}
            for name, (m, xx) in plain.items():
                candidates[name] = (lambda m, xx: lambda: no_grad_call(m, xx))(m, xx)
            state["models"] = {name: m for name, (m, _) in plain.items()}
        name, fn = fastest(candidates, msg["warmup"])
        state.update(run=fn, config=name, variant=variant)
        return {"ok": True, "config": name + (", OpenBLAS-OpenMP + jemalloc" if os.environ.get("LD_PRELOAD") else "")}

    def embed(msg):
        m = state["models"][state["config"]]
        x = torch.from_numpy(np.load(msg["input"]))
        if "channels-last" in state["config"]:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            np.save(msg["output"], m(x).contiguous().numpy())
        return {"ok": True}

    serve({"load": load, "time": lambda msg: {"ms": time_calls(state["run"], msg["n"])}, "embed": embed})


def copy_model(model):
    import copy
    return copy.deepcopy(model)


def no_grad_call(model, x):
    import torch
    with torch.no_grad():
        return model(x)


def opencv_worker():
    import cv2
    import numpy as np
    state = {}

    def load(msg):
        cv2.setNumThreads(msg["threads"])
        net = cv2.dnn.readNetFromONNX(msg["onnx"])
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        x = np.random.default_rng(0).uniform(-1, 1, msg["shape"]).astype(np.float32)

        def run():
            net.setInput(x)
            return net.forward()
        for _ in range(msg["warmup"]):
            run()
        state.update(net=net, run=run)
        return {"ok": True, "config": f"OpenCV {cv2.__version__}, DNN_BACKEND_OPENCV"}

    def embed(msg):
        state["net"].setInput(np.load(msg["input"]))
        np.save(msg["output"], state["net"].forward().copy())
        return {"ok": True}

    serve({"load": load, "time": lambda msg: {"ms": time_calls(state["run"], msg["n"])}, "embed": embed})


# ------------------------------------------------------------------------------------------ driver

def run(cmd, quiet=False, env=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    if not quiet and p.stderr.strip():
        print(p.stderr.strip(), file=sys.stderr)
    return p.stdout


class worker:
    """A persistent contender process (facenet_timer, PyTorch, OpenCV or ONNX Runtime) speaking JSON lines."""

    def __init__(self, cmd, env=None, stderr=None):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     stderr=stderr)

    def request(self, **msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return self.reply()

    def reply(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"contender process exited ({self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


class worker_contender:
    """load_msg None: the process loads from its command line and says when it is ready."""

    def __init__(self, w, load_msg, shape, config=""):
        self.w, self.shape = w, shape
        self.config = (w.request(**load_msg) if load_msg else w.reply()).get("config", config)

    def time(self, n):
        return self.w.request(cmd="time", n=n)["ms"]

    def embed(self, x_npy, out_npy):
        self.w.request(cmd="embed", input=x_npy, output=out_npy, shape=self.shape)

    def close(self):
        self.w.close()


class raw_io_contender(worker_contender):
    """facenet_timer and the node worker read and write raw float32, not .npy."""

    def embed(self, x_npy, out_npy):
        import numpy as np
        raw_out = out_npy + ".f32"
        self.w.request(cmd="embed", input=x_npy[:-4] + ".f32", output=raw_out, shape=self.shape)
        np.save(out_npy, np.fromfile(raw_out, dtype="<f4").reshape(self.shape[0], -1))


def torch_env(threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    preload = [p for p in ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
                           "/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3") if os.path.exists(p)]
    if preload:
        env["LD_PRELOAD"] = ":".join(preload)
        # The jemalloc settings PyTorch's CPU performance guides suggest.
        env["MALLOC_CONF"] = "oversize_threshold:1,background_thread:true,metadata_thp:auto,dirty_decay_ms:-1,muzzy_decay_ms:-1"
    return env


def start_contenders(case, files, args):
    """Every contender of a case, loaded and warmed up; a failure is reported, not fatal."""
    arch, batch = case["arch"], case["batch"]
    shape = [batch, 3, SIZES[arch], SIZES[arch]]
    onnx = os.path.join(files["dir"], f"b{batch}.onnx")
    me = [sys.executable, os.path.abspath(__file__), "worker"]
    base = dict(threads=args.threads, warmup=args.warmup)
    mode = "train" if case["train"] else "infer"
    log = open(profile_path(args, case), "w") if args.profile else None  # the timer's stderr: its profile
    plans = [("facenet", lambda: raw_io_contender(
        worker([args.timer, files["pt"], arch, str(batch), str(args.threads), mode], stderr=log), None, shape,
        "facenet_timer: " + ("forward(training) + backward" if case["train"] else "embedder, BN folded")))]
    variants = ["train"] if case["train"] else ["eager", "frozen"]
    for v in variants:
        plans.append(("torch_" + v, (lambda v: lambda: worker_contender(
            worker(me + ["torch"], env=torch_env(args.threads)),
            dict(cmd="load", arch=arch, batch=batch, variant=v, weights=files["pt"], **base), shape))(v)))
    if not case["train"]:
        plans.append(("ort", lambda: raw_io_contender(
            worker(["node", os.path.join(HERE, "ort_worker.js"), args.node_modules]),
            dict(cmd="load", onnx=onnx, shape=shape, spinning=True, **base), shape)))
        plans.append(("opencv", lambda: worker_contender(
            worker(me + ["opencv"]), dict(cmd="load", onnx=onnx, shape=shape, **base), shape)))
    contenders, failures = {}, {}
    for key, make in plans:
        try:
            contenders[key] = make()
        except Exception as e:
            failures[key] = str(e)
            print(f"  {LABELS[key]}: failed to load: {e}", file=sys.stderr)
    return contenders, failures


def check_embeddings(case, files, contenders, failures):
    """max |embedding - float64 PyTorch| of every contender on the same input."""
    import numpy as np
    if case["train"]:
        return {}
    b = case["batch"]
    x_npy = os.path.join(files["dir"], f"x{b}.npy")
    ref = np.load(os.path.join(files["dir"], f"ref{b}.npy"))
    diffs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, c in list(contenders.items()):
            out = os.path.join(tmp, key + ".npy")
            try:
                c.embed(x_npy, out)
                y = np.load(out).reshape(ref.shape)
                diffs[key] = float(np.abs(y.astype(np.float64) - ref).max())
            except Exception as e:
                failures[key] = f"embedding check failed: {e}"
                contenders.pop(key).close()
                continue
            if not diffs[key] <= TOLERANCE:
                print(f"  {LABELS[key]}: embeddings differ from PyTorch float64 by {diffs[key]:.3g} > {TOLERANCE}",
                      file=sys.stderr)
    return diffs


def measure(case, contenders, rounds, per_round):
    """Rounds in rotating order; every timed run of a contender pooled. Each contender's turn starts
    with one untimed run: its threads have gone to sleep and its caches been evicted during the other
    contenders' turns (on 2 cores the first run after a switch took up to 1.5x the others), and what a
    user embedding image after image sees is the warm state."""
    samples = {k: [] for k in contenders}
    keys = list(contenders)
    for r in range(rounds if keys else 0):
        order = keys[r % len(keys):] + keys[:r % len(keys)]
        for k in order:
            try:
                contenders[k].time(1)
                samples[k] += contenders[k].time(per_round)
            except Exception as e:
                print(f"  {LABELS[k]}: timing failed: {e}", file=sys.stderr)
        print(f"  round {r + 1}/{rounds} done", flush=True)
    return samples


def profile_path(args, case):
    return os.path.join(args.work, f"profile_{case['arch']}_b{case['batch']}{'_train' if case['train'] else ''}.txt")


def write_report(text, path):
    if path:
        with open(path, "w") as f:
            f.write(text + "\n")


def profile_summary(path):
    """Each pass's headline, hottest layers and time per kind (the full tree stays in the file)."""
    out, keep = [], False
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "ms per run in profiled layers" in line:
                out.append(line)
            elif line.startswith(("hottest", "by kind")):
                keep = True
                out.append(line)
            elif keep and line.startswith("  "):
                out.append(line)
            else:
                keep = False
    return "\n".join(out)


def peak_gflops(bench_peak, threads):
    """The measured FMA peak, and whether bench_peak found the machine oversubscribed (then every
    '% of peak' is meaningless and the report says so)."""
    p = subprocess.run([bench_peak, f"--benchmark_filter=bm_measured_peak/{threads}/", "--benchmark_format=json"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
    return float(json.loads(p.stdout)["benchmarks"][0]["peak_GFLOPs"]), "oversubscribed" in p.stderr


def load_average():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def anchor_ms(case, key):
    a = case["anchors"].get(key)
    if not a:
        return None
    unit, v = a
    return v if unit == "ms" else 1000.0 * case["batch"] / v


def fmt_ratio(ours_ms, other_ms):
    return f"{other_ms / ours_ms:.3g}x" if ours_ms and other_ms else "-"


def report(results, peak, args, meta):
    lines = [f"Measured {meta['date']} on {meta['cpu']} ({meta['cores']} cores), fp32, {args.threads} threads, "
             f"load average before / after: {meta['load_before']} / {meta['load_after']}; "
             f"measured FMA peak {peak[0]:.0f} GFLOP/s ({args.threads} threads"
             f"{'; oversubscribed machine: % of peak is not meaningful' if peak[1] else ''}); "
             f"{meta['versions']}; median of {args.rounds * args.per_round} timed runs per contender "
             f"({args.rounds} alternating rounds of {args.per_round} after warm-up).", "",
             "| case | contender (configuration) | ms median | ms min | images/s | GFLOP/s | % of peak | "
             "max abs diff vs float64 | facenet speed / this |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key, r in results.items():
        case = CASES[key]
        flops = r["flops"] * case["batch"] * (3 if case["train"] else 1)
        ours = statistics.median(r["samples"]["facenet"]) if r["samples"].get("facenet") else None
        for c, ms in r["samples"].items():
            if not ms:
                continue
            med = statistics.median(ms)
            gf = flops / med / 1e6
            diff = r["diffs"].get(c)
            diff_s = "-" if diff is None else f"{diff:.1e}" + ("" if diff <= TOLERANCE else " FAIL")
            lines.append(f"| {case['title']} | {LABELS[c]} ({r['configs'][c]}) | {med:.2f} | {min(ms):.2f} | "
                         f"{1000.0 * case['batch'] / med:.1f} | {gf:.1f} | {100.0 * gf / peak[0]:.0f}% | {diff_s} | "
                         f"{fmt_ratio(ours, med) if c != 'facenet' else '1'} |")
        for c, err in r["failures"].items():
            lines.append(f"| {case['title']} | {LABELS[c]} | failed: {err[:120]} | | | | | | |")
    lines += ["", "Against the issue-#7 anchors (facenet's speed in this run / the anchor's; > 1 means faster):", "",
              "| case | facenet ms | ONNX Runtime anchor | PyTorch anchor | OpenCV anchor |", "|---|---|---|---|---|"]
    for key, r in results.items():
        case = CASES[key]
        ours = statistics.median(r["samples"]["facenet"]) if r["samples"].get("facenet") else None
        cells = []
        for contender in ("ort", "torch", "opencv"):
            k = next((k for k in case["anchors"] if k.startswith(contender)), None)
            a = anchor_ms(case, k) if k else None
            cells.append(f"{fmt_ratio(ours, a)} ({a:.1f} ms)" if a else "-")
        lines.append(f"| {case['title']} | {ours:.2f} | " + " | ".join(cells) + " |" if ours else
                     f"| {case['title']} | failed | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def versions(node_modules):
    import cv2
    import torch
    try:
        with open(os.path.join(node_modules, "onnxruntime-node", "package.json")) as f:
            ort = json.load(f)["version"]
    except OSError:
        ort = "?"
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                            text=True).stdout.strip()
    return f"facenet {commit}, onnxruntime-node {ort}, PyTorch {torch.__version__}, OpenCV {cv2.__version__}"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "worker":
        return {"torch": torch_worker, "opencv": opencv_worker}[sys.argv[2]]()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timer", required=True, help="the built facenet_timer (benchmarks/compare/facenet_timer.cpp)")
    p.add_argument("--peak", required=True, help="the built bench_peak (measured FMA peak)")
    p.add_argument("--node-modules", required=True, help="node_modules holding onnxruntime-node")
    p.add_argument("--work", default=os.path.expanduser("~/.cache/facenet-compare/work"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES) +
                   ", run in the order given")
    p.add_argument("--quick", action="store_true", help="4 rounds of 5 runs, 1 warm-up run (a loaded machine)")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--per-round", type=int, default=5)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--output", help="also write the markdown report here")
    p.add_argument("--profile", action="store_true",
                   help="after timing, print facenet's per-layer profile of each case (--per-round runs)")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.per_round, args.warmup = 4, 5, 1
    keys = args.cases.split(",")
    for k in keys:
        if k not in CASES:
            p.error(f"unknown case '{k}' (known: {', '.join(CASES)})")
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_name(), "cores": os.cpu_count(),
            "load_before": load_average(), "versions": versions(args.node_modules)}
    print(f"load average {meta['load_before']}; measuring the FMA peak", flush=True)
    peak = peak_gflops(args.peak, args.threads)
    batches = {}
    for k in keys:  # the equality check (and so the ONNX files) is for inference only
        arch_batches = batches.setdefault(CASES[k]["arch"], set())
        if not CASES[k]["train"]:
            arch_batches.add(CASES[k]["batch"])
    files = {arch: prepare(args.work, arch, sorted(bs)) for arch, bs in batches.items()}
    results = {}
    for k in keys:
        case = CASES[k]
        print(f"{case['title']}: loading contenders", flush=True)
        contenders, failures = start_contenders(case, files[case["arch"]], args)
        diffs = check_embeddings(case, files[case["arch"]], contenders, failures)
        samples = measure(case, contenders, args.rounds, args.per_round)
        if args.profile and "facenet" in contenders:
            contenders["facenet"].w.request(cmd="profile", n=args.per_round)
        results[k] = {"flops": files[case["arch"]]["flops"], "samples": samples, "diffs": diffs, "failures": failures,
                      "configs": {c: v.config for c, v in contenders.items()}}
        for c in contenders.values():
            c.close()
        # The report so far, after every case: a long run stopped early keeps what it measured.
        meta["load_after"] = load_average()
        write_report(report(results, peak, args, meta), args.output)
    text = report(results, peak, args, meta)
    if args.profile:
        for k in keys:
            path = profile_path(args, CASES[k])
            print(f"\nfacenet per-layer profile, {CASES[k]['title']} (every layer: {path}):")
            print(profile_summary(path))
    print("\n" + text)
    write_report(text, args.output)
    bad = [f"{CASES[k]['title']}: {LABELS[c]}" for k, r in results.items() for c, d in r["diffs"].items()
           if not d <= TOLERANCE]
    if bad:
        print("embeddings differ by more than 1e-4: " + "; ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
