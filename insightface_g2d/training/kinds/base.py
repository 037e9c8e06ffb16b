"""The Stage interface: everything the rest of g2d-train asks of a stage kind.

A stage kind is a `Stage` subclass in its own module of this package, listed once in the registry
(`kinds/__init__.py`). It declares, as class attributes and methods below, its keys and their
defaults (a frozen dataclass, `settings`), its loss terms, which modules it may train, its
optimizer groups, how it restores faces for previews, which network it yields, whether that network
can teach a later stage, what the end-of-run evaluation reports for it, and which files it exports;
and it implements `step(batch, ctx)`. The loop, the runner, the teachers and the report only ask
these questions: none of them names a kind.

A stage entry in a config is a dict: `name` (unique; names the files `stage_<name>.pt`), `kind`
(defaults to the name) and any of the common keys below or the kind's own keys. Values left at
None fall back to the top-level config (`training.stages.FALLBACKS`: batch_size, optimizer, lr,
momentum, weight_decay, fp16, amp_dtype, gradient_acc, checkpoint_every, preview_every, teacher);
`losses` and `masks` are merged over the kind's defaults and `config.masks`.
"""
import dataclasses
from types import MappingProxyType
from typing import NamedTuple

from easydict import EasyDict as edict

from ...errors import ConfigError

COMMON_DEFAULTS = dict(
    name=None,
    kind=None,
    epochs=None,           # length in passes over the dataset ...
    steps=None,            # ... or in optimizer steps (exactly one of the two)
    batch_size=None,       # per process
    optimizer=None,        # "sgd" | "adamw" | "adam"
    lr=None,
    lr_mult=None,          # {module: factor}: that module trains at lr * factor (e.g. encoder=0.1)
    betas=(0.9, 0.999),    # adam/adamw
    momentum=None,         # sgd
    weight_decay=None,
    warmup_epochs=0.0,     # linear warm-up, in epochs ...
    warmup_steps=None,     # ... or in steps (wins when set)
    lr_power=1.0,          # polynomial decay power after warm-up (1 = linear, as arcface_torch)
    train=None,            # module names trained by this stage (None: the kind's default)
    losses=None,           # {term: weight}, merged over the kind's defaults
    masks=None,            # merged over config.masks
    teacher=None,          # None: config.teacher
    fp16=None,             # mixed precision on CUDA (ignored on CPU)
    amp_dtype=None,        # "float16" (with loss scaling) or "bfloat16" when fp16 is on
    grad_clip=5.0,         # max total gradient norm, on every device (None or 0: off)
    gradient_acc=None,
    checkpoint_every=None,  # steps between checkpoints
    preview_every=None,     # steps between preview PNGs (stages that restore faces)
)


@dataclasses.dataclass(frozen=True)
class KindSettings:
    """A kind's own keys and its overrides of COMMON_DEFAULTS: subclass it with typed fields."""


class ModulePart(NamedTuple):
    """A module addressed by its own name that is an attribute of another module: `owner`.`attribute`
    (it trains and freezes on its own; checkpoints keep the owner's one state dict). `requirement`
    says what the run needs for the owner to have it, for the error when it does not."""
    owner: str
    attribute: str
    requirement: str


class Network(NamedTuple):
    """A whole face-recognition network a stage trains: its module, get_model name, embedding size."""
    module: str
    network: str
    embedding_size: int


