"""The whole training loader, per worker core: RecordIO -> masked-pair batch vs arcface_torch's clean batch.

One DataLoader worker runs on one core and, per batch, reads the records, decodes them, (masks,)
flips, converts to tensors and collates. This script does exactly that work in this process, on
one thread, for the same .rec and the same batch indices, alternating the loaders batch by batch,
and reports CPU time per batch (process time: fair on a shared machine):

  arcface-clean   arcface_torch's MXFaceDataset + default collate: mxnet MXIndexedRecordIO.read_idx,
                  recordio.unpack, mx.image.imdecode(...).asnumpy(), then its transform
                  ToPILImage -> RandomHorizontalFlip -> ToTensor -> Normalize(0.5, 0.5) written out
                  with PIL and torch as torchvision does it (torchvision is not needed). Without
                  mxnet the record is read and decoded by this project's reader (noted in the output).
  g2d-masked      MaskedPairDataset(RecordIOFaces): what g2d-train's loader yields (masked face,
                  clean face, mask alpha, label, index, flip), masks drawn for every face, through
                  the batched path (__getitems__: one mask call per batch)
  g2d-masked-1by1 the same items one __getitem__ at a time (the per-face path)

Target: g2d-masked costs at most 1.3x arcface-clean per batch per core.

    python benchmarks/bench_loader.py                    # 4096 faces, batch 128, 3 rounds
    python benchmarks/bench_loader.py --lfw PATH/lfw     # real faces (aligned with landmarks5.tsv)
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import default_collate  # noqa: E402

cv2.setNumThreads(1)
torch.set_num_threads(1)

from insightface_g2d.data import recordio as R  # noqa: E402
from insightface_g2d.masks.masked_pairs import MaskedPairDataset  # noqa: E402
from insightface_g2d.masks.synthesizer import MaskSynthesizer  # noqa: E402
from insightface_g2d.data.recordio_dataset import RecordIOFaces  # noqa: E402


def faces(n, lfw, seed):
    """n aligned uint8 faces: LFW aligned with landmarks5.tsv, else the built-in synthetic faces."""
    if lfw and (Path(lfw) / "landmarks5.tsv").is_file():
        from insightface_g2d.data.align import align_face, read_landmarks_tsv
        from insightface_g2d.data.image_io import read_image_file

        lmk = read_landmarks_tsv(Path(lfw) / "landmarks5.tsv")
        keys = sorted(lmk)
        pick = np.random.default_rng(seed).choice(len(keys), size=min(n, len(keys)), replace=False)
        out = [align_face(read_image_file(Path(lfw) / "lfw-deepfunneled" / keys[i]), lmk[keys[i]]) for i in pick]
        return out, f"LFW, {len(out)} faces aligned with landmarks5.tsv"
    from insightface_g2d.data.synthetic import SyntheticFaces

    ds = SyntheticFaces(num_identities=max(1, n // 16), images_per_identity=16, seed=seed)
    return [ds[i][0] for i in range(min(n, len(ds)))], f"built-in synthetic faces, {min(n, len(ds))}"


def build_rec(folder, imgs, n, quality):
    """arcface_torch layout: header, n JPEG images (the faces repeated), identity records."""
    ids = max(1, n // 16)
    with R.IndexedRecordIOWriter(folder / "train.rec", folder / "train.idx") as w:
        w.write_idx(0, R.pack(R.IRHeader(0, [n + 1, n + 1 + ids], 0, 0), b""))
        for k in range(1, n + 1):
            w.write_idx(k, R.pack_img(R.IRHeader(0, float((k - 1) * ids // n), k, 0), imgs[(k - 1) % len(imgs)],
                                      quality))
        for c in range(ids):
            w.write_idx(n + 1 + c, R.pack(R.IRHeader(0, [1.0, 2.0], 0, 0), b""))
    return folder


class ArcfaceClean(torch.utils.data.Dataset):
    """arcface_torch's MXFaceDataset (dataset.py) with its training transform, torchvision-free."""

    def __init__(self, root, use_mxnet=True):
        from PIL import Image

        self.Image = Image
        self.mx = None
        if use_mxnet:
            try:
                import mxnet as mx

                self.mx = mx
            except ImportError:
                pass
        if self.mx is not None:
            self.imgrec = self.mx.recordio.MXIndexedRecordIO(str(root / "train.idx"), str(root / "train.rec"), "r")
            header, _ = self.mx.recordio.unpack(self.imgrec.read_idx(0))
            self.imgidx = np.array(range(1, int(header.label[0])))
        else:
            self.ours = RecordIOFaces(root)
            self.imgidx = self.ours.keys
        self.mean = torch.tensor([0.5, 0.5, 0.5]).view(-1, 1, 1)
        self.std = torch.tensor([0.5, 0.5, 0.5]).view(-1, 1, 1)
        self.rng = np.random.default_rng(0)

    def transform(self, sample):
        pic = self.Image.fromarray(sample)                                   # ToPILImage
        if self.rng.random() < 0.5:                                          # RandomHorizontalFlip
            pic = pic.transpose(self.Image.FLIP_LEFT_RIGHT)
        img = torch.from_numpy(np.array(pic, np.uint8, copy=True))            # ToTensor
        img = img.view(pic.size[1], pic.size[0], 3).permute((2, 0, 1)).contiguous()
        img = img.to(dtype=torch.get_default_dtype()).div(255)
        return img.clone().sub_(self.mean).div_(self.std)                    # Normalize (inplace=False)

    def __getitem__(self, index):
        idx = self.imgidx[index]
        if self.mx is None:
            sample, label = self.ours[index]
            return self.transform(sample), torch.tensor(label, dtype=torch.long)
        header, img = self.mx.recordio.unpack(self.imgrec.read_idx(int(idx)))
        label = header.label
        if not isinstance(label, numbers_Number):
            label = label[0]
        label = torch.tensor(label, dtype=torch.long)
        sample = self.mx.image.imdecode(img).asnumpy()
        return self.transform(sample), label

    def __len__(self):
        return len(self.imgidx)


