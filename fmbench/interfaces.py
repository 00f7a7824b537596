"""Model interfaces, each defined once: what a model receives and returns, and the check that refuses it.

A task entry names its interface (``interface = "sequence-model"``) and ``Task.interface`` is
the registered :class:`Interface`. Its ``check(model, **context)`` refuses a model that does
not fit before anything is scored: the declared interface, the model's type, then one call on
a tiny input (shapes, dtypes, finiteness). The context is what the task knows (its vocabulary,
a couple of its graphs or images). The helpers an evaluator calls on every batch (``encode``,
``Policy.act``, ``RewardModel.score``, ...) apply the same checks, so a model that breaks
later is named, not scored. Interfaces live in a plain-data registry: :func:`register_interface`,
:func:`get_interface`, :func:`list_interfaces`. A study with an interface of its own registers it in
the module its ``fmbench.studies`` entry point names (imported before its specs are read).

The shared helpers for submitted models live here too, one implementation each:
:func:`call_model` (an exception raised by the submission's code becomes a one-line
``ModelError``), :func:`device_of`, :func:`count_parameters`, :func:`seeded` and
:func:`untrained_twin`.

Example:
    >>> import torch
    >>> from fmbench.models import from_module
    >>> from fmbench.nn.gpt import GPT, GPTConfig
    >>> m = from_module(GPT(GPTConfig(vocab_size=8, context_size=16, n_embd=8)), "x", "x")
    >>> get_interface("sequence-model").check(m, vocab=[f"t{i}" for i in range(8)], sequence_length=16)
    >>> "causal-lm" in list_interfaces()
    True
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import torch

from fmbench.errors import InputError, ModelError, first_line
from fmbench.random_access import stream_key

if TYPE_CHECKING:
    from fmbench.models import LoadedModel

T = TypeVar("T")
M = TypeVar("M", bound=torch.nn.Module)


# ---- helpers for submitted models ----------------------------------------------------------------
def call_model(what: str, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``; whatever the submission's code raises becomes ``ModelError("<what> (<Type>: <line>)")``.

    A ``ModelError`` passes through unchanged (it already names its problem).

    Example:
        >>> call_model("m on 2 items", lambda x: 1 / x, 0)
        Traceback (most recent call last):
        fmbench.errors.ModelError: m on 2 items (ZeroDivisionError: division by zero)
    """
    try:
        return fn(*args)
    except ModelError:
        raise
    except Exception as e:  # the submission's own code: report whatever it raised, in one line
        text = first_line(e, "")
        raise ModelError(f"{what} ({type(e).__name__}{': ' + text if text else ''})") from None


def device_of(model: object) -> str:
    """The device of a torch module's first parameter (or buffer); ``"cpu"`` for anything else.

    Example:
        >>> device_of(torch.nn.Linear(2, 2)), device_of(lambda x: x)
        ('cpu', 'cpu')
    """
    if isinstance(model, torch.nn.Module):
        for t in (*model.parameters(), *model.buffers()):
            return str(t.device)
    return "cpu"


def count_parameters(*modules: torch.nn.Module) -> int:
    """Distinct parameters of torch modules (a parameter shared between them counts once).

    Example:
        >>> layer = torch.nn.Linear(3, 2)
        >>> count_parameters(layer, torch.nn.Sequential(layer))
        8
    """
    return sum(p.numel() for p in {id(p): p for m in modules for p in m.parameters()}.values())


