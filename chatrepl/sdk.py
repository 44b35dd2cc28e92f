"""Importing the openai SDK without its whole type catalogue.

`openai/__init__.py` imports `openai.types`, whose own `__init__` (and those of its
subpackages: responses, evals, graders, ...) define some thousand pydantic models, about
half the CPU of `import openai`, though a chat request needs a few dozen of them.  Here the
`__init__` of each package under `openai.types` runs only when a name it defines is first
asked for; its submodules import as usual, so every model the SDK uses is still there.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import threading
import types
from typing import Any

_CATALOGUE = "openai.types"


class _DeferredPackage(types.ModuleType):
    """A package of the SDK's types whose `__init__` has not run yet: it runs on the first name missing."""

    def __getattr__(self, name: str) -> Any:
        state = self.__dict__
        with state["_chatrepl_lock"]:
            init = state.pop("_chatrepl_init", None)
            if init is not None:
                init.exec_module(self)
        if name in state:
            return state[name]
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")


class _DeferringLoader:
    # Loader and finder by protocol: importlib.abc would import importlib.resources, tempfile and more.
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        module.__class__ = _DeferredPackage
        module.__dict__.update(_chatrepl_init=self._loader, _chatrepl_lock=threading.RLock())


class _DeferringFinder:
    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != _CATALOGUE and not name.startswith(_CATALOGUE + "."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.submodule_search_locations is not None and spec.loader is not None:
            spec.loader = _DeferringLoader(spec.loader)  # type: ignore[assignment]  # a loader by protocol
        return spec


# One thread at a time imports the SDK, so that no deferred package is first used by two at once
# (its lock and the import system's module locks could otherwise wait on each other).
_import_lock = threading.Lock()


def import_openai(*submodules: str) -> types.ModuleType:
    """The openai module, imported with its type catalogue deferred (unless something imported it
    first), and the `submodules` of it named."""
    with _import_lock:
        if "openai" not in sys.modules and not any(isinstance(f, _DeferringFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _DeferringFinder())
        import openai

        for name in submodules:
            importlib.import_module(name)
    return openai
