"""Foundation numbers: image build (cold optional, warm), image size, and the main job's
end-to-end wall time (scripts/demo.sh: build check, reference endpoint, launcher container,
humaneval + gsm8k).

    python benchmarks/foundation.py            # warm build + demo
    python benchmarks/foundation.py --cold     # also a cold build (removes the base image)

Prints one line per measurement and a machine-readable last line:
RESULT cold_build_s=<s|na> warm_build_s=<s> image_mb=<MB> demo_s=<s>
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.monotonic()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.monotonic() - start


def remove_base_images() -> None:
    out = subprocess.run(["docker", "images", "--format", "{{json .}}", "eval-launcher-base"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        ref = json.loads(line)
        subprocess.run(["docker", "rmi", "-f", f"{ref['Repository']}:{ref['Tag']}"],
                       check=False, stdout=subprocess.DEVNULL)
    subprocess.run(["docker", "rmi", "-f", "eval-launcher:latest"], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="also time a cold build")
    args = parser.parse_args()
    build = ["bash", "scripts/build-images.sh", "--quiet"]
    cold = "na"
    if args.cold:
        remove_base_images()
        cold = f"{timed(build):.1f}"
        print(f"cold build: {cold} s")
    warm = timed(build)
    print(f"warm build: {warm:.1f} s")
    size = int(subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}",
                               "eval-launcher:latest"], capture_output=True, text=True,
                              check=True).stdout.strip()) / 1e6
    print(f"image size: {size:.0f} MB")
    demo = timed(["bash", "scripts/demo.sh"])
    print(f"main job (scripts/demo.sh, warm): {demo:.1f} s")
    print(f"RESULT cold_build_s={cold} warm_build_s={warm:.1f} image_mb={size:.0f} "
          f"demo_s={demo:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
