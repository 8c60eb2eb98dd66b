"""
``pvesh`` as run by root on one node: argument parsing, output formats, exit codes, and the
emulator's own knobs (PVESIM_ROOT, PVESIM_NODE, PVESIM_VERSION, PVESIM_LOG, PVESIM_FAIL,
PVESIM_DELAY). See lab/README.md.
"""

import json
import os
import pathlib
import socket
import sys
import time

from pvesim.api import Api
from pvesim.errors import PveError
from pvesim.render import node_facts
from pvesim.schema import parse_boolean

COMMANDS = {"get": "GET", "set": "PUT", "create": "POST", "delete": "DELETE"}
FORMAT_OPTIONS = {"output-format", "noheader", "noborder", "quiet", "human-readable"}
OUTPUT_FORMATS = ("text", "json", "json-pretty", "yaml")


def usage_line(command):
    return f"pvesh {command} <api_path> [OPTIONS] [FORMAT_OPTIONS]"


def parse_options(args, properties):
    """
    Getopt the way pvesh sets it up: ``--name value``, ``--name=value`` or ``-name value``;
    a boolean without a value means 1; ``-list`` formats may repeat (joined with ','), arrays
    repeat. Returns (API parameters, format options).
    """
    params, formats = {}, {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg in ("-", "--"):
            raise PveError("400 too many arguments", usage=True)
        name, _, inline = arg.lstrip("-").partition("=")
        spec = properties.get(name)
        is_format = name in FORMAT_OPTIONS
        if spec is None and not is_format:
            raise PveError(f"Unknown option: {name}\n400 unable to parse option", usage=True)
        takes_value = not (spec or {}).get("type") == "boolean" and name not in (
            "noheader",
            "noborder",
            "quiet",
            "human-readable",
        )
        if inline:
            value = inline
        elif i + 1 < len(args) and (takes_value or not args[i + 1].startswith("-")):
            i += 1
            value = args[i]
        elif takes_value:
            raise PveError(f"Option {name} requires an argument\n400 unable to parse option", usage=True)
        else:
            value = None
        i += 1
        if is_format:
            formats[name] = value if name == "output-format" else parse_boolean(value)
            continue
        if spec.get("type") == "boolean":
            value = parse_boolean(value)
        if name in params:
            if spec.get("type") == "array":
                params[name] = [*params[name], value] if isinstance(params[name], list) else [params[name], value]
                continue
            if str(spec.get("format", "")).endswith("-list"):
                value = f"{params[name]},{value}"
        params[name] = [value] if spec.get("type") == "array" else value
    fmt = formats.get("output-format", "text")
    if fmt not in OUTPUT_FORMATS:
        raise PveError.parameters(
            {"output-format": f"value '{fmt}' does not have a value in the enumeration '{', '.join(OUTPUT_FORMATS)}'"}
        )
    return params, formats


def render(result, return_schema, formats):
    """The text pvesh prints for a result (nothing for methods returning null)."""
    if return_schema.get("type") == "null" or result is None:
        return ""
    fmt = formats.get("output-format", "text")
    if fmt == "json":
        return json.dumps(result, sort_keys=True, separators=(",", ":")) + "\n"
    if fmt == "json-pretty":
        return json.dumps(result, sort_keys=True, indent=3, separators=(",", " : ")) + "\n"
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(result, explicit_start=True, default_flow_style=False)
    if not isinstance(result, (list, dict)):
        return f"{result}\n"
    return render_table(result, return_schema, formats)


def render_table(result, return_schema, formats):
    if isinstance(result, dict):
        rows = [[key, _cell(result[key])] for key in _columns(return_schema, [result]) if key in result]
        header = ["key", "value"]
    else:
        if not result:
            return ""
        columns = _columns(return_schema.get("items", {}), result)
        rows = [[_cell(item.get(c)) for c in columns] for item in result]
        header = columns
    if formats.get("noheader"):
        header = None
    widths = [max(len(str(r[i])) for r in rows + ([header] if header else [])) for i in range(len(rows[0]))]

    def line(cells):
        padded = [str(c).ljust(w) for c, w in zip(cells, widths, strict=True)]
        return " ".join(padded).rstrip() if formats.get("noborder") else f"| {' | '.join(padded)} |"

    border = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = []
    if not formats.get("noborder"):
        out.append(border)
    if header:
        out.append(line(header))
        if not formats.get("noborder"):
            out.append(border.replace("-", "="))
    out += [line(r) for r in rows]
    if not formats.get("noborder"):
        out.append(border)
    return "\n".join(out) + "\n"


def _columns(schema, items):
    properties = schema.get("properties") or {}
    if properties:
        required = sorted(k for k, v in properties.items() if not v.get("optional"))
        return required + sorted(k for k, v in properties.items() if v.get("optional"))
    return sorted({key for item in items for key in item})


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def list_children(api, path):
    """``pvesh ls``: one row per child: capabilities (D r w c d) and name."""
    template, _ = api.schema.resolve(path)
    if template is None:
        raise PveError(f"no such resource '{path}'", exit_code=255)
    rows = []
    for child in api.schema.paths[template].get("children", []):
        name = child.rsplit("/", 1)[1]
        methods = api.schema.paths[child].get("methods", {})
        caps = ("D" if api.schema.paths[child].get("children") else "-") + "".join(
            flag if method in methods else "-"
            for flag, method in (("r", "GET"), ("w", "PUT"), ("c", "POST"), ("d", "DELETE"))
        )
        if name.startswith("{"):
            key = name[1:-1]
            for item in api.call("GET", path, {}):
                rows.append(f"{caps}        {item.get(key, item.get('id'))}")
        else:
            rows.append(f"{caps}        {name}")
    return "".join(f"{row}\n" for row in rows)


def usage(api, path, args):
    """``pvesh usage <path> [--verbose] [--returns] [--command get|set|create|delete]``."""
    options, i = {}, 0
    while i < len(args):
        name = args[i].lstrip("-")
        if name == "command":
            options["command"] = args[i + 1]
            i += 1
        elif name in ("verbose", "returns"):
            options[name] = True
        else:
            raise PveError(f"Unknown option: {name}\n400 unable to parse option", usage=True)
        i += 1
    template, path_params = api.schema.resolve(path)
    if template is None:
        raise PveError(f"no such resource '{path}'")
    out = []
    for command, method in COMMANDS.items():
        spec = api.schema.method(template, method)
        if spec is None or options.get("command", command) != command:
            continue
        properties = {k: v for k, v in spec["parameters"].get("properties", {}).items() if k not in path_params}
        required = " ".join(
            f"--{k} <{v.get('type', 'string')}>" for k, v in sorted(properties.items()) if not v.get("optional")
        )
        out.append(
            f"USAGE: pvesh {command} {path}"
            + (f" {required}" if required else "")
            + (" [OPTIONS]" if any(v.get("optional") for v in properties.values()) else "")
        )
        if options.get("verbose"):
            out.append("")
            out.append(f"  {spec.get('description', '')}")
            for name, prop in sorted(properties.items()):
                out.append(f"  --{name} {prop.get('typetext', '<' + prop.get('type', 'string') + '>')}")
                out.append(f"             {prop.get('description', '')}")
            out.append("")
        if options.get("returns"):
            out.append(json.dumps(spec.get("returns", {}), indent=3, sort_keys=True))
    return "".join(f"{line}\n" for line in out)


def log_call(argv, method, path, params, exit_code, started):
    log_path = os.environ.get("PVESIM_LOG")
    if not log_path:
        return
    record = {
        "argv": argv,
        "node": os.environ.get("PVESIM_NODE") or socket.gethostname(),
        "method": method,
        "path": path,
        "params": params,
        "exit": exit_code,
        "duration": round(time.monotonic() - started, 4),
    }
    with open(log_path, "a") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


def cluster_version(root):
    """PVESIM_VERSION, else the version the cluster records in PVESIM_ROOT/pvesim-version
    (all nodes of a cluster run one version), else 9.1."""
    if os.environ.get("PVESIM_VERSION"):
        return os.environ["PVESIM_VERSION"]
    recorded = pathlib.Path(root, "pvesim-version")
    return recorded.read_text().strip() if recorded.is_file() else "9.1"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    method, path, params, exit_code = None, None, {}, 0
    try:
        delay = float(os.environ.get("PVESIM_DELAY") or 0)
        if delay:
            time.sleep(delay)
        if len(argv) < 2:
            raise PveError("400 not enough arguments", usage=True)
        command, path, args = argv[0], argv[1], argv[2:]
        root = os.environ.get("PVESIM_ROOT")
        if not root:
            raise PveError("pvesim: PVESIM_ROOT is not set (the folder that stands for this cluster's /etc/pve)")
        api = Api(root, os.environ.get("PVESIM_NODE") or socket.gethostname(), cluster_version(root), node_facts())
        if command == "ls":
            sys.stdout.write(list_children(api, path))
            return 0
        if command == "usage":
            sys.stdout.write(usage(api, path, args))
            return 0
        if command not in COMMANDS:
            raise PveError(f"unknown command 'pvesh {command}'", usage=True)
        method = COMMANDS[command]
        _, path_params, method_schema = api.endpoint(method, path)
        properties = {
            k: v for k, v in method_schema["parameters"].get("properties", {}).items() if k not in path_params
        }
        params, formats = parse_options(args, properties)
        result = api.call(method, path, params)
        if isinstance(result, tuple):  # a task: its log goes to stdout before the UPID
            result, task_log = result
            sys.stdout.write("".join(f"{line}\n" for line in task_log))
        sys.stdout.write(render(result, method_schema.get("returns", {}), formats))
    except PveError as err:
        exit_code = err.exit_code
        message = err.message.rstrip("\n")
        if err.usage:
            message += f"\n\n{usage_line(argv[0] if argv else 'get')}"
        sys.stderr.write(message + "\n")
    finally:
        log_call(argv, method, path, params, exit_code, started)
    return exit_code
