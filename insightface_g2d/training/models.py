"""The named modules of a training run: what the stages' module_factories build.

Parts of a module are addressable by their own name (the `module_parts` the stage kinds declare,
`kinds.ModulePart`), so a stage can train one part and freeze the rest while checkpoints keep the
owner's one state dict (e.g. a backbone loadable by `get_model(network)`).
"""
import torch
from torch import nn

from ..errors import CheckpointError

class ModelSet:
    """Ordered name -> nn.Module, with named parts ({name: ModulePart}) and each parameter's own
    trainability."""

    def __init__(self, parts=None):
        self.parts = dict(parts or {})
        self.modules = {}
        self._grad_flags = {}  # id(param) -> requires_grad at construction (some are frozen by design)

    def add(self, name, module):
        if name in self.parts:
            raise ValueError(f"{name!r} is the name of a part of {self.parts[name].owner!r}")
        self.modules[name] = module
        for p in module.parameters():
            self._grad_flags[id(p)] = p.requires_grad
        return module

    def __contains__(self, name):
        if name in self.parts:
            owner, attr, _ = self.parts[name]
            return owner in self.modules and hasattr(self.modules[owner], attr)
        return name in self.modules

    def get(self, name):
        if name in self.parts:
            owner, attr, requirement = self.parts[name]
            if owner not in self.modules or not hasattr(self.modules[owner], attr):
                raise KeyError(f"module {name!r} needs {requirement}")
            return getattr(self.modules[owner], attr)
        return self.modules[name]

    def names(self):
        return list(self.modules)

    def to(self, device):
        for m in self.modules.values():
            m.to(device)
        return self

    def freeze_all(self):
        for m in self.modules.values():
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def set_trainable(self, name):
        """Train mode, and requires_grad back to the module's own setting (e.g. IResNet's fixed
        features.weight stays frozen)."""
        module = self.get(name)
        module.train()
        for p in module.parameters():
            p.requires_grad_(self._grad_flags.get(id(p), True))
        return module

    def parameters(self, names):
        """Trainable parameters of the named modules, each once, in a fixed order."""
        seen, params = set(), []
        for name in names:
            for p in self.get(name).parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        return params

    def trainable_by_design(self, names):
        """Whether the named modules have a parameter a stage may train (one not frozen by design)."""
        return any(self._grad_flags.get(id(p), True) for name in names for p in self.get(name).parameters())

    def named_parameters(self, names):
        for name in names:
            for pname, p in self.get(name).named_parameters():
                yield f"{name}.{pname}", p

    def state_dicts(self):
        return {name: {k: v.detach().cpu() for k, v in m.state_dict().items()} for name, m in self.modules.items()}

    def load_state_dicts(self, states, source="checkpoint"):
        """Load every module found in `states` strictly; modules absent from it keep their weights."""
        for name, state in states.items():
            if name not in self.modules:
                continue
            try:
                self.modules[name].load_state_dict(state, strict=True)
            except RuntimeError as err:
                raise CheckpointError(
                    f"{source}: module {name!r} does not match this config ({str(err).splitlines()[0]}); "
                    "was it written with another network, embedding size or dataset (number of identities)? "
                    "Use a new --output folder."
                ) from None

    def equal(self, other):
        """True when every tensor of every module is equal (torch.equal)."""
        a, b = self.state_dicts(), other.state_dicts()
        if a.keys() != b.keys():
            return False
        return all(a[n].keys() == b[n].keys() and all(torch.equal(a[n][k], b[n][k]) for k in a[n]) for n in a)


def frozen(module: nn.Module):
    """Context manager: the module's parameters do not require grad inside (gradient still flows
    through it to its input)."""
    return _Frozen(module)


class _Frozen:
    def __init__(self, module):
        self.params = [p for p in module.parameters() if p.requires_grad]

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p in self.params:
            p.requires_grad_(True)
