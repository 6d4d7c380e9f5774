"""The bulk path: a whole Arrow table of logged decisions -> VW lines, column-wise.

The logged context JSON of every decision is parsed at once by Arrow's JSON
reader; each namespace is then assembled with Arrow string kernels, and the
action crosses are built once per (decision, channel) and once per (decision,
topic) and gathered per action line. The output is byte-identical to the
per-decision path (:mod:`nba.features.tokens`) row by row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from nba.catalog import Catalog
from nba.context import (
    ATTRIBUTE_NAME,
    CONTENT_WINDOW,
    HISTORY_WINDOWS,
    READABLE_CONTEXT_VERSIONS,
    topic_channel_key,
)
from nba.domain import ACTION_SEPARATOR, ADOPTION_STAGES
from nba.features.batch import FeaturizedBatch, concat_buffer, join
from nba.features.config import (
    AGE_BUCKET_OLDER,
    AGE_BUCKETS,
    CLEAN_PATTERN,
    FeaturizeError,
    age_bucket,
    clean,
)
from nba.features.countmaps import CountMap, maps_check_out, split_count_maps
from nba.features.dsjson import line_to_namespaces
from nba.features.tokens import DOW

if TYPE_CHECKING:
    from nba.features.featurizer import Featurizer


def featurize_bulk(
    f: Featurizer,
    ctx: pa.Array,
    acts: pa.Array,
    event_ids: pa.Array,
    action_json: bool = False,
) -> FeaturizedBatch | None:
    """The lines of native contexts, column-wise (see :meth:`Featurizer.featurize_table`).

    Parameters
    ----------
    f : Featurizer
    ctx : pyarrow.StringArray, shape (n,)
        Logged context JSON, no nulls, no foreign DSJSON.
    acts : pyarrow.ListArray of string, shape (n,)
        Eligible action ids of each decision, in scoring order.
    event_ids : pyarrow.StringArray, shape (n,)
        Named in error messages.
    action_json : bool, default False
        Also write each action line as its DSJSON object (see
        :attr:`FeaturizedBatch.actions_json`), built from the same pieces.

    Returns
    -------
    FeaturizedBatch or None
        None when Arrow cannot read the contexts as one table (a field whose JSON
        type changes between rows): the caller then goes row by row.
    """
    try:
        return _featurize_bulk(f, ctx, acts, event_ids, action_json, True)
    except _CountMapRefused:
        # a history map read apart fails a check: the general way says how
        return _featurize_bulk(f, ctx, acts, event_ids, action_json, False)


def _featurize_bulk(
    f: Featurizer,
    ctx: pa.Array,
    acts: pa.Array,
    event_ids: pa.Array,
    action_json: bool,
    read_apart: bool,
) -> FeaturizedBatch | None:
    """:func:`featurize_bulk`; ``read_apart``: read the history count maps
    without Arrow's JSON reader where they are of the form it covers."""
    n = len(ctx)
    blob = concat_buffer(pc.binary_join_element_wise(ctx, "\n", ""))
    got = _parse_contexts(blob, ctx, read_apart)
    if got is None:
        # columns whose JSON type changes between rows (e.g. a request value
        # that is a number in one row and a string in another): row by row
        return None
    parsed, count_maps = got
    if parsed.num_rows != n:
        raise FeaturizeError(f"featurize_table: parsed {parsed.num_rows} contexts from {n} rows")
    cols = _Columns(parsed, event_ids)
    ver = cols.get("v")
    if ver is not None and not pa.types.is_null(ver.type):
        if not pa.types.is_integer(ver.type):
            raise FeaturizeError(f"featurize_table: field 'v' is {ver.type}, not an integer")
        bad = pc.invert(pc.is_in(ver, pa.array(READABLE_CONTEXT_VERSIONS, ver.type)))
        cols.fail_if(bad, "v", "unsupported context version")
    spec = cols.req_str("hcp", "specialty")
    market = cols.req_str("hcp", "market")
    stage = cols.req_str("hcp", "adoption_stage")
    cols.fail_if(
        pc.invert(pc.is_in(stage, pa.array(ADOPTION_STAGES))),
        "hcp.adoption_stage",
        f"not one of {', '.join(ADOPTION_STAGES)}",
    )
    decile = cols.req_num("hcp", "decile")
    cols.fail_if(pc.or_(pc.less(decile, 1), pc.greater(decile, 10)), "hcp.decile", "must be 1-10")
    aff_col = cols.get("hcp", "digital_affinity")
    aff = (
        np.full(n, 0.5)
        if aff_col is None
        else pc.fill_null(aff_col.cast(pa.float64()), 0.5).to_numpy(zero_copy_only=False)
    )
    if np.any((aff < 0) | (aff > 1)) or not np.all(np.isfinite(aff)):
        cols.fail_if(
            pa.array((aff < 0) | (aff > 1) | ~np.isfinite(aff)),
            "hcp.digital_affinity",
            "must be in [0, 1]",
        )
    aff_s = _fixed3_arrow(aff)
    day = cols.req("day")
    day = _as_date32(day, cols)

    # each shared namespace's VW text, built when the lines are read
    shared_parts: list[Callable[[], pa.Array]] = []
    # each shared namespace's tokens as factors, for its DSJSON (action_json)
    json_ns: list[tuple[str, list[_Factor]]] = []
    cfg = set(f.config.namespaces)
    consents = _Consents(cols.get("hcp", "consents"), n)
    if "p" in cfg:
        nosee_col = cols.get("hcp", "no_see")
        nosee = (
            pa.nulls(n, pa.string())
            if nosee_col is None
            else pc.if_else(pc.fill_null(nosee_col, False), " nosee", pa.scalar(None, pa.string()))
        )
        cons = consents.tokens()
        attrs = _attribute_pieces(cols.get("attributes"), cols)
        dec_s = pc.cast(decile.cast(pa.int64()), pa.string())
        shared_parts.append(
            lambda: join(
                " |p spec=",
                _clean_arrow(spec),
                " mkt=",
                _clean_arrow(market),
                " stage=",
                stage,
                " dec=",
                dec_s,
                " aff:",
                aff_s,
                nosee,
                cons,
                *attrs,
            )
        )
        if action_json:
            aff_milli = np.rint(aff * 1000.0).astype(np.int64)  # aff is in [0, 1]
            json_ns.append(
                (
                    "p",
                    [
                        _token_factor(" spec=", spec, True),
                        _token_factor(" mkt=", market, True),
                        _token_factor(" stage=", stage, False),
                        _token_factor(" dec=", dec_s, False),
                        ([" aff:" + t for t in _fixed3_upto(1000)[:1001]], aff_milli),
                        nosee,
                        cons,
                        *attrs,
                    ],
                )
            )
    hist = _HistoryColumns(cols, n, count_maps)
    if hist.interest_noncanonical:
        return None  # interest values with more than three decimals: rounded row by row
    if "h" in cfg:
        h_tokens = hist.tokens()
        shared_parts.append(lambda: join(" |h", *_gather(h_tokens)))
        json_ns.append(("h", h_tokens))
    if "r" in cfg:
        try:
            request = _request_pieces(cols.get("request"), cols)
        except pa.ArrowInvalid:
            return None  # a request value Arrow read as a timestamp: row by row
        shared_parts.append(lambda: join(" |r", *request))
        json_ns.append(("r", list(request)))
    if "c" in cfg:
        dow_code = pc.day_of_week(day)
        month = pc.month(day)
        shared_parts.append(
            lambda: join(
                " |c dow=",
                pa.array(list(DOW), pa.string()).take(dow_code),
                " mon=",
                pc.cast(month, pa.string()),
            )
        )
        json_ns.append(
            (
                "c",
                [
                    ([f" dow={d}" for d in DOW], _codes(dow_code)),
                    ([f" mon={m}" for m in range(13)], _codes(month)),
                ],
            )
        )
    shared_json = _shared_json(json_ns, n) if action_json else None

    def shared_lines() -> pa.Array:
        # no shared namespace: the bare word (a join of no array gives a scalar)
        if not shared_parts:
            return pa.array(["shared"] * n)
        return join("shared", *(part() for part in shared_parts))

    # the VW shared lines only if read where their JSON was written (the DSJSON
    # export reads the JSON)
    shared: pa.Array | Callable[[], pa.Array] = (
        shared_lines if shared_json is not None else shared_lines()
    )

    # ---- actions
    flat_ids = acts.flatten()
    list_offsets = np.asarray(acts.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    list_offsets = list_offsets - list_offsets[0]
    sizes = np.diff(list_offsets)
    if np.any(sizes == 0):
        bad = int(np.flatnonzero(sizes == 0)[0])
        raise FeaturizeError(
            f"featurize_table: event {event_ids[bad].as_py()!r}: no eligible actions"
        )
    cat_ids = pa.array(list(f.catalog.action_ids), pa.string())
    idx_arr = pc.index_in(flat_ids, value_set=cat_ids)
    if idx_arr.null_count:
        bad_flat = int(np.flatnonzero(idx_arr.is_null().to_numpy(zero_copy_only=False))[0])
        row = int(np.searchsorted(list_offsets, bad_flat, side="right") - 1)
        raise FeaturizeError(
            f"featurize_table: event {event_ids[row].as_py()!r}: action "
            f"{flat_ids[bad_flat].as_py()!r} is not in catalog {f.catalog.version}"
        )
    aidx = idx_arr.to_numpy(zero_copy_only=False).astype(np.int64)
    row_of = np.repeat(np.arange(n, dtype=np.int64), sizes)
    static = [f._static[a] for a in f.catalog.action_ids]
    if "x" not in cfg:
        line = pa.array(static, pa.string()).take(pa.array(aidx))
        batch = FeaturizedBatch(shared, line, list_offsets)
        batch.shared_json = shared_json
        if action_json:
            opened = [_static_json(s, False) for s in static]
            if all(o is not None for o in opened):
                batch.actions_json = pa.array(opened, pa.string()).take(pa.array(aidx))
        return batch
    stated = (
        _Consents(_name_list_column(cols, "stated", "topics"), n),
        _Consents(_name_list_column(cols, "stated", "channels"), n),
    )
    sep = " |x" if f.config.action != ("x",) else "|x"
    factors, per_channel, channel_of = _cross_factors(
        f.catalog, [s + sep for s in static], aidx, row_of, hist, consents, stage, aff, stated
    )
    if not action_json:
        return FeaturizedBatch.from_parts(
            shared, _assemble(factors, per_channel, channel_of), list_offsets
        )
    # the VW action lines only if read (the DSJSON export reads the objects)
    batch = FeaturizedBatch.from_parts(
        shared, lambda: _assemble(factors, per_channel, channel_of), list_offsets
    )
    batch.actions_json = _cross_json(factors, per_channel, channel_of)
    batch.shared_json = shared_json
    return batch


def _codes(arr: pa.Array) -> npt.NDArray[np.int64]:
    """An integer array without nulls as int64 NumPy, shape (n,)."""
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64)


