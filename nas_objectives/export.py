"""A trained model on disk: weights (safetensors-free, ``weights_only`` loading), its
architecture and where it came from. (Stub: issue 5.)"""

from __future__ import annotations


class ExportError(RuntimeError):
    """An export directory is missing, incomplete or tampered with."""
