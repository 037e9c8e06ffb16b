"""Per-pair scores of a verification run as a TSV (`g2d-eval pairs --scores`)."""
from ..fileio import atomic_open, write_errors

COLUMNS = ("path1", "path2", "same", "protocol", "score")


def write_pair_scores(path, paths, results):
    """One row per pair and protocol: the two image paths (pair i is paths[2i], paths[2i + 1]), its
    label (1 same person, 0 not), the protocol and the score: the cosine similarity of the two
    L2-normalised embeddings (-1..1). results: {protocol: verification_metrics}."""
    with write_errors(path, option="--scores"), atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(COLUMNS) + "\n")
        for protocol, metrics in results.items():
            for i, (same, score) in enumerate(zip(metrics["issame"], metrics["scores"])):
                f.write(f"{paths[2 * i]}\t{paths[2 * i + 1]}\t{int(same)}\t{protocol}\t{float(score):.7f}\n")
    return path
