"""How a hub event class becomes its wire codec: the field shapes, ``wire`` and ``@event``.

A field's ``Shape`` says how it travels and how its JSON value is checked on the way
in (``check`` raises BadMessage naming the field; ``fast``, when set, is the inline test
that lets the generated decoder skip the call). ``@event(tag, topic=...)`` makes a class
a frozen, slotted dataclass, then generates from its fields one encoder, one decoder and
a constructor that stores through the slots, and enters it in ``EVENT_TYPES``. The
events themselves, and ``encode``/``decode``, are hub.events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, dataclass_transform, get_type_hints

import orjson

from hub.decimals import Unit
from hub.errors import BadMessage

# -- field shapes: how one field travels and how it is checked on the way in --------------


class Shape:
    """How a field travels on the wire: as its own value, unless ``encoded`` says otherwise.

    ``check`` turns the JSON value of field ``key`` into the field's value or raises
    BadMessage naming the key. ``fast``, when set, is a condition on ``{v}`` that holds
    exactly when ``check`` would accept ``{v}`` unchanged: the generated decoder tests it
    inline and calls ``check`` only to raise."""

    fast: str | None = None
    attrs = 1
    """How many consecutive fields of the class this one wire value holds."""

    def encoded(self, values: list[str]) -> str:
        """Source of the JSON value of the fields whose values' sources are ``values``."""
        return values[0]

    def check(self, key: str, value: Any) -> Any:
        raise NotImplementedError


class Integer(Shape):
    fast = "type({v}) is int"

    def check(self, key: str, value: Any) -> int:
        if type(value) is not int:
            raise BadMessage(f"field {key!r} must be an integer, got {value!r}")
        return value


class Text(Shape):
    fast = "type({v}) is str and {v}"

    def check(self, key: str, value: Any) -> str:
        if type(value) is not str or not value:
            raise BadMessage(f"field {key!r} must be a non-empty string, got {value!r}")
        return value


class Note(Shape):
    """Free text that may be missing (read as "") and is never refused."""

    def check(self, key: str, value: Any) -> str:
        return "" if value is None else str(value)


class Choice(Shape):
    """One of ``values``, all of one type; ``what`` is the refusal's text when not."""

    def __init__(self, values: tuple[Any, ...], what: str = "") -> None:
        self.values, self.kind, self.what = values, type(values[0]), what

    def check(self, key: str, value: Any) -> Any:
        if type(value) is not self.kind or value not in self.values:
            what = self.what or f"field {key!r} must be one of {', '.join(map(str, self.values))}"
            raise BadMessage(f"{what}, got {value!r}")
        return value


class UnitSize(Shape):
    """A positive decimal string, such as an instrument's tick size "0.01"."""

    def check(self, key: str, value: Any) -> str:
        text = TEXT.check(key, value)
        try:
            unit(text)
        except ValueError as exc:
            raise BadMessage(f"field {key!r}: {exc}") from None
        return text


class Digits(Shape):
    """A non-negative integer that may not fit 64 bits, sent as a string of digits."""

    def encoded(self, values: list[str]) -> str:
        return f"str({values[0]})"

    def check(self, key: str, value: Any) -> int:
        if not isinstance(value, str) or not (value.isascii() and value.isdigit()):
            raise BadMessage(f"field {key!r} must be a string of digits, got {value!r}")
        return int(value)


class Levels(Shape):
    """A list of entries of ``width`` integers (or ``kind``) each (levels, level changes,
    orders), read as a tuple of tuples; ``entry`` says whether one (checked for width)
    makes sense."""

    def __init__(
        self, width: int, entry: Callable[[list[Any]], bool] | None = None, kind: type = int
    ) -> None:
        self.width, self.entry, self.kind = width, entry, kind

    def check(self, key: str, value: Any) -> tuple[tuple[Any, ...], ...]:
        if not isinstance(value, list):
            raise BadMessage(f"field {key!r} must be a list, got {type(value).__name__}")
        width, entry, kind = self.width, self.entry, self.kind
        for item in value:
            if type(item) is not list or len(item) != width:
                raise BadMessage(f"field {key!r}: bad entry {item!r}")
            for x in item:
                if type(x) is not kind:
                    raise BadMessage(f"field {key!r}: bad entry {item!r}")
            if entry is not None and not entry(item):
                raise BadMessage(f"field {key!r}: bad entry {item!r}")
        return tuple(map(tuple, value))


