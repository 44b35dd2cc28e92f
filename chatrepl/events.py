"""What a request is and what its reply streams as: the types the client, the turn and the output share.

A Request is one request exactly as it is sent; an Event is one piece of what comes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chatrepl.conversation import completion_prompt


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class RefusalDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    """Text of the model's thinking, shown apart from the answer and never sent back."""

    text: str


@dataclass(frozen=True)
class OtherChoice:
    """Text of a further reply (n > 1 in completion mode), numbered from 1."""

    index: int
    text: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False  # the server sent no counts: these are chatrepl's own guess
    cached_tokens: int = 0  # of the prompt tokens, those the server had cached (billed lower)
    reasoning_tokens: int = 0  # of the completion tokens, those spent thinking, not shown


@dataclass(frozen=True)
class Finished:
    reason: str


Event = TextDelta | ReasoningDelta | RefusalDelta | OtherChoice | Usage | Finished


@dataclass(frozen=True)
class Request:
    """One request exactly as it is sent: the model, the messages and the parameters.

    In completion mode (the legacy Completions API) the messages go as one prompt.
    """

    model: str
    messages: tuple[dict[str, str], ...]
    params: dict[str, Any] = field(default_factory=dict)
    completion: bool = False

    def body(self) -> dict[str, Any]:
        """The request's JSON body, but for streaming itself."""
        if self.completion:
            return {"model": self.model, "prompt": completion_prompt(list(self.messages)), **self.params}
        return {"model": self.model, "messages": list(self.messages), **self.params}
