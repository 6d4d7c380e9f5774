"""The DSJSON export through the bulk featurizer writes the same bytes as the
export one decision at a time: on a simulated log with slates and pulls, with an
imported foreign row mixed in, with action lines of an unusual form, and with the
same error for a bad row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from nba.features.dsjson import line_to_namespaces
from nba.logs import io
from nba.logs.dsjson import (
    _ACTION_LINE,
    _VW_LINE,
    DsjsonError,
    _action_texts,
    _bulk_features,
    _bulk_lines,
    _namespaces_json,
    _repeated_names,
    _segment_heads,
    _shared_heads,
    export_dsjson,
    iter_dsjson,
    load_catalogs,
    other_action_outcomes,
    window_pulls,
)
from nba.logs.join import load_joined
from nba.reward import RewardDefinition
from nba_cli.main import main as nba

RD = RewardDefinition.default()


@pytest.fixture(scope="module")
def sim_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "logs"
    args = ["simulate", "--hcps", "150", "--days", "21", "--slate-size", "3", "--seed", "5"]
    res = CliRunner().invoke(nba, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def _export_inputs(logs: Path) -> tuple[pa.Table, dict[str, Any], pa.Table, dict[str, Any]]:
    result = load_joined(logs, RD)
    table = result.table
    catalogs = load_catalogs(logs, table.column("catalog_version").unique().to_pylist())
    outcomes = io.read(logs, "outcomes")
    pulls = window_pulls(io.read(logs, "touches"), table, RD.window_days, result.as_of)
    return table, catalogs, outcomes, pulls


def test_bulk_export_is_byte_identical_on_a_simulated_log(sim_log: Path, tmp_path: Path) -> None:
    table, catalogs, outcomes, pulls = _export_inputs(sim_log)
    assert table.num_rows > 300
    assert pc.sum(pc.list_value_length(table.column("slate"))).as_py() > 0  # slates
    assert pulls  # and pulls travel in some lines
    rowwise, bulk = tmp_path / "rowwise.dsjson", tmp_path / "bulk.dsjson"
    n1 = export_dsjson(table, rowwise, catalogs, outcomes=outcomes, pulls=pulls, bulk=False)
    # small batches: several calls of the bulk featurizer, caches carried across them
    lines = list(
        iter_dsjson(table, catalogs, batch_size=97, outcomes=outcomes, pulls=pulls, bulk=True)
    )
    n2 = export_dsjson(table, bulk, catalogs, outcomes=outcomes, pulls=pulls, bulk=True)
    assert n1 == n2 == table.num_rows
    assert rowwise.read_bytes() == bulk.read_bytes()
    assert "\n".join(lines) + "\n" == bulk.read_text(encoding="utf-8")
    parsed = [json.loads(x) for x in lines]
    assert any("slate" in o["nba"] for o in parsed) and any("pulls" in o["nba"] for o in parsed)


def test_a_foreign_row_and_a_bad_row_go_the_row_by_row_way(sim_log: Path) -> None:
    table, catalogs, _, _ = _export_inputs(sim_log)
    table = table.slice(0, 40)
    ctx = table.column("context").to_pylist()
    foreign = json.dumps({"dsjson": {"u": {"age": 3}}, "dsjson_actions": {}})
    ctx[5] = foreign
    mixed = table.set_column(
        table.schema.get_field_index("context"), "context", pa.array(ctx, pa.string())
    )
    assert list(iter_dsjson(mixed, catalogs, bulk=True)) == list(
        iter_dsjson(mixed, catalogs, bulk=False)
    )
    ctx[7] = '{"hcp": 1}'  # not a decision context
    bad = table.set_column(
        table.schema.get_field_index("context"), "context", pa.array(ctx, pa.string())
    )
    errors = []
    for bulk in (False, True):
        with pytest.raises(DsjsonError) as info:
            list(iter_dsjson(bad, catalogs, bulk=bulk))
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    assert table.column("event_id")[7].as_py() in errors[0]


@pytest.mark.parametrize(
    "line",
    [
        "|T efficacy |K email |F video |I VEL-EFF-02 |x ch_dst_none aff_email:0.675 st_top=a_b",
        "|T a |K b |F c |I d |x same_last ch_t7:3 ch_t30:12 ch_e30:0 ch_dst:4 ch_dstb=1w"
        " aff_x:-0.000 nocons top_e90:2 st_top=a_b tc_e90:1 it_ago=3m it_int:12.500 it_pull:2"
        " it_pull_x:2 sp_top sp_ch",
        "|T a |K b |F c |I d |x aff_x:1.000 st_top=q it_int:0.010",
        "|T a |K b |F c |I d |x aff_x:-7 st_top=é→ü it_int:999999999999.999",
    ],
)
def test_usual_action_lines_convert_as_json_dumps_does(line: str) -> None:
    assert pc.match_substring_regex(pa.array([line]), _ACTION_LINE)[0].as_py()
    assert pc.match_substring_regex(pa.array([line]), _VW_LINE)[0].as_py()
    expected = json.dumps(line_to_namespaces(line), separators=(",", ":"), ensure_ascii=False)
    assert _namespaces_json(pa.array([line]))[0].as_py() == expected
    assert _action_texts(pa.array([line]), {})[0].as_py() == expected


@pytest.mark.parametrize(
    "line",
    [
        '|T a"b |K b |F c |I d |x aff_x:1.000 st_top=q',  # JSON would escape the quote
        "|T a |K b |F c |I d |x aff_x:1.000 st_top=q st_top=q",  # a repeated name
        "|T a |K b |F c |I d |x aff_x:007 st_top=q",  # leading zeros
        "|T a |K b |F c |I d |x aff_x:1e20 st_top=q",  # not fixed3
        "|T a |K b |F c |I d |x st_top=q aff_x:1.000",  # another order
        "|T a b |K b |F c |I d |x aff_x:1.000 st_top=q",  # two topics
    ],
)
def test_other_action_lines_are_left_to_the_general_conversion(line: str) -> None:
    assert not pc.match_substring_regex(pa.array([line]), _ACTION_LINE)[0].as_py()
    expected = json.dumps(line_to_namespaces(line), separators=(",", ":"), ensure_ascii=False)
    cache: dict[str, str] = {}
    assert _action_texts(pa.array([line, line]), cache).to_pylist() == [expected, expected]
    assert cache == {line: expected}


@pytest.mark.parametrize(
    "line",
    [
        "shared |p spec=gp mkt=GB dec=2 aff:0.608 cons=email |h |r requester=e |c dow=mon mon=1",
        "shared |p a:12.500 b:-0.000 c:-3 d:0.010 e:999999999999.999 f=é→ü |h",
        "shared |h",
        "shared ",
        "shared |p a |p b",  # a namespace twice: merged
        "shared |p a:1.000 a:2.000",  # a name twice: the last value, the first place
        "shared |p a:1e20",  # not the featurizer's number
        "shared |p a\u00a0b c",  # str.split() splits on no-break space
        "shared |p  a",  # two spaces
        'shared |p a"b',  # JSON escapes the quote
        "shared |_multi a",  # refused by the per-row path
        "shared|p a",  # not the shared prefix
    ],
)
def test_shared_lines_start_c_as_json_dumps_does(line: str) -> None:
    ns = line_to_namespaces(line[len("shared ") :])
    text = json.dumps(ns, separators=(",", ":"), ensure_ascii=False)
    expected = None if "_multi" in ns else (text[:-1] + "," if ns else "{")
    other = "shared |p x:1.500 |h y"
    got = _shared_heads(pa.array([line, other, line])).to_pylist()
    assert got == [expected, '{"p":{"x":1.5},"h":{"y":1.0},', expected]


def test_repeated_names_are_found_per_namespace_and_per_line() -> None:
    lines = pa.array(["|p a |h a", "|p a b |p c", "|p a a", "|h x:1 y:2 x:3", "", "", "|p a"])
    assert _repeated_names(lines).tolist() == [False, True, True, True, False, False, False]


def _replace(table: pa.Table, name: str, values: list[Any]) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))


def test_column_wise_lines_equal_the_reference_on_awkward_values(sim_log: Path) -> None:
    """Strings JSON escapes, non-ASCII, a deferred event, no slate, an empty
    list, a negative zero reward, other-action outcomes and pulls: the lines
    written column-wise are the reference's, and none went the per-row way."""
    table, catalogs, outcomes, pulls = _export_inputs(sim_log)
    table = table.slice(0, 120)
    n = table.num_rows
    models = table.column("model_version").to_pylist()
    models[1] = 'm"1\\x\n'
    table = _replace(table, "model_version", models)
    hcps = table.column("hcp_id").to_pylist()
    hcps[2] = "hcp-é→ü\u2028"
    table = _replace(table, "hcp_id", hcps)
    table = _replace(table, "activated", [i % 7 != 3 for i in range(n)])
    slates = table.column("slate").to_pylist()
    slates[4], slates[5] = None, []
    table = _replace(table, "slate", slates)
    channels = table.column("channels_requested").to_pylist()
    channels[6] = []
    table = _replace(table, "channels_requested", channels)
    rewards = table.column("reward").to_pylist()
    rewards[8], rewards[9] = -0.0, 1e-7
    table = _replace(table, "reward", rewards)
    # outcomes about a suggestion that was not chosen, for the first rows
    extra = [
        {
            "event_id": row["event_id"],
            "ts": row["ts"],
            "type": "open",
            "value": 1.0,
            "source": "test",
            "source_id": f"x{k}",
            "action_id": next(a for a in row["action_ids"] if a != row["chosen_action_id"]),
        }
        for k, row in enumerate(table.slice(0, 12).to_pylist())
    ]
    outcomes = pa.concat_tables(
        [io.conform(outcomes, "outcomes"), pa.Table.from_pylist(extra, schema=outcomes.schema)]
    )
    reference = list(iter_dsjson(table, catalogs, outcomes=outcomes, pulls=pulls, bulk=False))
    fast = list(iter_dsjson(table, catalogs, outcomes=outcomes, pulls=pulls, bulk=True))
    assert fast == reference
    parsed = [json.loads(x) for x in fast]
    assert parsed[1]["VWState"]["m"] == models[1] and parsed[2]["nba"]["hcp_id"] == hcps[2]
    assert parsed[3]["_skipLearn"] is True and "slate" not in parsed[4]["nba"]
    assert all("other_action_outcomes" in p["nba"] for p in parsed[:12])
    assert any("pulls" in p["nba"] for p in parsed)
    # the lines above came from the column-wise writer, not the per-row path
    batch = table.combine_chunks().to_batches()[0]
    others = other_action_outcomes(outcomes, table)
    written = _bulk_lines(batch, _bulk_features(batch, catalogs, {}), others, pulls, {})
    assert None not in written and written == reference[: batch.num_rows]


