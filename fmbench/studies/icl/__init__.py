"""In-context learning of randomness and concepts with random binary sequences (arXiv:2310.17639).

Three tasks on any causal LM (the ``causal-lm`` interface): generating coin flips at a stated
p(Tails) (:mod:`~fmbench.studies.icl.generation`), judging whether a sequence is random
(:mod:`~fmbench.studies.icl.judgment`) and continuing a repeated concept
(:mod:`~fmbench.studies.icl.concepts`). The prompts are the authors' (:mod:`~fmbench.studies.icl.prompts`),
the statistics theirs (:mod:`~fmbench.studies.icl.statistics`), and the paper's analytic models are
causal-LM objects (:mod:`~fmbench.studies.icl.references`) that sit on the same leaderboards.
"""