def _token_factor(prefix: str, values: pa.Array, cleaned: bool) -> _Factor:
    """``prefix`` + each value (through :func:`_clean_arrow` when ``cleaned``) as
    a factor: the distinct values' tokens and each row's code (``values``:
    string array without nulls, shape (n,))."""
    enc = pc.dictionary_encode(values)
    words = _clean_arrow(enc.dictionary) if cleaned else enc.dictionary
    return [prefix + w for w in words.to_pylist()], _codes(enc.indices)


def _shared_json(namespaces: list[tuple[str, list[_Factor]]], n: int) -> pa.Array | None:
    """The shared lines' namespaces as the open start of each decision's DSJSON
    ``c`` object (see :attr:`FeaturizedBatch.shared_json`), built from the
    factors of each namespace's tokens (the ones its VW text is joined from):
    each factor's distinct values written once as ``"name":value,`` pieces
    (:func:`_factor_json`), gathered per row like the VW text, the last comma
    of each namespace replaced by its closing brace.

    The bytes are those of ``json.dumps(line_to_namespaces(line))`` (compact,
    non-ASCII kept) without the closing brace, a comma after the last
    namespace: the namespaces are distinct and in the line's order, each row
    takes one value of every factor, every value starts with a space and holds
    no ``|`` (so it splits into the same tokens alone as inside the line), and
    the feature names are checked distinct within each value and between the
    factors of a namespace, so no dict would merge a repeated name.

    Parameters
    ----------
    namespaces : list of (str, list of factors)
        Each namespace's name and its factors in line order (string arrays of
        shape (n,), nulls writing nothing, or ``(vocab, codes)`` pairs).
    n : int
        Rows.

    Returns
    -------
    pyarrow.StringArray, shape (n,), or None
        None when a value is of a form not covered (:func:`_fragment_json`), or
        a name may repeat within a namespace: the caller converts the VW text.
    """
    pieces: list[pa.Array | str] = ["{"]
    try:
        for name, factors in namespaces:
            names: set[str] = set()
            inner = [_factor_json(fac, names) for fac in factors]
            pieces.append(f"{_dumps(name)}:{{")
            if inner:
                # every value's text ends with a comma: the last one (if any)
                # becomes the namespace's closing brace, bytewise
                body = join(*_gather(inner))
                pieces.append(pc.binary_replace_slice(body, -1, _NO_END, "},"))
            else:
                pieces.append("},")
    except _NotJson:
        return None
    if not any(isinstance(piece, pa.Array) for piece in pieces):
        return pa.array(["".join(str(piece) for piece in pieces)] * n, pa.string())
    return join(*pieces)


def _read_json(blob: pa.Buffer) -> pa.Table:
    """Arrow's parse of newline-separated contexts (raises ``ArrowInvalid``)."""
    # contexts written over several lines parse too; read as one block, allowing
    # it costs nothing (scanning every context for a newline did)
    opts = pj.ParseOptions(newlines_in_values=True)
    # one block: the contexts come back as one chunk (nothing to combine), and
    # the caller's other thread keeps the second core busy with VW
    read = pj.ReadOptions(use_threads=False, block_size=max(blob.size + 1, 1 << 20))
    return pj.read_json(pa.BufferReader(blob), read_options=read, parse_options=opts)


def _parse_contexts(
    blob: pa.Buffer, ctx: pa.Array, read_apart: bool = True
) -> tuple[pa.Table, dict[str, CountMap] | None] | None:
    """The contexts parsed, with the history count maps read apart when they can
    be (:mod:`nba.features.countmaps`; else None, and Arrow parses them as
    structs); None when Arrow cannot read the contexts as one table.

    Parameters
    ----------
    blob : pyarrow.Buffer
        The contexts of ``ctx`` (shape (n,)), each followed by a newline.
    """
    split = None
    if read_apart:
        width = np.int64 if pa.types.is_large_string(ctx.type) else np.int32
        offs = np.frombuffer(ctx.buffers()[1], dtype=width)[ctx.offset : ctx.offset + len(ctx) + 1]
        offs = offs.astype(np.int64)
        starts = offs - offs[0] + np.arange(len(offs), dtype=np.int64)
        split = split_count_maps(blob, starts, COUNT_MAPS)
    if split is not None:
        try:
            parsed = _read_json(split[0])
        except pa.ArrowInvalid:
            parsed = None  # the general parse below says what is wrong
        if parsed is not None and maps_check_out(parsed, split[1]):
            return parsed, split[1]
    try:
        return _read_json(blob), None
    except pa.ArrowInvalid:
        return None


