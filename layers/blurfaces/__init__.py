"""blurfaces: anonymize every face in a video.

The public Python API is `blur_faces`; the seed helpers `scaling_mask`, `centroid_mask`,
`heatmap_data` and `nearest_neighbours` keep the names and meaning they had in the Musical
Gestures Toolbox's `mg_blurfaces`.
"""
from ._version import __version__
from .errors import (BlurfacesError, ChunkError, InputError, Interrupted, ModelError,
                     OptionError, VerifyError,
                     OutputError)

__all__ = ["__version__", "BlurfacesError", "InputError", "OptionError", "OutputError",
           "VerifyError", "Interrupted",
           "ModelError", "ChunkError", "blur_faces", "BlurResult", "scaling_mask",
           "centroid_mask", "heatmap_data", "nearest_neighbours"]


def __getattr__(name):
    # Lazy: `import blurfaces` stays cheap (no onnxruntime/PyAV import) for the CLI's --version.
    if name in ("blur_faces", "BlurResult"):
        from . import api
        return getattr(api, name)
    if name == "scaling_mask":
        from .mask import scaling_mask
        return scaling_mask
    if name in ("centroid_mask", "heatmap_data", "nearest_neighbours"):
        from . import heatmap
        return getattr(heatmap, name)
    raise AttributeError(name)
