"""Worn: the masks people in photos wear most, drawn as photos show them. Matte fabric or
non-woven sheet, wide (out to the cheeks' edge) and from the nose bridge to under the chin, in the
dark and pale, barely saturated colours of real masked photos (RMFD's lower faces: median
luminance 72, saturation 14 of 255; the other styles' 129 and 42), black most of all; soft light,
no print, ear loops seldom seen. Made for experiments (drawn only where named)."""
from .cloth import cloth_shape
from .drawing import coverage, cylinder, ear_loops, grain, uniform
from .style import MaskStyle

# black four times as often as any other colour: the colour of most masks in RMFD's photos
BLACK = ((22, 22, 24), (30, 30, 33), (18, 18, 20), (38, 38, 42))
PALETTE = BLACK * 2 + ((62, 63, 68), (88, 90, 96), (32, 37, 58), (226, 226, 223), (236, 237, 240),
                       (196, 199, 204), (150, 178, 204), (222, 186, 194))


def render(grid, k, rng, position):
    g = cloth_shape(grid, k, rng, position)
    alpha = coverage(g["sd"], grid, uniform(rng, k, 1.1, 2.0))
    u, v = g["u"], g["v"]
    shade = cylinder(u, rng, k, ambient=(0.6, 0.78)) * (1.0 - uniform(rng, k, 0.05, 0.18) * v * v)
    shade = shade * (1.0 + grain(grid, k, rng, 0.7, 0.01))
    shown = (rng.random((k, 1, 1)) < 0.25)  # ear loops on a quarter of the masks
    looped_shade, looped_alpha = shade.copy(), alpha.copy()
    ear_loops(grid, k, rng, g, looped_shade, looped_alpha)
    shade = shown * looped_shade + ~shown * shade
    alpha = shown * looped_alpha + ~shown * alpha
    return alpha, shade, None, None


STYLE = MaskStyle("worn", render, PALETTE, default=False)