#: the history maps of whole counts (read by :func:`split_count_maps` when it can)
COUNT_MAPS = (
    "days_since_content",
    "days_since_touch",
    "engagements_30d",
    "topic_channel_engagements_90d",
    "topic_engagements_90d",
    "topic_pulls_90d",
    *(f"touches_{w}d" for w in HISTORY_WINDOWS),
)


#: most strings a lookup table of combined tokens holds (see :func:`_gather`)
_MAX_TABLE = 4096

#: a piece of a line: strings ``vocab[codes[i]]`` (vocab, codes), or ready strings
_Factor: TypeAlias = tuple[list[str], npt.NDArray[np.int64]] | pa.Array


def _gather(factors: list[_Factor]) -> list[pa.Array]:
    """Arrays whose element-wise concatenation is, row by row, the concatenation
    of the factors. Runs of (vocab, codes) factors become one table of all
    their combinations while it stays within :data:`_MAX_TABLE` strings,
    gathered with one take: one pass over the rows per run instead of one per
    token.

    Parameters
    ----------
    factors : list
        Each ``(vocab, codes)`` (list of k strings, int64 array of shape (n,)
        indexing it) or a string array of shape (n,) (nulls write nothing).

    Returns
    -------
    list of pyarrow.StringArray, each shape (n,)
    """
    out: list[pa.Array] = []
    vocab: list[str] | None = None
    codes = np.zeros(0, dtype=np.int64)
    for fac in factors:
        if isinstance(fac, tuple) and vocab is not None and len(vocab) * len(fac[0]) <= _MAX_TABLE:
            vocab = [a + b for a in vocab for b in fac[0]]
            codes = codes * len(fac[0]) + fac[1]
            continue
        if vocab is not None:
            out.append(pa.array(vocab, pa.string()).take(pa.array(codes)))
            vocab = None
        if isinstance(fac, tuple):
            vocab, codes = list(fac[0]), np.asarray(fac[1], dtype=np.int64)
        else:
            out.append(fac)
    if vocab is not None:
        out.append(pa.array(vocab, pa.string()).take(pa.array(codes)))
    return out


def _count_factor(prefix: str, vals: npt.NDArray[np.int64]) -> _Factor:
    """`` <prefix><v>`` where a count ``v`` (shape (n,), >= 0) is not zero."""
    top = int(vals.max()) if vals.size else 0
    if top <= _MAX_TABLED_COUNT:
        return [""] + [f"{prefix}{v}" for v in range(1, top + 1)], vals
    s = pc.binary_join_element_wise(prefix, pc.cast(pa.array(vals), pa.string()), "")
    return pc.if_else(pa.array(vals != 0), s, pa.scalar(None, pa.string()))


def _flag_factor(token: str, flags: npt.NDArray[np.bool_]) -> _Factor:
    """``token`` where ``flags`` (shape (n,)) is true."""
    return ["", token], flags.astype(np.int64)


def _fixed3_str(m: int) -> str:
    """:func:`nba.features.config.fixed3` of ``m / 1000`` for a whole ``m``."""
    sign = "-" if m < 0 else ""
    m = abs(m)
    return f"{sign}{m // 1000}.{m % 1000:03d}"


#: ``_fixed3_str(m)`` for m = 0, 1, ..., built once and grown when a larger value
#: is needed (replaced, never changed in place: readers in other threads keep a
#: whole list)
_FIXED3: list[list[str]] = [[]]


def _fixed3_upto(top: int) -> list[str]:
    """``_fixed3_str(m)`` for m in 0..``top`` (at least; index it by m). Building
    these per batch cost about a quarter of a CPU second per 200,000 decisions
    (interest tables reach thousands of values per topic)."""
    table = _FIXED3[0]
    if len(table) <= top:
        upto = max(top + 1, 2 * len(table))
        table = table + [_fixed3_str(m) for m in range(len(table), upto)]
        _FIXED3[0] = table
    return table


def _fixed3_tokens(prefix: str, top: int) -> list[str]:
    """``""``, then ``prefix`` + :func:`_fixed3_str` of 1..``top`` (index them by
    thousandths); kept per prefix and grown as needed (interest tables reach
    thousands of strings per topic, and recur in every batch)."""
    table = _FIXED3_TOKENS.get(prefix)
    if table is None or len(table) <= top:
        upto = max(top + 1, min(2 * len(table) if table else 0, _MAX_TABLED_INTEREST + 1))
        if len(_FIXED3_TOKENS) >= _MAX_VOCABS:
            _FIXED3_TOKENS.clear()  # topics come from the data: keep the cache bounded
        table = _FIXED3_TOKENS[prefix] = ["", *(prefix + t for t in _fixed3_upto(upto)[1:upto])]
    return table[: top + 1]


#: :func:`_fixed3_tokens` per prefix (one per interest topic), at most
#: :data:`_MAX_VOCABS` prefixes
_FIXED3_TOKENS: dict[str, list[str]] = {}


def _cross_factors(
    cat: Catalog,
    static: list[str],
    aidx: npt.NDArray[np.int64],
    row_of: npt.NDArray[np.int64],
    hist: _HistoryColumns,
    consents: _Consents,
    stage: pa.Array,
    aff: npt.NDArray[np.float64],
    stated: tuple[_Consents, _Consents],
) -> tuple[list[_Factor | None], list[_Factor], npt.NDArray[np.int64]]:
    """The action lines with their ``x`` namespace, as factors: the catalog's
    static namespaces of each action (``static``, one per catalog action, ending
    with the ``x`` separator) and its crosses with the decision's context.
    Channel-dependent tokens are built once per (decision, channel) pair that
    occurs; the others are looked up per action line in small tables of token
    strings (:func:`_gather`).

    Returns
    -------
    factors : list
        The factors of each action line, in line order; ``None`` stands for the
        per-channel piece.
    per_channel : list
        The factors of the per-channel piece, one row per (decision, channel) pair.
    channel_of : numpy.ndarray of int64, shape (n_action_lines,)
        The pair of each action line (row of ``per_channel``).
    """
    m = len(aidx)
    ch_of = cat.action_channel_index.astype(np.int64)[aidx]
    top_of = cat.action_topic_index.astype(np.int64)[aidx]
    item_of = cat.action_item_index.astype(np.int64)[aidx]
    channels = list(cat.channels)
    topics = list(cat.topics)
    item_ids = [it.id for it in cat.items]
    nch, ntop = len(channels), len(topics)

    # the action's static namespaces, then whether its item is the last one seen
    same = np.zeros(m, dtype=bool)
    last = hist.last_content
    if last is not None:
        last_code = pc.fill_null(pc.index_in(last, value_set=pa.array(item_ids, pa.string())), -1)
        same = np.asarray(last_code.to_numpy(zero_copy_only=False), dtype=np.int64)[row_of] == (
            item_of
        )
    factors: list[_Factor | None] = [(static, aidx), _flag_factor(" same_last", same)]

    # per (decision, channel) pair that occurs
    pair_key = row_of * nch + ch_of
    # the pairs that occur, in order, and each line's pair: a mark per possible
    # pair (n * channels of them) instead of sorting the lines' keys
    occurs = np.zeros(hist.n * nch, dtype=bool)
    occurs[pair_key] = True
    pairs = np.flatnonzero(occurs)
    pair_of = np.cumsum(occurs) - 1
    p_row, p_ch = pairs // nch, pairs % nch
    at_c = p_row * nch + p_ch

    def ch_counts(name: str) -> npt.NDArray[np.int64]:
        return hist.values_at(name, channels, p_row, p_ch)[0]

    dst, dst_here = hist.values_at("days_since_touch", channels, p_row, p_ch)
    top_dst = int(dst[dst_here].max()) if dst_here.any() else 0
    dst_factor: _Factor
    if top_dst <= _MAX_TABLED_COUNT:
        dst_vocab = [f" ch_dst:{d} ch_dstb={age_bucket(d)}" for d in range(top_dst + 1)]
        dst_factor = ([*dst_vocab, " ch_dst_none"], np.where(dst_here, dst, top_dst + 1))
    else:
        dst_factor = pc.if_else(
            pa.array(dst_here),
            join(
                " ch_dst:", pc.cast(pa.array(dst), pa.string()), " ch_dstb=", _age_bucket_arrow(dst)
            ),
            " ch_dst_none",
        )
    # digital affinity is in [0, 1]: 1001 values per channel
    aff_m = np.rint(aff * 1000.0).astype(np.int64)
    aff_vocab = _aff_vocab(tuple(channels))
    per_channel: list[_Factor] = [
        _count_factor(" ch_t7:", ch_counts("touches_7d")),
        _count_factor(" ch_t30:", ch_counts("touches_30d")),
        _count_factor(" ch_e30:", ch_counts("engagements_30d")),
        dst_factor,
        (aff_vocab, p_ch * 1001 + aff_m[p_row]),
        _flag_factor(" nocons", ~consents.matrix(channels).reshape(-1)[at_c]),
    ]
    factors.append(None)

    # per action line: topic engagements, stage x topic, topic x channel, item age
    factors.append(
        _count_factor(
            " top_e90:", hist.values_at("topic_engagements_90d", topics, row_of, top_of)[0]
        )
    )
    stage_code = np.asarray(
        pc.index_in(stage, value_set=pa.array(ADOPTION_STAGES)).to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )
    st_vocab = [f" st_top={s}_{clean(t)}" for s in ADOPTION_STAGES for t in topics]
    factors.append((st_vocab, stage_code[row_of] * ntop + top_of))
    # topic x channel: key index t * nch + c, as in the catalog's vocabularies
    tc_keys = [topic_channel_key(t, c) for t in topics for c in channels]
    tc = hist.values_at("topic_channel_engagements_90d", tc_keys, row_of, top_of * nch + ch_of)[0]
    factors.append(_count_factor(" tc_e90:", tc))
    seen, seen_here = hist.values_at("days_since_content", item_ids, row_of, item_of)
    age = np.where(seen_here, _age_bucket_code(seen) + 1, 0)
    ago = [""] + [f" it_ago={name}" for _, name in AGE_BUCKETS] + [f" it_ago={AGE_BUCKET_OLDER}"]
    factors.append((ago, age))
    factors.extend(_interest_stated_factors(cat, row_of, top_of, ch_of, hist, stated))
    return factors, per_channel, pair_of[pair_key]


