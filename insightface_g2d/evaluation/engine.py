"""The evaluation engine: models x masking protocols on one verification set -> metrics.

`g2d-eval compare` (per target), `verify` (per .bin), `pairs` and the end-of-training report all
come here. For each protocol the set is masked once (`protocols.apply_protocol`) and every model
embeds that one masked copy, so all models see byte-identical faces. Faces a protocol leaves
clean are embedded once per model and shared between protocols; masked faces are embedded per
protocol. A set whose contiguous folds would hold one class only is scored on balanced folds
(`verification.default_fold_ids`), and `notify` gets one line saying so.
"""
import sys

import numpy as np

from . import protocols as masking


def evaluate_models(embedders, images, issame, protocols=("clean",), seed=0, batch_size=64, flip=True, nfolds=10,
                    folds=None, far_targets=None, synthesizer=None, progress=True, on_result=None, notify=None,
                    name=None):
    """{label: {protocol: verification_metrics}} of every embedder on a set of faces.

    embedders: {label: FaceEmbedder, nn.Module or spec}; images uint8 [2N, 112, 112, 3] clean
    aligned faces (pair i = 2i, 2i+1); issame [N]; folds: per-pair fold labels or None; flip: add
    each mirrored face's embedding. on_result(label, protocol, metrics) is called as each is done.
    notify(line): where the note about balanced folds goes (default: stderr); name: the set's
    name in that note.
    """
    from ..embedders.factory import build_embedder
    from .verification import default_fold_ids, fold_note, verification_metrics

    embedders = {label: build_embedder(e) for label, e in embedders.items()}
    images = np.asarray(images)
    protocols = list(dict.fromkeys(protocols))
    for protocol in protocols:
        masking.parse_protocol(protocol)  # validates names before any work
    extra = {} if far_targets is None else {"far_targets": far_targets}
    num_pairs = len(np.asarray(issame).reshape(-1))
    if folds is None and 2 <= num_pairs < nfolds:
        (notify or _stderr)(f"note: {name + ': ' if name else ''}{num_pairs} pairs cannot fill {nfolds} folds; "
                            f"accuracy uses {num_pairs} folds of one pair each (leave one out)")
        nfolds = num_pairs
    elif folds is None and default_fold_ids(issame, nfolds)[1] == "balanced":
        (notify or _stderr)(fold_note(len(issame), nfolds, name))
    results = {label: {} for label in embedders}
    clean = {}
    for protocol in protocols:
        shown = masking.apply_protocol(images, issame, protocol, seed=seed, synthesizer=synthesizer,
                                       progress=progress, masked_only=True)
        idx, faces = shown if shown is not None else (np.zeros(0, dtype=np.int64), None)
        masked = np.zeros(len(images), dtype=bool)
        masked[idx] = True
        for label, embedder in embedders.items():
            if not masked.all() and label not in clean:
                clean[label] = embedder.embed_images(images, batch_size, flip, progress, desc=f"{label} clean".strip())
            if len(idx):
                masked_emb = embedder.embed_images(faces, batch_size, flip, progress,
                                                   desc=f"{label} {protocol}".strip())
                emb = np.empty((len(images), masked_emb.shape[1]), dtype=np.float32)
                emb[idx] = masked_emb
                if label in clean:
                    emb[~masked] = clean[label][~masked]
            else:
                emb = clean[label]
            metrics = verification_metrics(emb, issame, nfolds=nfolds, folds=folds, **extra)
            results[label][protocol] = metrics
            if on_result is not None:
                on_result(label, protocol, metrics)
        del shown, faces
    return results


def _stderr(line):
    print(line, file=sys.stderr, flush=True)


def evaluate_protocols(embedder, images, issame, protocols=("clean",), **options):
    """{protocol: verification_metrics} of one embedder (see evaluate_models for the options)."""
    return evaluate_models({"": embedder}, images, issame, protocols, **options)[""]
