"""ChatSession: the conversation, its journal, its running totals and the current model and
parameters, with what a user can do to them.  No terminal I/O: replies go to a sink."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatrepl.conversation import COMPLETE, Conversation, Turn
from chatrepl.journal import Journal, Writer
from chatrepl.models import money_text
from chatrepl.parameters import PARAMETER_KEYS, Parameters, uses_completions
from chatrepl.providers import MissingKey

if TYPE_CHECKING:
    from chatrepl.client import ChatClient
    from chatrepl.config import Settings
    from chatrepl.events import Request, Usage
    from chatrepl.images import Image
    from chatrepl.models import Catalogue, ModelInfo
    from chatrepl.providers import Connections
    from chatrepl.roles import Role
    from chatrepl.store import ConversationRow, Store
    from chatrepl.terminal import Terminal
    from chatrepl.tools import Toolbox
    from chatrepl.turn import Sink, TurnOutcome

CLOSE_PATIENCE = 15.0  # seconds to wait at the end for what is still being saved
READ_PATIENCE = 2.0  # seconds a read of saved conversations waits for what is still being saved


@dataclass
class Tally:
    """Token and cost totals of a conversation."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    priced: bool = True  # every turn so far had a known price

    def add(self, usage: Usage, cost: float | None) -> None:
        """Count a turn; cost is None when the model's price is unknown."""
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        if cost is None:
            self.priced = False
        else:
            self.cost += cost

    def summary(self) -> str:
        money = f" · {money_text(self.cost)}" if self.priced else ""
        return f"{self.prompt_tokens:,} in · {self.completion_tokens:,} out{money}"


class _Saving:
    """The sink a turn is given: the reply is saved as it streams, and shown by the caller's sink."""

    def __init__(self, sink: Sink, journal: Journal, begin: Callable[[Request], None]) -> None:
        self.sink = sink
        self.journal = journal
        self.begin = begin  # saves the turn's start, given the first request
        self.begun = False

    def sending(self, request: Request) -> None:
        if not self.begun:
            self.begun = True
            self.begin(request)
        self.sink.sending(request)

    def feed(self, text: str) -> None:
        self.journal.partial(text)
        self.sink.feed(text)

    def think(self, text: str) -> None:
        self.journal.partial(text, reasoning=True)
        self.sink.think(text)

    def pause(self) -> None:
        self.sink.pause()

    def catch_up(self) -> float | None:
        return self.sink.catch_up()

    def finish(self) -> None:
        self.sink.finish()

    def note(self, message: str) -> None:
        self.sink.note(message)

    def retrying(self, message: str, seconds: float) -> None:
        self.sink.retrying(message, seconds)


