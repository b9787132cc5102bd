"""`make demo` runs `manage.py demo`: the admin comes up and the printed login works."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def demo(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_VERSION", "KUBECONFIG")}
    env.update(
        DEBUG="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        Q_BROKER="orm",
        SITE_DEPLOY_WATCH_SECONDS="5",
    )
    process = subprocess.Popen(
        [
            *(sys.executable, "manage.py", "demo", "--port", str(port)),
            *("--signups", "8", "--ready-after", "0.1"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    deadline = time.monotonic() + 120
    try:
        for line in process.stdout:
            lines.append(line)
            match = re.search(r"login:\s+(\S+) / (\S+)", line)
            if match:
                yield port, match.group(1), match.group(2), lines
                break
            if time.monotonic() > deadline:
                break
        else:
            pytest.fail("demo exited before printing the login:\n" + "".join(lines))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def test_demo_serves_the_admin_and_the_printed_login_works(demo):
    port, username, password, _output = demo
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as http:
        page = http.get("/admin/login/")
        assert page.status_code == 200
        token = http.cookies["csrftoken"]
        wrong = http.post(
            "/admin/login/",
            data={"username": username, "password": "wrong", "csrfmiddlewaretoken": token},
        )
        assert wrong.status_code == 200 and "correct username" in wrong.text
        login = http.post(
            "/admin/login/?next=/admin/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{base}/admin/login/"},
        )
        assert login.status_code == 302, login.text[:500]
        index = http.get("/admin/")
        assert index.status_code == 200 and "Subscribie fleet admin" in index.text
        signups = http.get("/admin/sites/signup/")
        assert signups.status_code == 200
        # Seeded and synced: valid signups pending review, invalid ones kept as rejected.
        assert "pending" in signups.text and "rejected" in signups.text


def test_demo_prints_the_login_last_after_the_servers_banner(demo):
    _port, _username, _password, output = demo
    text = "".join(output)
    assert "Starting development server at" in text and "Quit the server with" in text
    assert text.index("Quit the server with") < text.index("login:")
    assert text.index("development server. Do not use it in a production") < text.index("login:")
