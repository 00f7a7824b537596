"""Compile the fine-tuning study's Tracr programs and export them for fmbench's torch forward (build time only).

Runs in a throwaway environment with ``tracr-pypi`` (jax, haiku; never a dependency of fmbench
itself, whose runtime and tests need neither)::

    python -m venv /tmp/tracr && /tmp/tracr/bin/pip install 'tracr-pypi==1.0.0' safetensors
    /tmp/tracr/bin/python scripts/build_tracr.py --out fmbench/studies/finetuning/checkpoints

For each program it writes ``tracr_<name>.safetensors`` (float32 weights named as
``fmbench.studies.finetuning.tracr_model.TracrTransformer`` holds them, with the compiled config,
the vocabulary, the program and the residual stream's labels in the header) and
``tracr_<name>_golden.safetensors``: seeded test inputs with tracr's own final residual stream and
decoded outputs, which ``tests/test_finetuning_tracr.py`` compares the torch forward against.

The programs (arXiv:2311.12786, Tracr section):

- ``counter``: at every position, how many tokens of the sequence are ``a`` (9 letters ``a``-``i``,
  drawn with replacement, up to 10 of them); outputs ``0``-``10``.
- ``max``: at every position, the largest letter of the sequence (26 letters ``a``-``z`` drawn
  without replacement, up to 10): the letter with ``length - 1`` smaller letters (tracr's ``LT``
  compares key < query, so ``SelectorWidth(Select(tokens, tokens, LT))`` counts the smaller ones).

Three details make a plain forward match tracr (measured; fmbench/STUDIES notes): the unembedding
is no parameter of the compiled model (it is the projection of the residual stream onto the output
space, rebuilt here from the residual labels); tracr masks no PAD key (the exported inputs have no
PAD); position-embedding row 0 is zero (BOS carries no index).
"""

from __future__ import annotations

import argparse
import json
import string
from importlib.metadata import version
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from tracr.compiler import compiling
from tracr.rasp import rasp

MAX_LEN = 10
BOS, PAD = "BOS", "PAD"


def counter_program() -> rasp.SOp:
    """Count ``a`` at every position."""
    return rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k == "a")).named("counter")


def max_program() -> rasp.SOp:
    """The largest token at every position (tokens distinct)."""
    length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
    smaller = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.LT)).named("smaller")
    is_max = rasp.Select(smaller, length, lambda k, q: k == q - 1).named("is_max")
    return rasp.categorical(rasp.Aggregate(is_max, rasp.tokens)).named("max")


PROGRAMS = {
    "counter": {
        "build": counter_program,
        "letters": string.ascii_lowercase[:9],
        "outputs": [str(i) for i in range(MAX_LEN + 1)],
        "replace": True,
        "source": "SelectorWidth(Select(tokens, tokens, k == 'a'))",
    },
    "max": {
        "build": max_program,
        "letters": string.ascii_lowercase,
        "outputs": [],  # the letters themselves
        "replace": False,
        "source": "Aggregate(Select(SelectorWidth(Select(tokens, tokens, LT)), length, k == q - 1), tokens)",
    },
}


def compile_program(name: str, program: rasp.SOp, letters: list[str]) -> compiling.assemble.AssembledTransformerModel:
    """tracr's compiled model of ``program``; a program tracr cannot compile stops the build with one line."""
    try:
        return compiling.compile_rasp_to_model(
            program, vocab=set(letters), max_seq_len=MAX_LEN, causal=False, compiler_bos=BOS, compiler_pad=PAD
        )
    except Exception as e:  # tracr raises NotImplementedError, ValueError, KeyError, ... for what it cannot compile
        line = " ".join(str(e).split())[:300]
        raise SystemExit(f"tracr cannot compile the {name} program ({type(e).__name__}: {line})") from None


