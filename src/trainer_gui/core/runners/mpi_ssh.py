"""Per-job SSH keys for MPI jobs in local Docker (distribution kind: mpi).

As SageMaker's toolkit runs MPI, algo-1 starts `mpirun`, which starts Open MPI's daemon on the
other hosts over SSH. Every job gets fresh keys, generated here at submit with the standard
library only (Ed25519, RFC 8032; no `cryptography`, no `ssh-keygen` on the host), written in the
run folder's `ssh/` alone, mounted read-only into the job's containers, and removed when the job
ends. One host key serves all the job's hosts and is pinned in `known_hosts`, so the hosts check
each other (StrictHostKeyChecking) and nothing is written to any `~/.ssh`.

The in-container side (sshd, the ssh client options, mpirun) is in `contract/toolkit.py`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path

from trainer_gui.core import safety

#: The folder of a run that holds its keys, and where containers see it.
SSH_DIR = "ssh"
CONTAINER_SSH_DIR = "/opt/trainer-gui/ssh"

# -- Ed25519 public key from a seed (RFC 8032, section 5.1.5) -------------------------------------

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _add(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Point addition in extended coordinates (RFC 8032, 5.1.4)."""
    aa = (a[1] - a[0]) * (b[1] - b[0]) % _P
    bb = (a[1] + a[0]) * (b[1] + b[0]) % _P
    cc = 2 * a[3] * b[3] * _D % _P
    dd = 2 * a[2] * b[2] % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _base_point() -> tuple[int, int, int, int]:
    y = 4 * pow(5, _P - 2, _P) % _P
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if x & 1:
        x = _P - x
    return x, y, 1, x * y % _P


def ed25519_public_key(seed: bytes) -> bytes:
    """The 32-byte public key of a 32-byte Ed25519 private key (seed)."""
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    digest = hashlib.sha512(seed).digest()
    scalar = int.from_bytes(digest[:32], "little")
    scalar &= (1 << 254) - 8
    scalar |= 1 << 254
    result, point = (0, 1, 1, 0), _base_point()
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    inverse = pow(result[2], _P - 2, _P)
    x, y = result[0] * inverse % _P, result[1] * inverse % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


# -- OpenSSH key files ----------------------------------------------------------------------------


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _public_blob(public: bytes) -> bytes:
    return _string(b"ssh-ed25519") + _string(public)


def public_line(seed: bytes, comment: str) -> str:
    """`ssh-ed25519 AAAA... comment`, as in id_ed25519.pub and authorized_keys."""
    blob = _public_blob(ed25519_public_key(seed))
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"


def private_key_file(seed: bytes, comment: str) -> str:
    """The unencrypted `openssh-key-v1` file `ssh-keygen -t ed25519 -N ''` writes."""
    public = ed25519_public_key(seed)
    check = os.urandom(4)
    body = check + check + _public_blob(public) + _string(seed + public) + _string(comment.encode())
    body += bytes(range(1, 1 + (-len(body)) % 8))
    data = (
        b"openssh-key-v1\0"
        + _string(b"none")
        + _string(b"none")
        + _string(b"")
        + struct.pack(">I", 1)
        + _string(_public_blob(public))
        + _string(body)
    )
    text = base64.b64encode(data).decode()
    lines = [text[i : i + 70] for i in range(0, len(text), 70)]
    return "\n".join(
        ["-----BEGIN OPENSSH PRIVATE KEY-----", *lines, "-----END OPENSSH PRIVATE KEY-----", ""]
    )


# -- one job's keys -------------------------------------------------------------------------------

CLIENT_CONFIG = """\
Host *
  IdentityFile {dir}/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile {dir}/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
  ConnectTimeout 10
"""


def write_job_keys(run_dir: Path, job_id: str, hosts: Sequence[str]) -> Path:
    """Fresh keys for one job in `<run_dir>/ssh` (files 0600, the folder 0700): the client key,
    its public half as `authorized_keys`, the hosts' shared host key, `known_hosts` naming
    every host with it, and the client `config`. Any keys an earlier attempt left are replaced."""
    folder = safety.inside_run(run_dir, run_dir / SSH_DIR)
    remove_job_keys(run_dir)
    safety.make_dirs(run_dir, folder)
    folder.chmod(0o700)
    client, host = os.urandom(32), os.urandom(32)
    host_public = public_line(host, f"{job_id}-hosts").rsplit(" ", 1)[0]
    files = {
        "id_ed25519": private_key_file(client, f"trainer-gui-{job_id}"),
        "authorized_keys": public_line(client, f"trainer-gui-{job_id}") + "\n",
        "host_ed25519": private_key_file(host, f"{job_id}-hosts"),
        "known_hosts": f"{','.join(hosts)} {host_public}\n",
        "config": CLIENT_CONFIG.format(dir=CONTAINER_SSH_DIR),
    }
    for name, text in files.items():
        path = folder / name
        # Created 0600 from the start: a private key is never readable by others, not even
        # for the moment between writing and chmod.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        path.chmod(0o600)
    return folder


def write_identity(run_dir: Path, uid: int, gid: int) -> None:
    """`passwd` and `group` files beside the keys for a job that runs as a user the image does
    not know (the app's own uid, so the run folder stays the user's): ssh and sshd refuse a
    user with no name. Mounted read-only over the containers' /etc/passwd and /etc/group."""
    folder = safety.inside_run(run_dir, run_dir / SSH_DIR)
    users = [
        "root:x:0:0:root:/root:/bin/sh",
        "sshd:x:100:65534::/run/sshd:/usr/sbin/nologin",
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
    ]
    groups = ["root:x:0:", "nogroup:x:65534:"]
    if uid not in (0, 100, 65534):
        users.append(f"trainer:x:{uid}:{gid}:trainer:/tmp:/bin/sh")
    if gid not in (0, 65534):
        groups.append(f"trainer:x:{gid}:")
    for name, lines in (("passwd", users), ("group", groups)):
        path = folder / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        path.chmod(0o644)


def remove_job_keys(run_dir: Path) -> None:
    """The job's keys go with the job (success, failure, stop, a later clean-up)."""
    folder = run_dir / SSH_DIR
    if folder.is_symlink() or folder.is_file():
        return  # never ours: leave what we did not write alone
    if folder.is_dir():
        safety.inside_run(run_dir, folder)
        shutil.rmtree(folder, ignore_errors=True)
