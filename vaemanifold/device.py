"""Device choice: CUDA when present, else the CPU."""

from __future__ import annotations

from typing import Optional

import torch


def default_device(requested: Optional[str] = None) -> torch.device:
    """``requested`` if given ('cpu', 'cuda', 'cuda:1'), else CUDA when available, else CPU."""
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} requested but CUDA is not available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
