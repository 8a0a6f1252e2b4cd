"""Every translation catalog is complete and its compiled .mo matches the .po beside it."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from app.domain.catalog import LOCALES

ROOT = Path(__file__).parent.parent / "app" / "translations"
CATALOGS = sorted(ROOT.glob("*/*/LC_MESSAGES/messages.po"))


@pytest.mark.parametrize("po_path", CATALOGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_catalog_is_translated_and_compiled(po_path: Path) -> None:
    po = read_po(BytesIO(po_path.read_bytes()))
    missing = [m.id for m in po if m.id and not m.string and po.locale and str(po.locale) != "en"]
    assert missing == [], f"untranslated in {po_path}"
    mo_path = po_path.with_suffix(".mo")
    assert mo_path.exists(), f"{mo_path} missing: run pybabel compile"
    mo = read_mo(BytesIO(mo_path.read_bytes()))
    assert {m.id: m.string for m in po if m.id and not m.fuzzy} == {
        m.id: m.string for m in mo if m.id
    }, f"{mo_path} is stale: run pybabel compile"


def test_every_area_speaks_every_locale() -> None:
    for area in (p for p in ROOT.iterdir() if p.is_dir()) if ROOT.is_dir() else []:
        present = {p.name for p in area.iterdir() if (p / "LC_MESSAGES" / "messages.po").exists()}
        assert present >= set(LOCALES) - {"en"}, f"{area.name} lacks {set(LOCALES) - present}"
