from pathlib import Path

import pytest
import torch

from reference.model import GPT, GPTConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A real but untrained tiny model: cheap enough for LoadGen runs in unit tests."""
    torch.manual_seed(0)
    cfg = GPTConfig(block_size=160, n_layer=1, n_head=2, n_embd=32)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save({"config": cfg.to_dict(), "model": GPT(cfg).state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def small_eval_set(tmp_path_factory) -> Path:
    lines = (ROOT / "reference/react/data/eval.jsonl").read_text().splitlines()[:12]
    path = tmp_path_factory.mktemp("eval") / "eval12.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(params=["kernel", "sdpa"])
def attention_path(request, monkeypatch):
    """Run a test once with the ragged attention kernel and once with SDPA groups (the
    fallback where the kernel cannot be built)."""
    from reference import attention
    if request.param == "sdpa":
        monkeypatch.setattr(attention, "kernel", lambda hs: None)
    elif attention.kernel(16) is None or attention.kernel(32) is None:
        pytest.skip("the attention kernel cannot be built here (see the warning)")
    return request.param
