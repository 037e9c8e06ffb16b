"""The registry of mask styles: one module per style, one line per style in ``MASK_STYLES``.

A style module defines a renderer and ``STYLE = MaskStyle(name, render, palette, kind)``
(style.py); drawing.py holds the primitives styles share (outlines, shading, ear loops) and
render.py runs a renderer over a template group. Everything else -- the synthesizer
(masks/synthesizer.py), config checks, `g2d-mask --styles`, evaluation protocols such as
``masked-clean:n95+textured`` -- reads the names and styles from here.

Add a style: write ``styles/<name>.py`` with its ``STYLE`` and append it below. Append
only: a style's position in the registry seeds its template bank, so moving or removing one
changes the masks of the styles after it. A style with ``default=False`` is drawn only where it
is named (``default_styles()`` are the others: what "no styles named" means).
"""
from ...errors import ConfigError, suggest
from . import cloth, kn95, n95, occlusion, patterned, surgical, textured, worn
from .drawing import POSITIONS as MASK_POSITIONS
from .render import SHADE_MAX, render_group
from .style import KINDS, MaskStyle

MASK_STYLES = {style.name: style for style in (
    surgical.STYLE,
    n95.STYLE,
    kn95.STYLE,
    cloth.STYLE,
    patterned.STYLE,
    textured.STYLE,
    occlusion.STYLE,
    worn.STYLE,
)}


def default_styles():
    """Names of the registered styles drawn when none are named (every style but those made for
    experiments, ``default=False``), in registry order."""
    return tuple(name for name, style in MASK_STYLES.items() if style.default)


__all__ = ["default_styles", "KINDS", "MASK_POSITIONS", "MASK_STYLES", "MaskStyle", "SHADE_MAX", "mask_style",
           "render_group"]


def mask_style(name):
    """The registered MaskStyle called ``name``; ConfigError (with a did-you-mean) otherwise."""
    style = MASK_STYLES.get(name)
    if style is None:
        raise ConfigError(f"unknown mask style {name!r}{suggest(name, MASK_STYLES)}; "
                          f"choose from {', '.join(MASK_STYLES)}")
    return style
