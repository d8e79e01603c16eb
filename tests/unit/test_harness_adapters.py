"""adapter_config: parsing, system prompt, payload params, reasoning, logs, stats, the API key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from launcher.errors import ConfigError
from launcher.harness.adapters import (
    AdapterConfig,
    apply_system_prompt,
    modify_payload,
    parse_adapter_config,
    strip_reasoning,
)
from launcher.harness.client import Attempt
from launcher.harness.fetch import fetch_responses, request_body
from launcher.harness.runconfig import RunConfig, load_run_config, parse_run_config
from launcher.harness.stats import RequestStats
from tests.unit.harness_stub import StubServer


def _cfg(out: Path, url: str, adapter: Any = None, type_: str = "chat",
         **params: Any) -> RunConfig:
    api: dict[str, Any] = {"url": url, "model_id": "m", "type": type_}
    if adapter is not None:
        api["adapter_config"] = adapter
    return parse_run_config({
        "config": {"type": "t", "output_dir": str(out), "params": params},
        "target": {"api_endpoint": api},
    })


def _quiet(_: str) -> None:
    pass


# -- parsing ----------------------------------------------------------------------------------


def test_defaults_are_the_references() -> None:
    c = parse_adapter_config(None)
    assert c == AdapterConfig()
    assert c.use_caching and c.tracking_requests_stats
    assert not (c.use_request_logging or c.use_response_logging or c.log_failed_requests)
    assert not c.process_reasoning_traces and c.system_prompt is None
    assert (c.start_reasoning_token, c.end_reasoning_token) == ("<think>", "</think>")


def test_legacy_flat_keys() -> None:
    c = parse_adapter_config({
        "use_caching": False, "use_request_logging": True, "max_logged_requests": 3,
        "use_response_logging": True, "max_logged_responses": 2, "log_failed_requests": True,
        "tracking_requests_stats": False, "use_reasoning": True, "end_reasoning_token": "</r>",
        "include_if_reasoning_not_finished": False, "use_system_prompt": True,
        "custom_system_prompt": "Be brief.", "params_to_add": {"seed": 1},
        "params_to_remove": ["top_p"], "params_to_rename": {"max_tokens": "max_completion_tokens"},
        "generate_html_report": True, "html_report_size": 5,  # known, unused here
    })
    assert not c.use_caching and c.max_logged_requests == 3 and c.max_logged_responses == 2
    assert c.process_reasoning_traces and c.end_reasoning_token == "</r>"
    assert not c.include_if_reasoning_not_finished
    assert c.system_prompt == "Be brief."
    assert c.params_to_add == {"seed": 1} and c.params_to_remove == ("top_p",)


def test_interceptor_list_form() -> None:
    c = parse_adapter_config({"interceptors": [
        {"name": "system_message", "config": {"system_message": "Sys."}},
        {"name": "reasoning", "config": {"end_reasoning_token": "</t>",
                                         "include_if_not_finished": False}},
        {"name": "request_logging", "config": {"max_requests": 4}},
        {"name": "caching", "enabled": False},
        "endpoint",
        {"name": "payload_modifier", "config": {"params_to_add": {"stop": ["x"]}}},
    ]})
    assert c.system_prompt == "Sys." and c.process_reasoning_traces
    assert c.end_reasoning_token == "</t>" and not c.include_if_reasoning_not_finished
    assert c.use_request_logging and c.max_logged_requests == 4
    assert not c.use_caching and not c.tracking_requests_stats  # not listed: off
    assert c.params_to_add == {"stop": ["x"]}


def test_unknown_interceptors_warn_once_by_name() -> None:
    said: list[str] = []
    parse_adapter_config({"interceptors": [
        "zeta", "endpoint", {"name": "alpha"}, "progress_tracking", "zeta", "caching",
        {"name": "off", "enabled": False},
    ]}, warn=said.append)
    assert said == ["warning: target.api_endpoint.adapter_config: ignoring keys this harness "
                    "does not know: interceptors.alpha, interceptors.zeta"]


@pytest.mark.parametrize(("data", "key"), [
    ({"use_caching": "yes"}, "adapter_config.use_caching"),
    ({"max_logged_requests": -1}, "adapter_config.max_logged_requests"),
    ({"params_to_add": [1]}, "adapter_config.params_to_add"),
    ({"params_to_remove": "top_p"}, "adapter_config.params_to_remove"),
    ({"use_system_prompt": True}, "adapter_config.custom_system_prompt"),
    ({"end_reasoning_token": ""}, "adapter_config.end_reasoning_token"),
    ([1], "adapter_config"),
])
def test_bad_values_name_the_key(data: Any, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_adapter_config(data)


def test_unknown_keys_warn_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run_config.yml"
    path.write_text(yaml.safe_dump({
        "config": {"type": "gsm8k"},
        "target": {"api_endpoint": {"url": "http://h/v1", "model_id": "m",
                                    "adapter_config": {"use_cachin": True, "other": 1}}},
    }))
    cfg = load_run_config(path)
    assert cfg.adapter == AdapterConfig()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other, use_cachin" in err[0]


def test_request_params_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"config\.params\.extra\.request_params"):
        parse_run_config({
            "config": {"type": "t", "params": {"extra": {"request_params": [1]}}},
            "target": {"api_endpoint": {"url": "http://h/v1", "model_id": "m"}},
        })


# -- request side -----------------------------------------------------------------------------


def test_system_prompt_replaces_existing_ones() -> None:
    msgs = [{"role": "system", "content": "old"}, {"role": "user", "content": "q"}]
    assert apply_system_prompt(msgs, "new") == [
        {"role": "system", "content": "new"}, {"role": "user", "content": "q"}]
    assert apply_system_prompt(msgs, None) == msgs


def test_modify_payload_order() -> None:
    config = AdapterConfig(params_to_remove=("top_p",), params_to_rename={"max_tokens": "mct"},
                           params_to_add={"seed": 7, "chat_template_kwargs": {"x": True}})
    body = {"model": "m", "top_p": 1.0, "max_tokens": 5}
    assert modify_payload(body, config) == {
        "model": "m", "mct": 5, "seed": 7, "chat_template_kwargs": {"x": True}}


def test_request_body_combines_params_extra_and_adapter(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "http://h/v1/chat/completions",
               adapter={"use_system_prompt": True, "custom_system_prompt": "Sys.",
                        "params_to_add": {"seed": 3}},
               temperature=0.7, top_p=0.9, max_new_tokens=12,
               extra={"dataset_dir": "/d", "request_params": {"stop": ["\n\n"], "top_p": 0.5}})
    body = json.loads(request_body(cfg, [{"role": "user", "content": "q"}]))
    assert body == {
        "model": "m", "temperature": 0.7, "top_p": 0.5, "max_tokens": 12, "stop": ["\n\n"],
        "seed": 3, "messages": [{"role": "system", "content": "Sys."},
                                {"role": "user", "content": "q"}],
    }
    assert "dataset_dir" not in body
    completions = _cfg(tmp_path, "http://h/v1/completions", type_="completions",
                       adapter={"use_system_prompt": True, "custom_system_prompt": "Sys."})
    assert json.loads(request_body(completions, [{"role": "user", "content": "q"}]))[
        "prompt"] == "q"  # the system prompt is for chat endpoints only (as the reference)


def test_system_prompt_is_sent(server: StubServer, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, server.url,
               adapter={"use_system_prompt": True, "custom_system_prompt": "You are terse."})
    fetch_responses(cfg, [[{"role": "user", "content": "q"}]], say=_quiet)
    assert server.requests[0][1]["messages"][0] == {"role": "system",
                                                    "content": "You are terse."}


# -- response side ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "include", "expected"), [
    ("<think>hmm</think>The answer is 4.", True, "The answer is 4."),
    ("<think>a</think>b<think>c</think>\n final", True, "final"),
    ("no reasoning here", True, "no reasoning here"),
    ("<think>never finished", True, "<think>never finished"),
    ("<think>never finished", False, ""),
    ("reasoning without a start tag</think>42", False, "42"),
])
def test_strip_reasoning(text: str, include: bool, expected: str) -> None:
    assert strip_reasoning(text, "</think>", "<think>", include) == expected


def test_reasoning_is_stripped_for_scoring_and_kept_raw(
    server: StubServer, tmp_path: Path
) -> None:
    server.answer = lambda body: "<think>let me see</think>\nThe answer is 7."
    cfg = _cfg(tmp_path, server.url,
               adapter={"process_reasoning_traces": True, "use_response_logging": True})
    result = fetch_responses(cfg, [[{"role": "user", "content": "q"}]], say=_quiet)
    answer = result.answers[0][0]
    assert answer.text == "The answer is 7."
    assert answer.raw == "<think>let me see</think>\nThe answer is 7."
    assert result.stats["reasoning"] == {"stripped": 1, "unfinished": 0}
    logged = (tmp_path / "logs" / "responses.jsonl").read_text()
    assert "let me see" in logged  # logs keep the reasoning
    replayed = fetch_responses(cfg, [[{"role": "user", "content": "q"}]], say=_quiet)
    assert replayed.answers[0][0].text == "The answer is 7."  # stripped again on replay


def test_reasoning_stats_count_each_case(server: StubServer, tmp_path: Path) -> None:
    texts = {"a": "<think>x</think>A", "b": "<think>never finished", "c": "plain",
             "d": "no start</think> D"}
    server.answer = lambda body: texts[body["messages"][-1]["content"]]
    cfg = _cfg(tmp_path, server.url, adapter={"process_reasoning_traces": True,
                                              "include_if_reasoning_not_finished": False})
    result = fetch_responses(cfg, [[{"role": "user", "content": k}] for k in texts],
                             say=_quiet)
    assert [a[0].text for a in result.answers] == ["A", "", "plain", "D"]
    assert result.stats["reasoning"] == {"stripped": 2, "unfinished": 1}


def test_reasoning_untouched_by_default(server: StubServer, tmp_path: Path) -> None:
    server.answer = lambda body: "<think>x</think>y"
    result = fetch_responses(_cfg(tmp_path, server.url), [[{"role": "user", "content": "q"}]],
                             say=_quiet)
    assert result.answers[0][0].text == result.answers[0][0].raw == "<think>x</think>y"


# -- logs, stats and the API key --------------------------------------------------------------


def test_logs_stats_and_the_key_never_written(
    server: StubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "sk-test-0123456789-never-in-files"
    server.script = ["reset", (500, {}, {"error": "boom"}), (429, {"Retry-After": "0"}, {})]
    cfg = _cfg(tmp_path, server.url, parallelism=1, adapter={
        "use_request_logging": True, "max_logged_requests": 3,
        "use_response_logging": True, "max_logged_responses": 2, "log_failed_requests": True,
    })
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(5)]
    result = fetch_responses(cfg, prompts, api_key=secret)
    assert all(h.get("Authorization") == f"Bearer {secret}" for h, _ in server.requests)

    logs = tmp_path / "logs"
    requests = [json.loads(x) for x in (logs / "requests.jsonl").read_text().splitlines()]
    responses = [json.loads(x) for x in (logs / "responses.jsonl").read_text().splitlines()]
    failed = [json.loads(x) for x in (logs / "failed_requests.jsonl").read_text().splitlines()]
    assert len(requests) == 3 and requests[0]["body"]["messages"][0]["content"] == "q0"
    assert len(responses) == 2 and responses[0]["body"]["choices"][0]["message"]["content"]
    assert [f["kind"] for f in failed] == ["connection", "http_5xx", "http_429"]
    assert failed[1]["status"] == 500 and failed[1]["request"]["messages"]
    assert "boom" in failed[1]["response"]

    stats = result.stats
    assert stats["requests"] == 8 and stats["succeeded"] == 5 and stats["retries"] == 3
    assert stats["errors"] == {"connection": 1, "http_429": 1, "http_5xx": 1}
    assert stats["tokens"] == {"prompt_tokens": 15, "completion_tokens": 10, "total_tokens": 25}
    assert set(stats["latency_s"]) == {"p50", "p90", "p99", "mean", "max"}
    assert stats["concurrency"]["max"] == 1
    assert stats["finish_reasons"] == {"stop": 5}

    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert {f.name for f in files} >= {"requests.jsonl", "responses.jsonl",
                                       "failed_requests.jsonl", "responses.sqlite",
                                       "progress.json"}
    for f in files:
        try:
            data = f.read_bytes()
        except FileNotFoundError:  # the -wal/-shm files go when the cache's close ends
            continue
        assert secret.encode() not in data, f


def test_stats_off(server: StubServer, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, server.url, adapter={"tracking_requests_stats": False})
    assert fetch_responses(cfg, [[{"role": "user", "content": "q"}]], say=_quiet).stats == {}


def test_percentiles() -> None:
    stats = RequestStats()
    for i in range(1, 101):
        stats.attempt(Attempt(True, None, 200, i / 100, 0))
    lat = stats.document(1.0)["latency_s"]
    assert lat["p50"] == pytest.approx(0.505) and lat["p90"] == pytest.approx(0.901)
    assert lat["p99"] == pytest.approx(0.9901) and lat["max"] == 1.0
