"""The contract every fmbench env keeps: it names itself in errors and refuses bad steps.

Example:
    >>> from gymnasium import spaces
    >>> check_step("fmbench/Example-v0", spaces.Discrete(3), 1.5, episode_over=False)
    Traceback (most recent call last):
    ...
    fmbench.errors.InputError: fmbench/Example-v0: action 1.5 is not in Discrete(3)
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from fmbench.errors import InputError

MAX_SHOWN = 80
"""Characters of a refused action shown in the error."""


def env_label(env_class: type[gym.Env], **identity: Any) -> str:
    """The id the env is registered under, for error messages.

    The registered env whose entry point is ``env_class`` and whose kwargs hold
    ``identity``; ``ClassName(key=value)`` when none is (an unregistered option value).

    Example:
        >>> import fmbench
        >>> from fmbench.studies.compositional.env import CompositionEnv
        >>> env_label(CompositionEnv, task="fmbench/ComposeDirect-v0")
        'fmbench/ComposeTokensDirect-v0'
    """
    entry_point = f"{env_class.__module__}:{env_class.__name__}"
    for spec in gym.registry.values():
        if spec.entry_point == entry_point and all(spec.kwargs.get(k) == v for k, v in identity.items()):
            return spec.id
    return f"{env_class.__name__}({', '.join(f'{k}={v!r}' for k, v in identity.items())})"


def check_step(env_id: str, action_space: gym.Space, action: Any, episode_over: bool) -> None:
    """Refuse a step after the episode ended (or before it began) and an action outside the space.

    Raises:
        gym.error.ResetNeeded: ``episode_over`` (terminated or truncated, or never reset).
        InputError: ``action_space.contains(action)`` is false.
    """
    if episode_over:
        raise gym.error.ResetNeeded(f"{env_id}: the episode is over (or never started); call reset()")
    if not action_space.contains(action):
        shown = " ".join(repr(action).split())
        shown = shown if len(shown) <= MAX_SHOWN else shown[: MAX_SHOWN - 3] + "..."
        raise InputError(f"{env_id}: action {shown} is not in {action_space}")
