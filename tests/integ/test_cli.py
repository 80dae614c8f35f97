"""The sluice binary's command line: --help, --version, --check-config and usage errors."""

from __future__ import annotations

import json
import os
import subprocess

import sluicelab


def run(*args, env=None):
    return subprocess.run([str(sluicelab.sluice_binary()), *args], capture_output=True, text=True,
                          timeout=30, env=env)


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0
    assert "Usage: sluice --config FILE" in r.stdout and "SIGHUP" in r.stdout
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("sluice ")


def test_usage_errors_exit_2():
    for args, reason in [((), "--config FILE is required"), (("--bogus",), "unknown option"),
                         (("--config",), "needs a value"),
                         (("--config", "x", "--log-level", "loud"), "--log-level must be")]:
        r = run(*args)
        assert r.returncode == 2, args
        assert reason in r.stderr and "Usage:" in r.stderr


def test_check_config(tmp_path, tls):
    secret = tmp_path / "app.json"
    secret.write_text(json.dumps({"username": "app", "password": "Sup3r-secret-pw"}))
    cfg = {"node": {"id": "n1"},
           "tls": {"cert_file": str(tls.cert_file), "key_file": str(tls.key_file)},
           "proxies": [{"name": "main", "listen": {"port": 16033},
                        "auth": [{"secret": f"file:{secret}"}],
                        "targets": [{"host": "127.0.0.1", "port": 3306}]}]}
    path = tmp_path / "sluice.json"
    path.write_text(json.dumps(cfg))
    r = run("--config", str(path), "--check-config")
    assert r.returncode == 0, r.stderr
    assert "configuration is valid" in r.stdout

    # A field out of range is named; nothing else is started.
    cfg["proxies"][0]["connection_pool_config"] = {"max_connections_percent": 0}
    path.write_text(json.dumps(cfg))
    r = run("--config", str(path), "--check-config")
    assert r.returncode == 1
    assert "proxies[0].connection_pool_config.max_connections_percent" in r.stderr

    # A secret that cannot be resolved is reported, without any password in the message.
    del cfg["proxies"][0]["connection_pool_config"]
    cfg["proxies"][0]["auth"] = [{"secret": "env:SLUICE_TEST_UNSET_SECRET"}]
    path.write_text(json.dumps(cfg))
    env = {k: v for k, v in os.environ.items() if k != "SLUICE_TEST_UNSET_SECRET"}
    r = run("--config", str(path), "--check-config", env=env)
    assert r.returncode == 1
    assert "SLUICE_TEST_UNSET_SECRET" in r.stderr
    assert "Sup3r-secret-pw" not in r.stderr + r.stdout
