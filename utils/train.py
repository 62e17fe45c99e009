"""Training the mini-GPT of notebook 07: the loop, its schedule, and the checkpoint script.

The notebook writes this loop out cell by cell; this module is the same loop
in one place, for the training script, the benchmark and the tests.

    python -m utils.train                      # train the course checkpoint (data/checkpoints/mini_gpt)
                                               # with COURSE_MODEL and COURSE_TRAIN for CHECKPOINT_ITERS steps
    python -m utils.train --max-iters 200 --out /tmp/try   # a short run somewhere else

The script writes, into ``--out``, ``model.pt`` (the weights and the model
config), ``config.json`` (model and training settings) and ``train_log.txt``
(train/val loss as it trained), each atomically: a run that fails leaves the
previous checkpoint as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from utils.data import CharTokenizer, get_batch, load_shakespeare, train_val_split, write_atomically
from utils.reference.gpt import GPT, GPTConfig
from utils.reference.training import lr_at  # notebook 08's exercise: linear warm-up, then cosine

__all__ = ["TrainConfig", "COURSE_MODEL", "COURSE_TRAIN", "lr_at", "configure_optimizer", "fixed_batches",
           "estimate_loss", "train", "save_checkpoint", "load_checkpoint", "CHECKPOINT_DIR"]

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_DIR = ROOT / "data" / "checkpoints" / "mini_gpt"


@dataclass
class TrainConfig:
    batch_size: int = 16
    max_iters: int = 2000           # optimizer steps; ignored when time_budget is set
    time_budget: float | None = None  # seconds of training; the schedule then follows elapsed time
    lr: float = 1e-2                # peak learning rate
    min_lr: float = 0.0             # where the cosine ends
    warmup_frac: float = 0.05       # fraction of the run spent warming up linearly
    weight_decay: float = 0.1       # on matrices only (see configure_optimizer)
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0          # global gradient norm; 0 turns clipping off
    eval_interval: int = 250        # steps between train/val estimates (0: only at the end)
    eval_batches: int = 20          # batches per estimate (0: no estimates)
    fused_adamw: bool = True        # PyTorch's fused AdamW kernel
    seed: int = 0


# The course's recipe (notebook 07, benchmarks/README.md): what trains best on a
# CPU in a few minutes.
COURSE_MODEL = GPTConfig(vocab_size=83, block_size=64, n_layer=4, n_head=4, n_embd=64, dropout=0.0, bias=False)
COURSE_TRAIN = TrainConfig()
CHECKPOINT_ITERS = 10_000          # the committed checkpoint: the same recipe, trained 5x longer


def configure_optimizer(model: torch.nn.Module, lr: float, weight_decay: float,
                        betas: tuple[float, float], fused: bool = True) -> torch.optim.AdamW:
    """AdamW with weight decay on the weight matrices and embeddings only, not on biases or norms."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # fused: one kernel updates every parameter (about 5x faster than the default on a CPU for this model)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)


