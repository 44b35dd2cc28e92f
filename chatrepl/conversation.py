"""The conversation: system prompt and turns. Pure data, no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from chatrepl.images import EXTENSIONS, Image, from_data_url
from chatrepl.sanitize import escape_controls, strip_controls

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
    """One message of the user's or one reply, with its status and what went with it."""

    role: str
    content: str
    status: str = COMPLETE
    reasoning: str = ""  # a reply's thinking: shown on request, saved, never sent back
    images: tuple[Image, ...] = ()  # a user message's images, sent after its text
    tools: tuple[dict[str, Any], ...] = ()  # a reply's tool calls and their results, which came before it
    shell: dict[str, Any] | None = None  # a shell command's reply: the command, whether it ran, its status

    def content_parts(self, images: bool = True) -> str | list[dict[str, Any]]:
        """The message's content: its text, or with images a list of a text part and an image part
        each; with `images` False each image is named in the text instead."""
        if not self.images:
            return self.content
        if not images:
            names = "".join(f"\n[image not shown: {image.name}]" for image in self.images)
            return f"{self.content}{names}"
        parts: list[dict[str, Any]] = [{"type": "text", "text": self.content}] if self.content else []
        return parts + [{"type": "image_url", "image_url": {"url": image.sent_url}} for image in self.images]


@dataclass
class Conversation:
    """The system prompt, the few-shot examples and the turns so far."""

    system_prompt: str
    turns: list[Turn] = field(default_factory=list)
    examples: list[Turn] = field(default_factory=list)  # few-shot turns after the system prompt, never trimmed

    def add_user(self, content: str, images: tuple[Image, ...] = ()) -> None:
        self.turns.append(Turn("user", content, images=images))

    def add_assistant(
        self,
        content: str,
        status: str = COMPLETE,
        reasoning: str = "",
        tools: tuple[dict[str, Any], ...] = (),
        shell: dict[str, Any] | None = None,
    ) -> None:
        self.turns.append(Turn("assistant", content, status, reasoning, tools=tools, shell=shell))

    def drop_unanswered(self) -> None:
        """Remove a trailing user turn whose request failed, so no orphan is left."""
        if self.turns and self.turns[-1].role == "user":
            self.turns.pop()

    def undo(self) -> bool:
        """Forget the last user message and its replies; False if there is none."""
        users = [index for index, turn in enumerate(self.turns) if turn.role == "user"]
        if not users:
            return False
        del self.turns[users[-1] :]
        return True

    def drop_reply(self) -> bool:
        """Forget the replies to the last user message, so it can be answered again; False if there is none."""
        users = [index for index, turn in enumerate(self.turns) if turn.role == "user"]
        if not users:
            return False
        del self.turns[users[-1] + 1 :]
        return True

    def exchanges(self) -> int:
        """How many user messages there are, each with its replies."""
        return sum(turn.role == "user" for turn in self.turns)

    def _sent_turns(self, skip: int) -> list[Turn]:
        users = [index for index, turn in enumerate(self.turns) if turn.role == "user"]
        start = users[min(skip, len(users) - 1)] if skip and users else 0
        return self.turns[start:]

    def messages(self, skip: int = 0, images: bool = True) -> list[dict[str, Any]]:
        """The request messages: the system prompt, the examples, then the turns in order,
        leaving out the `skip` oldest exchanges (never the last one); with `images` False,
        images are only named."""
        result: list[dict[str, Any]] = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        result += [{"role": turn.role, "content": turn.content} for turn in self.examples]
        for turn in self._sent_turns(skip):
            result += [api_message(message) for message in turn.tools]
            content = turn.content_parts(images)
            if turn.status in _CUT_NOTES:
                content = f"{content}\n\n{_CUT_NOTES[turn.status]}"
            result.append({"role": turn.role, "content": content})
        return result

    def images(self, skip: int = 0) -> list[Image]:
        """The images of the turns a request with `skip` sends."""
        return [image for turn in self._sent_turns(skip) for image in turn.images]


