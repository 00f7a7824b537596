"""Small hostile files cost little memory: every loader refuses them in one line before allocating.

Each file (or folder) is under 1 MB and declares (or expands to) hundreds of megabytes or more. One child
process runs every case, through the CLI where a command loads the file, and reports the growth
of its peak RSS over its RSS after the imports; the goal is under 500 MB for each.
"""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from fmbench.nn.gpt import GPT, GPTConfig

LIMIT_MB = 500
CHUNK = 28 * 28 * 10_000  # ten thousand Fashion-MNIST images of zeros

CHILD = r"""
import contextlib, io, json, os, resource, sys, time

import fmbench.cli, fmbench.models, fmbench.sb3, transformers  # transformers: imported by hf: specs
from fmbench.errors import FmbenchError
from fmbench.fashion_mnist import load_fashion_mnist
from fmbench.studies.fomo.captioner import load_parser
from fmbench.studies.graphcl.tu import load_tu

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def cli(*argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = fmbench.cli.main(list(argv))
    lines = err.getvalue().splitlines()
    return f"exit {status}: " + (lines[-1] if lines else "")

def evaluate(task, spec):
    return cli("eval", "--task", task, "--model", spec, "--seeds", "0", "--device", "cpu", "--limit", "1",
               "--no-progress")

def call(load, *args):
    try:
        load(*args)
    except FmbenchError as e:
        return "error: " + str(e)
    return "loaded"

folder = sys.argv[1]
os.environ.update({"FMBENCH_FASHION_MNIST": f"{folder}/fashion", "FMBENCH_FASHION_MNIST_VERIFY": "0"})
CASES = {
    "safetensors-config": lambda: evaluate("fmbench/ComposeDirect-v0", f"safetensors:{folder}/wide.safetensors"),
    "safetensors-depth": lambda: evaluate("fmbench/ComposeDirect-v0", f"safetensors:{folder}/deep.safetensors"),
    "safetensors-offsets": lambda: evaluate("fmbench/ComposeDirect-v0", f"safetensors:{folder}/offsets.safetensors"),
    "hf-config": lambda: evaluate("fmbench/ComposeDirect-v0", f"hf:{folder}/hf"),
    "tile-parser-config": lambda: call(load_parser, f"{folder}/parser.safetensors"),
    "sb3-zip-bomb": lambda: evaluate("fmbench/ComposeTokensPolicy-v0", f"sb3:{folder}/bomb.zip"),
    "tu-node-label": lambda: call(load_tu, f"{folder}/tu"),
    "fashion-mnist-gzip-bomb": lambda: call(load_fashion_mnist, "test"),
}
base = peak_mb()
for name in sys.argv[2:] or CASES:
    start = time.perf_counter()
    outcome = CASES[name]()
    print(json.dumps({"case": name, "growth_mb": peak_mb() - base, "seconds": time.perf_counter() - start,
                      "outcome": outcome}), flush=True)
"""


def _zeros_deflated(prefix: bytes, repeats: int) -> tuple[bytes, int, int]:
    """A raw deflate stream of ``prefix`` then ``repeats * CHUNK`` zero bytes, its CRC-32 and size.

    After a full flush deflate starts afresh, so one chunk's compressed block is repeated
    instead of compressing hundreds of megabytes.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(CHUNK)) + c.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(prefix)
    for _ in range(repeats):
        crc = zlib.crc32(bytes(CHUNK), crc)
    return head + block * repeats + c.flush(), crc, len(prefix) + repeats * CHUNK


def _zip_bomb(path: Path, name: str, repeats: int) -> None:
    """A zip whose one member ``name`` is ``repeats * CHUNK`` deflated zeros."""
    raw, crc, size = _zeros_deflated(b"", repeats)
    n = name.encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(raw), size, len(n), 0) + n
    central = struct.pack(
        "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(raw), size, len(n), 0, 0, 0, 0, 0, 0
    )
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(n), len(local) + len(raw), 0)
    path.write_bytes(local + raw + central + n + end)


def _gpt_file(path: Path, config: dict) -> None:
    """A tiny GPT's weights whose header claims ``config``."""
    model = GPT(GPTConfig(vocab_size=5, context_size=8, n_embd=8))
    tensors = {k: v.contiguous() for k, v in model.state_dict().items() if k != "head.weight"}
    save_file(tensors, str(path), metadata={"fmbench": json.dumps({"architecture": "gpt", "config": config})})


