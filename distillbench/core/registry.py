"""One generic typed registry for methods, benchmarks, judges, model backends and kinds of student.

Entries are registered by decorator and looked up by name; an unknown name fails
with a did-you-mean suggestion (as lm-evaluation-harness does).

The registry is lazy. A registry with a plug-in `group` knows where each name lives
before anything registers it: the built-ins from the one plug-in list,
`distillbench.plugins` (read by name, so the core imports no code outside the core),
and third-party packages from the entry points of group ``distillbench.<group>``.
Both say "name": "module:object". Looking a name up imports only that module; its
decorator registers the entry. An entry point whose object is not decorated is
registered by the entry point itself. Listing the entries imports all of them.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, Callable, Generic, Iterator, TypeVar

from distillbench.core.errors import UserInputError

T = TypeVar("T")

PLUGIN_LIST = "distillbench.plugins"  # its BUILTINS: group -> {name: "module:object"}
THIRD_PARTY = "third-party"  # the family of an undecorated entry point object without a `family` attribute


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    family: str = ""
    paper: str = ""
    summary: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()  # other names that find this entry (another spelling in common use)


@dataclass(frozen=True)
class Plugin:
    """Where a name lives before it is registered: "module:object", and who says so."""

    target: str
    origin: str  # PLUGIN_LIST for a built-in, else the distribution that declares the entry point

    @property
    def builtin(self) -> bool:
        return self.origin == PLUGIN_LIST

    def __str__(self) -> str:
        return f"{self.target} ({self.origin})"


class Registry(Generic[T]):
    def __init__(self, kind: str, group: str | None = None):
        self.kind = kind
        self.group = group  # plug-in group (plug-in list key, entry point group distillbench.<group>); None: none
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}  # alias -> registered name
        self._plugins: dict[str, Plugin] | None = None  # read on first lookup, not at import
        self._clashes: dict[str, str] = {}  # name -> why two plug-ins claim it

    def register(self, name: str, *, family: str = "", paper: str = "", summary: str = "",
                 aliases: tuple[str, ...] = (), **extra: Any) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name].obj is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            taken = [a for a in aliases if a in self._entries or self._aliases.get(a, name) != name]
            if taken:
                raise ValueError(f"{self.kind} alias {taken[0]!r} names another entry")
            text = summary or _first_docstring_line(obj)
            self._entries[name] = Entry(name, obj, family, paper, text, dict(extra), tuple(aliases))
            self._aliases.update(dict.fromkeys(aliases, name))
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        """Forget the entry registered as `name` and its aliases (tests that register their own)."""
        entry = self._entries.pop(name, None)
        if entry is not None:
            for alias in entry.aliases:
                del self._aliases[alias]

    def refresh(self) -> None:
        """Read the plug-in list and the installed entry points again (after installing a package)."""
        self._plugins, self._clashes = None, {}

    def entry(self, name: str) -> Entry[T]:
        """The entry registered as `name` or under an alias `name` (its `.name` is the registered one)."""
        plugins = self._plugin_index()
        if name in self._clashes:
            raise UserInputError(self._clashes[name])
        if self._registered(name) is None and name in plugins:
            self._load(name, plugins[name])
        found = self._registered(name)
        if found is None:
            raise UserInputError(self.unknown_message(name))
        return found

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def unknown_message(self, name: str) -> str:
        known = set(self._entries) | set(self._plugin_index())
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"
        return f"unknown {self.kind} {name!r}{hint}"

    def __contains__(self, name: str) -> bool:
        return self._registered(name) is not None or name in self._plugin_index()

    def entries(self, family: str | None = None) -> Iterator[Entry[T]]:
        """Every entry (of `family`), sorted by name: imports every plug-in."""
        self._load_all()
        for name in sorted(self._entries):
            entry = self._entries[name]
            if family is None or entry.family == family:
                yield entry

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]

    def name_of(self, obj: T) -> str:
        """The name `obj` is registered under (imports nothing: an object exists once its module has run)."""
        names = self._names_of(obj)
        if not names:
            raise KeyError(f"{obj!r} is not a registered {self.kind}")
        return names[0]

    def _names_of(self, obj: T) -> list[str]:
        return [entry.name for entry in self._entries.values() if entry.obj is obj]

    def _registered(self, name: str) -> Entry[T] | None:
        return self._entries.get(self._aliases.get(name, name))

    def _plugin_index(self) -> dict[str, Plugin]:
        if self._plugins is None:
            self._plugins, self._clashes = _read_plugins(self.kind, self.group)
        return self._plugins

    def _load_all(self) -> None:
        """Load every plug-in, checking each listed name, registered already or not, against its object."""
        plugins = self._plugin_index()
        if self._clashes:
            raise UserInputError("; ".join(self._clashes.values()))
        for name, plugin in plugins.items():
            self._load(name, plugin)

    def _load(self, name: str, plugin: Plugin) -> None:
        """Import the plug-in's module (its decorator registers `name`) and check it registered this object."""
        obj = _import_object(plugin)
        registered, others = self._registered(name), self._names_of(obj)
        if registered is not None and registered.obj is obj:
            return
        if registered is None and not others and not plugin.builtin:
            self.register(name, family=_family(obj))(obj)  # an undecorated third-party object: registered here
            return
        if registered is not None:
            problem = f"{name!r} is registered as {registered.obj!r}, another object"
        else:
            problem = f"that object is registered as {others[0]!r}" if others else f"nothing registers {name!r}"
        raise RuntimeError(f"{self.kind} {name!r} is listed as {plugin}, but {problem}")


