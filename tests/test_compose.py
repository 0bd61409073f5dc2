"""Structure of docker-compose.yml and its companions (no Docker engine needed).

Each rule is a function returning the problems it finds, so the same rule is checked
on the real file (no problems) and on modified copies that break it (the problem is
reported): a rule that cannot fail would be worthless.

When ``docker-compose`` exists, ``config -q`` must accept the file with .env.example.
When this machine can run the sandbox, bubblewrap is also started under the worker's
exact capability set, ``no-new-privileges`` and seccomp profile (emulated with setpriv
and docker/seccomp_emulate.py), and shown to fail under Docker's default profile.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from grader.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
OVERRIDES = sorted((ROOT / "docker").glob("compose.*.yml"))
ENV_EXAMPLE = ROOT / ".env.example"
SECCOMP = ROOT / "docker" / "seccomp-worker.json"
EMULATE = ROOT / "docker" / "seccomp_emulate.py"

REQUIRED_SERVICES = {"web", "worker", "db", "broker", "storage", "migrate"}
WORKERS = ("worker", "worker-cpu")
#: Exactly what the sandbox needs (measured: see docker/SECURITY.md); nothing more.
WORKER_CAPS = {
    "SYS_ADMIN", "NET_ADMIN", "SETUID", "SETGID", "SETPCAP",
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL",
}  # fmt: skip
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY|KEY_|TOKEN|CREDENTIAL|_AUTH$", re.I)
REQUIRED_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}")
VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
ANY_REF = re.compile(r"\$\{[^}]*\}")


def load(path: Path = COMPOSE) -> dict[str, Any]:
    with path.open() as fh:
        return yaml.safe_load(fh)


def strings(node: Any) -> Iterator[str]:
    """Every string (keys and values) in a parsed YAML tree; comments are not in it."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def one_shot(compose: dict[str, Any]) -> set[str]:
    """Services others wait for to *complete*: they exit, so no health check."""
    done = set()
    for svc in compose["services"].values():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, dict):
            for name, cond in deps.items():
                if (cond or {}).get("condition") == "service_completed_successfully":
                    done.add(name)
    return done


