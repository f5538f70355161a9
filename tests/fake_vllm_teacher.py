"""A test-only teacher server speaking the part of vLLM's API that TRL's `VLLMClient.get_sequence_logprobs` uses.

    server = ScoringServer(model_dir).start(); server.url -> "http://127.0.0.1:PORT"; server.stop()

`GET /health`, `GET /v1/models`, and `POST /tokenize`, and `POST /v1/completions` with token-id prompts and
`prompt_logprobs: k`: each choice carries vLLM's `prompt_logprobs` (None for the first position, then
per position a dict token id -> {logprob, rank, decoded_token} holding the top-k and the actual token),
computed by a real transformers model at the requested temperature. `requests` counts the scoring calls.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def prompt_logprobs(model: Any, tokenizer: Any, ids: list[int], k: int, temperature: float) -> list[Any]:
    """vLLM's prompt_logprobs for one token sequence: None, then {id: {logprob, rank, decoded_token}}."""
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float() / temperature
    logp = torch.log_softmax(logits, dim=-1)
    out: list[Any] = [None]
    for pos in range(1, len(ids)):
        row = logp[pos - 1]
        top = torch.topk(row, k)
        entry = {}
        order = torch.argsort(row, descending=True)
        ranks = torch.empty_like(order)
        ranks[order] = torch.arange(1, len(order) + 1)
        for tid in [*top.indices.tolist(), ids[pos]]:
            entry[str(tid)] = {
                "logprob": float(row[tid]),
                "rank": int(ranks[tid]),
                "decoded_token": tokenizer.decode([tid]),
            }
        out.append(entry)
    return out


class ScoringServer:
    def __init__(self, model_dir: str | Path, host: str = "127.0.0.1") -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.name = str(model_dir)
        self.requests = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, 0), self._handler())
        self.url = f"http://{host}:{self.httpd.server_address[1]}"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/health":
                    self._send(200, {})
                elif self.path == "/v1/models":
                    self._send(200, {"data": [{"id": server.name}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/tokenize":
                    ids = server.tokenizer(
                        body["prompt"], add_special_tokens=body.get("add_special_tokens", True)
                    )
                    self._send(200, {"tokens": ids["input_ids"], "count": len(ids["input_ids"])})
                    return
                if self.path != "/v1/completions" or not body.get("prompt_logprobs"):
                    self._send(400, {"error": "only /v1/completions with prompt_logprobs"})
                    return
                prompts = body["prompt"]
                with server.lock:
                    server.requests += 1
                    choices = [
                        {
                            "index": i,
                            "text": "",
                            "prompt_logprobs": prompt_logprobs(
                                server.model,
                                server.tokenizer,
                                ids,
                                int(body["prompt_logprobs"]),
                                float(body.get("temperature") or 1.0),
                            ),
                        }
                        for i, ids in enumerate(prompts)
                    ]
                self._send(200, {"choices": choices})

        return Handler

    def start(self) -> ScoringServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
