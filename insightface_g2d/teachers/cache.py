"""Teacher embedding cache: run the teacher once over a dataset's clean faces, reuse every epoch.

A cache is a directory:
    embeddings.npy   N x 2 x D array (float16 by default, or float32): row i holds the teacher
                     embedding of clean face i and of its horizontal flip (index 0 clean, 1 flipped)
    manifest.json    {"format", "version", "count", "dim", "dtype", "fingerprint", "teacher",
                      "flipped": "computed" | "reused-clean", "complete", "created", "done", ...}
Rows are keyed by the sample index of the dataset whose `fingerprint()` the manifest records.

Builds are atomic and resumable: they write to DIR.partial and rename it to DIR only once every row
is written; an interrupted build leaves DIR.partial (complete=false, "done" rows) and the next build
with the same teacher and dataset continues from there. A directory whose manifest does not say
complete=true is never used. The embeddings file gets its whole size on disk when it is made, so a
full disk fails there (an OutputError; nothing is left) rather than while rows are written; a later
failed write keeps DIR.partial for the next build. A symbolic link at DIR.partial or inside it is
never written through.
"""
import datetime
import errno
import json
import os
import shutil

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError, DataError
from ..fileio import atomic_open, replace_folder, write_errors

FORMAT = "insightface_g2d.teacher_cache"
VERSION = 1
EMBEDDINGS, MANIFEST = "embeddings.npy", "manifest.json"
DTYPES = ("float16", "float32")


def cache_dataset(dataset):
    """The face dataset a cache is keyed by: `dataset` itself, or the base of a wrapper such as
    MaskedPairDataset (whose clean faces are its base's images)."""
    base = getattr(dataset, "base", None)
    if base is not None and hasattr(base, "fingerprint"):
        return base
    if not hasattr(dataset, "fingerprint"):
        raise DataError(f"{type(dataset).__name__} has no fingerprint(); teacher caches need a face dataset")
    return dataset


def rebuild_hint(directory, manifest=None, out=None):
    """The command that rebuilds the cache at `directory` (over it, --overwrite), or builds a new one
    at `out` (for another dataset: the cache at `directory` stays for its own)."""
    manifest = manifest or {}
    dataset = manifest.get("dataset_spec") or "DATASET"
    spec = manifest.get("teacher_spec") or {}
    if manifest.get("teacher_arg"):
        teacher = f"--teacher {manifest['teacher_arg']}"
    elif "onnx" in spec:
        teacher = f"--teacher-onnx {spec['onnx']}"
    elif spec.get("dlib"):
        teacher = "--teacher-dlib"
    elif "network" in spec:
        teacher = f"--teacher-network {spec['network']} --teacher-checkpoint {spec.get('checkpoint', 'PATH')}"
    else:
        teacher = "--teacher-network r100 --teacher-checkpoint PATH/backbone.pth"
    if manifest.get("flipped") == "reused-clean":  # a cache built with --flips reuse, by any teacher
        teacher += " --flips reuse"
    elif spec.get("dlib"):
        teacher += " --flips compute"
    if out is not None:
        return f"g2d-cache build --dataset {dataset} {teacher} --out {out}"
    return f"g2d-cache build --dataset {dataset} {teacher} --out {directory} --overwrite"


def _write_json(path, data):
    with atomic_open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)


def read_manifest(directory):
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise ConfigError(
            f"no teacher cache at {directory!r} (missing {MANIFEST}); build one with: {rebuild_hint(directory)}"
        )
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as err:
        raise DataError(f"teacher cache manifest {path!r} is unreadable ({err}); rebuild it") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path!r} is not an insightface_g2d teacher cache manifest")
    return manifest


def _check_dtype(dtype):
    dtype = np.dtype(dtype).name
    if dtype not in DTYPES:
        raise ConfigError(f"teacher cache dtype must be one of {DTYPES}, got {dtype!r}")
    return dtype


