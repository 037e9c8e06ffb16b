"""The real-face comparison: G2D against its baselines on LFW, with dlib's ResNet as the teacher.

Protocol (docs/real_faces.md): train on the people of View 1 DevTrain
(9,525 images of 4,038 people), measure on View 1 DevTest pairs (500 + 500 pairs of 1,711 other
people). View 2 shares people with DevTrain: nothing trained here is ever reported on it (only the
teacher, which never saw LFW, is checked there).

Arms, each from a config in recipes/configs (with `--set`-style overrides where an arm is another
arm's config with one thing changed), trained one after another (or side by side) on the same
machine:
  teacher            dlib's ResNet run directly on the (masked) test faces: what a user would settle for
  arcface_masked     a small network trained with labels alone (CosFace) on masked + clean faces
  distill            the small network trained end to end by relational distillation, no inpainting
  g2d                the small network as G2D from scratch: inpaint -> reform
  teacher_finetuned  dlib's ResNet started from its own weights, distilled on masked + clean faces
  g2d_pretrained     G2D cut from dlib's ResNet after layer2, started from its weights: frozen encoder, reform
  g2d_real           g2d_pretrained trained on real-photo degradations of the student's crop too (masks.degrade)
  teacher_finetuned_real  teacher_finetuned, likewise
Protocols: clean, and masked-clean / masked-masked with the mask styles seen in training and with
styles held out from it (n95, textured). Masks of the test faces are seeded per image.
"""
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataError
from ..evaluation.report import markdown_table, plot_protocol_rocs, write_json, write_text

SEEN_STYLES = ("surgical", "kn95", "cloth", "patterned")
UNSEEN_STYLES = ("n95", "textured")
PROTOCOLS = (
    "clean",
    "masked-clean:" + "+".join(SEEN_STYLES),
    "masked-masked:" + "+".join(SEEN_STYLES),
    "masked-clean:" + "+".join(UNSEEN_STYLES),
    "masked-masked:" + "+".join(UNSEEN_STYLES),
)
COLUMNS = ("clean", "masked-clean seen", "masked-masked seen", "masked-clean unseen", "masked-masked unseen")
DEFAULT_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lfw"


@dataclass
class Arm:
    name: str
    label: str
    config: str = None        # recipes/configs/<file>; None: the teacher itself
    uses_teacher: bool = True
    overrides: tuple = ()     # KEY=VALUE changes to that config (as g2d-train --set)


ARMS = (
    Arm("teacher", "(a) teacher (dlib ResNet) on the test faces"),
    Arm("arcface_masked", "(b) ArcFace + mask augmentation", "lfw_arcface_masked.py", uses_teacher=False),
    Arm("distill", "(c) plain distillation (no inpainting)", "lfw_distill.py"),
    Arm("g2d", "(d) G2D", "lfw_g2d.py"),
    Arm("teacher_finetuned", "(e) teacher fine-tuned", "lfw_teacher_finetuned.py"),
    Arm("g2d_pretrained", "(f) G2D from a pretrained start", "lfw_g2d_pretrained.py"),
    Arm("g2d_real", "(g) (f) + real-photo degradation", "lfw_g2d_pretrained.py", overrides=("masks.degrade=True",)),
    Arm("teacher_finetuned_real", "(h) (e) + real-photo degradation", "lfw_teacher_finetuned.py",
        overrides=("masks.degrade=True",)),
)


def lfw_root(root=None):
    """The LFW folder: `root`, else $G2D_LFW_ROOT, else ../shared/data/lfw beside the checkout."""
    path = Path(root or os.environ.get("G2D_LFW_ROOT") or DEFAULT_ROOT)
    needed = ("lfw-deepfunneled", "landmarks5.tsv", "peopleDevTrain.txt", "pairsDevTest.txt")
    missing = [n for n in needed if not (path / n).exists()]
    if missing:
        raise DataError(f"{str(path)!r} is not an LFW folder (missing {', '.join(missing)}); pass --lfw-root or "
                        "set G2D_LFW_ROOT to the folder with lfw-deepfunneled/, landmarks5.tsv and the View 1 files")
    return path


def lfw_target(name, root, pairs_file):
    """The evaluation target string of an LFW pairs file (aligned with the shipped landmarks)."""
    return (f"{name}=pairs:{root / pairs_file},root={root / 'lfw-deepfunneled'},"
            f"landmarks={root / 'landmarks5.tsv'}")


def prepare_training_data(root, out, progress=True, need_cache=True):
    """The aligned DevTrain faces in out/devtrain and, with `need_cache`, dlib's teacher cache of them
    in out/cache_dlib (each made once, reused after). Returns (devtrain, images, people, cache,
    minutes the cache took or None when it was not built now)."""
    from .lfw_data import build_dlib_cache, prepare_devtrain

    devtrain, count, people = prepare_devtrain(root, out / "devtrain", progress=progress)
    cache = out / "cache_dlib"
    minutes = None
    if need_cache and not (cache / "manifest.json").is_file():
        t1 = time.time()
        build_dlib_cache(devtrain, cache, progress=progress)
        minutes = round((time.time() - t1) / 60, 1)
    return devtrain, count, people, cache, minutes


