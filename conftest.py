"""Doctest collection over ``fmbench/`` (``--doctest-modules``, see pyproject.toml).

A module that imports an optional extra which is not installed (``flwr`` without ``fl``, say) is
left out of the doctests and named in the summary, instead of failing collection; a missing
``fmbench`` module is still an error. Doctests that train or evaluate a model are marked ``slow``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent / "fmbench"

# Doctest name -> why it is slow (seconds alone on this 2-core machine).
SLOW_DOCTESTS = {
    "fmbench.studies.compositional.reproduce.execute": "trains a GPT and evaluates it (~40 s)",
    "fmbench.studies.compositional.reproduce.run_all": "trains a GPT and evaluates it (~20 s)",
    "fmbench.studies.compositional_diffusion.train": "trains a DDPM two steps and writes a checkpoint (~2-9 s)",
}

_left_out: list[str] = []


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave out a module of ``fmbench`` whose optional dependency is not installed."""
    if not config.getoption("doctestmodules") or collection_path.suffix != ".py":
        return None
    if PACKAGE not in collection_path.parents:
        return None
    parts = collection_path.relative_to(PACKAGE.parent).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and e.name.partition(".")[0] != "fmbench":
            _left_out.append(f"{name} (needs {e.name})")
            return True
    except Exception:  # the doctest collector reports it
        pass
    return None


@pytest.hookimpl(tryfirst=True)  # before -m and -k deselect
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the doctests of :data:`SLOW_DOCTESTS` slow; a name there that is no doctest is an error."""
    doctests = {item.name: item for item in items if isinstance(item, pytest.DoctestItem)}
    for name in SLOW_DOCTESTS:
        if name in doctests:
            doctests[name].add_marker(pytest.mark.slow)
        elif any(other.startswith(name.rpartition(".")[0] + ".") for other in doctests):
            raise pytest.UsageError(f"conftest.py: SLOW_DOCTESTS names {name}, which is no doctest")


def pytest_terminal_summary(terminalreporter) -> None:
    """Name the modules whose doctests were left out."""
    if _left_out:
        terminalreporter.write_line("doctests left out (optional extra not installed): " + ", ".join(_left_out))
