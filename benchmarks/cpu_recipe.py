"""The course's training recipe against nanoGPT's CPU recipe, at equal wall-clock time.

nanoGPT's README trains a character-level Shakespeare model on a CPU with
n_layer 4, n_head 4, n_embd 128, block 64, batch 12, 2000 iterations, dropout 0
and lr 1e-3 with warm-up and cosine (its config/train_shakespeare_char.py for the
rest: min_lr 1e-4, 100 warm-up steps, beta2 0.99, weight decay 0.1, clipping at 1,
no biases). This script trains the course's GPT (utils/reference/gpt.py, the
notebook's model) on the prepared corpus:

1. the baseline: exactly that recipe, 2000 iterations, timed;
2. the course's recipe (utils/train.py: COURSE_MODEL, COURSE_TRAIN) for the same
   number of seconds as the baseline run before it, its learning-rate schedule
   following elapsed time instead of steps.

and reports for each run:

- val loss, on one fixed set of validation windows of 64 characters (the
  baseline's block size), the same windows for every recipe;
- training throughput in tokens per second;
- peak memory (the process's maximum resident set size, torch included).

Every run is a fresh process, so peak memory is per run. Runs alternate
between the recipes, so a slow patch of a shared machine hits both. Run it on
an otherwise idle machine: the budget is wall-clock time.

    python benchmarks/cpu_recipe.py                   # 3 pairs of runs, medians
    python benchmarks/cpu_recipe.py --runs 1 --budget 60   # both recipes for 60 s each
    python benchmarks/cpu_recipe.py --recipes course --budget 120 --set '{"train": {"lr": 3e-3}}'
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from utils.data import CharTokenizer, load_shakespeare, train_val_split  # noqa: E402
from utils.reference.gpt import GPT, GPTConfig  # noqa: E402
from utils.train import COURSE_MODEL, COURSE_TRAIN, TrainConfig, estimate_loss, fixed_batches, train  # noqa: E402

EVAL_BLOCK = 64        # every recipe is scored on the same windows of this length
EVAL_BATCHES = 50      # x 64 windows x 64 characters = 204,800 scored characters
EVAL_BATCH_SIZE = 64

RECIPES = {
    # nanoGPT: config/train_shakespeare_char.py with the README's CPU overrides
    "baseline": {
        "model": GPTConfig(vocab_size=0, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False),
        "train": TrainConfig(batch_size=12, max_iters=2000, lr=1e-3, min_lr=1e-4, warmup_frac=100 / 2000,
                             weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, eval_interval=0, eval_batches=0,
                             fused_adamw=False),   # nanoGPT fuses AdamW on CUDA only
    },
    "course": {
        "model": COURSE_MODEL,
        "train": replace(COURSE_TRAIN, eval_interval=0, eval_batches=0),
    },
}


def one_run(recipe: str, budget: float | None, seed: int, overrides: dict) -> dict:
    spec = RECIPES[recipe]              # both run with PyTorch's default threads: one per core
    text = load_shakespeare()
    tok = CharTokenizer(text)
    train_data, val_data = train_val_split(torch.tensor(tok.encode(text), dtype=torch.long))
    model_cfg = replace(spec["model"], vocab_size=tok.vocab_size, **overrides.get("model", {}))
    train_cfg = replace(spec["train"], seed=seed, time_budget=budget, **overrides.get("train", {}))
    # budget None: the recipe's own max_iters with a step-based schedule (the baseline as published)
    torch.manual_seed(seed)
    model = GPT(model_cfg)
    start = time.perf_counter()
    steps = []
    train(model, train_data, val_data, train_cfg, progress=lambda r: _count(r, steps), log=lambda line: None)
    seconds = time.perf_counter() - start
    n_steps = steps[0] if steps else 0
    val = estimate_loss(model, fixed_batches(val_data, EVAL_BATCHES, EVAL_BATCH_SIZE, EVAL_BLOCK, seed=2024))
    return {
        "recipe": recipe, "seed": seed, "val_loss": val, "steps": n_steps, "seconds": seconds,
        "tokens_per_s": n_steps * train_cfg.batch_size * model_cfg.block_size / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
    }


def _count(steps_iterable, out):
    n = 0
    for step in steps_iterable:
        yield step
        n += 1
    out.append(n)


def _run(recipe: str, budget: float | None, seed: int, overrides: str) -> dict:
    cmd = [sys.executable, __file__, "--one", recipe, "--seed", str(seed), "--set", overrides]
    if budget is not None:
        cmd += ["--budget", str(budget)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per recipe (medians are reported)")
    parser.add_argument("--budget", type=float, default=None,
                        help="training seconds per run for every recipe (default: the baseline runs its "
                             "2000 iterations and the course recipe gets the same time)")
    parser.add_argument("--recipes", default="baseline,course")
    parser.add_argument("--set", default="{}", help='JSON overrides for the course recipe, e.g. \'{"train": {"lr": 3e-3}}\'')
    parser.add_argument("--one", help=argparse.SUPPRESS)   # internal: a single run, JSON to stdout
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        overrides = json.loads(args.set) if args.one == "course" else {}
        print(json.dumps(one_run(args.one, args.budget, args.seed, overrides)))
        return 0

    recipes = args.recipes.split(",")
    results = {r: [] for r in recipes}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads by default")
    for run in range(args.runs):
        budget = args.budget
        for recipe in recipes:
            row = _run(recipe, budget, run, args.set)
            if recipe == "baseline" and budget is None:
                budget = row["seconds"]      # the course recipe gets exactly the baseline's time
            results[recipe].append(row)
            print(f"run {run + 1}/{args.runs} {recipe:8s}: val loss {row['val_loss']:.4f} | {row['steps']} steps "
                  f"in {row['seconds']:.1f} s | {row['tokens_per_s']:,.0f} tokens/s | "
                  f"peak RSS {row['peak_rss_mb']:.0f} MB | {row['params']:,} params", flush=True)

    print(f"\nmedians over {args.runs} runs")
    print(f"{'recipe':10s} {'val loss':>9s} {'steps':>7s} {'seconds':>8s} {'tokens/s':>10s} {'peak MB':>8s}")
    med = {}
    for recipe, rows in results.items():
        med[recipe] = {k: statistics.median(r[k] for r in rows)
                       for k in ("val_loss", "steps", "seconds", "tokens_per_s", "peak_rss_mb")}
        m = med[recipe]
        print(f"{recipe:10s} {m['val_loss']:9.4f} {m['steps']:7.0f} {m['seconds']:8.1f} "
              f"{m['tokens_per_s']:10,.0f} {m['peak_rss_mb']:8.0f}")
    if "baseline" in med and "course" in med:
        ratio = med["course"]["val_loss"] / med["baseline"]["val_loss"]
        print(f"\ncourse / baseline val loss: {ratio:.3f} (goal: at most 0.90)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