def test_a_null_in_a_written_column_sends_the_batch_the_per_row_way(sim_log: Path) -> None:
    table, catalogs, _, _ = _export_inputs(sim_log)
    table = table.slice(0, 30).combine_chunks()
    batch = table.to_batches()[0]
    models = table.column("model_version").to_pylist()
    models[3] = None
    nulled = pa.RecordBatch.from_arrays(
        [
            pa.array(models) if f.name == "model_version" else batch.column(f.name)
            for f in batch.schema
        ],
        schema=batch.schema.set(
            batch.schema.get_field_index("model_version"), pa.field("model_version", pa.string())
        ),
    )
    assert _bulk_lines(nulled, _bulk_features(nulled, catalogs, {}), {}, {}, {}) == [None] * 30


def test_shared_namespaces_converted_once_match_the_whole_line_conversion() -> None:
    # _segment_heads (each distinct namespace once) against the token conversion
    # of whole lines, on random lines whose namespaces recur between lines and
    # sometimes repeat a name, or a namespace, within one line
    rng = np.random.default_rng(7)
    spaces = ["p", "h", "r", "c", "x"]
    tokens = ["a", "b", "a:1.500", "b:-0.000", "c=é→ü", "d:12", "e:0.010"]
    lines = [""]
    for _ in range(400):
        parts = []
        for _ in range(int(rng.integers(1, 5))):
            ns = spaces[int(rng.integers(len(spaces)))]
            toks = [tokens[int(k)] for k in rng.integers(len(tokens), size=int(rng.integers(0, 4)))]
            parts.append(" ".join([f"|{ns}", *toks]))
        lines.append(" ".join(parts))
    body = pa.array(lines)
    heads, repeated = _segment_heads(body)
    assert repeated.tolist() == _repeated_names(body).tolist()
    assert 50 < int(repeated.sum()) < 350  # both kinds of line are there
    whole = _namespaces_json(body, head=True).to_pylist()
    got = heads.to_pylist()
    for i in np.flatnonzero(~repeated).tolist():
        assert got[i] == whole[i], lines[i]
        ns = line_to_namespaces(lines[i])
        text = json.dumps(ns, separators=(",", ":"), ensure_ascii=False)
        assert got[i] == (text[:-1] + "," if ns else "{")
