#!/usr/bin/python3
"""mdwe_exec.py -- run a program under systemd's MemoryDenyWriteExecute= filter (tests).

    mdwe_exec.py PROGRAM [ARGS...]

Installs the same seccomp rules systemd 252 does for MemoryDenyWriteExecute=yes
(src/shared/seccomp-util.c, seccomp_memory_deny_write_execute) and execs
PROGRAM: mmap with both PROT_WRITE and PROT_EXEC, any mprotect or
pkey_mprotect adding PROT_EXEC, and shmat with SHM_EXEC fail with EPERM.
Needs Debian's python3-seccomp, hence /usr/bin/python3."""
import errno
import os
import sys

import seccomp

PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000


def main():
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    deny = seccomp.ERRNO(errno.EPERM)
    f.add_rule(deny, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_WRITE | PROT_EXEC,
                                          PROT_WRITE | PROT_EXEC))
    f.add_rule(deny, "mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
    f.add_rule(deny, "pkey_mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
    f.add_rule(deny, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC))
    f.load()  # sets no_new_privs, as NoNewPrivileges= does
    os.execv(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
