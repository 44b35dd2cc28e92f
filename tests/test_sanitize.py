"""Nothing from outside may steer the terminal."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from chatrepl.sanitize import sanitize

DANGEROUS = {
    chr(code) for code in [*range(0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
}
SAFE_CONTROLS = {"\n", "\t"}


def test_known_attacks_are_made_visible() -> None:
    assert sanitize("\x1b]52;c;ZXZpbA==\x07") == "^[]52;c;ZXZpbA==^G"  # write the clipboard
    assert sanitize("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\") == "^[]8;;http://evil^[\\link^[]8;;^[\\"
    assert sanitize("\x1b[2J\x1b[H\x1b[6n") == "^[[2J^[[H^[[6n"  # clear screen, home, status query
    assert sanitize("\x9b31m") == "<U+009B>31m"  # C1 CSI
    assert sanitize("abc\u202eevil") == "abc<U+202E>evil"  # bidi override
    assert sanitize("over\rwrite") == "overwrite"
    assert sanitize("tab\tnew\nline 你好 é") == "tab\tnew\nline 你好 é"


@given(st.text())
def test_no_dangerous_character_survives(text: str) -> None:
    cleaned = sanitize(text)
    assert not (set(cleaned) & (DANGEROUS - SAFE_CONTROLS))


@given(st.text(), st.lists(st.integers(min_value=0), max_size=10))
def test_any_chunking_gives_the_same_result(text: str, cuts: list[int]) -> None:
    points = sorted({cut % (len(text) + 1) for cut in cuts} | {0, len(text)})
    chunks = [text[a:b] for a, b in itertools.pairwise(points)]
    assert "".join(sanitize(chunk) for chunk in chunks) == sanitize(text)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs"))))
def test_ordinary_text_is_untouched(text: str) -> None:
    assert sanitize(text) == text