def seeded(build: Callable[[], T], seed: int) -> T:
    """``build()`` (a fresh model, initialised from ``seed``) with torch's global CPU generator seeded to ``seed``.

    The global generator is left as it was, so building a model does not change what is drawn next.

    Example:
        >>> a, b = seeded(lambda: torch.nn.Linear(2, 2), 0), seeded(lambda: torch.nn.Linear(2, 2), 0)
        >>> torch.equal(a.weight, b.weight)
        True
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def untrained_twin(model: M, seed: int = 0) -> M:
    """A copy of ``model`` (same architecture) with every parameter re-initialised, reproducibly for ``seed``.

    Modules with ``reset_parameters`` (torch and torch_geometric layers) use it, which also
    resets batch-norm statistics; any other parameter is drawn Xavier-uniform (2-D and up),
    or set to one (1-D ``*weight``) or zero (other 1-D). The twin is drawn and returned on
    the CPU, so it is the same whatever device ``model`` is on.

    Example:
        >>> from fmbench.nn.gin import GIN, GINConfig
        >>> a = untrained_twin(GIN(GINConfig(in_dim=1)), seed=3)
        >>> b = untrained_twin(GIN(GINConfig(in_dim=1)), seed=3)
        >>> all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
        True
    """
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"an untrained twin needs a torch.nn.Module (its architecture), got {type(model).__name__}")
    twin = copy.deepcopy(model).cpu()  # drawn on the CPU: the same twin on every device
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(stream_key(seed, "untrained-twin"))
        reset: set[int] = set()
        for module in twin.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
                reset.update(id(p) for p in module.parameters(recurse=False))
        for name, p in twin.named_parameters():
            if id(p) in reset:
                continue
            if p.dim() >= 2:
                torch.nn.init.xavier_uniform_(p)
            else:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
    return twin.eval()


def encode(encoder: object, inputs: object, n: int, dim: int | None, name: str) -> torch.Tensor:
    """``encoder(inputs)`` as ``(n, d)`` float embeddings on the CPU, else ``ModelError`` naming ``name``.

    Refuses an encoder that raises, returns anything but a 2-D tensor of ``n`` rows, changes
    width from ``dim`` (the width seen on earlier batches; ``None`` for the first), or returns
    NaN or infinity.

    Example:
        >>> encode(lambda x: x * 2, torch.ones(3, 4), 3, None, "batch 0").shape
        torch.Size([3, 4])
    """
    z = call_model(f"{name}: the encoder failed", encoder, inputs)
    if not isinstance(z, torch.Tensor):
        raise ModelError(f"{name}: the encoder returned {type(z).__name__}, expected a ({n}, d) tensor")
    if z.dim() != 2 or z.shape[0] != n:
        raise ModelError(
            f"{name}: the encoder returned shape {tuple(z.shape)}, expected ({n}, d): one embedding per input"
        )
    if dim is not None and z.shape[1] != dim:
        raise ModelError(f"{name}: the encoder returned width {z.shape[1]} after {dim} on earlier batches")
    if not torch.isfinite(z).all():
        raise ModelError(f"{name}: the encoder returned NaN or infinite embeddings")
    return z.float().cpu()


def _float_array(values: object, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``values`` as a finite float64 numpy array of ``shape``, else ``ModelError`` naming ``what``."""
    if not isinstance(values, np.ndarray):
        raise ModelError(f"{what} returned {type(values).__name__}; expected a numpy array of shape {shape}")
    if values.shape != shape:
        raise ModelError(f"{what} returned shape {values.shape}; expected {shape}")
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
        raise ModelError(f"{what} returned {values.dtype} values; expected real numbers")
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise ModelError(f"{what} returned {int((~np.isfinite(values)).sum())} non-finite value(s)")
    return values


def _float_tensor(out: object, shape: tuple[int, ...], what: str) -> torch.Tensor:
    """``out`` if it is a finite floating-point tensor of ``shape``, else ``ModelError`` naming ``what``."""
    if not isinstance(out, torch.Tensor):
        raise ModelError(f"{what} returned {type(out).__name__}; expected a tensor of shape {shape}")
    if tuple(out.shape) != shape:
        raise ModelError(f"{what} returned shape {tuple(out.shape)}; expected {shape}")
    if not out.is_floating_point():
        raise ModelError(f"{what} returned {out.dtype} values; expected floating point")
    if not torch.isfinite(out).all():
        raise ModelError(f"{what} returned NaN or infinite values")
    return out


