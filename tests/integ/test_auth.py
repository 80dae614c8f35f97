"""Front-end authentication: TLS requirement, the three password plugins, AuthSwitch and the
caching_sha2_password fast path.

The proxy has two users: `app` checked with mysql_native_password and `app_sha2` with
caching_sha2_password (both are ordinary native-password users on the database: the plugin is the
client-to-proxy exchange). A second proxy on the same node has require_tls=false to show what is
refused without TLS.
"""

from __future__ import annotations

import subprocess

import pymysql
import pytest

import sluicelab

ACCESS_DENIED = 1045


@pytest.fixture(scope="module")
def node(module_sluice_node, app_user, sha2_user):
    auth = [sluicelab.Auth(app_user), sluicelab.Auth(sha2_user, sluicelab.AUTH_CACHING_SHA2)]
    return module_sluice_node(proxies=[
        sluicelab.ProxySpec("main", auth=auth),
        sluicelab.ProxySpec("plain", auth=list(auth), require_tls=False),
    ])


def cli(node, user, password, *args, proxy="main", tls=True):
    p = node.proxy(proxy)
    cmd = [sluicelab.find_program("mariadb"), "-h", p.host, "-P", str(p.port), "-u", user,
           f"-p{password}", "--batch", "--skip-column-names"]
    cmd += ["--ssl", "--ssl-ca", str(node.tls.ca_file)] if tls else ["--skip-ssl"]
    cmd += list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def test_plain_client_refused_when_tls_required(node, app_user):
    with pytest.raises(pymysql.err.OperationalError) as ei:
        node.connect(app_user, ca_file=None)
    assert ei.value.args[0] == 3159
    r = cli(node, app_user.name, app_user.password, "-e", "SELECT 1", tls=False)
    assert r.returncode != 0 and "ERROR 3159 (08004)" in r.stderr


def test_plain_client_accepted_when_tls_optional(node, app_user):
    with node.connect(app_user, proxy="plain", ca_file=None) as c, c.cursor() as cur:
        cur.execute("SELECT CURRENT_USER(), @@ssl_cipher IS NOT NULL")
        user, _ = cur.fetchone()
        assert user.startswith(app_user.name + "@")


@pytest.mark.parametrize("which", ["native", "sha2"])
def test_wrong_password_denied(node, app_user, sha2_user, which):
    u = app_user if which == "native" else sha2_user
    with pytest.raises(pymysql.err.OperationalError) as ei:
        node.connect(u.name, u.password + "x")
    assert ei.value.args[0] == ACCESS_DENIED
    assert f"Access denied for user '{u.name}'" in ei.value.args[1]
    # An unknown user gets the same answer: the proxy does not reveal which users exist.
    with pytest.raises(pymysql.err.OperationalError) as ei:
        node.connect("nobody_here", "whatever")
    assert ei.value.args[0] == ACCESS_DENIED


def test_auth_switch_both_ways(node, app_user, sha2_user):
    # The greeting offers mysql_native_password; the sha2 user is switched to caching_sha2_password
    # (AuthSwitchRequest) and the CLI follows. A client that starts with caching_sha2_password for
    # the native user is switched back the other way.
    r = cli(node, sha2_user.name, sha2_user.password, "-e", "SELECT CURRENT_USER()")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(sha2_user.name + "@")
    r = cli(node, app_user.name, app_user.password, "--default-auth=caching_sha2_password", "-e",
            "SELECT CURRENT_USER()")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(app_user.name + "@")


def test_caching_sha2_full_then_fast_path(node, sha2_user):
    # Without TLS and before any full authentication, the password cannot be checked (it would have
    # to travel in clear): refused.
    r = cli(node, sha2_user.name, sha2_user.password, "-e", "SELECT 1", proxy="plain", tls=False)
    assert r.returncode != 0 and "ERROR 1045 (28000)" in r.stderr
    # The first login over TLS is a full authentication (password sent inside TLS); the proxy then
    # caches the verifier (per proxy user), so a later login without TLS succeeds by the fast path
    # alone, which is exactly what a MySQL 8 server does.
    with node.connect(sha2_user, proxy="plain") as c, c.cursor() as cur:
        cur.execute("SELECT 1")
    r = cli(node, sha2_user.name, sha2_user.password, "-e", "SELECT 'fast'", proxy="plain", tls=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "fast"
    r = cli(node, sha2_user.name, "wrong", "-e", "SELECT 1", proxy="plain", tls=False)
    assert r.returncode != 0 and "ERROR 1045 (28000)" in r.stderr


def test_clear_password_only_inside_tls(node, app_user):
    r = cli(node, app_user.name, app_user.password, "--default-auth=mysql_clear_password", "-e",
            "SELECT 'clear'")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "clear"
    r = cli(node, app_user.name, "wrong", "--default-auth=mysql_clear_password", "-e", "SELECT 1")
    assert r.returncode != 0 and "ERROR 1045 (28000)" in r.stderr
    # Without TLS the password would travel in clear: refused even when it is right.
    r = cli(node, app_user.name, app_user.password, "--default-auth=mysql_clear_password", "-e",
            "SELECT 1", proxy="plain", tls=False)
    assert r.returncode != 0 and "ERROR 1045 (28000)" in r.stderr