class TeacherCache:
    """Read-only, memory-mapped teacher embeddings; lookup(indices, flipped) -> N x D float32.

    With `dataset`, checks that the cache was built for it (same sample count and fingerprint);
    with `dim`, that the embedding size is `dim`.
    """

    differentiable = False
    # the "cache" type of embedders.registry: dict(cache="dir") or the directory as a string
    options = ()
    string_form = "a teacher cache directory (g2d-cache build)"

    def __init__(self, directory, dataset=None, dim=None):
        self.directory = os.fspath(directory)
        manifest = read_manifest(self.directory)
        hint = rebuild_hint(self.directory, manifest)
        if not manifest.get("complete"):
            raise DataError(
                f"teacher cache {self.directory!r} is incomplete ({manifest.get('done', 0)} of "
                f"{manifest.get('count')} rows); resume or rebuild it with: {hint}"
            )
        path = os.path.join(self.directory, EMBEDDINGS)
        try:
            self.embeddings = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read {path!r} ({err}); rebuild the cache with: {hint}") from None
        count, width = int(manifest["count"]), int(manifest["dim"])
        expected = (count, 2, width)
        if self.embeddings.shape != expected or self.embeddings.dtype.name != manifest["dtype"]:
            raise DataError(
                f"{path!r} holds {self.embeddings.dtype.name} {self.embeddings.shape} but its manifest says "
                f"{manifest['dtype']} {expected}; the cache is damaged, rebuild it with: {hint}"
            )
        self.manifest = manifest
        self.count, self.dim = count, width
        self.name = manifest.get("teacher", "cache")
        self.fingerprint = manifest.get("fingerprint")
        if dataset is not None:
            self.check_dataset(dataset)
        if dim is not None and int(dim) != self.dim:
            raise ConfigError(
                f"teacher cache {self.directory!r} holds {self.dim}-d embeddings of {self.name!r}, but "
                f"{int(dim)}-d are needed; use a cache of the right teacher or rebuild with: {hint}"
            )

    @classmethod
    def parse_string(cls, key, text):
        return {key: text} if os.path.isdir(text) else None

    @classmethod
    def check_files(cls, value, options, where):
        if not os.path.isdir(os.fspath(value)):
            raise CheckpointError(f"teacher cache {os.fspath(value)!r} ({where}) does not exist; build it with "
                                  "g2d-cache build or fix config.teacher.cache")

    @classmethod
    def from_spec(cls, value, options, ctx):
        if ctx.differentiable:
            raise ConfigError("a teacher cache holds fixed embeddings and cannot pass gradients; "
                              "use a PyTorch teacher (network + checkpoint) for the identity loss")
        if ctx.purpose != "teacher":
            raise ConfigError(f"{os.fspath(value)!r} is a teacher cache: it holds the embeddings of one training set "
                              "and cannot embed other faces; evaluate the teacher model itself")
        return cls(value, dataset=ctx.dataset)

    def check_dataset(self, dataset):
        """Raise ConfigError unless this cache was built for `dataset`."""
        ds = cache_dataset(dataset)
        n, fp = len(ds), ds.fingerprint()
        # a new cache for the dataset in use now, in a folder of its own: the old one is right for its
        # dataset and is not overwritten
        out = f"{os.fspath(self.directory).rstrip('/' + os.sep)}_{str(fp)[:8]}"
        hint = (rebuild_hint(self.directory, {**self.manifest, "dataset_spec": getattr(ds, "spec", None)}, out=out)
                + f", then set config.teacher = dict(cache={out!r})")
        if n != self.count:
            raise ConfigError(
                f"teacher cache {self.directory!r} has {self.count} rows but the dataset has {n} samples; "
                f"it was built for another dataset: build one for this dataset with: {hint}"
            )
        if fp != self.fingerprint:
            raise ConfigError(
                f"teacher cache {self.directory!r} was built for dataset fingerprint {self.fingerprint} but "
                f"this dataset's is {fp} (same size, different content or order); build one for this dataset with: "
                f"{hint}"
            )

    def __len__(self):
        return self.count

    def lookup(self, indices, flipped=None, device=None):
        """indices: N int64 sample indices, flipped: N bool (None = all False) -> N x D float32 tensor.

        Returned on `device` (default: the device of `indices`). Pass host (CPU) indices, as the
        training loop does: device indices must be copied back first, a sync on every lookup.
        """
        device = indices.device if device is None and torch.is_tensor(indices) else device
        idx = _host_array(indices)
        if idx.size and (idx.min() < 0 or idx.max() >= self.count):
            raise DataError(
                f"sample index {int(idx.max() if idx.max() >= self.count else idx.min())} is outside the "
                f"teacher cache {self.directory!r} (0..{self.count - 1})"
            )
        col = np.zeros_like(idx) if flipped is None else _host_array(flipped)
        rows = torch.from_numpy(np.asarray(self.embeddings[idx, col], dtype=np.float32))
        device = torch.device(device or "cpu")
        if device.type == "cuda":  # pinned: the copy to the GPU does not wait for queued work
            return rows.pin_memory().to(device, non_blocking=True)
        return rows.to(device)

    def to(self, device):
        return self

    def __repr__(self):
        return f"TeacherCache({self.directory!r}, teacher={self.name!r}, count={self.count}, dim={self.dim})"