def find_arm(name):
    for arm in ARMS:
        if arm.name == name:
            return arm
    from ..errors import suggest

    raise ConfigError(f"unknown arm {name!r}{suggest(name, [a.name for a in ARMS])}; arms: "
                      f"{', '.join(a.name for a in ARMS)}")


def config_path(arm):
    from ..training.config import packaged_base_path

    return packaged_base_path().parent / arm.config


def load_arm_config(arm, overrides=()):
    """The arm's config: its recipe with the arm's own overrides, then `overrides` (KEY=VALUE)."""
    from ..training.config import load_config

    return load_config(str(config_path(arm)), overrides=list(arm.overrides) + list(overrides))


def train_arm(arm, out, devtrain, cache, threads=1, overrides=()):
    """Train one arm with g2d-train's machinery; returns its run summary (with "seconds")."""
    from ..training.runner import run_training

    sets = [f"rec={str(devtrain)!r}"]
    if arm.uses_teacher:
        sets.append(f"teacher.cache={str(cache)!r}")
    cfg = load_arm_config(arm, sets + list(overrides))
    cfg.cpu_threads = int(threads)
    return run_training(cfg, output=str(out / arm.name), device="cpu", resume="auto", evaluate=False)


def arm_model_spec(arm, out):
    """Model spec (for embedders.factory.build_embedder) of a trained arm."""
    if arm.config is None:
        return "dlib"
    summary = json.loads((out / arm.name / "run_summary.json").read_text())
    if summary.get("status") != "finished" or not summary.get("model"):
        raise ConfigError(f"arm {arm.name!r} has not finished training in {out / arm.name}; run the comparison again")
    return f"{summary['network']}:{summary['model']}"


def comparison_rows(results, times):
    """Rows [label, minutes, accuracies...] of the comparison table; results {label: {protocol: metrics}}."""
    rows = []
    for label, per in results.items():
        minutes = times.get(label)
        rows.append([label, "-" if minutes is None else f"{minutes:.1f}"] +
                    [f"{100 * per[p]['accuracy']:.2f}" for p in PROTOCOLS])
    return rows


def comparison_markdown(results, times, meta):
    header = ["model", "train min"] + list(COLUMNS)
    table = markdown_table(header, comparison_rows(results, times), align=["l"] + ["r"] * (len(header) - 1))
    lines = [
        "# Real faces: LFW View 1 DevTest (1,000 pairs, people disjoint from training)\n",
        "Verification accuracy (%), 10-fold as arcface_torch, no flip; test masks seeded per image (seed 0). "
        f"Seen styles: {', '.join(SEEN_STYLES)}; unseen (held out from training): {', '.join(UNSEEN_STYLES)}.\n",
        table,
        "",
        f"Training set: {meta.get('train_images')} images of {meta.get('train_people')} people (View 1 DevTrain). "
        f"Train min: wall time of each arm's training on this machine ({meta.get('threads')} torch thread(s) each"
        f"{'; the student arms trained simultaneously' if meta.get('parallel') else ''}); "
        f"the dlib teacher cache, built once for every arm that distils, took {meta.get('cache_minutes', '-')} min.",
    ]
    return "\n".join(lines) + "\n"


def evaluate_arm(arm, spec, out, root, progress=True):
    """{protocol: metrics} of one arm on DevTest, stored in out/eval/<arm>.json and reused while
    the model file is unchanged."""
    from ..evaluation.compare import compare, write_model_thresholds

    stamp = spec
    path = spec.split(":", 1)[-1]
    if os.path.isfile(path):
        stamp = f"{spec}@{os.path.getmtime(path)}"
    stored = out / "eval" / f"{arm.name}.json"
    if stored.is_file():
        doc = json.loads(stored.read_text())
        if (doc.get("stamp") == stamp and doc.get("protocols") == list(PROTOCOLS)
                and all(isinstance(c.get("fpr"), list) for c in doc.get("roc", {}).values())):
            return doc
    target = lfw_target("devtest", root, "pairsDevTest.txt")
    doc = compare([(arm.label, spec)], [target], protocols=PROTOCOLS, seed=0, flip=False, progress=progress)
    # the arm's thresholds, measured on DevTest, beside its model (FaceRecognizer reads them there)
    if doc.get("thresholds"):
        write_model_thresholds({arm.name: doc["thresholds"][arm.label]}, {arm.name: spec}, str(out / "eval"))
    doc = dict(stamp=stamp, protocols=list(PROTOCOLS), results=doc["results"][arm.label]["devtest"],
               roc=doc["roc"]["devtest"][arm.label])
    write_json(stored, doc)
    return doc


