"""Turn training-log lines into metric samples.

Two sources of samples:

* SageMaker ``MetricDefinitions`` (name + regex). Results are exactly what SageMaker's own
  rule gives (``re.search`` of every regex on every line, value = group 1 or the whole match,
  non-numeric values dropped), so a job shows the same curves locally and in the cloud.
  :func:`naive_parse` is that rule written the obvious way; :class:`MetricsParser` gives the
  same samples, only faster, by skipping regexes that cannot match a line.
* Auto-detection of ``key=value``, ``key: value`` and JSON-object lines, so a script with no
  definitions still gets curves. Only lines that look like training progress count (they carry
  a step or epoch, or a name with a metric word in it: loss, acc, lr, f1, ...), and never names
  of environment variables (``SM_*``, ``SAGEMAKER_*``, the job's own) or hyperparameters: the
  toolkit's environment dump (``SM_NUM_CPUS=2``, ``"epochs": 3``) and library chatter
  (``fd=3``, ``pid=4012``) are not metrics.

A line's step/epoch (``step=20``, ``Epoch 3/10``, ``{"epoch": 1}`` ...) is attached to every
sample from that line.

Values go through ``float()``: text it cannot read is dropped, as SageMaker drops non-numeric
values, while ``nan`` and ``inf`` are kept, so a diverging loss shows up instead of vanishing.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import re
import sys
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import accumulate, compress, islice, product
from typing import Any, Protocol, TypeAlias

from trainer_gui.core.metrics.types import MetricSample

__all__ = ["DefinitionLike", "MetricsParser", "line_position", "naive_parse"]


class _NamedRegex(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def regex(self) -> str: ...


DefinitionLike: TypeAlias = tuple[str, str] | _NamedRegex | Mapping[str, str]
"""``(name, regex)``, an object with ``.name``/``.regex`` (the spec model) or a SageMaker
``{"Name": .., "Regex": ..}`` dict."""

# Words that say where in training a line is rather than what was measured.
_STEP_KEYS = frozenset({"step", "global_step", "iter", "iteration", "batch"})
_EPOCH_KEYS = frozenset({"epoch"})
_POSITION_KEYS = _STEP_KEYS | _EPOCH_KEYS

_BATCH_LINES = 4096


# --------------------------------------------------------------------------------------------
# Definitions
# --------------------------------------------------------------------------------------------


def _as_pair(definition: DefinitionLike) -> tuple[str, str]:
    if isinstance(definition, tuple):
        name, regex = definition
        return name, regex
    if isinstance(definition, Mapping):  # the raw SageMaker API shape, {"Name": .., "Regex": ..}
        return definition["Name"], definition["Regex"]
    return definition.name, definition.regex


def _to_float(raw: str | None) -> float | None:
    """SageMaker's rule: keep whatever ``float()`` can read, drop the rest."""
    if raw is None:  # group 1 exists but did not take part in the match
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def naive_parse(
    definitions: Sequence[DefinitionLike], line: str, host: str, wall_time: float
) -> list[MetricSample]:
    """Samples for one line the way SageMaker describes it: every regex searched on the line.

    Kept deliberately plain: it is the benchmark baseline and the oracle the fast parser is
    tested against.
    """
    found: list[tuple[str, float]] = []
    for definition in definitions:
        name, regex = _as_pair(definition)
        match = re.search(regex, line)
        if match is None:
            continue
        value = _to_float(match.group(1) if match.re.groups else match.group(0))
        if value is not None:
            found.append((name, value))
    if not found:
        return []
    step, epoch = line_position(line)
    return [MetricSample(name, value, host, wall_time, step, epoch) for name, value in found]


# --------------------------------------------------------------------------------------------
# Prefilter: substrings a line must contain for a regex to match it
# --------------------------------------------------------------------------------------------


def _load_sre_parser() -> Any:
    try:
        return importlib.import_module("re._parser")  # 3.11+
    except ImportError:  # pragma: no cover - Python 3.10
        return importlib.import_module("sre_parse")


_sre = _load_sre_parser()
_REPEATS = tuple(
    getattr(_sre, op)
    for op in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
    if hasattr(_sre, op)
)
_ATOMIC = getattr(_sre, "ATOMIC_GROUP", None)

