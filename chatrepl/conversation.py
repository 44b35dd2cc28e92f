"""The conversation: system prompt and turns. Pure data, no I/O."""

from __future__ import annotations

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
