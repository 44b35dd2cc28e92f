"""Commands about what goes with the next message: text files and images, listed and detached."""

from __future__ import annotations

from chatrepl.attachments import AttachError, read_files, read_images
from chatrepl.commands.base import CONTINUE, Context, Outcome, one


def _file(context: Context, argument: tuple[list[str], str]) -> Outcome:
    patterns, question = argument
    if not patterns:
        context.output.error("usage: /file PATH… [QUESTION] (globs work; quote a path with spaces)")
        return CONTINUE
    pending = context.screen.attachments
    files, problems = read_files(patterns, pending.file_room(), _no_stdin)
    pending.items.extend(files)
    return _attached(context, [file.describe() for file in files], problems, question)


def _image(context: Context, argument: tuple[list[str], str]) -> Outcome:
    specs, question = argument
    if not specs:
        context.output.error("usage: /image PATH|URL… [QUESTION] (PNG, JPEG, WEBP or GIF)")
        return CONTINUE
    refusal = context.session.image_refusal()
    if refusal:
        context.output.error(refusal)
        return CONTINUE
    pending = context.screen.attachments
    images, problems = read_images(specs, pending.image_limit, _no_stdin)
    pending.items.extend(images)
    return _attached(context, [image.describe() for image in images], problems, question)


def _no_stdin(limit: int) -> bytes:
    raise AttachError("- (standard input) is for --file and --image on the command line")


def _attached(context: Context, added: list[str], problems: list[str], question: str) -> Outcome:
    """Report what was attached and what was not; send the question if all went, else offer it again."""
    for problem in problems:
        context.output.error(problem)
    if question and not problems:
        return Outcome(send=question)
    if question:
        context.screen.pending = question
    if added:
        context.output.note(f"{', '.join(added)} {'goes' if len(added) == 1 else 'go'} with your next message")
    return CONTINUE


def _attachments(context: Context, words: list[str]) -> Outcome:
    items = context.screen.attachments.items
    if not items:
        context.output.note("nothing is attached (/file and /image attach)")
    for number, item in enumerate(items, 1):
        context.output.info(f"{number:>3}  {item.describe()}")
    return CONTINUE


def _detach(context: Context, words: list[str]) -> Outcome:
    items = context.screen.attachments.items
    number = one(words)
    if not number:
        context.output.note(f"detached {len(items)} attachment(s)" if items else "nothing is attached")
        items.clear()
    elif not number.isdigit() or not 1 <= int(number) <= len(items):
        choice = "nothing is attached" if not items else f"the attachments are numbered 1 to {len(items)}"
        context.output.error(f"/detach N: {choice} (/attachments lists them)")
    else:
        context.output.note(f"detached {items.pop(int(number) - 1).describe()}")
    return CONTINUE