def _host_array(values):
    """int64 numpy array of a tensor (copied from a device only when it is on one) or a sequence."""
    if torch.is_tensor(values):
        if values.device.type != "cpu":
            values = values.cpu()
        return values.reshape(-1).numpy().astype(np.int64)
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _base_manifest(ds, count, dim, dtype, teacher, flipped, extra):
    manifest = {
        "format": FORMAT, "version": VERSION, "count": int(count), "dim": int(dim), "dtype": dtype,
        "fingerprint": ds.fingerprint(), "teacher": teacher, "flipped": flipped,
        "complete": False, "done": 0,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    manifest.update({k: v for k, v in (extra or {}).items() if v is not None})
    return manifest


def _prepare_target(directory, overwrite, same):
    """Return True when `directory` already holds the same complete cache (nothing to do)."""
    if not os.path.exists(directory):
        return False
    try:
        manifest = read_manifest(directory)
    except (ConfigError, DataError):
        manifest = None
    if manifest is not None and manifest.get("complete") and same(manifest) and not overwrite:
        return True
    if not overwrite:
        what = "a different teacher cache" if manifest else "other files"
        raise ConfigError(f"{directory!r} already holds {what}; choose another --out or pass --overwrite")
    return False


def _remove(path):
    """Delete the file, link or folder at `path` (a link itself, never what it points to)."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)


def _new_partial(tmp, count, dim, dtype, manifest):
    """A fresh DIR.partial: the embeddings file with all its space on disk, and `manifest`. Removed
    again when any of this fails (a full disk shows here, before any teacher work)."""
    _remove(tmp)
    try:
        os.makedirs(tmp)
        path = os.path.join(tmp, EMBEDDINGS)
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(count, 2, dim))
        with open(path, "r+b") as f:
            try:
                os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
            except OSError as err:  # a file system that cannot allocate ahead writes pages as they come
                if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
        _write_json(os.path.join(tmp, MANIFEST), manifest)
        return arr
    except BaseException:
        _remove(tmp)
        raise


def _open_partial(tmp, count, dim, same):
    """(memmap, manifest) of a DIR.partial that an interrupted build of the same cache left, or None."""
    files = [os.path.join(tmp, name) for name in (EMBEDDINGS, MANIFEST)]
    if os.path.islink(tmp) or not os.path.isdir(tmp) or any(os.path.islink(f) for f in files):
        return None  # never resume through a link
    try:
        manifest = read_manifest(tmp)
        arr = np.load(files[0], mmap_mode="r+", allow_pickle=False)
    except Exception:  # any damage: start over
        return None
    if not same(manifest) or arr.shape != (count, 2, dim):
        return None
    return arr, manifest


def _publish(tmp, directory):
    """Atomically put the finished cache `tmp` at `directory` (replacing an old one)."""
    replace_folder(tmp, directory)


def _to_storage(array, dtype, what):
    array = np.asarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise DataError(f"{what} contains NaN or inf values; check the teacher and its input")
    if dtype == "float16" and np.abs(array).max(initial=0.0) > np.finfo(np.float16).max:
        raise DataError(f"{what} has values beyond the float16 range; use dtype float32")
    return array.astype(dtype)


def _image_batches(ds, start, batch_size, num_workers):
    from torch.utils.data import DataLoader, Subset

    def collate(items):
        return torch.from_numpy(np.stack([np.asarray(img, dtype=np.uint8) for img, _ in items]))

    subset = Subset(ds, range(start, len(ds)))
    return DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate)


def build_teacher_cache(teacher, dataset, directory, batch_size=128, num_workers=0, progress=True,
                        dtype="float16", overwrite=False, flush_every=20, dataset_spec=None, teacher_spec=None,
                        flips="computed", teacher_arg=None):
    """Run `teacher` over every clean face of `dataset` and its flip; write the cache to `directory`.

    flips: "computed" runs the teacher on each mirrored face too; "reused-clean" stores the clean
    embedding for the mirrored face as well (half the teacher time; the manifest records which).

    Resumes an interrupted build of the same teacher and dataset found at DIR.partial. Returns the
    finished TeacherCache. `dataset_spec`/`teacher_spec`/`teacher_arg` (g2d-cache build --teacher) are
    recorded only for the rebuild hint. A failed write is an OutputError (see the module doc).
    """
    from tqdm import tqdm

    directory = os.fspath(directory).rstrip(os.sep)
    dtype = _check_dtype(dtype)
    ds = cache_dataset(dataset)
    count, fp, dim = len(ds), ds.fingerprint(), int(teacher.dim)

    if flips not in ("computed", "reused-clean"):
        raise ConfigError(f"flips must be 'computed' or 'reused-clean', got {flips!r}")

    def same(m):
        return (m.get("fingerprint") == fp and m.get("count") == count and m.get("dim") == dim
                and m.get("teacher") == teacher.name and m.get("dtype") == dtype
                and m.get("flipped", "computed") == flips)

    if _prepare_target(directory, overwrite, same):
        return TeacherCache(directory, ds)
    tmp = directory + ".partial"
    found = _open_partial(tmp, count, dim, same)
    if found is not None:
        arr, manifest = found
    else:
        manifest = _base_manifest(ds, count, dim, dtype, teacher.name, flips,
                                  {"source": "build", "dataset_spec": dataset_spec, "teacher_spec": teacher_spec,
                                   "teacher_arg": teacher_arg})
        with write_errors(directory, tmp):
            arr = _new_partial(tmp, count, dim, dtype, manifest)
    done = int(manifest.get("done", 0))
    bar = tqdm(total=count, initial=done, unit="img", desc=f"teacher {teacher.name}", disable=not progress)
    with write_errors(directory, tmp, note=f"{tmp} keeps the rows written so far: the same command continues"):
        for step, images in enumerate(_image_batches(ds, done, batch_size, num_workers)):
            x = images.to(teacher.device).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
            clean = teacher.embed(x).detach().cpu().numpy()
            flipped = (clean if flips == "reused-clean"
                       else teacher.embed(torch.flip(x, dims=[3])).detach().cpu().numpy())
            n = x.shape[0]
            arr[done:done + n, 0] = _to_storage(clean, dtype, f"teacher embeddings of samples {done}..{done + n - 1}")
            arr[done:done + n, 1] = _to_storage(flipped, dtype, f"teacher embeddings of samples {done}..{done + n - 1}")
            done += n
            bar.update(n)
            if (step + 1) % flush_every == 0:
                arr.flush()  # rows first, then the manifest that says they are there
                manifest["done"] = done
                _write_json(os.path.join(tmp, MANIFEST), manifest)
        bar.close()
        if done != count:
            raise DataError(f"the dataset yielded {done} faces but has {count} samples; its __len__ is wrong")
        arr.flush()
        del arr
        manifest.update(done=count, complete=True)
        _write_json(os.path.join(tmp, MANIFEST), manifest)
        _publish(tmp, directory)
    return TeacherCache(directory, ds)


def _load_array(source, what):
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise DataError(f"{what} file {path!r} does not exist")
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read {what} file {path!r} as a .npy array ({err})") from None
    if torch.is_tensor(source):
        return source.detach().cpu().numpy()
    return np.asarray(source)


def import_embeddings(embeddings, dataset, directory, name, flipped=None, dtype="float16", overwrite=False,
                      dataset_spec=None, chunk=65536):
    """Make a cache from embeddings computed elsewhere: `embeddings` N x D in the dataset's sample
    order (array, tensor or .npy path), optionally `flipped` N x D for the flipped faces; without it
    the clean embeddings are reused for flipped faces and the manifest says "reused-clean".
    Returns the TeacherCache.
    """
    directory = os.fspath(directory).rstrip(os.sep)
    dtype = _check_dtype(dtype)
    ds = cache_dataset(dataset)
    clean = _load_array(embeddings, "embeddings")
    flip = None if flipped is None else _load_array(flipped, "flipped embeddings")
    if clean.ndim != 2:
        raise DataError(f"embeddings must be an N x D array, got shape {clean.shape}")
    count, dim = clean.shape
    if count != len(ds):
        raise ConfigError(
            f"embeddings have {count} rows but the dataset has {len(ds)} samples; they must be one row per "
            "sample, in the dataset's order"
        )
    if flip is not None and flip.shape != clean.shape:
        raise DataError(f"flipped embeddings have shape {flip.shape} but the clean ones {clean.shape}")
    _prepare_target(directory, overwrite, lambda m: False)
    tmp = directory + ".partial"
    manifest = _base_manifest(ds, count, dim, dtype, name, "reused-clean" if flip is None else "computed",
                              {"source": "import", "dataset_spec": dataset_spec})
    with write_errors(directory, tmp):
        arr = _new_partial(tmp, count, dim, dtype, manifest)
        try:
            for start in range(0, count, chunk):
                stop = min(count, start + chunk)
                rows = _to_storage(clean[start:stop], dtype, f"embeddings rows {start}..{stop - 1}")
                arr[start:stop, 0] = rows
                arr[start:stop, 1] = rows if flip is None else _to_storage(
                    flip[start:stop], dtype, f"flipped embeddings rows {start}..{stop - 1}")
            arr.flush()
            del arr
            manifest.update(done=count, complete=True)
            _write_json(os.path.join(tmp, MANIFEST), manifest)
            _publish(tmp, directory)
        except BaseException:
            _remove(tmp)  # an import is not resumed: nothing is left behind
            raise
    return TeacherCache(directory, ds)
