"""Make any outside text safe to put on a terminal.

Every character that could steer the terminal is replaced by a visible stand-in:
C0 controls (but newline and tab) and DEL in caret notation (ESC becomes ``^[``, so
no escape sequence can start), C1 controls and bidirectional overrides as ``<U+XXXX>``.
Carriage returns are dropped so a line cannot be overwritten.  The mapping is per
character, so a sequence split across two chunks of a stream is caught as well.

Secrets (the API key, a password in the base URL) are registered once with
`keep_secret` and shown masked wherever they would appear, `--debug` tracebacks included.
"""

from __future__ import annotations

_BIDI_CONTROLS = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
# Every character that can steer a terminal: C0 controls (newline and tab aside), DEL, C1, bidi overrides.
STEERING = [*(code for code in range(0x20) if chr(code) not in "\n\t"), 0x7F, *range(0x80, 0xA0), *_BIDI_CONTROLS]


def _build_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {code: "^" + chr(code + 0x40) for code in range(0x20)}
    del table[ord("\n")], table[ord("\t")]
    table[ord("\r")] = None
    table[0x7F] = "^?"
    for code in [*range(0x80, 0xA0), *_BIDI_CONTROLS]:
        table[code] = f"<U+{code:04X}>"
    return table


_TABLE = _build_table()


_SECRETS: dict[str, str] = {}  # secret -> how it is shown


def keep_secret(secret: str | None, shown: str) -> None:
    """From now on, show `secret` as `shown` in everything sanitized."""
    if secret:
        _SECRETS[secret] = shown


def sanitize(text: str) -> str:
    """Return `text` with every terminal-controlling character made visible or removed, and secrets masked."""
    for secret, shown in _SECRETS.items():
        text = text.replace(secret, shown)
    return text.translate(_TABLE)


_STRIPPED = dict.fromkeys(STEERING)


def strip_controls(text: str) -> str:
    """`text` without any character that could steer a terminal, for files a person may `cat`."""
    return text.translate(_STRIPPED)


_ESCAPED = {code: f"\\u{code:04X}" for code in STEERING}


def escape_controls(encoded: str) -> str:
    """JSON or TOML text with each character that could steer a terminal written as a \\uXXXX escape
    (json.dumps escapes C0 controls itself, but not DEL, C1 or bidirectional overrides)."""
    return encoded.translate(_ESCAPED)
