"""Parameters: how replies are asked for, and what a model's catalogue entry makes of them.

Apart from the turn engine, so a session (and the prompt) can be set up without importing
the engine and the client behind it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatrepl.config import Settings
    from chatrepl.models import ModelInfo


@dataclass(frozen=True)
class Parameters:
    """How replies are asked for; what is sent of them depends on the model (`turn.build_request`)."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    n: int | None = None
    reasoning_effort: str | None = None
    json: bool = False
    mode: str = "chat"

    @classmethod
    def from_settings(cls, settings: Settings) -> Parameters:
        return cls(**{name: getattr(settings, name) for name in PARAMETER_KEYS}).replace("stop", settings.stop)

    def replace(self, key: str, value: Any) -> Parameters:
        return dataclasses.replace(self, **{key: tuple(value) if key == "stop" and value else value})

    def saved(self) -> dict[str, Any]:
        """What a saved conversation keeps of them: the ones set."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()
            if value is not None and value != getattr(DEFAULT_PARAMETERS, name)
        }


PARAMETER_KEYS = tuple(field.name for field in dataclasses.fields(Parameters))
DEFAULT_PARAMETERS = Parameters()


def uses_completions(params: Parameters, rules: ModelInfo) -> bool:
    """Completion mode: the legacy Completions API, asked by the user or required by the model."""
    return params.mode == "completion" or rules.api == "completions"


def sends_images(params: Parameters, rules: ModelInfo) -> bool:
    """Whether a request carries images: not to a model the catalogue says cannot see, nor in completion mode."""
    return rules.vision is not False and not uses_completions(params, rules)