def _aff_vocab(channels: tuple[str, ...]) -> list[str]:
    """`` aff_<channel>:<affinity>`` for every channel and each of the 1001
    affinities 0.000-1.000 (index ``channel * 1001 + milli``); built once per
    channel list."""
    vocab = _AFF_VOCABS.get(channels)
    if vocab is None:
        tokens = _fixed3_upto(1000)[:1001]
        vocab = _AFF_VOCABS[channels] = [f" aff_{clean(c)}:{t}" for c in channels for t in tokens]
    return vocab


#: :func:`_aff_vocab` per channel list (one per catalog, in practice)
_AFF_VOCABS: dict[tuple[str, ...], list[str]] = {}


def _assemble(
    factors: list[_Factor | None], per_channel: list[_Factor], channel_of: npt.NDArray[np.int64]
) -> list[pa.Array]:
    """The pieces of the action lines (see :func:`_cross_factors`), to join."""
    pairs = join(*_gather(per_channel)).take(pa.array(channel_of))
    return _gather([pairs if f is None else f for f in factors])


class _NotJson(Exception):
    """A piece the DSJSON writer of the bulk path does not cover (the caller
    converts the VW lines instead)."""


def _static_json(line: str, open_last: bool) -> str | None:
    """The DSJSON object of a catalog action's static line
    (``json.dumps(line_to_namespaces(line))``, compact, non-ASCII kept); with
    ``open_last``, left open inside its last namespace (the line ends with the
    ``x`` separator, the features follow), or None when that namespace is not
    the object's last key or already holds features."""
    ns = line_to_namespaces(line)
    if not open_last:
        return _dumps(ns)
    last = line.split("|")[-1].split()
    if len(last) != 1 or not ns or list(ns)[-1] != last[0] or ns[last[0]]:
        return None
    return _dumps(ns)[: -len("}}")]


def _fragment_json(fragment: str, names: set[str]) -> str:
    """The DSJSON of a piece of the ``x`` namespace (`` name`` or `` name:value``
    tokens), each token as ``"name":value,`` (the value as ``json.dumps`` writes
    ``float(value)``, ``1.0`` for a bare name), the names added to ``names``.

    Raises
    ------
    _NotJson
        When the piece could glue onto the previous one, opens a namespace,
        names a feature twice, or holds a value that is not a number.
    """
    hit = _FRAGMENTS.get(fragment)
    if hit is None:
        if fragment and (not fragment[0].isspace() or "|" in fragment):
            raise _NotJson(fragment)
        out = []
        seen: set[str] = set()
        for tok in fragment.split():
            name, sep, value = tok.partition(":")
            if name in seen:
                raise _NotJson(fragment)
            seen.add(name)
            try:
                out.append(f"{_dumps(name)}:{_dumps(float(value)) if sep else '1.0'},")
            except ValueError as exc:
                raise _NotJson(fragment) from exc
        if len(_FRAGMENTS) >= _MAX_FRAGMENTS:
            _FRAGMENTS.clear()
        hit = _FRAGMENTS[fragment] = ("".join(out), frozenset(seen))
    names.update(hit[1])
    return hit[0]


#: :func:`_fragment_json` of the pieces seen so far (the same token tables recur
#: in every batch), with their names; started afresh beyond :data:`_MAX_FRAGMENTS`
_FRAGMENTS: dict[str, tuple[str, frozenset[str]]] = {}
_MAX_FRAGMENTS = 200_000


def _vocab_json(vocab: list[str]) -> tuple[list[str], frozenset[str]]:
    """:func:`_fragment_json` of every value of a token table, and all their
    names; kept per table (the same tables recur in every batch)."""
    key = tuple(vocab)
    hit = _VOCABS.get(key)
    if hit is not None:
        return hit
    if len(key) >= _COLUMNWISE_VOCAB:
        hit = _longer_table(key)
    if hit is None:
        # a large table of the usual form column-wise (its first sight in a
        # process wrote every value one at a time: 0.2 CPU s on a 14,059-row batch)
        hit = _vocab_json_columns(vocab) if len(vocab) >= _COLUMNWISE_VOCAB else None
        if hit is None:
            mine: set[str] = set()
            hit = ([_fragment_json(v, mine) for v in vocab], frozenset(mine))
        if len(key) >= _COLUMNWISE_VOCAB:
            longest = _LONGEST.get(key[:2])
            if longest is None or len(longest[0]) < len(key):
                if len(_LONGEST) >= _MAX_VOCABS:
                    _LONGEST.clear()
                _LONGEST[key[:2]] = (key, *hit)
    if len(_VOCABS) >= _MAX_VOCABS:
        _VOCABS.clear()
    _VOCABS[key] = hit
    return hit


def _longer_table(key: tuple[str, ...]) -> tuple[list[str], frozenset[str]] | None:
    """:func:`_vocab_json` of ``key`` cut from that of a longer table it starts
    (kept in :data:`_LONGEST` by its first two values) whose values all name
    the same one feature, else None. An interest table runs from 0.001 to the
    batch's largest value, so each batch's table is a new length of the same
    values; with one name in all, the names of any start of it are that name
    (or none, when all its values are empty)."""
    longest = _LONGEST.get(key[:2])
    if longest is None:
        return None
    longer, texts, names = longest
    if len(names) != 1 or len(longer) < len(key) or longer[: len(key)] != key:
        return None
    return texts[: len(key)], (names if any(key) else frozenset())


