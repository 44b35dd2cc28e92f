"""The model catalogue: context window, output limit, prices and request rules (data/models.toml)."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatrepl.options import tomllib

BUNDLED = Path(__file__).parent / "data" / "models.toml"  # the catalogue that comes with chatrepl
_DATED_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


@dataclass(frozen=True)
class ModelInfo:
    """A model's catalogue entry: its limits, prices and request rules (None: not known)."""

    name: str
    context: int | None = None
    max_output: int | None = None
    input_per_million: float | None = None
    output_per_million: float | None = None
    cached_input_per_million: float | None = None  # the price of cached prompt tokens, if lower
    max_tokens_param: str = "max_tokens"
    temperature: bool = True
    reasoning_effort: bool | None = None  # takes reasoning_effort; None: not known (a model not in the catalogue)
    json_mode: bool = True
    api: str = "chat"
    vision: bool | None = None  # takes images; None: not known (a model not in the catalogue)

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float | None:
        """US dollars for a request, or None when the price is unknown."""
        if self.input_per_million is None or self.output_per_million is None:
            return None
        cached = min(cached_tokens, prompt_tokens)
        cached_price = self.cached_input_per_million
        if cached_price is None:
            cached_price = self.input_per_million
        prompt = (prompt_tokens - cached) * self.input_per_million + cached * cached_price
        return (prompt + completion_tokens * self.output_per_million) / 1_000_000

    def facts(self) -> list[str]:
        """What is known of the model, in short phrases: context window, prices, rules."""
        facts = []
        if self.context:
            facts.append(f"context {self.context:,} tokens")
        if self.input_per_million is not None and self.output_per_million is not None:
            facts.append(f"${self.input_per_million:g} in / ${self.output_per_million:g} out per million tokens")
        if not self.temperature:
            facts.append("takes no temperature, top_p or penalties (not sent)")
        if self.reasoning_effort:
            facts.append("takes reasoning_effort")
        if self.vision:
            facts.append("sees images")
        return facts


def money_text(dollars: float) -> str:
    """Dollars with enough digits to show a small figure: $0.0112, $0.000005."""
    if dollars >= 0.001 or dollars <= 0:
        return f"${dollars:.4f}"
    return f"${dollars:.{1 - math.floor(math.log10(dollars))}f}"


_KINDS: dict[str, tuple[type, ...]] = {
    "context": (int,),
    "max_output": (int,),
    "input_per_million": (int, float),
    "output_per_million": (int, float),
    "cached_input_per_million": (int, float),
    "max_tokens_param": (str,),
    "temperature": (bool,),
    "reasoning_effort": (bool,),
    "json_mode": (bool,),
    "api": (str,),
    "vision": (bool,),
}
_KIND_NAMES = {(int,): "a whole number", (int, float): "a number", (str,): "text", (bool,): "true or false"}
_CHOICES = {"api": ("chat", "completions"), "max_tokens_param": ("max_tokens", "max_completion_tokens")}


def check_entry(name: str, entry: dict[str, Any], where: str) -> None:
    """ValueError naming the file, the key and what is wrong with a catalogue entry."""
    for key, value in entry.items():
        place = f'{where}: models."{name}".{key}'
        kinds = _KINDS.get(key)
        if kinds is None:
            raise ValueError(f"{place}: unknown model setting")
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ValueError(f"{place}: expected {_KIND_NAMES[kinds]}, got {value!r}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ValueError(f"{place}: expected {' or '.join(_CHOICES[key])}, got {value!r}")
        if kinds != (bool,) and kinds != (str,) and value < 0:
            raise ValueError(f"{place}: expected a number of at least 0, got {value!r}")


def _info(name: str, entry: dict[str, Any], where: str) -> ModelInfo:
    check_entry(name, entry, where)
    return ModelInfo(name=name, **entry)


class Catalogue:
    """Known models; the user's entries (from config.toml) replace or extend the bundled ones."""

    def __init__(self, user_models: dict[str, dict[str, Any]] | None = None, where: str = "config.toml") -> None:
        """`user_models` come from `where`; ValueError names what is wrong with one."""
        bundled = tomllib.loads(BUNDLED.read_text("utf-8"))
        self.prices_checked: str = bundled["prices_checked"]
        # A model in the catalogue takes reasoning_effort, and images, only where its entry says so.
        self._models = {
            name: _info(name, {"reasoning_effort": False, "vision": False, **entry}, "models.toml")
            for name, entry in bundled["models"].items()
        }
        for name, entry in (user_models or {}).items():
            check_entry(name, entry, where)
            base = self._models.get(name, ModelInfo(name=name))
            self._models[name] = dataclasses.replace(base, **entry)

    def add(self, name: str, entry: dict[str, Any]) -> None:
        self._models[name] = _info(name, entry, "chatrepl")

    def names(self) -> list[str]:
        return sorted(self._models)

    def cheapest_seeing(self) -> str | None:
        """The model that takes images at the lowest input price, to suggest; None if none is known."""
        seeing = [info for info in self._models.values() if info.vision]
        return (
            min(seeing, key=lambda info: (info.input_per_million is None, info.input_per_million or 0)).name
            if seeing
            else None
        )

    def _entry(self, name: str) -> ModelInfo | None:
        """The model's entry, or its dated version's base name's; None for a model not in the catalogue."""
        return self._models.get(name) or self._models.get(_DATED_SUFFIX.sub("", name))

    def knows(self, name: str) -> bool:
        return self._entry(name) is not None

    def lookup(self, name: str) -> ModelInfo:
        """The model's entry; unknown models get an empty one."""
        return self._entry(name) or ModelInfo(name=name)
