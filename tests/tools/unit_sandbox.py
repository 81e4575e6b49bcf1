#!/usr/bin/python3
"""unit_sandbox.py -- run a program under a unit's seccomp settings (tests).

    unit_sandbox.py UNITFILE PROGRAM [ARGS...]

Reads SystemCallFilter=, SystemCallErrorNumber=, RestrictAddressFamilies= and
MemoryDenyWriteExecute= from UNITFILE, installs the seccomp filter systemd 252
builds from them, and execs PROGRAM:
  - SystemCallFilter: the first list allows (groups expanded with
    `systemd-analyze syscall-filter`), later "~" lists remove; any other
    system call fails with SystemCallErrorNumber (EPERM when unset);
  - RestrictAddressFamilies: socket() of another family fails with EAFNOSUPPORT;
  - MemoryDenyWriteExecute (src/shared/seccomp-util.c): mmap with both
    PROT_WRITE and PROT_EXEC, mprotect/pkey_mprotect adding PROT_EXEC and
    shmat with SHM_EXEC fail with EPERM.
So a daemon that needs a system call its unit forbids fails here, on this
machine, without booting systemd.  Needs Debian's python3-seccomp, hence
/usr/bin/python3."""
import errno
import os
import socket
import subprocess
import sys

import seccomp

PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000


def unit_settings(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith(("#", ";")):
                k, v = line.split("=", 1)
                out.setdefault(k, []).append(v)
    return out


def expand(name, seen=None):
    """A syscall name, or every syscall of a @group (recursively)."""
    if not name.startswith("@"):
        return {name}
    seen = seen if seen is not None else set()
    if name in seen:
        return set()
    seen.add(name)
    text = subprocess.run(["systemd-analyze", "syscall-filter", name], check=True,
                          capture_output=True, text=True).stdout
    calls = set()
    for line in text.splitlines()[1:]:
        line = line.strip()
        if line and not line.startswith("#"):
            calls |= expand(line, seen)
    return calls


def syscall_set(lists):
    allowed = None
    for spec in lists:
        deny = spec.startswith("~")
        names = set()
        for n in spec.lstrip("~").split():
            names |= expand(n)
        if deny:
            allowed = (allowed or set()) - names if allowed is not None else None
        else:
            allowed = names if allowed is None else allowed | names
    return allowed


def main():
    unit, argv = sys.argv[1], sys.argv[2:]
    u = unit_settings(unit)
    err = getattr(errno, (u.get("SystemCallErrorNumber") or ["EPERM"])[-1])
    allowed = syscall_set(u.get("SystemCallFilter", []))
    # One filter per setting, as systemd does: the kernel applies the most
    # restrictive answer of all.  The allow-list goes last, since loading a
    # filter is itself a system call the list may not name.
    if u.get("RestrictAddressFamilies"):
        families = {getattr(socket, a) for a in " ".join(u["RestrictAddressFamilies"]).split()}
        f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        for fam in range(0, 46):
            if fam not in families:
                f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.EQ, fam))
        f.load()
    if (u.get("MemoryDenyWriteExecute") or ["no"])[-1] == "yes":
        f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        deny = seccomp.ERRNO(errno.EPERM)
        both = PROT_WRITE | PROT_EXEC
        f.add_rule(deny, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, both, both))
        f.add_rule(deny, "mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
        f.add_rule(deny, "pkey_mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
        f.add_rule(deny, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC))
        f.load()  # sets no_new_privs, as NoNewPrivileges= does
    if allowed is not None:
        f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(err))
        for call in sorted(allowed):
            try:
                f.add_rule(seccomp.ALLOW, call)
            except (RuntimeError, ValueError):
                pass  # not a system call on this architecture
        f.load()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