def fixed_batches(data: torch.Tensor, n_batches: int, batch_size: int, block_size: int,
                  seed: int = 1234) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same n_batches random crops every time: a loss estimate that does not move by chance."""
    g = torch.Generator().manual_seed(seed)
    return [get_batch(data, batch_size, block_size, generator=g) for _ in range(n_batches)]


@torch.no_grad()
def estimate_loss(model: GPT, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean cross-entropy over fixed batches, in eval mode (no dropout)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses = [model(x.to(device), y.to(device))[1].item() for x, y in batches]
    model.train(was_training)
    return sum(losses) / len(losses)


def train(model: GPT, train_data: torch.Tensor, val_data: torch.Tensor, cfg: TrainConfig,
          progress=None, log=print) -> list[dict]:
    """Train `model` in place with AdamW, warm-up + cosine, clipping; return the loss history.

    progress: optional callable wrapping the step range (tqdm, say). log(str) gets a line per estimate.
    """
    start = time.perf_counter()     # a time budget covers everything below, optimizer set-up included
    device = next(model.parameters()).device
    block = model.config.block_size
    g = torch.Generator().manual_seed(cfg.seed)
    optimizer = configure_optimizer(model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2), cfg.fused_adamw)
    train_eval = fixed_batches(train_data, cfg.eval_batches, cfg.batch_size, block, seed=cfg.seed + 1)
    val_eval = fixed_batches(val_data, cfg.eval_batches, cfg.batch_size, block, seed=cfg.seed + 2)
    total = cfg.max_iters
    warmup = max(1, round(cfg.warmup_frac * total))
    history = []

    def record(step):
        row = {"step": step, "train": estimate_loss(model, train_eval), "val": estimate_loss(model, val_eval)}
        history.append(row)
        log(f"step {step:5d} | train loss {row['train']:.3f} | val loss {row['val']:.3f}")

    model.train()
    if cfg.eval_interval and cfg.eval_batches:
        record(0)
    steps = range(total) if cfg.time_budget is None else _until(start, cfg.time_budget)
    done = 0
    for step in (progress(steps) if progress else steps):
        if cfg.time_budget is None:
            lr = lr_at(step, warmup, total, cfg.lr, cfg.min_lr)
        else:  # the same shape of schedule, over elapsed time instead of steps
            frac = (time.perf_counter() - start) / cfg.time_budget
            lr = lr_at(round(frac * 10_000), round(cfg.warmup_frac * 10_000), 10_000, cfg.lr, cfg.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = get_batch(train_data, cfg.batch_size, block, generator=g, device=device)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        done = step + 1
        if cfg.eval_interval and cfg.eval_batches and done % cfg.eval_interval == 0:
            record(done)
    if cfg.eval_batches and (not history or history[-1]["step"] != done):
        record(done)
    return history


def _until(start: float, budget: float):
    step = 0
    while time.perf_counter() - start < budget:
        yield step
        step += 1


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(model: GPT, out: Path, train_cfg: TrainConfig, log_lines: list[str], extra: dict) -> None:
    out = Path(out)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied
    write_atomically(out / "model.pt", lambda p: torch.save({"model_config": asdict(model.config), "state_dict": state}, p))
    config = {"model": asdict(model.config), "train": asdict(train_cfg), **extra}
    write_atomically(out / "config.json", lambda p: Path(p).write_text(json.dumps(config, indent=2) + "\n"))
    write_atomically(out / "train_log.txt", lambda p: Path(p).write_text("\n".join(log_lines) + "\n"))


def load_checkpoint(path: str | os.PathLike = CHECKPOINT_DIR, map_location="cpu") -> GPT:
    """The trained mini-GPT from a checkpoint folder (or its model.pt), in eval mode."""
    path = Path(path)
    file = path / "model.pt" if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"no checkpoint at {file}; train one with `python -m utils.train --out {path}`")
    saved = torch.load(file, map_location=map_location, weights_only=True)
    model = GPT(GPTConfig(**saved["model_config"]))
    missing, unexpected = model.load_state_dict(saved["state_dict"], strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise ValueError(f"{file} does not fit GPT: missing {missing}, unexpected {unexpected}")
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder")
    parser.add_argument("--max-iters", type=int, default=CHECKPOINT_ITERS)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    text = load_shakespeare()
    tok = CharTokenizer(text)
    train_data, val_data = train_val_split(torch.tensor(tok.encode(text), dtype=torch.long))
    model_cfg = replace(COURSE_MODEL, vocab_size=tok.vocab_size)
    train_cfg = replace(COURSE_TRAIN, max_iters=args.max_iters, eval_interval=max(1, args.max_iters // 20))
    torch.manual_seed(train_cfg.seed)
    model = GPT(model_cfg)
    lines = []

    def log(line):
        print(line, flush=True)
        lines.append(line)

    start = time.perf_counter()
    history = train(model, train_data, val_data, train_cfg, log=log)
    seconds = time.perf_counter() - start
    log(f"trained {train_cfg.max_iters} steps in {seconds:.0f} s on {platform.processor() or platform.machine()} "
        f"with {args.threads} CPU thread(s)")
    save_checkpoint(model, args.out, train_cfg, lines,
                    {"final_val_loss": history[-1]["val"], "train_seconds": round(seconds), "torch": torch.__version__})
    print(f"wrote {args.out}/model.pt, config.json, train_log.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
