"""
Conformance of the emulator with the real PVE API schema: for every method pvesim handles, in
both versions, cases generated from the schema itself (each required parameter missing, each
enum, pattern, format, type and range violated, an unknown option, a bad boolean) must fail
exactly as JSONSchema.pm and pvesh report it.
"""

import re

import pytest

from pvesim.api import Api
from pvesim.cli import parse_options
from pvesim.errors import PARAMETER_ERROR, PveError
from pvesim.schema import perl_regex
from support.pve import PVE_VERSIONS

PATH_VALUES = {
    "zone": "evpn",
    "vnet": "vnet1",
    "controller": "ctl",
    "subnet": "evpn-10.0.0.0-24",
    "name": "set1",
    "group": "grp1",
    "pos": "0",
    "cidr": "10.0.0.1",
    "node": "pve1",
}
BAD_FORMAT_VALUE = "!bad value!"


def _violating_pattern(pattern):
    for candidate in ("1", "-", "a b", "!", "_x"):
        if not re.fullmatch(perl_regex(pattern), candidate):
            return candidate
    raise AssertionError(f"no value violates {pattern}")


def _cases():
    cases = []
    for version in PVE_VERSIONS:
        api = Api("/nonexistent", "pve1", version)
        for method, template in sorted(api.routes):
            path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], template)
            spec = api.schema.method(template, method)
            if spec is None:  # GET /version: outside the SDN and firewall schema
                continue
            cases.append(
                pytest.param(
                    (version, method, path, "no-such-option", "1", "Unknown option: no-such-option"),
                    id=f"{version} {method} {template} unknown option",
                )
            )
            for name, prop in spec["parameters"].get("properties", {}).items():
                if f"{{{name}}}" in template:
                    continue
                base = f"{version} {method} {template} {name}"
                if not prop.get("optional"):
                    cases.append(
                        pytest.param(
                            (version, method, path, name, None, "property is missing and it is not optional"),
                            id=f"{base} missing",
                        )
                    )
                kind = prop.get("type", "string")
                if kind == "integer":
                    cases.append(
                        pytest.param(
                            (version, method, path, name, "abc", "type check ('integer') failed - got 'abc'"),
                            id=f"{base} type",
                        )
                    )
                    if "minimum" in prop:
                        cases.append(
                            pytest.param(
                                (
                                    version,
                                    method,
                                    path,
                                    name,
                                    str(prop["minimum"] - 1),
                                    f"value must have a minimum value of {prop['minimum']}",
                                ),
                                id=f"{base} minimum",
                            )
                        )
                    if "maximum" in prop:
                        cases.append(
                            pytest.param(
                                (
                                    version,
                                    method,
                                    path,
                                    name,
                                    str(prop["maximum"] + 1),
                                    f"value must have a maximum value of {prop['maximum']}",
                                ),
                                id=f"{base} maximum",
                            )
                        )
                elif kind == "string":
                    if "enum" in prop:
                        cases.append(
                            pytest.param(
                                (
                                    version,
                                    method,
                                    path,
                                    name,
                                    "zzz",
                                    f"value 'zzz' does not have a value in the enumeration '{', '.join(prop['enum'])}'",
                                ),
                                id=f"{base} enum",
                            )
                        )
                    elif isinstance(prop.get("format"), str):
                        cases.append(
                            pytest.param(
                                (version, method, path, name, BAD_FORMAT_VALUE, "invalid format - "),
                                id=f"{base} format",
                            )
                        )
                    elif "pattern" in prop:
                        cases.append(
                            pytest.param(
                                (
                                    version,
                                    method,
                                    path,
                                    name,
                                    _violating_pattern(prop["pattern"]),
                                    "value does not match the regex pattern",
                                ),
                                id=f"{base} pattern",
                            )
                        )
                    elif "maxLength" in prop:
                        cases.append(
                            pytest.param(
                                (
                                    version,
                                    method,
                                    path,
                                    name,
                                    "x" * (prop["maxLength"] + 1),
                                    f"value may only be {prop['maxLength']} characters long",
                                ),
                                id=f"{base} maxLength",
                            )
                        )
    return cases


@pytest.mark.parametrize("case", _cases())
def test_parameter_violation_fails_like_pve(tmp_path, case):
    version, method, path, name, value, expected = case
    api = Api(tmp_path, "pve1", version)
    if expected.startswith("Unknown option"):  # pvesh's Getopt refuses it before the API sees it
        _, path_params, spec = api.endpoint(method, path)
        properties = {k: v for k, v in spec["parameters"].get("properties", {}).items() if k not in path_params}
        with pytest.raises(PveError) as err:
            parse_options([f"--{name}", value], properties)
        assert err.value.message == f"{expected}\n400 unable to parse option" and err.value.usage
        return
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


