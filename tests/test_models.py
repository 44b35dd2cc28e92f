"""The model catalogue: prices, limits, rules, user overrides."""

from __future__ import annotations

import pytest

from chatrepl.models import Catalogue


@pytest.mark.parametrize(
    ("model", "per_thousand_in", "per_thousand_out", "context"),
    [  # the figures quoted in DESIGN.md, per 1,000 tokens
        ("gpt-4", 0.03, 0.06, 8192),
        ("gpt-4-32k", 0.06, 0.12, None),
        ("gpt-4-0125-preview", 0.01, 0.03, None),
        ("gpt-4-1106-preview", 0.01, 0.03, None),
        ("gpt-3.5-turbo-0125", 0.0005, 0.0015, 16385),
        ("gpt-3.5-turbo-instruct", 0.0015, 0.002, None),
        ("gpt-3.5-turbo", None, None, 4096),
        ("gpt-4-turbo", None, None, 128000),
    ],
)
def test_reference_prices_and_windows(
    model: str, per_thousand_in: float | None, per_thousand_out: float | None, context: int | None
) -> None:
    info = Catalogue().lookup(model)
    if per_thousand_in is not None:
        assert info.cost(1000, 0) == pytest.approx(per_thousand_in)
        assert info.cost(0, 1000) == pytest.approx(per_thousand_out)
    if context is not None:
        assert info.context == context


def test_cost_arithmetic() -> None:
    info = Catalogue().lookup("gpt-4o-mini")  # $0.15 in, $0.60 out per million
    assert info.cost(412, 1208) == pytest.approx((412 * 0.15 + 1208 * 0.60) / 1e6)
    # $0.075 per million for cached prompt tokens; a count beyond the prompt is taken as all of it
    assert info.cost(412, 1208, cached_tokens=400) == pytest.approx((12 * 0.15 + 400 * 0.075 + 1208 * 0.60) / 1e6)
    assert info.cost(412, 0, cached_tokens=999) == pytest.approx(412 * 0.075 / 1e6)
    assert Catalogue().lookup("gpt-4").cost(1000, 0, cached_tokens=1000) == pytest.approx(0.03)  # no cached price


def test_dated_versions_use_their_base_entry_and_unknown_models_have_no_price() -> None:
    catalogue = Catalogue()
    assert catalogue.lookup("gpt-4o-2024-08-06").context == 128000
    assert catalogue.lookup("gpt-4-0613").context == 8192
    unknown = catalogue.lookup("llama-3-8b")
    assert unknown.cost(100, 100) is None and unknown.context is None


def test_rules_for_reasoning_and_legacy_models() -> None:
    catalogue = Catalogue()
    assert catalogue.lookup("gpt-5-mini").max_tokens_param == "max_completion_tokens"
    assert catalogue.lookup("o3").temperature is False
    assert catalogue.lookup("gpt-3.5-turbo-instruct").api == "completions"
    assert catalogue.prices_checked


def test_user_entries_override_and_extend() -> None:
    catalogue = Catalogue({"gpt-4o": {"input_per_million": 1.0}, "my-llama": {"context": 8192}})
    assert catalogue.lookup("gpt-4o").input_per_million == 1.0
    assert catalogue.lookup("gpt-4o").output_per_million == 10.0
    assert catalogue.lookup("my-llama").context == 8192
    assert "my-llama" in catalogue.names()
    with pytest.raises(ValueError, match=r'config.toml: models."x".price: unknown model setting'):
        Catalogue({"x": {"price": 3}})


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"context": "8k"}, "context: expected a whole number, got '8k'"),
        ({"context": 8.5}, "context: expected a whole number, got 8.5"),
        ({"context": True}, "context: expected a whole number, got True"),
        ({"input_per_million": "cheap"}, "input_per_million: expected a number, got 'cheap'"),
        ({"output_per_million": -1}, "output_per_million: expected a number of at least 0, got -1"),
        ({"temperature": "no"}, "temperature: expected true or false, got 'no'"),
        ({"api": "responses"}, "api: expected chat or completions, got 'responses'"),
        ({"max_tokens_param": 5}, "max_tokens_param: expected text, got 5"),
    ],
)
def test_every_value_of_an_entry_is_checked(entry: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        Catalogue({"mine": entry}, where="/home/me/config.toml")
    assert str(caught.value) == f'/home/me/config.toml: models."mine".{problem}'
