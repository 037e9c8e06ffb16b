"""Stage kinds: one module each, registered here with one line each.

    from insightface_g2d.training.kinds import STAGE_KINDS, Stage, register_stage_kind

To add a kind, write `kinds/<kind>.py` with a `Stage` subclass (see kinds/base.py for the
interface) and add one `register_stage_kind(...)` line below (docs/architecture.md, "Add a stage
kind").
"""
from .arcface import ArcFaceStage
from .base import (COMMON_DEFAULTS, KindSettings, ModulePart, Network, Stage, face_restorer, final_network,
                   network_stage)
from .classify import ClassifyStage
from .distill import DistillStage
from .finetune import FinetuneStage
from .inpaint import InpaintStage
from .reform import ReformStage
from .registry import STAGE_KINDS, fixed_module_names, known_keys, module_parts, register_stage_kind, stage_kind

register_stage_kind(InpaintStage)
register_stage_kind(ReformStage)
register_stage_kind(ClassifyStage)
register_stage_kind(FinetuneStage)
register_stage_kind(ArcFaceStage)
register_stage_kind(DistillStage)

__all__ = ["COMMON_DEFAULTS", "KindSettings", "ModulePart", "Network", "STAGE_KINDS", "Stage", "face_restorer",
           "final_network", "fixed_module_names", "known_keys", "module_parts", "network_stage", "register_stage_kind",
           "stage_kind"]