numbers_Number = __import__("numbers").Number


def fetch(dataset, indices, batched):
    """What a DataLoader worker does for one batch: fetch the items, then collate them."""
    if batched and hasattr(dataset, "__getitems__"):
        return default_collate(dataset.__getitems__(indices))
    return default_collate([dataset[i] for i in indices])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=4096, help="records in the .rec (default 4096)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3, help="passes over the .rec (default 3; best kept)")
    ap.add_argument("--quality", type=int, default=95, help="JPEG quality of the records (default 95)")
    ap.add_argument("--lfw", default=os.environ.get("G2D_LFW_ROOT"), help="LFW root for real faces")
    ap.add_argument("--no-mxnet", action="store_true", help="arcface-clean without mxnet (this project's reader)")
    args = ap.parse_args()

    imgs, source = faces(min(args.faces, 2048), args.lfw, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        root = build_rec(Path(tmp), imgs, args.faces, args.quality)
        clean = ArcfaceClean(root, use_mxnet=not args.no_mxnet)
        synth = MaskSynthesizer().warmup()
        ours = MaskedPairDataset(RecordIOFaces(root), mask_prob=1.0, seed=0, synthesizer=synth)
        loaders = {"arcface-clean": (clean, False), "g2d-masked": (ours, True), "g2d-masked-1by1": (ours, False)}
        nb = args.faces // args.batch_size
        times = {k: [] for k in loaders}
        for rnd in range(args.rounds + 1):  # round 0 warms up (page cache, lazy opens)
            order = np.random.default_rng(rnd).permutation(args.faces)
            ours.set_epoch(rnd)
            for b in range(nb):
                idx = order[b * args.batch_size:(b + 1) * args.batch_size].tolist()
                for name, (ds, batched) in loaders.items():
                    t0 = time.process_time()
                    batch = fetch(ds, idx, batched)
                    dt = time.process_time() - t0
                    if rnd:
                        times[name].append(dt)
                    del batch
        per_round = {k: np.asarray(v).reshape(args.rounds, nb).sum(axis=1) / nb for k, v in times.items()}
        best = {k: float(v.min()) for k, v in per_round.items()}
    base = best["arcface-clean"]
    print(f"faces: {source}; {args.faces} JPEG q{args.quality} records, batch {args.batch_size}, one thread; "
          f"arcface-clean reads with {'mxnet' if clean.mx is not None else 'this project (mxnet absent)'}")
    print(f"{'loader':18s} {'ms CPU / batch':>15s} {'faces / CPU-s':>14s} {'vs arcface-clean':>17s}  (best of {args.rounds} rounds; all rounds)")
    for name, t in best.items():
        spread = ", ".join(f"{v / base_v:.2f}" for v, base_v in zip(per_round[name], per_round["arcface-clean"]))
        print(f"{name:18s} {1000 * t:15.1f} {args.batch_size / t:14.0f} {t / base:16.2f}x  ({spread})")


if __name__ == "__main__":
    main()
