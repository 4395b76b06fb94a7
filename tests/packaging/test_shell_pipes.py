"""No pipeline in the release scripts ends in a reader that may stop early (defect 5 of issue 11).

`make package-check` once stopped with exit 141 right after the desktop-file check and passed on
a retry: `ldconfig -p | awk '$1 == l { print $NF; exit }'` in packaging/linux/build.sh. awk
exits at the first match; if ldconfig still has output to write it dies of SIGPIPE, and under
`set -o pipefail` that 141 is the pipeline's status, so `set -e` ends the build, or not,
depending on scheduling. `head`, `grep -q`/`-m`/`-l`, `sed ...q` and `read` do the same. The
scripts read files, variables or here-strings instead; this static check keeps it so.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from packaging_helpers import ROOT

SCRIPT_DIRS = ("packaging", "scripts", ".ci")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
_CASE_PATTERN = re.compile(r"^(\s*)([^\s()'\"]+(?:\|[^\s()'\"]+)+)\)")
_SED_QUIT = re.compile(r"(?:^|[;{}/])\s*[qQ]\s*\d*\s*(?:$|[;}])")


def pipefail_scripts() -> list[Path]:
    found = []
    for folder in SCRIPT_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            if not path.is_file() or path.suffix not in ("", ".sh"):
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            shell = path.suffix == ".sh" or text.startswith("#!/usr/bin/env bash")
            if shell and "pipefail" in text:
                found.append(path)
    return found


def _without_heredocs(text: str) -> list[str]:
    """The script's lines, heredoc bodies blanked (they are another program's text)."""
    lines = text.splitlines()
    out: list[str] = []
    end: str | None = None
    for line in lines:
        if end is not None:
            out.append("")
            if line.strip() == end:
                end = None
            continue
        match = _HEREDOC.search(line.replace("<<<", "   "))
        if match:
            end = match.group(2)
        # case patterns (`-h|--help)`) are not pipes
        out.append(_CASE_PATTERN.sub(lambda m: m.group(1) + " " * len(m.group(2)) + " ", line))
    return out


def pipe_readers(text: str) -> list[tuple[int, str]]:
    """(line number, command) for every command that reads a pipe: the text after each `|`
    that is not quoted, not `||`, up to the end of that command."""
    lines = _without_heredocs(text)
    source = "\n".join(lines)
    found: list[tuple[int, str]] = []
    stack: list[str] = []  # '"' inside double quotes; '$(' / '(' for nested commands
    i = 0
    while i < len(source):
        ch = source[i]
        quoted = bool(stack) and stack[-1] == '"'
        if ch == "\\":
            i += 2
            continue
        if quoted:
            if ch == '"':
                stack.pop()
            elif source.startswith("$(", i):
                stack.append("$(")
                i += 1
            i += 1
            continue
        if ch == "'":
            i = source.index("'", i + 1) + 1
            continue
        if ch == "#" and (i == 0 or source[i - 1] in " \t\n;"):
            i = source.find("\n", i)
            if i < 0:
                break
            continue
        if ch == '"':
            stack.append('"')
        elif source.startswith("$((", i):
            end = source.index("))", i)
            i = end + 2
            continue
        elif source.startswith("$(", i):
            stack.append("$(")
            i += 1
        elif ch == "(":
            stack.append("(")
        elif ch == ")" and stack:
            stack.pop()
        elif ch == "|":
            if source.startswith("||", i):
                i += 2
                continue
            line_no = source.count("\n", 0, i) + 1
            rest = source[i + 1 :].replace("\\\n", " ").split("\n", 1)[0]
            found.append((line_no, rest.strip()))
        i += 1
    return found


def _first_command(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    words: list[str] = []
    try:
        for token in lexer:
            if token and set(token) <= set(";&|()"):
                break
            words.append(token)
    except ValueError:  # an unclosed quote that closes on a later line: what we have is enough
        pass
    while words and (words[0] in ("{", "!", "then", "do") or re.match(r"^\w+=", words[0])):
        words.pop(0)
    return words


def stops_early(command: str) -> str | None:
    """Why this pipe reader may stop before its writer is done, or None."""
    words = _first_command(command)
    if not words:
        return None
    name, args = Path(words[0]).name, words[1:]
    if name == "head":
        return "head stops after its lines"
    if name in ("read", "line"):
        return f"{name} takes one line"
    if name in ("grep", "egrep", "fgrep"):
        for arg in args:
            if arg in ("--quiet", "--silent", "--files-with-matches", "--files-without-match"):
                return f"grep {arg} stops at the first match"
            if arg.startswith("--max-count"):
                return "grep --max-count stops early"
            if re.match(r"^-[A-Za-z]*[qlLm]", arg) and not arg.startswith("--"):
                return f"grep {arg} may stop at the first match"
    awk = name in ("awk", "gawk", "mawk", "nawk")
    if awk and any(re.search(r"\bexit\b", arg) for arg in args):
        return "the awk program exits early"
    if name == "sed" and any(_SED_QUIT.search(a) for a in args if not a.startswith("-")):
        return "the sed script quits early"
    return None


def problems_in(text: str) -> list[str]:
    return [
        f"line {line}: | {command}  ({why})"
        for line, command in pipe_readers(text)
        if (why := stops_early(command)) is not None
    ]


# -- the checker itself can fail --------------------------------------------------------------


@pytest.mark.parametrize(
    "snippet",
    [
        # the line that made `make package-check` exit 141 (packaging/linux/build.sh)
        """    path=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')""",
        """tarball=$(ls -t dist/trainer-gui-"$version"-linux-*.tar.gz 2>/dev/null | head -1)""",
        """    if echo "$pins" | cut -d= -f1 | tr 'A-Z_.' 'a-z--' | grep -qx "$name"; then continue; fi""",
        """torch_whl=$(compgen -G "$out/torch-*.whl" | head -n 1 || true)""",
        """say "found $(docker images | grep -m1 trainer)" """,
        """docker ps | grep --quiet foo && echo yes""",
        """cat big.log \\\n    | sed -n '/Done/{p;q}'""",
        """ps -e | { read -r header; echo "$header"; }""",
        """x=$( { a; b; } | head -c 10 )""",
    ],
)
def test_the_checker_finds_readers_that_stop_early(snippet: str) -> None:
    assert problems_in(snippet), snippet


