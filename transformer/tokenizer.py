"""Tokenizers: text <-> lists of integer ids.

Three tokenizers share one interface and the same four special tokens at fixed ids:

    PAD = 0   fills the short rows of a batch
    BOS = 1   "begin of sequence": the decoder's first input
    EOS = 2   "end of sequence": the decoder's last target
    UNK = 3   stands for a character the vocabulary does not know

``CharTokenizer`` gives every character its own id (right for small synthetic tasks and
for words spelled letter by letter).  ``SymbolTokenizer`` gives every whitespace-separated
symbol its own id (phonemes ``TH AO T``, pinyin syllables ``yin2 hang2``).
``BPETokenizer`` is byte-level byte-pair encoding: it starts from the 256 byte values, so any
Unicode text round-trips exactly, and learns merges of frequent neighbouring tokens.

    >>> tok = CharTokenizer.from_texts(["abc"])
    >>> tok.encode("cab", add_bos=True, add_eos=True)
    [1, 6, 4, 5, 2]
    >>> tok.decode([1, 6, 4, 5, 2])
    'cab'

A model reads one vocabulary and writes another: ``TokenizerPair(source, target)`` holds
one tokenizer per side.  Every tokenizer is also its own pair (``tok.source is tok.target
is tok``), so code written as ``tokenizer.source.encode(src)`` and
``tokenizer.target.decode(ids)`` serves a shared vocabulary and two separate ones alike.

    >>> pair = TokenizerPair(CharTokenizer.from_texts(["thought"]), SymbolTokenizer.from_texts(["TH AO T"]))
    >>> pair.source.encode("tot"), pair.target.encode("T AO T")
    ([7, 6, 7], [5, 4, 5])
    >>> pair.target.decode([5, 4, 5])
    'T AO T'
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from minigrad.files import write_atomically

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")  # index = id
NUM_SPECIAL = len(SPECIAL_TOKENS)


class Tokenizer:
    """What both tokenizers share: special ids, the encode/decode wrappers, batches, files.

    A subclass supplies ``vocab_size``, ``_encode_text(text) -> list[int]`` (no specials),
    ``_decode_tokens(ids) -> str`` (ids without specials) and ``_to_json() -> dict``.
    """

    type_name = ""  # the "type" field of the saved JSON file
    separator = ""  # written between decoded tokens (a space between symbols)
    unit_name = "tokens"  # what one id stands for, in messages
    pad_id, bos_id, eos_id, unk_id = PAD, BOS, EOS, UNK
    vocab_size: int

    def __len__(self) -> int:
        """The vocabulary size, specials included: ``len(tokenizer) == tokenizer.vocab_size``."""
        return self.vocab_size

    def split(self, text: str) -> list[str]:
        """The units ``text`` is read and scored in: its characters (a SymbolTokenizer's
        symbols)."""
        return list(text)

    @property
    def source(self) -> Tokenizer:
        """The tokenizer of the source side: a lone tokenizer serves both sides."""
        return self

    @property
    def target(self) -> Tokenizer:
        """The tokenizer of the target side: a lone tokenizer serves both sides."""
        return self

    def __eq__(self, other) -> bool:
        """Equal tokenizers are of one class and save the same JSON (so encode alike)."""
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Text -> ids, optionally wrapped as [BOS, ..., EOS]."""
        if not isinstance(text, str):
            raise TypeError(f"{type(self).__name__}.encode: expected a str, got {type(text).__name__}")
        ids = self._encode_text(text)
        return ([BOS] if add_bos else []) + ids + ([EOS] if add_eos else [])

    def decode(self, ids: Sequence[int] | np.ndarray, skip_special: bool = True) -> str:
        """Ids (a list or a 1-D array) -> text.

        Special tokens are dropped when ``skip_special``, else written as ``<pad>``, ``<bos>``...
        Decoding does not stop at EOS: cut the ids first if you want that.
        """
        ids = self._check_ids(ids)
        pieces, run = [], []  # run: ordinary ids since the last special token
        for i in ids:
            if i >= NUM_SPECIAL:
                run.append(i)
                continue
            pieces.append(self._decode_tokens(run))
            run = []
            if not skip_special:
                pieces.append(SPECIAL_TOKENS[i])
        pieces.append(self._decode_tokens(run))
        return self.separator.join(piece for piece in pieces if piece)

    def encode_batch(self, texts: Iterable[str], add_bos: bool = False, add_eos: bool = False,
                     pad_to: int | None = None) -> np.ndarray:
        """Texts -> (len(texts), L) int64 array, right-padded with PAD.

        L is the longest encoding, or ``pad_to`` if given (which must fit every row).
        """
        rows = [self.encode(t, add_bos=add_bos, add_eos=add_eos) for t in texts]
        return pad_rows(rows, pad_to=pad_to)

    def decode_batch(self, ids: Sequence[Sequence[int]] | np.ndarray, skip_special: bool = True) -> list[str]:
        """(B, L) ids -> B texts (PAD and the other specials dropped when ``skip_special``)."""
        return [self.decode(row, skip_special=skip_special) for row in ids]

    def to_dict(self) -> dict:
        """A JSON-able dict, with a "type" field; ``tokenizer_from_dict`` reads it back."""
        return {"type": self.type_name, **self._to_json()}

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as JSON.  Atomic: a crash never leaves a half-written file."""
        write_atomically(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a file written by ``save``; ValueError (naming the file) if it is malformed."""
        return _load_as(cls, path)

    def _check_ids(self, ids) -> list[int]:
        """A 1-D sequence of ids -> list of Python ints, each in [0, vocab_size)."""
        array = np.asarray(ids)
        if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"{type(self).__name__}.decode: expected a 1-D sequence of integer ids, "
                             f"got shape {array.shape} dtype {array.dtype}")
        bad = array[(array < 0) | (array >= self.vocab_size)]
        if bad.size:
            raise ValueError(f"{type(self).__name__}.decode: ids {bad[:5].tolist()} are outside "
                             f"[0, {self.vocab_size})")
        return array.tolist()

    def _encode_text(self, text: str) -> list[int]:
        raise NotImplementedError

    def _decode_tokens(self, ids: list[int]) -> str:
        raise NotImplementedError

    def _to_json(self) -> dict:
        raise NotImplementedError


