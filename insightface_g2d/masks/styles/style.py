"""What one mask style is: a name, a renderer, a colour palette and how its layers are coloured."""
import re
from dataclasses import dataclass
from typing import Callable, Tuple

from ...errors import ConfigError

# How the synthesizer colours a style's templates (see masks.py):
#   plain    one palette colour, scaled by the shade layer
#   pattern  two palette colours mixed by the pattern level (renderer returns ``level``)
#   texture  an RGB texture times the shade, tinted by the palette (renderer returns ``tex``)
KINDS = ("plain", "pattern", "texture")

# Names appear in protocols (``masked-clean:n95+textured``), CLI choices and config lists.
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


@dataclass(frozen=True)
class MaskStyle:
    """One mask style.

    render(grid, k, rng, position) -> (alpha, shade, level, tex): ``k`` random templates of the
    style worn at ``position`` on ``grid`` (drawing.Grid), drawn with ``rng`` only:
        alpha  float32 [k, h, w]     coverage in [0, 1], feathered edges
        shade  float32 [k, h, w] or broadcastable: lighting/relief factor in [0, render.SHADE_MAX]
        level  float32 [k, h, w]     pattern level in [0, 1] for kind "pattern", else None
        tex    float32 [k, h, w, 3]  RGB texture in [0, 1] for kind "texture", else None
    palette: RGB colours (0..255) a face draws its mask colour from.
    default: drawn when no styles are named (training configs with styles=None, the synthesizer's
    default, masked protocols without styles); False for a style made for experiments, which is
    drawn only where named, so adding one changes nobody's masks.
    """

    name: str
    render: Callable
    palette: Tuple[Tuple[int, int, int], ...]
    kind: str = "plain"
    default: bool = True

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"mask style name {self.name!r} must be lower-case letters, digits and '_' "
                              "(it is used in protocol names such as masked-clean:<style>)")
        if not callable(self.render):
            raise ConfigError(f"mask style {self.name!r}: render must be a function (grid, k, rng, position)")
        if self.kind not in KINDS:
            raise ConfigError(f"mask style {self.name!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        palette = tuple(tuple(c) for c in self.palette)
        if not palette or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in palette):
            raise ConfigError(f"mask style {self.name!r}: palette must be a non-empty list of (R, G, B) "
                              "colours in 0..255")
        object.__setattr__(self, "palette", palette)
