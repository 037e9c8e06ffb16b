"""The output folder of a run: what it will hold, checked before training (write failures while
it runs: training.output_errors)."""
import os

from ..errors import OutputError
from .checkpoint import checkpoint_name, stage_file
from .lock import LOCK_NAME


REPORT_FILES = ("config.json", "run_summary.json", "eval.json", "eval.md",
                "model.thresholds.json")  # written atomically by rank 0


def planned_paths(stages, rank=0):
    """{name: 'file' | 'folder'} of what a run writes in its output folder."""
    names = {n: "file" for n in ("training.log", "scalars.csv", *REPORT_FILES, "model.pt", LOCK_NAME,
                                 checkpoint_name(rank))}
    for stage in stages:
        names[stage_file(stage.name)] = "file"
        for name in stage.export_files():
            names[name] = "file"
    names.update(previews="folder", tensorboard="folder")
    return names


def check_layout(output, stages, rank=0):
    """OutputError when `output` is not a usable folder or a name the run writes is taken by the
    wrong kind of entry (e.g. `previews` is a file, `config.json` a folder). A symbolic link at a
    name the run writes is no obstacle: the run replaces the link (fileio), never writes through it."""
    output = os.fspath(output)
    if os.path.lexists(output) and not os.path.isdir(output):
        raise OutputError(f"--output {output!r} exists and is not a folder; pass a folder")
    parent = os.path.dirname(os.path.abspath(output))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise OutputError(f"--output {output!r}: {parent!r} is a file, not a folder; pass another --output")
    if not os.path.isdir(output):
        return
    for name, kind in planned_paths(stages, rank).items():
        path = os.path.join(output, name)
        if not os.path.lexists(path) or os.path.islink(path):
            continue
        if kind == "file" and (os.path.isdir(path) or not os.path.isfile(path)):
            raise OutputError(f"{path!r} is not a regular file but g2d-train writes a file there; move it away or "
                              "pass another --output")
        if kind == "folder" and not os.path.isdir(path):
            raise OutputError(f"{path!r} is a file but g2d-train writes a folder of {name} there; move it away or "
                              "pass another --output")