class Stage:
    """One greedy training stage. Subclasses set the class attributes and implement `step`."""

    kind = None              # the name configs use; set by the subclass, checked by the registry
    settings = KindSettings  # frozen dataclass: the kind's keys and defaults (the one place they live)
    loss_weights = MappingProxyType({})  # term -> default weight; also the list of allowed terms
    trainable = ()           # default `train`
    allowed_train = ()       # what `train` may contain ("{name}" stands for the stage name)
    restores_faces = False   # True: it implements restore() and previews are written every preview_every
    primary_group = "main"   # the optimizer group whose learning rate is logged as `lr`
    serves_as_teacher = False  # True: `teacher=dict(stage=NAME)` may name it (its network() teaches)
    final_priority = 0       # model.pt holds the network() of the stage with the highest value (last wins ties)
    teacher_size_advice = ""  # how to drop the loss that needs teacher_embedding_size(), for the error
    module_parts = MappingProxyType({})  # {name: ModulePart}: modules that are parts of another one
    resume_applicable = ()   # its own keys --apply-changes may change on resume (read by step or
    #                          optimizer_settings); the common ones: training.resume_changes

    def __init__(self, spec, cfg):
        self.spec = edict(spec)
        self.cfg = cfg
        self.name = self.spec.name

    # ---- configuration -------------------------------------------------------------------
    @classmethod
    def default_values(cls):
        """{key: default} of the kind's settings dataclass (a new dict)."""
        return {f.name: f.default for f in dataclasses.fields(cls.settings)}

    @classmethod
    def default_losses(cls):
        """{term: default weight}: the terms a config may weight in `losses` (a new dict)."""
        return dict(cls.loss_weights)

    @classmethod
    def default_length(cls, entry, cfg):
        """{key: value} that sets the length of a stage entry that gives neither epochs nor steps,
        or None when such an entry is an error."""
        return None

    @classmethod
    def resolve(cls, spec, cfg):
        """Kind-specific checks of a spec resolved with the common keys; returns it completed (values
        the kind takes from the top-level config, normalised types) as a new dict. Raises
        ConfigError; never changes `spec`."""
        return dict(spec)

    def module_factories(self, num_classes):
        """{module name: zero-argument builder} of the modules this stage needs (built once per run)."""
        return {}

    def optimizer_groups(self):
        """{optimizer name: [module names]}; each optimizer steps once per training step."""
        return {self.primary_group: list(self.spec.train)}

    def optimizer_settings(self, group):
        s = self.spec
        return dict(optimizer=s.optimizer, lr=s.lr, betas=tuple(s.betas), momentum=s.momentum,
                    weight_decay=s.weight_decay)

    def teacher_use(self):
        """(needs teacher targets, needs a differentiable teacher)."""
        return False, False

    def teacher_embedding_size(self):
        """The size the teacher's embeddings must have for this stage's losses, or None (any)."""
        return None

    def check_teacher_size(self, dim, origin=""):
        """ConfigError when teacher embeddings of `dim` dimensions (from `origin`, e.g. " (stage
        'base')") do not fit this stage."""
        need = self.teacher_embedding_size()
        if need is not None and int(dim) != int(need):
            advice = f" or {self.teacher_size_advice}" if self.teacher_size_advice else ""
            raise ConfigError(f"stage {self.name!r}: teacher embeddings have {dim} dimensions{origin} but "
                              f"embedding_size is {need}; set embedding_size = {dim}{advice}")

    def mask_prob(self):
        return float(self.spec.masks.get("prob", 1.0))

    def heads(self):
        """{module name: embedding size} of the classification heads it builds (num_classes x size
        float32 weights each; the run checks they fit in memory before building anything)."""
        return {}

    # ---- what the run makes of it ----------------------------------------------------------
    def network(self):
        """The Network this stage trains (whole or in part), or None."""
        return None

    def eval_models(self):
        """{label: model spec} the end-of-run evaluation reports for this stage by default
        ("model": the run's model.pt network; "stage:NAME": that stage's network)."""
        return {}

    def export_files(self):
        """Names of the files `exports` writes into the output folder."""
        return []

    def exports(self, models):
        """{file name: state dict} written to the output folder when the stage finishes: states of
        the run's modules, which the stage file holds too (scanned for NaN/inf once, with it)."""
        return {}

    # ---- training --------------------------------------------------------------------------
    def check_batch(self, batch, ctx):
        """Checks of a batch on the host, before it moves to the device (there they would cost a
        device sync each step); raise DataError."""

    def step(self, batch, ctx):
        """One training step on `batch` (dict of device tensors); calls ctx.update(...) for each
        optimizer and returns {name: scalar tensor} of loss terms and metrics to log."""
        raise NotImplementedError

    def restore(self, masked, ctx):
        """N x 3 x 112 x 112 restored faces for previews (kinds whose restores_faces is set)."""
        return None


def final_network(stages):
    """The Network model.pt holds: of the stages' networks, the one with the highest
    final_priority (the last of equals); None when no stage trains a network."""
    best = None
    for stage in stages:
        net = stage.network()
        if net is not None and (best is None or stage.final_priority >= best[0]):
            best = (stage.final_priority, net)
    return None if best is None else best[1]


def network_stage(stages, name, teaching=False):
    """Stage `name` of `stages` when it trains a network (Stage.network) and, with `teaching`,
    may teach a later stage (Stage.serves_as_teacher); None otherwise."""
    stage = next((s for s in stages if s.name == name), None)
    if stage is None or stage.network() is None or (teaching and not stage.serves_as_teacher):
        return None
    return stage


def face_restorer(stage, stages):
    """The stage whose restore() draws the restored row of `stage`'s previews: itself when it
    restores faces, else a stage of the run that restores faces with the same network (what that
    network's restorer makes of it after `stage`); None when there is none."""
    if stage.restores_faces:
        return stage
    net = stage.network()
    if net is None:
        return None
    return next((s for s in stages if s.restores_faces and s.network() is not None
                 and s.network().module == net.module), None)
