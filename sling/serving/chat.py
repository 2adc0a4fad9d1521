"""The chat page: a local web page where a person asks a question and reads the tuned variant's answer beside the base
model's, each with the passages it was given, under a header naming the run, the variants and their adapters.

    server = chat_server(student, serving, "127.0.0.1", 7860)    # sling.serving.asking.Student and Serving
    server.serve_forever()

Python's own `http.server`, not Gradio: the page is one form and two columns, rendered on the server (it works without
JavaScript, and `/?q=...` is a link to an answer); Gradio would add 12 packages and about 110 MB to the install,
downgrade pillow and tomlkit under the PDF and DVC stacks, and cost about 3 s of import (measured for issue 31).

    GET  /            the page; with ?q=<question>, the page with both answers
    POST /api/ask     {"question": "..."} -> the answers, passages and timings as JSON
    GET  /api/serving what is served (run, task, variants, adapters) as JSON

Requests are served one at a time through the student (one embedded Qdrant client, one model per variant): a lock
around asking, so the page itself still loads while a question is answered.
"""
from __future__ import annotations

import html
import json
import logging
import threading
import time
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from sling.serving.asking import Asked, Serving, Student

log = logging.getLogger("chat")
MAX_QUESTION_CHARS = 2000

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#f6f7f9;padding:14px 28px} header h1{margin:0 0 6px;font-size:22px}
header p{margin:2px 0;font-size:13px;color:#c9cfdb} main{padding:18px 28px}
form{display:flex;gap:10px;margin-bottom:18px} input[type=text]{flex:1;font-size:16px;padding:10px;border:1px solid #aab;border-radius:6px}
button{font-size:16px;padding:10px 22px;border:0;border-radius:6px;background:#2f6fde;color:#fff;cursor:pointer}
.question{font-size:18px;margin:6px 0 12px} .cols{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.col{background:#fff;border:1px solid #dde;border-radius:8px;padding:14px 18px}
.col h2{font-size:16px;margin:0 0 8px} .tuned h2{color:#2f6fde} .base h2{color:#666}
.answer{font-size:16px;line-height:1.45;white-space:pre-wrap;margin:0 0 10px} .meta{font-size:12px;color:#667}
ol{padding-left:20px;font-size:13px} li{margin-bottom:8px} .src{font-weight:600}
.text{color:#445;white-space:pre-wrap} .note{font-size:13px;color:#556}
"""


def page(serving: Serving, tuned: str, asked: Asked | None = None, error: str | None = None) -> str:
    """The whole page: the header naming what is served, the form, and the answers when a question was asked."""
    esc = html.escape
    head = (f"<header><h1>sling chat: {esc(tuned)} beside base</h1>"
            f"<p>run: {esc(serving.run())}</p>"
            f"<p>tuned variant: {esc(tuned)} ({esc(serving.chosen)}); adapters: {esc(serving.adapters_of(tuned))}</p>"
            f"<p>base: the base model alone, {esc(serving.model)}; both answer from the same retrieved passages</p>"
            "</header>")
    value = esc(asked.question, quote=True) if asked else ""
    form = ("<form method='get' action='/'><input type='text' name='q' autofocus "
            f"placeholder='Ask a question about the documents' value='{value}'><button type='submit'>Ask</button></form>")
    body = [form]
    if error:
        body.append(f"<p class='note'>{esc(error)}</p>")
    if asked:
        body.append(f"<p class='question'><b>Q:</b> {esc(asked.question)}</p><div class='cols'>")
        for variant, css in ((tuned, "tuned"), ("base", "base")):
            reply = asked.replies[variant]
            sources = "".join(
                f"<li><span class='src'>{esc(p.where())}</span> <span class='meta'>score {p.score:.3f}</span>"
                f"<div class='text'>{esc(p.text)}</div></li>" for p in asked.passages)
            body.append(f"<div class='col {css}'><h2>{esc(variant)}</h2><p class='answer'>{esc(reply.answer)}</p>"
                        f"<p class='meta'>{reply.answer_tokens} tokens in {reply.seconds:.2f} s; retrieval "
                        f"{asked.retrieval_s:.2f} s, task {esc(asked.task)}</p><b>Sources</b><ol>{sources}</ol></div>")
        body.append("</div>")
    else:
        body.append("<p class='note'>Each question is answered by both models with the same passages retrieved from "
                    "this run's index, with the answer stage's prompt and greedy decoding.</p>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>sling chat</title>"
            f"<style>{STYLE}</style></head><body>{head}<main>{''.join(body)}</main></body></html>")


def as_json(asked: Asked) -> dict:
    return asdict(asked)


class ChatServer(ThreadingHTTPServer):
    """The page and its JSON API over one Student; `tuned` is shown beside `base`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], student: Student, serving: Serving, tuned: str):
        super().__init__(address, Handler)
        self.student, self.serving, self.tuned = student, serving, tuned
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def ask(self, question: str) -> Asked:
        question = " ".join(question.split())
        if not question:
            raise ValueError("the question is empty: type one")
        if len(question) > MAX_QUESTION_CHARS:
            raise ValueError(f"the question is {len(question)} characters long: keep it under {MAX_QUESTION_CHARS}")
        with self.lock:
            t0 = time.perf_counter()
            asked = self.student.ask([question], [self.tuned, "base"])[0]
            log.info("answered %r in %.2f s", question[:60], time.perf_counter() - t0)
            return asked


class Handler(BaseHTTPRequestHandler):
    server: ChatServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/api/serving":
            return self.send(200, "application/json", json.dumps(
                asdict(self.server.serving) | {"tuned": self.server.tuned}, indent=1))
        if url.path == "/favicon.ico":
            return self.send(204, "image/x-icon", "")
        if url.path != "/":
            return self.send(404, "text/plain", "not found: the page is at /")
        question = (parse_qs(url.query).get("q") or [""])[0]
        asked, error = None, None
        if question.strip():
            try:
                asked = self.server.ask(question)
            except ValueError as e:
                error = str(e)
        self.send(200 if not error else 400, "text/html", page(self.server.serving, self.server.tuned, asked, error))

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/api/ask":
            return self.send(404, "text/plain", "not found: POST questions to /api/ask")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            question = body.get("question") if isinstance(body, dict) else None
            if not isinstance(question, str):
                raise ValueError('send {"question": "..."} as JSON')
            asked = self.server.ask(question)
        except ValueError as e:  # json.JSONDecodeError is one
            return self.send(400, "application/json", json.dumps({"error": str(e)}))
        self.send(200, "application/json", json.dumps(as_json(asked)))

    def send(self, status: int, kind: str, text: str) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        log.info("%s %s", self.address_string(), format % args)


def chat_server(student: Student, serving: Serving, tuned: str, host: str = "127.0.0.1", port: int = 7860) -> ChatServer:
    """The chat page bound to host:port (port 0: any free one; `.url` says which), not yet serving."""
    return ChatServer((host, port), student, serving, tuned)