#: :func:`_vocab_json` of the tables seen so far, started afresh beyond
#: :data:`_MAX_VOCABS`
_VOCABS: dict[tuple[str, ...], tuple[list[str], frozenset[str]]] = {}
_MAX_VOCABS = 4096

#: the longest table of :func:`_vocab_json` of :data:`_COLUMNWISE_VOCAB` values
#: or more, by its first two values: (its values, their texts, their names)
_LONGEST: dict[tuple[str, ...], tuple[tuple[str, ...], list[str], frozenset[str]]] = {}

#: fewest values of a token table :func:`_vocab_json` writes column-wise (below
#: it, Arrow's per-call cost exceeds that of writing each value in Python)
_COLUMNWISE_VOCAB = 64

#: a feature name that ``str.split()`` keeps whole and ``json.dumps`` writes
#: between quotes unchanged (no quote, backslash, control character, ``:``, ``|``
#: or space of any kind)
_PLAIN_NAME = (
    r'[^ "\\\x00-\x1f|:,{}' + "\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+"
)
#: a number ``float`` reads and ``repr`` writes back as its digits with the
#: trailing zeros of the decimals cut (at most 15 significant digits, exponent
#: from -3 to 11: no exponent form, no rounding)
_PLAIN_NUMBER = r"-?(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,3})?"
#: a token table value of the usual form: tokens `` name`` or `` name:number``
_PLAIN_FRAGMENT = rf"^(?: {_PLAIN_NAME}(?::{_PLAIN_NUMBER})?)*$"
#: each token's ``"name":value,`` from its text, in this order (a rewritten
#: token ends with a comma, so no later pattern matches it again)
_TOKEN_JSON = (
    (r"^([^:]+)$", r'"\1":1.0,'),
    (r"^([^:]+):(-?[0-9]+)(?:\.0+)?$", r'"\1":\2.0,'),
    (r"^([^:]+):(-?[0-9]+\.[0-9]*[1-9])0*$", r'"\1":\2,'),
)


def _vocab_json_columns(vocab: list[str]) -> tuple[list[str], frozenset[str]] | None:
    """:func:`_vocab_json` of a token table whose values are all of the form
    :data:`_PLAIN_FRAGMENT` (single spaces, plain names, plain numbers), with
    Arrow's string kernels over all its tokens at once; None when a value is
    of another form or names a feature twice (the caller then goes value by
    value, which writes it or refuses it).

    The text of each token is what :func:`_fragment_json` writes: the name
    between quotes (it holds nothing JSON escapes), ``1.0`` for a bare name,
    and ``repr(float(value))`` for a number, which for these numbers is the
    number's own digits with the decimals' trailing zeros cut (``.0`` when
    none is left; ``-0`` stays ``-0.0``).

    Parameters
    ----------
    vocab : list of str, shape (k,)

    Returns
    -------
    (list of str, shape (k,), frozenset of str) or None
    """
    values = pa.array(vocab, pa.string())
    if not pc.all(pc.match_substring_regex(values, _PLAIN_FRAGMENT)).as_py():
        return None
    # " a b:1" splits into "", "a", "b:1"; "" into "": the empty pieces are
    # exactly each value's first
    parts = pc.split_pattern(values, " ")
    owner = np.asarray(pc.list_parent_indices(parts).to_numpy(), dtype=np.int64)
    flat = pc.list_flatten(parts)
    real = pc.greater(pc.binary_length(flat), 0)
    tokens = flat.filter(real)
    owner = owner[real.to_numpy(zero_copy_only=False)]
    names = pc.dictionary_encode(pc.replace_substring_regex(tokens, ":.*$", ""))
    key = owner * (len(names.dictionary) + 1) + names.indices.to_numpy(zero_copy_only=False)
    key.sort()
    if len(key) > 1 and bool((key[1:] == key[:-1]).any()):
        return None  # a name twice in one value
    texts = tokens
    for pattern, replacement in _TOKEN_JSON:
        texts = pc.replace_substring_regex(texts, pattern, replacement)
    offsets = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=len(vocab)), out=offsets[1:])
    lists = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), texts)
    return pc.binary_join(lists, "").to_pylist(), frozenset(names.dictionary.to_pylist())


def _factor_json(fac: _Factor, names: set[str]) -> _Factor:
    """A factor of the ``x`` namespace written as DSJSON (:func:`_fragment_json`);
    the names of all its values are checked apart from ``names`` (those of the
    factors before it on the same line) and added to them."""
    if isinstance(fac, tuple):
        vocab, mine = _vocab_json(fac[0])
        out: _Factor = (vocab, fac[1])
    else:
        codes = pc.dictionary_encode(fac)
        vocab, mine = _vocab_json(codes.dictionary.to_pylist())
        out = pa.array(vocab, pa.string()).take(codes.indices)
    if mine & names:
        raise _NotJson(str(sorted(mine & names)))
    names.update(mine)
    return out


def _opened_json(static: list[str]) -> list[str] | None:
    """:func:`_static_json` (left open) of every catalog action's static line,
    or None if any is not covered; kept per catalog."""
    key = tuple(static)
    if key not in _OPENED:
        opened = [_static_json(s, True) for s in static]
        if len(_OPENED) >= _MAX_VOCABS:
            _OPENED.clear()
        _OPENED[key] = None if None in opened else [str(o) for o in opened]
    return _OPENED[key]


_OPENED: dict[tuple[str, ...], list[str] | None] = {}


def _cross_json(
    factors: list[_Factor | None], per_channel: list[_Factor], channel_of: npt.NDArray[np.int64]
) -> pa.Array | None:
    """Each action line of :func:`_cross_factors` as its DSJSON object, built from
    the same factors: the bytes of ``json.dumps(line_to_namespaces(line))``
    (compact, non-ASCII kept). Every action line takes one value of every
    factor, so feature names that are distinct within each value and between
    factors make the line's names distinct (no dict merges anything).

    Returns
    -------
    pyarrow.StringArray, shape (n_action_lines,), or None
        None when a piece is of a form not covered (see :func:`_fragment_json`).
    """
    static = factors[0]
    if not isinstance(static, tuple):
        return None
    opened = _opened_json(static[0])
    if opened is None:
        return None
    names: set[str] = set()
    try:
        inner = [_factor_json(f, names) for f in per_channel]
        pairs = join(*_gather(inner))
        rest: list[_Factor] = [(opened, static[1])]
        for f in factors[1:]:
            rest.append(pairs.take(pa.array(channel_of)) if f is None else _factor_json(f, names))
    except _NotJson:
        return None
    body = join(*_gather(rest))
    # every line ends with a feature's comma when one table has no empty value
    # (a token every line writes); else check the lines
    always = any(isinstance(f, tuple) and all(f[0]) for f in [*inner, *rest[1:]])
    if not always and not pc.all(pc.ends_with(body, ",")).as_py():  # an empty x namespace
        return None
    # the last byte (that comma) replaced by the two closing braces, bytewise:
    # one kernel, no decoding of the UTF-8 to find the last character
    return pc.binary_replace_slice(body, -1, _NO_END, "}}")


