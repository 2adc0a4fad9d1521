"""Write .dvc/plots_page.html, the page `dvc plots show` and `dvc plots diff` fill (`plots.html_template` in
.dvc/config), with Vega, Vega-Lite and Vega-Embed inlined from their npm packages, so the page draws without
internet. DVC's own page loads them from a CDN; a template without DVC's `{scripts}` placeholder drops those tags.
scripts/install.sh runs it:
    python scripts/plots_page.py            # fetches the packages with `npm pack` into .cache/plots/ if missing
"""
from __future__ import annotations

import argparse
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Vega-Lite 5, the schema DVC's templates and .dvc/plots/ name; Vega-Embed 6 is the last line built for Vega 5.
PACKAGES = {"vega": ("5.33.1", "build/vega.min.js"), "vega-lite": ("5.23.0", "build/vega-lite.min.js"),
            "vega-embed": ("6.29.0", "build/vega-embed.min.js")}
PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- written by scripts/plots_page.py: {versions}, from npm, inlined -->
{scripts}
    <style>
        body {{ font-family: sans-serif; }}
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def tarball(cache: Path, name: str, version: str) -> Path:
    path = cache / f"{name}-{version}.tgz"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", "--silent", "--pack-destination", str(cache), f"{name}@{version}"],
                       check=True, stdout=subprocess.DEVNULL)
    return path


def bundle(path: Path, member: str) -> str:
    with tarfile.open(path) as tar:
        js = tar.extractfile(f"package/{member}").read().decode("utf-8")
    # DVC fills the page by replacing {plot_divs}, {scripts} and {refresh_tag}; and "</script" would end the tag
    bad = [s for s in ("</script", "{plot_divs}", "{scripts}", "{refresh_tag}") if s in js]
    if bad:
        raise SystemExit(f"{path.name}: {member} contains {bad}: it cannot be inlined in DVC's page")
    return js


def page(cache: Path) -> str:
    scripts = "\n".join(f"    <script>{bundle(tarball(cache, name, version), member)}</script>"
                        for name, (version, member) in PACKAGES.items())
    versions = ", ".join(f"{name}@{version}" for name, (version, _) in PACKAGES.items())
    return PAGE.format(versions=versions, scripts=scripts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=ROOT / ".cache" / "plots", help="where the npm tarballs are kept")
    ap.add_argument("--out", type=Path, default=ROOT / ".dvc" / "plots_page.html")
    args = ap.parse_args()
    tmp = args.out.with_name(f".{args.out.name}.tmp")
    tmp.write_text(page(args.cache), encoding="utf-8")
    tmp.replace(args.out)
    print(f"{args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}: "
          f"{', '.join(f'{n}@{v}' for n, (v, _) in PACKAGES.items())} inlined")


if __name__ == "__main__":
    main()
