"""The error the arcface_torch installer raises for bad input or an unusable checkout."""
from ..errors import G2DError


class IntegrationError(G2DError):
    """An arcface_torch checkout cannot be installed into / uninstalled from as asked.

    The message says what was expected and what to do; when it is raised nothing was changed
    (or every change was rolled back).
    """
