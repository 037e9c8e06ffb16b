"""Compare several models on several verification sets under several masking protocols.

Work order: for each target the images are decoded once and handed to the evaluation engine
(engine.evaluate_models): for each protocol the faces are masked once; then every model embeds that
one masked copy. So all models see byte-identical faces, and memory holds one decoded target plus
one masked copy at a time. Models are loaded before any
data, so a bad checkpoint fails in seconds, not after an hour of decoding.

Output (when out_dir is given): compare.md (accuracy table and TAR@FAR tables), compare.json
(every number, per model / target / protocol), roc_<target>.png (one curve per model x protocol), and
each model's decision thresholds (evaluation/thresholds.py, cosine units): thresholds_<label>.json in
out_dir, and <stem>.thresholds.json beside the model's file (checkpoint or .onnx) when its folder is
writable, so that FaceRecognizer finds them.
"""
import os
from dataclasses import dataclass

from tqdm import tqdm

from ..errors import ConfigError, DataError
from ..fileio import write_errors
from . import report
from .model_spec import unique_labels

DEFAULT_PROTOCOLS = ("clean", "masked-masked", "masked-clean")
TABLE_FARS = (1e-3,)


@dataclass
class Target:
    """One verification set: an insightface .bin, or an image folder with a pairs list."""

    name: str
    path: str                 # the .bin or the pairs file
    root: str = None          # image folder (pairs lists only)
    landmarks: str = None     # landmarks TSV to align with (pairs lists only; None = already aligned)

    def describe(self):
        d = dict(name=self.name, path=self.path)
        if self.root is not None:
            d.update(root=self.root, landmarks=self.landmarks)
        return d


def target_name(path):
    """"data/lfw.bin" -> "lfw"; "mlfw/pairs.txt" -> "mlfw" (a generic pairs file takes its folder's name)."""
    path = os.fspath(path).rstrip("/\\")
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem.lower().startswith("pairs"):
        return os.path.basename(os.path.dirname(os.path.abspath(path))) or stem
    return stem


def parse_target(text):
    """A target argument -> Target.

    "[NAME=]PATH.bin" or "[NAME=]pairs:PAIRS_FILE,root=IMAGE_DIR[,landmarks=LANDMARKS_TSV]"
    (pairs files as `evaluation.pairs.read_pairs` reads them: LFW layout or "path1 path2 label").
    """
    if isinstance(text, Target):
        return text
    text = os.fspath(text)
    name = None
    head, sep, tail = text.partition("=")
    if sep and head and not any(c in head for c in "/\\:,") and tail:
        name, text = head, tail
    if text.startswith("pairs:"):
        fields = text[len("pairs:"):].split(",")
        options = {}
        for field in fields[1:]:
            key, eq, value = field.partition("=")
            if not eq or key not in ("root", "landmarks") or not value:
                raise ConfigError(f"target {text!r}: expected pairs:PAIRS_FILE,root=DIR[,landmarks=TSV], "
                                  f"got {field!r}")
            options[key] = value
        if not fields[0] or "root" not in options:
            raise ConfigError(f"target {text!r}: a pairs target needs the pairs file and root=IMAGE_DIR "
                              "(e.g. pairs:lfw/pairs.txt,root=lfw/lfw-deepfunneled,landmarks=lfw/landmarks5.tsv)")
        return Target(name or target_name(fields[0]), fields[0], options["root"], options.get("landmarks"))
    if not text.lower().endswith(".bin"):
        raise ConfigError(f"target {text!r}: expected an insightface .bin file or "
                          "pairs:PAIRS_FILE,root=IMAGE_DIR[,landmarks=TSV]")
    return Target(name or target_name(text), text)


def load_target(target):
    """Target (or its text) -> (images uint8 2N x 112 x 112 x 3 RGB, issame bool N, folds int N or None)."""
    target = parse_target(target)
    if not os.path.isfile(target.path):
        raise DataError(f"target {target.name!r}: {target.path!r} does not exist")
    if target.root is None:
        from .binfile import load_bin

        images, issame = load_bin(target.path)
        return images, issame, None
    from .pairs import load_pair_images, read_pairs

    pairs = read_pairs(target.path)
    images = load_pair_images(target.root, pairs, target.landmarks)
    return images, pairs.issame, pairs.folds