@pytest.mark.parametrize(
    "spelling,value",
    [
        ("1", 1),
        ("0", 0),
        ("on", 1),
        ("OFF", 0),
        ("yes", 1),
        ("No", 0),
        ("true", 1),
        ("FALSE", 0),
    ],
)
def test_booleans_in_every_spelling(pve_cluster, spelling, value):
    _, _, spec = pve_cluster.endpoint("POST", "/cluster/sdn/zones")
    params, _ = parse_options(["--advertise-subnets", spelling], spec["parameters"]["properties"])
    assert params == {"advertise-subnets": value}


def test_bad_boolean_and_bare_flag(pve_cluster):
    _, _, spec = pve_cluster.endpoint("GET", "/cluster/sdn/zones")
    properties = spec["parameters"]["properties"]
    assert parse_options(["--pending", "--output-format", "json"], properties) == (
        {"pending": 1},
        {"output-format": "json"},
    )
    with pytest.raises(PveError, match=r"^400 unable to parse boolean option$"):
        parse_options(["--pending", "maybe"], properties)


def test_repeated_list_options_are_joined(pve_cluster):
    _, _, spec = pve_cluster.endpoint("POST", "/cluster/sdn/controllers")
    params, _ = parse_options(
        ["--peers", "10.1.0.1", "--peers", "10.2.0.1", "--asn=65000"], spec["parameters"]["properties"]
    )
    assert params == {"peers": "10.1.0.1,10.2.0.1", "asn": "65000"}


def test_path_placeholders_are_not_options(pve_cluster):
    _, path_params, spec = pve_cluster.endpoint("PUT", "/cluster/sdn/zones/evpn")
    assert path_params == {"zone": "evpn"}
    properties = {k: v for k, v in spec["parameters"]["properties"].items() if k not in path_params}
    with pytest.raises(PveError, match=r"^Unknown option: zone\n"):
        parse_options(["--zone", "other"], properties)


def test_unknown_path_exits_1(pve_cluster):
    with pytest.raises(PveError) as err:
        pve_cluster.call("GET", "/cluster/sdn/nonexistent")
    assert (err.value.message, err.value.exit_code) == ("No 'get' handler defined for '/cluster/sdn/nonexistent'", 1)


def test_lock_exists_only_from_pve_9(pve_cluster, pve_version):
    if pve_version == "8.4":
        with pytest.raises(PveError) as err:
            pve_cluster.call("POST", "/cluster/sdn/lock")
        assert err.value.exit_code == 1
        _, _, spec = pve_cluster.endpoint("PUT", "/cluster/sdn")
        assert "lock-token" not in spec["parameters"].get("properties", {})
    else:
        assert pve_cluster.call("POST", "/cluster/sdn/lock")


