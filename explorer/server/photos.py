"""One session's decoded photos: each upload decoded once, kept small, within a budget.

Streamlit reruns a page's script on every click. Without a cache every uploaded photo would
be decoded again each time (a 40-megapixel PNG takes seconds), and each session would hold
its photos at full size: ten 4.9 KB one-bit PNGs of 7000×5700 took a class server from
862 MB to 2.7 GB. :class:`SessionPhotos` decodes each upload once through the image gate
(:func:`explorer.data.images.read_image`), shrinks it to :data:`explorer.settings.PHOTO_SIDE` right
after decoding, uses at most :data:`explorer.settings.UPLOAD_PHOTOS` photos of one upload, and
holds at most :data:`explorer.settings.SESSION_DECODED` bytes. It is core (no Streamlit): the
page keeps one in its session state (``explorer.ui.classifiers.read_uploads``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from PIL import Image

from explorer import settings
from explorer.data import images
from explorer.data.images import ImageError, ImageLimits, OverBudget, decoded_bytes


@dataclass(frozen=True)
class Upload:
    """One uploaded file as :class:`SessionPhotos` needs it: a key that changes when the file
    does (Streamlit's ``file_id``), its name, and its bytes on demand (read only on a miss)."""

    key: str
    name: str
    data: Callable[[], bytes]


@dataclass
class ReadPhotos:
    """What one upload widget gave: name -> image for the photos that read, and one sentence
    for each that did not (or was over the photo limit)."""

    images: dict[str, Image.Image] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Held:
    name: str
    image: Image.Image | None
    problem: str | None
    final: bool = True  # kept for the next rerun

    @property
    def bytes(self) -> int:
        return 0 if self.image is None else decoded_bytes(self.image.size)


class SessionPhotos:
    """One session's decoded uploads, kept between reruns, within a byte budget.

    Streamlit reruns the page script on every click; without this, every photo would be
    decoded again each time (a 40-megapixel PNG takes seconds). Photos are kept by upload key
    in *shelves* (one per upload widget: "inspect", "transfer"); a shelf keeps only what its
    widget still holds, so removing an upload frees its memory at the next rerun. Every photo
    is shrunk to ``longest`` right after decoding, and the shelves together hold at most
    ``budget`` bytes (counted as RGB, four bytes a pixel): a photo that would go over it is
    refused with a message, never half-held. A file that failed is remembered too, so a broken
    upload is not parsed again on every rerun either.
    """

    def __init__(self, *, budget: int | None = None, longest: int | None = None, max_photos: int | None = None):
        self.budget = settings.SESSION_DECODED.bytes() if budget is None else budget
        self.longest = settings.PHOTO_SIDE.value() if longest is None else longest
        self.max_photos = settings.UPLOAD_PHOTOS.value() if max_photos is None else max_photos
        self._shelves: dict[str, dict[str, _Held]] = {}

    @property
    def held_bytes(self) -> int:
        return sum(held.bytes for shelf in self._shelves.values() for held in shelf.values())

    def read(self, uploads: Sequence[Upload], shelf: str = "inspect") -> ReadPhotos:
        """Decode (or reuse) the photos of one widget's ``uploads``. Only the first
        ``max_photos`` are used; the others are named in one problem and never decoded."""
        result = ReadPhotos()
        used, extra = list(uploads[: self.max_photos]), list(uploads[self.max_photos:])
        if extra:
            result.problems.append(
                f"{len(uploads)} photos were uploaded; one upload may hold {self.max_photos} "
                f"({settings.UPLOAD_PHOTOS.env}). The first {self.max_photos} are shown; these were left out: "
                + ", ".join(upload.name for upload in extra[:5]) + ("…" if len(extra) > 5 else "") + ".")
        keys = {upload.key for upload in used}
        kept = {key: held for key, held in self._shelves.get(shelf, {}).items() if key in keys}
        self._shelves[shelf] = kept  # what the widget dropped is let go before anything new is decoded
        for upload in used:
            held = kept.get(upload.key) or self._decode(upload)
            if held.final:
                kept[upload.key] = held
            if held.image is not None:
                result.images[upload.name] = held.image
            else:
                result.problems.append(f"{upload.name} was skipped: {held.problem}")
        return result

    def _decode(self, upload: Upload) -> _Held:
        """The upload decoded, or its problem. "Over the budget" is not final (not
        remembered): once other photos are removed the same upload may fit."""
        room = self.budget - self.held_bytes
        try:
            # The full decode must fit in what the session has left; what is kept is smaller still.
            image = images.read_image(upload.data(), upload.name, longest=self.longest,
                                      caps=ImageLimits.current(decoded_bytes=max(room, 0)))
        except ImageError as error:
            return _Held(upload.name, None, str(error), final=not isinstance(error, OverBudget))
        return _Held(upload.name, image, None)
