"""Tab completion in the REPL: commands, their arguments and paths, each with a one-line description."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from chatrepl.images import media_type
from chatrepl.options import OPTION_BY_KEY, SAMPLING_KEYS
from chatrepl.sanitize import sanitize

if TYPE_CHECKING:
    from chatrepl.repl import Repl


class ArgumentCompleter(Completer):
    """Tab completion of commands and their arguments, each with a one-line description."""

    def __init__(self, repl: Repl) -> None:
        self.repl = repl
        self.paths = {
            "/file": PathCompleter(expanduser=True),
            "/image": PathCompleter(expanduser=True, file_filter=_is_image_or_folder),
        }

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/"):
            return
        word, space, argument = text.partition(" ")
        if word in self.paths and space:
            last = argument.rsplit(" ", 1)[-1]  # the path being written
            for found in self.paths[word].get_completions(Document(last), complete_event):
                # File names are outside text too: prompt_toolkit shows C0 and C1 controls, not bidi overrides.
                shown = sanitize(found.display_text)
                yield Completion(found.text, found.start_position, display=shown, display_meta=found.display_meta)
            return
        session = self.repl.session
        candidates: dict[str, str]  # completion -> description
        if not space:
            from chatrepl import commands

            candidates = {f"/{command.name}": command.help for command in commands.COMMANDS}
            argument = word
        elif word == "/model":
            candidates = self._models(argument)
        elif word == "/role":
            from chatrepl.commands.model import role_choices

            candidates = role_choices(session)
        elif word == "/set":
            candidates = {key: OPTION_BY_KEY[key].help for key in SAMPLING_KEYS}
        elif word == "/mcp" and session.toolbox is not None:
            candidates = {f"restart {name}": state for name, state in session.toolbox.servers.states.items()}
        elif word == "/resume" and session.store is not None:
            candidates = {str(row.id): row.title for row in session.store.conversations()}
        else:
            return
        for candidate, description in candidates.items():
            if candidate.startswith(argument):
                yield Completion(candidate, start_position=-len(argument), display_meta=sanitize(description))

    def _models(self, argument: str) -> dict[str, str]:
        """After `PROVIDER:`, that provider's models; else the models known here and the providers' prefixes."""
        connections = self.repl.session.connections
        prefix, colon, _ = argument.partition(":")
        if colon and prefix in connections.providers:
            return {f"{prefix}:{name}": "" for name in self.repl.provider_models(connections.providers[prefix])}
        catalogue = self.repl.session.catalogue
        names = {*catalogue.names(), *self.repl.server_models}
        candidates = {name: " · ".join(catalogue.lookup(name).facts()[:2]) for name in sorted(names)}
        return candidates | {f"{name}:": provider.base_url for name, provider in connections.providers.items()}


def _is_image_or_folder(name: str) -> bool:
    """Whether a completion after /image offers `name`: a folder, or a file that starts as an image does."""
    if os.path.isdir(name):
        return True
    try:
        with open(name, "rb") as file:
            return media_type(file.read(12)) is not None
    except OSError:
        return False
