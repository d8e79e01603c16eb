"""Tests for launcher.hostpaths: own-container detection and container -> host path translation."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from pathlib import Path

import pytest

from launcher import hostpaths
from launcher.errors import EXIT_ENVIRONMENT, EnvironmentProblem
from launcher.hostpaths import (
    HostSource,
    PathTranslator,
    api_supports_volume_subpath,
    find_own_container_id,
    read_own_container_id,
)

FIXTURES = Path(__file__).parent / "fixtures" / "hostpaths"

# Ids used in the fixture files.
OWN = "f2e4f205233cea4eda7cd599ebba40ada584c97f9a962bb7c88927642988e4dd"
PEER = "231ef812344125db60ae106d032dccf9c79e24ddde273b199033888a90744479"
PODMAN = "cf2eb446175d86dc83e6cd59715ef2445b652cba6499c20d11cbdeb1a5495e60"
ROOTLESS = "ba831e5823a3850858ebec3f4f784fb0ef33dea9f35978237cddc2bfd9ba42f8"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# --------------------------------------------------------------------------- own container id


def detect(
    case_id: str,
    mountinfo: str,
    cgroup: str | None = None,
    hostname: str | None = None,
    *,
    expected: str | None,
):
    """One row: mountinfo/cgroup are fixture file names (*.mountinfo, *.cgroup) or raw text."""
    if mountinfo.endswith(".mountinfo"):
        mountinfo = fixture(mountinfo)
    if cgroup and cgroup.endswith(".cgroup"):
        cgroup = fixture(cgroup)
    return pytest.param(mountinfo, cgroup, hostname, expected, id=case_id)


SANDBOX = "host_sandbox.mountinfo"  # a plain host: no container line, so fallbacks are used

DETECT_CASES = [
    detect(
        "docker, cgroup v2 host, private cgroupns (default)",
        "docker_cgroup2.mountinfo",
        "docker_cgroup2.cgroup",
        OWN[:12],
        expected=OWN,
    ),
    detect(
        "docker --hostname: $HOSTNAME is useless, mountinfo still works",
        "docker_cgroup2.mountinfo",
        "docker_cgroup2.cgroup",
        "evalbox",
        expected=OWN,
    ),
    detect(
        "docker, cgroup v1 host, host cgroupns",
        "docker_cgroup1.mountinfo",
        "docker_cgroup1.cgroup",
        OWN[:12],
        expected=OWN,
    ),
    detect(
        "docker, cgroup v1 host, --cgroupns=private",
        "docker_cgroup1_cgroupns_private.mountinfo",
        "docker_cgroup1_cgroupns_private.cgroup",
        OWN[:12],
        expected=OWN,
    ),
    detect(
        "docker --network=host --hostname, data-root /data/docker",
        "docker_network_host.mountinfo",
        "docker_network_host.cgroup",
        "buildbox",
        expected=OWN,
    ),
    detect(
        "docker, data-root on its own filesystem: root field starts at /containers",
        "docker_dataroot_own_fs.mountinfo",
        expected=OWN,
    ),
    detect(
        "docker, data-root path with a space (\\040 escape)",
        "docker_escaped_path.mountinfo",
        expected=OWN,
    ),
    detect(
        "rootless docker, ~/.local/share/docker on a /home partition",
        "docker_rootless.mountinfo",
        "0::/\n",
        ROOTLESS[:12],
        expected=ROOTLESS,
    ),
    detect(
        "rootful podman",
        "podman_rootful.mountinfo",
        "podman_rootful.cgroup",
        "eval",
        expected=PODMAN,
    ),
    detect(
        "rootless podman --network=container:peer: own .containerenv wins over peer's files",
        "podman_rootless_shared_netns.mountinfo",
        "0::/\n",
        expected=PODMAN,
    ),
    detect(
        "plain host running docker containers",
        "host_with_docker.mountinfo",
        "host_with_docker.cgroup",
        "workstation",
        expected=None,
    ),
    detect(
        "plain host (sandbox VM, 32-hex id in a cgroup path)",
        SANDBOX,
        "host_sandbox.cgroup",
        "sandbox",
        expected=None,
    ),
    detect(
        "kubernetes/containerd pod: not a docker container",
        "k8s_containerd.mountinfo",
        "k8s_containerd.cgroup",
        "eval-7d9f8c-x2x",
        expected=None,
    ),
    # Fallbacks when mountinfo has no container line.
    detect(
        "fallback: cgroup v1 cgroupfs driver",
        SANDBOX,
        "docker_cgroup1.cgroup",
        expected=OWN,
    ),
    detect(
        "fallback: cgroup v2 systemd driver, host cgroupns",
        SANDBOX,
        f"0::/system.slice/docker-{OWN}.scope\n",
        expected=OWN,
    ),
    detect(
        "fallback: cgroup v1 systemd driver",
        SANDBOX,
        f"12:pids:/system.slice/docker-{OWN}.scope\n1:name=systemd:/system.slice/docker-{OWN}.scope\n",
        expected=OWN,
    ),
    detect(
        "fallback: docker-in-docker on cgroup v1 takes the innermost id",
        SANDBOX,
        f"4:memory:/docker/{PEER}/docker/{OWN}\n",
        expected=OWN,
    ),
    detect(
        "fallback: podman cgroup with init sub-cgroup",
        SANDBOX,
        f"0::/machine.slice/libpod-{PODMAN}.scope/container\n",
        expected=PODMAN,
    ),
    detect(
        "fallback: podman cgroupfs driver",
        SANDBOX,
        f"0::/libpod_parent/libpod-{PODMAN}\n",
        expected=PODMAN,
    ),
    detect(
        "fallback: conmon's cgroup is not a container",
        SANDBOX,
        f"0::/machine.slice/libpod-conmon-{PODMAN}.scope\n",
        expected=None,
    ),
    detect(
        "fallback: 12-hex hostname (caller confirms by inspecting)",
        SANDBOX,
        "0::/\n",
        OWN[:12],
        expected=OWN[:12],
    ),
    detect(
        "fallback: hostname with trailing newline", "", None, OWN[:12] + "\n", expected=OWN[:12]
    ),
    detect("fallback: hostname not a short id", "", "0::/\n", "deadbeef", expected=None),
    detect(
        "fallback: 64-hex hostname is not the 12-hex docker default", "", None, OWN, expected=None
    ),
    detect("nothing at all", "", expected=None),
]


@pytest.mark.parametrize(("mountinfo", "cgroup", "hostname", "expected"), DETECT_CASES)
def test_find_own_container_id(
    mountinfo: str, cgroup: str | None, hostname: str | None, expected: str | None
) -> None:
    assert find_own_container_id(mountinfo, cgroup, hostname) == expected


def test_mountinfo_fields_are_split_before_unescaping() -> None:
    # A data-root "/srv/my disk" appears as "/srv/my\040disk": unescaping first would split it.
    line = (
        f"820 812 8:33 /srv/my\\040disk/containers/{OWN}/hostname /etc/hostname rw,relatime"
        " - ext4 /dev/sdc1 rw\n"
    )
    assert find_own_container_id(line) == OWN
    assert hostpaths._unescape_mountinfo(r"/a\040b\011c\134d\012e") == "/a b\tc\\d\ne"


def test_read_own_container_id_reads_proc_and_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    files = {
        "/proc/self/mountinfo": fixture("docker_cgroup2.mountinfo"),
        "/proc/self/cgroup": "0::/\n",
    }
    monkeypatch.setattr(hostpaths, "_read_text", files.get)
    monkeypatch.setenv("HOSTNAME", "evalbox")
    assert read_own_container_id() == OWN


def test_read_own_container_id_tolerates_missing_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostpaths, "_read_text", lambda path: None)
    monkeypatch.delenv("HOSTNAME", raising=False)
    assert read_own_container_id() is None
    monkeypatch.setenv("HOSTNAME", OWN[:12])
    assert read_own_container_id() == OWN[:12]


def test_read_text_missing_file_is_none(tmp_path: Path) -> None:
    assert hostpaths._read_text(str(tmp_path / "nope")) is None


def test_read_own_container_id_runs_on_this_machine() -> None:
    found = read_own_container_id()
    assert found is None or len(found) in (12, 64)


# --------------------------------------------------------------------------- path translation


def bind(source: str, dest: str, rw: bool = True) -> dict:
    return {
        "Type": "bind",
        "Source": source,
        "Destination": dest,
        "Mode": "",
        "RW": rw,
        "Propagation": "rprivate",
    }


def volume(name: str, dest: str, driver: str = "local", source: str | None = None) -> dict:
    if source is None:
        source = f"/var/lib/docker/volumes/{name}/_data" if driver == "local" else ""
    return {
        "Type": "volume",
        "Name": name,
        "Source": source,
        "Destination": dest,
        "Driver": driver,
        "Mode": "z",
        "RW": True,
        "Propagation": "",
    }


def tmpfs(dest: str) -> dict:
    return {
        "Type": "tmpfs",
        "Source": "",
        "Destination": dest,
        "Mode": "",
        "RW": True,
        "Propagation": "",
    }


SOCKET = bind("/var/run/docker.sock", "/var/run/docker.sock")


def fake_realpath(links: dict[str, str]) -> Callable[[str], str]:
    """A realpath over a fake filesystem whose only symlinks are ``links`` (absolute targets)."""

    def resolve(path: str) -> str:
        path = posixpath.normpath(path)
        for _ in range(40):
            for link, target in links.items():
                if path == link or path.startswith(link + "/"):
                    path = posixpath.normpath(target + path[len(link) :])
                    break
            else:
                return path
        raise AssertionError("symlink loop")

    return resolve


def translate(
    case_id: str,
    mounts: list[dict],
    path: str,
    expected: HostSource | list[str],
    *,
    overrides: dict[str, str] | None = None,
    subpath: bool = False,
    links: dict[str, str] | None = None,
):
    """One row: ``expected`` is a HostSource, or fragments the EnvironmentProblem must contain."""
    return pytest.param(mounts, overrides or {}, subpath, links or {}, path, expected, id=case_id)


R = "/results"
RUN = "/results/20250101_000000-abc/gsm8k.0/artifacts"
RUN_REST = RUN.removeprefix("/results/")
PROJ_RESULTS = bind("/home/u/proj/results", R)
VOL = volume("evalresults", R)
NFS_VOL = volume("nfsresults", R, driver="nfs-plugin")

TRANSLATE_CASES = [
    translate(
        "different paths: -v /home/u/proj/results:/results",
        [SOCKET, PROJ_RESULTS],
        RUN,
        HostSource("bind", f"/home/u/proj/results/{RUN_REST}"),
    ),
    translate(
        "the mount destination itself",
        [PROJ_RESULTS],
        R,
        HostSource("bind", "/home/u/proj/results"),
    ),
    translate(
        "same paths: -v /home/u/proj:/home/u/proj -w /home/u/proj",
        [bind("/home/u/proj", "/home/u/proj"), SOCKET],
        "/home/u/proj/results/run1",
        HostSource("bind", "/home/u/proj/results/run1"),
    ),
    translate(
        "nested mounts: /results/cache beats /results",
        [PROJ_RESULTS, bind("/mnt/ssd/cache", "/results/cache")],
        "/results/cache/gsm8k/responses.db",
        HostSource("bind", "/mnt/ssd/cache/gsm8k/responses.db"),
    ),
    translate(
        "nested mounts listed the other way round; /results/cachefile is not under the cache",
        [bind("/mnt/ssd/cache", "/results/cache"), PROJ_RESULTS],
        "/results/cachefile",
        HostSource("bind", "/home/u/proj/results/cachefile"),
    ),
    translate(
        "component-prefix trap: /results2 is not under /results",
        [bind("/home/u/a", R), bind("/home/u/b", "/results2")],
        "/results2/run",
        HostSource("bind", "/home/u/b/run"),
    ),
    translate(
        "a mount at / matches everything",
        [bind("/", "/"), PROJ_RESULTS],
        "/srv/x",
        HostSource("bind", "/srv/x"),
    ),
    translate(
        "bind of the host root: -v /:/host",
        [bind("/", "/host")],
        "/host/home/u/out",
        HostSource("bind", "/home/u/out"),
    ),
    translate(
        "trailing slashes in path, Source and Destination",
        [bind("/home/u/proj/results/", "/results/")],
        "/results/run1/",
        HostSource("bind", "/home/u/proj/results/run1"),
    ),
    translate(
        "dot segments and double slashes in the path",
        [PROJ_RESULTS],
        "/results//a/./b/../c",
        HostSource("bind", "/home/u/proj/results/a/c"),
    ),
    translate("named volume, its root", [VOL], R, HostSource("volume", "evalresults")),
    translate(
        "named volume root, non-local driver",
        [NFS_VOL],
        "/results/",
        HostSource("volume", "nfsresults"),
    ),
    translate(
        "named volume subfolder, engine supports subpath (API >= 1.45)",
        [VOL],
        RUN,
        HostSource("volume", "evalresults", RUN_REST),
        subpath=True,
    ),
    translate(
        "named volume subfolder, old engine, local driver: bind its _data dir",
        [VOL],
        RUN,
        HostSource("bind", f"/var/lib/docker/volumes/evalresults/_data/{RUN_REST}"),
    ),
    translate(
        "named volume subfolder, old engine, driver field empty",
        [volume("evalresults", R, driver="", source="/data/docker/volumes/evalresults/_data")],
        "/results/x",
        HostSource("bind", "/data/docker/volumes/evalresults/_data/x"),
    ),
    translate(
        "named volume subfolder, non-local driver, subpath supported",
        [NFS_VOL],
        "/results/x/y",
        HostSource("volume", "nfsresults", "x/y"),
        subpath=True,
    ),
    translate(
        "override wins over inspect data",
        [bind("/wrong/from/inspect", R)],
        RUN,
        HostSource("bind", f"/home/u/proj/results/{RUN_REST}"),
        overrides={R: "/home/u/proj/results"},
    ),
    translate(
        "override wins even when a longer mount matches",
        [bind("/mnt/ssd/cache", "/results/cache")],
        "/results/cache/x",
        HostSource("bind", "/home/u/proj/results/cache/x"),
        overrides={R: "/home/u/proj/results"},
    ),
    translate(
        "longest override wins among overrides",
        [],
        "/results/run1/a",
        HostSource("bind", "/h/elsewhere/a"),
        overrides={R: "/h/r", "/results/run1": "/h/elsewhere"},
    ),
    translate(
        "override rescues a path on the container's own filesystem",
        [SOCKET],
        "/data/out/run1",
        HostSource("bind", "/srv/eval/out/run1"),
        overrides={"/data/out": "/srv/eval/out/"},
    ),
    translate(
        "override that does not match falls through to mounts",
        [PROJ_RESULTS],
        "/results/a",
        HostSource("bind", "/home/u/proj/results/a"),
        overrides={"/results2": "/x"},
    ),
    translate(
        "symlink in the container resolves onto a mount",
        [PROJ_RESULTS],
        "/workspace/out/run1",
        HostSource("bind", "/home/u/proj/results/run1"),
        links={"/workspace/out": R},
    ),
    translate(
        "symlinked parent of a mount destination (/var/run -> /run)",
        [bind("/home/u/sock-dir", "/var/run/eval")],
        "/run/eval/x",
        HostSource("bind", "/home/u/sock-dir/x"),
        links={"/var/run": "/run"},
    ),
    translate(
        "symlink inside a mount pointing to another mount",
        [bind("/home/u/a", R), bind("/mnt/big", "/big")],
        "/results/artifacts/x.jsonl",
        HostSource("bind", "/mnt/big/artifacts/x.jsonl"),
        links={"/results/artifacts": "/big/artifacts"},
    ),
    # Errors: the expected value lists fragments of the one-line message.
    translate(
        "error: path on the container's own filesystem names the -v to add",
        [SOCKET, PROJ_RESULTS],
        "/data/out",
        [
            f"/data/out is not on a volume or bind mount of the launcher container {OWN[:12]}",
            "`-v /path/on/host:/data/out`",
            "EVAL_LAUNCHER_HOST_OUTPUT_DIR",
        ],
    ),
    translate(
        "error: component-prefix trap, /results2 is not under a /results mount",
        [bind("/home/u/a", R)],
        "/results2/run",
        ["-v /path/on/host:/results2"],
    ),
    translate(
        "error: no mounts at all",
        [],
        "/results/x",
        ["/results/x is not on a volume"],
    ),
    translate(
        "error: symlink leads off the mounts",
        [PROJ_RESULTS],
        "/results/latest/x",
        ["/srv/elsewhere/x is not on a volume", "-v /path/on/host:/srv/elsewhere/x"],
        links={"/results/latest": "/srv/elsewhere"},
    ),
    translate(
        "error: tmpfs",
        [bind("/home/u/proj", "/home/u/proj"), tmpfs(R)],
        "/results/run1",
        ["/results/run1", "tmpfs", "would be lost", "`-v <host dir>:/results`"],
    ),
    translate(
        "error: npipe or other mount types",
        [{"Type": "npipe", "Source": r"\\.\pipe\x", "Destination": R, "RW": True}],
        "/results/x",
        ["npipe", "-v <host dir>:/results"],
    ),
    translate(
        "error: volume subfolder, old engine, non-local driver",
        [NFS_VOL],
        RUN,
        [
            "volume nfsresults",
            "nfs-plugin",
            "cannot mount",
            "-v /path/on/host:/results",
            "Docker Engine >= 26",
        ],
    ),
    translate(
        "error: volume subfolder, old engine, local driver without Source",
        [volume("evalresults", R, source="")],
        "/results/x",
        ["volume evalresults", "cannot mount"],
    ),
]


@pytest.mark.parametrize(
    ("mounts", "overrides", "subpath", "links", "path", "expected"), TRANSLATE_CASES
)
def test_to_host(
    mounts: list[dict],
    overrides: dict[str, str],
    subpath: bool,
    links: dict[str, str],
    path: str,
    expected: HostSource | list[str],
) -> None:
    translator = PathTranslator(
        OWN, mounts, overrides, volume_subpath_supported=subpath, realpath=fake_realpath(links)
    )
    assert translator.in_container
    assert translator.container_id == OWN
    if isinstance(expected, HostSource):
        assert translator.to_host(path) == expected
        return
    with pytest.raises(EnvironmentProblem) as excinfo:
        translator.to_host(path)
    message = excinfo.value.message
    assert excinfo.value.exit_code == EXIT_ENVIRONMENT
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message


@pytest.mark.parametrize(
    "path", ["/data/out", "/data/with\nnewline/out", "/data/tab\there", "/data/ünï cödé"]
)
def test_error_message_is_a_single_line(path: str) -> None:
    translator = PathTranslator(OWN, [tmpfs("/tmp")], realpath=posixpath.normpath)
    for candidate in (path, "/tmp" + path):
        with pytest.raises(EnvironmentProblem) as excinfo:
            translator.to_host(candidate)
        assert len(str(excinfo.value).splitlines()) == 1


def test_not_in_a_container_is_identity_of_realpath() -> None:
    translator = PathTranslator(None, [], realpath=fake_realpath({"/home/u/link": "/home/u/proj"}))
    assert not translator.in_container
    assert translator.container_id is None
    assert translator.to_host("/home/u/link/results/") == HostSource("bind", "/home/u/proj/results")
    # Not in a container: even a stray tmpfs entry is ignored, nothing raises.
    assert PathTranslator(None, [tmpfs("/tmp")], realpath=posixpath.normpath).to_host(
        "/tmp/x"
    ) == HostSource("bind", "/tmp/x")


def test_not_in_a_container_override_still_applies() -> None:
    translator = PathTranslator(None, [], {"/results": "/nfs/results"}, realpath=posixpath.normpath)
    assert translator.to_host("/results/a") == HostSource("bind", "/nfs/results/a")
    assert translator.to_host("/elsewhere") == HostSource("bind", "/elsewhere")


def test_default_realpath_resolves_real_symlinks(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    translator = PathTranslator(OWN, [bind("/host/results", str(real))])
    assert translator.realpath is os.path.realpath
    # The path does not exist yet; realpath still resolves the symlinked parent.
    assert translator.to_host(str(tmp_path / "link" / "run1" / "a")) == HostSource(
        "bind", "/host/results/run1/a"
    )


def test_translator_is_frozen_and_copies_inputs() -> None:
    mounts = [bind("/home/u/proj/results", "/results")]
    overrides: dict[str, str] = {}
    translator = PathTranslator(OWN, mounts, overrides, realpath=posixpath.normpath)
    mounts.clear()
    overrides["/results"] = "/elsewhere"
    assert translator.to_host("/results/x") == HostSource("bind", "/home/u/proj/results/x")
    with pytest.raises(AttributeError):
        translator.container_id = None  # type: ignore[misc]


# --------------------------------------------------------------------------- HostSource helpers


@pytest.mark.parametrize(
    ("source", "describe", "api", "cli"),
    [
        (
            HostSource("bind", "/home/u/proj/results"),
            "/home/u/proj/results",
            {
                "Type": "bind",
                "Source": "/home/u/proj/results",
                "Target": "/results",
                "ReadOnly": False,
            },
            "type=bind,src=/home/u/proj/results,dst=/results",
        ),
        (
            HostSource("volume", "evalresults"),
            "volume evalresults",
            {"Type": "volume", "Source": "evalresults", "Target": "/results", "ReadOnly": False},
            "type=volume,src=evalresults,dst=/results",
        ),
        (
            HostSource("volume", "evalresults", "run1/gsm8k.0"),
            "volume evalresults:run1/gsm8k.0",
            {
                "Type": "volume",
                "Source": "evalresults",
                "Target": "/results",
                "ReadOnly": False,
                "VolumeOptions": {"Subpath": "run1/gsm8k.0"},
            },
            "type=volume,src=evalresults,dst=/results,volume-subpath=run1/gsm8k.0",
        ),
        (
            HostSource("bind", "/home/u/a,b"),
            "/home/u/a,b",
            {"Type": "bind", "Source": "/home/u/a,b", "Target": "/results", "ReadOnly": False},
            'type=bind,"src=/home/u/a,b",dst=/results',
        ),
    ],
)
def test_host_source_helpers(source: HostSource, describe: str, api: dict, cli: str) -> None:
    assert source.describe() == describe
    assert source.api_mount("/results") == api
    assert source.cli_mount("/results") == cli
    assert source.api_mount("/results", read_only=True)["ReadOnly"] is True
    assert source.cli_mount("/results", read_only=True).endswith(",readonly")


@pytest.mark.parametrize(
    ("version", "supported"),
    [
        ("1.45", True),
        ("1.50", True),
        ("2.0", True),
        ("1.44", False),
        ("1.41", False),
        ("", False),
        (None, False),
        ("garbage", False),
        ("1", False),
    ],
)
def test_api_supports_volume_subpath(version: str | None, supported: bool) -> None:
    assert api_supports_volume_subpath(version) is supported