def plot_comparison_roc(docs, path):
    """One ROC figure: colour = arm, line style = protocol (clean, masked-clean seen / unseen)."""
    shown = (PROTOCOLS[0], PROTOCOLS[1], PROTOCOLS[3])
    curves = {label: {COLUMNS[PROTOCOLS.index(p)]: (doc["roc"][p]["fpr"], doc["roc"][p]["tpr"]) for p in shown}
              for label, doc in docs.items()}
    return plot_protocol_rocs(curves, str(path), title="LFW DevTest: clean and masked-clean (seen / unseen styles)")


def _train_and_time(arm, out, devtrain, cache, threads, overrides):
    summary = train_arm(arm, out, devtrain, cache, threads, overrides)
    if summary.get("status") != "finished":
        raise ConfigError(f"arm {arm.name!r} stopped ({summary.get('status')}); run the same command to resume")
    seconds = sum(summary.get("stage_seconds", {}).values())
    if seconds > 0:  # 0 when every stage was already finished: keep the time measured then
        write_json(out / arm.name / "arm_time.json", dict(seconds=seconds, stage_seconds=summary["stage_seconds"]))


def arm_minutes(arm, out):
    """Training wall time of an arm in minutes (None for the teacher or when never measured)."""
    path = out / arm.name / "arm_time.json"
    return json.loads(path.read_text())["seconds"] / 60 if path.is_file() else None


def _train_in_parallel(arms, out, root, threads, overrides, log):
    """Train `arms` as simultaneous processes (same machine, same time: equal conditions for all)."""
    import subprocess
    import sys

    procs = []
    for arm in arms:
        cmd = [sys.executable, "-m", "insightface_g2d.cli.lfw", "compare", "--out", str(out), "--lfw-root", str(root),
               "--arm", arm.name, "--train-only", "--threads", str(threads)]
        for setting in overrides.get(arm.name, ()):
            cmd += ["--set", f"{arm.name}:{setting}"]
        log_path = out / f"{arm.name}.log"
        log(f"== arm {arm.name}: {arm.label} (log {log_path})")
        procs.append((arm, subprocess.Popen(cmd, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)))
    failed = [arm.name for arm, proc in procs if proc.wait() != 0]
    if failed:
        raise ConfigError(f"arm(s) {', '.join(failed)} failed; see {out}/<arm>.log, fix, and run the same command "
                          "(finished arms are kept)")


def run_comparison(out, root=None, arms=None, threads=1, overrides=None, progress=True, log=print, parallel=False,
                   train_only=False):
    """Prepare data and teacher cache, train every arm (one after another, or all at once with
    `parallel`), evaluate all on DevTest; write out/comparison.md, comparison.json,
    roc_devtest.png and copy the G2D inpainting previews. Finished pieces are reused, so the same
    command resumes. Returns the markdown (None with `train_only`)."""
    from ..data.image_io import save_image_bytes

    out = Path(out)
    root = lfw_root(root)
    arms = [find_arm(a) for a in (arms or [a.name for a in ARMS])]
    overrides = overrides or {}
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "comparison_meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta["threads"] = int(threads)
    if not train_only:
        meta["parallel"] = bool(parallel)

    t0 = time.time()
    devtrain, count, people, cache, cache_minutes = prepare_training_data(
        root, out, progress, need_cache=any(a.uses_teacher and a.config for a in arms))
    meta.update(train_images=count, train_people=people)
    if cache_minutes is not None:
        meta["cache_minutes"] = cache_minutes
    students = [arm for arm in arms if arm.config is not None]
    if parallel and len(students) > 1:
        _train_in_parallel(students, out, root, threads, overrides, log)
    else:
        for arm in students:
            log(f"== arm {arm.name}: {arm.label}")
            _train_and_time(arm, out, devtrain, cache, threads, overrides.get(arm.name, ()))
    if train_only:
        return None
    times = {arm.label: arm_minutes(arm, out) for arm in arms}
    docs = {}
    for arm in arms:
        log(f"== evaluating {arm.name}")
        docs[arm.label] = evaluate_arm(arm, arm_model_spec(arm, out), out, root, progress)
    results = {label: doc["results"] for label, doc in docs.items()}
    text = comparison_markdown(results, times, meta)
    write_text(out / "comparison.md", text)
    plot_comparison_roc(docs, out / "roc_devtest.png")
    write_json(out / "comparison.json", dict(meta=meta, protocols=list(PROTOCOLS), results=results))
    previews = out / "g2d" / "previews"
    if previews.is_dir():
        for png in sorted(previews.glob("*final*.png")):
            save_image_bytes(out / f"g2d_{png.name}", png.read_bytes())
    meta["total_minutes"] = round((time.time() - t0) / 60, 1)
    write_json(meta_path, meta)
    return text
