"""The conversation: system prompt and turns. Pure data, no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

COMPLETE = "complete"
INTERRUPTED = "interrupted"  # the user stopped the reply
INCOMPLETE = "incomplete"  # the stream broke off before the server finished

# What the model is told about a reply it did not finish, so it never takes cut text for a whole answer.
_CUT_NOTES = {
    INTERRUPTED: "[reply interrupted by the user]",
    INCOMPLETE: "[reply cut off: the connection dropped]",
}


@dataclass
class Turn:
    role: str
    content: str
    status: str = COMPLETE


@dataclass
class Conversation:
    system_prompt: str
    turns: list[Turn] = field(default_factory=list)

    def add_user(self, content: str) -> None:
        self.turns.append(Turn("user", content))

    def add_assistant(self, content: str, status: str = COMPLETE) -> None:
        self.turns.append(Turn("assistant", content, status))

    def drop_unanswered(self) -> None:
        """Remove a trailing user turn whose request failed, so no orphan is left."""
        if self.turns and self.turns[-1].role == "user":
            self.turns.pop()

    def reset(self) -> None:
        self.turns.clear()

    def messages(self) -> list[dict[str, str]]:
        """The request messages: the system prompt, then every turn in order."""
        result = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        for turn in self.turns:
            content = turn.content
            if turn.status in _CUT_NOTES:
                content = f"{content}\n\n{_CUT_NOTES[turn.status]}"
            result.append({"role": turn.role, "content": content})
        return result


def to_json(conversation: Conversation) -> str:
    turns = [{"role": turn.role, "content": turn.content, "status": turn.status} for turn in conversation.turns]
    return json.dumps({"system": conversation.system_prompt, "messages": turns}, ensure_ascii=False, indent=2) + "\n"


def from_json(text: str) -> Conversation:
    """A conversation from `to_json` output; ValueError names what is wrong."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise ValueError("expected an object with a list of messages")
    turns = []
    for number, message in enumerate(data["messages"], 1):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise ValueError(f"message {number} needs a role of user or assistant")
        if not isinstance(message.get("content"), str):
            raise ValueError(f"message {number} needs text content")
        status = message.get("status", COMPLETE)
        turns.append(Turn(message["role"], message["content"], status if status in _CUT_NOTES else COMPLETE))
    system = data.get("system", "")
    if not isinstance(system, str):
        raise ValueError("system must be text")
    return Conversation(system, turns)


def to_markdown(conversation: Conversation) -> str:
    parts = [f"**System:** {conversation.system_prompt}"] if conversation.system_prompt else []
    for turn in conversation.turns:
        note = f" _({turn.status})_" if turn.status != COMPLETE else ""
        parts.append(f"**{turn.role.capitalize()}:**{note}\n\n{turn.content}")
    return "\n\n---\n\n".join(parts) + "\n"
