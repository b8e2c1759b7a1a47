#!/usr/bin/python3
"""Writes docs/errors.md: every bad input below is fed to the real `facenet` tool and its exit code
and message are recorded, so the table documents what users actually see. --check compares instead
of writing (the error_table test runs that, so the table cannot go stale).

Usage: make_error_table.py --tool BUILD/tools/facenet/facenet [--out docs/errors.md] [--check]
Only the standard library: the hostile files are built byte by byte, not with torch or numpy.
"""
import argparse
import io
import json
import os
import pickle
import random
import struct
import subprocess
import sys
import tempfile
import zipfile

EXIT_NAMES = {0: "ok", 1: "failure", 2: "usage", 3: "io", 4: "format", 5: "shape", 6: "unsupported", 7: "numeric",
              8: "no face"}


# --- inputs ---------------------------------------------------------------------------------------

def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def pgm(path, seed, size=96):
    rng = random.Random(seed)
    pixels = bytes((((x // (7 + seed)) + (y // 5)) % 2 * 120 + 60 + rng.randrange(-20, 21)) for y in range(size)
                   for x in range(size))
    return write(path, b"P5\n%d %d\n255\n" % (size, size) + pixels)


def safetensors(header, data=b""):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw, 8 + n


def retyped(raw, data_start, header):
    """`raw` (a safetensors file) with `header` in place of its own; the tensor bytes are kept."""
    return safetensors(header, raw[data_start:])


def npy(descr, shape, data):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, "".join("%d, " % d for d in shape))
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


class Hostile:
    """Pickles as a call of os.system: what a malicious .pt file does on torch.load."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def legacy_torch_file(payload):
    # torch.save's legacy layout: magic number, protocol version, sys info, then the object pickle.
    parts = [pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2), pickle.dumps(1001, protocol=2),
             pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2), pickle.dumps(payload, protocol=2)]
    return b"".join(parts)


def zip_torch_file(payload):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle.dumps(payload, protocol=2))
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


def make_inputs(t, tool):
    """Creates every input file under `t`; returns the list of (bad input, arguments) cases."""
    for p in range(4):
        os.makedirs(f"{t}/faces/p{p}", exist_ok=True)
        for i in range(2):
            pgm(f"{t}/faces/p{p}/{i}.pgm", 3 * p + i + 1)
    face = f"{t}/faces/p0/0.pgm"
    good = f"{t}/nn4.safetensors"
    trained = subprocess.run([tool, "train", "--data", f"{t}/faces", "--out", good, "--steps", "1", "--batch-people", "2",
                              "--batch-images", "2", "--threads", "1", "--workers", "1", "--checkpoint", f"{t}/ckpt"],
                             capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if trained.returncode != 0:
        sys.exit("make_error_table: training the base weights failed:\n" + trained.stderr)
    header, raw, data_start = read_safetensors(good)
    write(f"{t}/truncated.safetensors", raw[:data_start + (len(raw) - data_start) // 2])
    write(f"{t}/huge_header.safetensors", struct.pack("<Q", 1 << 40) + b'{"a": 1}')
    write(f"{t}/not_json.safetensors", struct.pack("<Q", 16) + b"this is not json")
    # conv1.bias relabelled I32 (same size) holding 2^24 + 1, which no float32 represents; a fixed value
    # keeps the message the same on every machine (trained weights differ with the SIMD width).
    as_int = dict(header)
    as_int["conv1.bias"] = dict(header["conv1.bias"], dtype="I32")
    ints = bytearray(raw)
    at = data_start + header["conv1.bias"]["data_offsets"][0]
    ints[at:at + 4] = struct.pack("<i", (1 << 24) + 1)
    write(f"{t}/int32.safetensors", retyped(bytes(ints), data_start, as_int))
    write(f"{t}/bad_dtype.safetensors", safetensors({"conv1.weight": {"dtype": "F8", "shape": [2], "data_offsets": [0, 2]}},
                                                     bytes(2)))
    write(f"{t}/bad_offsets.safetensors",
          safetensors({"conv1.weight": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8)))
    name = "inception_3a_3x3_conv.weight" if "inception_3a_3x3_conv.weight" in header else sorted(
        k for k in header if k != "__metadata__")[5]
    nan = bytearray(raw)
    at = data_start + header[name]["data_offsets"][0] + 4 * 7
    nan[at:at + 4] = struct.pack("<f", float("nan"))
    write(f"{t}/nan.safetensors", bytes(nan))
    write(f"{t}/hostile_legacy.pt", legacy_torch_file(Hostile()))
    write(f"{t}/hostile_zip.pt", zip_torch_file(Hostile()))
    write(f"{t}/garbage.t7", b"\x04\x00\x00\x00" + bytes(range(60)))
    write(f"{t}/wrong_shape.npy", npy("<f4", (1, 1, 96, 96), bytes(4 * 96 * 96)))
    write(f"{t}/complex.npy", npy("<c8", (1, 3, 2, 2), bytes(8 * 12)))
    write(f"{t}/truncated.npy", npy("<f4", (1, 3, 96, 96), bytes(4 * 100)))
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00\x43\x00" + bytes(20)
    write(f"{t}/broken.jpg", jpeg)
    write(f"{t}/empty.png", b"")
    write(f"{t}/text.png", b"hello, I am not a picture\n")
    write(f"{t}/pairs.txt", b"10\t300\nAaron\tnot_a_number\t2\n")
    ckpt = f"{t}/ckpt/checkpoint.safetensors"
    with open(ckpt, "rb") as f:
        c = f.read()
    os.makedirs(f"{t}/torn_ckpt", exist_ok=True)
    write(f"{t}/torn_ckpt/checkpoint.safetensors", c[:len(c) // 3])
    write(f"{t}/a_file", b"x")
    write(f"{t}/vector.npy", npy("<f4", (4,), struct.pack("<4f", 0.5, 0.5, 0.5, 0.5)))
    write(f"{t}/emb.npy", npy("<f4", (3, 2), struct.pack("<6f", 1, 0, 0, 1, 0.6, 0.8)))
    write(f"{t}/names.txt", b"alice.jpg\nbob.jpg\n")

    embed = ["embed", "--no-detect", "--threads", "1"]
    embed_good = embed + ["--weights", good]
    train = ["train", "--data", f"{t}/faces", "--out", f"{t}/out.safetensors", "--steps", "2", "--batch-people", "2",
             "--batch-images", "2", "--threads", "1"]
    return [
        ("missing weights file", embed + ["--weights", f"{t}/missing.safetensors", face]),
        ("missing image", embed_good + [f"{t}/missing.jpg"]),
        ("safetensors cut in the middle of the tensor data", embed + ["--weights", f"{t}/truncated.safetensors", face]),
        ("safetensors header length (2^40) larger than the file", embed + ["--weights", f"{t}/huge_header.safetensors", face]),
        ("safetensors header that is not JSON", embed + ["--weights", f"{t}/not_json.safetensors", face]),
        ("safetensors weight tensor stored as I32 (value 2^24 + 1)", embed + ["--weights", f"{t}/int32.safetensors", face]),
        ("safetensors dtype the format does not define (F8)", embed + ["--weights", f"{t}/bad_dtype.safetensors", face]),
        ("safetensors data_offsets that disagree with the shape", embed + ["--weights", f"{t}/bad_offsets.safetensors", face]),
        ("NaN in a weight tensor", embed + ["--weights", f"{t}/nan.safetensors", face]),
        ("NN4-small2 weights loaded as Inception-ResNet-v1",
         embed + ["--weights", good, "--arch", "inception_resnet_v1", face]),
        ("legacy torch.save file whose pickle calls os.system (GLOBAL)", ["convert", f"{t}/hostile_legacy.pt", f"{t}/o.safetensors"]),
        ("zip torch.save file whose data.pkl calls os.system", ["convert", f"{t}/hostile_zip.pt", f"{t}/o.safetensors"]),
        ("Torch7 file of garbage", ["convert", f"{t}/garbage.t7", f"{t}/o.safetensors", "--format", "torch7"]),
        ("input .npy of shape 1 x 1 x 96 x 96 (one channel)", ["embed", "--weights", good, "--input-npy", f"{t}/wrong_shape.npy"]),
        ("input .npy of complex numbers", ["embed", "--weights", good, "--input-npy", f"{t}/complex.npy"]),
        ("input .npy shorter than its header says", ["embed", "--weights", good, "--input-npy", f"{t}/truncated.npy"]),
        ("JPEG cut after its first segments", embed_good + [f"{t}/broken.jpg"]),
        ("empty image file", embed_good + [f"{t}/empty.png"]),
        ("text file named .png", embed_good + [f"{t}/text.png"]),
        ("output into a directory that does not exist", embed_good + [face, "--output", f"{t}/no/such/dir/e.npy"]),
        ("output path that is a directory", embed_good + [face, "--output", f"{t}/faces"]),
        ("--init weights holding a NaN", train + ["--init", f"{t}/nan.safetensors"]),
        ("checkpoint directory below a regular file", train + ["--checkpoint", f"{t}/a_file/ckpt"]),
        ("--resume from a checkpoint cut to a third", train + ["--checkpoint", f"{t}/torn_ckpt", "--resume"]),
        ("--resume without a checkpoint", train + ["--checkpoint", f"{t}/empty_ckpt_dir", "--resume"]),
        ("LFW pairs file with a non-numeric image number", ["eval-lfw", "--images", f"{t}/faces", "--pairs", f"{t}/pairs.txt"]),
        ("non-numeric option value", train + ["--lr", "fast"]),
        ("unknown option", ["embed", "--wieghts", good, face]),
        ("cluster: embeddings .npy that is 1-D", ["cluster", "--embeddings", f"{t}/vector.npy"]),
        ("cluster: fewer --names than embedding rows", ["cluster", "--embeddings", f"{t}/emb.npy", "--names", f"{t}/names.txt"]),
        ("cluster: --out into a directory that is not empty", ["cluster", "--embeddings", f"{t}/emb.npy", "--out", f"{t}/faces"]),
        ("cluster: negative DBSCAN radius", ["cluster", "--embeddings", f"{t}/emb.npy", "--method", "dbscan", "--eps", "-1"]),
    ]


# --- the table --------------------------------------------------------------------------------------

def run_cases(tool, t, cases):
    rows = []
    for what, args in cases:
        r = subprocess.run([tool] + args, capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
        # The last line is the error; the progress bar may precede it.
        lines = [l for l in r.stderr.replace("\r", "\n").splitlines() if l.strip()]
        message = lines[-1] if lines else "(no message)"
        shown = lambda s: s.replace(t, "$TMP").replace("|", "\\|")
        rows.append((what, "facenet " + " ".join(shown(a) for a in args), r.returncode, shown(message)))
    return rows


def render(rows):
    out = ["# Bad inputs and the errors they get",
           "",
           "Generated by `scripts/make_error_table.sh` from the real `facenet` tool (do not edit by hand; the",
           "`error_table` test fails when this file no longer matches what the tool prints). `$TMP` is the",
           "scratch directory the script builds the inputs in. Every message starts with the error kind",
           "(`[facenet.<kind>]`, see `include/facenet/core/error.hpp`) and the exit code follows from it:",
           "",
           "| exit code | kind |",
           "|---|---|"]
    out += [f"| {code} | {name} |" for code, name in EXIT_NAMES.items()]
    out += ["", "| bad input | command | exit | message |", "|---|---|---|---|"]
    for what, command, code, message in rows:
        out.append(f"| {what} | `{command}` | {code} ({EXIT_NAMES.get(code, '?')}) | {message} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tool", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "errors.md"))
    ap.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    a = ap.parse_args()
    tool = os.path.abspath(a.tool)
    if not os.access(tool, os.X_OK):
        sys.exit(f"make_error_table: the facenet tool is not built at {tool}")
    with tempfile.TemporaryDirectory(prefix="facenet_errors_") as t:
        table = render(run_cases(tool, t, make_inputs(t, tool)))
    if not a.check:
        with open(a.out, "w") as f:
            f.write(table)
        print(f"wrote {a.out}")
        return
    with open(a.out) as f:
        current = f.read()
    if current != table:
        import difflib
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), table.splitlines(True), a.out, "generated"))
        sys.exit(f"{a.out} is stale: run scripts/make_error_table.sh")
    print(f"{a.out} matches the tool")


if __name__ == "__main__":
    main()
