"""The detection pipeline: keyword prefilter → regex on hit lines → entropy → validators
→ filters → allowlists → overlap resolution, with base64 layers decoded to a depth limit.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from keyguard.scan.config import ScanConfig
from keyguard.scan.decode import DECODERS, decoded_lines
from keyguard.scan.entropy import shannon
from keyguard.scan.filters import rejected_by
from keyguard.scan.model import Finding, Origin
from keyguard.scan.names import secret_name
from keyguard.scan.prefilter import KeywordMatcher, Pattern, hyperscan_available, make_matcher
from keyguard.scan.rule import Rule
from keyguard.scan.validators import VALIDATORS

if TYPE_CHECKING:  # imported by --match-vault only (start-up time)
    from keyguard.scan.managed import ManagedMatcher

ALLOW_MARKER = b"keyguard:allow"
MAX_BACK = 2048  # bytes looked at before a keyword on one (possibly huge) line
MAX_FORWARD = 2048  # bytes looked at after it
MULTILINE_FORWARD = 65536  # multi-line rules (PEM blocks) look this far
MULTILINE_BACK = 512  # and start up to this far before the line of their keyword
ABSORB_WINDOW = 4096
CHUNK = 1024 * 1024  # streamed input is scanned this much at a time (bounded memory)
OVERLAP = 128 * 1024
VERIFIED_WINDOW_MAX = 16 * 1024  # windows up to this size have their verified matches kept
VERIFIED_BYTES = 4 * 1024 * 1024  # the kept windows' bytes in all (then forgotten at once)
VERIFIED_WINDOWS = 32_768  # and their number (a worker's memory stays bounded)


class Readable(Protocol):
    """Anything with ``read(n) -> bytes`` (files, pipes, git blob readers)."""

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end."""
        ...


@dataclass(slots=True)
class _Candidate:
    rule_index: int
    start: int  # absolute byte offset of the secret in the buffer
    end: int
    secret: str
    entropy: float
    line_start: int
    decoded: int = 0


