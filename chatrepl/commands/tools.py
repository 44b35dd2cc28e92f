"""Commands about tools: the tools there are and their rules, the MCP servers, and the calls made."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chatrepl.commands.base import CONTINUE, Context, Outcome, one

if TYPE_CHECKING:
    from chatrepl.tools import Record

NONE_CONFIGURED = "no MCP servers are configured: [mcp_servers.NAME] in config.toml, or --mcp-config FILE.json"


def _tools(context: Context, words: list[str]) -> Outcome:
    from chatrepl.tools import one_line

    toolbox = context.session.toolbox
    if toolbox is None:
        context.output.note(NONE_CONFIGURED)
        return CONTINUE
    tools = toolbox.servers.tools(timeout=0)
    if not tools:
        context.output.note("no tools yet (/mcp shows how the servers are doing)")
    for tool in tools:
        described = one_line(tool.description, max(20, context.output.width - 38))
        context.output.info(f"{tool.qualified:<30} {toolbox.gate.decide(tool):<5}  {described}")
    return CONTINUE


def _mcp(context: Context, words: list[str]) -> Outcome:
    toolbox = context.session.toolbox
    if toolbox is None:
        context.output.note(NONE_CONFIGURED)
        return CONTINUE
    servers = toolbox.servers
    if words and words[0] == "restart":
        name = one(words[1:])
        if name not in servers.specs:
            context.output.error(f"/mcp restart NAME: the servers are {', '.join(servers.specs)}")
        else:
            servers.restart(name)
            context.output.note(f"restarting {name}")
        return CONTINUE
    if words:
        context.output.error("/mcp alone lists the servers; /mcp restart NAME restarts one")
        return CONTINUE
    for name, spec in servers.specs.items():
        state = servers.states[name]
        tools = f" · {servers.count(name)} tools" if state == "running" else ""
        where = spec.url or " ".join([spec.command, *spec.args])
        context.output.info(f"{name:<16} {state}{tools} · {where}")
    context.output.note(f"their standard error is in {servers.log}")
    return CONTINUE


def _tool(context: Context, words: list[str]) -> Outcome:
    from chatrepl.tools import Registry

    toolbox = context.session.toolbox
    if toolbox is None or not toolbox.records:
        context.output.note("no tool has been called in this session")
        return CONTINUE
    records = toolbox.records
    wanted = one(words)
    if wanted and not (wanted.isdigit() and 1 <= int(wanted) <= len(records)):
        context.output.error(f"/tool N: the calls are numbered 1 to {len(records)}")
        return CONTINUE
    known = Registry(toolbox.servers.tools(timeout=0)).by_function

    def name(record: Record) -> str:
        """SERVER.TOOL as elsewhere, where the server still has the tool; else the name the model used."""
        tool = known.get(record.call.name)
        return tool.qualified if tool is not None else record.call.name

    if not wanted:
        for number, record in enumerate(records, 1):
            context.output.info(f"{number:>3}  {name(record)} · {record.decision} · {record.seconds:.1f} s")
        return CONTINUE
    record = records[int(wanted) - 1]
    try:
        arguments = json.dumps(json.loads(record.call.arguments or "{}"), indent=2, ensure_ascii=False)
    except ValueError:
        arguments = record.call.arguments
    context.output.info(f"{name(record)} ({record.decision}, {record.seconds:.1f} s)\narguments:\n{arguments}")
    context.output.info(f"result:\n{record.result}")
    return CONTINUE
