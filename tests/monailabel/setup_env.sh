#!/usr/bin/env bash
# Copyright (c) condseg-monai contributors
# Licensed under the Apache License, Version 2.0
#
# Build (or reuse) the separate MONAI Label 0.8.5 environment and install condseg-monai into it.
#
#   bash tests/monailabel/setup_env.sh            # env in <repo>/.label-venv
#   LABEL_VENV=/opt/label-venv bash tests/monailabel/setup_env.sh
#
# Environment variables:
#   LABEL_VENV      target virtual environment (default: <repo>/.label-venv)
#   LABEL_PYTHON    interpreter used to create it (default: first of python3.11, python3.12, python3.10)
#   LABEL_PIP_ARGS  extra arguments for every pip call (e.g. "--no-cache-dir" or "--index-url URL")
#   LABEL_FORCE=1   rebuild even if the stamp matches
#
# The environment is rebuilt only when requirements.txt or the interpreter version changed (stamp file
# <venv>/.label-stamp holds their sha256). condseg-monai itself is re-installed (non-editable, no deps) on
# every call so the environment always tests the current source tree.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
REQS="$HERE/requirements.txt"
VENV="${LABEL_VENV:-$REPO/.label-venv}"
STAMP="$VENV/.label-stamp"

if [[ -z "${LABEL_PYTHON:-}" ]]; then
    for cand in python3.11 python3.12 python3.10; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys' >/dev/null 2>&1; then
            LABEL_PYTHON="$cand"
            break
        fi
    done
fi
if [[ -z "${LABEL_PYTHON:-}" ]]; then
    echo "setup_env.sh: no python3.10-3.12 interpreter found; set LABEL_PYTHON" >&2
    exit 2
fi
PYVER="$("$LABEL_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
case "$PYVER" in
    3.10 | 3.11 | 3.12) ;;
    *)
        echo "setup_env.sh: LABEL_PYTHON=$LABEL_PYTHON is Python $PYVER; MONAI Label 0.8.5 with numpy 1.26 needs 3.10-3.12" >&2
        exit 2
        ;;
esac

# `--isolated` ignores PIP_FIND_LINKS / pip.conf so that a local `torch+cpu` wheel is never chosen (see
# requirements.txt); it also ignores PIP_CERT, so pass the certificate bundle on explicitly.
PIP_ARGS=(--isolated --disable-pip-version-check --timeout 180)
CERT="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
if [[ -f "$CERT" ]]; then
    PIP_ARGS+=(--cert "$CERT")
fi
# shellcheck disable=SC2206  # word splitting of user-supplied extra args is intended
[[ -n "${LABEL_PIP_ARGS:-}" ]] && PIP_ARGS+=(${LABEL_PIP_ARGS})

want_stamp="$(cat "$REQS" <(echo "python=$PYVER") | sha256sum | cut -d' ' -f1)"
have_stamp="$(cat "$STAMP" 2>/dev/null || true)"

if [[ "${LABEL_FORCE:-0}" != "1" && "$want_stamp" == "$have_stamp" && -x "$VENV/bin/python" ]]; then
    echo "setup_env.sh: reusing $VENV (requirements unchanged)"
else
    echo "setup_env.sh: building $VENV with $LABEL_PYTHON (Python $PYVER); the first build downloads ~3 GB"
    start=$(date +%s)
    rm -rf "$VENV"
    "$LABEL_PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q "${PIP_ARGS[@]}" --upgrade pip
    # A complete lock installed without dependency resolution: keeps sam2 out (see requirements.txt).
    "$VENV/bin/python" -m pip install -q "${PIP_ARGS[@]}" --no-deps -r "$REQS"
    (cd / && "$VENV/bin/python" "$HERE/check_env.py")
    echo "$want_stamp" >"$STAMP"
    echo "setup_env.sh: built in $(($(date +%s) - start)) s, size $(du -sh "$VENV" | cut -f1)"
fi

# Install condseg-monai from a clean copy of the package sources, so no build/ or egg-info lands in the repo.
SRC="$(mktemp -d)"
trap 'rm -rf "$SRC"' EXIT
cp -r "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/LICENSE" "$REPO/condseg_monai" "$SRC/"
find "$SRC" -name '__pycache__' -prune -exec rm -rf {} +
if ! "$VENV/bin/python" -m pip install -q "${PIP_ARGS[@]}" --no-deps --force-reinstall "$SRC" >"$SRC.log" 2>&1; then
    cat "$SRC.log" >&2
    rm -f "$SRC.log"
    exit 1
fi
rm -f "$SRC.log"
# import from / so that the installed copy, not the source tree, is found
(cd / && "$VENV/bin/python" -c "import condseg_monai; print('setup_env.sh: installed', condseg_monai.__file__)")
