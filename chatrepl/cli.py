"""Argument parsing; chooses the interactive REPL or a one-shot answer."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

from chatrepl import __version__, config, options
from chatrepl.attachments import STDIN, Pending, read_files, read_images
from chatrepl.completion import SHELLS
from chatrepl.output import emit, report
from chatrepl.terminal import Interrupted, Terminal

Held = TypeVar("Held")  # what a conversation held to its end gives back

if TYPE_CHECKING:
    from pathlib import Path

    from chatrepl.conversation import Turn
    from chatrepl.local import LocalServer
    from chatrepl.models import Catalogue
    from chatrepl.output import Output
    from chatrepl.session import ChatSession
    from chatrepl.store import Store
    from chatrepl.tools import Toolbox

EXAMPLES = """\
examples:
  chatrepl                                   start a conversation
  chatrepl "what is a monad?"                answer once and exit
  cat notes.md | chatrepl "summarize this"   the question, then the piped text
  chatrepl -m gpt-4.1 -t 0.2 --max-tokens 500
  chatrepl --base-url http://127.0.0.1:8080/v1   any OpenAI-compatible server
  chatrepl --image shot.png "what is wrong here?"
  git diff | chatrepl --file - "review this"
  chatrepl -c                                go on with the last conversation
  eval "$(chatrepl --completion-script bash)"   Tab completes the flags

in a conversation: Enter sends, Alt-Enter adds a new line, Ctrl-C stops a reply,
"new" starts over, "quit" or Ctrl-D leaves, /help lists the commands.

