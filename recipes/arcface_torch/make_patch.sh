#!/usr/bin/env bash
# Regenerate g2d.patch: run `g2d-arcface install` on a pristine copy of arcface_torch and take
# `git diff` of the result (without the installer's manifest), with paths from the root of an
# insightface repository (recognition/arcface_torch/...).
#
#   recipes/arcface_torch/make_patch.sh PATH/TO/insightface/recognition/arcface_torch [OUT.patch]
#
# PATH must be an unmodified arcface_torch (no G2D installed). PYTHON picks the interpreter
# (default: python) that has insightface_g2d installed. Run it again whenever the recipe configs
# (recipes/configs/*.py) or the installer's block change; tests/test_arcface_integration.py fails
# until the patch matches the installer again.
set -euo pipefail

src=${1:?usage: make_patch.sh PATH/TO/recognition/arcface_torch [OUT.patch]}
here=$(cd "$(dirname "$0")" && pwd)
out=${2:-$here/g2d.patch}
python=${PYTHON:-python}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/recognition"
cp -R "$src" "$tmp/recognition/arcface_torch"
find "$tmp" -name __pycache__ -prune -exec rm -rf {} +
if [ -e "$tmp/recognition/arcface_torch/.g2d_install.json" ] \
    || grep -q '# >>> insightface_g2d ' "$tmp/recognition/arcface_torch/backbones/__init__.py"; then
    echo "error: $src already has G2D installed; give a pristine arcface_torch" >&2
    exit 2
fi

g() { git -C "$tmp" -c core.autocrlf=false -c user.name=g2d -c user.email=g2d@localhost "$@"; }
g init -q
g add -A
g commit -q -m "arcface_torch as found"
"$python" -m insightface_g2d.cli.arcface install "$tmp/recognition/arcface_torch" --configs "$here/../configs" >/dev/null
g add -A
version=$("$python" -c 'import insightface_g2d; print(insightface_g2d.__version__)')
{
    echo "G2D backbones and recipe configs for arcface_torch (insightface_g2d $version)."
    echo
    echo "In an insightface git clone, at its root:          git apply --verbose g2d.patch"
    echo "In an arcface_torch folder outside any git clone:  git apply --verbose -p3 g2d.patch"
    echo "(Not -p3 inside a clone: git then skips every file, silently. patch -p1 works at the root.)"
    echo "Made by recipes/arcface_torch/make_patch.sh (g2d-arcface install, then git diff)."
    echo
    g diff --cached --no-color --no-ext-diff --src-prefix=a/ --dst-prefix=b/ -U3 \
        -- . ":(exclude)recognition/arcface_torch/.g2d_install.json"
} >"$out"
echo "wrote $out"