# ---- the interfaces -----------------------------------------------------------------------------
class Interface:
    """A model interface: its ``name`` (what task entries cite), ``description`` and ``check``.

    ``module_required`` says whether the model must be a ``torch.nn.Module`` (an encoder's
    untrained twin needs its architecture) or may be any object with the methods the
    interface calls. Subclasses extend :meth:`check` with a call on a tiny input.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    module_required: ClassVar[bool] = True

    def check(self, model: LoadedModel, **context: Any) -> None:
        """Raise ``ModelError`` unless ``model`` declares this interface (and is a torch module where required)."""
        if model.interface != self.name:
            raise ModelError(f"{model.spec} has interface {model.interface!r}; this task scores a {self.name!r}")
        if self.module_required and not isinstance(model.model, torch.nn.Module):
            raise ModelError(f"{model.spec}: a {self.name} must be a torch.nn.Module, got {type(model.model).__name__}")


class SequenceModel(Interface):
    """Token ids ``(B, T)`` -> logits ``(B, T, V)``; ``check(model, vocab=..., sequence_length=...)``."""

    name = "sequence-model"
    description = (
        "A causal sequence model: a torch.nn.Module mapping a LongTensor (B, T) of token ids to float "
        "logits (B, T, V), V at least the task's vocabulary (extra logits are ignored)."
    )

    def check(self, model: LoadedModel, **context: Any) -> None:
        """Also checks the vocabulary (size and, when the model carries one, its tokens), the context and one pass."""
        super().check(model)
        vocab: list[str] = context["vocab"]
        length: int = context["sequence_length"]
        vocab_size = len(vocab)
        if model.vocab_size is not None and model.vocab_size < vocab_size:
            raise ModelError(
                f"{model.spec} has {model.vocab_size} output tokens; the task's vocabulary has {vocab_size}"
            )
        if model.tokens is not None and list(model.tokens[:vocab_size]) != list(vocab):
            wrong = next(i for i, t in enumerate(vocab) if i >= len(model.tokens) or model.tokens[i] != t)
            theirs = repr(model.tokens[wrong]) if wrong < len(model.tokens) else "missing"
            raise ModelError(
                f"{model.spec} has a vocabulary of its own (its token {wrong} is {theirs}, the task's "
                f"is {vocab[wrong]!r}); train it on the task's vocabulary"
            )
        if model.context_length is not None and model.context_length < length:
            raise ModelError(f"{model.spec} accepts {model.context_length} tokens; the task needs {length}")
        probe = torch.arange(2 * length, device=device_of(model.model)).reshape(2, length) % vocab_size
        with torch.inference_mode():
            out = call_model(f"{model.spec} failed on a (2, {length}) batch of token ids", model.model, probe)
        if not isinstance(out, torch.Tensor):
            raise ModelError(f"{model.spec} returned {type(out).__name__}; expected a logits tensor")
        if out.ndim != 3 or out.shape[:2] != (2, length) or out.shape[2] < vocab_size:
            raise ModelError(
                f"{model.spec} returned logits of shape {tuple(out.shape)}; expected "
                f"(2, {length}, V) with V >= {vocab_size}"
            )
        if not out.is_floating_point():
            raise ModelError(f"{model.spec} returned {out.dtype} logits; expected floating point")
        if not torch.isfinite(out[..., :vocab_size]).all():
            raise ModelError(f"{model.spec} returned NaN or infinite logits")


class GraphEncoder(Interface):
    """A torch_geometric ``Batch`` -> ``(num_graphs, d)``; ``check(model, graphs=[Data, ...])``."""

    name = "graph-encoder"
    description = (
        "A graph encoder: a torch.nn.Module mapping a torch_geometric Batch (x, edge_index, batch, "
        "num_graphs) to float embeddings (num_graphs, d), d fixed; used frozen, beside its untrained "
        "twin (same architecture, re-initialised)."
    )

    def check(self, model: LoadedModel, **context: Any) -> None:
        """Also embeds ``graphs`` (a few of the task's graphs) as one batch."""
        from torch_geometric.data import Batch

        super().check(model)
        graphs = context["graphs"]
        batch = Batch.from_data_list(graphs).to(device_of(model.model))
        model.model.eval()
        with torch.no_grad():
            encode(model.model, batch, len(graphs), None, f"batch of graphs 0-{len(graphs) - 1}")


class ImageEncoder(Interface):
    """Float images ``(B, C, H, W)`` in [0, 1] -> ``(B, d)``; ``check(model, images=tensor)``."""

    name = "image-encoder"
    description = (
        "An image encoder: a torch.nn.Module mapping float images (B, C, H, W) with values in [0, 1] "
        "to embeddings (B, d), d fixed; used frozen (eval mode, no gradients)."
    )

    def check(self, model: LoadedModel, **context: Any) -> None:
        """Also embeds ``images`` (a few of the task's images as a float tensor)."""
        super().check(model)
        images: torch.Tensor = context["images"]
        model.model.eval()
        with torch.no_grad():
            encode(
                model.model,
                images.to(device_of(model.model)),
                len(images),
                None,
                f"{model.spec}: batch of images 0-{len(images) - 1}",
            )


class VectorEncoder(Interface):
    """Float vectors ``(B, dim)`` -> ``(B, k)``; ``check(model, inputs=tensor)``."""

    name = "vector-encoder"
    description = (
        "A vector encoder: a torch.nn.Module mapping float32 vectors (B, dim) to float embeddings (B, k), k fixed; "
        "used frozen (eval mode, no gradients)."
    )

    def check(self, model: LoadedModel, **context: Any) -> None:
        """Also embeds ``inputs`` (a few of the task's vectors as a float tensor)."""
        super().check(model)
        inputs: torch.Tensor = context["inputs"]
        model.model.eval()
        with torch.no_grad():
            encode(
                model.model, inputs.to(device_of(model.model)), len(inputs), None, f"{model.spec}: a batch of inputs"
            )


class Policy(Interface):
    """Observations ``(B, ...)`` -> integer actions ``(B,)``; ``check(model, observations=..., n_actions=...)``."""

    name = "policy"
    description = (
        "A policy: a callable mapping a numpy batch of observations (B, ...) to a numpy integer array "
        "(B,) of actions in [0, n_actions)."
    )
    module_required = False

    def act(self, model: LoadedModel, obs: np.ndarray, n_actions: int) -> np.ndarray:
        """The model's actions on an observation batch, refused with ``ModelError`` if malformed."""
        actions = call_model(f"{model.spec} failed on a {obs.shape} observation batch", model.model, obs)
        if not isinstance(actions, np.ndarray):
            raise ModelError(f"{model.spec} returned {type(actions).__name__}; expected a numpy array of actions")
        if actions.shape != obs.shape[:1]:
            raise ModelError(f"{model.spec} returned actions of shape {actions.shape}; expected {obs.shape[:1]}")
        if not np.issubdtype(actions.dtype, np.integer):
            raise ModelError(f"{model.spec} returned {actions.dtype} actions; expected integers")
        if actions.size and (actions.min() < 0 or actions.max() >= n_actions):
            raise ModelError(
                f"{model.spec} returned actions outside [0, {n_actions}): min {actions.min()}, max {actions.max()}"
            )
        return actions

    def check(self, model: LoadedModel, **context: Any) -> None:
        """Also acts on ``observations`` (a small batch)."""
        super().check(model)
        self.act(model, context["observations"], context["n_actions"])


class RewardModel(Interface):
    """``score(trajectories) -> (N,)`` finite scores; ``check(model, trajectories=lambda needs_frames: [...])``."""

    name = "reward-model"
    description = (
        "A reward model: an object with `needs_frames: bool` and `score(trajectories)` returning a "
        "numpy float array with one finite score per trajectory (higher = closer to its instruction)."
    )
    module_required = False

    def score(self, model: LoadedModel, trajectories: Sequence[Any]) -> np.ndarray:
        """The model's scores as float64, refused with ``ModelError`` if malformed or non-finite."""
        scores = call_model(f"{model.spec} failed on {len(trajectories)} trajectories", model.model.score, trajectories)
        return _float_array(scores, (len(trajectories),), str(model.spec))

    def check(self, model: LoadedModel, **context: Any) -> None:
        """Also scores ``trajectories(needs_frames)``: a few trajectories, with frames if the model needs them."""
        super().check(model)
        if not callable(getattr(model.model, "score", None)) or not hasattr(model.model, "needs_frames"):
            raise ModelError(f"{model.spec} has no score(trajectories) method or needs_frames attribute")
        self.score(model, context["trajectories"](bool(model.model.needs_frames)))


class ImageGenerator(Interface):
    """Conditions -> images, seeded; ``check(model, n_conditions=..., image_shape=(C, H, W))``.

    The model has ``generate(conditions, seed)``: ``conditions`` a LongTensor ``(B,)`` of
    condition ids in ``[0, n_conditions)`` (class labels, prompt ids), ``seed`` an int; it
    returns float images ``(B, C, H, W)`` with values in [0, 1], the same for the same seed.
    """

    name = "image-generator"
    description = (
        "A conditional image generator: an object with `generate(conditions, seed)` mapping a "
        "LongTensor (B,) of condition ids and an int seed to float images (B, C, H, W) in [0, 1]; the "
        "same seed gives the same images."
    )
    module_required = False

    def generate(
        self, model: LoadedModel, conditions: torch.Tensor, seed: int, image_shape: tuple[int, int, int]
    ) -> torch.Tensor:
        """The model's images for ``conditions``, refused with ``ModelError`` if malformed or out of [0, 1]."""
        what = f"{model.spec} generating {len(conditions)} images with seed {seed}"
        out = _float_tensor(
            call_model(what, model.model.generate, conditions, seed), (len(conditions), *image_shape), what
        )
        if out.numel() and (out.min() < 0 or out.max() > 1):
            raise ModelError(
                f"{what} returned values in [{float(out.min()):.3g}, {float(out.max()):.3g}]; expected [0, 1]"
            )
        return out

    def check(self, model: LoadedModel, **context: Any) -> None:
        """Also generates two images twice with one seed and refuses a generator that does not repeat them."""
        super().check(model)
        if not callable(getattr(model.model, "generate", None)):
            raise ModelError(f"{model.spec} has no generate(conditions, seed) method")
        shape = tuple(context["image_shape"])
        conditions = torch.arange(2, device=device_of(model.model)) % int(context["n_conditions"])
        with torch.no_grad():
            first = self.generate(model, conditions, 0, shape)
            again = self.generate(model, conditions, 0, shape)
        if not torch.equal(first, again):
            raise ModelError(f"{model.spec} gave different images for the same seed; generation must be seeded")


class BNClassifier(Interface):
    """Images -> logits by a module with BatchNorm; ``check(model, image_shape=(C, H, W), n_classes=...)``.

    Loss-path evaluation runs the classifier in both modes, so it must be a torch module
    holding at least one BatchNorm layer; in eval mode it maps float images ``(B, C, H, W)``
    in [0, 1] to logits ``(B, n_classes)``.
    """

    name = "bn-classifier"
    description = (
        "An image classifier with BatchNorm: a torch.nn.Module holding at least one BatchNorm layer, "
        "mapping float images (B, C, H, W) in [0, 1] to logits (B, n_classes)."
    )

    def logits(self, model: LoadedModel, images: torch.Tensor, n_classes: int) -> torch.Tensor:
        """The model's logits on ``images``, refused with ``ModelError`` if malformed."""
        what = f"{model.spec} on a {tuple(images.shape)} batch of images"
        return _float_tensor(call_model(what, model.model, images), (len(images), n_classes), what)

    def check(self, model: LoadedModel, **context: Any) -> None:
        """Also refuses a module without BatchNorm and classifies two images in eval mode."""
        super().check(model)
        if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.model.modules()):
            raise ModelError(f"{model.spec} holds no BatchNorm layer; this task evaluates a BatchNorm classifier")
        images = torch.rand((2, *context["image_shape"]), generator=torch.Generator().manual_seed(0))
        training = model.model.training
        model.model.eval()
        try:
            with torch.no_grad():
                self.logits(model, images.to(device_of(model.model)), int(context["n_classes"]))
        finally:
            model.model.train(training)


