"""What the client knows about each image model, kept as data.

A new model is a new :class:`ModelSpec` row in :data:`MODELS`, not new code.
A model that is not in the table gets no size checks and no size guess: its
requests pass through unchanged and the sizes come from the images themselves.

Pure data and lookups: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "ROUTE_MODES",
    "ModelSpec",
    "lookup_model",
]

#: The model every call uses unless told otherwise.
DEFAULT_MODEL = "google/gemini-2.5-flash-image"

#: Route modes MaxAPI accepts (``route_mode`` body field, ``X-MaxAPI-Route-Mode`` header).
ROUTE_MODES: tuple[str, ...] = ("official", "official-cheap", "mix")


@attrs.frozen
class ModelSpec:
    """One image model: its output sizes and what it accepts.

    ``sizes`` maps ``(aspect_ratio, resolution)`` to ``(width, height)`` in pixels.
    A model without a resolution selector uses ``None`` as the resolution key and
    ``accepts_resolution`` is false: a ``resolution`` sent to it is ignored by the
    service, so the client warns rather than fails.
    """

    id: str
    sizes: Mapping[tuple[str, str | None], tuple[int, int]]
    accepts_resolution: bool
    default_aspect_ratio: str = "1:1"
    default_resolution: str | None = None
    max_n: int = 10

    #: The supported aspect ratios, in table order (derived from ``sizes``).
    aspect_ratios: tuple[str, ...] = attrs.field(init=False)
    #: The supported resolution tiers (empty when the model has no selector).
    resolutions: tuple[str, ...] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        # Derived once: argument checks read these on every call.
        ratios = tuple(dict.fromkeys(ratio for ratio, _ in self.sizes))
        tiers = tuple(dict.fromkeys(res for _, res in self.sizes if res is not None))
        object.__setattr__(self, "aspect_ratios", ratios)
        object.__setattr__(self, "resolutions", tiers)

    def size_for(self, aspect_ratio: str | None, resolution: str | None = None) -> tuple[int, int] | None:
        """Pixel size for a ratio (and tier), or ``None`` when the table has no row."""
        ratio = aspect_ratio or self.default_aspect_ratio
        tier = (resolution or self.default_resolution) if self.accepts_resolution else None
        return self.sizes.get((ratio, tier))


def _fixed(table: Mapping[str, tuple[int, int]]) -> dict[tuple[str, str | None], tuple[int, int]]:
    return {(ratio, None): size for ratio, size in table.items()}


def _tiered(
    tiers: tuple[str, ...], table: Mapping[str, tuple[tuple[int, int], ...]]
) -> dict[tuple[str, str | None], tuple[int, int]]:
    return {
        (ratio, tier): size for ratio, sizes in table.items() for tier, size in zip(tiers, sizes, strict=True)
    }


_GEMINI_25_FLASH_IMAGE = ModelSpec(
    id="google/gemini-2.5-flash-image",
    # Google's table: one size per aspect ratio; imageSize/resolution is ignored.
    sizes=_fixed(
        {
            "1:1": (1024, 1024),
            "2:3": (832, 1248),
            "3:2": (1248, 832),
            "3:4": (864, 1184),
            "4:3": (1184, 864),
            "4:5": (896, 1152),
            "5:4": (1152, 896),
            "9:16": (768, 1344),
            "16:9": (1344, 768),
            "21:9": (1536, 672),
        }
    ),
    accepts_resolution=False,
)

_GEMINI_3_PRO_IMAGE = ModelSpec(
    id="google/gemini-3-pro-image-preview",
    # Google's preset table (1K / 2K / 4K); the product sheet's 9:16 at 2K is 1536x2752.
    sizes=_tiered(
        ("1K", "2K", "4K"),
        {
            "1:1": ((1024, 1024), (2048, 2048), (4096, 4096)),
            "2:3": ((848, 1264), (1696, 2528), (3392, 5056)),
            "3:2": ((1264, 848), (2528, 1696), (5056, 3392)),
            "3:4": ((896, 1200), (1792, 2400), (3584, 4800)),
            "4:3": ((1200, 896), (2400, 1792), (4800, 3584)),
            "4:5": ((928, 1152), (1856, 2304), (3712, 4608)),
            "5:4": ((1152, 928), (2304, 1856), (4608, 3712)),
            "9:16": ((768, 1376), (1536, 2752), (3072, 5504)),
            "16:9": ((1376, 768), (2752, 1536), (5504, 3072)),
            "21:9": ((1584, 672), (3168, 1344), (6336, 2688)),
        },
    ),
    accepts_resolution=True,
    default_resolution="1K",
)

#: Every model the client knows, by canonical id.
MODELS: dict[str, ModelSpec] = {spec.id: spec for spec in (_GEMINI_25_FLASH_IMAGE, _GEMINI_3_PRO_IMAGE)}


def lookup_model(model: str) -> ModelSpec | None:
    """The spec for ``model``, accepting ``google/x``, ``models/x`` and bare ``x``."""
    spec = MODELS.get(model)
    if spec is not None:
        return spec
    bare = model.removeprefix("models/").removeprefix("google/")
    return MODELS.get("google/" + bare)