def pad_rows(rows: Sequence[Sequence[int]], pad_to: int | None = None) -> np.ndarray:
    """Lists of ids -> (len(rows), L) int64 array, right-padded with PAD.

    L = ``pad_to`` if given, else the longest row (0 for no rows).
    """
    longest = max((len(r) for r in rows), default=0)
    width = longest if pad_to is None else pad_to
    if longest > width:
        raise ValueError(f"pad_rows: a row has {longest} ids, more than pad_to={pad_to}")
    out = np.full((len(rows), width), PAD, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


# ---------------------------------------------------------------------------- characters

class CharTokenizer(Tokenizer):
    """One id per character: ids 0-3 are the specials, then ``chars`` in the given order.

    Characters outside the vocabulary encode to UNK; ``unknown_chars`` lists them so a
    program can refuse such input with a clear message instead.
    """

    type_name = "char"
    unit_name = "characters"

    def __init__(self, chars: Iterable[str]):
        self.chars = list(chars)
        for c in self.chars:
            if not (isinstance(c, str) and len(c) == 1):
                raise ValueError(f"CharTokenizer: vocabulary entries must be single characters, got {c!r}")
        repeated = sorted(c for c, n in Counter(self.chars).items() if n > 1)
        if repeated:
            raise ValueError(f"CharTokenizer: characters {repeated} appear more than once")
        self.char_to_id = {c: NUM_SPECIAL + i for i, c in enumerate(self.chars)}
        self.vocab_size = NUM_SPECIAL + len(self.chars)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharTokenizer:
        """The vocabulary of every character in ``texts``, sorted (so it is deterministic)."""
        return cls(sorted(set().union(*map(set, texts))))

    @property
    def units(self) -> list[str]:
        """What the vocabulary knows: its characters, in id order."""
        return list(self.chars)

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of ``text`` missing from the vocabulary, in order of appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.char_to_id))

    unknown_chars = unknown

    def _encode_text(self, text: str) -> list[int]:
        return [self.char_to_id.get(c, UNK) for c in text]

    def _decode_tokens(self, ids: list[int]) -> str:
        return "".join(self.chars[i - NUM_SPECIAL] for i in ids)

    def _to_json(self) -> dict:
        return {"chars": self.chars}

    @classmethod
    def _from_json(cls, data: dict) -> CharTokenizer:
        chars = data["chars"]
        if not isinstance(chars, list):
            raise ValueError(f"'chars' must be a list of single characters, got {type(chars).__name__}")
        return cls(chars)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, chars={''.join(self.chars)!r})"


