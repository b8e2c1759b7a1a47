#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets, tests/fuzz/corpus/<target>/: small genuine files made by
the formats' own tools (torch.save, numpy, PIL, protoc-generated TensorFlow messages) or by the
independent writers of tests/fixtures/make_*_fixtures.py, never by the C++ readers under test and
never copied from /work/shared. test_fuzz_regressions checks that every seed parses without error.

Run: /usr/bin/python3 tests/fuzz/make_corpus.py   (needs python3-torch, python3-numpy, python3-pil,
protobuf-compiler and python3-protobuf, as the fixture generators do)
"""
import collections
import io
import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))

import make_t7_fixtures as t7  # noqa: E402
import make_tf_fixtures as tf  # noqa: E402  (compiles the TensorFlow .proto subset on import)
import make_torch_fixtures as pt  # noqa: E402


def put(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def safetensors_bytes(tensors, metadata):
    """tensors: name -> (dtype string, little-endian raw bytes, shape)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, raw, shape) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def mt19937_64_text(seed):
    """std::mt19937_64(seed) written with operator<<: the 312 state words, then the index (312)."""
    mask = (1 << 64) - 1
    state = [seed & mask]
    for i in range(1, 312):
        state.append((6364136223846793005 * (state[-1] ^ (state[-1] >> 62)) + i) & mask)
    return " ".join(str(v) for v in state + [312])


def torch_and_numpy(tmp):
    pt.small(tmp)  # the fixture generator's files: torch.save both formats, numpy, safetensors
    for name in ["f4.npy", "f8_fortran.npy", "f2.npy", "i8.npy", "scalar.npy", "v2.npy", "v3.npy", "dict_p2.npy",
                 "dict_p3.npy"]:
        put("npy", name, read(os.path.join(tmp, name)))
    for name in ["stored.npz", "deflate.npz", "zip64.npz"]:
        put("npz", name, read(os.path.join(tmp, name)))
    put("torch_zip", "state.pt", read(os.path.join(tmp, "state_zip.pt")))
    put("torch_legacy", "state.pt", read(os.path.join(tmp, "state_legacy.pt")))
    put("safetensors", "sample.safetensors", read(os.path.join(tmp, "sample.safetensors")))

    import torch
    one = {"w": torch.arange(6, dtype=torch.float32).view(2, 3)}
    for fmt, zipped in [("torch_zip", True), ("torch_legacy", False)]:
        buf = io.BytesIO()
        torch.save(one, buf, _use_new_zipfile_serialization=zipped)
        put(fmt, "one.pt", buf.getvalue())


def safetensors_and_checkpoint():
    ints = {"i8": ("I8", np.arange(-3, 3, dtype="<i1").tobytes(), (6,)),
            "u8": ("U8", np.arange(4, dtype="<u1").tobytes(), (2, 2)),
            "i16": ("I16", np.arange(3, dtype="<i2").tobytes(), (3,)),
            "i32": ("I32", np.arange(4, dtype="<i4").tobytes(), (1, 4)),
            "i64": ("I64", np.arange(2, dtype="<i8").tobytes(), (2,)),
            "b": ("BOOL", bytes([1, 0, 1]), (3,)),
            "empty": ("F32", b"", (0, 3))}
    put("safetensors", "ints.safetensors", safetensors_bytes(ints, {"note": "integer dtypes"}))
    put("safetensors", "none.safetensors", safetensors_bytes({}, {}))

    w = np.linspace(-1, 1, 12, dtype="<f4")
    tensors = {"model/conv.weight": ("F32", w.tobytes(), (2, 1, 2, 3)),
               "model/conv.bias": ("F32", w[:2].tobytes(), (2,)),
               "optimizer/conv.weight/momentum": ("F32", (w * 0.5).tobytes(), (2, 1, 2, 3))}
    meta = {"step": "42", "rng": mt19937_64_text(5489), "optimizer": "sgd", "optimizer.lr": "0.05",
            "info.arch": "nn4_small2", "info.model.standardization": "per_image"}
    put("checkpoint", "step42.safetensors", safetensors_bytes(tensors, meta))


