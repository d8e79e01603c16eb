"""OpenAI API shapes the reference endpoint reads and writes (pure): the prompt of a
request, an answer as a chat or text completion, an error body."""

from __future__ import annotations

import json
import math
import random
import time
from typing import Any

MODEL_ID = "reference"
_ids = random.Random()  # response ids (uuid4 would cost a getrandom call per response)


def error_body(message: str, kind: str, code: str | None = None) -> bytes:
    error = {"message": message, "type": kind, "param": None, "code": code}
    return json.dumps({"error": error}).encode("utf-8")


def last_user_text(body: dict[str, Any]) -> str | None:
    """A chat request's last user message (content parts joined), or None."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts
                return "".join(
                    p.get("text", "") for p in content if isinstance(p, dict) and "text" in p
                )
            return content if isinstance(content, str) else None
    return None


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))  # a rough count; there is no tokenizer


def completion_response(
    body: dict[str, Any], prompt: str, answer: str, chat: bool
) -> dict[str, Any]:
    """The answer to request ``body`` (whose prompt was ``prompt``) as its OpenAI object."""
    model = body.get("model")
    if not isinstance(model, str):
        model = MODEL_ID
    prompt_tokens, completion_tokens = _tokens(prompt), _tokens(answer)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if chat:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": answer},
            "finish_reason": "stop",
            "logprobs": None,
        }
        kind, prefix = "chat.completion", "chatcmpl"
    else:
        choice = {"index": 0, "text": answer, "finish_reason": "stop", "logprobs": None}
        kind, prefix = "text_completion", "cmpl"
    return {
        "id": f"{prefix}-{_ids.getrandbits(128):032x}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage,
    }
