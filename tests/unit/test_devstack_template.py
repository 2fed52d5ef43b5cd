"""Template evaluation: parameters, conditions, intrinsics and SAM Globals."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.template import Template, TemplateError, merge_globals, parse_overrides, samconfig_parameters
from tests.support import ROOT, TEMPLATE

FIXTURE = ROOT / "tests/fixtures/runtime/template.yaml"


def _template(**overrides: str) -> Template:
    template = Template(FIXTURE, overrides)
    template.resolve_ref = lambda name: f"physical-{name}"
    template.resolve_getatt = lambda name, attribute: f"{name}:{attribute}"
    return template


def test_intrinsics_resolve_against_local_resources() -> None:
    template = _template()
    assert template.resolve({"Fn::Sub": "${Greeting} ${WorkQueue} ${WorkQueue.Arn} ${!Literal} ${AWS::Region}"}) == (
        "hello physical-WorkQueue WorkQueue:Arn ${Literal} us-east-1"
    )
    assert template.resolve({"Fn::Join": ["-", ["a", {"Ref": "Greeting"}]]}) == "a-hello"
    assert template.resolve({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}) == "y"
    assert template.resolve({"Fn::If": ["IsDev", "dev", {"Ref": "AWS::NoValue"}]}) is not None
    assert template.resolve({"k": {"Fn::If": ["IsDev", "dev", {"Ref": "AWS::NoValue"}]}}) == {}
    assert template.resolve([{"Fn::If": ["IsDev", "x", {"Ref": "AWS::NoValue"}]}, "y"]) == ["y"]


def test_conditions_follow_parameters() -> None:
    assert _template().condition("IsDev") is False
    assert _template(Stage="dev").condition("IsDev") is True
    assert "DevOnlyFunction" not in _template().functions()
    assert "DevOnlyFunction" in _template(Stage="dev").functions()


def test_unknown_or_disallowed_parameters_are_refused() -> None:
    with pytest.raises(TemplateError, match="unknown parameter"):
        _template(Nope="1")
    with pytest.raises(TemplateError, match="not one of"):
        _template(Stage="qa")


def test_globals_merge_like_sam() -> None:
    merged = merge_globals(
        {"Timeout": 3, "Layers": ["g"], "Environment": {"Variables": {"A": "1", "B": "1"}}},
        {"Timeout": 9, "Layers": ["l"], "Environment": {"Variables": {"B": "2"}}},
    )
    assert merged == {"Timeout": 9, "Layers": ["g", "l"], "Environment": {"Variables": {"A": "1", "B": "2"}}}


def test_function_specs_carry_globals_and_their_own_settings() -> None:
    echo = _template().functions()["EchoFunction"]
    assert echo.timeout == 3
    assert echo.memory == 256
    assert echo.environment["FROM_GLOBALS"] == "global-value"
    assert echo.environment["TABLE_NAME"] == "physical-Table"
    assert echo.code_dir == FIXTURE.parent / "echo"


def test_overrides_parse_like_sam() -> None:
    assert parse_overrides('Stage=dev Url="http://x y" ParameterKey=K,ParameterValue=V') == {"Stage": "dev", "Url": "http://x y", "K": "V"}
    with pytest.raises(TemplateError):
        parse_overrides("novalue")


def test_dev_stage_parameters_come_from_samconfig() -> None:
    parameters = samconfig_parameters(ROOT / "samconfig.toml", "dev")
    assert parameters["Stage"] == "dev"
    Template(TEMPLATE, parameters)  # every dev parameter is one the template declares


def test_samconfig_missing_is_no_parameters(tmp_path: Path) -> None:
    assert samconfig_parameters(tmp_path / "samconfig.toml", "dev") == {}
