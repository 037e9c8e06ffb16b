"""Verification at the end of a run: the trained models on clean and masked pairs of held-out faces.

`config.eval.pairs` is a `.bin` verification set or a dataset spec (e.g. held-out synthetic
identities "synthetic:ids=100,per_id=8,seed=2048,offset=100000"), from which `num_pairs` pairs are
drawn with a fixed seed (half genuine). Every model in `config.eval.models` is evaluated under
each protocol of `evaluation.protocols` (masks drawn with `eval.seed`); the table, JSON and ROC
curves go to eval.md / eval.json / eval_roc.png in the output folder.
"""
import copy
import os

import numpy as np

from ..errors import ConfigError
from ..evaluation.draw_pairs import make_pairs
from .logger import get_logger

NUM_PAIRS_OPTION = "config.eval.num_pairs"


def num_pairs(ev):
    """The number of pairs drawn from a dataset spec of config.eval (default 1000)."""
    return int(ev.get("num_pairs") or 1000)


def dataset_labels(dataset):
    from ..data.factory import face_labels

    return face_labels(dataset)


def load_pairs(ev, skip_bad=False, option=NUM_PAIRS_OPTION):
    """(images uint8 [2N, 112, 112, 3], issame bool [N]) of the evaluation set.

    skip_bad: records of a RecordIO / image-folder spec that cannot be read are left out of the
    pairs (header unreadable) or replaced by the next good item (image unreadable). option: how
    the error names the pair count when the dataset allows fewer distinct pairs."""
    source = ev.get("pairs")
    if not source:
        raise ConfigError("config.eval.enabled needs config.eval.pairs: a .bin file or a dataset spec of "
                          "held-out identities (e.g. 'synthetic:ids=100,per_id=8,offset=100000')")
    if str(source).lower().endswith(".bin"):
        from ..evaluation.binfile import load_bin

        return load_bin(source)
    from ..data.factory import build_face_dataset

    dataset = build_face_dataset(source, skip_bad=skip_bad)
    index, issame = make_pairs(dataset_labels(dataset), num_pairs(ev), ev.get("seed", 0), option)
    flat = index.reshape(-1)
    cache = {}
    images = np.empty((len(flat), 112, 112, 3), np.uint8)
    for k, i in enumerate(flat):
        if i not in cache:
            cache[i] = np.asarray(dataset[int(i)][0])
        images[k] = cache[i]
    return images, issame


def default_models(stages):
    """{label: model spec} each stage asks to be reported (Stage.eval_models); the stages that yield
    model.pt last."""
    models = {}
    for stage in sorted(stages, key=lambda s: s.final_priority):
        models.update(stage.eval_models())
    return models


def resolve_model(spec, models, stages, device):
    """An embedder for a model spec: "model" (this run's backbone), "stage:NAME" (a network of this
    run), or any spec of `embedders.factory.build_embedder`."""
    from ..embedders.factory import build_embedder
    from ..embedders.torch_network import TorchEmbedder
    from .kinds import final_network, network_stage

    if spec == "model":
        name = final_network(stages).module
        return TorchEmbedder(copy.deepcopy(models.get(name)), device)

    def run_network(name):
        """The network stage `name` of this run trained (Stage.network)."""
        stage = network_stage(stages, name)
        if stage is None:
            raise ConfigError(f"config.eval.models: stage:{name} is no stage of this run that trains a network "
                              f"(stages: {', '.join(s.name for s in stages)})")
        return copy.deepcopy(models.get(stage.network().module))

    return build_embedder(spec, device=device, run_network=run_network)


def evaluate_run(cfg, models, stages, output, device="cpu"):
    """Evaluate the configured models; write eval.json and eval.md; return the JSON-ready dict."""
    from ..evaluation.engine import evaluate_models
    from ..evaluation.report import downsample_roc, plot_protocol_rocs, protocol_table, write_json, write_text
    from ..evaluation.verification import metrics_to_json

    log = get_logger()
    ev = cfg.eval
    protocols = tuple(ev.get("protocols") or ("clean", "masked-masked", "masked-clean"))
    far = float(ev.get("far") or 1e-2)
    specs = ev.get("models") or default_models(stages)
    images, issame = load_pairs(ev, skip_bad=bool(cfg.get("skip_bad", False)))
    log.info(f"evaluation: {len(issame)} pairs from {ev.get('pairs')}, protocols {', '.join(protocols)}")
    doc = {"pairs": str(ev.get("pairs")), "num_pairs": int(len(issame)), "seed": ev.get("seed", 0),
           "protocols": list(protocols), "models": {}}
    embedders = {label: resolve_model(spec, models, stages, device) for label, spec in specs.items()}
    results = evaluate_models(embedders, images, issame, protocols=protocols, seed=int(ev.get("seed", 0)),
                              batch_size=int(ev.get("batch_size") or 64), nfolds=int(ev.get("nfolds") or 10),
                              progress=True, notify=log.warning, name=str(ev.get("pairs")))
    for label, spec in specs.items():
        doc["models"][label] = {"spec": str(spec), **{p: metrics_to_json(m) for p, m in results[label].items()}}
    table = protocol_table(results, protocols, far)
    doc["table"] = table
    curves = {label: {p: downsample_roc(*m["roc"]) for p, m in per_protocol.items()}
              for label, per_protocol in results.items()}
    doc["roc_png"] = plot_protocol_rocs(curves, os.path.join(output, "eval_roc.png"),
                                        f"ROC on {len(issame)} pairs of {ev.get('pairs')}")
    doc["thresholds"] = _write_model_thresholds(specs, results, output, str(ev.get("pairs")))
    write_json(os.path.join(output, "eval.json"), doc)
    write_text(os.path.join(output, "eval.md"),
               f"Verification on {len(issame)} pairs of {ev.get('pairs')} (masks seed {ev.get('seed', 0)}):\n\n{table}")
    log.info(f"evaluation written to {os.path.join(output, 'eval.md')} and eval.json")
    print(table, flush=True)
    return doc


def _write_model_thresholds(specs, results, output, target):
    """model.thresholds.json beside model.pt: the decision thresholds of this run's model measured on
    the evaluation pairs of every protocol (evaluation/thresholds.py; FaceRecognizer reads it);
    None when the run's model is not among the evaluated ones."""
    from ..evaluation.thresholds import measured_set, thresholds_document, thresholds_path, write_thresholds

    label = next((label for label, spec in specs.items() if spec == "model"), None)
    if label is None:
        return None
    sets = [measured_set(m["scores"], m["issame"], target, protocol) for protocol, m in results[label].items()]
    return write_thresholds(thresholds_path(os.path.join(output, "model.pt")),
                            thresholds_document(sets, model=os.path.join(output, "model.pt")))