def env_example_vars(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def url_password_is_literal(value: str) -> bool:
    """True when a URL's ``user:password@`` part holds anything but one required ${VAR:?}."""
    refs = ANY_REF.findall(value)
    masked = ANY_REF.sub(lambda m: f"\0{refs.index(m.group(0))}\0", value)
    match = re.search(r"://([^/@]*)@", masked)
    if not match or ":" not in match.group(1):
        return False
    password = match.group(1).split(":", 1)[1]
    token = re.fullmatch(r"\0(\d+)\0", password)
    return not (token and REQUIRED_REF.fullmatch(refs[int(token.group(1))]))


# --------------------------------------------------------------------------- rules
def check_services(c: dict[str, Any]) -> list[str]:
    missing = REQUIRED_SERVICES - set(c.get("services") or {})
    return [f"missing service {name}" for name in sorted(missing)]


def check_healthchecks(c: dict[str, Any]) -> list[str]:
    problems = []
    once = one_shot(c)
    for name, svc in c["services"].items():
        if name in once:
            if svc.get("restart", "no") != "no":
                problems.append(f"{name}: one-shot service must not restart")
            continue
        test = (svc.get("healthcheck") or {}).get("test")
        if not test or test == ["NONE"] or (svc.get("healthcheck") or {}).get("disable"):
            problems.append(f"{name}: long-running service without a health check")
    return problems


def check_start_order(c: dict[str, Any]) -> list[str]:
    wanted = {
        "migrate": "service_completed_successfully",
        "db": "service_healthy",
        "broker": "service_healthy",
    }
    problems = []
    for name in ("web", *WORKERS):
        if name not in c["services"]:
            continue
        deps = c["services"][name].get("depends_on") or {}
        for dep, condition in wanted.items():
            got = (deps.get(dep) or {}).get("condition") if isinstance(deps, dict) else None
            if got != condition:
                problems.append(f"{name} must depend on {dep} with {condition} (got {got})")
    mig = (c["services"].get("migrate") or {}).get("depends_on") or {}
    if (mig.get("db") or {}).get("condition") != "service_healthy":
        problems.append("migrate must wait for a healthy db")
    return problems


def check_gpu(c: dict[str, Any]) -> list[str]:
    worker = c["services"].get("worker") or {}
    devices = (((worker.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get(
        "devices"
    ) or []
    for dev in devices:
        if dev.get("driver") == "nvidia" and "gpu" in (dev.get("capabilities") or []):
            return []
    return ["worker has no deploy.resources.reservations.devices entry for nvidia gpu"]


def check_no_docker_socket(c: dict[str, Any]) -> list[str]:
    return [f"Docker socket referenced: {s}" for s in strings(c) if "docker.sock" in s]


def check_no_secret_literals(c: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in (c.get("services") or {}).items():
        for key, value in environment(svc).items():
            if SECRET_NAME.search(key) and not REQUIRED_REF.fullmatch(value):
                problems.append(f"{name}: {key} is not a required ${{VAR:?...}} reference")
            if url_password_is_literal(value):
                problems.append(f"{name}: {key} embeds a literal password")
        for key, value in svc.items():
            if key == "environment":
                continue
            text = " ".join(strings(value))  # a command list reads as one line
            if re.search(r"(requirepass|password)[ =]+(?![\"']?\$)\S", text, re.I):
                problems.append(f"{name}: literal password in {text[:60]!r}")
        if "build" in svc and isinstance(svc["build"], dict):
            for arg in strings(svc["build"].get("args") or {}):
                if SECRET_NAME.search(arg):
                    problems.append(f"{name}: secret-like build argument {arg}")
    return problems


def _security(svc: dict[str, Any]) -> list[str]:
    return [str(s).replace(":", "=", 1) for s in svc.get("security_opt") or []]


def _hardened(name: str, svc: dict[str, Any]) -> list[str]:
    problems = []
    if svc.get("read_only") is not True:
        problems.append(f"{name}: root file system not read_only")
    if not svc.get("tmpfs"):
        problems.append(f"{name}: no tmpfs for /tmp")
    if "ALL" not in (svc.get("cap_drop") or []):
        problems.append(f"{name}: cap_drop must contain ALL")
    if "no-new-privileges=true" not in _security(svc):
        problems.append(f"{name}: no-new-privileges not set")
    if not isinstance(svc.get("pids_limit"), int) or svc["pids_limit"] <= 0:
        problems.append(f"{name}: no numeric pids_limit")
    limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    if not (svc.get("mem_limit") or limits.get("memory")):
        problems.append(f"{name}: no memory limit")
    if svc.get("privileged"):
        problems.append(f"{name}: privileged")
    return problems


def check_worker_limits(c: dict[str, Any]) -> list[str]:
    problems = []
    for name in WORKERS:
        svc = c["services"].get(name)
        if svc is None:
            continue
        problems += _hardened(name, svc)
        extra = set(svc.get("cap_add") or []) - WORKER_CAPS
        if extra:
            problems.append(f"{name}: capabilities beyond the sandbox's needs: {sorted(extra)}")
        sec = _security(svc)
        seccomp = [s.split("=", 1)[1] for s in sec if s.startswith("seccomp=")]
        if seccomp != ["./docker/seccomp-worker.json"]:
            problems.append(f"{name}: must use docker/seccomp-worker.json, got {seccomp}")
        backend = (c.get("networks") or {}).get("backend") or {}
        if backend.get("internal") is not True or any(
            n != "backend" for n in svc.get("networks") or ["default"]
        ):
            problems.append(f"{name}: must be on the internal backend network only")
    return problems


def check_web_limits(c: dict[str, Any]) -> list[str]:
    problems = []
    for name in ("web", "migrate"):
        svc = c["services"][name]
        problems += _hardened(name, svc)
        if svc.get("cap_add"):
            problems.append(f"{name}: must not add capabilities")
        if any(s.startswith(("seccomp=unconfined", "apparmor=unconfined")) for s in _security(svc)):
            problems.append(f"{name}: must keep Docker's seccomp and AppArmor profiles")
    return problems


def check_no_host_namespaces(c: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in c["services"].items():
        for key in ("network_mode", "pid", "ipc", "userns_mode", "cgroup"):
            if str(svc.get(key, "")).startswith("host"):
                problems.append(f"{name}: {key}: host")
        if svc.get("privileged"):
            problems.append(f"{name}: privileged")
    return problems


def check_env_example(c: dict[str, Any], text: str) -> list[str]:
    listed = env_example_vars(text)
    problems = []
    referenced = {m for s in strings(c) for m in VAR_REF.findall(s)}
    for var in sorted(referenced - set(listed)):
        problems.append(f".env.example lacks {var} (used in the compose file)")
    for field in Settings.model_fields:
        if f"GRADER_{field.upper()}" not in listed:
            problems.append(f".env.example lacks GRADER_{field.upper()} (grader/settings.py)")
    for var, value in listed.items():
        if SECRET_NAME.search(var) and value:
            problems.append(f".env.example ships a value for secret {var}")
    return problems


RULES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "services": check_services,
    "healthchecks": check_healthchecks,
    "start order": check_start_order,
    "gpu": check_gpu,
    "docker socket": check_no_docker_socket,
    "secrets": check_no_secret_literals,
    "worker limits": check_worker_limits,
    "web limits": check_web_limits,
    "host namespaces": check_no_host_namespaces,
}


# --------------------------------------------------------------------------- the real files
@pytest.mark.parametrize("rule", list(RULES))
def test_compose_file_follows_rule(rule: str) -> None:
    assert RULES[rule](load()) == []


def test_env_example_lists_every_variable() -> None:
    compose = load()
    for override in OVERRIDES:
        compose.setdefault("x-overrides", []).append(load(override))
    assert check_env_example(compose, ENV_EXAMPLE.read_text()) == []


def test_overrides_add_no_socket_and_no_secrets() -> None:
    assert OVERRIDES, "docker/compose.*.yml overrides expected"
    for override in OVERRIDES:
        data = load(override)
        assert check_no_docker_socket(data) == [], override
        assert check_no_secret_literals(data) == [], override
        for name, svc in (data.get("services") or {}).items():
            for port in svc.get("ports") or []:
                assert not str(port).startswith(("0.0.0.0", "${GRADER_PRIVATE_BIND:-")), name


def test_gpu_reservation_and_worker_command_agree() -> None:
    worker = load()["services"]["worker"]
    assert "--gpus" in worker["command"]
    dev = worker["deploy"]["resources"]["reservations"]["devices"][0]
    assert dev == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}


# --------------------------------------------------------------------------- negative copies
def _drop(path: list[str]) -> Callable[[dict[str, Any]], None]:
    def mutate(c: dict[str, Any]) -> None:
        node = c
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


def _set(path: list[str], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(c: dict[str, Any]) -> None:
        node = c
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _add_volume(service: str, volume: str) -> Callable[[dict[str, Any]], None]:
    def mutate(c: dict[str, Any]) -> None:
        c["services"][service].setdefault("volumes", []).append(volume)

    return mutate


NEGATIVE = [
    ("services", _drop(["services", "broker"]), "missing service broker"),
    ("healthchecks", _drop(["services", "db", "healthcheck"]), "db: long-running"),
    ("healthchecks", _drop(["services", "worker", "healthcheck"]), "worker: long-running"),
    (
        "start order",
        _set(["services", "web", "depends_on", "migrate"], {"condition": "service_started"}),
        "web must depend on migrate",
    ),
    ("start order", _drop(["services", "web", "depends_on", "broker"]), "on broker"),
    ("gpu", _drop(["services", "worker", "deploy"]), "nvidia gpu"),
    (
        "gpu",
        _set(
            ["services", "worker", "deploy", "resources", "reservations", "devices"],
            [{"driver": "nvidia", "capabilities": ["compute"]}],
        ),
        "nvidia gpu",
    ),
    (
        "docker socket",
        _add_volume("worker", "/var/run/docker.sock:/var/run/docker.sock"),
        "docker.sock",
    ),
    (
        "docker socket",
        _add_volume("web", "/run/docker.sock:/var/run/docker.sock:ro"),
        "docker.sock",
    ),
    ("secrets", _set(["services", "web", "environment", "SECRET_KEY"], "hunter2"), "SECRET_KEY"),
    (
        "secrets",
        _set(
            ["services", "db", "environment", "POSTGRES_PASSWORD"],
            "${POSTGRES_PASSWORD:-devpassword}",
        ),
        "POSTGRES_PASSWORD",
    ),
    (
        "secrets",
        _set(
            ["services", "web", "environment", "DATABASE_URL"],
            "postgresql://grader:hunter2@db/grader",
        ),
        "literal password",
    ),
    (
        "secrets",
        _set(["services", "broker", "command"], ["redis-server", "--requirepass", "hunter2"]),
        "literal password",
    ),
    ("worker limits", _set(["services", "worker", "read_only"], False), "read_only"),
    ("worker limits", _drop(["services", "worker-cpu", "tmpfs"]), "tmpfs"),
    ("worker limits", _set(["services", "worker", "cap_drop"], []), "cap_drop"),
    (
        "worker limits",
        _set(["services", "worker", "cap_add"], [*WORKER_CAPS, "SYS_PTRACE"]),
        "SYS_PTRACE",
    ),
    ("worker limits", _drop(["services", "worker", "pids_limit"]), "pids_limit"),
    ("worker limits", _drop(["services", "worker", "mem_limit"]), "memory limit"),
    (
        "worker limits",
        _set(["services", "worker", "security_opt"], ["seccomp=unconfined", "apparmor=unconfined"]),
        "no-new-privileges",
    ),
    (
        "worker limits",
        _set(
            ["services", "worker", "security_opt"], ["no-new-privileges:true", "seccomp=unconfined"]
        ),
        "seccomp",
    ),
    (
        "worker limits",
        _set(["services", "worker", "networks"], ["backend", "frontend"]),
        "internal backend",
    ),
    ("web limits", _set(["services", "web", "cap_add"], ["NET_ADMIN"]), "capabilities"),
    ("web limits", _set(["services", "web", "read_only"], False), "read_only"),
    ("host namespaces", _set(["services", "worker", "pid"], "host"), "pid: host"),
    ("host namespaces", _set(["services", "web", "privileged"], True), "privileged"),
]


@pytest.mark.parametrize(
    ("rule", "mutate", "expected"), NEGATIVE, ids=[f"{r}-{e}" for r, _, e in NEGATIVE]
)
def test_rule_catches_a_broken_copy(
    rule: str, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    broken = copy.deepcopy(load())
    mutate(broken)
    problems = RULES[rule](broken)
    assert any(expected in p for p in problems), problems


def test_env_rule_catches_missing_and_filled_entries() -> None:
    text = ENV_EXAMPLE.read_text()
    compose = load()
    assert check_env_example(compose, text) == []
    without = "\n".join(
        line for line in text.splitlines()
        if not line.startswith(("GRADER_SANDBOX_WALL_SECONDS=", "REDIS_PASSWORD="))
    )  # fmt: skip
    problems = check_env_example(compose, without)
    assert any("GRADER_SANDBOX_WALL_SECONDS" in p for p in problems), problems
    assert any("REDIS_PASSWORD (used" in p for p in problems), problems
    filled = text.replace("\nSECRET_KEY=\n", "\nSECRET_KEY=not-so-secret\n")
    assert any("secret SECRET_KEY" in p for p in check_env_example(compose, filled))


# --------------------------------------------------------------------------- Dockerfiles
@pytest.mark.parametrize("name", ["Dockerfile.web", "Dockerfile.worker"])
def test_dockerfiles_install_dependencies_before_code(name: str) -> None:
    lines = [ln.strip() for ln in (ROOT / "docker" / name).read_text().splitlines()]
    deps = next(i for i, ln in enumerate(lines) if "requirements.txt" in ln and "pip" in ln)
    code = next(i for i, ln in enumerate(lines) if ln.startswith("COPY grader"))
    assert deps < code
    assert not any(re.match(r"(ARG|ENV)\s+\S*(PASSWORD|SECRET|TOKEN)", ln) for ln in lines)


def test_web_image_runs_as_non_root_and_dependencies_match_pyproject() -> None:
    text = (ROOT / "docker" / "Dockerfile.web").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and not users[-1].startswith(("0", "root"))
    out = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "requirements.py"), str(ROOT / "pyproject.toml"),
         "--exclude", "tensorflow,tensorflow-cpu"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert any(line.startswith("gunicorn") for line in out)
    assert not any(line.lower().startswith("tensorflow") for line in out)


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    entries = (ROOT / ".dockerignore").read_text().split()
    for pattern in (".env", ".git", "instance", "submissions", "data"):
        assert pattern in entries


# --------------------------------------------------------------------------- seccomp profile
def test_seccomp_profile_is_dockers_default_plus_pivot_root() -> None:
    profile = json.loads(SECCOMP.read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    rules = profile["syscalls"]
    pivot = [r for r in rules if "pivot_root" in r["names"]]
    assert pivot == [r for r in rules if r["names"] == ["pivot_root"]]
    assert len(pivot) == 1 and pivot[0]["includes"] == {"caps": ["CAP_SYS_ADMIN"]}
    unconditional = next(r for r in rules if "read" in r["names"])
    for dangerous in ("mount", "unshare", "pivot_root", "setns", "bpf", "kexec_load",
                      "init_module", "open_by_handle_at", "keyctl", "add_key"):  # fmt: skip
        assert dangerous not in unconditional["names"]


def _compose_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GRADER_PRIVATE_BIND", "10.0.0.1")  # only for the expose override
    for var, value in env_example_vars(ENV_EXAMPLE.read_text()).items():
        if not value and not env.get(var):
            env[var] = "placeholder-for-config-check"
    return env


def test_docker_compose_config_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        print("docker-compose not installed: `config -q` not run")
        pytest.skip("docker-compose binary absent (apt-get install docker-compose)")
    for extra in ([], *[["-f", str(o)] for o in OVERRIDES]):
        proc = subprocess.run(
            [binary, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), *extra, "config", "-q"],
            cwd=ROOT, env=_compose_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr


def test_docker_compose_config_refuses_missing_secrets() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose binary absent")
    env = {k: v for k, v in _compose_env().items() if k != "REDIS_PASSWORD"}
    env["REDIS_PASSWORD"] = ""
    proc = subprocess.run(
        [binary, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0 and "REDIS_PASSWORD" in proc.stderr


# --------------------------------------------------------------------------- emulated worker
def _emulation_missing() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "needs root on Linux"
    for tool in ("bwrap", "setpriv", "prlimit", "timeout"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    try:
        import pyseccomp  # noqa: F401
    except ImportError:
        return "pyseccomp not installed"
    return None


def _sandbox_under(profile: Path, caps: set[str]) -> subprocess.CompletedProcess[str]:
    bounding = "-all," + ",".join(f"+{c.lower()}" for c in sorted(caps))
    probe = (
        "from grader.sandbox.runner import sandbox_status; ok, why = sandbox_status(); "
        "print(why); raise SystemExit(0 if ok else 1)"
    )
    argv = [
        "setpriv", "--no-new-privs", "--inh-caps=-all", f"--bounding-set={bounding}",
        sys.executable, str(EMULATE), str(profile), "--", sys.executable, "-c", probe,
    ]  # fmt: skip
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_sandbox_starts_with_exactly_the_worker_settings(tmp_path: Path) -> None:
    """The worker's cap_add, no-new-privileges and seccomp profile are enough for bwrap;
    Docker's default profile (ours without pivot_root) or one capability less is not."""
    reason = _emulation_missing()
    if reason:
        pytest.skip(reason)
    caps = set(load()["services"]["worker"]["cap_add"])
    ok = _sandbox_under(SECCOMP, caps)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    default = json.loads(SECCOMP.read_text())
    default["syscalls"] = [r for r in default["syscalls"] if r["names"] != ["pivot_root"]]
    docker_default = tmp_path / "docker-default.json"
    docker_default.write_text(json.dumps(default))
    refused = _sandbox_under(docker_default, caps)
    assert refused.returncode != 0 and "pivot_root" in refused.stdout, refused.stdout

    for cap in ("SYS_ADMIN", "NET_ADMIN"):
        fewer = _sandbox_under(SECCOMP, caps - {cap})
        assert fewer.returncode != 0, f"sandbox started without {cap}"
