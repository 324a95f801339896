"""The pluggy plugin manager: built-ins, entry-point plugins, and the name tables they fill."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from doge import hooks
from doge.errors import DogeError

if TYPE_CHECKING:
    from doge.registry.readable import ReadableRegistry

RegistryT = TypeVar("RegistryT", bound="ReadableRegistry")

ENTRY_POINT_GROUP = "doge"

# Built-ins register through the same hooks as third-party plugins.
BUILTIN_PLUGINS = (
    "doge.plugins.clip_encoder",
    "doge.plugins.clip_text",
    "doge.plugins.efficientnet_encoder",
    "doge.plugins.estimators",
    "doge.plugins.controls",
)

KINDS = ("encoders", "text_encoders", "estimators", "controls")


@dataclass(frozen=True)
class Registration:
    kind: str
    name: str
    obj: Any
    plugin: str


_manager: pluggy.PluginManager | None = None
_tables: dict[str, dict[str, Registration]] = {}
_origins: dict[str, str] = {}  # entry-point plugin name -> "distribution version"


def _allowed_plugins() -> set[str] | None:
    value = os.environ.get("DOGE_LOAD_PLUGINS")
    if value is None:
        return None
    return {item.strip() for item in value.split(",") if item.strip()}


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    from importlib.metadata import entry_points

    allowed = _allowed_plugins()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin names itself, not a traceback
            raise DogeError(
                f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}; "
                "set DOGE_LOAD_PLUGINS to the plugins you want, or empty for none"
            ) from exc
        pm.register(plugin, name=ep.name)
        _origins[ep.name] = f"{ep.dist.name} {ep.dist.version}" if ep.dist else ep.value


def get_manager() -> pluggy.PluginManager:
    global _manager
    if _manager is None:
        pm = pluggy.PluginManager("doge")
        pm.add_hookspecs(hooks)
        for module_name in BUILTIN_PLUGINS:
            pm.register(importlib.import_module(module_name), name=module_name)
        _load_entry_points(pm)
        _manager = pm
    return _manager


def register_plugin(plugin: Any, name: str | None = None) -> None:
    """Register a plugin object at run time (tests, notebooks); the name tables are rebuilt."""
    get_manager().register(plugin, name=name)
    _tables.clear()


def unregister_plugin(name: str) -> None:
    pm = get_manager()
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    _tables.clear()


def plugin_origin(plugin_name: str) -> str:
    if plugin_name in _origins:
        return _origins[plugin_name]
    return "built-in" if plugin_name.startswith("doge.") else "registered at run time"


def _collect(kind: str) -> dict[str, Registration]:
    pm = get_manager()
    table: dict[str, Registration] = {}
    hook = getattr(pm.hook, f"register_{kind}")
    for impl in reversed(hook.get_hookimpls()):  # registration order
        plugin_name = impl.plugin_name

        def register(name: str, obj: Any, _plugin=plugin_name) -> None:
            if name in table:
                raise DogeError(
                    f"two plugins register the {kind[:-1]} {name!r}: {table[name].plugin} and {_plugin}; "
                    "uninstall one, or leave it out with DOGE_LOAD_PLUGINS"
                )
            table[name] = Registration(kind, name, obj, _plugin)

        impl.function(register=register)
    return table


def table(kind: str) -> dict[str, Registration]:
    if kind not in _tables:
        _tables[kind] = _collect(kind)
    return _tables[kind]


def get(kind: str, name: str) -> Any:
    entries = table(kind)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise DogeError(f"unknown {kind[:-1]} {name!r}; known: {known} (see 'doge plugins')")
    return entries[name].obj


# -- a plugin's options ---------------------------------------------------------------------

# Arguments that doge itself passes, so never options: an estimator's embeddings, a control's
# map folder and device.
_NOT_OPTIONS = {"estimators": ("src", "tgt"), "controls": ("self", "control_dir", "device")}


@dataclass(frozen=True)
class Option:
    default: Any
    annotation: str = ""  # as written in the signature ("float | str"), "" when not declared


def options(kind: str, name: str) -> dict[str, Option]:
    """The options plugin ``name`` takes, with their defaults.

    A control that declares a ``defaults`` table (see :class:`doge.plugin.Control`)
    takes those; otherwise the options are the keyword arguments with a default of the estimator
    function or of the control's constructor.
    """
    obj = get(kind, name)
    declared = getattr(obj, "defaults", None)
    if kind == "controls" and isinstance(declared, dict):
        return {key: Option(value) for key, value in declared.items()}
    try:
        signature = inspect.signature(obj)  # a class: its constructor's, without self
    except (TypeError, ValueError):  # a builtin or C callable: no options to offer
        return {}
    return {
        p.name: Option(
            p.default, p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        )
        for p in signature.parameters.values()
        if p.name not in _NOT_OPTIONS.get(kind, ())
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.default is not p.empty
    }


def check_options(kind: str, name: str, given: dict | None) -> dict[str, Any]:
    """``given`` (a Python caller's values), refused in one line if it names an option the plugin lacks."""
    known = options(kind, name)
    unknown = sorted(set(given or {}) - set(known))
    if unknown:
        listed = ", ".join(f"{k}={v.default!r}" for k, v in sorted(known.items())) or "none"
        raise DogeError(f"the {name} {kind[:-1]} has no option {', '.join(unknown)}; its options: {listed}")
    return dict(given or {})


def parse_options(kind: str, name: str, pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Options given as text (``trim``, ``"0.2"``), checked against plugin ``name``'s and each parsed
    to the type of its default: bool, int, float, else text (a number where the signature
    allows one, as ``shrinkage: float | str = "auto"``)."""
    known = options(kind, name)
    parsed = {}
    for key, text in pairs:
        check_options(kind, name, {key: None})
        parsed[key] = _parse_value(text, known[key], f"{name}.{key}")
    return parsed


def _parse_value(text: str, option: Option, what: str) -> Any:
    default = option.default
    try:
        if isinstance(default, bool):
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        kind = (
            "true or false"
            if isinstance(default, bool)
            else "a whole number"
            if isinstance(default, int)
            else "a number"
        )
        raise DogeError(f"option {what}={text!r}: give {kind}, like its default {default!r}") from None
    for number in (int, float):
        if number.__name__ in option.annotation:
            try:
                return number(text)
            except ValueError:
                pass
    return text


def register_commands(cli) -> None:
    get_manager().hook.register_commands(cli=cli)


def describe() -> dict[str, list[dict[str, str]]]:
    """What is loaded and from where, for ``doge plugins``."""
    out: dict[str, list[dict[str, str]]] = {}
    for kind in KINDS:
        out[kind] = [
            {"name": r.name, "plugin": r.plugin, "origin": plugin_origin(r.plugin)} for r in table(kind).values()
        ]
    return out


def forward_gap_events(registry: RegistryT) -> RegistryT:
    """Connect ``registry``'s commits to the plugins' ``gap_event`` hook, and return it.

    The registry imports no plugin: the layers that open one (the CLI, ``doge serve``, the ``doge``
    functions) call this. Plugins are loaded at the first commit, not here. A registry read over
    HTTP (no ``on_commit``: it cannot be written) is returned as it is.
    """
    if hasattr(registry, "on_commit"):
        registry.on_commit(fire_gap_events)
    return registry


def fire_gap_events(events: list[dict], registry: str) -> None:
    """Call every plugin's ``gap_event`` for each committed change; a plugin's failure is a warning.

    A registry calls this after each commit that recorded history (doge serve's writes too) once
    :func:`forward_gap_events` connected it.
    """
    hook = get_manager().hook.gap_event
    if not hook.get_hookimpls():
        return
    for event in events:
        for impl in hook.get_hookimpls():
            try:
                impl.function(event=event, registry=registry)
            except Exception as exc:  # the change is committed; a broken notifier must not undo the command
                logging.getLogger("doge").warning(
                    "plugin %s: gap_event for %s %s failed: %s", impl.plugin_name, event["action"], event["name"], exc
                )
