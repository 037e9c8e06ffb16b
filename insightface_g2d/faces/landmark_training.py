"""Training the kit's masked-face front end from photos with true landmarks (`g2d-data train-landmarks`).

Three steps, all seeded, all on the training people only (LFW: View 1 DevTrain):

1. scan: dlib's HOG face detector (upsampled once) on every clean photo; photos where it finds
   exactly one face, the one of the true landmarks, give that face's box.
2. masked HOG filter: a dlib HOG detector (``fhog_object_detector``, one 80 x 80 filter, left-right
   flips added) trained on ``hog_photos`` of those photos, each wearing a mask of the training
   styles drawn from its true landmarks, with the scanned box. Written as ``masked_hog.svm``.
3. the landmark network (``landmark_net.LandmarkNet``): dlib's filters and the new one run
   together on masked and clean photos; their boxes on the true face calibrate each filter's box
   to the 112 frame, and their boxes elsewhere become hard negatives. Then ``epochs`` passes over
   every training photo: masked (training styles, probability ``mask_prob``) or clean, randomly
   cut at a side (tight crops), in a view whose frame is the true one moved, scaled and turned
   (half the views as far as a detector box is off, half as little as an earlier pass is off),
   flipped with the points swapped, lit and blurred at random, turned heads drawn more often with
   ``yaw_weight`` > 0; targets: the true five points
   and face = 1. Negatives (views away from the face, and the hard negatives): face = 0.
   Loss: L1 on the points (in view pixels / INPUT) of faces + binary cross-entropy on the face
   score; Adam, cosine schedule. Written as ``landmarks.pt`` (float16) with everything above in
   ``front_end.json``.

The shipped files (``insightface_g2d/faces/front_end_weights/``) were made by
``g2d-data train-landmarks --src LFW/lfw-deepfunneled --landmarks LFW/landmarks5.tsv
--include LFW/peopleDevTrain.txt --out insightface_g2d/faces/front_end_weights``.
"""
import math
import time
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError
from ..data.align import ARCFACE_TEMPLATE, estimate_similarity
from ..data.image_io import read_photo
from .landmarks import LandmarkIndex

TRAIN_STYLES = ("surgical", "kn95", "cloth", "patterned")  # n95 and textured stay held out
HOG_NAME = "masked_hog.svm"
SWAP = [1, 0, 2, 4, 3]  # landmark order after a horizontal flip
CUT_PROB = 0.35         # share of training views cut at one to three sides through the face (tight crops)


def yaw_of(lmk):
    """How far heads [N, 5, 2] are turned: |nose x - eye midpoint x| / eye distance (0 frontal, ~0.4 three-quarter)."""
    lmk = np.asarray(lmk, np.float64).reshape(-1, 5, 2)
    iod = np.linalg.norm(lmk[:, 1] - lmk[:, 0], axis=1)
    return np.abs(lmk[:, 2, 0] - lmk[:, :2, 0].mean(axis=1)) / np.maximum(iod, 1e-6)


def epoch_order(rng, yaw, yaw_weight):
    """Photo indices of one epoch: a permutation (yaw_weight 0), or as many draws with replacement,
    each photo drawn in proportion to 1 + yaw_weight x its yaw (turned heads are rare in LFW)."""
    if yaw_weight <= 0:
        return rng.permutation(len(yaw))
    w = 1.0 + yaw_weight * np.asarray(yaw, np.float64)
    return rng.choice(len(yaw), len(yaw), replace=True, p=w / w.sum())


def _h(m):
    return np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])


def box_matches(box, lmk):
    """True when a detector box (x0, y0, x1, y1) holds the face of landmarks [5, 2]: its centre within
    half the eye-to-mouth distance of the face's centre and its width 1.2-4 times that distance."""
    lmk = np.asarray(lmk, np.float64)
    eyes, mouth = lmk[:2].mean(0), lmk[3:].mean(0)
    mid, span = (eyes + mouth) / 2, float(np.linalg.norm(mouth - eyes))
    x0, y0, x1, y1 = (float(v) for v in box)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    return bool(np.linalg.norm(centre - mid) < 0.5 * span and 1.2 * span < x1 - x0 < 4 * span)


