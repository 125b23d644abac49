"""One generic typed registry for methods, benchmarks, judges and model backends.

Entries are registered by decorator and looked up by name; an unknown name fails
with a did-you-mean suggestion (as lm-evaluation-harness does).
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from distillbench.core.errors import UserInputError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    family: str = ""
    paper: str = ""
    summary: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()  # other names that find this entry (another spelling in common use)


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}  # alias -> registered name

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

    def entry(self, name: str) -> Entry[T]:
        """The entry registered as `name` or under an alias `name` (its `.name` is the registered one)."""
        _load_builtins()
        try:
            return self._entries[self._aliases.get(name, name)]
        except KeyError:
            raise UserInputError(self.unknown_message(name)) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._entries), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(self._entries))}"
        return f"unknown {self.kind} {name!r}{hint}"

    def __contains__(self, name: str) -> bool:
        _load_builtins()
        return self._aliases.get(name, name) in self._entries

    def entries(self, family: str | None = None) -> Iterator[Entry[T]]:
        _load_builtins()
        for name in sorted(self._entries):
            entry = self._entries[name]
            if family is None or entry.family == family:
                yield entry

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]


def _first_docstring_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


METHODS: Registry[type] = Registry("method")
BENCHMARKS: Registry[type] = Registry("benchmark")
JUDGES: Registry[type] = Registry("judge")
MODEL_BACKENDS: Registry[Callable] = Registry("model backend")
# Kinds of student (`distillbench.core.kind.StudentKind` subclasses), named by a recipe's `kind`.
KINDS: Registry[type] = Registry("kind")

_loaded = False


def _load_builtins() -> None:
    """Import the packages whose modules register the built-in entries (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import distillbench.benchmarks  # noqa: F401
    import distillbench.benchmarks.judges  # noqa: F401
    import distillbench.core.models  # noqa: F401
    import distillbench.methods  # noqa: F401
    import distillbench.kinds.text_lm.kind  # noqa: F401
    import distillbench.kinds.image_classifier.kind  # noqa: F401
    import distillbench.kinds.retrieval.kind  # noqa: F401
