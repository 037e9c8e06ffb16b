"""The network a stage of this training run trained: the "stage" type, dict(stage="baseline") or
"stage:baseline". Only a training run can build it (it hands the factory `run_network`): as
config.teacher (the CPU demo trains its own teacher this way) or in config.eval.models."""
from ..errors import ConfigError
from .torch_network import TorchEmbedder


class StageNetwork(TorchEmbedder):
    """Its spec is FaceEmbedder's default ("stage:NAME"); nothing to check on disk: the run checks
    the stage when it builds the teacher."""

    string_form = "stage:NAME (a stage of this training run)"

    @classmethod
    def from_spec(cls, value, options, ctx):
        if ctx.run_network is None:
            raise ConfigError(f"stage:{value} names a stage of a training run; it can only be used inside g2d-train "
                              "(config.teacher or config.eval.models)")
        return cls(ctx.run_network(value), device=ctx.device, name=f"stage:{value}",
                   differentiable=ctx.differentiable, channels_last=ctx.channels_last)
