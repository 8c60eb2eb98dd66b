"""The checkout's Salt configuration (etc/) for daemons that do not run from the checkout root."""

import pathlib

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]


def checkout_config(name, **overrides):
    """
    etc/<name> (``master`` or ``minion``) with its checkout-relative paths made absolute and
    without ``root_dir`` (each daemon gets its own), updated with ``overrides``.
    """
    config = yaml.safe_load((REPO / "etc" / name).read_text())
    config.pop("root_dir")
    for roots in ("file_roots", "pillar_roots"):
        if roots in config:
            config[roots] = {env: [str(REPO / path) for path in paths] for env, paths in config[roots].items()}
    for dirs in ("runner_dirs", "module_dirs"):
        if dirs in config:
            config[dirs] = [str(REPO / path) for path in config[dirs]]
    for reaction in config.get("reactor", []):
        for tag, files in reaction.items():
            reaction[tag] = [str(REPO / path) for path in files]
    return {**config, **overrides}
