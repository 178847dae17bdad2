#!/usr/bin/env bash
# Production LLM endpoint for `coldstart synthesize`: vLLM's OpenAI-compatible
# server with Qwen2.5-7B-Instruct. See README.md in this folder for the why of
# every flag and the one config change that points the pipeline here.
set -euo pipefail

: "${COLDSTART_LLM_API_KEY:?export COLDSTART_LLM_API_KEY (the same value the pipeline reads)}"

exec vllm serve Qwen/Qwen2.5-7B-Instruct \
  --host 0.0.0.0 --port 8000 \
  --api-key "${COLDSTART_LLM_API_KEY}" \
  --served-model-name Qwen/Qwen2.5-7B-Instruct \
  --dtype bfloat16 \
  --max-model-len 8192 \
  --gpu-memory-utilization 0.90 \
  --enable-prefix-caching \
  --max-num-seqs 256 \
  --generation-config vllm \
  --seed 0 \
  "$@"
