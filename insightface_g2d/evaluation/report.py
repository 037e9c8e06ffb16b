"""Writers for evaluation results: markdown tables, JSON files and ROC plots (PNG, matplotlib Agg).

Only formatting lives here; the numbers come from compare.py and ijb.py.
"""
import json
import math

import numpy as np

from ..fileio import atomic_open


def far_key(far):
    """Text key of a false accept rate: 1e-3 -> "1e-03" (JSON object keys must be strings);
    the same keys as verification.metrics_to_json."""
    return f"{float(far):.0e}"


def markdown_table(header, rows, align=None):
    """A GitHub markdown table. header: list of str; rows: lists of cells (str or numbers);
    align: one of "l"/"r" per column (default: first column left, the rest right)."""
    align = align or ["l"] + ["r"] * (len(header) - 1)
    rule = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "|".join(rule) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def fmt_percent(value, std=None, digits=2):
    """0.98765 -> "98.77"; with std -> "98.77 ± 0.41"; NaN/None -> "n/a"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{100.0 * value:.{digits}f}"
    if std is not None:
        text += f" ± {100.0 * std:.{digits}f}"
    return text


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no NaN/inf
    return obj


def write_json(path, obj, default=None):
    """Write `obj` (dicts/lists/numpy values) as indented JSON; NaN becomes null; `default` as in
    json.dump (what to write for other objects). Returns the path."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(_jsonable(obj), f, indent=2, sort_keys=False, default=default)
        f.write("\n")
    return path


def write_text(path, text):
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def write_npy(path, array):
    """Write a numpy array as a .npy file (atomically). Returns the path."""
    with atomic_open(path) as f:
        np.save(f, np.asarray(array), allow_pickle=False)
    return path


def downsample_roc(fpr, tpr, max_points=400):
    """Thin a ROC curve for storage/plotting, keeping points evenly spaced on a log-FAR axis.

    fpr, tpr: 1-D arrays with fpr non-decreasing. Returns (fpr, tpr) float arrays, <= max_points + 2.
    For each log-spaced FAR level the point with the largest TPR not above it is kept.
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    if len(fpr) <= max_points:
        return fpr, tpr
    positive = fpr[fpr > 0]
    lo = positive.min() if len(positive) else 1e-6
    levels = np.logspace(np.log10(lo), 0.0, max_points)
    idx = np.searchsorted(fpr, levels, side="right") - 1
    idx = np.unique(np.concatenate([[0], idx[idx >= 0], [len(fpr) - 1]]))
    return fpr[idx], tpr[idx]


def plot_roc(curves, path, title="ROC", far_range=None, tar_range=None):
    """Save a ROC plot (log-scale FAR axis) as PNG.

    curves: list of (label, fpr, tpr) or (label, fpr, tpr, style) with 1-D arrays; style: matplotlib
    line keywords (color, linestyle, ...). far_range: x limits (default: from the
    decade of the smallest non-zero FAR, at least 1e-6, to 1); points with FAR 0 cannot be drawn on
    a log axis and are clipped to the left edge. Returns the path.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A bare Figure (not pyplot) keeps no global state and works with any backend already chosen.
    crowded = len(curves) > 8  # a legend that would cover the curves goes beside them
    fig = Figure(figsize=(11.5, 5.5) if crowded else (7, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if far_range is None:
        fars = np.concatenate([np.asarray(c[1], np.float64).ravel() for c in curves] or [np.zeros(0)])
        fars = fars[fars > 0]
        lo = max(1e-6, 10.0 ** np.floor(np.log10(fars.min()))) if len(fars) else 1e-6
        far_range = (lo, 1.0)
    lo, hi = far_range
    lowest_tar = 1.0
    for label, fpr, tpr, *style in curves:
        fpr = np.asarray(fpr, dtype=np.float64)
        tpr = np.asarray(tpr, dtype=np.float64)
        ax.step(np.clip(fpr, lo, hi), tpr, where="post", lw=1.3, label=label, **(style[0] if style else {}))
        # the lowest TAR drawn: the curve's value at the left edge, and everything right of it
        edge = np.searchsorted(fpr, lo, side="right") - 1
        if len(tpr):
            lowest_tar = min(lowest_tar, float(tpr[max(edge, 0):].min()))
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    if tar_range is None:
        tar_range = (max(0.0, np.floor(lowest_tar * 10) / 10 - 0.05), 1.0)
    ax.set_ylim(*tar_range)
    ax.grid(True, which="major", linestyle="--", linewidth=0.6)
    ax.set_xlabel("False accept rate (FAR)")
    ax.set_ylabel("True accept rate (TAR)")
    ax.set_title(title)
    if crowded:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, borderaxespad=0)
    elif curves:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_open(path) as f:  # never half a PNG, never through a symbolic link
        fig.savefig(f, format="png")
    return path


def plot_protocol_rocs(curves, path, title="ROC"):
    """One PNG of {label: {protocol: (fpr, tpr)}}: colour = model, line style = protocol."""
    dashes = ("-", "--", ":", "-.")
    lines = [(f"{label} · {protocol}", fpr, tpr, dict(color=f"C{i % 10}", linestyle=dashes[j % len(dashes)]))
             for i, (label, per_protocol) in enumerate(curves.items())
             for j, (protocol, (fpr, tpr)) in enumerate(per_protocol.items())]
    return plot_roc(lines, path, title=title)


def protocol_table(results, protocols, far):
    """Markdown table of {label: {protocol: metrics}}: one row per model; accuracy per protocol,
    TAR@FAR on the hardest masked protocol (masked-clean when evaluated, else the last)."""
    tar_protocol = "masked-clean" if "masked-clean" in protocols else protocols[-1]
    header = ["model"] + [f"{p} acc" for p in protocols] + [f"TAR@FAR={far:.0e} ({tar_protocol})"]
    rows = []
    for label, per_protocol in results.items():
        row = [label] + [fmt_percent(per_protocol[p]["accuracy"], per_protocol[p]["accuracy_std"]) for p in protocols]
        row.append(fmt_percent(per_protocol[tar_protocol]["tar_at_far"].get(far)))
        rows.append(row)
    return markdown_table(header, rows)
