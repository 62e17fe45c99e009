"""The training script (utils/train.py) and the committed mini-GPT checkpoint."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import pytest
import torch

from utils import train as tr
from utils.data import CharTokenizer, load_shakespeare, train_val_split
from utils.reference.gpt import GPT, GPTConfig

# The checkpoint's validation loss, measured when it was trained (config.json) and
# re-measured here on fixed validation batches, must stay below this.
CHECKPOINT_VAL_LOSS_BELOW = 1.60


@pytest.fixture(scope="module")
def corpus():
    text = load_shakespeare()
    tok = CharTokenizer(text)
    return tok, train_val_split(torch.tensor(tok.encode(text), dtype=torch.long))


def test_lr_schedule_warms_up_then_follows_a_cosine_to_min_lr():
    lrs = [tr.lr_at(s, 10, 100, 1e-3, 1e-4) for s in range(120)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)      # linear warm-up
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:100], lrs[11:101]))                # then never rises
    assert lrs[55] == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4))                  # half-way down the cosine
    assert lrs[100:] == [1e-4] * 20


def test_weight_decay_applies_to_matrices_only():
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    decay, no_decay = tr.configure_optimizer(model, 1e-3, 0.1, (0.9, 0.99)).param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_a_short_run_learns_and_the_checkpoint_round_trips(corpus, tmp_path):
    tok, (train_data, val_data) = corpus
    cfg = tr.TrainConfig(batch_size=8, max_iters=60, lr=3e-3, eval_interval=30, eval_batches=4)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=32))
    lines = []
    history = tr.train(model, train_data, val_data, cfg, log=lines.append)
    assert [h["step"] for h in history] == [0, 30, 60] and len(lines) == 3
    assert history[0]["val"] == pytest.approx(math.log(tok.vocab_size), abs=0.05)   # starts uniform
    assert history[-1]["train"] < history[0]["train"] - 1.0                          # and learns
    tr.save_checkpoint(model, tmp_path, cfg, lines, {"note": "test"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.pt", "train_log.txt"]
    loaded = tr.load_checkpoint(tmp_path)
    x = torch.randint(0, tok.vocab_size, (2, 32))
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model.eval()(x)[0])
    assert loaded.lm_head.weight is loaded.wte.weight


def test_a_failed_save_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    tr.save_checkpoint(model, tmp_path, tr.TrainConfig(), ["first"], {})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken_save(obj, path):
        open(path, "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        tr.save_checkpoint(model, tmp_path, tr.TrainConfig(), ["second"], {})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before   # no temp files, nothing changed


def test_missing_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m utils.train"):
        tr.load_checkpoint(tmp_path / "nothing")


# ------------------------------------------------------------ the committed checkpoint


def test_committed_checkpoint_is_small_and_documented():
    files = {p.name: p for p in tr.CHECKPOINT_DIR.iterdir()}
    assert set(files) == {"model.pt", "config.json", "train_log.txt"}
    assert sum(p.stat().st_size for p in files.values()) < 10 * 2**20
    config = json.loads(files["config.json"].read_text())
    assert config["model"] == asdict(tr.COURSE_MODEL)            # the course's architecture
    assert config["final_val_loss"] < CHECKPOINT_VAL_LOSS_BELOW
    assert "val loss" in files["train_log.txt"].read_text()


def test_committed_checkpoint_reaches_its_validation_loss(corpus):
    tok, (_, val_data) = corpus
    model = tr.load_checkpoint()
    assert model.config.vocab_size == tok.vocab_size
    batches = tr.fixed_batches(val_data, 20, 32, model.config.block_size, seed=99)
    val = tr.estimate_loss(model, batches)
    assert val < CHECKPOINT_VAL_LOSS_BELOW, f"checkpoint val loss {val:.3f}"