class Packed(Shape):
    """Consecutive integer fields that travel as one JSON array under ``key``, one part per
    field (``"bid":[price,size]``), each part at least 0 when ``non_negative``."""

    def __init__(self, key: str, parts: tuple[str, ...], non_negative: bool = False) -> None:
        self.key, self.parts, self.attrs = key, parts, len(parts)
        self.low = 0 if non_negative else None

    def encoded(self, values: list[str]) -> str:
        return f"[{', '.join(values)}]"

    def check(self, key: str, value: Any) -> list[int]:
        low = self.low
        if (
            type(value) is not list
            or len(value) != self.attrs
            or not all(type(v) is int and (low is None or v >= low) for v in value)
        ):
            kind = "integers" if low is None else "non-negative integers"
            parts = ", ".join(self.parts)
            raise BadMessage(f"field {key!r} must be [{parts}] of {kind}, got {value!r}")
        return value


INTEGER, TEXT = Integer(), Text()
PLAIN: dict[Any, Shape] = {int: INTEGER, str: TEXT}
"""The shape of a field declared without one, by its type."""


def unit(text: str) -> Unit:
    """The Unit of a decimal string such as "0.01", made once per text."""
    made = _UNITS.get(text)
    if made is None:
        made = _UNITS[text] = Unit(text)
    return made


_UNITS: dict[str, Unit] = {}


# -- the table -----------------------------------------------------------------------------


def wire(shape: Shape, *, default: Any = dataclasses.MISSING) -> Any:
    """Declare a field that travels in ``shape`` (a field without a default unless given)."""
    return dataclasses.field(default=default, metadata={"wire": shape})


@dataclass(frozen=True, slots=True)
class EventType:
    """One declared event: its kind tag, its Kafka topic (the suffix after the prefix),
    its class and the codec generated from its fields (``source`` shows the code)."""

    tag: str
    topic: str
    cls: type
    encode: Callable[[Any], bytes]
    decode: Callable[[dict[str, Any]], Any]
    source: str


EVENT_TYPES: dict[type, EventType] = {}
"""Every event type by class, in declaration order."""
DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {}
"""Each declared event's decoder by kind tag."""
ENCODERS: dict[type, Callable[[Any], bytes]] = {}
"""Each declared event's encoder by class."""

_E = TypeVar("_E")


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, wire))
def event(tag: str, *, topic: str) -> Callable[[type[_E]], type[_E]]:
    """Declare an event class: a frozen, slotted dataclass sent as kind ``tag`` on ``topic``."""

    def declare(cls: type[_E]) -> type[_E]:
        cls = dataclass(frozen=True, slots=True)(cls)
        if tag in DECODERS:
            raise TypeError(f"{cls.__name__}: kind tag {tag!r} is already declared")
        encoder, decoder, source = _compile(cls, tag)
        EVENT_TYPES[cls] = EventType(tag, topic, cls, encoder, decoder, source)
        ENCODERS[cls], DECODERS[tag] = encoder, decoder
        return cls

    return declare


Group = tuple[str, Shape, tuple[dataclasses.Field[Any], ...]]
"""One wire value: its key, its shape and the fields of the class it holds."""


def _groups(cls: type) -> list[Group]:
    """The wire values of an event class in field order; TypeError for a field without a
    shape or a Packed shape whose fields are not together."""
    hints, fields = get_type_hints(cls), dataclasses.fields(cls)
    out: list[Group] = []
    i = 0
    while i < len(fields):
        f = fields[i]
        shape = f.metadata.get("wire") or PLAIN.get(hints[f.name])
        if shape is None:
            raise TypeError(f"{cls.__name__}.{f.name}: declare its shape with wire(...)")
        group = fields[i : i + shape.attrs]
        if len(group) < shape.attrs or any(g.metadata.get("wire") is not shape for g in group[1:]):
            raise TypeError(f"{cls.__name__}.{f.name}: {shape.attrs} fields travel together")
        out.append((shape.key if isinstance(shape, Packed) else f.name, shape, group))
        i += shape.attrs
    return out