def _read_plugins(kind: str, group: str | None) -> tuple[dict[str, Plugin], dict[str, str]]:
    """Name -> plug-in for `group`: the built-ins, then the entry points; and the names two plug-ins claim."""
    if group is None:
        return {}, {}
    import importlib.metadata  # ~30 ms (email, zipfile, ...): paid at the first lookup, not by every import

    builtins = importlib.import_module(PLUGIN_LIST).BUILTINS.get(group, {})
    plugins = {name: Plugin(target, PLUGIN_LIST) for name, target in builtins.items()}
    clashes = {}
    for point in importlib.metadata.entry_points(group=f"distillbench.{group}"):
        found = Plugin(f"{point.module}:{point.attr}", _distribution(point))
        known = plugins.setdefault(point.name, found)
        if known.target != found.target:
            clashes[point.name] = (f"{kind} {point.name!r}: the entry point {found} clashes with the "
                                   f"{'built-in' if known.builtin else 'entry point'} {known}; rename the entry point")
    return plugins, clashes


def _distribution(point: importlib.metadata.EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    return f"distribution {dist.name}" if dist is not None else "an entry point"


def load_builtin(target: str) -> Any:
    """The object a built-in "module:object" target of the plug-in list names, its module imported now."""
    return _import_object(Plugin(target, PLUGIN_LIST))


def _import_object(plugin: Plugin) -> Any:
    module, _, attr = plugin.target.partition(":")
    try:
        return reduce(getattr, attr.split("."), importlib.import_module(module))
    except (ImportError, AttributeError) as exc:
        exc.add_note(f"while loading the plug-in {plugin}")
        raise


def _family(obj: Any) -> str:
    family = getattr(obj, "family", None)
    return family if isinstance(family, str) and family else THIRD_PARTY


def _first_docstring_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


METHODS: Registry[type] = Registry("method", group="methods")
BENCHMARKS: Registry[type] = Registry("benchmark", group="benchmarks")
JUDGES: Registry[type] = Registry("judge", group="judges")
MODEL_BACKENDS: Registry[Callable] = Registry("model backend", group="model_backends")
# Kinds of student (`distillbench.core.kind.StudentKind` subclasses), named by a recipe's `kind`.
KINDS: Registry[type] = Registry("kind", group="kinds")
# Reports over several runs (`distillbench.leaderboards.reports.Report` subclasses), named by `distillbench report`.
REPORTS: Registry[type] = Registry("report", group="reports")

# The architectures ``arch:<name>`` builds with fresh weights: name -> a network class, called as
# obj(num_classes=..., **extra["arguments"], **options); extra "head": the module path of its final linear layer.
ARCHITECTURES: Registry[Callable] = Registry("classifier architecture", group="architectures")

# What the pocket worlds provide, registered by them and looked up by name, so that the core, the kinds,
# methods and benchmarks never import a pocket world:
# models a reference ``pocket:<name>`` names: name -> ensure_built(name), the folder of a verified build
# (the family says what the model is, as the benchmark families do);
POCKET_MODELS: Registry[Callable] = Registry("pocket model", group="pocket_models")
# data sources ``pocket:<name>``: name -> a reader, called as its family says (the kind reading that family
# knows); extra "fingerprint"(name) is what a cell key records of the source;
POCKET_DATA: Registry[Callable] = Registry("pocket dataset", group="pocket_data")
# frozen networks that methods and benchmarks load beside the recipe's models (teachers of their own,
# feature extractors, detectors): name -> a loader.
POCKET_NETWORKS: Registry[Callable] = Registry("pocket network", group="pocket_networks")

REGISTRIES: dict[str, Registry] = {r.group: r for r in (METHODS, BENCHMARKS, JUDGES, MODEL_BACKENDS, KINDS, REPORTS,
                                                        ARCHITECTURES, POCKET_MODELS, POCKET_DATA, POCKET_NETWORKS)}