The API key is read from OPENAI_API_KEY (environment or a .env file) or from
api_key in the config file ($XDG_CONFIG_HOME/chatrepl/config.toml, or CHATREPL_CONFIG).
"""


def _flag_type(parse: Callable[[Any], Any], choices: Sequence[str] = ()) -> Callable[[str], Any]:
    """An argparse type that reports the parser's own message on a bad value; `choices` are the
    values it takes, for shell completion."""

    def convert(value: str) -> Any:
        try:
            return parse(value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = parse.__name__
    convert.choices = tuple(choices)  # type: ignore[attr-defined]
    return convert


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line for a bad flag, not the whole usage."""
        self.exit(2, f"chatrepl: error: {message} (see chatrepl --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="chatrepl",
        description="Chat with a language model in your terminal, over any OpenAI-compatible API.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("prompt", nargs="*", help="ask this once and exit (piped standard input is added after it)")
    parser.add_argument(
        "-m", "--model", type=_flag_type(options.model_name), help=f"model to use (default: {options.DEFAULT_MODEL})"
    )
    parser.add_argument("-s", "--system", help='system prompt (default: "You are a helpful assistant.")')
    parser.add_argument(
        "-t", "--temperature", type=_flag_type(options.temperature), help="sampling temperature, 0 to 2"
    )
    parser.add_argument("--max-tokens", type=_flag_type(options.max_tokens), help="most tokens one reply may have")
    parser.add_argument(
        "--base-url",
        type=_flag_type(options.base_url),
        help="API base URL, e.g. http://127.0.0.1:8080/v1 for a local server",
    )
    parser.add_argument("--top-p", type=_flag_type(options.top_p), help="nucleus sampling, 0 to 1")
    parser.add_argument(
        "--presence-penalty", type=_flag_type(options.presence_penalty), help="-2 to 2: favour new topics"
    )
    parser.add_argument(
        "--frequency-penalty", type=_flag_type(options.frequency_penalty), help="-2 to 2: discourage repetition"
    )
    parser.add_argument("--stop", type=_flag_type(options.stop), help="up to 4 stop sequences, comma-separated")
    parser.add_argument("--seed", type=_flag_type(options.seed), help="seed for repeatable sampling")
    parser.add_argument("--examples", metavar="FILE", help="few-shot example messages (JSON list or TOML [[messages]])")
    parser.add_argument("--json", action="store_true", default=None, help="JSON mode: the reply is a JSON object")
    parser.add_argument(
        "--shell",
        action="store_true",
        help="describe a task, get one shell command: run it, revise it, have it described, copy it "
        "(with no terminal, the command is printed and nothing runs)",
    )
    parser.add_argument(
        "--completion",
        dest="mode",
        action="store_const",
        const="completion",
        help="use the legacy Completions API (e.g. gpt-3.5-turbo-instruct)",
    )
    parser.add_argument("-n", type=_flag_type(options.choices), help="completion mode: how many replies (1 to 16)")
    parser.add_argument(
        "--reasoning-effort",
        type=_flag_type(options.reasoning_effort, options.REASONING_EFFORTS),
        metavar="EFFORT",
        help="how hard a reasoning model thinks: minimal, low, medium or high",
    )
    parser.add_argument(
        "--timeout", type=_flag_type(options.timeout), help="seconds to wait for the server (default: 60)"
    )
    parser.add_argument(
        "--local",
        nargs="?",
        const=options.BUNDLED_LOCAL,
        metavar="PATH.gguf",
        help="serve a local model with llama.cpp on loopback: the bundled SmolLM2-135M-Instruct, or PATH.gguf",
    )
    parser.add_argument(
        "--local-ctx", type=_flag_type(options.max_tokens), metavar="N", help="the local model's context size"
    )
    parser.add_argument(
        "--connect-timeout", type=_flag_type(options.timeout), metavar="SECONDS", help="wait for a connection (10)"
    )
    parser.add_argument(
        "--idle-timeout",
        type=_flag_type(options.timeout),
        metavar="SECONDS",
        help="give up a reply that sends nothing, keep-alives aside, for this long (default 60)",
    )
    parser.add_argument(
        "--retries", type=_flag_type(options.retries), metavar="N", help="retries after a 429 or 5xx (default 3)"
    )
    parser.add_argument(
        "--plain", dest="markdown", action="store_false", default=None, help="print plain text: no markdown, no colour"
    )
    parser.add_argument(
        "--multiline", action="store_true", default=None, help="Enter adds a line and Alt-Enter sends (/multiline)"
    )
    parser.add_argument(
        "--thinking",
        type=_flag_type(options.thinking, options.THINKING_MODES),
        metavar="MODE",
        help="a thinking model's reasoning: collapse (default: live, then one line), show (kept above the answer;"
        " to standard error when answering once), hide",
    )
    parser.add_argument(
        "--role",
        type=_flag_type(options.text),
        metavar="NAME",
        help="take on a role: [roles.NAME] in config.toml, or roles/NAME.md beside it (see /role)",
    )
    parser.add_argument(
        "--file",
        dest="files",
        action="append",
        default=[],
        metavar="PATH",
        help="send a text file with the question (repeatable; globs work; - reads standard input)",
    )
    parser.add_argument(
        "--image",
        dest="images",
        action="append",
        default=[],
        metavar="PATH",
        help="send an image with the question: PNG, JPEG, WEBP or GIF, or an http(s) address (repeatable; -"
        " reads standard input)",
    )
    parser.add_argument(
        "-c",
        "--continue",
        dest="resume_last",
        action="store_true",
        help="go on with the last saved conversation (with a question: answer it there, once)",
    )
    parser.add_argument("--session", type=int, metavar="ID", help="go on with saved conversation ID (see /sessions)")
    parser.add_argument(
        "--sessions",
        nargs="?",
        const="",
        metavar="TEXT",
        help="list the saved conversations (all of them), or with TEXT those whose messages hold it, and exit",
    )
    parser.add_argument(
        "--export",
        nargs=2,
        metavar=("ID", "FILE"),
        help="write saved conversation ID to FILE.md (images beside it) or FILE.json, and exit",
    )
    parser.add_argument(
        "--delete", type=int, metavar="ID", help="delete saved conversation ID and its messages (asks first)"
    )
    parser.add_argument(
        "--no-save",
        dest="save",
        action="store_false",
        default=None,
        help="keep this session out of the history database",
    )
    parser.add_argument(
        "--db",
        type=_flag_type(options.path),
        metavar="PATH",
        help="history database (default: $XDG_DATA_HOME/chatrepl/chatrepl.db)",
    )
    parser.add_argument(
        "--mcp-config",
        action="append",
        default=[],
        metavar="FILE",
        help='MCP servers from a JSON file {"mcpServers": {...}} (repeatable)',
    )
    parser.add_argument(
        "--allow-tool",
        action="append",
        default=[],
        metavar="PATTERN",
        help="let a tool run without asking: NAME, SERVER.NAME or SERVER.* (repeatable)",
    )
    parser.add_argument(
        "--print-config", action="store_true", help="show every setting, its value and where it came from"
    )
    parser.add_argument(
        "--providers",
        action="store_true",
        help="list the providers (PROVIDER:MODEL), where each comes from, whether its key is set and it answers",
    )
    parser.add_argument(
        "--allow-env",
        action="store_true",
        help="trust the .env found from here upward, as it is now, to choose where the API key goes",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of errors")
    parser.add_argument(
        "--completion-script",
        action=_CompletionAction,
        choices=SHELLS,
        metavar="SHELL",
        help='print the completion script for bash, zsh or fish: eval "$(chatrepl --completion-script bash)"',
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        nargs=0,
        help="show the versions of chatrepl, Python, openai, prompt_toolkit and rich, and exit",
    )
    return parser


class _VersionAction(argparse.Action):
    """--version: what a bug report needs, read from the installed packages' metadata (nothing is imported)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> NoReturn:
        import platform
        from importlib import metadata

        lines = [
            f"chatrepl {__version__}",
            f"Python {platform.python_version()} ({platform.python_implementation()}, {platform.system()}"
            f" {platform.machine()})",
        ]
        for package in ("openai", "prompt_toolkit", "rich"):
            try:
                lines.append(f"{package} {metadata.version(package)}")
            except metadata.PackageNotFoundError:
                lines.append(f"{package} not installed")
        emit("\n".join(lines))
        parser.exit()


class _CompletionAction(argparse.Action):
    """--completion-script SHELL: the flags' completion for that shell, made from this parser."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, *args: Any) -> NoReturn:
        from chatrepl.completion import script

        emit(script(values, parser).rstrip("\n"))
        parser.exit()


def _read_stdin() -> str:
    return sys.stdin.buffer.read().decode("utf-8", "replace")


def _flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The flag that sets each setting, e.g. markdown: --plain."""
    return {action.dest: action.option_strings[-1] for action in parser._actions if action.option_strings}


def _names_a_model(argument: str) -> bool:
    """Whether `--local ARGUMENT` names a model file (an existing file, or a .gguf path) rather than a question."""
    from pathlib import Path

    return argument.lower().endswith(".gguf") or Path(argument).expanduser().is_file()


def run(argv: Sequence[str] | None, terminal: Terminal) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.prompt or not sys.stdin.isatty():  # answering once: the request comes without a prompt before it
        from chatrepl.client import import_in_background

        import_in_background()
    if args.local not in (None, options.BUNDLED_LOCAL) and not _names_a_model(args.local):
        # `--local "a question"`: the optional PATH took the question
        args.prompt.insert(0, args.local)
        args.local = options.BUNDLED_LOCAL
    flags = {option.key: getattr(args, option.key, None) for option in options.OPTIONS}
    if args.allow_env and not _allow_env():
        return 2
    ask = _ask_to_allow if sys.stdin.isatty() and sys.stderr.isatty() else None
    try:
        settings = config.load_settings(flags, flag_names=_flag_names(parser), ask=ask)
    except config.ConfigError as err:
        report("error", str(err))
        return 2
    try:
        _add_tool_flags(settings, args)
    except ValueError as err:
        report("error", str(err))
        return 2
    config.keep_secrets(settings)
    for warning in settings.warnings:
        report("warning", warning)
    if args.print_config:
        emit(config.describe(settings))
        return 0
    from chatrepl import providers

    if args.providers:
        emit(providers.report(settings))
        return 0
    if args.sessions is not None or args.export or args.delete is not None:
        return _saved_conversations(args, settings, terminal)
    provider, _ = providers.split_model(settings.model, providers.catalogue(settings.providers))
    if provider is not None:
        try:
            providers.key_for(provider, settings.provider_keys)
        except providers.MissingKey as err:
            report("error", str(err))
            return 2
    automatic = False
    if provider is None and not settings.local and not settings.api_key and not settings.base_url:
        from chatrepl import local

        # local = false turns the automatic local model off
        automatic = settings.local is None and local.available()
        if not automatic:
            report(
                "error", config.missing_key_message(config.config_path(os.environ, os.environ.get("CHATREPL_CONFIG")))
            )
            return 2
    return _converse(args, settings, bool(settings.local) or automatic, automatic, terminal)


def _add_tool_flags(settings: config.Settings, args: argparse.Namespace) -> None:
    """--mcp-config FILE and --allow-tool PATTERN on top of the config file's servers and rules."""
    if args.mcp_config:  # chatrepl.mcp imports asyncio: only when it is needed
        from pathlib import Path

        from chatrepl import mcp

        for name in args.mcp_config:
            settings.mcp_servers += mcp.read_json_config(Path(name).expanduser(), os.environ)
    if args.allow_tool:
        from chatrepl import tools

        settings.tool_rules = (settings.tool_rules or tools.Rules()).with_allowed(tuple(args.allow_tool))


def _toolbox(settings: config.Settings, notices: Output, can_ask: bool) -> Toolbox | None:
    """The tools of the configured MCP servers (None without any, or without the mcp extra)."""
    if not settings.mcp_servers:
        return None
    import importlib.util

    from chatrepl import mcp, tools
    from chatrepl.output import ToolLines

    if importlib.util.find_spec("mcp") is None:
        report("warning", f"MCP servers are configured, but the mcp extra is not installed: {mcp.INSTALL}")
        return None
    servers = mcp.Servers(settings.mcp_servers, mcp.log_path(os.environ))
    gate = tools.Gate(settings.tool_rules or tools.Rules())
    return tools.Toolbox(servers, gate, ToolLines(notices, can_ask), settings.tool_output_limit)


def _allow_env() -> bool:
    """Record the .env found from here upward as the user's own; False after saying there is none."""
    from pathlib import Path

    from chatrepl import trust

    found, values = config.read_dotenv(Path.cwd())
    if found is None:
        report("error", "--allow-env: no .env file here or in any folder above")
        return False
    trust.allow_dotenv(os.environ, found, values)
    report("note", f"allowed {found} and the files it names as they are now (a change must be allowed again)")
    return True


def _ask_to_allow(dotenv_file: Path, routing: str) -> bool:
    from chatrepl.output import confirm

    return confirm(f"{dotenv_file} sets {routing}; use that, now and until the file or one it names changes?")


def _launch_local(settings: config.Settings) -> LocalServer | None:
    """Start the local model's server, which loads while chatrepl gets ready; None after reporting why it cannot."""
    from pathlib import Path

    from chatrepl import local

    bundled = settings.local in (None, options.BUNDLED_LOCAL)
    model = local.bundled_model() if bundled else Path(settings.local)
    try:
        if model is not None and not bundled:
            local.check_model(model)  # before the extra: a wrong path is the first thing to hear of
        if model is None or not local.server_installed():
            report("error", f"--local needs the local extra: {options.LOCAL_INSTALL}")
            return None
        server = local.LocalServer(model, settings.local_ctx or local.DEFAULT_CONTEXT, local.log_path(os.environ))
        server.start()
    except local.LocalModelError as err:
        report("error", str(err))
        return None
    return server


def _await_local(server: LocalServer, settings: config.Settings, catalogue: Catalogue) -> config.Settings | None:
    """Wait for the local server to answer; the settings pointed at it, or None after reporting why it did not."""
    from chatrepl import local
    from chatrepl.output import spinner

    try:
        with spinner(f"starting the local model {server.name}") as tick:
            server.wait_ready(tick=tick)
    except local.LocalModelError as err:
        report("error", str(err))
        return None
    catalogue.add(server.name, local.catalogue_entry(server.context))
    # The model is the local one even in a resumed conversation that used another.
    sources = {**settings.sources, "model": "--local"}
    return dataclasses.replace(settings, base_url=server.base_url, api_key=None, model=server.name, sources=sources)


def _converse(
    args: argparse.Namespace, settings: config.Settings, use_local: bool, automatic: bool, terminal: Terminal
) -> int:
    """Answer once or hold a conversation; a local model loads meanwhile, and is stopped after."""
    server = _launch_local(settings) if use_local else None
    if use_local and server is None:
        return 2
    try:
        return _answer(args, settings, server, automatic, terminal)
    finally:
        if server is not None:
            server.stop()


def _answer(
    args: argparse.Namespace, settings: config.Settings, server: LocalServer | None, automatic: bool, terminal: Terminal
) -> int:
    """Check everything asked for (a local model loading meanwhile), then answer once or hold a conversation."""
    plain = not settings.markdown or bool(os.environ.get("NO_COLOR")) or not sys.stdout.isatty()
    question = " ".join(args.prompt).strip()
    attached = _read_attachments(args, settings)
    if attached is None:
        return 2
    if STDIN in (*args.files, *args.images):
        if not question:
            report("error", 'standard input is attached: give the question too, e.g. chatrepl --file - "summarize"')
            return 2
    elif not sys.stdin.isatty():
        piped = _read_stdin().strip()
        question = f"{question}\n\n{piped}".strip()
        if not question:
            report("error", "nothing to ask: standard input was empty")
            return 2
    if not question and not sys.stdout.isatty():
        report("error", 'standard output is not a terminal: give a question to answer once, e.g. chatrepl "hello"')
        return 2
    from chatrepl.models import Catalogue

    catalogue = Catalogue(settings.models)  # checked as the settings were loaded
    examples = _read_examples(settings.examples)
    if examples is None:
        return 2
    store = _open_store(settings.db) if settings.save else None
    if store is False:
        return 2
    wanted = None
    if args.resume_last or args.session is not None:
        if store is None:
            report("error", "--continue and --session need the history database (not with --no-save)")
            return 2
        wanted = args.session if args.session is not None else store.last_conversation_id()
        if wanted is None or store.conversation(wanted) is None:
            report("error", f"no saved conversation {wanted}" if wanted is not None else "no saved conversation yet")
            return 2
    if server is not None:
        served = _await_local(server, settings, catalogue)
        if served is None:
            return 2
        settings = served
        if automatic:
            report("note", f"no OPENAI_API_KEY: using the bundled local model {server.name}; set a key to use OpenAI")
    return _hold(args, settings, catalogue, store, examples, question, wanted, plain, terminal, attached)


def _read_attachments(args: argparse.Namespace, settings: config.Settings) -> Pending | None:
    """The files and images the flags name, read now; None after reporting what cannot go."""
    if (*args.files, *args.images).count(STDIN) > 1:
        report("error", "standard input (-) can be attached once")
        return None
    read_stdin = sys.stdin.buffer.read
    files, problems = read_files(args.files, settings.file_limit, read_stdin)
    images, image_problems = read_images(args.images, settings.image_limit, read_stdin)
    for problem in problems + image_problems:
        report("error", problem)
    if problems or image_problems:
        return None
    return Pending(settings.file_limit, settings.image_limit, [*files, *images])


def _hold(
    args: argparse.Namespace,
    settings: config.Settings,
    catalogue: Catalogue,
    store: Store | None,
    examples: list[Turn],
    question: str,
    wanted: int | None,
    plain: bool,
    terminal: Terminal,
    attached: Pending,
) -> int:
    """Answer once or hold a conversation (`attached` going with the first message), and wait for the last
    of it to be saved."""
    from chatrepl.output import Output

    notices = Output(
        terminal=terminal, plain=plain, debug=args.debug, stderr=bool(question), thinking=settings.thinking
    )
    # A tool call is asked about on the terminal the user types on, if there is one.
    toolbox = _toolbox(settings, notices, can_ask=sys.stdin.isatty() and (sys.stderr.isatty() or sys.stdout.isatty()))
    if args.shell:
        return _shell(settings, catalogue, store, examples, question, terminal, args.debug)
    if question:
        from chatrepl.session import ChatSession

        session = ChatSession.from_settings(settings, catalogue, store, examples)
        session.toolbox = toolbox
        if toolbox is not None:  # answering once: the servers start now, beside the request's preparation
            toolbox.servers.start()
        if not _start_role(session, settings.role):
            return 2
        return _closing(session, notices, lambda: _once(session, notices, question, wanted, plain, attached))
    from chatrepl.repl import Repl

    repl = Repl.for_settings(settings, catalogue, store, examples, notices, attachments=attached)
    repl.session.toolbox = toolbox  # its servers start once the prompt is up
    if not _start_role(repl.session, settings.role):
        return 2
    return _closing(repl.session, notices, lambda: repl.run(resume=wanted))


def _shell(
    settings: config.Settings,
    catalogue: Catalogue,
    store: Store | None,
    examples: list[Turn],
    description: str,
    terminal: Terminal,
    debug: bool,
) -> int:
    """--shell: one command for the description.  On a terminal the user chooses what to do with it
    (chatrepl then ends with the command's status); elsewhere the bare command is printed, and nothing
    runs (an answer that is not one command is an error)."""
    from chatrepl import shell
    from chatrepl.output import Output
    from chatrepl.session import ChatSession

    if not description:
        report("error", 'describe the command, e.g. chatrepl --shell "find files over 100 MB changed this week"')
        return 2
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    output = Output(terminal=terminal, plain=not interactive, debug=debug, stderr=not interactive)
    session = ChatSession.from_settings(settings, catalogue, store, examples)
    try:
        turn = _closing(session, output, lambda: shell.shell_turn(session, output, description, interactive))
    except shell.ShellError as err:
        report("error", str(err))
        return 1
    if turn is None:
        return 1
    if interactive:
        return turn.status if turn.ran and turn.status is not None else 0
    if turn.command is None:
        report("error", f"not one command, so nothing to print: {' '.join(turn.answer.split())[:200]}")
        return 1
    emit(turn.command)
    return 0


def _saved_conversations(args: argparse.Namespace, settings: config.Settings, terminal: Terminal) -> int:
    """--sessions [TEXT], --export ID FILE, --delete ID: 0 done, 1 nothing found, 2 refused."""
    from pathlib import Path

    from chatrepl.commands.sessions import deletion_question, export, list_sessions
    from chatrepl.models import Catalogue
    from chatrepl.output import Output, confirm
    from chatrepl.session import ChatSession

    store = _open_store(settings.db)
    if not store:  # what is wrong with it was said
        return 2
    session = ChatSession.from_settings(settings, Catalogue(settings.models), store, [])
    if args.sessions is not None:
        plain = not sys.stdout.isatty() or bool(os.environ.get("NO_COLOR"))
        listed = list_sessions(session, Output(terminal=terminal, plain=plain), args.sessions.split() or ["--all"])
        return 0 if listed else 1
    wanted = args.export[0] if args.export else str(args.delete)
    row = session.saved(int(wanted)) if wanted.isdigit() else None
    if row is None:
        report("error", f"no saved conversation {wanted} (chatrepl --sessions lists them)")
        return 1
    if args.export:
        session.resume(row.id)
        try:
            report("note", export(session.conversation, Path(args.export[1]).expanduser()))
        except (OSError, ValueError) as err:
            report("error", f"--export: {err}")
            return 2
        return 0
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        report("error", "--delete asks before it deletes: run it on a terminal")
        return 2
    if not confirm(deletion_question(row)):
        report("note", "nothing deleted")
        return 1
    store.delete(row.id)
    report("note", f"deleted conversation {row.id}")
    return 0


def _start_role(session: ChatSession, name: str | None) -> bool:
    """Take on the role the settings name (with --role, also on a resumed conversation); False after
    reporting why it cannot be."""
    if not name:
        return True
    from chatrepl import roles

    try:
        role, examples = roles.take_on(name, session.roles, roles.roles_dir(os.environ))
        session.use_role(role, examples)
    except ValueError as err:  # a missing role or file, a bad file, its provider's key not set
        report("error", str(err))
        return False
    if "role" in session.fixed:
        session.role_by_flag = (role, examples)
    return True


def _closing(session: ChatSession, notices: Output, converse: Callable[[], Held]) -> Held:
    """Hold the conversation, then wait for the last of it to be saved, saying what could not be."""
    try:
        return converse()
    finally:
        terminal = notices.terminal
        with terminal.busy():  # a Ctrl-C stops the wait, and what it leaves unsaved is said
            if session.toolbox is not None:
                session.toolbox.servers.close()
            problems = session.close(give_up=lambda: terminal.interrupt_requested)
        terminal.interrupt_requested = False
        for problem in problems:
            notices.warning(problem)


def _once(
    session: ChatSession, notices: Output, question: str, wanted: int | None, plain: bool, attached: Pending
) -> int:
    """Answer one question (with what is attached) on standard output, notes on standard error: 0 done,
    1 failed, 2 refused, 130 interrupted.  With `wanted`, the question goes on that saved conversation."""
    from chatrepl.conversation import COMPLETE, INTERRUPTED
    from chatrepl.output import Output, ReplySink
    from chatrepl.parameters import uses_completions

    terminal = notices.terminal
    if wanted is not None:
        session.resume(wanted)
    images = attached.images()
    refusal = session.image_refusal(command_line=True) if images else None
    if refusal:
        notices.error(refusal)
        return 2
    json = session.params.json and not uses_completions(session.params, session.rules)
    shown = notices.thinking if notices.thinking == "show" else None  # standard output carries the answer alone
    sink = ReplySink(notices, Output(terminal=terminal, plain=plain).reply(json), shown)
    with terminal.busy():
        outcome = session.ask(attached.message(question), sink, terminal, images)
        with contextlib.suppress(Interrupted):  # the answer is kept; only its notes are cut short
            notices.outcome(outcome, json)
    if outcome.leave is not None:
        raise SystemExit(outcome.leave)
    return {COMPLETE: 0, INTERRUPTED: 130}.get(outcome.status, 1)


def _read_examples(path: str | None) -> list[Turn] | None:
    """The few-shot examples file's turns ([] without one), or None after reporting why it is unusable."""
    if not path:
        return []
    from chatrepl.roles import read_examples

    try:
        return read_examples(path)
    except ValueError as err:
        report("error", str(err))
        return None


def _open_store(chosen: str | None) -> Store | Literal[False] | None:
    """The history database; None (with a warning) when it cannot be used now, False (after an error)
    when the file is not chatrepl's."""
    from pathlib import Path

    from chatrepl.store import NotChatreplDatabase, Store, StoreError, default_path

    path = Path(chosen) if chosen else default_path(os.environ)
    try:
        store = Store(path)
    except NotChatreplDatabase as err:
        report("error", str(err))
        return False
    except StoreError as err:
        report("warning", f"not saved: {err}")
        return None
    if store.moved_aside is not None:
        report("warning", f"the history database {path} was unreadable; moved it to {store.moved_aside}, started anew")
    return store


def main(argv: Sequence[str] | None = None) -> int:
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    terminal = Terminal()
    terminal.install()
    try:
        return run(argv, terminal)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head -1`): stop quietly, and keep Python's
        # own flush at exit from failing on the same closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:
        if debug:
            from chatrepl.output import report_traceback

            report_traceback()
        hint = "" if debug else " (run with --debug for the traceback)"
        report("error", f"unexpected {type(err).__name__}: {err}{hint}")
        return 1
