"""A bad sweep spec is refused before anything trains, with one line naming the key."""

import pytest
from conftest import SWEEP, run_cli, write_spec

from mtlzoo.benchmark import plan_sweep, spec_from_dict


@pytest.mark.parametrize(("change", "message"), [
    ({"method": ["ew"]}, "method: unknown key. Did you mean 'methods'?"),
    ({"methods": []}, "methods: got []; expects a non-empty list"),
    ({"methods": ["ew", {"name": "pcgrad", "kwarg": {}}]}, "methods[1].kwarg: unknown key. Did you mean 'kwargs'?"),
    ({"methods": ["ew", "pcgard"]}, "methods[1].name: Unknown balancer or update rule 'pcgard'. Did you mean: pcgrad"),
    ({"methods": ["ew", {"name": "ew", "kwargs": {}}]}, "methods[1]: label 'ew' is used twice"),
    ({"architectures": [{"config": "synthscenes_hps"}]}, "architectures[0].name: missing"),
    ({"architectures": ["hps_tiny", "hps_tiyn"]}, "architectures[1].name: Unknown model 'hps_tiyn'"),
    ({"architectures": [{"name": "hps_tiny", "config": "synthscenes_nope"}]},
     "error: architectures[0].config: no config file 'synthscenes_nope'"),
    ({"baselines": {"config": "synthscenes_nope"}}, "error: baselines.config: no config file 'synthscenes_nope'"),
    ({"config": "synthscenes_nope"}, "error: config: no config file 'synthscenes_nope'"),
    ({"architectures": [{"name": "hps_tiny", "overrides": ["train.stpes=3"]}]},
     "architectures[0]: unknown config key 'train.stpes'. Did you mean 'steps'?"),
    ({"architectures": ["hps_tiny", {"name": "cs_tiny", "overrides": ["data.kwargs.length=8"]}]},
     "architectures[1]: data.kwargs {'size': [24, 32], 'length': 8} differs from {'size': [24, 32], 'length': 16} of "
     "baselines/stl_tiny/seed0; every run of a sweep is scored on the same tasks and data"),
    ({"seeds": [0, 0]}, "seeds: got [0, 0]; each seed once"),
    ({"seeds": "three"}, "seeds: got 'three'; expects a list of distinct integers >= 0 or a count >= 1"),
    ({"protocol": "synthscene"}, "protocol: got 'synthscene'; expects one of"),
    ({"baselines": {"overrides": []}}, "baselines.config: missing"),
    ({"overrides": ["train.steps"]}, "overrides[0]: got 'train.steps'; expects section.key=value"),
    ({"methods": ["ew", {"name": "pcgrad", "kwargs": {"nope": 1}}]},
     "architectures[0] x methods[1]: method 'pcgrad': method.kwargs: unknown option"),
])
def test_bad_spec_is_one_line_naming_the_key(tmp_path, capsys, change, message):
    spec = write_spec(tmp_path, **change)
    assert run_cli("run", spec) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mtlzoo benchmark: error: ")
    assert message in err
    assert not (tmp_path / "sweep").exists()


def test_flags_replace_spec_keys_and_overrides_add_to_them(tmp_path):
    from mtlzoo.cli import build_parser
    from mtlzoo.cli_benchmark import _benchmark_spec

    spec = write_spec(tmp_path)
    args = build_parser().parse_args(["benchmark", "run", str(spec), "optim.lr=0.01", "--methods", "ew,uw",
                                      "--seeds", "[3]", "--out-dir", str(tmp_path / "other")])
    data, command = _benchmark_spec(args)
    parsed = spec_from_dict(data)
    assert [m.name for m in parsed.methods] == ["ew", "uw"] and parsed.seeds == (3,)
    assert parsed.out_dir == str(tmp_path / "other") and parsed.overrides[-1] == "optim.lr=0.01"
    assert command == f"mtlzoo benchmark run {spec} --methods ew,uw --seeds '[3]' --out-dir {tmp_path / 'other'} " \
                      "optim.lr=0.01"
    flags_only = build_parser().parse_args(["benchmark", "run", "train.steps=2", "--config", "synthscenes_hps"])
    data, command = _benchmark_spec(flags_only)
    assert data == {"config": "synthscenes_hps", "overrides": ["train.steps=2"]}
    assert command == "mtlzoo benchmark run --config synthscenes_hps train.steps=2"


def test_feature_level_balancing_on_a_model_without_one_shared_representation_does_not_apply():
    spec = spec_from_dict({**SWEEP, "architectures": ["cross_stitch_tiny", "hps_tiny"], "out_dir": "unused",
                           "methods": [{"name": "mgda", "label": "mgda_features", "kwargs": {"level": "features"}}],
                           "baselines": "none"})
    plan = plan_sweep(spec)
    reasons = {c.architecture: c.reason for c in plan.cells}
    assert "level='features' does not apply" in reasons["cross_stitch_tiny"]
    assert reasons["hps_tiny"] is None and plan.baselines == ()
    assert [c.key for c in plan.cells if c.architecture == "hps_tiny"] == \
        ["cells/hps_tiny/mgda_features/seed0", "cells/hps_tiny/mgda_features/seed1"]
