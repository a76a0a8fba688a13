"""The sample generator: deterministic for a seed, every delivery format, a population that evolves."""

from __future__ import annotations

import hashlib

from pipelines.generate import generate


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_every_format(tmp_path):
    generate(tmp_path / "a", "2020-01..2020-02", persons=300, seed=5)
    generate(tmp_path / "b", "2020-01..2020-02", persons=300, seed=5)
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert a == b
    generate(tmp_path / "c", "2020-01..2020-02", persons=300, seed=6)
    assert _digest(tmp_path / "c") != a
    suffixes = {name.rsplit(".", 1)[-1] for name in a if "/rosters/" in name}
    assert suffixes == {"csv", "xlsx", "parquet"}
    raw = [(tmp_path / "a" / n).read_bytes() for n in a if n.endswith(".csv") and "/rosters/" in n]
    assert any(r.startswith(b"\xef\xbb\xbf") for r in raw)  # UTF-8 with BOM
    gbk = 0
    for r in raw:
        try:
            r.decode("utf-8")
        except UnicodeDecodeError:
            gbk += 1
    assert gbk > 0  # GBK exports
    assert (tmp_path / "a" / "2020-02" / "registry" / "deaths.csv").exists()
    # watch-list cases (issue 20): the low-income register every month, and planted cases recorded
    assert all((tmp_path / "a" / m / "registry" / "low_income.csv").exists() for m in ("2020-01", "2020-02"))
    truth = (tmp_path / "a" / "ground_truth.csv").read_text(encoding="utf-8")
    from pipelines.generate import VISIT_PLANTS, WATCH_PLANTS

    assert all(f"2020-02,{defect}," in truth for defect in [*WATCH_PLANTS, *VISIT_PLANTS])
    # temporary assistance: cases under rosters/temporary/ every month, each planted kind in the truth
    assert all(any(n.startswith(f"{m}/rosters/temporary/") for n in a) for m in ("2020-01", "2020-02"))
    import csv

    with open(tmp_path / "a" / "ground_truth.csv", encoding="utf-8") as fh:
        kinds = {(t["month"], t["defect"]) for t in csv.DictReader(fh) if t["program"] == "temporary"}
    planted = {"temporary_above_cap", "temporary_repeat", "temporary_bad_event", "temporary_no_approval",
               "temporary_migrant"}
    assert kinds == {("2020-01", k) for k in planted} | {("2020-02", k) for k in planted | {"temporary_deceased"}}
