"""Make ``hw2lib/fonts/hw2book-kana.ttf``: the ten KMNIST hiragana cut out of Noto Sans JP.

The book labels its classes "お (o)", in figures (matplotlib) and in tables (the browser); a machine
without a Japanese font would show empty boxes. Noto Sans JP is under the SIL Open Font License 1.1,
which allows redistributing a modified copy with the licence beside it; the copy made here holds
only the ten glyphs (about 4 KB) and is renamed "hw2book Kana", as the licence asks of modified
fonts. Source: the npm package ``@fontsource/noto-sans-jp`` (version below), weight 400.

    python tools/subset_kana_font.py                       # npm pack the package into a temporary folder
    python tools/subset_kana_font.py --package DIR_OR_TGZ  # an unpacked package, or its .tgz
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hw2lib.kmnist import CLASS_CHARACTERS  # noqa: E402

PACKAGE = "@fontsource/noto-sans-jp@5.3.0"
SOURCE_FILE = "files/noto-sans-jp-japanese-400-normal.woff"
FONT_DIR = REPO / "hw2lib" / "fonts"
FAMILY = "hw2book Kana"
POSTSCRIPT_NAME = "hw2bookKana-Regular"


def unpacked_package(package: Path | None, workdir: Path) -> Path:
    """The folder of the unpacked npm package (``package/``): given, unpacked from a .tgz, or fetched."""
    if package is not None and package.is_dir():
        return package
    if package is None:
        subprocess.run(["npm", "pack", "--silent", PACKAGE], cwd=workdir, check=True, stdout=subprocess.DEVNULL)
        package = next(workdir.glob("*.tgz"))
    with tarfile.open(package) as archive:
        archive.extractall(workdir, filter="data")
    return workdir / "package"


def subset_font(source: Path, target: Path) -> None:
    """Keep the ten hiragana (and .notdef) of ``source``; rename the family; write ``target`` atomically."""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.layout_features = []
    options.hinting = False
    options.notdef_outline = True
    options.name_IDs = [0, 13, 14]  # copyright, licence, licence URL; the names are set below
    options.drop_tables += ["STAT", "BASE", "vhea", "vmtx", "GDEF", "GPOS", "GSUB", "gasp", "prep"]
    font = TTFont(source, recalcTimestamp=False)
    font.flavor = None  # a plain TrueType file: matplotlib cannot read WOFF
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(character) for character in CLASS_CHARACTERS])
    subsetter.subset(font)
    names = font["name"]
    for name_id, value in ((1, FAMILY), (2, "Regular"), (3, f"{POSTSCRIPT_NAME};subset of Noto Sans JP 400"),
                           (4, f"{FAMILY} Regular"), (5, "Version 1.000"), (6, POSTSCRIPT_NAME)):
        names.setName(value, name_id, 3, 1, 0x409)
    partial = target.with_name(target.name + ".part")
    font.save(partial)
    os.replace(partial, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, help="the unpacked npm package folder or its .tgz (default: npm pack)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hw2book-font-") as workdir:
        package = unpacked_package(args.package, Path(workdir))
        source = package / SOURCE_FILE
        if not source.is_file():
            print(f"error: {source} is missing: is {package} the package {PACKAGE}?", file=sys.stderr)
            return 1
        FONT_DIR.mkdir(exist_ok=True)
        subset_font(source, FONT_DIR / "hw2book-kana.ttf")
        shutil.copyfile(package / "LICENSE", FONT_DIR / "OFL.txt")
    print(f"wrote {FONT_DIR / 'hw2book-kana.ttf'} ({(FONT_DIR / 'hw2book-kana.ttf').stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
