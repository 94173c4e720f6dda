"""Loading a reference checkpoint: what evaluation, the harness's child process, the benchmark
and the checker's replay share. torch is imported only when a checkpoint is loaded, so the
checker can import this module without it."""
from __future__ import annotations

from pathlib import Path


class CheckpointError(Exception):
    """A checkpoint file that is missing, corrupt or not for this code."""


def load_model(path: Path, device: str = "cpu"):
    """The GPT in `path`, on `device`, in eval mode; CheckpointError for any bad file."""
    import torch

    from reference.model import GPT, GPTConfig
    if not Path(path).is_file():
        raise CheckpointError(f"no checkpoint at {path} (train one with `make train`)")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
        model = GPT(GPTConfig(**ckpt["config"]))
        model.load_state_dict(ckpt["model"])
    except Exception as err:  # any unpickling/shape problem is the file's fault, not ours
        raise CheckpointError(f"cannot load checkpoint {path}: {err}") from None
    return model.to(device).eval()
