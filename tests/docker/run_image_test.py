"""Build the Docker image and run it for real, with Debian's podman (no Docker engine here).

`make docker-test` runs this. It needs root, podman and debootstrap (it installs both with
apt-get when missing), about 16 GB free under its storage root (vfs keeps every layer as a full
copy: the build runs with --layers=false, one layer per stage; measured peak 9.9 GB) and no image
registry: the base image is built locally with debootstrap.

What it does, each step failing with one clear line:
  1. base image `localhost/gaitsearch-base:bookworm` (debootstrap, cached in the storage root);
  2. `podman build --format docker` of the Dockerfile with the local build args (host CA bundle
     and the local CPU torch wheel directory mounted, TORCH_INDEX_URL empty);
  3. image checks: HEALTHCHECK kept, runs as uid 10001, no compiler, no pip cache, no build
     arg left in the environment;
  4. the compose file's three services driven by hand (podman-compose needs container
     networks this machine does not give): `reindex` on a named volume, `api`, its
     HEALTHCHECK and /healthz, a search that gives 5 results, then a second `reindex` and
     `reload` while a client polls /search: no failed request, and the version changes;
  5. clean-up: containers and volume removed, dangling images pruned (also after a failure: a
     failed build's leftovers filled a CI disk once); the final image and the base stay.
Only 127.0.0.1 is used: the API listens on loopback (host network, a free port).

Environment: GAITSEARCH_DOCKER_ROOT (storage root, default /var/tmp/gaitsearch-docker),
KEEP_IMAGE=0 (also remove the final image), GALLERY_COUNT (default 2000, as in
docker-compose.yml).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
STORE = Path(os.environ.get("GAITSEARCH_DOCKER_ROOT", "/var/tmp/gaitsearch-docker"))
BASE = "localhost/gaitsearch-base:bookworm"
IMAGE = "localhost/gaitsearch:test"
PREFIX = "gaitsearch-test"
VOLUME = f"{PREFIX}-data"
TOKEN = "docker-test-token"
QUERY = "woman in heels walking briskly"
NEED_GB = 16  # the whole test's disk peak with vfs and --layers=false (measured 9.9 GB)
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]


class Fail(Exception):
    pass


def step(msg: str) -> None:
    print(f"[docker-test] {msg}", flush=True)


def podman_cmd() -> list[str]:
    return [
        "podman",
        "--root",
        str(STORE / "storage"),
        "--runroot",
        str(STORE / "run"),
        "--storage-driver",
        "vfs",
        "--runtime",
        "runc",
        "--cgroup-manager",
        "cgroupfs",
    ]


def podman(
    *args: str, check: bool = True, capture: bool = True, **kw
) -> subprocess.CompletedProcess:
    run = subprocess.run([*podman_cmd(), *args], text=True, capture_output=capture, **kw)
    if check and run.returncode != 0:
        out = (run.stdout or "") + (run.stderr or "") if capture else ""
        raise Fail(f"podman {' '.join(args[:3])} ... failed (rc {run.returncode}): {out[-3000:]}")
    return run


# ---- 0. tools ---------------------------------------------------------------------------------
def ensure_tools() -> None:
    missing = [t for t in ("podman", "debootstrap", "runc") if shutil.which(t) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise Fail(f"missing {missing}: run 'sudo apt-get install -y podman debootstrap runc'")
    step(f"installing {' '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        run = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if run.returncode != 0:
            raise Fail(f"{' '.join(cmd)} failed: {run.stderr[-2000:]}")


def check_disk() -> None:
    free_gb = shutil.disk_usage(STORE).free / 1e9
    if free_gb < NEED_GB:
        raise Fail(
            f"{free_gb:.1f} GB free under {STORE}; the vfs build and its containers need about "
            f"{NEED_GB} GB"
        )


# ---- 1. base image ----------------------------------------------------------------------------
def ensure_base() -> None:
    if podman("image", "exists", BASE, check=False).returncode == 0:
        step(f"base image {BASE}: cached")
        return
    rootfs = STORE / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    step("base image: debootstrap bookworm (python3, venv, ca-certificates)")
    t0 = time.monotonic()
    run = subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,python-is-python3,ca-certificates",
            "bookworm",
            str(rootfs),
        ],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise Fail(f"debootstrap failed: {(run.stdout + run.stderr)[-2000:]}")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    podman("import", "-", BASE, stdin=tar.stdout)
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)
    step(f"base image built in {time.monotonic() - t0:.0f} s")


# ---- 2. build ---------------------------------------------------------------------------------
def pip_config(key: str) -> list[str]:
    values = [os.environ.get(f"PIP_{key.upper().replace('-', '_')}", "")]
    run = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    )
    for line in run.stdout.splitlines():
        name, _, val = line.partition("=")
        if name.endswith("." + key):
            values.append(val.strip().strip("'\""))
    return [v for value in values for v in value.split() if v]


def host_ca() -> str:
    for cand in [
        *pip_config("cert"),
        os.environ.get("REQUESTS_CA_BUNDLE", ""),
        os.environ.get("SSL_CERT_FILE", ""),
        "/etc/ssl/certs/ca-certificates.crt",
    ]:
        if cand and Path(cand).is_file():
            return cand
    raise Fail("no CA bundle found for pip inside the build (set PIP_CERT)")


def torch_wheel_dir() -> str | None:
    for d in [*pip_config("find-links"), "/opt/wheels"]:
        if d.startswith("file://"):
            d = d[7:]
        if Path(d).is_dir() and glob.glob(f"{d}/torch-2.13.0*cp311*.whl"):
            return d
    return None


def build() -> float:
    ca = host_ca()
    wheels = torch_wheel_dir()
    args = [
        "build",
        "--format",
        "docker",
        # One working container per stage, committed once: vfs stores every layer as a full
        # copy of the tree, so a layer per instruction multiplied the disk peak (CI ran out).
        "--layers=false",
        "--network",
        "host",
        *ULIMITS,
        "-v",
        f"{ca}:/host-ca.crt:ro",
        "--build-arg",
        f"BASE_IMAGE={BASE}",
        "--build-arg",
        "PIP_CERT=/host-ca.crt",
    ]
    if wheels:
        args += ["-v", f"{wheels}:/wheels:ro", "--build-arg", "PIP_FIND_LINKS=/wheels"]
        args += ["--build-arg", "TORCH_INDEX_URL="]
    step(f"build: CA {ca}, torch from {wheels or 'the PyTorch CPU index'}")
    t0 = time.monotonic()
    log = STORE / "build.log"
    watch = DiskWatch(STORE)
    with open(log, "w") as fh, watch:
        run = subprocess.run(
            [*podman_cmd(), *args, "-t", IMAGE, str(ROOT)], stdout=fh, stderr=subprocess.STDOUT
        )
    took = time.monotonic() - t0
    step(f"build: {took:.0f} s, disk peak {watch.peak_gb:.1f} GB above the free space at start")
    if run.returncode != 0:
        tail = log.read_text()[-3000:]
        raise Fail(f"image build failed (rc {run.returncode}, log {log}):\n{tail}")
    return took


class DiskWatch(threading.Thread):
    """The most disk the build took at any moment: free space at the start minus the lowest
    free space seen (sampled each second; anything else writing to the disk counts too)."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.done = path, threading.Event()
        self.start_free = self.min_free = 0

    def start(self) -> None:
        # The baseline is the free space when watching starts (after any prune), not when
        # the watcher was made.
        self.start_free = self.min_free = shutil.disk_usage(self.path).free
        super().start()

    def stop(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join()

    @property
    def peak_gb(self) -> float:
        return (self.start_free - self.min_free) / 1e9

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.min_free = min(self.min_free, shutil.disk_usage(self.path).free)

    def __enter__(self) -> DiskWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- 3. image checks --------------------------------------------------------------------------
def check_image() -> int:
    info = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
    cfg = info.get("Config", {})
    health = info.get("Healthcheck") or cfg.get("Healthcheck") or {}
    if "/healthz" not in " ".join(health.get("Test") or []):
        raise Fail(f"HEALTHCHECK missing from the image (built without --format docker?): {health}")
    env = cfg.get("Env") or []
    leaked = [
        e for e in env if e.split("=", 1)[0] in ("PIP_CERT", "PIP_FIND_LINKS", "TORCH_INDEX_URL")
    ]
    if leaked:
        raise Fail(f"build args left in the final image's environment: {leaked}")
    if cfg.get("User") != "10001:10001" or "8000/tcp" not in (cfg.get("ExposedPorts") or {}):
        raise Fail(f"user/port: {cfg.get('User')} {cfg.get('ExposedPorts')}")
    if "/data" not in (cfg.get("Volumes") or {}):
        raise Fail(f"/data is not a volume: {cfg.get('Volumes')}")
    probe = (
        "id -u; for c in gcc cc g++ c++ clang make; do command -v $c; done; "
        "find / -xdev \\( -path /proc -o -path /sys \\) -prune -o -type d "
        "\\( -path '*/.cache/pip' -o -path '*/pip/http*' \\) -print 2>/dev/null; true"
    )
    out = podman(
        "run", "--rm", "--network", "none", *ULIMITS, "--entrypoint", "sh", IMAGE, "-c", probe
    )
    lines = out.stdout.split()
    if not lines or lines[0] != "10001":
        raise Fail(f"the container does not run as uid 10001: {out.stdout!r}")
    if lines[1:]:
        raise Fail(f"the final stage holds a compiler or a pip cache: {lines[1:]}")
    return int(info["Size"])


# ---- 4. the compose file: validated, then its services driven by hand ------------------------
def validate_compose() -> None:
    """`podman-compose config` (PyPI, in its own venv under the storage root): the compose file
    parses, interpolates and resolves as Compose reads it."""
    venv = STORE / "compose-venv"
    exe = venv / "bin" / "podman-compose"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        run = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "podman-compose==1.6.0"],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            step(f"podman-compose not installable, compose file not validated: {run.stderr[-500:]}")
            return
    run = subprocess.run(
        [str(exe), "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0 or "gaitsearch-data" not in run.stdout:
        raise Fail(f"docker-compose.yml does not validate: {(run.stdout + run.stderr)[-2000:]}")
    step("docker-compose.yml: `podman-compose config` validates it")


def compose_services() -> dict:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc["services"]


def compose_command(service: dict, port: int) -> list[str]:
    # Compose turns `$$` into a literal `$`; the API listens on a free loopback port here.
    return [
        str(c).replace("$$", "$").replace("http://api:8000", f"http://api:{port}")
        for c in service["command"]
    ]


def compose_env(service: dict) -> list[str]:
    args: list[str] = []
    for key, val in (service.get("environment") or {}).items():
        if key == "GAITSEARCH_ADMIN_TOKEN":
            val = TOKEN
        elif key == "GALLERY_COUNT":
            val = os.environ.get("GALLERY_COUNT", str(val))
        args += ["-e", f"{key}={val}"]
    return args


def run_job(name: str, service: dict, port: int) -> str:
    t0 = time.monotonic()
    run = podman(
        "run", "--rm", "--name", f"{PREFIX}-{name}", "--network", "host",
        "--add-host", "api:127.0.0.1", *ULIMITS,
        "-v", f"{VOLUME}:/data", *compose_env(service), IMAGE, *compose_command(service, port),
        check=False,
    )  # fmt: skip
    if run.returncode != 0:
        raise Fail(
            f"service {name} failed (rc {run.returncode}):\n{(run.stdout + run.stderr)[-3000:]}"
        )
    step(f"{name}: done in {time.monotonic() - t0:.0f} s: {run.stdout.strip().splitlines()[-1:]}")
    return run.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, token: str | None = None, timeout: float = 30) -> tuple[int, dict]:
    req = urllib.request.Request(url, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


class Poller(threading.Thread):
    """A client searching in a loop: every failed request and every version seen."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.stop, self.ok, self.failures, self.versions = base, False, 0, [], []

    def run(self) -> None:
        queries = ["woman+in+heels+walking+briskly", "slow+walk", "man+with+a+backpack"]
        i = 0
        while not self.stop:
            url = f"{self.base}/search?q={queries[i % len(queries)]}&k=5"
            i += 1
            try:
                status, body = http("GET", url, timeout=30)
            except Exception as exc:  # noqa: BLE001 - every failure counts
                self.failures.append(repr(exc))
                continue
            if status != 200:
                self.failures.append(f"HTTP {status}")
                continue
            self.ok += 1
            time.sleep(0.01)
            if not self.versions or self.versions[-1] != body.get("index_version"):
                self.versions.append(body.get("index_version"))


def run_services() -> dict:
    validate_compose()
    services = compose_services()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    podman("volume", "create", VOLUME)
    step(f"reindex (first) on volume {VOLUME}")
    run_job("reindex", services["reindex"], port)

    api = services["api"]
    t0 = time.monotonic()
    podman(
        "run", "-d", "--name", f"{PREFIX}-api", "--network", "host", *ULIMITS,
        "-v", f"{VOLUME}:/data", *compose_env(api),
        "-e", "GAITSEARCH_HOST=127.0.0.1", "-e", f"GAITSEARCH_PORT={port}",
        IMAGE, *compose_command(api, port),
    )  # fmt: skip
    started_s = time.monotonic() - t0  # podman run -d returns once started (vfs copies the image)
    healthy = False
    while time.monotonic() - t0 < 180:
        state = podman("inspect", "--format", "{{.State.Status}}", f"{PREFIX}-api", check=False)
        if state.stdout.strip() not in ("running", "created", "configured"):
            logs = podman("logs", f"{PREFIX}-api", check=False)
            raise Fail(
                f"api exited ({state.stdout.strip()}):\n{(logs.stdout + logs.stderr)[-3000:]}"
            )
        # No systemd timers here: run the image's HEALTHCHECK by hand until it passes.
        if podman("healthcheck", "run", f"{PREFIX}-api", check=False).returncode == 0:
            healthy = True
            break
        time.sleep(0.5)
    ready_s = time.monotonic() - t0
    if not healthy:
        logs = podman("logs", f"{PREFIX}-api", check=False)
        raise Fail(f"api not healthy after 180 s:\n{(logs.stdout + logs.stderr)[-3000:]}")
    status = podman("inspect", "--format", "{{.State.Health.Status}}", f"{PREFIX}-api").stdout
    step(f"api healthy in {ready_s:.1f} s (HEALTHCHECK status: {status.strip()})")
    if http("GET", f"{base}/healthz")[0] != 200 or http("GET", f"{base}/readyz")[0] != 200:
        raise Fail("/healthz or /readyz is not 200")

    uid = podman("exec", f"{PREFIX}-api", "id", "-u").stdout.strip()
    if uid != "10001":
        raise Fail(f"api runs as uid {uid}, not 10001")

    code, body = http("GET", f"{base}/search?q={QUERY.replace(' ', '+')}&k=5")
    if code != 200 or len(body.get("results", [])) != 5:
        raise Fail(f"search gave HTTP {code}: {json.dumps(body)[:1000]}")
    v1 = body["index_version"]
    step(f"search: 5 results from version {v1}, top {body['results'][0]['id']}")
    if http("POST", f"{base}/admin/reload")[0] not in (401, 403):
        raise Fail("POST /admin/reload without the token was not refused")

    poller = Poller(base)
    poller.start()
    step("reindex (second) and reload while a client polls /search")
    run_job("reindex", services["reindex"], port)
    out = run_job("reload", services["reload"], port)
    time.sleep(2)
    poller.stop = True
    poller.join(timeout=60)
    v2 = http("GET", f"{base}/index")[1].get("version")
    if poller.failures:
        raise Fail(f"{len(poller.failures)} failed requests while reloading: {poller.failures[:5]}")
    if v2 == v1 or v2 not in poller.versions:
        raise Fail(
            f"version did not switch: {v1} -> {v2}, seen {poller.versions}; reload said {out}"
        )
    step(f"switched {v1} -> {v2}: {poller.ok} searches during reindex + reload, none failed")
    return {"ready_s": ready_s, "started_s": started_s, "polled": poller.ok, "versions": [v1, v2]}


# ---- 5. clean-up ------------------------------------------------------------------------------
def cleanup() -> None:
    for name in ("api", "reindex", "reload"):
        podman("rm", "-f", "-t", "5", f"{PREFIX}-{name}", check=False)
    podman("volume", "rm", "-f", VOLUME, check=False)
    if os.environ.get("KEEP_IMAGE", "1") == "0":
        podman("rmi", "-f", IMAGE, check=False)
    podman("image", "prune", "-f", check=False)


def du_gb(path: Path) -> float:
    run = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True)
    return int(run.stdout.split()[0]) / 1e9 if run.returncode == 0 else float("nan")


def main() -> int:
    t_all = time.monotonic()
    STORE.mkdir(parents=True, exist_ok=True)
    whole = DiskWatch(STORE)
    try:
        ensure_tools()
        podman("image", "prune", "-f", check=False)  # a failed run's leftovers
        check_disk()
        whole.start()
        ensure_base()
        cleanup_old = podman(
            "ps", "-a", "-q", "--filter", f"name={PREFIX}", check=False
        ).stdout.split()
        if cleanup_old:
            cleanup()
        if os.environ.get("SKIP_BUILD") == "1":  # developers: reuse the image already built
            build_s = float("nan")
        else:
            build_s = build()
        peak_gb = du_gb(STORE)
        size = check_image()
        step(f"image {IMAGE}: {size / 2**20:,.0f} MiB, built in {build_s:.0f} s")
        figures = run_services()
    except Fail as exc:
        print(f"[docker-test] FAILED: {exc}", file=sys.stderr, flush=True)
        whole.stop()
        cleanup()
        return 1
    whole.stop()
    cleanup()
    kept_gb = du_gb(STORE)
    print(
        "[docker-test] PASSED\n"
        f"  image size     {size / 2**20:,.0f} MiB ({IMAGE}, base {BASE})\n"
        f"  build time     {build_s:.0f} s\n"
        f"  time to ready  {figures['ready_s']:.1f} s from `podman run` to a passing HEALTHCHECK "
        f"({figures['started_s']:.1f} s of it creating the container: vfs copies the image)\n"
        f"  reload         {figures['versions'][0]} -> {figures['versions'][1]}, "
        f"{figures['polled']} polled searches, 0 failed\n"
        f"  disk           peak {whole.peak_gb:.1f} GB during the test; {peak_gb:.1f} GB in the "
        f"store after the build, {kept_gb:.1f} GB kept in {STORE}\n"
        f"  total          {time.monotonic() - t_all:.0f} s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
