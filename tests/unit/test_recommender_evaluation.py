"""The next-item evaluation on tiny files: formats, protocols, and the CLI command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shopstream.cli import app
from shopstream_recommender.config import RankingConfig, StateLimits
from shopstream_recommender.evaluation import evaluate, read_clicks

pytestmark = pytest.mark.unit


def write_sessions(path: Path, sessions: int, start: float = 1_000_000.0) -> Path:
    """Every session walks a -> b -> c, except that every third one re-clicks b."""
    rows = ["SessionId\tItemId\tTime"]
    for session in range(sessions):
        at = start + session * 100
        items = ["a", "b", "b", "c"] if session % 3 == 0 else ["a", "b", "c"]
        rows += [f"{session}\t{item}\t{at + step}" for step, item in enumerate(items)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_sessions_are_read_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "clicks.tsv"
    path.write_text("SessionId\tItemId\tTime\n2\tx\t20.5\n1\ty\t10\n1\tz\t30\n", encoding="utf-8")
    clicks = read_clicks(path, "sessions")
    assert [(c.session, c.item, c.at) for c in clicks] == [
        ("1", "y", 10.0),
        ("2", "x", 20.5),
        ("1", "z", 30.0),
    ]


def test_interactions_with_or_without_a_header_and_ratings(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("user,item,timestamp,rating\nu1,m1,5,4.5\nu1,m2,9,\n", encoding="utf-8")
    clicks = read_clicks(path, "interactions")
    assert [(c.user, c.item, c.rating, c.session) for c in clicks] == [
        ("u1", "m1", 4.5, None),
        ("u1", "m2", None, None),
    ]


def test_a_learnable_sequence_is_predicted_and_re_clicks_are_not_scored(tmp_path: Path) -> None:
    clicks = read_clicks(write_sessions(tmp_path / "s.tsv", 30), "sessions")
    report = evaluate(clicks[:60], clicks[60:], config=RankingConfig(), limits=StateLimits(), k=1)
    summary = report.as_dict()
    protocols = summary["protocols"]
    assert isinstance(protocols, dict)
    assert protocols["next_item"]["shopstream"]["hit_rate"] == 1.0
    assert protocols["next_new_item"]["shopstream"]["mrr"] == 1.0
    assert report.skipped_reclicks > 0, "b -> b is the page being viewed"
    assert protocols["next_item"]["popularity"]["hit_rate"] < 1.0


def test_the_cli_prints_and_writes_the_side_by_side_report(tmp_path: Path) -> None:
    data = write_sessions(tmp_path / "s.tsv", 30)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "recommender",
            "--data",
            str(data),
            "--warmup-fraction",
            "0.5",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "co_occurrence" in result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report["protocols"]["next_item"]) == {"shopstream", "popularity", "co_occurrence"}
    assert 0 < report["coverage"]["shopstream"] <= 1