def calibration_of(boxes, lmks):
    """(dx, dy, size) of landmark_net.frames_from_boxes from boxes [N, 4] and their faces' landmarks [N, 5, 2]:
    medians of where the true 112 frame's centre and side lie relative to the box."""
    rows = []
    for box, lmk in zip(np.asarray(boxes, np.float64), np.asarray(lmks, np.float64)):
        inv = np.linalg.inv(_h(estimate_similarity(lmk, ARCFACE_TEMPLATE)))
        centre = inv[:2, :2] @ [56.0, 56.0] + inv[:2, 2]
        side = 112.0 * math.sqrt(abs(np.linalg.det(inv[:2, :2])))
        w = box[2] - box[0]
        rows.append([(centre[0] - (box[0] + box[2]) / 2) / w, (centre[1] - (box[1] + box[3]) / 2) / w, side / w])
    return [round(float(v), 4) for v in np.median(np.asarray(rows), axis=0)]


class TrainingPhotos:
    """The training photos: relative paths, true landmarks, JPEG bytes in memory (decoded per use)."""

    def __init__(self, src, landmarks, include=None, limit=None, seed=0, progress=True):
        from tqdm import tqdm

        from .photo_folders import list_photos, read_identity_list

        inc = read_identity_list(include) if include is not None else None
        table = LandmarkIndex(landmarks)
        src = Path(src)
        rels = [rel for _, rel in list_photos(src, inc)]
        rels = [r for r in rels if table.find(src / r, src) is not None]
        if not rels:
            raise DataError(f"no photo under {src} has landmarks in {landmarks}")
        if limit is not None and limit < len(rels):
            pick = np.random.default_rng(seed).choice(len(rels), int(limit), replace=False)
            rels = [rels[i] for i in sorted(pick)]
        self.rels = rels
        self.lmk = np.stack([table.find(src / r, src) for r in rels]).astype(np.float64)
        self.data = [(src / r).read_bytes() for r in tqdm(rels, desc="reading photos", unit="img",
                                                           disable=not progress, dynamic_ncols=True)]
        self.src = src

    def __len__(self):
        return len(self.rels)

    def photo(self, i):
        img = cv2.imdecode(np.frombuffer(self.data[i], np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            return read_photo(self.src / self.rels[i], what="photo")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


# ------------------------------------------------------------------------------------ HOG steps
def scan_single_faces(photos, progress=True):
    """Boxes [N, 4] (NaN rows where dlib's HOG does not find exactly the one true face)."""
    from tqdm import tqdm

    from .dlib_landmarks import _import_dlib

    dlib = _import_dlib()
    det = dlib.get_frontal_face_detector()
    boxes = np.full((len(photos), 4), np.nan)
    for i in tqdm(range(len(photos)), desc="scanning faces", unit="img", disable=not progress, dynamic_ncols=True):
        rects, _, _ = det.run(photos.photo(i), 1, -0.3)
        found = [[r.left(), r.top(), r.right(), r.bottom()] for r in rects]
        if len(found) == 1 and box_matches(found[0], photos.lmk[i]):
            boxes[i] = found[0]
    return boxes


def train_masked_hog(photos, boxes, count, seed, c=5.0, progress=True):
    """dlib fhog_object_detector trained on `count` photos with a box, masked with the training styles."""
    from .dlib_landmarks import _import_dlib
    from ..masks.synthesizer import MaskSynthesizer

    dlib = _import_dlib()
    synth = MaskSynthesizer(styles=TRAIN_STYLES)
    usable = np.flatnonzero(np.isfinite(boxes[:, 0]))
    rng = np.random.default_rng([seed, 1])
    chosen = np.sort(rng.choice(usable, min(int(count), len(usable)), replace=False))
    images, rects = [], []
    for i in chosen:
        masked, _ = synth.apply_landmarks(photos.photo(i), photos.lmk[i], np.random.default_rng([seed, 2, int(i)]))
        images.append(masked)
        x0, y0, x1, y1 = (int(round(v)) for v in boxes[i])
        rects.append([dlib.rectangle(x0, y0, x1, y1)])
    opts = dlib.simple_object_detector_training_options()
    opts.add_left_right_image_flips = True
    opts.C = float(c)
    opts.num_threads = 1
    opts.be_verbose = bool(progress)
    return dlib.train_simple_object_detector(images, rects, opts), len(images)


def mine_boxes(photos, detectors, count, seed, progress=True):
    """Run the detectors together (upsample 1, threshold -0.8) on `count` photos, half of them masked.

    Returns (calibrations {filter index: [dx, dy, size]}, hard negatives {photo index: [(box, masked)]}).
    """
    from tqdm import tqdm

    from .dlib_landmarks import _import_dlib
    from ..masks.synthesizer import MaskSynthesizer

    dlib = _import_dlib()
    synth = MaskSynthesizer(styles=TRAIN_STYLES)
    rng = np.random.default_rng([seed, 3])
    chosen = np.sort(rng.choice(len(photos), min(int(count), len(photos)), replace=False))
    hits, negatives = {}, {}
    for n, i in enumerate(tqdm(chosen, desc="mining detector boxes", unit="img", disable=not progress,
                               dynamic_ncols=True)):
        img = photos.photo(i)
        masked = n % 2 == 1
        if masked:
            img, _ = synth.apply_landmarks(img, photos.lmk[i], np.random.default_rng([seed, 4, int(i)]))
        rects, scores, idx = dlib.fhog_object_detector.run_multiple(detectors, img, 1, -0.8)
        for r, k in zip(rects, idx):
            box = (r.left(), r.top(), r.right(), r.bottom())
            if box_matches(box, photos.lmk[i]):
                hits.setdefault(int(k), []).append((box, photos.lmk[i]))
            else:
                negatives.setdefault(int(i), []).append((box, masked))
    calib = {k: calibration_of([b for b, _ in v], [l for _, l in v]) for k, v in sorted(hits.items()) if len(v) >= 20}
    return calib, negatives


# ------------------------------------------------------------------------------------ views
def _perturb(rng, far):
    """A random similarity about the frame centre (3x3): far = as a detector box is off, else as a pass."""
    if far:
        s, rot, sh = math.exp(rng.uniform(-0.35, 0.35)), rng.uniform(-25, 25), rng.uniform(-0.18, 0.18, 2)
    else:
        s, rot, sh = math.exp(rng.uniform(-0.08, 0.08)), rng.uniform(-8, 8), rng.uniform(-0.05, 0.05, 2)
    m = cv2.getRotationMatrix2D((56.0, 56.0), rot, s)
    m[:, 2] += sh * 112.0
    return _h(m)


def _cut(img, lmk, rng):
    """Cut the photo at one or two sides through the face, as tight crops are: (photo, landmarks)."""
    h, w = img.shape[:2]
    iod = float(np.linalg.norm(lmk[1] - lmk[0]))
    eye_y, mouth_y = lmk[:2, 1].mean(), lmk[3:, 1].mean()
    x0, y0, x1, y1 = 0, 0, w, h
    for side in rng.choice(4, size=rng.integers(1, 4), replace=False):
        if side == 0:
            y0 = int(max(0, eye_y - rng.uniform(0.3, 1.2) * iod))
        elif side == 1:
            y1 = int(min(h, mouth_y + rng.uniform(-0.3, 1.2) * iod))
        elif side == 2:
            x0 = int(max(0, lmk[0, 0] - rng.uniform(0.2, 1.0) * iod))
        else:
            x1 = int(min(w, lmk[1, 0] + rng.uniform(0.2, 1.0) * iod))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return img, lmk
    return np.ascontiguousarray(img[y0:y1, x0:x1]), lmk - [x0, y0]


def _photometric(view, rng):
    v = view.astype(np.float32)
    v = v * rng.uniform(0.6, 1.4) + rng.uniform(-30, 30)
    v = v * rng.uniform(0.9, 1.1, 3)
    if rng.random() < 0.1:
        v = v.mean(axis=2, keepdims=True).repeat(3, axis=2)
    v = np.clip(v, 0, 255).astype(np.uint8)
    if rng.random() < 0.15:
        v = cv2.GaussianBlur(v, (0, 0), rng.uniform(0.5, 1.5))
    return v


def _negative_frame(lmk, shape, rng):
    """An upright frame well away from the face (centre offset >= 0.55 frame, or scale off by >= 2x)."""
    from .landmark_net import frames_from_boxes

    true = np.linalg.inv(_h(estimate_similarity(lmk, ARCFACE_TEMPLATE)))
    centre, side = true[:2, :2] @ [56.0, 56.0] + true[:2, 2], 112.0 * math.sqrt(abs(np.linalg.det(true[:2, :2])))
    h, w = shape[:2]
    for _ in range(20):
        size = side * math.exp(rng.uniform(-1.3, 1.0))
        c = rng.uniform([0.1 * w, 0.1 * h], [0.9 * w, 0.9 * h])
        far = np.linalg.norm(c - centre) / max(size, side)
        ratio = size / side
        if far >= 0.55 or ratio < 0.45 or ratio > 2.2:
            return frames_from_boxes([[c[0] - size / 2, c[1] - size / 2, c[0] + size / 2, c[1] + size / 2]],
                                     (0.0, 0.0, 1.0))[0]
    return None


def make_batch(photos, indices, rng, synth, mask_prob, cut_prob, neg_prob, negatives, calib):
    """Views uint8 [B, INPUT, INPUT, 3], points [B, 5, 2] (view px), face labels [B] for photo `indices`."""
    from .landmark_net import INPUT, crop_views, frames_from_boxes

    views, points, labels = [], [], []
    for i in indices:
        img, lmk = photos.photo(i), photos.lmk[i]
        masked = rng.random() < mask_prob
        if masked:
            img, _ = synth.apply_landmarks(img, lmk, rng)
        if rng.random() < cut_prob:
            img, lmk = _cut(img, lmk, rng)
        frame = (_perturb(rng, far=rng.random() < 0.5) @ _h(estimate_similarity(lmk, ARCFACE_TEMPLATE)))[:2]
        view, mat = crop_views(img, frame[None])
        pts = lmk @ mat[0, :2, :2].T + mat[0, :2, 2]
        views.append(view[0])
        points.append(pts)
        labels.append(1.0)
        if rng.random() < neg_prob:
            mined = negatives.get(int(i), [])
            neg = None
            if mined and rng.random() < 0.5 and calib:
                box, _ = mined[rng.integers(len(mined))]
                keys = sorted(calib)
                neg = frames_from_boxes([box], calib[keys[rng.integers(len(keys))]])[0]
            if neg is None:
                neg = _negative_frame(lmk, img.shape, rng)
            if neg is not None:
                views.append(crop_views(img, neg[None])[0][0])
                points.append(np.zeros((5, 2)))
                labels.append(0.0)
    views = [_photometric(v, rng) for v in views]
    points, labels = np.asarray(points, np.float32), np.asarray(labels, np.float32)
    views = np.stack(views)
    flip = rng.random(len(views)) < 0.5
    views[flip] = views[flip][:, :, ::-1]
    points[flip] = points[flip][:, SWAP]
    points[flip, :, 0] = (INPUT - 1) - points[flip, :, 0]
    return views, points, labels


def train_landmark_net(photos, negatives, calib, epochs=24, batch_size=64, lr=2e-3, seed=0, mask_prob=0.7,
                       cut_prob=CUT_PROB, neg_prob=0.5, progress=True, log=print, yaw_weight=0.0, hidden=128,
                       widths=None):
    """Train LandmarkNet on `photos` (see the module doc); returns the network (eval mode)."""
    import torch

    from tqdm import tqdm

    from .landmark_net import INPUT, WIDTHS, LandmarkNet
    from ..masks.synthesizer import MaskSynthesizer

    torch.manual_seed(seed)
    net = LandmarkNet(widths=WIDTHS if widths is None else tuple(widths), hidden=hidden)
    yaw = yaw_of(photos.lmk)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    steps_per_epoch = math.ceil(len(photos) / batch_size)
    total = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * min(k, total) / total)))
    synth = MaskSynthesizer(styles=TRAIN_STYLES)
    bce = torch.nn.BCEWithLogitsLoss()
    for epoch in range(epochs):
        rng = np.random.default_rng([seed, 5, epoch])
        order = epoch_order(rng, yaw, yaw_weight)
        net.train()
        sums, t0 = np.zeros(3), time.time()
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", unit="batch", disable=not progress,
                   dynamic_ncols=True, leave=False)
        for step in bar:
            idx = order[step * batch_size:(step + 1) * batch_size]
            views, points, labels = make_batch(photos, idx, rng, synth, mask_prob, cut_prob, neg_prob, negatives, calib)
            x = torch.from_numpy(np.ascontiguousarray(views)).permute(0, 3, 1, 2).float()
            pred, logit = net(x)
            y = torch.from_numpy(labels)
            pos = y > 0.5
            err = (pred[pos] - torch.from_numpy(points)[pos]).abs().mean() / INPUT
            loss = 10.0 * err + bce(logit, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            acc = ((logit > 0) == pos).float().mean()
            sums += [float(err.detach()), float(bce(logit.detach(), y)), float(acc)]
        n = max(steps_per_epoch, 1)
        log(f"epoch {epoch + 1}/{epochs}: point error {sums[0] / n * INPUT:.2f} px of {INPUT}, face loss "
            f"{sums[1] / n:.4f}, face accuracy {100 * sums[2] / n:.2f}% ({time.time() - t0:.0f} s)")
    return net.eval()


def train_front_end(src, landmarks, out, include=None, limit=None, hog_photos=2500, mine_photos=2000, epochs=24,
                    batch_size=64, lr=2e-3, seed=0, hog_c=5.0, progress=True, log=print, reuse_hog=False,
                    yaw_weight=0.0, hidden=128, widths=None):
    """All three steps (module doc); writes masked_hog.svm, landmarks.pt and front_end.json into `out`.
    Settings are checked before any work: hidden >= 1, yaw_weight >= 0, four widths >= 1 (default
    ``landmark_net.WIDTHS``).

    reuse_hog: keep the masked HOG filter already in `out` (steps 1-2 skipped; the landmark network
    and the box calibrations are made anew)."""
    import torch

    from .dlib_landmarks import _import_dlib
    from .landmark_net import HIDDEN, HOG_CONFIG_KEY, WIDTHS, save_landmark_net, update_config

    widths = tuple(WIDTHS if widths is None else widths)
    if len(widths) != len(WIDTHS) or min(int(w) for w in widths) < 1:
        raise DataError(f"--widths {','.join(str(w) for w in widths)}: give {len(WIDTHS)} channel counts of at "
                        f"least 1, one per stage (default {','.join(str(w) for w in WIDTHS)})")
    widths = tuple(int(w) for w in widths)
    if int(hidden) < 1:
        raise DataError(f"--hidden {hidden}: the hidden layer needs at least 1 unit (default {HIDDEN})")
    if not float(yaw_weight) >= 0:
        raise DataError(f"--yaw-weight {yaw_weight}: use 0 (every photo once an epoch) or more (turned heads "
                        "drawn more often; 8 draws a three-quarter view about 3x as often as a frontal one)")
    dlib = _import_dlib()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    photos = TrainingPhotos(src, landmarks, include, limit, seed, progress)
    log(f"{len(photos)} training photos with landmarks")
    from .landmark_net import read_config

    if reuse_hog:
        old = read_config(out).get(HOG_CONFIG_KEY)
        if not old or not (out / HOG_NAME).is_file():
            raise DataError(f"--reuse-hog: {out} holds no masked HOG filter (masked_hog.svm and front_end.json); "
                            "train without --reuse-hog first")
        used, hog_c = old["photos"], old["C"]
        log(f"keeping the masked-face HOG filter in {out} (trained on {used} masked photos)")
    else:
        boxes = scan_single_faces(photos, progress)
        log(f"{int(np.isfinite(boxes[:, 0]).sum())} photos with exactly one face found by dlib's HOG detector")
        t0 = time.time()
        hog, used = train_masked_hog(photos, boxes, hog_photos, seed, hog_c, progress)
        from ..fileio import atomic_open

        tmp = out / (HOG_NAME + ".new")
        hog.save(str(tmp))
        with open(tmp, "rb") as f, atomic_open(out / HOG_NAME, "wb") as g:
            g.write(f.read())
        tmp.unlink()
        log(f"masked-face HOG filter trained on {used} masked photos in {time.time() - t0:.0f} s")
    detectors = [dlib.get_frontal_face_detector(), dlib.fhog_object_detector(str(out / HOG_NAME))]
    calib, negatives = mine_boxes(photos, detectors, mine_photos, seed, progress)
    log(f"box calibrations for filters {sorted(calib)}; {sum(len(v) for v in negatives.values())} hard negatives")
    update_config(out, {HOG_CONFIG_KEY: {"file": HOG_NAME, "photos": used, "C": hog_c, "styles": list(TRAIN_STYLES),
                                         "calibration": {str(k): v for k, v in calib.items()}}})
    net = train_landmark_net(photos, negatives, calib, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                             progress=progress, log=log, yaw_weight=yaw_weight, hidden=hidden, widths=widths)
    config = {"photos": len(photos), "source": Path(src).name, "landmarks": Path(landmarks).name,
              "include": None if include is None else Path(include).name, "epochs": epochs, "batch_size": batch_size,
              "lr": lr, "seed": seed, "mask_prob": 0.7, "cut_prob": CUT_PROB, "neg_prob": 0.5,
              "styles": list(TRAIN_STYLES), "hog_photos": hog_photos, "mine_photos": mine_photos,
              "reuse_hog": bool(reuse_hog), "yaw_weight": float(yaw_weight), "hidden": int(hidden),
              "widths": list(widths)}
    save_landmark_net(net, out, config)
    return {"photos": len(photos), "hog_photos": used, "calibration": calib, "out": str(out)}