@pytest.mark.parametrize(
    "snippet",
    [
        """path=$(awk -v l="$lib" '$1 == l { print $NF; exit }' "$ldcache")""",
        """grep -qx -- "$name" <<<"$pinned" """,
        """needed=$(for f in a b; do readelf -d "$f"; done | sed -n 's/x/y/p' | sort -u)""",
        """glibc=$(readelf -V f | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)""",
        """sed -e "s|@VERSION@|$v|" -e 's|a|b|' in > out""",
        """        -h|--help) sed -n '2,$p' "$0"; exit 0 ;;""",
        """[ -f a ] || [ -f b ] || die 'no | head -1 here'""",
        """tar -cf - x | gzip -n > "$tarball" # | head -1 in a comment""",
        """python3 - <<'EOF'\nprint(open('f').read().split('|')[0])\nimport sys | head\nEOF""",
        """echo "$(( a | b ))" """,
    ],
)
def test_the_checker_lets_whole_readers_pass(snippet: str) -> None:
    assert problems_in(snippet) == [], snippet


def test_an_early_reader_under_pipefail_fails_with_sigpipe() -> None:
    """The mechanism, made certain: the writer has more than a pipe buffer to write."""
    early = "set -o pipefail; seq 1 300000 | awk '{ print; exit }' >/dev/null"
    whole = 'set -o pipefail; seq 1 300000 > "$T"; awk \'{ print; exit }\' "$T" >/dev/null'
    assert subprocess.run(["bash", "-c", early], check=False).returncode == 141
    tmp = subprocess.run(["mktemp"], capture_output=True, text=True, check=True).stdout.strip()
    try:
        done = subprocess.run(["bash", "-c", whole], env={"T": tmp, "PATH": "/usr/bin:/bin"})
        assert done.returncode == 0
    finally:
        Path(tmp).unlink()


# -- the scripts ------------------------------------------------------------------------------


def test_the_release_scripts_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in pipefail_scripts()}
    assert {
        "packaging/linux/build.sh",
        "scripts/package_check.sh",
        "scripts/ci/build-toolkit-image.sh",
        "scripts/ci/make-wheelhouse.sh",
        ".ci/run",
    } <= names


@pytest.mark.parametrize("script", pipefail_scripts(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_pipe_reader_stops_early_under_pipefail(script: Path) -> None:
    assert problems_in(script.read_text(encoding="utf-8")) == []