_SENT_KEYS = ("role", "content", "tool_calls", "tool_call_id")  # of a tool exchange's messages: what a request takes


def api_message(message: dict[str, Any]) -> dict[str, Any]:
    """A message of a tool exchange as a request sends it (what is recorded beside it, the decision
    and the time a call took, stays home)."""
    return {key: value for key, value in message.items() if key in _SENT_KEYS}


def _tool_messages(data: object, label: str) -> tuple[dict[str, Any], ...]:
    """A reply's tool exchange from JSON: assistant messages with tool_calls, and tool messages."""
    if data is None:
        return ()
    valid = isinstance(data, list) and all(
        isinstance(message, dict)
        and (
            (message.get("role") == "assistant" and isinstance(message.get("tool_calls"), list))
            or (message.get("role") == "tool" and isinstance(message.get("tool_call_id"), str))
        )
        for message in data
    )
    if not valid:
        raise ValueError(f"{label}: tools is a list of assistant messages with tool_calls and tool messages")
    return tuple(data)


def to_json(conversation: Conversation) -> str:
    """The conversation as JSON; a message with images has OpenAI's content parts, the images as data URLs."""
    turns = [
        {"role": turn.role, "content": turn.content_parts(), "status": turn.status}
        | ({"reasoning": turn.reasoning} if turn.reasoning else {})
        | ({"tools": list(turn.tools)} if turn.tools else {})
        | ({"shell": turn.shell} if turn.shell else {})
        for turn in conversation.turns
    ]
    exported = json.dumps({"system": conversation.system_prompt, "messages": turns}, ensure_ascii=False, indent=2)
    return escape_controls(exported) + "\n"


def from_json(text: str) -> Conversation:
    """A conversation from `to_json` output; ValueError names what is wrong."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("expected an object with a list of messages")
    system = data.get("system", "")
    if not isinstance(system, str):
        raise ValueError("system must be text")
    return Conversation(system, _turns(data.get("messages"), ("user", "assistant"), "message"))


def _turns(data: object, roles: tuple[str, ...], label: str) -> list[Turn]:
    """Turns from a list of {role, content[, status]} objects; ValueError names the bad one."""
    if not isinstance(data, list):
        raise ValueError(f"expected a list of {label}s with role and content")
    turns = []
    for number, message in enumerate(data, 1):
        if not isinstance(message, dict) or message.get("role") not in roles:
            raise ValueError(f"{label} {number} needs a role of {' or '.join(roles)}")
        content, images = _content(message.get("content"), f"{label} {number}")
        if images and message["role"] != "user":
            raise ValueError(f"{label} {number}: only a user message has images")
        status = message.get("status", COMPLETE)
        reasoning = message.get("reasoning", "")
        if not isinstance(reasoning, str):
            raise ValueError(f"{label} {number} needs text reasoning")
        status = status if status in _CUT_NOTES else COMPLETE
        tools = _tool_messages(message.get("tools"), f"{label} {number}")
        shell = message.get("shell") if isinstance(message.get("shell"), dict) else None
        turns.append(Turn(message["role"], content, status, reasoning, images, tools, shell))
    return turns


def _content(content: object, label: str) -> tuple[str, tuple[Image, ...]]:
    """The text and images of a message's content: text, or a list of text and image_url parts."""
    if isinstance(content, str):
        return content, ()
    if not isinstance(content, list):
        raise ValueError(f"{label} needs text content")
    texts: list[str] = []
    images: list[Image] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
            continue
        url = part.get("image_url", {}).get("url") if kind == "image_url" and isinstance(part, dict) else None
        if not isinstance(url, str):
            raise ValueError(f"{label}: each content part is text or an image_url with a url")
        name = f"image {len(images) + 1}"
        if url.startswith("data:"):
            try:
                images.append(from_data_url(url, name))
            except ValueError as err:
                raise ValueError(f"{label}: {err}") from None
        elif url.startswith(("https://", "http://")):
            images.append(Image(url, url=url))
        else:
            raise ValueError(f"{label}: an image_url is a data: or http(s): address")
    return "\n".join(texts), tuple(images)


