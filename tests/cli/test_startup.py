"""`trainer-gui --help` and the CLI's parser load only what printing the help needs."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pydantic", "numpy", "docker", "boto3", "botocore", "torch", "PySide6", "psutil", "yaml")


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from trainer_gui.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