#: a slice end past any string (Arrow's slice kernels take no open end)
_NO_END = 2**31 - 1


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _interest_stated_factors(
    cat: Catalog,
    row_of: npt.NDArray[np.int64],
    top_of: npt.NDArray[np.int64],
    ch_of: npt.NDArray[np.int64],
    hist: _HistoryColumns,
    stated: tuple[_Consents, _Consents],
) -> list[_Factor]:
    """The context version 3 and 4 tokens of the ``x`` namespace, per action line:
    interest in its topic (``it_int``), pulls of its topic (``it_pull``, and keyed by
    its channel), stated topic (``sp_top``) and channel (``sp_ch``)."""
    topics = list(cat.topics)
    channels = list(cat.channels)
    out: list[_Factor] = []
    vals, present = hist.interest_matrix(topics)
    at = row_of * len(topics) + top_of
    here = present.reshape(-1)[at]
    if here.any():
        # interest values have three decimals at most here (the caller checked)
        milli = np.rint(vals.reshape(-1)[at] * 1000.0).astype(np.int64)
        top = int(milli[here].max())
        if top <= _MAX_TABLED_INTEREST:
            vocab = _fixed3_tokens(" it_int:", top)
            out.append((vocab, np.where(here, milli, 0)))
        else:
            out.append(
                pc.if_else(
                    pa.array(here),
                    pc.binary_join_element_wise(
                        " it_int:", _fixed3_arrow(vals.reshape(-1)[at]), ""
                    ),
                    pa.scalar(None, pa.string()),
                )
            )
    # context version 4: pulls of this topic in 90 days, also keyed by the channel
    pulls = hist.values_at("topic_pulls_90d", topics, row_of, top_of)[0]
    top = int(pulls.max()) if pulls.size else 0
    if top <= _MAX_TABLED_COUNT:
        names = [clean(c) for c in channels]
        vocab = [
            f" it_pull:{v} it_pull_{c}:{v}" if v else "" for v in range(top + 1) for c in names
        ]
        out.append((vocab, pulls * len(channels) + ch_of))
    else:  # an implausible count: no table that large
        v = pc.cast(pa.array(pulls), pa.string())
        ch_names = pa.array([f" it_pull_{clean(c)}:" for c in channels], pa.string())
        out.append(
            pc.if_else(
                pa.array(pulls != 0),
                join(" it_pull:", v, ch_names.take(pa.array(ch_of)), v),
                pa.scalar(None, pa.string()),
            )
        )
    out.append(_flag_factor(" sp_top", stated[0].matrix(topics).reshape(-1)[at]))
    ch_at = row_of * len(channels) + ch_of
    out.append(_flag_factor(" sp_ch", stated[1].matrix(channels).reshape(-1)[ch_at]))
    return out


def _name_list_column(cols: _Columns, *path: str) -> pa.Array | None:
    """A list-of-names field of the contexts (``None`` when absent or always empty);
    refuses anything but lists of non-empty strings."""
    arr = cols.get(*path)
    name = ".".join(path)
    if arr is None or pa.types.is_null(arr.type):
        return None
    if not pa.types.is_list(arr.type):
        raise FeaturizeError(f"featurize_table: field '{name}' is {arr.type}, not a list")
    vt = arr.type.value_type
    if pa.types.is_null(vt):
        return None
    if not pa.types.is_string(vt):
        raise FeaturizeError(f"featurize_table: field '{name}' lists {vt}, not names")
    flat = pc.list_flatten(arr)
    parents = pc.list_parent_indices(arr)
    bad = pc.or_(pc.is_null(flat), pc.equal(pc.utf8_length(pc.fill_null(flat, "x")), 0))
    if pc.any(bad).as_py():
        row = parents[int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0])].as_py()
        raise FeaturizeError(
            f"featurize_table: event {cols.event_ids[row].as_py()!r}: field '{name}': "
            "empty or null name"
        )
    return arr


