"""Records: torn-line recovery, rotation, done ids, atomic manifest, config-mismatch refusal."""

from __future__ import annotations

import json
import os

import pytest

from distill import records
from distill.errors import UserError
from distill.records import ShardWriter, Trace, check_manifest, read_records, write_manifest


def make_trace(pid: str, sample: int, text: str = "x") -> dict:
    return Trace(
        id=records.trace_id(pid, sample),
        prompt_id=pid,
        sample=sample,
        problem=f"problem {pid}",
        answer="1",
        domain="math",
        source="test",
        teacher={"model": "t"},
        reasoning=text,
        content="\\boxed{1}",
        finish_reason="stop",
        usage={"prompt_tokens": 3, "completion_tokens": 5},
    ).to_dict()


def test_trace_roundtrip_keeps_added_fields():
    d = make_trace("p1", 0)
    d["verdict"] = "kept"
    t = Trace.from_dict(d)
    assert t.extra == {"verdict": "kept"}
    assert t.to_dict() == d
    assert list(d)[:3] == ["id", "prompt_id", "sample"]


def test_trace_missing_field_is_clear_error():
    d = make_trace("p1", 0)
    del d["problem"]
    with pytest.raises(UserError, match="f.jsonl:3: trace record is missing field\\(s\\) problem"):
        Trace.from_dict(d, where="f.jsonl:3")


