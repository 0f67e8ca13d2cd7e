"""The saved-activation measurement on the tiny model: both variants, the ratio, the refusal."""

from __future__ import annotations

import json

from clarify_bench.studies import perf_activations


def test_lora_in_bf16_saves_less_than_peft_default_and_writes_json(tmp_path, capsys):
    out = tmp_path / "perf_activations.json"
    argv = ["--model", "tiny", "--tokens", "64", "--pad", "8", "--out", str(out)]
    assert perf_activations.main(argv) == 0
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == report
    ours, peft = (report["variants"][k]["mb_per_layer"] for k in
                  ("lora_in_bf16", "peft_default_fp32_lora_inputs"))  # fmt: skip
    assert 0 < ours < peft and report["ratio_ours_over_peft_default"] == round(ours / peft, 3)
    assert not any(
        k.startswith("float32 [256, ") for k in report["variants"]["lora_in_bf16"]["largest"]
    )


def test_impossible_shapes_get_one_line(tmp_path, capsys):
    assert (
        perf_activations.main(["--model", "tiny", "--tokens", "40", "--out", str(tmp_path / "x")])
        == 2
    )
    assert "--tokens - --pad > 33" in capsys.readouterr().err
