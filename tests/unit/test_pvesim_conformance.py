"""
Conformance of the emulator with the real PVE API schema: for every method pvesim handles, in
both versions, cases generated from the schema itself (each required parameter missing, each
enum, pattern, format, type and range violated, an unknown option, a bad boolean) must fail
exactly as JSONSchema.pm and pvesh report it.
"""

import re

import pytest
from support.pve import PVE_API, PVE_VERSIONS
from pvesim.api import Api
from pvesim.cli import parse_options
from pvesim.errors import PARAMETER_ERROR, PveError
from pvesim.schema import perl_regex

PATH_VALUES = {"zone": "evpn", "vnet": "vnet1", "controller": "ctl", "subnet": "evpn-10.0.0.0-24",
               "name": "set1", "group": "grp1", "pos": "0", "cidr": "10.0.0.1", "node": "pve1"}
BAD_FORMAT_VALUE = "!bad value!"


def _violating_pattern(pattern):
    for candidate in ("1", "-", "a b", "!", "_x"):
        if not re.fullmatch(perl_regex(pattern), candidate):
            return candidate
    raise AssertionError(f"no value violates {pattern}")


def _cases():
    if not PVE_API.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no PVE API schema at {PVE_API}"))]
    cases = []
    for version in PVE_VERSIONS:
        api = Api("/nonexistent", "pve1", version)
        for method, template in sorted(api.routes):
            path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], template)
            spec = api.schema.method(template, method)
            for name, prop in spec["parameters"].get("properties", {}).items():
                if f"{{{name}}}" in template:
                    continue
                base = f"{version} {method} {template} {name}"
                if not prop.get("optional"):
                    cases.append(pytest.param((version, method, path, name, None,
                                               "property is missing and it is not optional"),
                                              id=f"{base} missing"))
                kind = prop.get("type", "string")
                if kind == "integer":
                    cases.append(pytest.param((version, method, path, name, "abc",
                                               "type check ('integer') failed - got 'abc'"), id=f"{base} type"))
                    if "minimum" in prop:
                        cases.append(pytest.param((version, method, path, name, str(prop["minimum"] - 1),
                                                   f"value must have a minimum value of {prop['minimum']}"),
                                                  id=f"{base} minimum"))
                    if "maximum" in prop:
                        cases.append(pytest.param((version, method, path, name, str(prop["maximum"] + 1),
                                                   f"value must have a maximum value of {prop['maximum']}"),
                                                  id=f"{base} maximum"))
                elif kind == "string":
                    if "enum" in prop:
                        cases.append(pytest.param((version, method, path, name, "zzz",
                                                   f"value 'zzz' does not have a value in the enumeration "
                                                   f"'{', '.join(prop['enum'])}'"), id=f"{base} enum"))
                    elif isinstance(prop.get("format"), str):
                        cases.append(pytest.param((version, method, path, name, BAD_FORMAT_VALUE,
                                                   "invalid format - "), id=f"{base} format"))
                    elif "pattern" in prop:
                        cases.append(pytest.param((version, method, path, name, _violating_pattern(prop["pattern"]),
                                                   "value does not match the regex pattern"), id=f"{base} pattern"))
                    elif "maxLength" in prop:
                        cases.append(pytest.param((version, method, path, name, "x" * (prop["maxLength"] + 1),
                                                   f"value may only be {prop['maxLength']} characters long"),
                                                  id=f"{base} maxLength"))
    return cases


@pytest.mark.parametrize("case", _cases())
def test_parameter_violation_fails_like_pve(tmp_path, case):
    version, method, path, name, value, expected = case
    api = Api(tmp_path, "pve1", version)
    params = {} if value is None else {name: value}
    with pytest.raises(PveError) as err:
        api.call(method, path, params)
    assert err.value.message.startswith(PARAMETER_ERROR + "\n")
    assert err.value.exit_code == 255 and err.value.usage
    message = err.value.params.get(name)
    assert message is not None and message.startswith(expected), err.value.message
    assert list(tmp_path.iterdir()) == [], "a refused call wrote something"


def test_unknown_option_is_a_getopt_failure(pve_cluster):
    _, _, spec = pve_cluster.endpoint("POST", "/cluster/sdn/zones")
    with pytest.raises(PveError) as err:
        parse_options(["--exit_nodes_local_routing", "0"], spec["parameters"]["properties"])
    assert err.value.message == "Unknown option: exit_nodes_local_routing\n400 unable to parse option"


@pytest.mark.parametrize("spelling,value", [
    ("1", 1), ("0", 0), ("on", 1), ("OFF", 0), ("yes", 1), ("No", 0), ("true", 1), ("FALSE", 0),
])
def test_booleans_in_every_spelling(pve_cluster, spelling, value):
    _, _, spec = pve_cluster.endpoint("POST", "/cluster/sdn/zones")
    params, _ = parse_options(["--advertise-subnets", spelling], spec["parameters"]["properties"])
    assert params == {"advertise-subnets": value}


def test_bad_boolean_and_bare_flag(pve_cluster):
    _, _, spec = pve_cluster.endpoint("GET", "/cluster/sdn/zones")
    properties = spec["parameters"]["properties"]
    assert parse_options(["--pending", "--output-format", "json"], properties) == (
        {"pending": 1}, {"output-format": "json"})
    with pytest.raises(PveError, match="^400 unable to parse boolean option$"):
        parse_options(["--pending", "maybe"], properties)


def test_repeated_list_options_are_joined(pve_cluster):
    _, _, spec = pve_cluster.endpoint("POST", "/cluster/sdn/controllers")
    params, _ = parse_options(
        ["--peers", "10.1.0.1", "--peers", "10.2.0.1", "--asn=65000"], spec["parameters"]["properties"])
    assert params == {"peers": "10.1.0.1,10.2.0.1", "asn": "65000"}


def test_path_placeholders_are_not_options(pve_cluster):
    _, path_params, spec = pve_cluster.endpoint("PUT", "/cluster/sdn/zones/evpn")
    assert path_params == {"zone": "evpn"}
    properties = {k: v for k, v in spec["parameters"]["properties"].items() if k not in path_params}
    with pytest.raises(PveError, match="^Unknown option: zone\n"):
        parse_options(["--zone", "other"], properties)


def test_unknown_path_exits_1(pve_cluster):
    with pytest.raises(PveError) as err:
        pve_cluster.call("GET", "/cluster/sdn/nonexistent")
    assert (err.value.message, err.value.exit_code) == (
        "No 'get' handler defined for '/cluster/sdn/nonexistent'", 1)


def test_lock_exists_only_from_pve_9(pve_cluster, pve_version):
    if pve_version == "8.4":
        with pytest.raises(PveError) as err:
            pve_cluster.call("POST", "/cluster/sdn/lock")
        assert err.value.exit_code == 1
        _, _, spec = pve_cluster.endpoint("PUT", "/cluster/sdn")
        assert "lock-token" not in spec["parameters"].get("properties", {})
    else:
        assert pve_cluster.call("POST", "/cluster/sdn/lock")
