"""A data source as a value: the text ``"folder:PATH"``, ``"pack:NAME"``, ``"synthetic:N"`` or
``"cifar10"``, parsed once, here.

The text stays the format wherever a source is written down or typed (``TrainConfig.data``, run
records, links, the CLI's ``--data``), so a record written before this module names its data as
it always did. :meth:`DataSource.parse` reads the text, refusing bad text with the messages the
loader has always given, and ``str(source)`` gives the very text back. Whatever asks what a
source *is* (a folder? which pack? how many generated images?) asks the parsed value, never the
text; :func:`source_kind` answers the one question asked of text that may name no source at all
(``"samples"``, ``"default"``, an old record's ``"?"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from explorer.data.dataset import DataError, SourceKind
from explorer.data.packs import PACK_SPECS, pack_source
from explorer.data.synthetic import SYNTHETIC_DEFAULT_SIZE, parse_synthetic_count

VALID_SOURCES = (
    '"pack:cifar10-demo" or "pack:cifar10-eval" (real CIFAR-10 images shipped with the app), '
    '"synthetic" (12,000 generated images), "synthetic:N" (N generated images), '
    '"cifar10" (torchvision\'s CIFAR-10 training set) or "folder:PATH" '
    "(an ImageFolder tree PATH/<class>/<image>.jpg)"
)


def source_kind(text: object) -> SourceKind | None:
    """The kind of source ``text`` names, read as the loader reads it: the word before the
    colon, in any case, spaces around it ignored (``cifar10`` takes no argument, ``folder``
    needs its colon). None for text that names no source. The argument is not checked here:
    :meth:`DataSource.parse` does that."""
    if not isinstance(text, str):
        return None
    word, colon, argument = text.partition(":")
    kind = word.strip().lower()
    if kind in (SourceKind.PACK, SourceKind.SYNTHETIC):
        return SourceKind(kind)
    if (kind == SourceKind.CIFAR10 and not argument) or (kind == SourceKind.FOLDER and colon):
        return SourceKind(kind)
    return None


@dataclass(frozen=True)
class DataSource:
    """One data source: its kind and, by kind, the folder, the number of images or the pack."""

    kind: SourceKind
    path: str | None = None  # FOLDER: the path after "folder:", stripped ("" if none: the loader refuses it)
    count: int | None = None  # SYNTHETIC: images to generate (SYNTHETIC_DEFAULT_SIZE for a plain "synthetic")
    pack: str | None = None  # PACK: a shipped pack's name, a key of PACK_SPECS
    text: str = field(default="", compare=False, repr=False)  # as written; str() gives it back

    def __post_init__(self) -> None:
        if not self.text:  # built from its fields (of_folder, of_pack, …): spelt the canonical way
            object.__setattr__(self, "text", self._spelt())

    def __str__(self) -> str:
        return self.text

    @classmethod
    def parse(cls, text: str) -> DataSource:
        """The source ``text`` names, or a :class:`DataError` saying what it may name: an unknown
        kind, a ``synthetic:N`` count outside ``settings.SYNTHETIC_IMAGES``, a pack that is not
        shipped. Reads nothing and allocates nothing (a folder is checked when it is loaded)."""
        if not isinstance(text, str):
            raise DataError(f"The data source must be a string: {VALID_SOURCES}; got {text!r}.")
        kind, argument = source_kind(text), text.partition(":")[2]
        if kind is SourceKind.SYNTHETIC:
            count = parse_synthetic_count(argument) if argument.strip() else SYNTHETIC_DEFAULT_SIZE
            return cls(kind, count=count, text=text)
        if kind is SourceKind.PACK:
            return cls(kind, pack=_shipped_pack(argument.strip()), text=text)
        if kind is SourceKind.FOLDER:
            return cls(kind, path=argument.strip(), text=text)
        if kind is SourceKind.CIFAR10:
            return cls(kind, text=text)
        raise DataError(f"Unknown data source {text[:80]!r}. Use {VALID_SOURCES}.")

    @classmethod
    def read(cls, text: object) -> DataSource | None:
        """:meth:`parse`, or None where ``text`` is no valid source (for the places that only ask
        what a stored text is, and have nothing to refuse)."""
        try:
            return cls.parse(text)  # type: ignore[arg-type]  # not a string: parse refuses it
        except DataError:
            return None

    @classmethod
    def of_folder(cls, path: str | Path) -> DataSource:
        return cls(SourceKind.FOLDER, path=str(path))

    @classmethod
    def of_pack(cls, name: str) -> DataSource:
        return cls(SourceKind.PACK, pack=name)

    @classmethod
    def of_synthetic(cls, count: int = SYNTHETIC_DEFAULT_SIZE) -> DataSource:
        return cls(SourceKind.SYNTHETIC, count=count)

    def _spelt(self) -> str:
        if self.kind is SourceKind.FOLDER:
            return f"{self.kind}:{self.path}"
        if self.kind is SourceKind.PACK:
            return pack_source(str(self.pack))
        if self.kind is SourceKind.SYNTHETIC and self.count not in (None, SYNTHETIC_DEFAULT_SIZE):
            return f"{self.kind}:{self.count}"
        return str(self.kind)


def _shipped_pack(name: str) -> str:
    """``name`` if it is a shipped pack (PACK_SPECS, so nothing is read)."""
    if name not in PACK_SPECS:
        shipped = ", ".join(pack_source(n) for n in PACK_SPECS)
        raise DataError(f"No shipped data set {name[:40]!r}: the shipped ones are {shipped}.")
    return name
