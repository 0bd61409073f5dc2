"""Run a command under a Docker-format seccomp profile, resolved the way Docker does.

Local verification only (no Docker engine is needed): rules with ``includes``/``excludes``
on capabilities are resolved against this process's bounding set, on architectures by
the machine's, then the filter is loaded and the command executed. Combine with
``setpriv`` to reproduce a container's capability set and ``no-new-privileges``::

    setpriv --no-new-privs --inh-caps=-all --bounding-set=-all,+sys_admin,... \\
        python docker/seccomp_emulate.py docker/seccomp-worker.json -- CMD ...

Not emulated: AppArmor, Docker's masked /proc paths, cgroups, the device cgroup.
"""

from __future__ import annotations

import json
import os
import platform
import sys

# Linux capability numbers (include/uapi/linux/capability.h).
CAPS = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
]
#: Docker's names for the machine architecture, as used in ``includes.arches``.
ARCHES = {"x86_64": {"amd64", "x86", "x32"}, "aarch64": {"arm64", "arm"}}


def bounding_caps(status: str = "/proc/self/status") -> set[str]:
    with open(status) as fh:
        for line in fh:
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                return {f"CAP_{n}" for i, n in enumerate(CAPS) if mask >> i & 1}
    raise RuntimeError("no CapBnd in /proc/self/status")


def applies(rule: dict, caps: set[str], arches: set[str]) -> bool:
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if inc.get("arches") and not set(inc["arches"]) & arches:
        return False
    if exc.get("caps") and set(exc["caps"]) & caps:
        return False
    return not (exc.get("arches") and set(exc["arches"]) & arches)


def build_filter(profile: dict, caps: set[str], arches: set[str]):  # -> SyscallFilter
    import pyseccomp as sc

    ops = {"SCMP_CMP_" + n: getattr(sc, n) for n in ("NE", "LT", "LE", "EQ", "GE", "GT")}

    def action(name: str, errno_ret: int | None):
        if name == "SCMP_ACT_ALLOW":
            return sc.ALLOW
        if name == "SCMP_ACT_ERRNO":
            return sc.ERRNO(1 if errno_ret is None else errno_ret)
        raise ValueError(f"unsupported action {name}")

    filt = sc.SyscallFilter(action(profile["defaultAction"], profile.get("defaultErrnoRet")))
    for rule in profile["syscalls"]:
        if not applies(rule, caps, arches):
            continue
        act = action(rule["action"], rule.get("errnoRet"))
        args = []
        for a in rule.get("args") or []:
            if a["op"] == "SCMP_CMP_MASKED_EQ":  # Docker: value = mask, valueTwo = datum
                args.append(sc.Arg(a["index"], sc.MASKED_EQ, a["value"], a.get("valueTwo", 0)))
            else:
                args.append(sc.Arg(a["index"], ops[a["op"]], a["value"]))
        for name in rule["names"]:
            try:
                filt.add_rule(act, name, *args)
            except (ValueError, OSError):
                continue  # not a syscall on this architecture (e.g. chown32 on x86_64)
    return filt


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") != 1:
        sys.stderr.write(__doc__ or "")
        return 2
    with open(argv[0]) as fh:
        profile = json.load(fh)
    command = argv[2:]
    arches = ARCHES.get(platform.machine(), set())
    build_filter(profile, bounding_caps(), arches).load()
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