class ChatSession:
    def __init__(
        self,
        connections: Connections,
        catalogue: Catalogue,
        model: str,
        system_prompt: str,
        params: Parameters,
        examples: list[Turn] | None = None,
        store: Store | None = None,
        idle_timeout: float = 60.0,
        retries: int = 0,
        fixed: Collection[str] = (),
        roles: Mapping[str, Role] | None = None,
    ) -> None:
        self.connections = connections  # a client for each server, chosen by the model's name
        self.catalogue = catalogue
        self.model = model
        self.system_prompt = system_prompt
        self.params = params
        self.examples = examples or []
        self.store = store
        self.writer = Writer(store) if store is not None else None
        self.idle_timeout = idle_timeout
        self.retries = retries
        self.fixed = frozenset(fixed)  # set by flags now: a resumed conversation or a role does not change them
        self.role = ""  # the role in use, by name
        self.roles = dict(roles or {})  # [roles.NAME] from the config file
        self.role_by_flag: tuple[Role, list[Turn] | None] | None = None  # --role: it stays on a resumed one
        self.conversation = Conversation(system_prompt, examples=self.examples)
        self.journal = self._journal()
        self.tally = Tally()
        self.context_used: float | None = None  # share of the model's window the last turn took
        self.toolbox: Toolbox | None = None  # the MCP servers' tools, when there are any

    @classmethod
    def from_settings(
        cls, settings: Settings, catalogue: Catalogue, store: Store | None, examples: list[Turn]
    ) -> ChatSession:
        """A session on the settings' servers, with their model, system prompt and parameters."""
        from chatrepl.providers import Connections

        return cls(
            Connections(settings),
            catalogue,
            settings.model,
            settings.system,
            Parameters.from_settings(settings),
            examples,
            store,
            settings.idle_timeout,
            settings.retries,
            fixed={key for key, source in settings.sources.items() if source.startswith("-")},
            roles=settings.roles,
        )

    def _journal(self, conversation_id: int | None = None) -> Journal:
        """A journal for the current conversation, which it can save anew if its saved copy is lost."""
        conversation = self.conversation
        return Journal(self.writer, conversation_id, lambda: (list(conversation.turns), self.model, self.system_prompt))

    @property
    def client(self) -> ChatClient:
        """The client for the current model's server."""
        return self.connections.client(self.model)

    @property
    def rules(self) -> ModelInfo:
        """The catalogue's entry for the model: `provider:model`'s own, or else the model's."""
        if self.catalogue.knows(self.model):
            return self.catalogue.lookup(self.model)
        return self.catalogue.lookup(self.connections.split(self.model)[1])

    def new(self) -> None:
        """A fresh conversation with the same system prompt, saved as a new one once it has a message."""
        self.conversation = Conversation(self.system_prompt, examples=self.examples)
        self.journal = self._journal()
        self.tally = Tally()
        self.context_used = None

    def resume(self, conversation_id: int) -> ConversationRow | None:
        """Go on with a saved conversation, with the system prompt, model and parameters it last
        used (unless flags given now say otherwise); None if there is none."""
        found = self._settled_store().conversation(conversation_id) if self.store is not None else None
        if found is None:
            return None
        row, messages = found
        self.new()
        if "system" not in self.fixed:
            self.system_prompt = row.system_prompt
        if "model" not in self.fixed and row.model:
            self.model = row.model
        if "role" not in self.fixed:
            self.role = row.role
        saved = {key: value for key, value in row.parameters.items() if key in PARAMETER_KEYS}
        for key, value in saved.items():
            if key not in self.fixed:
                self.params = self.params.replace(key, value)
        turns = [
            Turn(
                message.role,
                message.content,
                message.status,
                message.reasoning,
                message.images,
                message.tools,
                message.shell,
            )
            for message in messages
        ]
        self.conversation = Conversation(self.system_prompt, turns, examples=self.examples)
        self.journal = self._journal(row.id)
        if self.role_by_flag is not None:
            self.use_role(*self.role_by_flag)
        return row

    def load(self, conversation: Conversation) -> None:
        """Go on with an imported conversation; it is saved as a new one."""
        self.new()
        self.system_prompt = conversation.system_prompt
        conversation.examples = self.examples
        self.conversation = conversation
        self.journal.adopt(list(conversation.turns), self.model, self.system_prompt)

    def _settings_changed(self) -> None:
        self.journal.settings(self.model, self.system_prompt, self.params.saved(), self.role)

    def set_system_prompt(self, text: str) -> None:
        """The system prompt of this conversation and of those started with new."""
        self.system_prompt = self.conversation.system_prompt = text
        self._settings_changed()

    def set_parameter(self, key: str, value: Any) -> None:
        self.params = self.params.replace(key, value)
        self._settings_changed()

    def switch_model(self, name: str) -> None:
        """Go on with model `name` (`provider:model` for a provider's); MissingKey if its key is not set."""
        self.connections.client(name)
        self.model = name
        self._settings_changed()

    def use_role(self, role: Role, examples: list[Turn] | None = None) -> None:
        """Take on a role from the next request: its system prompt, and the model, parameters and
        `examples` it sets (not what flags given now set); MissingKey if its model's key is not set."""
        wanted = {key: value for key, value in role.settings.items() if key not in self.fixed}
        if "model" in wanted:
            self.connections.client(wanted["model"])
            self.model = wanted.pop("model")
        if "examples" in wanted:
            del wanted["examples"]
            self.examples = self.conversation.examples = examples or []
        allowed = wanted.pop("tools", ())
        if self.toolbox is not None:
            self.toolbox.gate.role_allows = allowed
        for key, value in wanted.items():
            self.params = self.params.replace(key, value)
        if "system" not in self.fixed:
            self.system_prompt = self.conversation.system_prompt = role.system
        self.role = role.name
        self._settings_changed()

    def ask_apart(self, system: str, turns: list[Turn], sink: Sink, terminal: Terminal) -> TurnOutcome:
        """One request apart from the conversation (which stays as it is): these turns under this system
        prompt, with the session's model and parameters (not JSON mode); counted in the totals."""
        from chatrepl.turn import run_turn

        client, (_, sent_model) = self.client, self.connections.split(self.model)
        params = self.params.replace("json", False)
        conversation = Conversation(system, turns)
        outcome = run_turn(
            client, conversation, sent_model, params, self.rules, sink, terminal, self.idle_timeout, self.retries
        )
        if outcome.usage is not None:
            self.tally.add(outcome.usage, outcome.cost)
        return outcome

    def record_shell(self, description: str, answer: str, record: dict[str, Any]) -> None:
        """Keep a shell turn in the conversation, and save it: the description, the answer, and the
        command with whether it ran and its status."""
        self.conversation.add_user(description)
        self.conversation.add_assistant(answer, shell=record)
        self.journal.begin(description, self.model, self.system_prompt, self.params.saved(), {}, (), self.role)
        self.journal.finish(answer, COMPLETE, shell=json.dumps(record))

    def rename(self, title: str) -> bool:
        """Give the conversation a title; False while it is not saved."""
        if self.store is None or not self.conversation.turns:
            return False
        self.journal.rename(title)
        return True

    def delete(self, conversation_id: int) -> bool:
        """Delete a saved conversation (this one: a new one starts); False if there is none."""
        if self.saved(conversation_id) is None:
            return False
        if conversation_id == self.journal.conversation_id:
            self.new()
        assert self.writer is not None
        self.writer.submit(lambda store: store.delete(conversation_id))
        return True

    def saved(self, conversation_id: int) -> ConversationRow | None:
        """A saved conversation's row; None if there is none."""
        found = self._settled_store().conversation(conversation_id) if self.store is not None else None
        return found[0] if found is not None else None

    def search(self, text: str, limit: int = 20) -> list[tuple[ConversationRow, str]]:
        return self._settled_store().search(text, limit) if self.store is not None else []

    def undo(self) -> bool:
        """Forget the last message and its reply; False if there is none."""
        if not self.conversation.undo():
            return False
        self.journal.forget(message=True)
        return True

    def image_refusal(self, command_line: bool = False) -> str | None:
        """Why images cannot go with a message now (the model or the mode), naming the way out in the
        REPL's form or, answering once, the command line's; None when they can."""
        if uses_completions(self.params, self.rules):
            way_out = "without --completion, in chat mode (mode = chat)" if command_line else "/mode chat first"
            return f"completion mode sends no images: {way_out}"
        if self.rules.vision is False:
            seeing = self.catalogue.cheapest_seeing()
            other = f"; {'-m' if command_line else '/model'} {seeing} can" if seeing else ""
            return f"{self.model} cannot see images (the model catalogue says so){other}"
        return None

    def ask(self, text: str, sink: Sink, terminal: Terminal, images: tuple[Image, ...] = ()) -> TurnOutcome:
        """Send a message (with its images) and record the reply; if nothing came back the message is
        taken out again.  Check `image_refusal` before sending images."""
        self.conversation.add_user(text, images)
        return self._answer(sink, terminal, user_text=text, images=images)

    def retry(self, sink: Sink, terminal: Terminal) -> TurnOutcome:
        """Ask for the last reply again, replacing it (there must be a message)."""
        self.conversation.drop_reply()
        self.journal.forget(message=False)
        return self._answer(sink, terminal, user_text=None)

    def _answer(
        self, sink: Sink, terminal: Terminal, user_text: str | None, images: tuple[Image, ...] = ()
    ) -> TurnOutcome:
        # The turn engine and the client are imported once the prompt is up, not before it.
        from chatrepl.client import ChatError
        from chatrepl.turn import FAILED, TurnOutcome, run_turn

        model, params, rules, journal = self.model, self.params, self.rules, self.journal

        def begin(request: Request) -> None:
            journal.begin(user_text, model, self.system_prompt, params.saved(), dict(request.params), images, self.role)

        try:
            client, (_, sent_model) = self.client, self.connections.split(model)
        except MissingKey as err:
            if user_text is not None:
                self.conversation.drop_unanswered()
            hint = "set it, or /model another model"
            return TurnOutcome(status=FAILED, error=ChatError("key", str(err), hint))
        saving = _Saving(sink, journal, begin)
        outcome = run_turn(
            client,
            self.conversation,
            sent_model,
            params,
            rules,
            saving,
            terminal,
            self.idle_timeout,
            self.retries,
            self.toolbox,
        )
        content = outcome.content
        if content is None:
            if user_text is not None:  # a retried message stays, answered or not, for another /retry
                self.conversation.drop_unanswered()
        else:
            self.conversation.add_assistant(content, outcome.status, outcome.reasoning, outcome.tools)
        if saving.begun:
            usage = outcome.usage
            tokens = {"tokens_in": usage.prompt_tokens, "tokens_out": usage.completion_tokens} if usage else {}
            retry = user_text is None
            journal.finish(
                content,
                outcome.status,
                retry=retry,
                reasoning=outcome.reasoning,
                tools=json.dumps(outcome.tools, ensure_ascii=False),
                finish_reason=outcome.finish_reason,
                cost=outcome.cost,
                **tokens,
            )
        if outcome.usage is not None:
            self.tally.add(outcome.usage, outcome.cost)
            self.context_used = _context_share(outcome.usage, rules)
        return outcome

    def session_cost(self) -> float | None:
        """What the conversation has cost so far; None when a turn's price was unknown."""
        return self.tally.cost if self.tally.priced else None

    def saved_conversations(self, limit: int = 20, offset: int = 0) -> tuple[list[ConversationRow], int]:
        """A page of the saved conversations, the latest first, and how many there are."""
        if self.store is None:
            return [], 0
        store = self._settled_store()
        return store.conversations(limit, offset), store.count()

    def _settled_store(self) -> Store:
        """The store, to read, once what was said so far is written (or a moment has passed)."""
        assert self.store is not None
        if self.writer is not None:
            self.writer.flush(timeout=READ_PATIENCE)
        return self.store

    def stop_saving(self) -> None:
        self.store = self.writer = None
        self.journal.writer = None

    def reports(self) -> list[str]:
        """What the journal has to say: that saving fails, or works again."""
        return self.writer.reports() if self.writer is not None else []

    def close(self, timeout: float = CLOSE_PATIENCE, give_up: Callable[[], bool] = lambda: False) -> list[str]:
        """Wait for what is still being saved (until `give_up`); what the journal has to say, and what
        could not be saved."""
        if self.writer is None:
            return []
        done = self.writer.flush(timeout, give_up)
        reports = self.writer.reports()
        if not done:
            reports.append(f"not saved: {self.writer.unsaved()} change(s) could not be written")
        return reports


def _context_share(usage: Usage, rules: ModelInfo) -> float | None:
    """How much of the model's context window a turn took; None when the window is unknown."""
    return (usage.prompt_tokens + usage.completion_tokens) / rules.context if rules.context else None
