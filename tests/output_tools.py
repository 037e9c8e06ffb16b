"""Every command-line tool that writes files, as (main, argv) runs on tiny inputs: for the tests of
write failures (disk full, read-only, file-size limits) and of symbolic links in output folders.

    inputs = make_inputs(folder)          photos + landmarks, aligned faces, a .rec, a checkpoint, a .bin, ...
    main, argv = tool_run(name, inputs, out)   `out` is a folder the run writes into (and nowhere else)
"""
import os

import cv2
import numpy as np

TOOLS = ("data-align", "data-pack", "data-bin", "recordio-index", "cache-build", "cache-import", "eval-make-bin",
         "eval-export-onnx", "eval-compare", "eval-write-masked-bin", "mask-apply")
DATASET = "synthetic:ids=4,per_id=4,seed=1"  # 16 faces
# an aligned 112x112 crop warped into a 240x240 "photo", and the five points it puts them at
WARP = np.array([[1.48, -0.25, 40.0], [0.25, 1.48, 25.0]])


def _face(seed):
    """A 112x112 face-sized image of noise (JPEG-encodes to several KiB)."""
    return np.random.default_rng(seed).integers(0, 256, (112, 112, 3), dtype=np.uint8)


def _imwrite(path, rgb):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def make_inputs(folder):
    """Inputs of every tool under `folder` (made once; nothing of it is written by the tools)."""
    import torch

    import insightface_g2d
    from insightface_g2d.data.align import ARCFACE_TEMPLATE, transform_points
    from insightface_g2d.data.recordio import IndexedRecordIOWriter, IRHeader, pack
    from insightface_g2d.data.synthetic import SyntheticFaces
    from insightface_g2d.evaluation.binfile import write_bin

    folder = str(folder)
    inputs = dict(folder=folder)
    # photos of two people and their landmarks (g2d-data align, g2d-data bin)
    photos = os.path.join(folder, "photos")
    lmk = transform_points(ARCFACE_TEMPLATE, WARP)
    lines = ["path\tx1\ty1\tx2\ty2\tx3\ty3\tx4\ty4\tx5\ty5"]
    for k, rel in enumerate(["ann/ann_1.png", "ann/ann_2.png", "bob/bob_1.png", "bob/bob_2.png"]):
        _imwrite(os.path.join(photos, rel), cv2.warpAffine(_face(k), WARP, (240, 240), flags=cv2.INTER_CUBIC))
        lines.append(rel + "\t" + "\t".join(f"{v:.4f}" for v in lmk.ravel()))
    inputs["photos"] = photos
    inputs["landmarks"] = os.path.join(folder, "landmarks.tsv")
    with open(inputs["landmarks"], "w") as f:
        f.write("\n".join(lines) + "\n")
    inputs["pairs"] = os.path.join(folder, "pairs.txt")
    with open(inputs["pairs"], "w") as f:
        f.write("ann/ann_1.png ann/ann_2.png 1\nann/ann_1.png bob/bob_1.png 0\n")
    # aligned faces (g2d-data pack, g2d-mask apply)
    inputs["faces"] = os.path.join(folder, "faces")
    for k, rel in enumerate(["ann/1.png", "ann/2.png", "bob/1.png", "bob/2.png"]):
        _imwrite(os.path.join(inputs["faces"], rel), _face(10 + k))
    # a .rec without its index (g2d-recordio index): 300 records, an index of several KiB
    inputs["rec"] = os.path.join(folder, "plain.rec")
    writer = IndexedRecordIOWriter(inputs["rec"], os.path.join(folder, "plain.idx"))
    for key in range(300):
        writer.write(pack(IRHeader(0, float(key % 3), key, 0), b""))
    writer.close()
    os.unlink(os.path.join(folder, "plain.idx"))
    # a g2d_t checkpoint (teacher, compared model, ONNX export), embeddings (g2d-cache import), a .bin
    torch.manual_seed(0)
    inputs["checkpoint"] = os.path.join(folder, "g2d_t.pt")
    torch.save(insightface_g2d.get_model("g2d_t", num_features=16).eval().state_dict(), inputs["checkpoint"])
    inputs["embeddings"] = os.path.join(folder, "emb.npy")
    np.save(inputs["embeddings"], np.random.default_rng(0).standard_normal((16, 16)).astype(np.float32))
    faces = SyntheticFaces(num_identities=4, images_per_identity=2, seed=5)
    images = np.stack([faces[i][0] for i in (0, 1, 2, 4, 3, 5, 6, 1)])
    inputs["bin"] = os.path.join(folder, "tiny.bin")
    write_bin(inputs["bin"], images, np.array([True, False, True, False]))
    return inputs


def tool_run(name, inputs, out):
    """(main, argv) of tool `name` writing only inside folder `out`."""
    from insightface_g2d.cli import cache, data, evaluate, mask, recordio

    out = str(out)
    runs = {
        "data-align": (data.main, ["align", "--src", inputs["photos"], "--landmarks", inputs["landmarks"],
                                   "--out", out, "--workers", "1", "--quiet"]),
        "data-pack": (data.main, ["pack", "--src", inputs["faces"], "--out", out, "--quiet"]),
        "data-bin": (data.main, ["bin", "--root", inputs["photos"], "--pairs", inputs["pairs"], "--landmarks",
                                 inputs["landmarks"], "--out", os.path.join(out, "pairs.bin"), "--quiet"]),
        "recordio-index": (recordio.main, ["index", inputs["rec"], "--idx", os.path.join(out, "plain.idx")]),
        "cache-build": (cache.main, ["build", "--dataset", DATASET, "--teacher-network", "g2d_t",
                                     "--teacher-checkpoint", inputs["checkpoint"], "--dtype", "float32",
                                     "--device", "cpu", "--out", os.path.join(out, "cache")]),
        "cache-import": (cache.main, ["import", "--dataset", DATASET, "--embeddings", inputs["embeddings"],
                                      "--dtype", "float32", "--out", os.path.join(out, "cache")]),
        "eval-make-bin": (evaluate.main, ["make-bin", "--dataset", DATASET, "--pairs", "8",
                                          "--out", os.path.join(out, "heldout.bin")]),
        "eval-export-onnx": (evaluate.main, ["export-onnx", "--network", "g2d_t", "--checkpoint",
                                             inputs["checkpoint"], "--out", os.path.join(out, "g2d_t.onnx")]),
        "eval-compare": (evaluate.main, ["compare", "--model", f"g2d_t:{inputs['checkpoint']}", "--target",
                                         inputs["bin"], "--protocol", "clean", "--nfolds", "2", "--device", "cpu",
                                         "--quiet", "--out", out]),
        "eval-write-masked-bin": (evaluate.main, ["write-masked-bin", "--bin", inputs["bin"], "--out",
                                                  os.path.join(out, "masked.bin")]),
        "mask-apply": (mask.main, ["apply", "--input", inputs["faces"], "--aligned", "--out", out, "--quiet"]),
    }
    return runs[name]
