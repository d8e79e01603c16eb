"""``launcher probe-endpoint``: is the endpoint up, and does it serve the model? Run once,
before any task starts, from where the evaluation containers run (same image and network).

Exit codes: 0 ready, 2 the endpoint answers but does not know the model, 3 unreachable or
failing until the timeout. The last line of output says which, in words a person can act on.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

EXIT_READY, EXIT_UNKNOWN_MODEL, EXIT_DOWN = 0, 2, 3


def models_url(url: str) -> str:
    base = url.rstrip("/")
    for suffix in ("/chat/completions", "/completions"):
        if base.endswith(suffix):
            return base[: -len(suffix)] + "/models"
    return base + "/models"


def _request(url: str, headers: dict[str, str], body: dict | None, timeout: float) -> tuple[
        int, dict | None]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={**headers,
                                 "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except ValueError:
        return 200, None


def check(url: str, model_id: str, api_key: str | None) -> tuple[int, str]:
    """One attempt: (exit code, message). Raises OSError when the endpoint is unreachable."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    status, body = _request(models_url(url), headers, None, 10)
    if status == 200 and isinstance(body, dict) and isinstance(body.get("data"), list):
        ids = [m.get("id") for m in body["data"] if isinstance(m, dict)]
        if model_id in ids:
            return EXIT_READY, f"endpoint ready: {url} serves {model_id}"
        return EXIT_UNKNOWN_MODEL, (f"endpoint {url} does not serve model '{model_id}' (it "
                                    f"serves: {', '.join(map(str, ids[:10])) or 'nothing'}); "
                                    "fix target.api_endpoint.model_id")
    if status in (401, 403):
        return EXIT_DOWN, (f"endpoint {url} refused the API key (HTTP {status}): check "
                           "target.api_endpoint.api_key_name (or api_key_file) and the key")
    # No usable model list: one tiny request tells whether the model is served.
    chat = {"model": model_id, "max_tokens": 1,
            "messages": [{"role": "user", "content": "ping"}]}
    status, _ = _request(url, headers, chat, 30)
    if status == 200:
        return EXIT_READY, f"endpoint ready: {url} answered for {model_id}"
    if status == 404:
        return EXIT_UNKNOWN_MODEL, (f"endpoint {url} answered 404 for model '{model_id}': check "
                                    "target.api_endpoint.url and model_id")
    raise OSError(f"HTTP {status}")


def healthy(health_url: str, deadline: float, interval: float) -> bool:
    """Poll a model server's health path every ``interval`` s until it answers 200 (True)
    or the deadline passes (False): a fresh connection each time, so a server that starts
    listening is seen within ``interval``."""
    while True:
        try:
            with urllib.request.urlopen(health_url, timeout=2) as resp:
                if resp.status == 200:
                    print(f"healthy: {health_url}", flush=True)
                    return True
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def probe(url: str, model_id: str, api_key_name: str | None, timeout: float,
          health_url: str | None = None, interval: float = 1.0,
          api_key_file: str | None = None) -> int:
    api_key = os.environ.get(api_key_name) if api_key_name else None
    if api_key_file:
        from launcher.errors import ConfigError
        from launcher.harness.runconfig import read_key_file

        try:
            api_key = read_key_file(api_key_file)
        except ConfigError as e:
            print(e.message, flush=True)
            return EXIT_DOWN
    deadline = time.monotonic() + timeout
    if health_url and not healthy(health_url, deadline, interval):
        print(f"model server not ready after {timeout:.0f}s: {health_url} never answered 200 "
              "(raise execution.endpoint_readiness_timeout if it loads slowly)", flush=True)
        return EXIT_DOWN
    last = ""
    while True:
        try:
            code, message = check(url, model_id, api_key)
            print(message, flush=True)
            return code
        except OSError as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() >= deadline:
            print(f"endpoint {url} is not reachable from the evaluation containers after "
                  f"{timeout:.0f}s ({last}): start it, or fix target.api_endpoint.url / the "
                  "network in execution.extra_docker_args", flush=True)
            return EXIT_DOWN
        time.sleep(interval)