@dataclass
class Scanner:
    """A compiled rule set ready to scan byte buffers. Cheap to reuse, not thread-safe."""

    rules: list[Rule]
    config: ScanConfig = field(default_factory=ScanConfig)
    max_decode_depth: int = 2
    engine: str = "auto"
    managed: ManagedMatcher | None = None
    _matcher: KeywordMatcher = field(init=False, repr=False)
    _keyword_rules: list[list[int]] = field(init=False, repr=False)
    _decoder_base: int = field(init=False, repr=False)
    _decoder_kinds: list[str] = field(init=False, repr=False)
    _verified: dict[tuple[int, bytes], list[tuple[int, int, str, float]]] = field(
        init=False, repr=False, default_factory=dict
    )
    _verified_bytes: int = field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        if self.engine not in ("auto", "hyperscan", "ahocorasick"):
            raise ValueError(f"unknown engine {self.engine!r}")
        use_hs = self.engine == "hyperscan" or (self.engine == "auto" and hyperscan_available())
        patterns: list[Pattern] = []
        index: dict[Pattern, int] = {}
        self._keyword_rules = []
        for rule_index, rule in enumerate(self.rules):
            wanted: list[Pattern] = (
                [(rule.prefilter, True)] if use_hs and rule.prefilter else [(k, False) for k in rule.keywords]
            )
            for pattern in wanted:
                if pattern not in index:
                    index[pattern] = len(patterns)
                    patterns.append(pattern)
                    self._keyword_rules.append([])
                self._keyword_rules[index[pattern]].append(rule_index)
        self._decoder_base = len(patterns)
        self._decoder_kinds = [kind for kind, _, _ in DECODERS]
        patterns.extend((regex, True) if use_hs else (kw, False) for _, kw, regex in DECODERS)
        self._matcher = make_matcher(patterns, use_hyperscan=use_hs)

    # -- public API -------------------------------------------------------------------

    def scan_bytes(self, data: bytes, origin: Origin, *, base_line: int = 1, base_column: int = 0) -> list[Finding]:
        """Scan one in-memory buffer and return its findings (line numbers from ``base_line``;
        ``base_column`` characters of the first line came before the buffer)."""
        if self.config.allows_path(origin.path):
            return []
        candidates = self._candidates(data, depth=0)
        if not candidates and self.managed is None:
            return []  # most blobs of a history: no keyword, or no match verified
        findings = [
            self._finding(data, c, origin, base_line, base_column)
            for c in self._absorb(self._resolve(candidates))
            if not self._path_allowed(self.rules[c.rule_index], origin.path)
        ]
        if self.managed is not None:
            findings = self.managed.annotate(data, findings, origin, base_line)
        return findings

    def _path_allowed(self, rule: Rule, path: str) -> bool:
        return rule.allowlist.allows_path(path) or self.config.allows_rule_path(rule.id, path)

    def scan_stream(self, stream: Readable, origin: Origin) -> Iterator[Finding]:
        """Scan a large stream in overlapping chunks with bounded memory (a line longer than
        a chunk is cut too: the overlap keeps a secret that crosses a cut whole)."""
        base_line = 1
        base_column = 0
        carry = b""
        seen: set[tuple[str, int, str]] = set()
        while True:
            block = stream.read(CHUNK)
            data = carry + block
            if not data:
                return
            for finding in self.scan_bytes(data, origin, base_line=base_line, base_column=base_column):
                key = (finding.rule, finding.line, finding.secret)
                if key not in seen:
                    seen.add(key)
                    yield finding
            if not block:
                return
            cut = max(0, len(data) - OVERLAP)
            newline = data.rfind(b"\n", 0, cut)
            cut = newline + 1 if newline > 0 else cut
            base_line += data.count(b"\n", 0, cut)
            last = data.rfind(b"\n", 0, cut)
            tail = len(data[last + 1 if last >= 0 else 0 : cut].decode("utf-8", "replace"))
            base_column = tail if last >= 0 else base_column + tail
            carry = data[cut:]
            if len(seen) > 100_000:
                seen.clear()

    # -- pipeline ---------------------------------------------------------------------

    def _windows(self, data: bytes, hits: Iterable[tuple[int, int]]) -> dict[int, list[list[int]]]:
        size = len(data)
        per_rule: dict[int, list[list[int]]] = {}
        line_cache: dict[int, tuple[int, int]] = {}
        for kid, end in hits:
            if kid >= self._decoder_base:
                continue
            bounds = line_cache.get(end)
            if bounds is None:
                lo = max(0, end - MAX_BACK)
                nl = data.rfind(b"\n", lo, end)
                start = nl + 1 if nl >= 0 else lo
                nl = data.find(b"\n", end, end + MAX_FORWARD)
                stop = nl if nl >= 0 else min(size, end + MAX_FORWARD)
                bounds = line_cache[end] = (start, stop)
            for rule_index in self._keyword_rules[kid]:
                start, stop = bounds
                if self.rules[rule_index].multiline:
                    # a multi-line match may end on a later line than the one it starts on
                    start = data.rfind(b"\n", 0, max(0, start - MULTILINE_BACK)) + 1
                    stop = min(size, end + MULTILINE_FORWARD)
                per_rule.setdefault(rule_index, []).append([start, stop])
        for spans in per_rule.values():
            spans.sort()
            merged: list[list[int]] = [spans[0]]
            for span in spans[1:]:
                if span[0] <= merged[-1][1] + 1:
                    merged[-1][1] = max(merged[-1][1], span[1])
                else:
                    merged.append(span)
            spans[:] = merged
        return per_rule

    def _candidates(self, data: bytes, depth: int) -> list[_Candidate]:
        hits = self._matcher.hits(data)
        if not hits:
            return []
        out: list[_Candidate] = []
        for rule_index, spans in self._windows(data, hits).items():
            rule = self.rules[rule_index]
            for lo, hi in spans:
                out.extend(self._match_window(data, lo, hi, rule_index, rule))
        if depth < self.max_decode_depth:
            decoder_hits = [h for h in hits if h[0] >= self._decoder_base]
            if decoder_hits:
                out.extend(self._decoded_candidates(data, decoder_hits, depth))
        return out

    def _match_window(self, data: bytes, lo: int, hi: int, rule_index: int, rule: Rule) -> Iterator[_Candidate]:
        chunk = data[lo:hi]
        key = (rule_index, chunk)
        accepted = self._verified.get(key)
        if accepted is None:
            accepted = list(self._verify(chunk, rule))
            if len(chunk) <= VERIFIED_WINDOW_MAX:
                self._verified_bytes += len(chunk)
                if self._verified_bytes > VERIFIED_BYTES or len(self._verified) >= VERIFIED_WINDOWS:
                    self._verified.clear()
                    self._verified_bytes = len(chunk)
                self._verified[key] = accepted
        for s_off, s_len, secret, entropy in accepted:
            start = lo + s_off
            end = start + s_len
            line_start = data.rfind(b"\n", 0, start) + 1
            line_end = data.find(b"\n", end)
            line = data[line_start : line_end if line_end >= 0 else len(data)]
            if ALLOW_MARKER in line:  # the whole line, which may reach past the window
                continue
            yield _Candidate(rule_index, start, end, secret, entropy, line_start)

    def _verify(self, chunk: bytes, rule: Rule) -> Iterator[tuple[int, int, str, float]]:
        """``(offset, byte length, secret, entropy)`` of every match of ``rule`` in one window
        that passes entropy, validator, filters and allowlists: what depends on the window's
        bytes only, so an identical window (the same lines in the next version of a file) is
        not verified again."""
        ascii_only = chunk.isascii()
        text = chunk.decode("utf-8", "surrogateescape")
        search = rule.regex.search
        pos = 0
        while (match := search(text, pos)) is not None:
            pos = match.end() if match.end() > pos else pos + 1
            secret = match.group(rule.secret_group)
            if not secret:
                continue
            retry = match.start(rule.secret_group) if rule.generic else -1
            s_off = match.start(rule.secret_group)
            if not ascii_only:
                s_off = len(text[:s_off].encode("utf-8", "surrogateescape"))
            if not self._accept(rule, secret, match.group(0)) or (
                rule.generic and "name" in rule.regex.groupindex and not secret_name(match.group("name") or "")
            ):
                if retry > match.start():  # a rejected value may hold the real assignment
                    pos = retry
                continue
            yield s_off, len(secret.encode("utf-8", "surrogateescape")), secret, shannon(secret)

    def _accept(self, rule: Rule, secret: str, matched: str) -> bool:
        if rule.entropy and shannon(secret) < rule.entropy:
            return False
        if rule.validator and not VALIDATORS[rule.validator](secret):
            return False
        if rejected_by(secret, rule.skip_filters) is not None:
            return False
        if rule.allowlist.allows_secret(secret, matched):
            return False
        return not self.config.allows_secret(rule.id, secret, matched)

    def _decoded_candidates(self, data: bytes, hits: list[tuple[int, int]], depth: int) -> Iterator[_Candidate]:
        base, kinds = self._decoder_base, self._decoder_kinds
        typed = [(kinds[kid - base], end) for kid, end in hits]
        for token_start, token_end, decoded in decoded_lines(data, typed):
            for cand in self._candidates(decoded, depth + 1):
                cand.start, cand.end = token_start, token_end
                cand.line_start = data.rfind(b"\n", 0, token_start) + 1
                cand.decoded = depth + 1
                yield cand

    def _resolve(self, candidates: list[_Candidate]) -> list[_Candidate]:
        """Drop duplicates and overlaps: specific rules beat generic ones, then longer secrets."""
        candidates.sort(
            key=lambda c: (
                self.rules[c.rule_index].generic,
                c.decoded,
                -(c.end - c.start),
                c.rule_index,
                c.start,
            )
        )
        starts: list[int] = []
        ends: list[int] = []
        kept: list[_Candidate] = []
        for cand in candidates:
            pos = bisect.bisect_right(starts, cand.start)
            if pos and ends[pos - 1] > cand.start:
                continue
            if pos < len(starts) and starts[pos] < cand.end:
                continue
            if pos and starts[pos - 1] == cand.start:
                continue
            starts.insert(pos, cand.start)
            ends.insert(pos, cand.end)
            kept.append(cand)
        kept.sort(key=lambda c: c.start)
        return kept

    def _absorb(self, kept: list[_Candidate]) -> list[_Candidate]:
        """One credential, one finding: drop the parts a rule's ``absorbs`` names when they
        lie within ABSORB_WINDOW bytes of its match (a service-account file's private key)."""
        owners = [c for c in kept if self.rules[c.rule_index].absorbs]
        if not owners:
            return kept
        out = []
        for cand in kept:
            rule_id = self.rules[cand.rule_index].id
            if any(
                rule_id in self.rules[o.rule_index].absorbs and abs(o.start - cand.start) <= ABSORB_WINDOW
                for o in owners
            ):
                continue
            out.append(cand)
        return out

    def _finding(self, data: bytes, cand: _Candidate, origin: Origin, base_line: int, base_column: int) -> Finding:
        rule = self.rules[cand.rule_index]
        line = base_line + data.count(b"\n", 0, cand.start)
        column = len(data[cand.line_start : cand.start].decode("utf-8", "replace")) + 1
        if cand.line_start == 0:
            column += base_column
        width = len(data[cand.start : cand.end].decode("utf-8", "replace"))
        finding = Finding(
            rule=rule.id,
            description=rule.description,
            severity=rule.severity,
            file=origin.path,
            line=line,
            column=column,
            end_column=column + max(width, 1),
            secret=cand.secret,
            entropy=cand.entropy,
            tags=rule.tags,
            commit=origin.commit,
            author=origin.author,
            email=origin.email,
            date=origin.date,
        )
        if cand.decoded:
            finding.extra["decoded_depth"] = cand.decoded
        return finding
