#!/usr/bin/python3
"""MTCNN detection time, ours next to facenet-pytorch's on CPU, in one run.

Same inputs as benchmarks/bench_mtcnn.cpp: shared/images/multiface.jpg resized (PIL bilinear) to
1280x720, and one 250x250 LFW image; same weights (shared/weights/mtcnn/facenet-pytorch) and
facenet-pytorch's default settings (min face 20, thresholds 0.6/0.7/0.7, factor 0.709).

Contenders, alternated round by round so machine noise hits all of them alike:
  ours               bench_mtcnn (Google Benchmark), BM_mtcnn_detect_* and BM_mtcnn_pnet_pyramid_1280x720
  facenet-pytorch    facenet_pytorch.MTCNN(device="cpu").detect(image), when importable: it is not a
                     Debian package and PyPI may be out of reach, so it is looked for on PYTHONPATH and
                     in $FACENET_PYTORCH_DIR (a checkout of timesler/facenet-pytorch); never vendored
  torch P-Net        the P-Net pyramid alone (area resize, normalisation, P-Net forward at every scale)
                     in plain PyTorch, using the functional P-Net of tests/fixtures/make_mtcnn_fixtures.py:
                     the part of detection that dominates on large frames, comparable even without
                     facenet-pytorch

Each figure is the median over rounds of the mean time per call in that round. Run with Debian's
interpreter (it has python3-torch, python3-torchvision):
  /usr/bin/python3 benchmarks/compare/mtcnn_facenet_pytorch.py --bench BUILD/benchmarks/bench_mtcnn
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("FACENET_SHARED", os.path.join(REPO, "..", "shared"))
WEIGHTS = os.path.join(SHARED, "weights", "mtcnn", "facenet-pytorch")
CASES = {  # our benchmark name -> the image it times
    "BM_mtcnn_detect_1280x720": "1280x720 (multiface.jpg)",
    "BM_mtcnn_detect_lfw_250x250": "250x250 (LFW Aaron_Eckhart_0001)",
}
PYRAMID = "BM_mtcnn_pnet_pyramid_1280x720"


def load_images():
    from PIL import Image

    frame = Image.open(os.path.join(SHARED, "images", "multiface.jpg")).convert("RGB").resize((1280, 720), Image.BILINEAR)
    lfw = Image.open(os.path.join(SHARED, "data", "lfw", "images_deepfunneled", "Aaron_Eckhart",
                                  "Aaron_Eckhart_0001.jpg")).convert("RGB")
    return {"BM_mtcnn_detect_1280x720": frame, "BM_mtcnn_detect_lfw_250x250": lfw}


def import_facenet_pytorch():
    """facenet_pytorch.MTCNN, or (None, reason)."""
    extra = os.environ.get("FACENET_PYTORCH_DIR")
    if extra:
        sys.path.insert(0, extra)
    try:
        from facenet_pytorch import MTCNN  # noqa: PLC0415 - optional dependency
    except ImportError as e:
        return None, (f"facenet-pytorch is not installed ({e}). It is not a Debian package; put a checkout of "
                      "timesler/facenet-pytorch on PYTHONPATH or in FACENET_PYTORCH_DIR to time it here.")
    return MTCNN(device="cpu"), None


def timed(fn, seconds):
    """Mean seconds per call of fn over at least `seconds` (and at least 3 calls)."""
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls


def ours_round(bench, threads, seconds):
    """One bench_mtcnn run: {benchmark name: (ms per call, faces)}."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), FACENET_SHARED=SHARED)
    out = subprocess.run([bench, "--benchmark_format=json", f"--benchmark_min_time={seconds}",
                          "--benchmark_filter=" + "|".join(list(CASES) + [PYRAMID])],
                         env=env, check=True, capture_output=True, text=True).stdout
    result = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("error_occurred"):
            raise SystemExit(f"bench_mtcnn: {b['name']}: {b.get('error_message')}")
        assert b["time_unit"] == "ms", b
        result[b["name"].split("/")[0]] = (b["real_time"], b.get("faces"))
    return result


def pnet_pyramid(frame, threads):
    """A function running the P-Net pyramid on `frame` in PyTorch the way facenet-pytorch does."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, os.path.join(REPO, "tests", "fixtures"))
    from make_mtcnn_fixtures import mtcnn_nets  # the repository's functional facenet-pytorch P-Net

    torch.set_num_threads(threads)
    sd = torch.load(os.path.join(WEIGHTS, "pnet.pt"))
    img = torch.as_tensor(np.array(frame)).permute(2, 0, 1).unsqueeze(0).float()
    h, w = img.shape[2:]
    m = 12.0 / 20  # facenet-pytorch detect_face: min face 20, factor 0.709
    scales, minl = [], min(h, w) * m
    while minl >= 12:
        scales.append(m)
        m, minl = m * 0.709, minl * 0.709

    def run():
        with torch.no_grad():
            for s in scales:
                x = F.interpolate(img, size=(int(h * s + 1), int(w * s + 1)), mode="area")
                mtcnn_nets(sd, "pnet", (x - 127.5) * 0.0078125)

    return run


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bench", required=True, help="the built bench_mtcnn executable")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=1.0, help="minimum time per contender per case per round")
    a = p.parse_args()
    if not os.path.exists(os.path.join(WEIGHTS, "onet.pt")):
        raise SystemExit(f"MTCNN weights not found under {WEIGHTS} (set FACENET_SHARED)")

    import torch

    torch.set_num_threads(a.threads)
    images = load_images()
    mtcnn, missing = import_facenet_pytorch()
    pyramid = pnet_pyramid(images["BM_mtcnn_detect_1280x720"], a.threads)
    ours, theirs, faces, torch_pyramid = {}, {}, {}, []
    for r in range(a.rounds):
        for name, (ms, n) in ours_round(a.bench, a.threads, a.seconds).items():
            ours.setdefault(name, []).append(ms)
            faces[(name, "ours")] = n
        if mtcnn is not None:
            for name, img in images.items():
                boxes, _ = mtcnn.detect(img)  # warm-up, and the face count
                faces[(name, "facenet-pytorch")] = 0 if boxes is None else len(boxes)
                theirs.setdefault(name, []).append(1e3 * timed(lambda: mtcnn.detect(img), a.seconds))
        pyramid()
        torch_pyramid.append(1e3 * timed(pyramid, a.seconds))
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)

    med = statistics.median
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else ["?"] * 3
    print(f"MTCNN detection, CPU, {a.threads} threads, median of {a.rounds} alternating rounds "
          f"({datetime.date.today()}, load average {' '.join(load)}, torch {torch.__version__})\n")
    print("| input | ours ms | facenet-pytorch ms | time ours / theirs (< 1: we are faster) | faces (ours / theirs) |")
    print("|---|---:|---:|---:|---:|")
    for name, label in CASES.items():
        o = med(ours[name])
        if name in theirs:
            t = med(theirs[name])
            print(f"| {label} | {o:.1f} | {t:.1f} | {o / t:.2f}x | {faces[(name, 'ours')]:.0f} / "
                  f"{faces[(name, 'facenet-pytorch')]} |")
        else:
            print(f"| {label} | {o:.1f} | not installed | - | {faces[(name, 'ours')]:.0f} / - |")
    o, t = med(ours[PYRAMID]), med(torch_pyramid)
    print(f"| P-Net pyramid only, 1280x720 (ours vs PyTorch {torch.__version__}) | {o:.1f} | {t:.1f} (PyTorch) | "
          f"{o / t:.2f}x | - |")
    if missing:
        print(f"\n{missing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
