"""The bootstrap that starts the app's driver in images without the SageMaker toolkit.

SageMaker puts channels under /opt/ml/input/data but never fills /opt/ml/code (the toolkit does
that in framework images). So a job in launch mode (b) gets two extra channels: `code` (the very
sourcedir.tar.gz of sagemaker_submit_directory) and `tg-driver` (this bootstrap as start.py and
the stdlib driver as toolkit.py). The container's entrypoint runs start.py with the image's
Python: it unpacks the code into /opt/ml/code (safely) and hands over to the driver, which sets
the SM_* environment and runs python or torchrun exactly as the local backends do. Standard
library only, Python >= 3.8: boto3 need not be in the image.
"""

from __future__ import annotations

START_PY = '''\
"""trainer-gui bootstrap (SageMaker, images without the training toolkit).

Unpacks the `code` channel's sourcedir.tar.gz into /opt/ml/code, then runs the driver next to
this file with the same arguments. Standard library only.
"""
import os
import sys
import tarfile

BASE = os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
CODE_DIR = os.path.join(BASE, "code")
ARCHIVE = os.path.join(BASE, "input", "data", "code", "sourcedir.tar.gz")


def _inside(path, root):
    path = os.path.realpath(path)
    return path == root or path.startswith(root + os.sep)


def unpack(archive, dest):
    os.makedirs(dest, exist_ok=True)
    root = os.path.realpath(dest)
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for m in members:
            target = os.path.join(root, m.name)
            bad = os.path.isabs(m.name) or ".." in m.name.replace("\\\\", "/").split("/")
            bad = bad or not _inside(target, root) or m.isdev() or m.isfifo()
            if m.issym() or m.islnk():
                base = os.path.dirname(target) if m.issym() else root
                bad = bad or os.path.isabs(m.linkname)
                bad = bad or not _inside(os.path.join(base, m.linkname), root)
            if bad:
                raise SystemExit("trainer-gui bootstrap: unsafe path in %s: %r" % (archive, m.name))
        if hasattr(tarfile, "data_filter"):
            tar.extractall(root, members=members, filter="data")
        else:
            tar.extractall(root, members=members)


def main():
    if os.path.isfile(ARCHIVE):
        unpack(ARCHIVE, CODE_DIR)
    driver = os.path.join(os.path.dirname(os.path.abspath(__file__)), "toolkit.py")
    python = sys.executable or "python3"
    os.execv(python, [python, driver] + sys.argv[1:])


if __name__ == "__main__":
    main()
'''