def _check_inputs(models, targets, protocols):
    from .protocols import parse_protocol

    if not models:
        raise ConfigError("no models to compare; give at least one --model")
    if not targets:
        raise ConfigError("no targets; give at least one --target (a .bin file or pairs:...)")
    if not protocols:
        raise ConfigError("no protocols; give at least one --protocol")
    unique_labels([label for label, _ in models])
    for protocol in protocols:
        parse_protocol(protocol)
    names = [t.name for t in targets]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"two targets are named {name!r}; name them with NAME=PATH")
    for t in targets:
        for path in (t.path, t.root, t.landmarks):
            if path is not None and not os.path.exists(path):
                raise DataError(f"target {t.name!r}: {path!r} does not exist")


def _find_target(key, targets):
    """Name of the target called `key` or read from path `key`."""
    key = os.fspath(key)
    for t in targets:
        if key in (t.name, t.path):
            return t.name
    raise ConfigError(f"ROC target {key!r} is not one of the targets ({', '.join(t.name for t in targets)})")


def _spec_text(spec):
    return spec if isinstance(spec, (str, os.PathLike)) else type(spec).__name__


def compare(models, targets, protocols=DEFAULT_PROTOCOLS, seed=0, batch_size=64, device="cpu", out_dir=None,
            roc_target=None, nfolds=10, table_fars=TABLE_FARS, progress=True, flip=True):
    """Evaluate every model on every (target, protocol) with the evaluation engine.

    models: list of (label, spec), spec as `embedders.factory.build_embedder` takes
    ("network:checkpoint", "model.onnx", "dlib", an nn.Module or a FaceEmbedder). targets: .bin
    paths, "pairs:..." texts or Targets (see parse_target). protocols: names that
    `protocols.parse_protocol` takes (clean, masked-masked, masked-clean, style:<name>, ...).
    roc_target: name or path of the target whose ROC curves are plotted (default: the first target).
    flip: add the embedding of each mirrored face (arcface_torch's protocol) or not.
    Returns dict(models, targets, protocols, seed, results={label: {target: {protocol: metrics}}},
    roc={target: {label: {protocol: {fpr, tpr}}}}, files={...}) where metrics is
    `verification.metrics_to_json` output (accuracy, accuracy_std, tar_at_far{"1e-03": ..}, auc, ...).
    """
    from ..embedders.factory import build_embedder
    from .engine import evaluate_models
    from .thresholds import measured_set, thresholds_document
    from .verification import FAR_TARGETS, metrics_to_json

    models = list(models)
    targets = [parse_target(t) for t in targets]
    protocols = list(protocols)
    _check_inputs(models, targets, protocols)
    names = [t.name for t in targets]
    roc_name = names[0] if roc_target is None else _find_target(roc_target, targets)

    far_targets = sorted(set(FAR_TARGETS) | {float(f) for f in table_fars}, reverse=True)
    embedders = {label: build_embedder(spec, device=device) for label, spec in models}  # fail before any data
    results = {label: {name: {} for name in names} for label, _ in models}
    rocs = {label: {} for label, _ in models}
    measured = {label: [] for label, _ in models}
    steps = tqdm(total=len(targets) * len(protocols) * len(models), desc="compare", unit="run",
                 disable=not progress)
    for target, name in zip(targets, names):
        images, issame, folds = load_target(target)

        def done(label, protocol, metrics):
            results[label][name][protocol] = metrics_to_json(metrics)
            measured[label].append(measured_set(metrics["scores"], metrics["issame"], name, protocol, flip))
            if name == roc_name:
                fpr, tpr = report.downsample_roc(*metrics["roc"])
                rocs[label][protocol] = dict(fpr=fpr, tpr=tpr)
            steps.set_postfix_str(f"{label} | {name} | {protocol}")
            steps.update(1)

        evaluate_models(embedders, images, issame, protocols, seed=seed, batch_size=batch_size, flip=flip,
                        nfolds=nfolds, folds=folds, far_targets=far_targets, progress=progress, on_result=done,
                        name=name)
        del images
    steps.close()

    doc = dict(
        models=[dict(label=label, spec=_spec_text(spec)) for label, spec in models],
        targets=[t.describe() for t in targets],
        protocols=protocols,
        seed=int(seed),
        flip=bool(flip),
        table_fars=[report.far_key(f) for f in table_fars],
        results=results,
        roc={roc_name: rocs},
    )
    doc["thresholds"] = {label: thresholds_document(sets, model=_spec_text(spec))
                         for (label, spec), sets in zip(models, measured.values())}
    if out_dir is not None:
        doc["files"] = write_compare_outputs(doc, out_dir)
        doc["files"].update(write_model_thresholds(doc["thresholds"], dict(models), out_dir))
    return doc


