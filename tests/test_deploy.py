"""The deployment files: systemd units that `systemd-analyze verify` accepts, and a
gunicorn.conf.py that gunicorn loads (docs/deploy.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
INSTALLED_AT = "/srv/consent-center"  # where the units expect the checkout

def verify(folder: Path, names: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(folder / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def installed_copy(tmp_path: Path) -> list[str]:
    """The units as installed on a node whose checkout is this one (the commands they run
    must exist), with the template started as instance 1."""
    names = []
    for unit in sorted(UNITS.iterdir()):
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED_AT, str(ROOT)))
        names.append(unit.name.replace("@.", "@1."))
    return names


def test_every_unit_passes_systemd_analyze_verify(tmp_path):
    names = installed_copy(tmp_path)
    assert {"consent-center-web.service", "consent-center-worker@1.service",
            "consent-center-daily.service", "consent-center-daily.timer",
            "consent-center-metrics.service"} <= set(names)  # fmt: skip
    result = verify(tmp_path, names)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_the_check_fails_on_a_broken_unit(tmp_path):
    installed_copy(tmp_path)
    unit = tmp_path / "consent-center-web.service"
    unit.write_text(unit.read_text().replace("ExecStart=", "ExecStrat="))
    result = verify(tmp_path, ["consent-center-web.service"])
    assert result.returncode != 0 and "ExecStrat" in result.stderr


def test_gunicorn_loads_the_configuration():
    env = dict(os.environ, CONSENT_CENTER_ENV="testing")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--check-config", "-c", "gunicorn.conf.py",
         "wsgi:app"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_every_setting_read_from_the_environment_is_in_the_readme():
    import re

    sources = (ROOT / "consent_center" / "config.py").read_text() + (
        ROOT / "gunicorn.conf.py"
    ).read_text()
    names = set(re.findall(r'_(?:str|int|bool)\(\s*"([A-Z0-9_]+)"', sources))
    names |= set(re.findall(r'os\.environ\.get\("([A-Z0-9_]+)"', sources))
    assert {"LOG_FORMAT", "METRICS_DIR", "METRICS_BIND", "GUNICORN_BIND"} <= names
    readme = (ROOT / "README.md").read_text()
    assert sorted(n for n in names if f"`{n}`" not in readme) == []