def _attribute_pieces(attrs: pa.Array | None, cols: _Columns) -> list[pa.Array]:
    """Tokens of the declared attributes (see :func:`nba.features.tokens.attribute_tokens`),
    one array per attribute, in name order."""
    if attrs is None or not pa.types.is_struct(attrs.type):
        if attrs is not None and not pa.types.is_null(attrs.type):
            raise FeaturizeError(f"featurize_table: field 'attributes' is {attrs.type}")
        return []
    none = pa.scalar(None, pa.string())
    fields = sorted((attrs.type.field(i).name, i) for i in range(attrs.type.num_fields))
    out: list[pa.Array] = []
    for key, i in fields:
        if not ATTRIBUTE_NAME.match(key):
            raise FeaturizeError(
                f"featurize_table: field 'attributes': {key!r} is not an attribute name"
            )
        child = pc.struct_field(attrs, [i])
        t = child.type
        name = f" a_{clean(key)}"
        where = f"attributes.{key}"
        if pa.types.is_null(t):
            continue
        if pa.types.is_boolean(t):
            s = pc.if_else(child, f"{name}=true", f"{name}=false")
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            vals = pc.fill_null(child.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
            s = pc.if_else(
                child.is_valid(),
                pc.binary_join_element_wise(f"{name}:", _fixed3_arrow(vals), ""),
                none,
            )
        elif pa.types.is_string(t):
            cols.fail_if(pc.equal(pc.utf8_length(child), 0), where, "empty value")
            s = pc.binary_join_element_wise(f"{name}=", _clean_arrow(child), "")
        elif pa.types.is_list(t):
            lists = _name_list_column(cols, "attributes", key)
            if lists is None:
                continue
            s = _Consents(lists, len(child)).tokens(f"{name}=")
        else:
            raise FeaturizeError(
                f"featurize_table: field '{where}' is {t}; attribute values must be "
                "strings, numbers, booleans or lists of strings"
            )
        out.append(s)
    return out


#: largest count the bulk path writes through a lookup table of token strings
_MAX_TABLED_COUNT = 1000

#: largest interest (in thousandths) written through a lookup table
_MAX_TABLED_INTEREST = 100_000


def _age_bucket_code(days: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Index into :data:`~nba.features.config.AGE_BUCKETS` (its length: older) of
    each age, shape (k,) -> (k,)."""
    uppers = np.array([u for u, _ in AGE_BUCKETS], dtype=np.int64)
    return np.searchsorted(uppers, days, side="left").astype(np.int64)


def _age_bucket_arrow(days: npt.NDArray[np.int64]) -> pa.Array:
    """:func:`nba.features.config.age_bucket` of each value, shape (k,) -> (k,)."""
    names = pa.array([name for _, name in AGE_BUCKETS] + [AGE_BUCKET_OLDER], pa.string())
    return names.take(pa.array(_age_bucket_code(days)))


def _clean_arrow(arr: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(arr, CLEAN_PATTERN, "_")


def _fixed3_arrow(x: npt.NDArray[np.float64]) -> pa.Array:
    m = np.rint(np.asarray(x, dtype=np.float64) * 1000.0).astype(np.int64)
    neg = m < 0
    m = np.abs(m)
    ip = pc.cast(pa.array(m // 1000), pa.string())
    fp = pc.utf8_lpad(pc.cast(pa.array(m % 1000), pa.string()), 3, "0")
    sign = pc.if_else(pa.array(neg), "-", "")
    return join(sign, ip, ".", fp)


def _as_date32(day: pa.Array, cols: _Columns) -> pa.Array:
    try:
        return pc.cast(day, pa.date32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise FeaturizeError(f"featurize_table: field 'day': not an ISO date: {exc}") from exc


class _Consents:
    """Lists of names of a batch (consents, stated topics or channels, list
    attributes), deduplicated and sorted per row (like a frozenset)."""

    def __init__(self, consents: pa.Array | None, n: int) -> None:
        self.n = n
        self.parents = np.zeros(0, dtype=np.int64)
        self.codes = np.zeros(0, dtype=np.int64)
        self.values: list[str] = []
        if consents is None or len(consents) == 0:
            return
        filled = pc.fill_null(consents, pa.scalar([], consents.type))
        parents = np.asarray(
            pc.list_parent_indices(filled).to_numpy(zero_copy_only=False), dtype=np.int64
        )
        flat = pc.list_flatten(filled)
        if len(flat) == 0:
            return
        enc = (
            pc.dictionary_encode(flat).combine_chunks()
            if isinstance(flat, pa.ChunkedArray)
            else pc.dictionary_encode(flat)
        )
        values = [str(v) for v in enc.dictionary.to_pylist()]
        rank = np.argsort(np.argsort(np.array(values, dtype=object)))  # sorted-string order
        order_values = [values[i] for i in np.argsort(rank)]
        codes = rank[np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
        k = len(values)
        key = np.sort(parents * k + codes)  # by row, then value
        key = key[np.r_[True, key[1:] != key[:-1]]]  # duplicates gone
        self.parents = key // k
        self.codes = key % k
        self.values = order_values

    def tokens(self, prefix: str = " cons=") -> pa.Array:
        """``<prefix><value>`` tokens of each row (sorted, distinct), concatenated,
        shape (n,)."""
        if not self.values:
            return pa.nulls(self.n, pa.string())
        toks = pa.array([f"{prefix}{clean(v)}" for v in self.values], pa.string()).take(
            pa.array(self.codes)
        )
        counts = np.bincount(self.parents, minlength=self.n)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), toks), "")

    def matrix(self, channels: list[str]) -> npt.NDArray[np.bool_]:
        """Whether each row consents to each channel, shape (n, len(channels))."""
        out = np.zeros((self.n, len(channels)), dtype=bool)
        if not self.values:
            return out
        pos = {c: i for i, c in enumerate(channels)}
        col = np.array([pos.get(v, -1) for v in self.values], dtype=np.int64)[self.codes]
        ok = col >= 0
        out[self.parents[ok], col[ok]] = True
        return out


class _Columns:
    """Typed access to the parsed context table with errors naming the event."""

    def __init__(self, parsed: pa.Table, event_ids: pa.Array) -> None:
        self.parsed = parsed
        self.event_ids = event_ids
        self.n = parsed.num_rows
        self._combined: dict[str, pa.Array] = {}

    def get(self, *path: str) -> pa.Array | None:
        if path[0] not in self.parsed.column_names:
            return None
        arr: pa.Array | None = self._combined.get(path[0])
        if arr is None:
            # combined once: the history struct is wide, and read many times
            arr = self._combined[path[0]] = self.parsed.column(path[0]).combine_chunks()
        for name in path[1:]:
            if not pa.types.is_struct(arr.type) or arr.type.get_field_index(name) < 0:
                return None
            arr = pc.struct_field(arr, name)
        return arr

    def fail_if(self, mask: pa.Array, fieldname: str, problem: str) -> None:
        m = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
        if m.any():
            i = int(np.flatnonzero(m)[0])
            raise FeaturizeError(
                f"featurize_table: event {self.event_ids[i].as_py()!r}: field "
                f"'{fieldname}': {problem}"
            )

    def req(self, *path: str) -> pa.Array:
        arr = self.get(*path)
        name = ".".join(path)
        if arr is None:
            raise FeaturizeError(f"featurize_table: field '{name}' is missing from every context")
        self.fail_if(arr.is_null(), name, "missing")
        return arr

    def req_str(self, *path: str) -> pa.Array:
        arr = self.req(*path)
        name = ".".join(path)
        if not pa.types.is_string(arr.type):
            raise FeaturizeError(f"featurize_table: field '{name}' is {arr.type}, not a string")
        self.fail_if(pc.equal(pc.utf8_length(arr), 0), name, "must not be empty")
        return arr

    def req_num(self, *path: str) -> pa.Array:
        arr = self.req(*path)
        name = ".".join(path)
        if not pa.types.is_integer(arr.type):
            raise FeaturizeError(f"featurize_table: field '{name}' is {arr.type}, not an integer")
        return arr


class _CountMapRefused(Exception):
    """A history map read apart fails a check: parse the batch the general way."""


class _HistoryColumns:
    """History maps as dense (n, k) matrices over a vocabulary, and as tokens."""

    def __init__(self, cols: _Columns, n: int, count_maps: dict[str, CountMap] | None) -> None:
        self.cols = cols
        self.n = n
        #: maps already read apart from the JSON (:mod:`nba.features.countmaps`)
        self.count_maps = count_maps or {}
        self._field_cache: dict[
            str, tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.bool_]]
        ] = {}
        self.interest_keys, self.interest = self._read_interest()
        #: some value has more than three decimals (the caller goes row by row)
        self.interest_noncanonical = bool(
            np.any(np.rint(self.interest * 1000.0) / 1000.0 != self.interest)
        )
        self.last_content = cols.get("history", "last_content_id")
        if self.last_content is not None and not pa.types.is_string(self.last_content.type):
            if self.last_content.null_count == len(self.last_content):
                self.last_content = None
            else:
                raise FeaturizeError(
                    "featurize_table: field 'history.last_content_id' is not a string"
                )

    def _fields(self, name: str) -> tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """History map ``name``, checked: its keys (sorted), the counts of each row
        (0 where absent) and whether each row has the key, each shape
        (n, len(keys)) (cached)."""
        got = self._field_cache.get(name)
        if got is None:
            read = self.count_maps.get(name)
            if read is not None:
                if not self._count_map_ok(name, read):
                    # the read maps are refused only by a check of the general
                    # way; the caller parses again that way (and gets its error)
                    raise _CountMapRefused(name)
                got = (read.keys, read.values, read.present)
            else:
                fields = self._read_fields(name)
                vals = np.zeros((self.n, len(fields)), dtype=np.int64)
                present = np.zeros((self.n, len(fields)), dtype=bool)
                for j, (_, child) in enumerate(fields):
                    present[:, j] = child.is_valid().to_numpy(zero_copy_only=False)
                    vals[:, j] = pc.fill_null(child, 0).to_numpy(zero_copy_only=False)
                got = ([k for k, _ in fields], vals, present)
            self._field_cache[name] = got
        return got

    @staticmethod
    def _count_map_ok(name: str, read: CountMap) -> bool:
        """Whether a map read apart passes the checks of :meth:`_read_fields`."""
        if name == "days_since_content":
            bad = read.present & ((read.values < 1) | (read.values > CONTENT_WINDOW))
            if bad.any():
                return False
        if name == "topic_channel_engagements_90d":
            for key in read.keys:
                topic, sep, channel = key.rpartition(ACTION_SEPARATOR)
                if not sep or not topic or not channel:
                    return False
        return True  # the counts are whole and >= 0 as read

    def _read_fields(self, name: str) -> list[tuple[str, pa.Array]]:
        arr = self.cols.get("history", name)
        if arr is None or not pa.types.is_struct(arr.type):
            return []
        out = []
        for i in range(arr.type.num_fields):
            key = arr.type.field(i).name
            child = pc.struct_field(arr, [i])
            if pa.types.is_null(child.type):
                continue
            if not pa.types.is_integer(child.type):
                raise FeaturizeError(
                    f"featurize_table: field 'history.{name}.{key}' is {child.type}, "
                    "not a whole-number count"
                )
            where = f"history.{name}.{key}"
            if name == "days_since_content":
                self.cols.fail_if(
                    pc.or_(pc.less(child, 1), pc.greater(child, CONTENT_WINDOW)),
                    where,
                    f"days must be in 1..{CONTENT_WINDOW}",
                )
            else:
                self.cols.fail_if(pc.less(child, 0), where, "negative count")
            if name == "topic_channel_engagements_90d":
                topic, sep, channel = key.rpartition(ACTION_SEPARATOR)
                if not sep or not topic or not channel:
                    raise FeaturizeError(
                        f"featurize_table: field '{where}': key must be "
                        f"'topic{ACTION_SEPARATOR}channel'"
                    )
            out.append((key, child))
        return sorted(out, key=lambda kv: kv[0])

    def _read_interest(self) -> tuple[list[str], npt.NDArray[np.float64]]:
        """Keys (sorted) and values of ``history.interest``, shape (n, k); 0 where
        absent (a topic whose interest is 0 is written nowhere)."""
        arr = self.cols.get("history", "interest")
        if arr is None or not pa.types.is_struct(arr.type):
            if arr is not None and not pa.types.is_null(arr.type):
                raise FeaturizeError(
                    f"featurize_table: field 'history.interest' is {arr.type}, not a mapping"
                )
            return [], np.zeros((self.n, 0))
        keys: list[str] = []
        vals: list[npt.NDArray[np.float64]] = []
        for key, i in sorted((arr.type.field(i).name, i) for i in range(arr.type.num_fields)):
            child = pc.struct_field(arr, [i])
            if pa.types.is_null(child.type):
                continue
            where = f"history.interest.{key}"
            if not (pa.types.is_integer(child.type) or pa.types.is_floating(child.type)):
                raise FeaturizeError(
                    f"featurize_table: field '{where}' is {child.type}, not a number"
                )
            if not key:
                raise FeaturizeError("featurize_table: field 'history.interest': empty topic name")
            v = pc.fill_null(child.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
            self.cols.fail_if(pa.array(v < 0), where, "negative interest")
            keys.append(key)
            vals.append(v)
        if not keys:
            return [], np.zeros((self.n, 0))
        return keys, np.stack(vals, axis=1)

    def interest_matrix(
        self, vocab: list[str]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Interest per topic of ``vocab`` and whether it is written (non-zero after
        rounding), each shape (n, len(vocab))."""
        vals = np.zeros((self.n, len(vocab)))
        pos = {k: j for j, k in enumerate(self.interest_keys)}
        for i, t in enumerate(vocab):
            j = pos.get(t)
            if j is not None:
                vals[:, i] = self.interest[:, j]
        return vals, np.rint(vals * 1000.0) != 0

    def interest_tokens(self) -> list[_Factor]:
        """`` int_<topic>:<value>`` per written topic, then `` top_int=<topic>``."""
        if not self.interest_keys:
            return []
        milli = np.rint(self.interest * 1000.0)  # (n, k), whole thousandths
        written = milli != 0
        out: list[_Factor] = []
        for j, key in enumerate(self.interest_keys):
            col = written[:, j]
            top = int(milli[col, j].max()) if col.any() else 0
            if top <= _MAX_TABLED_INTEREST:
                name = f" int_{clean(key)}:"
                vocab = _fixed3_tokens(name, top)
                out.append((vocab, np.where(col, milli[:, j], 0).astype(np.int64)))
            else:
                s = pc.binary_join_element_wise(
                    f" int_{clean(key)}:", _fixed3_arrow(self.interest[:, j]), ""
                )
                out.append(pc.if_else(pa.array(col), s, pa.scalar(None, pa.string())))
        masked = np.where(written, self.interest, -np.inf)
        best = np.argmax(masked, axis=1)  # the first key among equals, as tokens.py
        names = [""] + [f" top_int={clean(k)}" for k in self.interest_keys]
        out.append((names, np.where(written.any(axis=1), best + 1, 0)))
        return out

    def values_at(
        self,
        name: str,
        vocab: list[str],
        rows: npt.NDArray[np.int64],
        cols: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """History map ``name``'s count of key ``vocab[cols[i]]`` in row ``rows[i]``
        (0 where absent) and whether the row has that key, each shape (k,) like
        ``rows`` and ``cols``; gathered from the map's own columns, without a dense
        (rows x vocabulary) matrix first (that cost more than the gather)."""
        keys, kvals, kpresent = self._fields(name)
        pos = {k: i for i, k in enumerate(keys)}
        src = np.array([pos.get(v, -1) for v in vocab], dtype=np.int64)[cols]
        known = src >= 0
        if not known.any():
            return np.zeros(len(rows), dtype=np.int64), np.zeros(len(rows), dtype=bool)
        src = np.where(known, src, 0)
        vals = np.where(known, kvals[rows, src], 0)
        return vals, known & kpresent[rows, src]

    def tokens(self) -> list[_Factor]:
        """The ``h`` namespace's tokens, as pieces for :func:`_gather`."""
        out: list[_Factor] = []
        spec = [(f"touches_{w}d", f"t{w}_", True) for w in HISTORY_WINDOWS] + [
            ("engagements_30d", "e30_", True),
            ("topic_engagements_90d", "te90_", True),
            ("days_since_touch", "dst_", False),
        ]
        for name, prefix, drop_zero in spec:
            keys, kvals, kpresent = self._fields(name)
            for j, key in enumerate(keys):
                # counts and days are whole and >= 0 (checked when read)
                vals = kvals[:, j]
                keep = kpresent[:, j]
                if drop_zero:
                    keep = keep & (vals != 0)
                top = int(vals[keep].max()) if keep.any() else 0
                token = f" {prefix}{clean(key)}:"
                if top <= _MAX_TABLED_COUNT:
                    vocab = [""] + [f"{token}{v}" for v in range(top + 1)]
                    out.append((vocab, np.where(keep, vals + 1, 0)))
                else:
                    s = pc.binary_join_element_wise(token, pc.cast(pa.array(vals), pa.string()), "")
                    out.append(pc.if_else(pa.array(keep), s, pa.scalar(None, pa.string())))
        if self.last_content is not None:
            # few distinct items: one token string per item, looked up per row
            enc = pc.dictionary_encode(self.last_content)
            vocab = [""] + [f" last={clean(v)}" if v else "" for v in enc.dictionary.to_pylist()]
            codes = pc.fill_null(pc.add(enc.indices.cast(pa.int64()), 1), 0)
            out.append((vocab, np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int64)))
        return out + self.interest_tokens() + self.override_tokens()

    def override_tokens(self) -> list[_Factor]:
        """`` ovr90:<n>`` where ``history.overrides_90d`` (context version 5) is above 0."""
        arr = self.cols.get("history", "overrides_90d")
        if arr is None or pa.types.is_null(arr.type):
            return []
        if not pa.types.is_integer(arr.type):
            raise FeaturizeError(
                f"featurize_table: field 'history.overrides_90d' is {arr.type}, "
                "not a whole-number count"
            )
        self.cols.fail_if(pc.less(arr, 0), "history.overrides_90d", "negative count")
        s = pc.binary_join_element_wise(" ovr90:", pc.cast(arr, pa.string()), "")
        keep = pc.fill_null(pc.greater(arr, 0), False)
        return [pc.if_else(keep, s, pa.scalar(None, pa.string()))]


def _request_pieces(req: pa.Array | None, cols: _Columns) -> list[pa.Array]:
    if req is None or not pa.types.is_struct(req.type):
        return []
    fields = sorted(
        ((req.type.field(i).name, pc.struct_field(req, [i])) for i in range(req.type.num_fields)),
        key=lambda kv: kv[0],
    )
    out: list[pa.Array] = []
    for key, child in fields:
        k = clean(key)
        t = child.type
        if pa.types.is_null(t):
            continue
        if pa.types.is_boolean(t):
            s = pc.if_else(child, f" {k}=true", f" {k}=false")
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            vals = child.cast(pa.float64())
            num = _fixed3_arrow(pc.fill_null(vals, 0.0).to_numpy(zero_copy_only=False))
            s = pc.if_else(
                child.is_valid(),
                pc.binary_join_element_wise(f" {k}:", num, ""),
                pa.scalar(None, pa.string()),
            )
        elif pa.types.is_string(t):
            s = pc.binary_join_element_wise(f" {k}=", _clean_arrow(child), "")
        elif pa.types.is_timestamp(t):
            # the JSON reader guesses timestamps from ISO-looking strings; not
            # recoverable exactly, so such requests go row by row
            raise pa.ArrowInvalid("timestamp-like request value")
        else:
            raise FeaturizeError(
                f"featurize_table: field 'request.{key}' is {t}; request values must be "
                "strings, numbers or booleans"
            )
        out.append(s)
    return out
