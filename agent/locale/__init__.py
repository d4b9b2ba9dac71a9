"""The staff's language: gettext catalogues, chosen per station, and the small compiler that makes them.

The words live in `.po` files (`<language>/LC_MESSAGES/station-agent.po`), the ecosystem's convention that
translators and their tools know; the wheel and the .deb carry them compiled to `.mo` (setup.py compiles them at
build time with `compile_po`, so no gettext tools are needed on the build machine). A source checkout has no
`.mo`: the catalogue is then compiled in memory from the `.po`, so what a test reads is what a box ships.

The `.mo` layout is GNU gettext's (https://www.gnu.org/software/gettext/manual/html_node/MO-Files.html): a
little-endian header (magic 0x950412de, revision 0, count, offsets of the two string tables, an empty hash
table), the tables of (length, offset) pairs sorted by original, then the NUL-terminated strings.
"""

from __future__ import annotations

import ast
import gettext
import io
import re
import struct
import sys
from pathlib import Path

DOMAIN = "station-agent"
HERE = Path(__file__).resolve().parent
LANGUAGES = ("zh_CN", "en")
"""What `[station] locale` and `status --lang` take; English is the language the code is written in."""

CHINESE_ZONES = frozenset({"Asia/Shanghai", "Asia/Chongqing", "Asia/Chungking", "Asia/Urumqi", "Asia/Harbin", "PRC"})


class CatalogueError(ValueError):
    """A .po file this compiler cannot read; the message names the file's line."""


def language_for_zone(zone: str) -> str:
    """The default staff language of a station: Chinese in China's zones, English elsewhere."""
    return "zh_CN" if zone in CHINESE_ZONES else "en"


PLURAL_SEPARATOR = "\0"
"""How a plural entry is keyed and valued, as in a .mo file: `msgid NUL msgid_plural` → `msgstr[0] NUL msgstr[1]…`."""


def plural_key(singular: str, plural: str) -> str:
    """The key of an `ngettext(singular, plural, n)` message among `po_entries`."""
    return singular + PLURAL_SEPARATOR + plural


def po_entries(text: str) -> dict[str, str]:
    """msgid → msgstr of a .po file, the header (msgid "") included; a plural entry (msgid_plural, msgstr[N]) is
    keyed `plural_key(msgid, msgid_plural)` with its forms joined by NUL, as a .mo file holds it; contexts are not
    used by this project. Fuzzy entries are left out, as msgfmt does."""
    entries: dict[str, str] = {}
    current: dict[str, list[str]] = {}
    field = ""
    fuzzy = False

    def close() -> None:
        nonlocal fuzzy
        if "msgid" in current and not fuzzy:
            key = "".join(current["msgid"])
            forms = sorted((name for name in current if name.startswith("msgstr[")), key=lambda name: int(name[7:-1]))
            if "msgid_plural" in current:
                key = plural_key(key, "".join(current["msgid_plural"]))
                value = PLURAL_SEPARATOR.join("".join(current[name]) for name in forms)
                entries[key] = value if any("".join(current[name]) for name in forms) else ""
            else:
                entries[key] = "".join(current.get("msgstr", []))
        current.clear()
        fuzzy = False

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("#,") and "fuzzy" in line:
                close()
                fuzzy = True
            continue
        keyword, _, rest = line.partition(" ")
        if keyword in ("msgid", "msgid_plural", "msgstr") or _PLURAL_FORM.fullmatch(keyword):
            if keyword == "msgid":
                keep_fuzzy = fuzzy
                close()
                fuzzy = keep_fuzzy
            field, line = keyword, rest.strip()
            current[field] = []
        if not (line.startswith('"') and line.endswith('"') and field):
            raise CatalogueError(f"line {number}: expected msgid, msgstr or a quoted string, got {raw!r}")
        try:
            current[field].append(ast.literal_eval(line))
        except (ValueError, SyntaxError) as exc:
            raise CatalogueError(f"line {number}: not a C string: {raw!r}") from exc
    close()
    return entries


_PLURAL_FORM = re.compile(r"msgstr\[[0-9]\]")


def compile_po(text: str) -> bytes:
    """The .mo bytes of a .po file's text; untranslated entries (empty msgstr) are left out, as msgfmt does.
    Plural entries are already in the .mo's form (`po_entries`); sorting by the whole key sorts by the msgid, as
    msgfmt does, since no two msgids are one another's prefix followed by NUL."""
    entries = {key: value for key, value in po_entries(text).items() if value or key == ""}
    keys = sorted(entries)
    originals = [key.encode() for key in keys]
    translated = [entries[key].encode() for key in keys]
    header_size = 7 * 4
    tables = header_size + 2 * 8 * len(keys)
    pairs_original: list[int] = []
    pairs_translated: list[int] = []
    blob = bytearray()
    for strings, pairs in ((originals, pairs_original), (translated, pairs_translated)):
        for string in strings:
            pairs += [len(string), tables + len(blob)]
            blob += string + b"\0"
    count = len(keys)
    header = struct.pack("<7I", 0x950412DE, 0, count, header_size, header_size + 8 * count, 0, tables)
    return header + struct.pack(f"<{4 * count}I", *pairs_original, *pairs_translated) + bytes(blob)


def po_path(language: str) -> Path:
    return HERE / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def translations(language: str) -> gettext.NullTranslations:
    """The catalogue for `language`: the shipped .mo, else the .po compiled now; English needs none. A name
    not in LANGUAGES is refused before it comes near a path (it may come from a file or a snapshot)."""
    if language not in LANGUAGES:
        raise ValueError(f"no catalogue for language {language[:40]!r}; choose one of {', '.join(LANGUAGES)}")
    if language == "en":
        return gettext.NullTranslations()
    try:
        return gettext.translation(DOMAIN, localedir=HERE, languages=[language])
    except FileNotFoundError:
        return gettext.GNUTranslations(io.BytesIO(compile_po(po_path(language).read_text(encoding="utf-8"))))


def compile_all(root: Path) -> list[Path]:
    """Write a .mo beside every .po under `root`; returns the files written (setup.py's build step)."""
    written = []
    for po in sorted(root.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo = po.with_suffix(".mo")
        mo.write_bytes(compile_po(po.read_text(encoding="utf-8")))
        written.append(mo)
    return written


if __name__ == "__main__":
    for path in compile_all(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