# ---------------------------------------------------------------------------- symbols

class SymbolTokenizer(Tokenizer):
    """One id per whitespace-separated symbol: ids 0-3 are the specials, then ``symbols``.

    ``encode("TH AO T")`` reads the symbols ``TH``, ``AO``, ``T`` (any run of whitespace
    separates two symbols; none is a symbol); ``decode`` writes them with one space
    between, so ``decode(encode(text)) == " ".join(text.split())`` over known symbols.
    Unknown symbols encode to UNK; ``unknown`` lists them.
    """

    type_name = "symbol"
    separator = " "
    unit_name = "symbols"

    def __init__(self, symbols: Iterable[str]):
        self.symbols = list(symbols)
        for symbol in self.symbols:
            if not (isinstance(symbol, str) and symbol and symbol.split() == [symbol]):
                raise ValueError("SymbolTokenizer: vocabulary entries must be non-empty strings without "
                                 f"whitespace, got {_short(symbol)}")
        repeated = sorted(s for s, n in Counter(self.symbols).items() if n > 1)
        if repeated:
            raise ValueError(f"SymbolTokenizer: symbols {repeated[:10]} appear more than once")
        self.symbol_to_id = {s: NUM_SPECIAL + i for i, s in enumerate(self.symbols)}
        self.vocab_size = NUM_SPECIAL + len(self.symbols)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> SymbolTokenizer:
        """The vocabulary of every symbol in ``texts``, sorted (so it is deterministic)."""
        return cls(sorted({symbol for text in texts for symbol in text.split()}))

    @property
    def units(self) -> list[str]:
        """What the vocabulary knows: its symbols, in id order."""
        return list(self.symbols)

    def split(self, text: str) -> list[str]:
        """The units ``encode`` reads: the whitespace-separated symbols of ``text``."""
        return text.split()

    def unknown(self, text: str) -> list[str]:
        """The distinct symbols of ``text`` missing from the vocabulary, in order of appearance."""
        return list(dict.fromkeys(s for s in text.split() if s not in self.symbol_to_id))

    def _encode_text(self, text: str) -> list[int]:
        return [self.symbol_to_id.get(s, UNK) for s in text.split()]

    def _decode_tokens(self, ids: list[int]) -> str:
        return " ".join(self.symbols[i - NUM_SPECIAL] for i in ids)

    def _to_json(self) -> dict:
        return {"symbols": self.symbols}

    @classmethod
    def _from_json(cls, data: dict) -> SymbolTokenizer:
        symbols = data["symbols"]
        if not isinstance(symbols, list):
            raise ValueError(f"'symbols' must be a list of strings, got {type(symbols).__name__}")
        return cls(symbols)

    def __repr__(self) -> str:
        shown = " ".join(self.symbols[:20]) + (" ..." if len(self.symbols) > 20 else "")
        return f"SymbolTokenizer(vocab_size={self.vocab_size}, symbols={shown!r})"


# A side whose texts hold more distinct symbols than this is spelled by characters: a
# vocabulary that large is a vocabulary of words, and a word outside it would become UNK.
MAX_SYMBOLS = 2000
TOKENIZER_KINDS = ("auto", "chars", "symbols")