def to_markdown(conversation: Conversation, image_stem: str = "image") -> tuple[str, dict[str, bytes]]:
    """The conversation as markdown, with no character that could steer a terminal `cat`-ing it, and
    the image files it refers to by name (`{image_stem}-1.png` …), to be written beside it."""
    files: dict[str, bytes] = {}
    parts = [f"**System:** {conversation.system_prompt}"] if conversation.system_prompt else []
    for turn in conversation.turns:
        note = f" _({turn.status})_" if turn.status != COMPLETE else ""
        thought = (
            f"<details><summary>thinking</summary>\n\n{turn.reasoning}\n\n</details>\n\n" if turn.reasoning else ""
        )
        pictures = []
        for image in turn.images:
            target = image.url
            if not target:
                target = f"{image_stem}-{len(files) + 1}{EXTENSIONS[image.media_type]}"
                files[target] = image.data
            pictures.append(f"\n\n![{PurePath(image.name).name}]({target})")
        calls = "".join(f"{line}\n\n" for line in _tool_lines(turn.tools))
        parts.append(f"**{turn.role.capitalize()}:**{note}\n\n{thought}{calls}{turn.content}{''.join(pictures)}")
    return strip_controls("\n\n---\n\n".join(parts) + "\n"), files


def _tool_lines(messages: tuple[dict[str, Any], ...]) -> list[str]:
    """A reply's tool calls for an export: each call with its arguments, then what it gave."""
    results = {message.get("tool_call_id"): message for message in messages if message.get("role") == "tool"}
    lines = []
    for message in messages:
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            result = results.get(call.get("id"), {})
            decision = f" ({result['decision']})" if result.get("decision") else ""
            lines.append(f"> ⚙ `{function.get('name')}({function.get('arguments')})`{decision}")
            lines.append("> → " + " ".join(str(result.get("content", "")).split())[:200])
    return lines


def estimate_text_tokens(text: str) -> int:
    """A quick upper-side guess: about 4 characters a token for ASCII text, one a character otherwise."""
    ascii_chars = sum(char.isascii() for char in text)
    return ascii_chars // 4 + (len(text) - ascii_chars)


def message_text(message: dict[str, Any]) -> str:
    """A request message's text, without its images."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if part["type"] == "text")


def estimate_tokens(messages: list[dict[str, Any]], images: list[Image]) -> int:
    """A guess of a request's prompt tokens: its texts plus the per-message framing, and its images."""
    texts = sum(4 + estimate_text_tokens(message_text(message)) for message in messages)
    return 3 + texts + sum(image.tokens for image in images)


def parse_examples(text: str, suffix: str) -> list[Turn]:
    """Few-shot examples from a JSON list, or a TOML file of [[messages]], of role/content pairs."""
    if suffix == ".toml":
        from chatrepl.options import tomllib

        data = tomllib.loads(text).get("messages")
    else:
        data = json.loads(text)
    return _turns(data, ("user", "assistant", "system"), "example")


COMPLETION_USER = "User:"
COMPLETION_ASSISTANT = "Assistant:"


def completion_prompt(messages: list[dict[str, Any]]) -> str:
    """The conversation as one prompt for the legacy Completions API, ending where the reply starts."""
    lines = []
    for message in messages:
        if message["role"] == "system":
            lines.append(f"{message['content']}\n")
        else:
            speaker = COMPLETION_USER if message["role"] == "user" else COMPLETION_ASSISTANT
            lines.append(f"{speaker} {message['content']}")
    lines.append(COMPLETION_ASSISTANT)
    return "\n".join(lines)