def test_writer_appends_whole_lines_and_reports_done_ids(tmp_path):
    with ShardWriter(tmp_path) as w:
        for i in range(5):
            w.write(make_trace(f"p{i}", 0))
    w2 = ShardWriter(tmp_path)
    assert w2.done_ids == {f"p{i}:0" for i in range(5)}
    assert w2.dropped_bytes == 0
    w2.close()
    assert [r["id"] for r in read_records(tmp_path)] == [f"p{i}:0" for i in range(5)]
    lines = (tmp_path / "shard-00000.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(x) for x in lines[:-1])


@pytest.mark.parametrize("tail", [b'{"id": "p9:0", "prompt_id": "p9", "sam', b'{"id": "p9:0"}'])
def test_torn_last_line_is_dropped_on_resume(tmp_path, tail):
    with ShardWriter(tmp_path) as w:
        for i in range(3):
            w.write(make_trace(f"p{i}", 0))
    path = tmp_path / "shard-00000.jsonl"
    good_size = path.stat().st_size
    with open(path, "ab") as f:  # a crash mid-write: no newline at the end
        f.write(tail)
    w = ShardWriter(tmp_path)
    assert w.dropped_bytes == len(tail)
    assert path.stat().st_size == good_size
    assert w.done_ids == {"p0:0", "p1:0", "p2:0"}
    w.write(make_trace("p3", 0))
    w.close()
    assert [r["id"] for r in read_records(tmp_path)] == ["p0:0", "p1:0", "p2:0", "p3:0"]


def test_torn_line_with_newline_but_bad_json_is_dropped(tmp_path):
    path = tmp_path / "shard-00000.jsonl"
    path.write_text(json.dumps(make_trace("a", 0)) + "\n" + '{"id": "b:0", "prob\n')
    w = ShardWriter(tmp_path)
    assert w.done_ids == {"a:0"}
    w.close()
    assert len(list(read_records(tmp_path))) == 1


def test_rotation_by_size(tmp_path):
    rec = make_trace("p", 0, text="y" * 200)
    line = len(json.dumps(rec, ensure_ascii=False)) + 1
    with ShardWriter(tmp_path, max_bytes=line * 3 + 10) as w:
        for i in range(10):
            w.write(make_trace(f"p{i}", 0, text="y" * 200))
    shards = records.shard_paths(tmp_path)
    assert [p.name for p in shards] == [f"shard-0000{i}.jsonl" for i in range(4)]
    assert all(p.stat().st_size <= line * 3 + 10 for p in shards)
    assert [r["id"] for r in read_records(tmp_path)] == [f"p{i}:0" for i in range(10)]
    # resume appends to the last shard, then keeps rotating
    with ShardWriter(tmp_path, max_bytes=line * 3 + 10) as w:
        assert len(w.done_ids) == 10
        assert w.path.name == "shard-00003.jsonl"
        w.write(make_trace("p10", 0, text="y" * 200))
    assert len(list(read_records(tmp_path))) == 11


def test_reader_reports_malformed_line_with_file_and_line(tmp_path):
    path = tmp_path / "shard-00000.jsonl"
    path.write_text(json.dumps(make_trace("a", 0)) + "\nnot json\n" + json.dumps(make_trace("b", 0)) + "\n")
    with pytest.raises(UserError, match="shard-00000.jsonl:2: malformed JSON line"):
        list(read_records(tmp_path))
    assert [r["id"] for r in read_records(tmp_path, skip_bad_lines=True)] == ["a:0", "b:0"]


def test_reader_missing_source_is_clear(tmp_path):
    with pytest.raises(UserError, match="no such file or folder"):
        list(read_records(tmp_path / "nope"))


def test_manifest_is_atomic_and_complete(tmp_path, monkeypatch):
    cfg = {"model": "m", "n": 4, "sampling": {"temperature": 0.6}}
    m = write_manifest(tmp_path, "generate", cfg, inputs=["a.jsonl"], counts={"samples": 8})
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == m
    assert on_disk["stage"] == "generate" and on_disk["version"] and on_disk["counts"] == {"samples": 8}
    assert on_disk["inputs"] == ["a.jsonl"] and on_disk["config"] == cfg

    # a crash while writing leaves the old manifest intact and no temp file behind
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_manifest(tmp_path, "generate", {"model": "other"})
    monkeypatch.undo()
    assert json.loads((tmp_path / "manifest.json").read_text())["config"] == cfg
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_resume_with_changed_config_is_refused(tmp_path):
    cfg = {"model": "m", "sampling": {"temperature": 0.6}, "n": 4}
    assert check_manifest(tmp_path, "generate", cfg) is False  # fresh folder
    write_manifest(tmp_path, "generate", cfg)
    assert check_manifest(tmp_path, "generate", cfg) is True  # same config: resume
    changed = {"model": "m", "sampling": {"temperature": 1.0}, "n": 4}
    # no finished work yet (a manifest, an empty shard, a failure list): the new config starts afresh
    (tmp_path / "shard-00000.jsonl").write_text("")
    (tmp_path / "failed.jsonl").write_text('{"prompt_id": "p", "error": "HTTP 400"}\n')
    assert check_manifest(tmp_path, "generate", changed) is False
    assert check_manifest(tmp_path, "filter", cfg) is False
    (tmp_path / "shard-00000.jsonl").write_text('{"id": "p:0"}\n')  # one finished trace: refused
    with pytest.raises(UserError, match=r"different config \(changed: sampling.temperature\).*--overwrite"):
        check_manifest(tmp_path, "generate", changed)
    assert check_manifest(tmp_path, "generate", changed, overwrite=True) is False
    with pytest.raises(UserError, match="stage 'generate', not 'filter'"):
        check_manifest(tmp_path, "filter", cfg)


def test_to_messages_renders_think_block():
    rec = make_trace("p", 0, text="step one")
    msgs = records.to_messages(rec)
    assert msgs[0] == {"role": "user", "content": "problem p"}
    assert msgs[1] == {"role": "assistant", "content": "<think>\nstep one\n</think>\n\n\\boxed{1}"}
    assert records.to_messages(rec, with_reasoning=False)[1]["content"] == "\\boxed{1}"


def test_finished_output_returns_result_refuses_changes_and_clears(tmp_path):
    out = tmp_path / "out"
    cfg = {"k": 1}
    assert records.finished_output(out, "filter", cfg, False, result="funnel.json") is None  # fresh
    out.mkdir()
    (out / "kept").mkdir()
    (out / "kept" / "shard-00000.jsonl").write_text("{}\n")
    (out / "funnel.json").write_text(json.dumps({"kept": 3}))
    write_manifest(out, "filter", cfg, complete=False)
    # same config, not complete: a resume; nothing is cleared
    assert records.finished_output(out, "filter", cfg, False, result="funnel.json", clear=["kept"]) is None
    assert (out / "kept" / "shard-00000.jsonl").exists()
    write_manifest(out, "filter", cfg, complete=True)
    assert records.finished_output(out, "filter", cfg, False, result="funnel.json") == {"kept": 3}
    with pytest.raises(UserError, match="different config"):
        records.finished_output(out, "filter", {"k": 2}, False, result="funnel.json")
    with pytest.raises(UserError, match="stage 'filter', not 'select'"):
        records.finished_output(out, "select", cfg, False)
    # --overwrite with another config: the listed outputs go, the rest stays
    (out / "keep-me.txt").write_text("x")
    got = records.finished_output(
        out, "filter", {"k": 2}, True, result="funnel.json", clear=["kept", "funnel.json"]
    )
    assert got is None and not (out / "kept").exists() and not (out / "funnel.json").exists()
    assert (out / "keep-me.txt").exists()
