"""The request phase of a run: every prompt's answers, fetched or replayed, with progress.

``fetch_responses(cfg, prompts, samples_per_prompt=n, api_key=...)`` returns
``FetchResult(answers, stats)``, ``answers[i][s]`` being sample ``s`` of prompt ``i``:

* each (prompt, sample) is one request; its cache key is the sha256 of the canonical request
  body plus the sample index, so ``n`` samples are ``n`` separate requests and ``n`` cache
  rows, also at temperature 0;
* a request whose key is in the response cache is replayed, not sent; every other answer is
  committed to the cache before it counts as done (see :mod:`launcher.harness.cache`). A
  worker that finds ``parallelism`` answers waiting for their commit waits for room, so a
  SIGKILL loses the requests in flight and fewer than 2 x ``parallelism`` answers (in practice
  the few of the last ``BATCH_S`` = 20 ms);
* ``parallelism`` workers pull (prompt, sample) pairs from one lazy iterator, so memory does
  not grow with the number of requests beyond the answers themselves;
* ``progress.json`` is rewritten a few times a second (done, total, errors, cached, rate, ETA);
* the first request that fails for good (after ``max_retries``, or a non-retryable 4xx) stops
  the run with EndpointError -- after committing what was answered, so a rerun resumes;
  SIGTERM does the same and raises :class:`Terminated`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import aiohttp  # noqa: F401 -- the HTTP stack loads with the harness, not in the request phase
import attrs

from launcher.errors import EnvironmentProblem, LauncherError
from launcher.harness.adapters import (
    AdapterConfig,
    apply_system_prompt,
    modify_payload,
    split_reasoning,
)
from launcher.harness.cache import ResponseCache, cache_path, request_key
from launcher.harness.client import Attempt, ChatClient, build_body, encode_body
from launcher.harness.progress import ProgressFile
from launcher.harness.replies import Completion, parse_completion
from launcher.harness.requestlog import RequestLogs
from launcher.harness.runconfig import RunConfig
from launcher.harness.stats import RequestStats

Message = dict[str, Any]
TICK_S = 0.25  # progress.json is rewritten every tick, the request logs flushed every 4th
BACKOFF_BASE_S = 1.0  # retry n waits 2**n * base/2 .. 2**n * base (capped), or Retry-After
BACKOFF_MAX_S = 30.0


class Terminated(LauncherError):
    """SIGTERM during the request phase (answers so far are committed)."""

    exit_code = 143


@attrs.frozen
class Answer:
    text: str  # what scoring sees (reasoning stripped when the adapter config says so)
    raw: str  # the model's text as it came
    cached: bool = False  # replayed from the response cache
    finish_reason: str | None = None


@attrs.frozen(repr=False)
class FetchResult:
    answers: list[list[Answer]]  # answers[prompt][sample]
    stats: dict[str, Any]  # request_stats for results.yml ({} if tracking_requests_stats off)

    def __repr__(self) -> str:
        # Short on purpose: asyncio (3.11) may repr a finished task's result, e.g. in
        # signal.getsignal() during asyncio.run(); a full repr of 10^4 answers costs memory.
        return f"FetchResult(<{len(self.answers)} prompts>)"


def fetch_responses(
    cfg: RunConfig,
    prompts: Sequence[Sequence[Message]],
    *,
    samples_per_prompt: int = 1,
    api_key: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    say: Callable[[str], None] = print,
) -> FetchResult:
    """Blocking: run :func:`fetch_responses_async` on a new event loop."""
    return asyncio.run(
        fetch_responses_async(
            cfg, prompts, samples_per_prompt=samples_per_prompt, api_key=api_key,
            on_progress=on_progress, say=say,
        )
    )


async def fetch_responses_async(
    cfg: RunConfig,
    prompts: Sequence[Sequence[Message]],
    *,
    samples_per_prompt: int = 1,
    api_key: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    say: Callable[[str], None] = print,
) -> FetchResult:
    if samples_per_prompt < 1:
        raise ValueError("samples_per_prompt must be >= 1")
    fetcher = _Fetcher(cfg, prompts, samples_per_prompt, api_key, on_progress, say)
    return await fetcher.run()


def request_body(cfg: RunConfig, messages: Sequence[Message]) -> bytes:
    """The canonical request body for one prompt (what is sent and what keys the cache)."""
    adapter: AdapterConfig = cfg.adapter
    p = cfg.params
    if cfg.endpoint.type == "chat":
        messages = apply_system_prompt(messages, adapter.system_prompt)
    sampling = {"temperature": p.temperature, "top_p": p.top_p, "max_tokens": p.max_new_tokens}
    body = build_body(
        cfg.endpoint.model_id, messages, endpoint_type=cfg.endpoint.type, sampling=sampling
    )
    body.update(p.request_params)
    return encode_body(modify_payload(body, adapter))


@attrs.frozen
class _Job:
    index: int
    sample: int
    key: str
    body: bytes


class _Fetcher:
    def __init__(
        self,
        cfg: RunConfig,
        prompts: Sequence[Sequence[Message]],
        samples: int,
        api_key: str | None,
        on_progress: Callable[[int, int], None] | None,
        say: Callable[[str], None],
    ) -> None:
        self.cfg = cfg
        self.prompts = prompts
        self.samples = samples
        self.api_key = api_key
        self.on_progress = on_progress
        self.say = say
        self.total = len(prompts) * samples
        self.answers: list[list[Answer | None]] = [[None] * samples for _ in prompts]
        self.stats = RequestStats()  # also the progress counts (see done, _update_progress)
        self.cache: ResponseCache | None = None
        self.logs = RequestLogs(cfg.output_dir, cfg.adapter, cfg.endpoint.url)
        self.progress = ProgressFile(cfg.output_dir, self.total)
        self._terminated = False
        self._progress_write: asyncio.Future[None] | None = None

    @property
    def done(self) -> int:
        """Answers recorded (committed to the cache, or replayed from it)."""
        return self.stats.succeeded + self.stats.cached

    def _update_progress(self) -> None:
        stats = self.stats
        self.progress.update(self.done, sum(stats.errors.values()), cached=stats.cached)

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> FetchResult:
        started = time.monotonic()
        adapter = self.cfg.adapter
        out = self.cfg.output_dir
        p = self.cfg.params
        try:
            client = ChatClient(
                self.cfg.endpoint.url,
                self.cfg.endpoint.model_id,
                api_key=self.api_key,
                endpoint_type=self.cfg.endpoint.type,
                timeout=p.request_timeout,
                max_retries=p.max_retries,
                parallelism=p.parallelism,
                backoff_base=BACKOFF_BASE_S,
                backoff_max=BACKOFF_MAX_S,
                observer=self._observe,
            )
        except ValueError as e:  # e.g. an HTTPS_PROXY we cannot use
            raise EnvironmentProblem(str(e)) from e
        if adapter.use_caching:
            path = cache_path(out, adapter.caching_dir)
            try:
                self.cache = ResponseCache(path, warn=self.say)
            except (OSError, sqlite3.Error) as e:
                raise EnvironmentProblem(f"cannot open the response cache {path}: {e}") from e
            self.cache.start(self._committed)
        self._update_progress()
        ticker = asyncio.create_task(self._tick())
        remove_handler = self._handle_sigterm()
        error: BaseException | None = None
        try:
            jobs = self._jobs()
            workers = [
                asyncio.create_task(self._worker(jobs, client))
                for _ in range(max(1, min(p.parallelism, self.total)))
            ]
            await self._wait(workers)
        except asyncio.CancelledError:
            if not self._terminated:
                raise
            error = Terminated("terminated (SIGTERM); answers so far are in the response cache")
        finally:
            remove_handler()
            await self._stop_ticker(ticker)
            try:
                await self._close_cache()
            finally:
                await client.close()
                self.logs.close()
                self._update_progress()
        if error is not None:
            raise error
        assert self.done == self.total, (self.done, self.total)
        answers: list[list[Answer]] = self.answers  # type: ignore[assignment]
        stats: dict[str, Any] = {}
        if adapter.tracking_requests_stats:
            stats = self.stats.document(time.monotonic() - started, client.limiter)
            stats["connections"] = {"opened": client.opened, "reconnects": client.reconnects}
            if self.cache is not None:
                stats["cache"] = {"file": os.path.relpath(self.cache.path, out),
                                  "replayed": self.stats.cached, "written": self.cache.rows,
                                  "commits": self.cache.commits}
        return FetchResult(answers=answers, stats=stats)

    async def _wait(self, workers: list[asyncio.Task[None]]) -> None:
        try:
            done, pending = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        failed = [w for w in done if not w.cancelled() and w.exception() is not None]
        if failed:
            for w in pending:
                w.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            error = failed[0].exception()
            assert error is not None
            raise error

    async def _close_cache(self) -> None:
        cache = self.cache
        if cache is None:
            return
        try:
            await cache.flush()  # every answer is committed when this returns
        except (OSError, sqlite3.Error) as e:
            cache.close()
            raise EnvironmentProblem(f"cannot write the response cache {cache.path}: {e}") from e
        except BaseException:
            cache.close()
            raise
        cache.close(wait=False)  # the WAL checkpoint on close overlaps with scoring

    def _jobs(self) -> Iterator[_Job]:
        """(prompt, sample) pairs still to fetch; cached ones are recorded on the way."""
        cache = self.cache
        for index, messages in enumerate(self.prompts):
            body = request_body(self.cfg, messages)
            for sample in range(self.samples):
                key = request_key(body, sample)
                if cache is not None:
                    hit = cache.get(key)
                    if hit is not None:
                        try:
                            completion = parse_completion(hit, self.cfg.endpoint.type)
                        except ValueError:
                            pass  # cannot happen for rows we wrote; fetch it again
                        else:
                            self._record(index, sample, key, completion, cached=True)
                            continue
                yield _Job(index, sample, key, body)

    async def _worker(self, jobs: Iterator[_Job], client: ChatClient) -> None:
        cache = self.cache
        limit = self.cfg.params.parallelism
        for job in jobs:
            self.logs.request(job.key, job.sample, job.body)
            completion = await client.complete(job.body, job)
            if cache is None:
                self._record(job.index, job.sample, job.key, completion, cached=False)
                continue
            # put/room re-raise a failed commit; _close_cache reports it as EnvironmentProblem
            cache.put(job.key, completion.body, (job, completion))
            if cache.pending >= limit:  # a kill loses at most `parallelism` answers
                await cache.room(limit)

    # -- callbacks -------------------------------------------------------------------------

    def _observe(self, attempt: Attempt, job: _Job | None) -> None:
        self.stats.attempt(attempt)
        if not attempt.ok and job is not None:
            self.logs.failure(job.key, job.sample, job.body, attempt)

    def _committed(self, tokens: list[tuple[_Job, Completion]]) -> None:
        for job, completion in tokens:
            self._record(job.index, job.sample, job.key, completion, cached=False)

    def _record(
        self, index: int, sample: int, key: str, completion: Completion, *, cached: bool
    ) -> None:
        raw = completion.text
        text = raw
        adapter = self.cfg.adapter
        if adapter.process_reasoning_traces:
            text, found = split_reasoning(
                raw, adapter.end_reasoning_token, adapter.start_reasoning_token,
                adapter.include_if_reasoning_not_finished,
            )
            if found is not None:
                self.stats.reasoning[found] += 1
        self.answers[index][sample] = Answer(text, raw, cached, completion.finish_reason)
        self.logs.response(key, sample, completion.body, completion.latency, cached)
        self.stats.answer(completion.usage, completion.finish_reason, cached)  # counts it done
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)

    async def _tick(self) -> None:
        """Every TICK_S: progress.json, written on a worker thread so that a slow disk (a
        network mount) never holds up the requests; every 4th tick the request logs flush."""
        n = 0
        while True:
            await asyncio.sleep(TICK_S)
            self._progress_write = asyncio.ensure_future(asyncio.to_thread(self._update_progress))
            await asyncio.shield(self._progress_write)
            n += 1
            if n % 4 == 0:
                self.logs.flush()

    async def _stop_ticker(self, ticker: asyncio.Task[None]) -> None:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        if self._progress_write is not None:  # its write must not land after the last one
            await asyncio.wait([self._progress_write])

    def _handle_sigterm(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread() or sys.platform == "win32":
            return lambda: None
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_term() -> None:
            self._terminated = True
            if task is not None:
                task.cancel()

        try:
            loop.add_signal_handler(signal.SIGTERM, on_term)
        except (NotImplementedError, RuntimeError, ValueError):
            return lambda: None

        def remove() -> None:
            loop.remove_signal_handler(signal.SIGTERM)

        return remove