def _offsets_file(path: Path) -> None:
    """A safetensors header declaring a 4 GB tensor in a file of a few bytes."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 30], "data_offsets": [0, 1 << 32]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))


def _hf(folder: Path) -> None:
    """A Hugging Face folder whose GPT-2 config declares a billion parameters, with 60 tensors of 400 values stored."""
    folder.mkdir()
    config = {"model_type": "gpt2", "vocab_size": 50_000, "n_positions": 16, "n_embd": 4096, "n_layer": 4, "n_head": 8}
    (folder / "config.json").write_text(json.dumps(config))
    save_file({f"t{i}": torch.zeros(50, 8) for i in range(60)}, str(folder / "model.safetensors"))


def _tu(folder: Path) -> None:
    """One graph of 8 nodes, one of them labelled 100,000,000."""
    folder.mkdir()
    text = {
        "A": "".join(f"{i}, {i + 1}\n" for i in range(1, 8)),
        "graph_indicator": "1\n" * 8,
        "graph_labels": "1\n",
        "node_labels": "0\n" * 7 + "100000000\n",
    }
    for suffix, body in text.items():
        (folder / f"BIG_{suffix}.txt").write_text(body)


def _fashion(folder: Path) -> None:
    """Tiny valid train files, and test images whose header says 700,000 and whose gzip expands to them."""
    folder.mkdir()
    for name, magic, shape in [
        ("train-images-idx3-ubyte.gz", 2051, (2, 28, 28)),
        ("train-labels-idx1-ubyte.gz", 2049, (2,)),
    ]:
        (folder / name).write_bytes(
            gzip.compress(np.array([magic, *shape], ">u4").tobytes() + bytes(int(np.prod(shape))))
        )
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(np.array([2049, 3], ">u4").tobytes() + bytes(3)))
    raw, crc, size = _zeros_deflated(np.array([2051, 700_000, 28, 28], ">u4").tobytes(), 70)
    trailer = struct.pack("<2L", crc, size & 0xFFFFFFFF)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + raw + trailer)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    _gpt_file(folder / "wide.safetensors", {"vocab_size": 5, "context_size": 8, "n_embd": 4096})
    _gpt_file(folder / "deep.safetensors", {"vocab_size": 5, "context_size": 8, "n_embd": 8, "n_layer": 10**6})
    _offsets_file(folder / "offsets.safetensors")
    tiny = {k: v.contiguous() for k, v in torch.nn.Linear(2, 2).state_dict().items()}
    parser_meta = {"architecture": "tile_parser", "config": {"hidden": 100_000, "layers": 2}}
    save_file(tiny, str(folder / "parser.safetensors"), metadata={"fmbench": json.dumps(parser_meta)})
    _zip_bomb(folder / "bomb.zip", "policy.pth", 80)
    _hf(folder / "hf")
    _tu(folder / "tu")
    _fashion(folder / "fashion")
    return folder


@pytest.mark.slow  # decompresses 549 MB to check the gzip bomb is one
def test_the_hostile_files_are_small_and_expand(hostile: Path) -> None:
    sizes = {p.name: p.stat().st_size for p in hostile.rglob("*") if p.is_file()}
    assert max(sizes.values()) < 1 << 20
    with gzip.open(hostile / "fashion" / "t10k-images-idx3-ubyte.gz") as f:
        assert sum(len(b) for b in iter(lambda: f.read(1 << 24), b"")) == 16 + 700_000 * 784


EXPECTED = {
    "safetensors-config": "wide.safetensors: weights do not fit the gpt config (wrong shapes",
    "safetensors-depth": "deep.safetensors: the gpt config describes more than 46 tensors; the file stores 15",
    "safetensors-offsets": "offsets.safetensors is not a readable safetensors file",
    "hf-config": "hf: its config describes 1010393088 parameters, but its weights hold 24000 values",
    "tile-parser-config": "parser.safetensors: weights do not fit the tile parser config (missing",
    "sb3-zip-bomb": "bomb.zip: member policy.pth declares 627200000 bytes (limit 268435456)",
    "tu-node-label": "BIG_node_labels.txt: node labels in column 1 span 0..100000000 but only 2 values occur",
    "fashion-mnist-gzip-bomb": "the header says 700000 images; the published split has 10000",
}


@pytest.mark.slow  # the child's imports (torch, torch_geometric, Stable-Baselines3) take 10-20 s
def test_each_hostile_file_is_refused_in_one_line_within_the_memory_goal(hostile: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", CHILD, str(hostile)], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr[-2000:]
    results = {r["case"]: r for r in map(json.loads, run.stdout.splitlines())}
    assert set(results) == set(EXPECTED)
    for case, expected in EXPECTED.items():
        outcome = results[case]["outcome"]
        assert expected in outcome and "\n" not in outcome and outcome.startswith(("exit 1: ", "error: ")), outcome
        assert results[case]["growth_mb"] < LIMIT_MB, results[case]
    assert "Traceback" not in run.stderr
