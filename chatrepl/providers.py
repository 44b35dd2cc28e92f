"""Named OpenAI-compatible servers, and which key belongs to which.

A model is named `PROVIDER:MODEL` (`groq:llama-3.3-70b-versatile`, `ollama:qwen3:8b`) or
bare (`gpt-4.1`), the bare form going to the default server (OPENAI_BASE_URL, or OpenAI).
A provider's key is read from the variable its `api_key_env` names and is sent to its own
base URL only.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chatrepl.options import OPENAI_URL, check_table

if TYPE_CHECKING:
    from chatrepl.client import ChatClient
    from chatrepl.config import Settings

BUILT_IN_SOURCE = "built in"


@dataclass(frozen=True)
class Provider:
    """An OpenAI-compatible server with a name, and the variable that holds its key."""

    name: str
    base_url: str
    api_key_env: str | None = None  # the variable holding its key; None for a server that needs none
    models: tuple[str, ...] = ()  # the models to offer; empty: ask the server
    source: str = BUILT_IN_SOURCE
    azure_api_version: str | None = None  # an Azure OpenAI resource: its API version (models are deployments)


# Common local servers at their usual addresses, so `-m ollama:qwen3` works with nothing set up.
BUILT_IN = {
    provider.name: provider
    for provider in (
        Provider("ollama", "http://127.0.0.1:11434/v1"),
        Provider("lmstudio", "http://127.0.0.1:1234/v1"),
        Provider("llamacpp", "http://127.0.0.1:8080/v1"),
        Provider("vllm", "http://127.0.0.1:8000/v1"),
    )
}
_KEYS = {"type": str, "base_url": str, "api_key_env": str, "api_version": str, "models": list}
AZURE_KEY_ENV = "AZURE_OPENAI_API_KEY"


def check_entry(name: str, entry: Any, where: str) -> Provider:
    """A provider from a config file's `[providers.NAME]` table; ValueError names the file, key and problem."""
    place = f"{where}: providers.{name}"
    check_table(entry, _KEYS, place, "base_url", "provider setting")
    if not name or not all(char.isalnum() or char in "-_." for char in name):
        raise ValueError(f"{place}: a provider's name is letters, digits, '-', '_' and '.'")
    base_url = entry.get("base_url", "")
    if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
        raise ValueError(f"{place}.base_url: expected an http:// or https:// address, got {base_url!r}")
    models = entry.get("models", [])
    if not all(isinstance(model, str) and model for model in models):
        raise ValueError(f"{place}.models: expected a list of model names, got {models!r}")
    kind, api_version = entry.get("type", "openai"), entry.get("api_version", "").strip()
    if kind not in ("openai", "azure"):
        raise ValueError(f'{place}.type: expected "openai" or "azure", got {kind!r}')
    if (kind == "azure") != bool(api_version):
        problem = "an Azure provider needs its api_version" if api_version == "" else "api_version is for type azure"
        raise ValueError(f"{place}.api_version: {problem}")
    key_env = entry.get("api_key_env") or (AZURE_KEY_ENV if kind == "azure" else None)
    return Provider(name, base_url.rstrip("/"), key_env, tuple(models), where, api_version or None)


def catalogue(configured: Mapping[str, Provider]) -> dict[str, Provider]:
    """The built-in providers, replaced or joined by the user's."""
    return {**BUILT_IN, **configured}


def split_model(name: str, providers: Mapping[str, Provider]) -> tuple[Provider | None, str]:
    """The provider a model name chooses (None: the default server) and the model's own name.
    Only a known provider's name counts as a prefix, so `qwen3:8b` stays a bare name."""
    prefix, colon, model = name.partition(":")
    if colon and model and prefix in providers:
        return providers[prefix], model
    return None, name


class MissingKey(ValueError):
    """The variable that holds a provider's key is not set."""


