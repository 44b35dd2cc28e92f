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

    def plus(self, other: Usage) -> Usage:
        """Both requests' counts together (a turn that called tools made several)."""
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.estimated or other.estimated,
            self.cached_tokens + other.cached_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


@dataclass(frozen=True)
class Finished:
    reason: str


@dataclass(frozen=True)
class ToolCall:
    """A call of a tool the model asks for: its id, the function's name and its arguments as sent (JSON text)."""

    id: str
    name: str
    arguments: str

    def message(self) -> dict[str, Any]:
        """The call as the assistant's message carries it in the next request."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class ToolCalls:
    """The tool calls of a reply, whole, in the order the model made them (sent once the stream is over)."""

    calls: tuple[ToolCall, ...]


Event = TextDelta | ReasoningDelta | RefusalDelta | OtherChoice | Usage | Finished | ToolCalls


@dataclass(frozen=True)
class Request:
    """One request exactly as it is sent: the model, the messages and the parameters.

    In completion mode (the legacy Completions API) the messages go as one prompt.
    """

    model: str
    messages: tuple[dict[str, Any], ...]
    params: dict[str, Any] = field(default_factory=dict)
    completion: bool = False
    tools: tuple[dict[str, Any], ...] = ()  # the functions the model may call, in OpenAI's form

    def body(self) -> dict[str, Any]:
        """The request's JSON body, but for streaming itself."""
        if self.completion:
            return {"model": self.model, "prompt": completion_prompt(list(self.messages)), **self.params}
        tools = {"tools": list(self.tools)} if self.tools else {}
        return {"model": self.model, "messages": list(self.messages), **tools, **self.params}
