"""The deployment's one brand: name, logo, colour, privacy notice and mail sender name.

Configured once in Settings and used on every page (header, footer, colours) and every mail
(the From display name and the signature), so a person sees one sender everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import formataddr, parseaddr

HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
# WCAG 2.2 SC 1.4.3: white text on the brand colour (buttons, the current language) and the
# colour as link text on white both need 4.5:1.
MIN_CONTRAST = 4.5


class BrandError(ValueError):
    """A brand setting cannot be used as it is."""


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(colour: str) -> float:
    """Relative luminance as WCAG defines it, for a #rrggbb colour."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(first: str, second: str) -> float:
    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@dataclass(frozen=True)
class Brand:
    name: str
    colour: str = "#0b5cad"
    logo_path: str | None = None
    privacy_notice_url: str | None = None
    mail_sender_name: str | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise BrandError("the brand needs a name")
        if not HEX_COLOUR.match(self.colour):
            raise BrandError(f"the brand colour must be #rrggbb, not {self.colour!r}")
        ratio = contrast(self.colour, "#ffffff")
        if ratio < MIN_CONTRAST:
            raise BrandError(
                f"the brand colour {self.colour} gives {ratio:.2f}:1 against white; "
                f"pages need at least {MIN_CONTRAST}:1, so choose a darker shade"
            )
        if self.privacy_notice_url and not self.privacy_notice_url.startswith(
            ("https://", "http://", "/")
        ):
            raise BrandError("the privacy notice URL must be absolute (https://…) or a path")

    @property
    def sender_name(self) -> str:
        return self.mail_sender_name or self.name

    def sender(self, mail_from: str) -> str:
        """The From header: the brand's display name on the configured address."""
        address = parseaddr(mail_from)[1] or mail_from
        return formataddr((self.sender_name, address))

    def stylesheet(self) -> str:
        """The brand's colours as CSS custom properties, served as /brand.css (no inline style)."""
        return (
            ":root {"
            f" --accent: {self.colour.lower()};"
            f" --accent-soft: {mix_with_white(self.colour, 0.9)};"
            " }\n"
        )


def mix_with_white(colour: str, share: float) -> str:
    """A tint of the colour (share of white 0..1), for backgrounds behind dark text."""
    parts = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c + (255 - c) * share):02x}" for c in parts)