def looks_like_symbols(texts: Sequence[str]) -> bool:
    """True when ``texts`` read as sequences of whitespace-separated symbols.

    That is when (1) some text holds two or more units, (2) some unit is longer than one
    character, (3) every unit holds a letter, and (4) there are at most MAX_SYMBOLS
    distinct units.  Phonemes (``TH AO T``) and pinyin (``yin2 hang2``) pass; single words
    fail (1), spaced digits fail (2), dates and sums (``5 May 2024``, ``12 + 7``) fail (3).
    Sentences over a small vocabulary pass: choose ``kind="chars"`` for those.
    """
    units = [text.split() for text in texts]
    distinct = set().union(*map(set, units))
    return (any(len(u) >= 2 for u in units)
            and any(len(unit) > 1 for unit in distinct)
            and all(any(c.isalpha() for c in unit) for unit in distinct)
            and len(distinct) <= MAX_SYMBOLS)


def tokenizer_for_texts(texts: Iterable[str], kind: str = "auto") -> CharTokenizer | SymbolTokenizer:
    """The tokenizer of one side of a dataset: characters or symbols (``kind``), or with
    "auto" symbols when ``looks_like_symbols(texts)`` and characters otherwise."""
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"tokenizer kind must be one of {TOKENIZER_KINDS}, got {kind!r}")
    texts = list(texts)
    if kind == "symbols" or (kind == "auto" and looks_like_symbols(texts)):
        return SymbolTokenizer.from_texts(texts)
    return CharTokenizer.from_texts(texts)


# ---------------------------------------------------------------------------- byte-pair encoding

BYTE_OFFSET = NUM_SPECIAL             # byte b has id BYTE_OFFSET + b
FIRST_MERGE_ID = BYTE_OFFSET + 256    # the merge of rank r makes token FIRST_MERGE_ID + r

# Text is cut into chunks before BPE and merges never cross a chunk boundary, so a token
# is never "end of one word + start of the next".  A chunk is a run of letters, of digits
# or of other symbols, each with at most one leading space; or a run of whitespace.  The
# `\s+(?!\S)` alternative leaves the last space of a run to the word that follows, so
# "a   b" -> ["a", "  ", " b"].  Every character matches some alternative, so the chunks
# always join back to the text.
CHUNK_PATTERN = re.compile(r" ?[^\W\d_]+| ?\d+| ?[^\w\s]+| ?_+|\s+(?!\S)|\s+")