def compare_markdown(doc):
    """Markdown: accuracy (mean ± std over 10 folds, %) and TAR@FAR (%) tables, models as rows and
    target x protocol as columns."""
    labels = [m["label"] for m in doc["models"]]
    names = [t["name"] for t in doc["targets"]]
    columns = [(n, p) for n in names for p in doc["protocols"]]
    header = ["model"] + [f"{n} {p}" for n, p in columns]
    parts = [f"Verification accuracy (%, mean ± std over folds), mask seed {doc['seed']}\n\n"]
    rows = []
    for label in labels:
        cells = [doc["results"][label][n][p] for n, p in columns]
        rows.append([label] + [report.fmt_percent(c["accuracy"], c["accuracy_std"]) for c in cells])
    parts.append(report.markdown_table(header, rows))
    for far in doc.get("table_fars", []):
        parts.append(f"\nTAR (%) at FAR={far}\n\n")
        rows = [[label] + [report.fmt_percent(doc["results"][label][n][p]["tar_at_far"].get(far))
                           for n, p in columns] for label in labels]
        parts.append(report.markdown_table(header, rows))
    return "".join(parts)


def write_compare_outputs(doc, out_dir):
    """Write compare.md, compare.json and one ROC PNG per plotted target; returns {kind: path}.
    Each file is written atomically, never through a symbolic link; a failed write is an OutputError."""
    with write_errors(out_dir):
        return _write_compare_files(doc, out_dir)


def _write_compare_files(doc, out_dir):
    files = dict(
        markdown=report.write_text(os.path.join(out_dir, "compare.md"), compare_markdown(doc)),
        json=os.path.join(out_dir, "compare.json"),
    )
    for name, per_model in doc["roc"].items():
        curves = {label: {p: (c["fpr"], c["tpr"]) for p, c in per_protocol.items()}
                  for label, per_protocol in per_model.items()}
        files[f"roc_{name}"] = report.plot_protocol_rocs(curves, os.path.join(out_dir, f"roc_{name}.png"),
                                                         title=f"ROC on {name}")
    report.write_json(files["json"], dict(doc, files=files))
    return files


def write_model_thresholds(documents, specs, out_dir):
    """thresholds_<label>.json in out_dir for every model, and a copy beside each model file in a
    writable folder; returns {"thresholds_<label>": path, "thresholds_<label>_beside": path}."""
    import re

    from .thresholds import model_file_of, thresholds_path, write_thresholds

    files = {}
    for label, document in documents.items():
        safe = re.sub(r"[^\w.-]+", "_", label).strip("._") or "model"
        files[f"thresholds_{safe}"] = write_thresholds(os.path.join(out_dir, f"thresholds_{safe}.json"), document)
        model_file = model_file_of(specs[label])
        if model_file is not None and os.access(os.path.dirname(os.path.abspath(model_file)), os.W_OK):
            files[f"thresholds_{safe}_beside"] = write_thresholds(thresholds_path(model_file), document)
    return files


def parse_far(text):
    try:
        far = float(text)
    except ValueError:
        raise ConfigError(f"FAR {text!r} is not a number (e.g. 1e-3)") from None
    if not 0 < far < 1:
        raise ConfigError(f"FAR must be between 0 and 1, got {text}")
    return far

