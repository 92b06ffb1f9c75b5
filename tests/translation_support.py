"""For the translation tests: a small Italian document and an OpenAI-compatible chat server on loopback
(stdlib http.server) that answers with canned translations and records what it was sent."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DOC_ID = "orto-urbano"
DOC_NAME = "orto-urbano.txt"
DOC = ("Orto urbano di Borgo San Nicola\n\n"
       "Il Comune di Lecce affida a un'associazione di quartiere l'orto urbano di Borgo San Nicola: 40 parcelle "
       "coltivabili e una compostiera di comunità.\n\n"
       "Nel 2025 il progetto riceve 12.500 euro dal bilancio comunale per i laboratori di giardinaggio delle "
       "scuole primarie del quartiere.\n")
# The lines the corpus loader makes of DOC (title; heading + first paragraph; second paragraph).
TITLE = "Orto urbano di Borgo San Nicola"
FIRST = ("Orto urbano di Borgo San Nicola Il Comune di Lecce affida a un'associazione di quartiere l'orto urbano di "
         "Borgo San Nicola: 40 parcelle coltivabili e una compostiera di comunità.")
SECOND = ("Nel 2025 il progetto riceve 12.500 euro dal bilancio comunale per i laboratori di giardinaggio delle "
          "scuole primarie del quartiere.")
CANNED = {
    TITLE: "Borgo San Nicola urban garden",
    FIRST: ("Borgo San Nicola urban garden. The City of Lecce entrusts the Borgo San Nicola urban garden to a "
            "neighbourhood association: 40 plots for growing and a community composter."),
    # A changed number: the check must flag it.
    SECOND: ("In 2025 the project receives 15,500 euros from the municipal budget for gardening workshops for the "
             "neighbourhood's primary schools."),
}
FIXED_SECOND = CANNED[SECOND].replace("15,500", "12,500")


def italian_line(prompt: str) -> str:
    """The line to translate, as the drafting prompt delimits it."""
    m = re.search(r"<line>\n(.*?)\n</line>", prompt, re.DOTALL)
    return m.group(1) if m else ""


class FakeOpenAI:
    """POST /v1/chat/completions -> the canned English of the <line> in the last message (or `default`)."""

    def __init__(self, canned: dict[str, str] | None = None, default: str = "") -> None:
        self.canned = dict(CANNED if canned is None else canned)
        self.default = default
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                outer.requests.append({"path": self.path, **body})
                if not self.path.endswith("/chat/completions"):
                    self.send_error(404)
                    return
                line = italian_line(body["messages"][-1]["content"])
                reply = outer.canned.get(line, outer.default)
                payload = json.dumps({
                    "id": f"chatcmpl-{len(outer.requests)}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