def export(name: str, out: Path, n_golden: int, seed: int) -> None:
    spec = PROGRAMS[name]
    letters = list(spec["letters"])
    program = spec["build"]()
    model = compile_program(name, program, letters)
    cfg, params, labels = model.model_config, model.params, model.residual_labels
    vocab = ["<bos>", *letters, *spec["outputs"]]
    d = len(labels)
    index = {label: i for i, label in enumerate(labels)}

    tok = np.zeros((len(vocab), d), np.float32)
    table = np.asarray(params["token_embed"]["embeddings"])
    tok[0] = table[model.input_encoder.encoding_map[BOS]]
    for i, letter in enumerate(letters, start=1):
        tok[i] = table[model.input_encoder.encoding_map[letter]]
    values = sorted(model.output_encoder.encoding_map, key=model.output_encoder.encoding_map.get)
    unembed = np.zeros((len(vocab), d), np.float32)
    for v in values:
        unembed[vocab.index(str(v)), index[f"{program.label}:{v}"]] = 1.0
    tensors = {
        "tok_emb.weight": tok,
        "pos_emb.weight": np.asarray(params["pos_embed"]["embeddings"], np.float32),
        "unembed.weight": unembed,
    }
    for layer in range(cfg.num_layers):
        p = f"transformer/layer_{layer}"
        pairs = {
            "attn.query": f"{p}/attn/query",
            "attn.key": f"{p}/attn/key",
            "attn.value": f"{p}/attn/value",
            "attn.out": f"{p}/attn/linear",
            "mlp.0": f"{p}/mlp/linear_1",
            "mlp.2": f"{p}/mlp/linear_2",
        }
        for ours, theirs in pairs.items():
            weight = np.asarray(params[theirs]["w"], np.float32).T
            tensors[f"blocks.{layer}.{ours}.weight"] = np.ascontiguousarray(weight)
            tensors[f"blocks.{layer}.{ours}.bias"] = np.asarray(params[theirs]["b"], np.float32)
    config = {
        "vocab_size": len(vocab),
        "context_size": MAX_LEN + 1,
        "d_model": d,
        "n_layer": cfg.num_layers,
        "n_head": cfg.num_heads,
        "key_size": cfg.key_size,
        "mlp_hidden": cfg.mlp_hidden_size,
        "causal": bool(cfg.causal),
        "output_ids": sorted(vocab.index(str(v)) for v in values),
    }
    meta = {
        "architecture": "tracr",
        "config": config,
        "vocab": vocab,
        "program": {"name": name, "rasp": spec["source"], "max_seq_len": MAX_LEN, "letters": "".join(letters)},
        "compiled_with": f"tracr-pypi {version('tracr-pypi')}",
        "residual_labels": labels,
    }
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / f"tracr_{name}.safetensors"), metadata={"fmbench": json.dumps(meta, sort_keys=True)})

    rng = np.random.default_rng(seed)
    ids = np.zeros((n_golden, MAX_LEN + 1), np.int64)
    residual = np.zeros((n_golden, MAX_LEN + 1, d), np.float32)
    decoded = np.full((n_golden, MAX_LEN + 1), -1, np.int64)
    correct = 0
    for g in range(n_golden):
        seq = list(rng.choice(letters, MAX_LEN, replace=spec["replace"]))
        result = model.apply([BOS, *seq])
        ids[g] = [0, *(vocab.index(x) for x in seq)]
        residual[g] = np.asarray(result.transformer_output[0], np.float32)
        decoded[g, 1:] = [vocab.index(str(x)) for x in result.decoded[1:]]
        expected = str(seq.count("a")) if name == "counter" else max(seq)
        correct += all(str(x) == expected for x in result.decoded[1:])
    save_file(
        {"ids": ids, "residual": residual, "decoded": decoded},
        str(out / f"tracr_{name}_golden.safetensors"),
        metadata={"seed": str(seed), "compiled_with": meta["compiled_with"]},
    )
    print(
        f"{name}: {cfg.num_layers} layers, d={d}, {sum(t.size for t in tensors.values())} weights; "
        f"tracr correct on {correct}/{n_golden} golden inputs"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--golden", type=int, default=32, help="golden inputs per program")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    for name in PROGRAMS:
        export(name, Path(args.out), args.golden, args.seed)


if __name__ == "__main__":
    main()
