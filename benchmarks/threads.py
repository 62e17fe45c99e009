"""Training speed of notebook 07's model with 1 CPU thread against more.

    .venv/bin/python benchmarks/threads.py                 # 1 thread vs every core, 3 rounds
    .venv/bin/python benchmarks/threads.py --threads 1 2 4 --steps 300 --rounds 5

Each measurement is a fresh process that trains the course's model
(``COURSE_MODEL`` and ``COURSE_TRAIN`` of ``utils/train.py``, the recipe
notebook 07 trains) for ``--steps`` optimizer steps after 20 warm-up steps,
and reports tokens per second. The thread counts alternate within each round,
so a machine that gets busier or quieter affects them alike; the table gives
the median and range over rounds and each count's speed relative to 1 thread.
Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(threads: int, steps: int) -> float:
    """Tokens per second training the course model with ``threads`` threads (in this process)."""
    import torch

    from utils.data import CharTokenizer, get_batch, load_shakespeare, train_val_split
    from utils.reference.gpt import GPT
    from utils.train import COURSE_MODEL, COURSE_TRAIN, configure_optimizer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    text = load_shakespeare()
    tok = CharTokenizer(text)
    train_data, _ = train_val_split(torch.tensor(tok.encode(text)))
    model = GPT(COURSE_MODEL)
    cfg = COURSE_TRAIN
    optimizer = configure_optimizer(model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2))
    g = torch.Generator().manual_seed(0)

    def step():
        x, y = get_batch(train_data, cfg.batch_size, COURSE_MODEL.block_size, generator=g)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()

    for _ in range(20):  # warm-up: allocator, kernels
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    return steps * cfg.batch_size * COURSE_MODEL.block_size / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="thread counts to compare (default: 1 and every core)")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each thread count")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps({"tokens_per_s": measure(args.one, args.steps)}))
        return 0

    cores = os.cpu_count() or 1
    counts = args.threads or sorted({1, cores})
    results: dict[int, list[float]] = {n: [] for n in counts}
    for r in range(args.rounds):
        for n in counts:
            out = subprocess.run([sys.executable, __file__, "--one", str(n), "--steps", str(args.steps)],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            results[n].append(json.loads(out.stdout.strip().splitlines()[-1])["tokens_per_s"])
            print(f"round {r + 1}: {n} thread(s) {results[n][-1]:,.0f} tokens/s", flush=True)
    import torch

    print(f"\n{os.cpu_count()} cores, torch {torch.__version__}, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, {args.steps} steps per measurement")
    base = statistics.median(results[counts[0]])
    print(f"{'threads':>7} {'median tokens/s':>16} {'range':>19} {'vs ' + str(counts[0]) + ' thread(s)':>16}")
    for n in counts:
        values = results[n]
        med = statistics.median(values)
        print(f"{n:>7} {med:>16,.0f} {min(values):>9,.0f}-{max(values):<9,.0f} {med / base:>15.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