class CausalLM(Interface):
    """Texts -> log-probabilities under a causal language model; ``check(model, methods=(...))``.

    The model is any object with (some of) these methods, taking and returning plain lists
    and numpy float arrays (:class:`fmbench.causal_lm.HFScorer` has them all):

    * ``log_likelihoods(texts) -> (N,)``: each text's total log-probability (<= 0);
    * ``next_token_logprobs(texts) -> (N, V)``: the log-distribution of the token after each text;
    * ``continuation_logprobs(pairs) -> [(n_i,), ...]``: per-token log-probabilities of each
      ``(context, continuation)`` pair's continuation (their sum is its log-likelihood);
    * ``candidate_logprobs(contexts, candidates) -> (N, K)``: log p(candidate string | context);
    * ``next_token_mass(contexts, prefixes) -> (N, K)``: probability of the next tokens whose text,
      leading whitespace stripped, starts with each prefix;
    * ``sample(prompts, max_new_tokens, temperature, seed) -> [str, ...]``: one seeded continuation each;
    * optional ``tree_logprobs(context, branches, depth) -> (len(branches) ** depth,)``: log-probability
      of every path of ``depth`` branch strings after the context, paths in ``itertools.product`` order;
      without it, :meth:`tree_logprobs` chains ``candidate_logprobs`` level by level.

    Tasks call this interface's wrappers (``CAUSAL_LM.candidate_logprobs(model, ...)``), which
    refuse malformed output with a one-line ``ModelError`` naming the model, and check only the
    methods they use (``check(model, methods=("candidate_logprobs",))``).

    Example:
        >>> from fmbench.models import LoadedModel
        >>> class Uniform:  # every character has probability 1/2
        ...     def candidate_logprobs(self, contexts, candidates):
        ...         return np.array([[-len(c) * np.log(2) for c in candidates] for _ in contexts])
        >>> m = LoadedModel(Uniform(), "python:uniform", "uniform", "causal-lm", None, None, "none")
        >>> CAUSAL_LM.check(m, methods=("candidate_logprobs", "tree_logprobs"))
        >>> np.exp(CAUSAL_LM.tree_logprobs(m, "x", ["a", "bb"], depth=2)).round(4).tolist()
        [0.25, 0.125, 0.125, 0.0625]
    """

    name = "causal-lm"
    description = (
        "A causal language-model scorer: an object with (the methods a task uses of) `log_likelihoods(texts)` "
        "-> numpy (N,), `next_token_logprobs(texts)` -> (N, V), `continuation_logprobs(pairs)` -> list of "
        "per-token arrays, `candidate_logprobs(contexts, candidates)` -> (N, K), `next_token_mass(contexts, "
        "prefixes)` -> (N, K) in [0, 1], `sample(prompts, max_new_tokens, temperature, seed)` -> list of str "
        "(seeded), and optionally `tree_logprobs(context, branches, depth)`; log-probabilities <= 0."
    )
    module_required = False
    METHODS = (
        "log_likelihoods",
        "next_token_logprobs",
        "continuation_logprobs",
        "candidate_logprobs",
        "next_token_mass",
        "sample",
        "tree_logprobs",
    )
    DEFAULT_METHODS = ("log_likelihoods", "next_token_logprobs")
    PROBE = ("the cat sat", "a")

    @staticmethod
    def _logprobs(values: np.ndarray, what: str) -> np.ndarray:
        """``values`` unless one is above 0 (a log-probability)."""
        if values.size and (values > 1e-6).any():
            raise ModelError(f"{what} returned a log-probability above 0 ({values.max():.3g})")
        return values

    def log_likelihoods(self, model: LoadedModel, texts: Sequence[str]) -> np.ndarray:
        """Each text's log-likelihood, refused with ``ModelError`` if malformed, non-finite or positive."""
        what = f"{model.spec} scoring {len(texts)} texts"
        scores = _float_array(call_model(what, model.model.log_likelihoods, list(texts)), (len(texts),), what)
        if (scores > 1e-6).any():
            raise ModelError(f"{what} returned a log-likelihood above 0 ({scores.max():.3g})")
        return scores

    def next_token_logprobs(self, model: LoadedModel, texts: Sequence[str]) -> np.ndarray:
        """The next-token log-distribution after each text, refused unless each row is a distribution."""
        what = f"{model.spec} predicting the next token of {len(texts)} texts"
        out = call_model(what, model.model.next_token_logprobs, list(texts))
        if not isinstance(out, np.ndarray) or out.ndim != 2 or out.shape[0] != len(texts):
            raise ModelError(
                f"{what} returned {getattr(out, 'shape', type(out).__name__)}; expected a numpy array ({len(texts)}, V)"
            )
        out = _float_array(out, out.shape, what)
        total = np.exp(out).sum(1)
        if not np.allclose(total, 1.0, atol=1e-3):
            raise ModelError(
                f"{what} returned rows whose probabilities sum to {total.round(4).tolist()}; "
                "expected log-probabilities summing to 1"
            )
        return out

    def continuation_logprobs(self, model: LoadedModel, pairs: Sequence[tuple[str, str]]) -> list[np.ndarray]:
        """Per-token log-probabilities of each pair's continuation: one non-empty 1-D array per pair."""
        what = f"{model.spec} scoring {len(pairs)} continuations"
        out = call_model(what, model.model.continuation_logprobs, [(c, x) for c, x in pairs])
        if not isinstance(out, list | tuple) or len(out) != len(pairs):
            size = len(out) if isinstance(out, list | tuple) else type(out).__name__
            raise ModelError(f"{what} returned {size}; expected a list of {len(pairs)} arrays")
        checked = []
        for i, values in enumerate(out):
            shape = getattr(values, "shape", ())
            if len(shape) != 1 or not shape[0]:
                raise ModelError(f"{what} returned shape {shape} for continuation {i}; expected (n_tokens,), n >= 1")
            checked.append(self._logprobs(_float_array(values, shape, f"{what} (continuation {i})"), what))
        return checked

    def candidate_logprobs(self, model: LoadedModel, contexts: Sequence[str], candidates: Sequence[str]) -> np.ndarray:
        """log p(candidate | context) for every context and candidate, ``(N, K)``, finite and <= 0."""
        what = f"{model.spec} scoring {len(candidates)} candidates after {len(contexts)} contexts"
        out = call_model(what, model.model.candidate_logprobs, list(contexts), list(candidates))
        return self._logprobs(_float_array(out, (len(contexts), len(candidates)), what), what)

    def next_token_mass(self, model: LoadedModel, contexts: Sequence[str], prefixes: Sequence[str]) -> np.ndarray:
        """Next-token probability mass of each prefix after each context, ``(N, K)`` in [0, 1]."""
        what = f"{model.spec} weighing {len(prefixes)} next-token prefixes after {len(contexts)} contexts"
        out = call_model(what, model.model.next_token_mass, list(contexts), list(prefixes))
        out = _float_array(out, (len(contexts), len(prefixes)), what)
        if out.size and (out.min() < -1e-6 or out.max() > 1 + 1e-6):
            raise ModelError(f"{what} returned masses in [{out.min():.3g}, {out.max():.3g}]; expected [0, 1]")
        return out.clip(0.0, 1.0)

    def sample(
        self, model: LoadedModel, prompts: Sequence[str], max_new_tokens: int, temperature: float, seed: int
    ) -> list[str]:
        """One seeded continuation (the generated text only) per prompt, refused unless a list of strings."""
        what = f"{model.spec} sampling {len(prompts)} continuations (seed {seed})"
        out = call_model(what, model.model.sample, list(prompts), max_new_tokens, temperature, seed)
        if not isinstance(out, list | tuple) or len(out) != len(prompts) or not all(isinstance(s, str) for s in out):
            raise ModelError(f"{what} returned {type(out).__name__}; expected a list of {len(prompts)} strings")
        return list(out)

    def tree_logprobs(self, model: LoadedModel, context: str, branches: Sequence[str], depth: int) -> np.ndarray:
        """log p of every path of ``depth`` branches after ``context`` (``itertools.product`` order).

        Uses the model's own ``tree_logprobs`` when it has one; otherwise chains
        ``candidate_logprobs`` level by level: log p(b1 ... bd | c) = sum over levels of
        log p(b_i | c b1 ... b_(i-1)).
        """
        branches = list(branches)
        if depth < 1 or not branches:
            raise InputError(f"a probability tree needs depth >= 1 and at least one branch, got {depth}, {branches}")
        if callable(getattr(model.model, "tree_logprobs", None)):
            what = f"{model.spec} scoring a depth-{depth} tree of {len(branches)} branches"
            out = call_model(what, model.model.tree_logprobs, context, branches, depth)
            return self._logprobs(_float_array(out, (len(branches) ** depth,), what), what)
        total = np.zeros(1)
        prefixes = [""]
        for _ in range(depth):
            level = self.candidate_logprobs(model, [context + p for p in prefixes], branches)
            total = (total[:, None] + level).reshape(-1)
            prefixes = [p + b for p in prefixes for b in branches]
        return total

    def _probe(self, model: LoadedModel, method: str) -> None:
        """One call of ``method`` on a tiny input, through its checking wrapper."""
        if method == "log_likelihoods":
            self.log_likelihoods(model, self.PROBE)
        elif method == "next_token_logprobs":
            self.next_token_logprobs(model, self.PROBE)
        elif method == "continuation_logprobs":
            self.continuation_logprobs(model, [("the cat", " sat"), ("", "a")])
        elif method == "candidate_logprobs":
            self.candidate_logprobs(model, ["the cat", "a"], [" sat", " ran"])
        elif method == "next_token_mass":
            self.next_token_mass(model, ["the cat", "a"], ["s", "r"])
        elif method == "sample":
            first = self.sample(model, self.PROBE, 3, 1.0, 0)
            if self.sample(model, self.PROBE, 3, 1.0, 0) != first:
                raise ModelError(f"{model.spec} sampled different texts with the same seed; sampling must be seeded")
        else:
            self.tree_logprobs(model, "the cat", [" sat", " ran"], 2)

    def check(self, model: LoadedModel, **context: Any) -> None:
        """Also calls each method in ``context["methods"]`` (default :attr:`DEFAULT_METHODS`) on a tiny input.

        ``tree_logprobs`` is optional: a model without it passes if it has ``candidate_logprobs``.
        """
        super().check(model)
        methods = tuple(context.get("methods", self.DEFAULT_METHODS))
        unknown = [m for m in methods if m not in self.METHODS]
        if unknown:
            raise InputError(f"unknown causal-lm method(s) {unknown}; known: {', '.join(self.METHODS)}")
        for method in methods:
            needed = "candidate_logprobs" if method == "tree_logprobs" else method
            if not callable(getattr(model.model, method, None)) and not callable(getattr(model.model, needed, None)):
                raise ModelError(f"{model.spec} has no {needed}() method, which this task uses")
        for method in methods:
            self._probe(model, method)