def split_into_chunks(text: str) -> list[str]:
    """Text -> the chunks BPE works on, e.g. "Hi, 42 cats" -> ["Hi", ",", " 42", " cats"]."""
    return CHUNK_PATTERN.findall(text)


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` (left to right) by ``new_id``."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class BPETokenizer(Tokenizer):
    """Byte-level BPE.  Ids: 0-3 specials, 4-259 the bytes 0-255, then one id per merge.

    ``merges[r] = (left, right)`` means: the token with id ``FIRST_MERGE_ID + r`` is
    ``left`` followed by ``right``.  Encoding turns each chunk into bytes and repeatedly
    merges the neighbouring pair of lowest rank, the order in which training learned them.
    """

    type_name = "bpe"
    _CACHE_LIMIT = 50_000  # chunk encodings remembered; cleared when full

    def __init__(self, merges: Iterable[tuple[int, int]] = ()):
        self.merges = [tuple(pair) for pair in merges]
        self.token_bytes = [b""] * NUM_SPECIAL + [bytes([b]) for b in range(256)]
        for rank, (left, right) in enumerate(self.merges):
            new_id = FIRST_MERGE_ID + rank
            for part in (left, right):
                if not (isinstance(part, int) and BYTE_OFFSET <= part < new_id):
                    raise ValueError(f"BPETokenizer: merge {rank} = {(left, right)} refers to id {part!r}, "
                                     f"expected an int in [{BYTE_OFFSET}, {new_id})")
            self.token_bytes.append(self.token_bytes[left] + self.token_bytes[right])
        self.rank_of = {pair: rank for rank, pair in enumerate(self.merges)}
        self.vocab_size = FIRST_MERGE_ID + len(self.merges)
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> BPETokenizer:
        """Learn merges from ``texts`` until there are ``vocab_size`` tokens.

        Each step merges the most frequent neighbouring pair; ties go to the smallest pair
        of ids ``(left, right)``, so training is deterministic.  Training stops early when
        no pair occurs ``min_frequency`` times, so ``vocab_size`` is an upper bound.

        Pairs are counted over distinct chunks weighted by how often each occurs, and after
        a merge only the chunks that contained the pair are recounted.
        """
        if vocab_size < FIRST_MERGE_ID:
            raise ValueError(f"BPETokenizer.train: vocab_size={vocab_size} is below the "
                             f"{FIRST_MERGE_ID} specials and bytes every byte-level vocabulary holds")
        chunk_counts = Counter(chunk for text in texts for chunk in split_into_chunks(text))
        words = [[BYTE_OFFSET + b for b in chunk.encode("utf-8")] for chunk in chunk_counts]
        counts = list(chunk_counts.values())

        pair_counts: Counter[tuple[int, int]] = Counter()
        words_with: defaultdict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> word indices
        for w, ids in enumerate(words):
            for pair in zip(ids, ids[1:]):
                pair_counts[pair] += counts[w]
                words_with[pair].add(w)

        # A max-heap of (count, pair) through negated counts; entries whose count is out of
        # date are skipped when popped (cheaper than updating them in place).
        heap = [(-n, pair) for pair, n in pair_counts.items()]
        heapq.heapify(heap)
        merges: list[tuple[int, int]] = []
        while len(merges) < vocab_size - FIRST_MERGE_ID and heap:
            negative_count, best = heapq.heappop(heap)
            if -negative_count != pair_counts.get(best, 0):
                continue  # stale entry
            if -negative_count < min_frequency:
                break
            new_id = FIRST_MERGE_ID + len(merges)
            merges.append(best)
            changed = set()
            for w in words_with.pop(best):
                old = words[w]
                for pair in zip(old, old[1:]):
                    pair_counts[pair] -= counts[w]
                    changed.add(pair)
                words[w] = new = merge_pair(old, best, new_id)
                for pair in zip(new, new[1:]):
                    pair_counts[pair] += counts[w]
                    words_with[pair].add(w)
                    changed.add(pair)
            for pair in changed:
                if pair_counts[pair] > 0:
                    heapq.heappush(heap, (-pair_counts[pair], pair))
                else:
                    del pair_counts[pair]
        return cls(merges)

    def unknown(self, text: str) -> list[str]:
        """Nothing: bytes spell every text."""
        return []

    def token_text(self, token_id: int) -> str:
        """A readable form of one token, e.g. ' the' or '<eos>' (invalid UTF-8 shown as \\x..)."""
        if token_id < NUM_SPECIAL:
            return SPECIAL_TOKENS[token_id]
        return self.token_bytes[token_id].decode("utf-8", errors="backslashreplace")

    def _encode_chunk(self, chunk: str) -> list[int]:
        ids = [BYTE_OFFSET + b for b in chunk.encode("utf-8")]
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.rank_of.get(p, len(self.merges)))
            if pair not in self.rank_of:
                break  # no neighbouring pair was ever merged
            ids = merge_pair(ids, pair, FIRST_MERGE_ID + self.rank_of[pair])
        return ids

    def _encode_text(self, text: str) -> list[int]:
        ids = []
        for chunk in split_into_chunks(text):
            if chunk not in self._cache:
                if len(self._cache) >= self._CACHE_LIMIT:
                    self._cache.clear()
                self._cache[chunk] = self._encode_chunk(chunk)
            ids.extend(self._cache[chunk])
        return ids

    def _decode_tokens(self, ids: list[int]) -> str:
        # A model may emit a byte sequence that is not valid UTF-8; show it as U+FFFD.
        return b"".join(self.token_bytes[i] for i in ids).decode("utf-8", errors="replace")

    def _to_json(self) -> dict:
        return {"merges": [list(pair) for pair in self.merges]}

    @classmethod
    def _from_json(cls, data: dict) -> BPETokenizer:
        merges = data["merges"]
        if not (isinstance(merges, list) and all(isinstance(m, list) and len(m) == 2 for m in merges)):
            raise ValueError("'merges' must be a list of [left_id, right_id] pairs")
        return cls(merges)

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"


# ---------------------------------------------------------------------------- one per side

class TokenizerPair:
    """A tokenizer for each side of a model: ``source`` for what it reads, ``target`` for
    what it writes.  Not itself a tokenizer: ``pair.vocab_size`` is an AttributeError,
    so code that forgot which side it means fails at once.

    Saved as ``{"type": "pair", "source": {...}, "target": {...}}``.
    """

    type_name = "pair"

    def __init__(self, source: Tokenizer, target: Tokenizer):
        for side, tokenizer in (("source", source), ("target", target)):
            if not isinstance(tokenizer, Tokenizer):
                raise TypeError(f"TokenizerPair: the {side} must be a Tokenizer, got {type(tokenizer).__name__}")
        self.source, self.target = source, target

    def to_dict(self) -> dict:
        """A JSON-able dict; ``tokenizer_from_dict`` reads it back."""
        return {"type": self.type_name, "source": self.source.to_dict(), "target": self.target.to_dict()}

    def save(self, path: str | os.PathLike) -> None:
        """Write the pair as JSON.  Atomic: a crash never leaves a half-written file."""
        write_atomically(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> TokenizerPair:
        """Read a file written by ``save``; ValueError (naming the file) if it is malformed."""
        return _load_as(cls, path)

    def __eq__(self, other) -> bool:
        return isinstance(other, TokenizerPair) and (self.source, self.target) == (other.source, other.target)

    def __hash__(self) -> int:
        return hash((self.source, self.target))

    def __repr__(self) -> str:
        return f"TokenizerPair(source={self.source!r}, target={self.target!r})"


# ---------------------------------------------------------------------------- files

TOKENIZER_TYPES: dict[str, type[Tokenizer]] = {"char": CharTokenizer, "symbol": SymbolTokenizer,
                                               "bpe": BPETokenizer}


def load_tokenizer(path: str | os.PathLike) -> Tokenizer | TokenizerPair:
    """Read a tokenizer (or pair) saved by ``save``, of the class its "type" field names.

    Raises ValueError naming ``path`` if the file is not JSON or is not a valid tokenizer.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a tokenizer file (invalid JSON: {e})") from e
    return tokenizer_from_dict(data, source=str(path))


def _load_as(cls, path):
    tokenizer = load_tokenizer(path)
    if not isinstance(tokenizer, cls):
        raise ValueError(f"{path}: holds a {type(tokenizer).__name__}, not a {cls.__name__}")
    return tokenizer


def tokenizer_from_dict(data, source: str = "tokenizer_from_dict") -> Tokenizer | TokenizerPair:
    """The tokenizer or pair ``to_dict`` described; ValueError (one line, naming
    ``source``) if the dict is not one.  A pair's sides must be plain tokenizers, so
    reading never nests deeper than one level."""
    if isinstance(data, dict) and data.get("type") == TokenizerPair.type_name:
        missing = [side for side in ("source", "target") if side not in data]
        if missing:
            raise ValueError(f"{source}: malformed pair tokenizer: missing field {missing[0]!r}")
        return TokenizerPair(*(_plain_tokenizer_from_dict(data[side], f"{source}: {side} side")
                               for side in ("source", "target")))
    return _plain_tokenizer_from_dict(data, source)


def _plain_tokenizer_from_dict(data, source: str) -> Tokenizer:
    if not isinstance(data, dict) or data.get("type") not in TOKENIZER_TYPES:
        found = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{source}: not a tokenizer (expected an object with \"type\" one of "
                         f"{sorted(TOKENIZER_TYPES)}, found {_short(found)})")
    try:
        return TOKENIZER_TYPES[data["type"]]._from_json(data)
    except KeyError as e:
        raise ValueError(f"{source}: malformed {data['type']} tokenizer: missing field {e}") from e
    except (ValueError, TypeError) as e:
        raise ValueError(f"{source}: malformed {data['type']} tokenizer: {e}") from e


def _short(value, limit: int = 60) -> str:
    """repr(value), cut to ``limit`` characters, for messages about untrusted input."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
