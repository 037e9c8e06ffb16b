"""FaceRecognizer: photos in; faces, embeddings, same-person decisions and gallery searches out.

    from insightface_g2d import FaceRecognizer
    rec = FaceRecognizer("work_dirs/lfw/g2d_pretrained")      # a run folder, NETWORK:CKPT, .onnx, dlib
    rec.verify("masked.jpg", "id_photo.jpg")                 # Verification(score=0.71, same=True, ...)

Inside: the kit's masked-face front end (`faces.finders`, "g2d" by default) finds the faces and their
five points, `data.align.align_face` aligns each onto the 112 x 112 ArcFace template, and the model
embeds the crop exactly as `g2d-eval pairs` does (`FaceEmbedder.embed_images`: the face plus its
mirror image unless flip=False), L2-normalised. So a crop's embedding here is the one evaluation
scores, and thresholds measured there apply here.

Scores are cosine similarities (-1..1); same person when score >= threshold. The threshold comes from
the model's thresholds file (evaluation/thresholds.py: `<stem>.thresholds.json` beside the model
file, written by `g2d-eval compare` or `g2d-eval pairs --write-thresholds`; dlib's ResNet has one
shipped with the kit), picked by name ("far=1e-3" by default, "best-accuracy", "clean:far=1e-2",
...). Without a file the recognizer uses DEFAULT_THRESHOLD and its results say so.
"""
import numpy as np

from ..errors import ConfigError, DataError
from .photos import is_single_photo, load_photo, photo_name
from .results import UNKNOWN, Face, FaceList, Match, SearchResult, Verification

# Cosine threshold when the model has no thresholds file: a usual operating point of ArcFace-trained
# 512-d models (insightface's own examples use 0.2-0.3). Models whose cosines run high (dlib's
# ResNet: different people ~0.83) need their own: measure them with `g2d-eval pairs --write-thresholds`.
DEFAULT_THRESHOLD = 0.3
DEFAULT_NAME = f"default {DEFAULT_THRESHOLD} (no thresholds file for this model; measure one with " \
               "g2d-eval pairs --write-thresholds)"