# ---- the registry ---------------------------------------------------------------------------------
_INTERFACES: dict[str, Interface] = {}

InterfaceT = TypeVar("InterfaceT", bound=Interface)


def register_interface(interface: InterfaceT) -> InterfaceT:
    """Register ``interface`` under its name (``ValueError`` if the name is taken) and return it.

    Example:
        >>> register_interface(SequenceModel())
        Traceback (most recent call last):
        ValueError: interface 'sequence-model' is already registered (SequenceModel)
    """
    if interface.name in _INTERFACES:
        raise ValueError(
            f"interface {interface.name!r} is already registered ({type(_INTERFACES[interface.name]).__name__})"
        )
    _INTERFACES[interface.name] = interface
    return interface


def get_interface(name: str) -> Interface:
    """The registered interface ``name``; ``ModelError`` naming the known ones if there is none.

    Example:
        >>> get_interface("policy").module_required
        False
    """
    if name not in _INTERFACES:
        raise ModelError(f"unknown interface {name!r}; known: {', '.join(list_interfaces())}")
    return _INTERFACES[name]


def list_interfaces() -> list[str]:
    """Names of the registered interfaces, sorted.

    Example:
        >>> list_interfaces()[:3]
        ['bn-classifier', 'causal-lm', 'graph-encoder']
    """
    return sorted(_INTERFACES)


SEQUENCE_MODEL = register_interface(SequenceModel())
GRAPH_ENCODER = register_interface(GraphEncoder())
IMAGE_ENCODER = register_interface(ImageEncoder())
VECTOR_ENCODER = register_interface(VectorEncoder())
POLICY = register_interface(Policy())
REWARD_MODEL = register_interface(RewardModel())
IMAGE_GENERATOR = register_interface(ImageGenerator())
BN_CLASSIFIER = register_interface(BNClassifier())
CAUSAL_LM = register_interface(CausalLM())