def key_for(provider: Provider, keys: Mapping[str, str]) -> str | None:
    """The provider's key from `keys` (the environment and .env); MissingKey names the variable if unset."""
    if provider.api_key_env is None:
        return None
    key = keys.get(provider.api_key_env, "").strip()
    if not key:
        raise MissingKey(f"{provider.api_key_env} is not set: it holds the key of provider {provider.name}")
    return key


class Connections:
    """A client for each server a session talks to: the settings' own server, and each provider's
    with that provider's key, each made when first needed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.providers = catalogue(settings.providers)
        self.keys = settings.provider_keys
        self._clients: dict[str, ChatClient] = {}

    @functools.cached_property
    def default(self) -> ChatClient:
        """The settings' server's client; the client module is not imported before the prompt is up."""
        from chatrepl.client import ChatClient, account_headers

        settings = self.settings
        return ChatClient(
            settings.api_key, settings.base_url, settings.timeout, settings.connect_timeout, account_headers()
        )

    def split(self, model: str) -> tuple[Provider | None, str]:
        return split_model(model, self.providers)

    def url(self, model: str) -> str:
        """Where requests for `model` go."""
        provider, _ = self.split(model)
        return provider.base_url if provider is not None else self.settings.base_url or OPENAI_URL

    def client(self, model: str) -> ChatClient:
        """The client for the server `model` names; MissingKey if its provider's key variable is unset."""
        provider, _ = self.split(model)
        if provider is None:
            return self.default
        if provider.name not in self._clients:
            self._clients[provider.name] = client_for(
                provider, self.keys, self.settings.timeout, self.settings.connect_timeout
            )
        return self._clients[provider.name]


CHECK_TIMEOUT = 3.0  # seconds a provider has to answer `--providers`


def report(settings: Settings) -> str:
    """`--providers`: each provider (the default server first), where it comes from, its key, and
    whether it answers (all asked at once, each for at most CHECK_TIMEOUT seconds)."""
    from concurrent.futures import ThreadPoolExecutor

    default = Provider(
        "(default)", settings.base_url or OPENAI_URL, "OPENAI_API_KEY", source=settings.sources.get("base_url", "")
    )
    every = [default, *catalogue(settings.providers).values()]
    keys = {**settings.provider_keys, "OPENAI_API_KEY": settings.api_key or ""}
    with ThreadPoolExecutor(max_workers=len(every)) as pool:
        answers = list(pool.map(lambda provider: _answers(provider, keys), every))
    rows = [("provider", "base URL", "from", "key", "answers")]
    for provider, answer in zip(every, answers, strict=True):
        variable = provider.api_key_env
        key = "none needed" if variable is None else f"{variable} {'set' if keys.get(variable) else 'not set'}"
        rows.append((provider.name, provider.base_url, provider.source or "OpenAI", key, answer))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    return "\n".join(
        "  ".join(row[column].ljust(width) for column, width in enumerate(widths)) + f"  {row[4]}" for row in rows
    )


def client_for(provider: Provider, keys: Mapping[str, str], timeout: float, connect_timeout: float) -> ChatClient:
    """A client for the provider's server with its own key (MissingKey if its variable is unset)."""
    from chatrepl.client import ChatClient

    key = key_for(provider, keys)
    return ChatClient(key, provider.base_url, timeout, connect_timeout, azure_api_version=provider.azure_api_version)


def server_models(provider: Provider, keys: Mapping[str, str], timeout: float) -> list[str]:
    """The models the provider's server lists, asked with its own key within `timeout` seconds;
    MissingKey without its key, ChatError when it does not answer."""
    return client_for(provider, keys, timeout, timeout).list_models()


def _answers(provider: Provider, keys: Mapping[str, str]) -> str:
    """Whether the provider's server answers a model list: `yes (12 models)`, or why not."""
    from chatrepl.client import ChatError

    try:
        return f"yes ({len(server_models(provider, keys, CHECK_TIMEOUT))} models)"
    except MissingKey:
        return "not asked (no key)"
    except ChatError as err:
        return f"no: {err.message.removeprefix(f'cannot reach {provider.base_url}: ')}"