# A valid call for every route, in an order that makes each one possible: each must succeed.
VALID_CALLS = [
    ("GET", "/cluster/sdn", {}),
    (
        "POST",
        "/cluster/sdn/controllers",
        {"controller": "evpnctl", "type": "evpn", "asn": "65000", "peers": "10.1.0.1"},
    ),
    ("PUT", "/cluster/sdn/controllers/evpnctl", {"peers": "10.1.0.1,10.2.0.1"}),
    ("GET", "/cluster/sdn/controllers", {}),
    ("GET", "/cluster/sdn/controllers/evpnctl", {}),
    ("POST", "/cluster/sdn/zones", {"zone": "evpn", "type": "evpn", "controller": "evpnctl", "vrf-vxlan": "10000"}),
    ("PUT", "/cluster/sdn/zones/evpn", {"mtu": "1370"}),
    ("GET", "/cluster/sdn/zones", {"pending": 1}),
    ("GET", "/cluster/sdn/zones/evpn", {"pending": 1}),
    ("POST", "/cluster/sdn/vnets", {"vnet": "vnet1", "zone": "evpn", "tag": "11001"}),
    ("PUT", "/cluster/sdn/vnets/vnet1", {"alias": "stretched"}),
    ("GET", "/cluster/sdn/vnets", {}),
    ("GET", "/cluster/sdn/vnets/vnet1", {}),
    ("POST", "/cluster/sdn/vnets/vnet1/subnets", {"subnet": "10.1.1.0/24", "type": "subnet", "gateway": "10.1.1.1"}),
    ("PUT", "/cluster/sdn/vnets/vnet1/subnets/evpn-10.1.1.0-24", {"snat": 1}),
    ("GET", "/cluster/sdn/vnets/vnet1/subnets", {}),
    ("GET", "/cluster/sdn/vnets/vnet1/subnets/evpn-10.1.1.0-24", {}),
    ("PUT", "/cluster/sdn", {}),
    ("POST", "/cluster/sdn/lock", {}),
    ("DELETE", "/cluster/sdn/lock", {"force": 1}),
    ("POST", "/cluster/sdn/rollback", {}),
    ("DELETE", "/cluster/sdn/vnets/vnet1/subnets/evpn-10.1.1.0-24", {}),
    ("DELETE", "/cluster/sdn/vnets/vnet1", {}),
    ("DELETE", "/cluster/sdn/zones/evpn", {}),
    ("DELETE", "/cluster/sdn/controllers/evpnctl", {}),
    ("POST", "/cluster/firewall/aliases", {"name": "mgmt", "cidr": "192.168.2.0/24"}),
    ("PUT", "/cluster/firewall/aliases/mgmt", {"cidr": "192.168.3.0/24"}),
    ("GET", "/cluster/firewall/aliases", {}),
    ("GET", "/cluster/firewall/aliases/mgmt", {}),
    ("POST", "/cluster/firewall/ipset", {"name": "fed"}),
    ("POST", "/cluster/firewall/ipset/fed", {"cidr": "10.1.0.1"}),
    ("PUT", "/cluster/firewall/ipset/fed/10.1.0.1", {"comment": "roz"}),
    ("GET", "/cluster/firewall/ipset", {}),
    ("GET", "/cluster/firewall/ipset/fed", {}),
    ("GET", "/cluster/firewall/ipset/fed/10.1.0.1", {}),
    ("POST", "/cluster/firewall/groups", {"group": "evpn-wg"}),
    ("POST", "/cluster/firewall/groups/evpn-wg", {"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "179"}),
    ("PUT", "/cluster/firewall/groups/evpn-wg/0", {"enable": "1"}),
    ("GET", "/cluster/firewall/groups", {}),
    ("GET", "/cluster/firewall/groups/evpn-wg", {}),
    ("GET", "/cluster/firewall/groups/evpn-wg/0", {}),
    ("POST", "/cluster/firewall/rules", {"type": "group", "action": "evpn-wg", "iface": "wg0", "enable": "1"}),
    ("PUT", "/cluster/firewall/rules/0", {"comment": "evpn"}),
    ("GET", "/cluster/firewall/rules", {}),
    ("GET", "/cluster/firewall/rules/0", {}),
    ("PUT", "/cluster/firewall/options", {"enable": "1"}),
    ("GET", "/cluster/firewall/options", {}),
    ("POST", "/nodes/pve1/firewall/rules", {"type": "in", "action": "ACCEPT", "proto": "tcp", "dport": "22"}),
    ("PUT", "/nodes/pve1/firewall/rules/0", {"enable": "1"}),
    ("GET", "/nodes/pve1/firewall/rules", {}),
    ("GET", "/nodes/pve1/firewall/rules/0", {}),
    ("PUT", "/nodes/pve1/firewall/options", {"enable": "1"}),
    ("GET", "/nodes/pve1/firewall/options", {}),
    ("DELETE", "/nodes/pve1/firewall/rules/0", {}),
    ("DELETE", "/cluster/firewall/rules/0", {}),
    ("DELETE", "/cluster/firewall/groups/evpn-wg/0", {}),
    ("DELETE", "/cluster/firewall/groups/evpn-wg", {}),
    ("DELETE", "/cluster/firewall/ipset/fed/10.1.0.1", {}),
    ("DELETE", "/cluster/firewall/ipset/fed", {}),
    ("DELETE", "/cluster/firewall/aliases/mgmt", {}),
    ("GET", "/version", {}),
    ("PUT", "/nodes/pve1/network", {}),
]


def test_a_valid_call_succeeds_on_every_route(pve_cluster):
    covered = set()
    for method, path, params in VALID_CALLS:
        try:
            template = pve_cluster.endpoint(method, path)[0]
        except PveError:
            continue  # not in this version's API (lock, rollback on 8.4)
        pve_cluster.call(method, path, params)
        covered.add((method, template))
    assert covered == set(pve_cluster.routes)
