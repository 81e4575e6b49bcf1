# nsenter_pid.py -- an Ansible connection into a container booted with
# systemd-nspawn, through the namespaces of its PID 1 (nsenter), for the
# deployment test.  No sshd, no system bus: the test keeps each container's
# leader PID in a file and names it as the host's ansible_host.
from __future__ import annotations

DOCUMENTATION = """
name: nsenter_pid
short_description: run commands in a booted container through nsenter
description:
  - Runs every command with nsenter into all namespaces of a PID (the
    container's PID 1 as seen from the host), as root.
author: minicdn
options:
  pid_file:
    description: file holding the container leader's PID
    vars:
      - name: ansible_host
"""

import os
import shlex
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleFileNotFound
from ansible.plugins.connection import ConnectionBase


class Connection(ConnectionBase):
    transport = "nsenter_pid"
    has_pipelining = True

    def _pid(self) -> str:
        path = self.get_option("pid_file")
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError as e:
            raise AnsibleConnectionFailure(f"container pid file {path}: {e}")

    def _prefix(self) -> list[str]:
        return ["nsenter", "-t", self._pid(), "-m", "-u", "-i", "-n", "-p", "-C", "--", "env", "-i",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]

    def _connect(self):
        self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        p = subprocess.Popen(self._prefix() + ["/bin/sh", "-c", cmd], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = p.communicate(in_data)
        return p.returncode, out, err

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        if not os.path.exists(in_path):
            raise AnsibleFileNotFound(f"file not found: {in_path}")
        with open(in_path, "rb") as f:
            p = subprocess.run(self._prefix() + ["/bin/sh", "-c", "cat > " + shlex.quote(out_path)], stdin=f,
                               capture_output=True)
        if p.returncode != 0:
            raise AnsibleConnectionFailure(f"put {out_path}: {p.stderr.decode(errors='replace')}")

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        with open(out_path, "wb") as f:
            p = subprocess.run(self._prefix() + ["cat", in_path], stdout=f, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise AnsibleConnectionFailure(f"fetch {in_path}: {p.stderr.decode(errors='replace')}")

    def close(self):
        self._connected = False