# A requirement is a tuple of literals of which at least one must occur in the line.
_Requirement = tuple[str, ...]


def _score(req: _Requirement) -> tuple[int, int]:
    # The shortest alternative decides how selective a requirement is; fewer alternatives is
    # cheaper to check.
    return (min(len(s) for s in req), -len(req))


def _best(reqs: list[_Requirement]) -> _Requirement | None:
    return max(reqs, key=_score) if reqs else None


def _flatten(items: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """Inline groups that only capture: their text sits contiguously in the match."""
    for op, av in items:
        if op is _sre.SUBPATTERN and not av[1] and not av[2]:  # no local flag change
            yield from _flatten(av[3])
        elif _ATOMIC is not None and op is _ATOMIC:
            yield from _flatten(av)
        else:
            yield op, av


def _requirements(items: Iterable[tuple[Any, Any]]) -> list[_Requirement]:
    """Every literal run that any match of ``items`` must contain, each a valid prefilter.

    Anything not understood ends a run and contributes nothing, which is always safe: the
    only way to be wrong is to claim a literal is required when it is not.
    """
    reqs: list[_Requirement] = []
    run: list[str] = []
    for op, av in _flatten(items):
        if op is _sre.LITERAL:
            run.append(chr(av))
            continue
        if run:
            reqs.append(("".join(run),))
            run = []
        if op in _REPEATS and av[0] >= 1:
            reqs.extend(_requirements(av[2]))
        elif op is _sre.ASSERT:
            # A positive look-around's text must be in the line, though not in the match.
            reqs.extend(_requirements(av[1]))
        elif op is _sre.BRANCH:
            alternatives = [_best(_requirements(alt)) for alt in av[1]]
            if alternatives and all(alt is not None for alt in alternatives):
                union = {s for alt in alternatives if alt is not None for s in alt}
                reqs.append(tuple(sorted(union)))
    if run:
        reqs.append(("".join(run),))
    return reqs


def _required_literals(regex: str) -> tuple[list[_Requirement], int]:
    """Requirements for ``regex``, most selective first (empty: no cheap test), and its flags."""
    try:
        parsed = _sre.parse(regex)
        flags = int(parsed.state.flags)
        reqs = sorted(set(_requirements(parsed)), key=lambda r: (_score(r), r), reverse=True)
    except Exception:  # a private parser: any surprise only disables the shortcut
        return [], 0
    return reqs, flags


def _mark_lines(
    text: str, literals: Iterable[str], starts: list[int], masks: list[int], bit: int
) -> None:
    """Set ``bit`` in ``masks[i]`` for each line ``i`` of ``text`` that holds a literal.

    Lines begin at ``starts``. After a hit the search jumps to the next line, so a line
    costs at most one hit per literal. A hit straddling two lines only marks a needless
    candidate. This loop runs once per candidate, so it is kept bare.
    """
    count = len(starts)
    find = text.find
    for literal in literals:
        pos = find(literal)
        while pos >= 0:
            # The line after the hit's; bisect_right skips empty lines, which share their start
            # with the next line.
            after = bisect_right(starts, pos)
            masks[after - 1] |= bit
            if after == count:
                break
            pos = find(literal, starts[after])


@functools.cache
def _fold_chars(flags: int, letters: str) -> tuple[str, ...]:
    """Non-ASCII characters that ``re`` with ``flags`` takes for one of the ASCII ``letters``.

    (ſ for s, K for k, ı and İ for i on current Pythons; none under re.ASCII.) Asked of
    ``re`` itself, once per process, so it stays right whatever its case tables become.
    """
    if not letters:
        return ()
    codes = array("I", range(0x80, 0xD800))
    codes.extend(range(0xE000, 0x110000))
    everything = codes.tobytes().decode(f"utf-32-{sys.byteorder[0]}e")
    return tuple(sorted(set(re.compile(f"[{letters}]", flags).findall(everything))))


class _Batch:
    """A batch of lines glued into one string, so literals are found at C speed."""

    __slots__ = ("_lowered", "starts", "text", "texts")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        # No separator: one would only cost time, as a straddling hit is harmless.
        self.text = "".join(texts)
        self.starts = list(accumulate(map(len, texts), initial=0))
        self.starts.pop()
        self._lowered: str | None = None

    def lowered(self) -> str:
        """``text`` lower-cased line by line, or "" if that changed a length (offsets differ).

        Line by line, because ``str.lower`` is much faster on ASCII strings and most lines
        are ASCII even when the batch is not.
        """
        if self._lowered is None:
            low = self.text.lower() if self.text.isascii() else "".join(map(str.lower, self.texts))
            self._lowered = low if len(low) == len(self.text) else ""
        return self._lowered


# Rough costs, in machine instructions, for choosing how to look for a requirement: a hit
# costs a trip through Python; lower-casing and scanning cost per character, and CPython
# scans for strings shorter than 6 characters without skipping ahead.
_HIT_COST = 1000.0
_LOWER_COST = 15.0


def _scan_cost(needles: Iterable[str]) -> float:
    return sum(1.3 if len(s) >= 6 else 4.5 for s in needles)


def _casings(s: str) -> list[str]:
    """Every upper/lower spelling of the ASCII letters of ``s``."""
    options = [(c.lower(), c.upper()) if c.isascii() and c.isalpha() else (c,) for c in s]
    return ["".join(p) for p in product(*options)]


class _Literals:
    """The test "the line holds at least one of these strings", for one line or a batch.

    Case-insensitive strings are matched by ``re`` itself on a single line, to reproduce its
    case folding exactly. Across a batch, an ASCII string with few letters is looked up in all
    its spellings ("f1", "F1"); a longer one in the lower-cased batch. The only other way
    ``re`` could match either is through the few non-ASCII characters it folds onto ASCII
    letters (:func:`_fold_chars`), so lines holding one of those are candidates too.
    """

    __slots__ = ("flags", "folded", "letters", "lowered", "needles", "strings")

    def __init__(self, strings: _Requirement, flags: int) -> None:
        self.strings = strings
        self.flags = flags & (re.IGNORECASE | re.ASCII | re.UNICODE)
        self.folded: re.Pattern[str] | None = None
        # What is searched for in the batch text (or, if ``lowered``, its lower-cased form).
        self.needles: tuple[str, ...] | None = strings
        self.lowered = False
        if flags & re.IGNORECASE:
            self.folded = re.compile("|".join(map(re.escape, strings)), self.flags)
            if not all(s.isascii() for s in strings):
                self.needles = None  # left to re, line by line
            else:
                lowered = tuple(s.lower() for s in strings)
                letters = sum(c.isalpha() for s in strings for c in s)
                casings = tuple(c for s in strings for c in _casings(s)) if letters <= 4 else ()
                if casings and _scan_cost(casings) <= _LOWER_COST + _scan_cost(lowered):
                    self.needles = casings
                else:
                    self.needles = lowered
                    self.lowered = True
        # Letters of the strings, to ask _fold_chars only about the folds that matter here.
        self.letters = "".join(sorted({c for c in "".join(strings).lower() if "a" <= c <= "z"}))

    def in_line(self, line: str) -> bool:
        if self.folded is not None:
            return self.folded.search(line) is not None
        if len(self.strings) == 1:  # the usual case, without a generator
            return self.strings[0] in line
        return any(s in line for s in self.strings)

    def _haystack(self, batch: _Batch) -> str | None:
        """The text to search, or None when only a regex search per line will do."""
        if self.needles is None:
            return None
        if self.lowered:
            return batch.lowered() or None
        return batch.text

    def cost(self, batch: _Batch) -> float:
        """Estimated cost of finding this requirement's candidates in a batch like this one."""
        chars = len(batch.text)
        haystack = self._haystack(batch)
        if haystack is None or self.needles is None:
            return chars * 100.0
        hits = sum(haystack.count(s) for s in self.needles)
        per_char = _scan_cost(self.needles) + (_LOWER_COST if self.lowered else 0.0)
        return _HIT_COST * hits + per_char * chars

    def mark(self, batch: _Batch, masks: list[int], bit: int) -> None:
        """Set ``bit`` in ``masks[i]`` for each line ``i`` of the batch that may hold a string."""
        haystack = self._haystack(batch)
        if haystack is None or self.needles is None or self.folded is None:
            if self.folded is None:  # plain strings: a find per string over the batch
                _mark_lines(batch.text, self.strings, batch.starts, masks, bit)
                return
            search = self.folded.search
            for idx, text in enumerate(batch.texts):
                if search(text) is not None:
                    masks[idx] |= bit
            return
        if not batch.text.isascii():
            folds = _fold_chars(self.flags, self.letters)
            _mark_lines(batch.text, folds, batch.starts, masks, bit)
        _mark_lines(haystack, self.needles, batch.starts, masks, bit)


class _CompiledDefinition:
    """One definition plus the cheap test that rules a line out before its regex runs."""

    __slots__ = ("group", "literals", "name", "pattern", "search", "tests")

    def __init__(self, name: str, regex: str) -> None:
        self.name = name
        self.pattern = re.compile(regex)
        self.search = self.pattern.search
        self.group = 1 if self.pattern.groups else 0
        reqs, flags = _required_literals(regex)
        self.tests = tuple(_Literals(r, flags) for r in reqs)
        # Only one requirement is used, the longest until a batch shows which is cheapest:
        # confirming the others in Python costs more than the regex search it would save.
        self.literals: _Literals | None = self.tests[0] if self.tests else None

    def may_match(self, line: str) -> bool:
        return self.literals is None or self.literals.in_line(line)

    def pick_cheapest(self, batch: _Batch) -> None:
        if len(self.tests) > 1:
            self.literals = min(self.tests, key=lambda t: t.cost(batch))


# --------------------------------------------------------------------------------------------
# Auto-detection and step/epoch
# --------------------------------------------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?i:nan|inf(?:inity)?)"
_KEY = r"[A-Za-z_](?:[A-Za-z0-9_\-./:]*[A-Za-z0-9_])?"
# Characters that, right before a key, say it is the tail of a word, path, URL query, option
# ("--lr=0.1") or assignment chain rather than a key of its own.
_NOT_BEFORE_KEY = r"\w\-./:?&=@#"
# A sentence-ending "." is fine after a value; "2.1.0" is a version, not 2.1.
_EQ_END = r"""(?=$|[\s,;|)\]}'"]|\.(?:\s|$))"""
# "key: value" is common in prose ("Note: 3 workers"), so after the value there must be the
# end, punctuation, a Keras-style " - ", or the next key.
_COLON_END = rf"""(?=\s*(?:$|[,;|)\]}}]|-\s|\.(?:\s|$)|['"]?{_KEY}['"]?\s*(?:=|:\s)))"""

_PAIR_RE = re.compile(
    rf"""
    (?<![{_NOT_BEFORE_KEY}])
    (?P<q>['"]?)(?P<key>{_KEY})(?P=q)
    (?:
        \s*=\s*(?P<eq>{_NUMBER}){_EQ_END}
      | \s*:\s+(?P<colon>{_NUMBER}){_COLON_END}
    )
    """,
    re.VERBOSE,
)
# Step/epoch on a lower-cased line: the same pairs as _PAIR_RE, plus the word forms "Epoch
# 3/10", "Epoch [3/10]", "Epoch 3:", "Train Epoch: 1 [640/60000]", "Step 20/100". It starts
# with the key and is only tried where str.find saw one; the quote and the "not inside a
# word" rule before the key are checked by hand.
_POSITION_RE = re.compile(
    rf"""
    (?P<key>epoch|global_step|step|iteration|iter|batch)
    (?:
        (?P<q>['"]?)\s*(?:=\s*(?P<eq>{_NUMBER}){_EQ_END}|:\s+(?P<colon>{_NUMBER}){_COLON_END})
      | \s*:?\s*\[?\s*(?P<n>\d+)(?:\s*/\s*\d+)?\s*\]?(?![\w.])
    )
    """,
    re.VERBOSE,
)
_NOT_BEFORE_KEY_CHARS = frozenset("_-./:?&=@#")
_URL_RE = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://\S*")
# Python logging's default "INFO:root:" prefix would otherwise glue onto the first key.
_LOG_PREFIX_RE = re.compile(r"^[A-Z]+:[\w.<>]*:")


def _clean(line: str) -> str:
    """Drop what looks like pairs but is not: URLs and a logging "INFO:root:" prefix."""
    if "://" in line:
        line = _URL_RE.sub(" ", line)
    if line[:1].isupper():
        line = _LOG_PREFIX_RE.sub("", line, count=1)
    return line


def _as_step(value: float) -> int | None:
    return int(value) if value.is_integer() else None


def _as_epoch(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _json_object(line: str) -> dict[str, Any] | None:
    stripped = line.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        obj = json.loads(stripped)
    except ValueError:  # e.g. a Python dict repr; the pair scanner reads those
        return None
    return obj if isinstance(obj, dict) else None


def _json_numbers(obj: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """Numeric leaves; nested objects become "outer/inner" names."""
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            try:
                yield name, float(value)
            except OverflowError:
                continue
        elif isinstance(value, dict):
            yield from _json_numbers(value, f"{name}/")


def _split_position(
    pairs: Iterable[tuple[str, float]],
) -> tuple[list[tuple[str, float]], int | None, float | None]:
    """Separate step/epoch pairs (the first usable one of each wins) from the metrics."""
    metrics: list[tuple[str, float]] = []
    step: int | None = None
    epoch: float | None = None
    for key, value in pairs:
        lowered = key.lower()
        if lowered in _STEP_KEYS:
            if step is None:
                step = _as_step(value)
        elif lowered in _EPOCH_KEYS:
            if epoch is None:
                epoch = _as_epoch(value)
        else:
            metrics.append((key, value))
    return metrics, step, epoch


def line_position(line: str) -> tuple[int | None, float | None]:
    """The step and epoch a line carries; every sample from the line is tagged with them.

    A JSON object line uses its top-level keys. Otherwise the first usable ``step=``/``epoch:``
    style pair wins (keys compared case-insensitively), then "Epoch 3/10"-style words fill
    what is still missing. A step must be a whole number.
    """
    if "{" in line:
        obj = _json_object(line)
        if obj is not None:
            return _split_position(_json_numbers(obj))[1:]
    if "://" in line or line[:1].isupper():
        line = _clean(line)
    low = line.lower()
    # Runs for every sample-bearing line, naive or not, so it is written for speed: str.find
    # spots the keys (re would crawl along the whole line) and the look-behind of _PAIR_RE
    # is checked by hand.
    find = low.find
    starts: list[int] = []
    if "epoch" in low:
        pos = find("epoch")
        while pos >= 0:
            starts.append(pos)
            pos = find("epoch", pos + 5)
    if "step" in low:
        pos = find("step")
        while pos >= 0:
            starts.append(pos - 7 if low.endswith("global_", 0, pos) else pos)
            pos = find("step", pos + 4)
    if "iter" in low:
        pos = find("iter")
        while pos >= 0:
            starts.append(pos)
            pos = find("iter", pos + 4)
    if "batch" in low:
        pos = find("batch")
        while pos >= 0:
            starts.append(pos)
            pos = find("batch", pos + 5)
    if not starts:
        return None, None
    if len(starts) > 1:
        starts.sort()
    step: int | None = None
    epoch: float | None = None
    word_step: int | None = None
    word_epoch: float | None = None
    match = _POSITION_RE.match
    for start in starts:
        m = match(low, start)
        if m is None:
            continue
        key, quote, eq, colon, n = m.groups()
        at = start - 1
        if quote:
            if at < 0 or low[at] != quote:
                continue
            at -= 1
        if at >= 0 and (low[at].isalnum() or low[at] in _NOT_BEFORE_KEY_CHARS):
            continue
        if n is not None:
            if key == "epoch":
                if word_epoch is None:
                    word_epoch = float(n)
            elif word_step is None:
                word_step = int(n)
        elif key == "epoch":
            if epoch is None:
                value = float(eq or colon)
                epoch = value if math.isfinite(value) else None
        elif step is None:
            value = float(eq or colon)
            step = int(value) if value.is_integer() else None
    return (word_step if step is None else step), (word_epoch if epoch is None else epoch)


# Words that make a name a training metric on a line with no step or epoch ("loss=0.5",
# "val_acc: 0.9", "top1: 0.7"); compared with the name's parts split at _ - . / : (a part's
# trailing digits may go: "top1", "f1").
METRIC_WORDS = frozenset(
    [
        *("loss", "losses", "acc", "accuracy", "err", "error", "errors", "f1", "auc", "roc"),
        *("precision", "recall", "mse", "mae", "rmse", "mape", "nll", "ce", "bce", "kl"),
        *("entropy", "ppl", "perplexity", "bleu", "rouge", "meteor", "wer", "cer", "score"),
        *("reward", "rewards", "return", "returns", "lr", "learning", "grad", "gradient"),
        *("top", "map", "iou", "miou", "dice", "psnr", "ssim", "fid", "metric", "throughput"),
    ]
)
_NAME_PARTS_RE = re.compile(r"([A-Za-z]+)(\d*)")
# The toolkit's and SDK V3's variables and the toolkit's own keys: environment, not metrics.
_ENVIRONMENT_PREFIXES = ("sm_", "sagemaker_")


def _plain(name: str) -> str:
    """A name as compared with hyperparameter and variable names: lower case, `-` as `_`."""
    return name.lower().replace("-", "_")


def _is_metric_name(name: str) -> bool:
    for letters, digits in _NAME_PARTS_RE.findall(name.lower()):
        if letters in METRIC_WORDS or letters + digits in METRIC_WORDS:
            return True
    return False


def _detect(
    line: str, ignored: frozenset[str] = frozenset()
) -> tuple[list[tuple[str, float]], int | None, float | None]:
    """Auto-detected metrics of a line plus its step and epoch; nothing unless the line looks
    like training progress, and never a name in `ignored` (plain form) or of the SM_* kind."""
    if "{" in line:
        obj = _json_object(line)
        if obj is not None:
            metrics, step, epoch = _split_position(_json_numbers(obj))
            return _progress(metrics, step, epoch, ignored)
    if "=" not in line and ":" not in line:
        return [], None, None
    metrics = []
    for m in _PAIR_RE.finditer(_clean(line)):
        key = m.group("key")
        if key.lower() not in _POSITION_KEYS:
            metrics.append((key, float(m.group("eq") or m.group("colon"))))
    if not metrics:
        return [], None, None
    step, epoch = line_position(line)
    return _progress(metrics, step, epoch, ignored)


def _progress(
    metrics: list[tuple[str, float]],
    step: int | None,
    epoch: float | None,
    ignored: frozenset[str],
) -> tuple[list[tuple[str, float]], int | None, float | None]:
    kept = [
        (name, value)
        for name, value in metrics
        if not _plain(name).startswith(_ENVIRONMENT_PREFIXES) and _plain(name) not in ignored
    ]
    if not kept:
        return [], None, None
    if step is None and epoch is None and not any(_is_metric_name(n) for n, _ in kept):
        return [], None, None  # "fd=3", "num_cpus: 2": numbers, but no training progress
    return kept, step, epoch


# --------------------------------------------------------------------------------------------
# The parser
# --------------------------------------------------------------------------------------------


class MetricsParser:
    """Metric definitions plus optional auto-detection, tuned for whole logs at once.

    Definition results equal :func:`naive_parse` sample for sample and in the same order
    (line order, then definition order). Auto-detection only looks at lines no definition
    produced a sample for, so a defined metric is never reported twice under two names.
    Raises ``re.error`` for a regex that does not compile, as SageMaker would reject it.
    """

    def __init__(
        self,
        definitions: Sequence[DefinitionLike] = (),
        auto_detect: bool = True,
        not_metrics: Iterable[str] = (),
    ) -> None:
        """`not_metrics`: names auto-detection never reports, whatever the line (the job's
        hyperparameter and environment variable names); `-` and `_` and case do not count."""
        self._defs = tuple(_CompiledDefinition(*_as_pair(d)) for d in definitions)
        self.auto_detect = auto_detect
        self._ignored = frozenset(_plain(name) for name in not_metrics)
        # Definitions with no literal to look for must be tried on every line.
        self._always = sum(1 << i for i, d in enumerate(self._defs) if d.literals is None)
        self._by_mask: dict[int, tuple[_CompiledDefinition, ...]] = {}
        self._plans: dict[
            int, tuple[tuple[Callable[[str], re.Match[str] | None], int, str], ...]
        ] = {}
        self._picked = False

    @property
    def definitions(self) -> tuple[tuple[str, str], ...]:
        """The (name, regex) pairs in use, normalised from whatever shape they came in."""
        return tuple((d.name, d.pattern.pattern) for d in self._defs)

    def parse_line(self, line: str, host: str, wall_time: float) -> list[MetricSample]:
        """Samples from one line; for streaming a running job's output."""
        found = _match(line, [d for d in self._defs if d.may_match(line)])
        return self._samples(line, host, wall_time, found)

    def parse_lines(self, lines: Iterable[tuple[str, str, float]]) -> list[MetricSample]:
        """Samples from many ``(line, host, wall_time)`` triples, e.g. a downloaded log.

        Lines go in batches: each literal is searched for once per batch, at C speed, and
        only the lines holding it are handed to its regex.
        """
        out: list[MetricSample] = []
        it = iter(lines)
        while batch := list(islice(it, _BATCH_LINES)):
            self._parse_batch(batch, out)
        return out

    # -- internals ------------------------------------------------------------------------

    def _defs_for(self, mask: int) -> tuple[_CompiledDefinition, ...]:
        defs = self._by_mask.get(mask)
        if defs is None:
            defs = tuple(d for i, d in enumerate(self._defs) if mask >> i & 1)
            self._by_mask[mask] = defs
        return defs

    def _candidates(self, texts: list[str]) -> list[int]:
        """Per line, the bit mask of the definitions whose literal the line holds."""
        masks = [0] * len(texts)
        if all(d.literals is None for d in self._defs):
            return masks
        batch = _Batch(texts)
        if not self._picked:
            for d in self._defs:
                d.pick_cheapest(batch)
            self._picked = True
        for i, d in enumerate(self._defs):
            if d.literals is not None:
                d.literals.mark(batch, masks, 1 << i)
        return masks

    def _parse_batch(self, batch: list[tuple[str, str, float]], out: list[MetricSample]) -> None:
        masks = self._candidates([item[0] for item in batch])
        if self._always or self.auto_detect:
            always = self._always
            for (line, host, wall_time), mask in zip(batch, masks, strict=True):
                found = _match(line, self._defs_for(mask | always))
                samples = self._samples(line, host, wall_time, found)
                if samples:
                    out.extend(samples)
            return
        # Definitions only: just the candidate lines, with _match inlined (the hot path).
        plans = self._plans
        append = out.append
        position = line_position
        sample = MetricSample
        for idx in compress(range(len(masks)), masks):
            line, host, wall_time = batch[idx]
            mask = masks[idx]
            plan = plans.get(mask)
            if plan is None:
                plan = plans[mask] = tuple(
                    (d.search, d.group, d.name) for d in self._defs_for(mask)
                )
            hits: list[tuple[str, float]] = []
            for search, group, name in plan:
                match = search(line)
                if match is None:
                    continue
                try:
                    hits.append((name, float(match[group])))
                except (TypeError, ValueError):
                    continue
            if hits:
                step, epoch = position(line)
                for name, value in hits:
                    append(sample(name, value, host, wall_time, step, epoch))

    def _samples(
        self, line: str, host: str, wall_time: float, found: list[tuple[str, float]]
    ) -> list[MetricSample]:
        if found:
            step, epoch = line_position(line)
        elif self.auto_detect:
            found, step, epoch = _detect(line, self._ignored)
        else:
            return []
        return [MetricSample(name, value, host, wall_time, step, epoch) for name, value in found]


def _match(line: str, defs: Iterable[_CompiledDefinition]) -> list[tuple[str, float]]:
    """(name, value) of each definition that matches, in definition order (SageMaker's rule)."""
    found: list[tuple[str, float]] = []
    for d in defs:
        match = d.search(line)
        if match is None:
            continue
        try:
            found.append((d.name, float(match[d.group])))
        except (TypeError, ValueError):  # the group took no part / not a number
            continue
    return found
