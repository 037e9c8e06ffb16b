"""Greedy G2D training: configs, stages, the generic loop and the runner behind `g2d-train`.

    from insightface_g2d.training import load_config, run_training
    cfg = load_config("recipes/configs/demo.py", ["stages.reform.epochs=1"])
    summary = run_training(cfg, output="work_dirs/demo")
"""

__all__ = ["load_config", "run_training"]


def __getattr__(name):
    # Lazy: importing the package stays cheap for tools that only need the config loader.
    if name == "load_config":
        from .config import load_config

        return load_config
    if name == "run_training":
        from .runner import run_training

        return run_training
    raise AttributeError(name)
