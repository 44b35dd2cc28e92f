"""Commands about how replies are asked for: the model, the system prompt, the parameters, the role,
JSON and completion mode."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from chatrepl import roles
from chatrepl.commands.base import CONTINUE, Context, Outcome, one, parsed, switch
from chatrepl.options import SAMPLING_KEYS
from chatrepl.providers import MissingKey

if TYPE_CHECKING:
    from chatrepl.session import ChatSession


def _model(context: Context, words: list[str]) -> Outcome:
    session = context.session
    if words:
        ok, value = parsed(context, "model", one(words))
        if not ok:
            return CONTINUE
        try:
            session.switch_model(value)
        except MissingKey as err:
            context.output.error(f"{err} (the model stays {session.model})")
            return CONTINUE
    context.output.note(" · ".join([f"model {session.model}", *session.rules.facts()]))
    unseen = len(session.conversation.images()) if session.rules.vision is False else 0
    if unseen:
        context.output.note(
            f"{session.model} cannot see images: the {unseen} image(s) in this conversation are sent by name only"
        )
    return CONTINUE


def _system(context: Context, text: str) -> Outcome:
    if text.strip():
        context.session.set_system_prompt(text.strip())
    context.output.note(f"system prompt: {context.session.system_prompt}")
    return CONTINUE


def _set(context: Context, words: list[str]) -> Outcome:
    session = context.session
    key = words[0].lower().replace("-", "_") if words else ""
    if key and key not in SAMPLING_KEYS:
        context.output.error(f"/set knows {', '.join(SAMPLING_KEYS)}; not {key!r}")
        return CONTINUE
    if key:
        ok, value = parsed(context, key, " ".join(words[1:]))
        if not ok:
            return CONTINUE
        session.set_parameter(key, value)
        if key == "reasoning_effort" and value and session.rules.reasoning_effort is False:
            context.output.note(f"{session.model} takes no reasoning_effort: it is not sent")
    shown = SAMPLING_KEYS if not key else (key,)
    values = []
    for name in shown:
        value = getattr(session.params, name)
        written = "(server default)" if value is None else ",".join(value) if name == "stop" else value
        values.append(f"{name} = {written}")
    context.output.note(" · ".join(values))
    return CONTINUE


def role_choices(session: ChatSession) -> dict[str, str]:
    """Every role there is, by name, with its system prompt's first line (or what is wrong with its file)."""
    choices = {}
    for name, found in roles.available(session.roles, roles.roles_dir(os.environ)).items():
        try:
            choices[name] = (found if isinstance(found, roles.Role) else roles.from_file(found)).summary()
        except (OSError, UnicodeDecodeError, ValueError) as err:
            choices[name] = f"unusable: {err}"
    return choices


def _role(context: Context, words: list[str]) -> Outcome:
    session, name = context.session, one(words)
    if name:
        try:
            role, examples = roles.take_on(name, session.roles, roles.roles_dir(os.environ))
            session.use_role(role, examples)
        except ValueError as err:  # no such role, a bad file, its provider's key not set
            context.output.error(str(err))
            return CONTINUE
    if session.role:
        context.output.note(f"role {session.role} · {session.model} · system prompt: {session.system_prompt}")
    else:
        where = f"none yet: [roles.NAME] in config.toml, or files in {roles.roles_dir(os.environ)}"
        context.output.note(f"no role (roles: {', '.join(sorted(role_choices(session))) or where})")
    return CONTINUE


def _json(context: Context, words: list[str]) -> Outcome:
    session = context.session
    wanted = switch(context, words, "json", session.params.json)
    if wanted is None:
        return CONTINUE
    session.set_parameter("json", wanted)
    caveat = "" if session.rules.json_mode else f" ({session.model} has no JSON mode: only the hint is sent)"
    context.output.note(f"JSON mode is {'on' if wanted else 'off'}{caveat}")
    return CONTINUE


def _mode(context: Context, words: list[str]) -> Outcome:
    session = context.session
    if words:
        ok, value = parsed(context, "mode", one(words))
        if not ok:
            return CONTINUE
        session.set_parameter("mode", value or "chat")
    forced = session.rules.api == "completions" and session.params.mode == "chat"
    note = f" ({session.model} only has the Completions API, so completion mode is used)" if forced else ""
    context.output.note(f"mode: {session.params.mode}{note}")
    return CONTINUE
