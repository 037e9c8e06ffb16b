"""Put G2D into insightface's arcface_torch: ``get_model("g2d")`` there builds this package's
network, and the G2D recipe configs sit in its ``configs/`` folder.

    from insightface_g2d.integration import install, uninstall, status
    plan = install("insightface/recognition/arcface_torch", dry_run=True)
    print(plan.diff())

Command line: ``g2d-arcface install|uninstall|status PATH``. The same change as a patch for
``git apply`` is ``recipes/arcface_torch/g2d.patch`` in the repository.
"""
from .block import find_blocks, insert_block, render_block, strip_blocks
from .checkout import MANIFEST_NAME, open_checkout
from .configs import default_configs_dir, installed_name, recipe_configs
from .errors import IntegrationError
from .fileops import Change
from .installer import Plan, install, plan_install, plan_uninstall, status, uninstall

__all__ = [
    "Change", "IntegrationError", "MANIFEST_NAME", "Plan", "default_configs_dir", "find_blocks",
    "insert_block", "install", "installed_name", "open_checkout", "plan_install", "plan_uninstall",
    "recipe_configs", "render_block", "status", "strip_blocks", "uninstall",
]