def tensorflow(tmp):
    rng = np.random.default_rng(8)
    ckpt = {"conv/weights": rng.standard_normal((2, 2, 1, 3)).astype(np.float32),
            "bn/moving_variance": rng.standard_normal(3).astype(np.float64),
            "half": rng.standard_normal(4).astype(np.float16),
            "global_step": np.array(90000, np.int64)}
    prefix = os.path.join(tmp, "ckpt")
    tf.write_checkpoint(prefix, ckpt)
    index, data = read(prefix + ".index"), read(prefix + ".data-00000-of-00001")
    put("tf_checkpoint", "ckpt.bin", struct.pack("<I", len(index)) + index + data)  # framing of fuzz_entry_points.hpp

    g = tf.pb.GraphDef()
    g.versions.producer = 24
    tf.node(g, "input", "Placeholder")
    tf.node(g, "shape", "Const", tf.tensor_proto(np.array([-1, 4], np.int32)))
    tf.node(g, "w", "Const", tf.tensor_proto(rng.standard_normal((3, 2)).astype(np.float32)))
    tf.node(g, "w_list", "Const", tf.tensor_proto(rng.standard_normal((2, 2)).astype(np.float32), as_content=False))
    tf.node(g, "d_list", "Const", tf.tensor_proto(np.array([0.25, -1.0], np.float64), as_content=False))
    h = tf.pb.TensorProto()
    h.dtype = tf.pb.DT_HALF
    h.tensor_shape.CopyFrom(tf.shape_proto((3,)))
    h.half_val.extend(int(v) for v in np.array([1.5, -2.0], np.float16).view(np.uint16))
    tf.node(g, "h_list", "Const", h)
    b = tf.pb.TensorProto()
    b.dtype = tf.pb.DT_FLOAT
    b.tensor_shape.CopyFrom(tf.shape_proto((2, 3)))
    b.float_val.append(0.17)
    tf.node(g, "broadcast", "Const", b)
    tf.node(g, "conv", "Conv2D")
    put("tf_graphdef", "graph.pb", g.SerializeToString())


def torch7(tmp):
    root, _ = t7.generic(np.random.default_rng(7))
    path = os.path.join(tmp, "generic.t7")
    t7.save(root, path)
    put("torch7", "generic.t7", read(path))


def images():
    from PIL import Image
    rng = np.random.default_rng(3)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), "RGB")

    def save(name, img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        put("image", name, buf.getvalue())

    save("rgb.png", rgb, "PNG")
    save("grey.png", rgb.convert("L"), "PNG")
    save("rgba.png", rgb.convert("RGBA"), "PNG")
    save("palette.png", rgb.convert("P"), "PNG")
    save("baseline.jpg", rgb, "JPEG", quality=90)
    save("progressive.jpg", rgb, "JPEG", quality=90, progressive=True)
    save("grey.jpg", rgb.convert("L"), "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    save("exif6.jpg", rgb, "JPEG", exif=exif.tobytes())
    save("rgb.bmp", rgb, "BMP")
    save("grey.pgm", rgb.convert("L"), "PPM")
    save("rgb.ppm", rgb, "PPM")
    save("anim.gif", rgb.convert("P"), "GIF")
    save("rgb.tga", rgb, "TGA")


def text_formats():
    put("openface_csv", "row.csv", b"0.125,-1.5,3e-3,+2,1E+2\n")
    put("openface_csv", "spaced.csv", b" 1.0, 2.0 ,\t-0.0\r\n4.5e-7\n")
    same = [f"Person_{i} 1 {i + 2}" for i in range(10)]
    diff = [f"Person_{i} 1 Other_{i} {i + 1}" for i in range(10)]
    put("lfw_pairs", "view1.txt", ("10\n" + "\n".join(same + diff) + "\n").encode())
    folds = []
    for f in range(2):
        folds += same[2 * f:2 * f + 2] + diff[2 * f:2 * f + 2]
    put("lfw_pairs", "view2.txt", ("2\t2\n" + "\n".join(folds) + "\n").encode())


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        torch_and_numpy(tmp)
        tensorflow(tmp)
        torch7(tmp)
    safetensors_and_checkpoint()
    images()
    text_formats()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(CORPUS) for f in fs)
    print(f"wrote {CORPUS} ({total} bytes)")


if __name__ == "__main__":
    main()
