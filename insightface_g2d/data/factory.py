"""build_face_dataset(spec): one string names any face dataset the project reads.

Specs:
  "synthetic"                                  SyntheticFaces with its defaults
  "synthetic:ids=100,per_id=10,seed=3,offset=1000[,size=112]"
  "/data/ms1m"  (a folder with train.rec + train.idx, arcface_torch's layout)   -> RecordIOFaces
  "/data/ms1m/train.rec" (a .rec file; its .idx next to it)                      -> RecordIOFaces
  "/data/faces" (an image folder: /data/faces/<identity>/<image>.jpg)            -> ImageFolderFaces
("synthetic" is always the built-in dataset; write "./synthetic" for a folder of that name.)
"""
from pathlib import Path

from insightface_g2d.errors import ConfigError, DataError

SYNTHETIC_KEYS = {"ids": "num_identities", "per_id": "images_per_identity", "seed": "seed",
                  "offset": "identity_offset", "size": "size"}

EXPECTED = ("expected a folder with train.rec and train.idx, a .rec file, an image folder "
            "(root/<identity>/<image>.jpg), or 'synthetic[:ids=N,per_id=M,seed=S,offset=K]'")


def parse_synthetic_spec(spec):
    """'synthetic:ids=100,per_id=10' -> {'num_identities': 100, 'images_per_identity': 10}."""
    head, _, rest = spec.strip().partition(":")
    if head.strip() != "synthetic":
        raise DataError(f"not a synthetic dataset spec: {spec!r}")
    args = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = (s.strip() for s in part.partition("="))
        if not eq or key not in SYNTHETIC_KEYS:
            raise DataError(f"bad item {part!r} in dataset spec {spec!r}: use key=value with keys "
                            f"{', '.join(SYNTHETIC_KEYS)} (e.g. 'synthetic:ids=100,per_id=10,seed=3')")
        try:
            args[SYNTHETIC_KEYS[key]] = int(value)
        except ValueError:
            raise DataError(f"{key}={value!r} in dataset spec {spec!r} is not an integer") from None
    return args


def _merge(from_spec, kw, spec):
    both = sorted(set(from_spec) & set(kw))
    if both:
        raise ConfigError(f"{', '.join(both)} given both in dataset spec {spec!r} and as keyword arguments")
    return {**from_spec, **kw}


def face_labels(dataset):
    """int64 [len(dataset)]: every item's identity label, by the cheapest route the dataset offers
    (a `labels` array or property, a `labels()` method reading headers only, else every item).
    RecordIO records whose header is unreadable (with skip_bad) have label -1."""
    import numpy as np

    labels = getattr(dataset, "labels", None)
    if callable(labels):
        labels = labels()
    if labels is None:
        labels = [dataset[i][1] for i in range(len(dataset))]
    return np.asarray(labels, dtype=np.int64)


def _recordio(rec, idx, kw):
    if not idx.is_file():
        raise DataError(f"found {rec} but not its index {idx}; RecordIO needs both "
                        "(arcface_torch layout: train.rec + train.idx)")
    from insightface_g2d.data.recordio_dataset import RecordIOFaces  # lazy: only RecordIO users pay for it

    return RecordIOFaces(rec, idx_path=idx, **kw)


def build_face_dataset(spec, skip_bad=False, **kw):
    """Build the face dataset named by `spec` (see module docstring); its `spec` attribute is `spec`
    as a string (what error messages and rebuild commands quote). See `_build` for the rest."""
    dataset = _build(spec, skip_bad=skip_bad, **kw)
    dataset.spec = str(spec)
    return dataset


def _build(spec, skip_bad=False, **kw):
    """Build the face dataset named by `spec` (see module docstring); kw go to its constructor.

    skip_bad: RecordIO records and image files that cannot be read are replaced by the next good
    item instead of stopping the run (counted and logged; the synthetic faces have none).
    Returns a dataset following the project's protocol: len, (uint8 [112,112,3] RGB, int label)
    items, num_classes, fingerprint(). Raises DataError when spec names nothing usable.
    """
    if skip_bad:
        kw = {**kw, "skip_bad": True}
    if isinstance(spec, str) and spec.strip().split(":", 1)[0].strip() == "synthetic":
        kw.pop("skip_bad", None)
        from insightface_g2d.data.synthetic import SyntheticFaces

        return SyntheticFaces(**_merge(parse_synthetic_spec(spec), kw, spec))
    if not isinstance(spec, (str, Path)) or not str(spec).strip():
        raise DataError(f"dataset spec must be a non-empty string or path, got {spec!r}; {EXPECTED}")
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"dataset {str(path)!r} does not exist; {EXPECTED}")
    if path.is_dir():
        if (path / "train.rec").is_file():
            return _recordio(path / "train.rec", path / "train.idx", kw)
        if any(e.is_dir() and not e.name.startswith(".") for e in path.iterdir()):
            from insightface_g2d.data.folder import ImageFolderFaces

            return ImageFolderFaces(path, **kw)
        raise DataError(f"folder {str(path)!r} has neither train.rec nor identity sub-folders; {EXPECTED}")
    if path.suffix.lower() == ".rec":
        return _recordio(path, path.with_suffix(".idx"), kw)
    hint = f" (for RecordIO pass {path.with_suffix('.rec')})" if path.suffix.lower() == ".idx" else ""
    raise DataError(f"{str(path)!r} is a file but not a .rec file{hint}; {EXPECTED}")
