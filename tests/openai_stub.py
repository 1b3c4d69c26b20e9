"""An OpenAI-compatible HTTP server on 127.0.0.1 for tests: the model name picks the behaviour.

Models: "ok" (echo), "single" (ignores n), "flaky" (two 429s), "broken" (500), "bad" (400), "slow" (0.15 s),
"frozen" (never answers until closed), "ctx" (400 with the OpenAI context-length message when the request
does not fit `ctx_limit`), "lp" (top_logprobs from `logprob_script`), "lp400" (400 when logprobs are asked).
`models` is what GET {prefix}/models lists (None: 404), `props` what GET /props returns (None: 404),
`tokenize` whether POST /tokenize counts words.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional


class Stub:
    def __init__(self, models: Optional[list[dict]] = None, props: Optional[dict] = None, prefix: str = "/v1",
                 tokenize: bool = False) -> None:
        self.calls: list[dict] = []
        self.gets: list[str] = []
        self.active = 0
        self.peak = 0
        self.fail_left: dict[str, int] = {"flaky": 2}
        self.models, self.props, self.prefix, self.tokenize = models, props, prefix, tokenize
        self.ctx_limit = 100  # tokens; a word counts as one
        self.logprob_script: list[tuple[str, float, list[tuple[str, float]]]] = []
        self.closed = threading.Event()
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def reply(self, status, payload):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                    pass

            def do_GET(self):
                stub.gets.append(self.path)
                if self.path == f"{stub.prefix}/models" and stub.models is not None:
                    return self.reply(200, {"object": "list", "data": stub.models})
                if self.path == "/props" and stub.props is not None:
                    return self.reply(200, stub.props)
                self.reply(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/tokenize" and stub.tokenize and "content" in body:
                    return self.reply(200, {"tokens": list(range(len(body["content"].split())))})
                if self.path != f"{stub.prefix}/chat/completions":
                    return self.reply(404, {"error": {"message": f"no route {self.path}"}})
                with stub.lock:
                    stub.calls.append(body)
                    stub.active += 1
                    stub.peak = max(stub.peak, stub.active)
                try:
                    status, payload = stub.answer(body)
                finally:
                    with stub.lock:
                        stub.active -= 1
                self.reply(status, payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.root = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = self.root + prefix
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, body):
        model = body["model"]
        if model == "broken":
            return 500, {"error": {"message": "the GPU caught fire"}}
        if model == "bad":
            return 400, {"error": {"message": "max_tokens is too large"}}
        if model == "frozen":
            self.closed.wait(30)
            return 500, {"error": {"message": "closed"}}
        if model == "lp400" and body.get("logprobs"):
            return 400, {"error": {"message": "logprobs are not supported"}}
        with self.lock:
            left = self.fail_left.get(model, 0)
            if left:
                self.fail_left[model] = left - 1
        if left:
            return 429, {"error": {"message": "slow down"}}
        if model == "slow":
            time.sleep(0.15)
        prompt = body["messages"][-1]["content"]
        if model == "ctx":
            used = sum(len(m["content"].split()) for m in body["messages"])
            if used + body["max_tokens"] > self.ctx_limit:
                return 400, {"error": {"message": (
                    f"This model's maximum context length is {self.ctx_limit} tokens. However, you requested "
                    f"{used + body['max_tokens']} tokens ({used} in the messages, {body['max_tokens']} in the "
                    "completion). Please reduce the length of the messages or completion."),
                    "code": "context_length_exceeded"}}
        n = 1 if model == "single" else body.get("n", 1)
        choices = []
        for i in range(n):
            choice = {"index": i, "message": {"role": "assistant", "content": f"{prompt} #{i} seed={body.get('seed')}"},
                      "finish_reason": "stop"}
            if model == "lp" and body.get("logprobs"):
                script = self.logprob_script[: body["max_tokens"]]
                choice["message"]["content"] = "".join(t for t, _, _ in script)
                choice["logprobs"] = {"content": [
                    {"token": t, "logprob": lp, "bytes": None,
                     "top_logprobs": [{"token": tt, "logprob": tl, "bytes": None}
                                      for tt, tl in tops[: body.get("top_logprobs", 0)]]}
                    for t, lp, tops in script]}
            choices.append(choice)
        return 200, {"id": "x", "object": "chat.completion", "created": 0, "model": model, "choices": choices,
                     "usage": {"prompt_tokens": 7, "completion_tokens": 3 * n, "total_tokens": 7 + 3 * n}}

    def close(self):
        self.closed.set()
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()
