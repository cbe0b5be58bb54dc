"""A float16 finding of a torch module says whether it comes from gradsafe's cast of the
module's own tensors (module.to(float16)) or belongs to the formula: it is checked again with
them kept in float32, as torch.autocast runs (issue 16, point 3)."""

from __future__ import annotations

from conftest import FIXTURES, run_json


def test_each_finding_says_whether_it_comes_from_the_cast() -> None:
    code, report = run_json("check", str(FIXTURES / "causes" / "module_cast_torch.py"),
                            "--dtype", "float16", "--no-suggest")
    assert code == 1
    by = {t["name"]: t for t in report["targets"]}
    for name in ("TinyScale", "NaiveSoftplus"):
        assert any("module cast with .to(float16)" in n for n in by[name]["notes"])
    errors = {(t["name"], f["code"]): f["message"] for t in report["targets"]
              for f in t["findings"] if f["severity"] == "error"}
    assert errors[("TinyScale", "GS201")].endswith("this finding comes from the cast]")
    assert errors[("TinyScale", "GS103")].endswith("this finding comes from the cast]")
    assert errors[("NaiveSoftplus", "GS201")].endswith("this finding belongs to the formula]")