class FaceRecognizer:
    """model: see model_source.resolve_model (a `g2d-face export` bundle runs without PyTorch, with its
    own front end for detector "g2d"); detector: a `--detector` value of faces.finders ("g2d",
    "g2d:FOLDER", "dlib", an SCRFD .onnx); thresholds: a thresholds file (default: found beside the
    model); threshold: the default threshold name ("far=1e-3") or a number (cosine); flip: add the
    mirror image's embedding (None: as the thresholds were measured, else True, evaluation's default);
    pick: which face embed/verify use when a photo holds several ("largest" or "center"); threads: CPU
    threads of a bundle's onnxruntime session (None: onnxruntime's default)."""

    def __init__(self, model="dlib", detector="g2d", device="cpu", thresholds=None, threshold=None, flip=None,
                 pick="largest", batch_size=64, threads=None):
        from ..faces.finders import build_finder, finder_spec
        from ..evaluation.thresholds import read_thresholds
        from .bundle import Bundle
        from .model_source import resolve_model, thresholds_file_for

        spec, self.model_file, shipped = resolve_model(model)
        self.model = spec if isinstance(spec, str) else self.model_file or getattr(spec, "name", None) or str(spec)
        if isinstance(spec, Bundle):  # onnxruntime, and the bundle's own front end for "g2d"
            if str(device) != "cpu":
                raise ConfigError(f"a bundle runs on onnxruntime's CPU provider, not {device}: leave out the device, "
                                  "or run the model the bundle was exported from")
            self.embedder = spec.embedder(threads)
            detector = f"g2d:{spec.front_end}" if detector in (None, "g2d") else detector
            flip = spec.manifest["recognizer"]["flip"] if flip is None else flip
        else:
            from ..embedders.factory import build_embedder

            self.embedder = build_embedder(spec, device=device)
        self.finder = build_finder(finder_spec(detector, pick=pick))
        self.batch_size = int(batch_size)
        self.thresholds_file = thresholds if thresholds is not None else thresholds_file_for(self.model_file, shipped)
        self.thresholds = read_thresholds(self.thresholds_file) if self.thresholds_file is not None else None
        measured = {s.get("flip") for s in self.thresholds["sets"].values()} if self.thresholds else set()
        self.flip = bool(flip) if flip is not None else (measured.pop() if len(measured) == 1 else True)
        self.threshold = threshold

    # ------------------------------------------------------------------ faces and embeddings

    def faces(self, photo, bgr=False):
        """FaceList of a photo (every face found, the picked one first; empty with a reason when
        none), or a list of FaceLists for a batch (list of photos or [N, H, W, 3] array)."""
        if is_single_photo(photo):
            return self._faces_of([photo], bgr)[0]
        return self._faces_of(list(photo), bgr)

    def embed(self, photo, bgr=False):
        """The picked face's embedding (float32 [dim], L2-normalised), or None when the photo holds
        no face (`faces(photo).reason` says why); a list of them for a batch."""
        lists = self._faces_of([photo] if is_single_photo(photo) else list(photo), bgr, all_faces=False)
        out = [f[0].embedding if f else None for f in lists]
        return out[0] if is_single_photo(photo) else out

    def embed_crops(self, crops):
        """uint8 [N, 112, 112, 3] RGB aligned faces -> float32 [N, dim] L2-normalised embeddings,
        exactly as `g2d-eval pairs` embeds them (same flip convention)."""
        from ..evaluation.verification import l2_normalize

        crops = np.asarray(crops)
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[1:] != (112, 112, 3) or crops.dtype != np.uint8:
            raise DataError(f"aligned faces must be uint8 [N, 112, 112, 3], got {crops.dtype} {crops.shape}")
        if not len(crops):
            return np.zeros((0, self.embedder.dim), np.float32)
        emb = self.embedder.embed_images(crops, self.batch_size, self.flip, progress=False)
        return l2_normalize(emb).astype(np.float32)

    def _faces_of(self, photos, bgr, all_faces=True):
        from ..data.align import align_face

        lists, crops = [], []
        for i, photo in enumerate(photos):
            name = photo_name(photo, None if len(photos) == 1 else i)
            try:
                img = load_photo(photo, bgr)
                findings = self._find(img, all_faces)
            except DataError as err:
                lists.append(FaceList(reason=str(err), name=name))
                continue
            if not findings or findings[0].landmarks is None:
                reason = findings[0].reason if findings else "no face found"
                lists.append(FaceList(reason=f"{name}: {reason}", name=name))
                continue
            faces = []
            for f in findings:
                crop = align_face(img, f.landmarks, 112, where=f"landmarks found in {name}")
                faces.append(Face(f.box, f.landmarks, f.score, None, f.source, crop))
                crops.append(crop)
            lists.append(FaceList(faces, name=name))
        if crops:
            embeddings = iter(self.embed_crops(np.stack(crops)))
            for faces in lists:
                for face in faces:
                    face.embedding = next(embeddings)
        return lists

    def _find(self, img, all_faces):
        """The finder's Findings: every face (finders with find_all) or the picked one."""
        if all_faces and hasattr(self.finder, "find_all"):
            return self.finder.find_all(img)  # no face: one Finding saying why
        return [self.finder.find(img)]

    # ------------------------------------------------------------------ decisions

    def resolve_threshold(self, threshold=None):
        """(threshold, name): a number as given; a name from the thresholds file; without either the
        recognizer's default (its `threshold`, else the file's default, else DEFAULT_THRESHOLD)."""
        from ..evaluation.thresholds import pick_threshold

        threshold = self.threshold if threshold is None else threshold
        if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
            return float(threshold), f"given {float(threshold):g}"
        if self.thresholds is None:
            if threshold is not None:
                raise ConfigError(f"threshold {threshold!r} asked for by name, but this model has no thresholds file; "
                                  "write one with g2d-eval pairs --write-thresholds or pass a number (cosine)")
            return DEFAULT_THRESHOLD, DEFAULT_NAME
        value, where = pick_threshold(self.thresholds, threshold)
        return value, f"{where} ({self.thresholds_file})"

    def verify(self, a, b, threshold=None, bgr=False):
        """Verification of photo a against photo b (each: its picked face)."""
        value, name = self.resolve_threshold(threshold)
        fa, fb = self._faces_of([a, b], bgr, all_faces=False)
        missing = [f.reason for f in (fa, fb) if not f]
        if missing:
            return Verification(None, False, value, name, reason="; ".join(missing))
        score = float(np.dot(fa[0].embedding.astype(np.float64), fb[0].embedding.astype(np.float64)))
        return Verification(score, score >= value, value, name)

    def enroll(self, photos_by_identity, bgr=False):
        """(Gallery, rows): embeds {identity: [photos]} (each photo's picked face); rows report each
        photo: (identity, photo name, "enrolled" or "no face", detection score, reason)."""
        from .gallery import Gallery

        names, labels, embeddings, rows = [], [], [], []
        identities = sorted(photos_by_identity)
        for label, identity in enumerate(identities):
            photos = list(photos_by_identity[identity])
            for i, faces in enumerate(self._faces_of(photos, bgr, all_faces=False)):
                name = photo_name(photos[i], i)
                if faces:
                    names.append(name)
                    labels.append(label)
                    embeddings.append(faces[0].embedding)
                    rows.append((identity, name, "enrolled", faces[0].detection_score, ""))
                else:
                    rows.append((identity, name, "no face", float("nan"), faces.reason))
        dim = self.embedder.dim
        emb = np.stack(embeddings).astype(np.float32) if embeddings else np.zeros((0, dim), np.float32)
        return Gallery(identities, emb, np.asarray(labels, np.int64), names, self.model), rows

    def search(self, probe, gallery, top_k=5, threshold=None, bgr=False):
        """SearchResult of a probe photo (its picked face) against a Gallery (or a gallery file, or
        {identity: [photos]} enrolled on the fly): identities ranked by their best cosine score;
        "unknown" when the best is under the threshold."""
        from .gallery import Gallery, load_gallery

        if isinstance(gallery, dict):
            gallery = self.enroll(gallery, bgr)[0]
        elif not isinstance(gallery, Gallery):
            gallery = load_gallery(gallery)
        value, name = self.resolve_threshold(threshold)
        faces = self._faces_of([probe], bgr, all_faces=False)[0]
        if not faces:
            return SearchResult(UNKNOWN, None, [], value, name, reason=faces.reason)
        if gallery.embeddings.shape[1] != len(faces[0].embedding):
            raise DataError(f"the gallery's embeddings are {gallery.embeddings.shape[1]}-d, this model's "
                            f"{len(faces[0].embedding)}-d: enroll the gallery with the same model")
        matches = gallery.rank(faces[0].embedding, top_k)
        best = matches[0] if matches else Match(UNKNOWN, float("nan"))
        known = bool(matches) and best.score >= value
        return SearchResult(best.identity if known else UNKNOWN, best.score if matches else None, matches, value, name,
                            reason="" if known else ("empty gallery" if not matches else
                                                     f"best match {best.identity} scored {best.score:.3f}, under "
                                                     f"the threshold {value:.3f}"))