def _encoder(name: str, tag: str, groups: list[Group]) -> list[str]:
    """Source of the encoder: one dict display, then the fields that are left out while
    None (and any after them)."""
    items, after = [f"'k': {tag!r}"], []
    for key, shape, group in groups:
        value = shape.encoded([f"e.{f.name}" for f in group])
        if group[0].default is None:
            after += [f"    if e.{group[0].name} is not None:", f"        d[{key!r}] = {value}"]
        elif after:
            after.append(f"    d[{key!r}] = {value}")
        else:
            items.append(f"{key!r}: {value}")
    display = "{" + ", ".join(items) + "}"
    if not after:
        return [f"def encode_{name}(e):", f"    return _dumps({display})"]
    return [f"def encode_{name}(e):", f"    d = {display}", *after, "    return _dumps(d)"]


def _decoder(name: str, groups: list[Group], ns: dict[str, Any]) -> list[str]:
    """Source of the decoder: each key read once (integers and strings tested inline, a
    missing key with a default takes it), then the event built through its slots."""
    lines = [f"def decode_{name}(obj):"]
    for i, (key, shape, group) in enumerate(groups):
        ns[f"_s{i}"], var = shape, f"f_{group[0].name}"
        if shape.fast is None:
            targets = ", ".join(f"f_{f.name}" for f in group)
            read = [f"{targets} = _s{i}.check({key!r}, obj.get({key!r}))"]
        else:
            test = shape.fast.format(v=var)
            read = [
                f"{var} = obj.get({key!r})",
                f"if not ({test}):",
                f"    _s{i}.check({key!r}, {var})",
            ]
        if group[0].default is not dataclasses.MISSING:
            ns[f"_d{i}"] = group[0].default
            read = [
                f"if {key!r} in obj:",
                *(f"    {r}" for r in read),
                "else:",
                f"    {var} = _d{i}",
            ]
        lines += [f"    {r}" for r in read]
    lines.append("    e = _new(_cls)")
    for f in (f for _, _, group in groups for f in group):
        ns[f"_set_{f.name}"] = getattr(ns["_cls"], f.name).__set__
        lines.append(f"    _set_{f.name}(e, f_{f.name})")
    return [*lines, "    return e"]


def _init(fields: tuple[dataclasses.Field[Any], ...], ns: dict[str, Any]) -> list[str]:
    """Source of the constructor: the dataclass's signature, each field stored through its
    slot. The frozen dataclass's own ``__init__`` stores each through
    ``object.__setattr__``, which made building a BookUpdate ~2 us, a third of the hub's
    whole cost of a one-level venue frame; this one is a third of that."""
    params = ["self"]
    for i, f in enumerate(fields):
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            ns[f"_d{i}"] = f.default
            params.append(f"{f.name}=_d{i}")
    body = [f"    _set_{f.name}(self, {f.name})" for f in fields]
    return [f"def __init__({', '.join(params)}):", *body]


def _compile(cls: type, tag: str) -> tuple[Callable[[Any], bytes], Callable[..., Any], str]:
    """Generate the encoder, decoder and constructor of an event class from its
    declaration (the constructor replaces the dataclass's ``__init__``)."""
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: decoders build events without __init__")
    groups = _groups(cls)
    ns: dict[str, Any] = {"_cls": cls, "_dumps": orjson.dumps, "_new": object.__new__}
    name = cls.__name__
    source = "\n".join(_encoder(name, tag, groups) + _decoder(name, groups, ns)) + "\n"
    exec(compile(source, f"<event {name}>", "exec"), ns)
    return ns[f"encode_{name}"], ns[f"decode_{name}"], source + _slotted_init(cls)


def slotted(cls: type[_E]) -> type[_E]:
    """A frozen, slotted dataclass with the constructor ``@event`` gives events: the same
    signature, each field stored through its slot (half the cost of the dataclass's own;
    the order path's commands use it)."""
    _slotted_init(cls)
    return cls


def _slotted_init(cls: type) -> str:
    """Replace the dataclass's ``__init__`` with one storing through the slots; its source."""
    fields = dataclasses.fields(cls)
    if "__slots__" not in cls.__dict__ or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: a slotted constructor needs slots and no __post_init__")
    for f in fields:
        if f.default_factory is not dataclasses.MISSING or f.kw_only or not f.init:
            raise TypeError(f"{cls.__name__}.{f.name}: only plain fields and plain defaults")
    ns: dict[str, Any] = {f"_set_{f.name}": getattr(cls, f.name).__set__ for f in fields}
    source = "\n".join(_init(fields, ns)) + "\n"
    exec(compile(source, f"<init {cls.__name__}>", "exec"), ns)
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]
    return source
