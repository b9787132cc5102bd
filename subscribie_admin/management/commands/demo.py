"""`python manage.py demo`: run the whole product locally on embedded defaults.

Starts kubesim (the cluster), the CouchDB-compatible server, a qcluster and the admin, seeds
signup documents and imports them once, and prints the demo login last, after the server's
banner. It opens nothing by itself (no browser). Stops everything on Ctrl-C.
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from cluster.gateway import Cluster

DEMO_USERNAME = "demo"
# A second superuser: a whole-fleet upgrade needs approval by someone other than its creator.
APPROVER_USERNAME = "demo-approver"


class Command(BaseCommand):
    help = "Run kubesim, a CouchDB-compatible server, a qcluster and the admin, with demo data."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--signups", type=int, default=30, help="signup docs to seed")
        parser.add_argument("--ready-after", type=float, default=2.0, help="kubesim pod start")

    def handle(self, *args, host: str, port: int, signups: int, ready_after: float, **options):
        state_dir = Path(settings.BASE_DIR) / "var" / "demo"
        state_dir.mkdir(parents=True, exist_ok=True)
        self.children: list[subprocess.Popen] = []
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            self._run(state_dir, host, port, signups, ready_after)
        except KeyboardInterrupt:
            pass
        finally:
            self._stop_children()

    def _run(self, state_dir: Path, host: str, port: int, signups: int, ready_after: float):
        call_command("migrate", interactive=False, verbosity=0)
        password = self._demo_user()
        approver_password = self._demo_user(APPROVER_USERNAME)

        kubeconfig = state_dir / "kubeconfig"
        kube_line = self._start(
            [
                *(sys.executable, "-m", "kubesim", "serve"),
                *("--kubeconfig", str(kubeconfig), "--ready-after", str(ready_after)),
            ],
            ready=r"kubesim: serving (\S+)",
        )
        couch_line = self._start(
            ["node", str(Path(settings.BASE_DIR) / "couchserver" / "server.js"), "--port", "0"],
            ready=r"couchserver: serving (\S+)",
        )
        env = {
            "KUBECONFIG": str(kubeconfig),
            "COUCHDB_URL": couch_line.group(1),
            "DEBUG": "1",
            # Owner and staff notices are printed by the qcluster, not sent.
            "EMAIL_URL": "consolemail://",
            "SITE_PROGRESS_DEADLINE_SECONDS": os.environ.get(
                "SITE_PROGRESS_DEADLINE_SECONDS", "60"
            ),
        }
        os.environ.update(env)  # children inherit it; this process only seeds with it
        Cluster.connect(
            namespace=settings.SITES_NAMESPACE, kubeconfig=str(kubeconfig)
        ).ensure_namespace()

        from sites.demo_data import seed_signups  # late: needs COUCHDB_URL

        seeded = seed_signups(couchdb_url=env["COUCHDB_URL"], count=signups)
        self._manage("sync_signups")
        self._start([sys.executable, "manage.py", "qcluster"], ready=None)
        server = self._start_server(host, port)
        self._wait_for_http(host, port)
        self._show_server_banner(server)
        self.stdout.write(
            self.style.SUCCESS(
                "\nSubscribie fleet admin demo is running\n"
                f"  admin:     http://{host}:{port}/admin/\n"
                f"  login:     {DEMO_USERNAME} / {password}\n"
                f"  approver:  {APPROVER_USERNAME} / {approver_password}  (approves big upgrades)\n"
                "  emails:    printed by the qcluster (console backend)\n"
                f"  kubesim:   {kube_line.group(1)}  (kubectl --kubeconfig {kubeconfig} ...)\n"
                f"  couchdb:   {env['COUCHDB_URL']}  ({seeded} signup docs seeded)\n"
                "Press Ctrl-C to stop."
            )
        )
        self.stdout.flush()
        while all(child.poll() is None for child in self.children):
            time.sleep(0.5)
        raise CommandError("a demo process exited; stopping the others")

    def _demo_user(self, username: str = DEMO_USERNAME) -> str:
        """A fresh random password each run, printed once; the hash is all that is stored."""
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(username=username)
        user.email = user.email or f"{username}@example.com"
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        return password

    def _manage(self, *command: str) -> None:
        subprocess.run([sys.executable, "manage.py", *command], check=True, cwd=settings.BASE_DIR)

    def _start(self, argv: list[str], ready: str | None) -> re.Match | None:
        """Start a child; with ``ready``, wait for the line announcing it listens."""
        child = subprocess.Popen(
            argv,
            cwd=settings.BASE_DIR,
            stdout=subprocess.PIPE if ready else None,
            text=True,
        )
        self.children.append(child)
        if ready is None:
            return None
        for line in child.stdout:
            match = re.search(ready, line)
            if match:
                return match
        raise CommandError(f"{argv[0]} {argv[1]} exited before it was ready")

    def _start_server(self, host: str, port: int) -> queue.Queue:
        """Start runserver; its output is read into a queue (shown by ``_show_server_banner``)."""
        child = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"{host}:{port}"],
            cwd=settings.BASE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.children.append(child)
        lines: queue.Queue = queue.Queue()

        def read() -> None:
            for line in child.stdout:
                lines.put(line)

        threading.Thread(target=read, daemon=True).start()
        return lines

    def _show_server_banner(self, lines: queue.Queue, quiet: float = 0.5) -> None:
        """Print the server's start-up banner, then keep forwarding its log in the background,
        so the demo's login is the last thing on the screen when it is ready."""
        seen_quit = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=quiet if seen_quit else 1.0)
            except queue.Empty:
                if seen_quit:
                    break  # the banner (and the development-server warning) is out
                continue
            self.stdout.write(line, ending="")
            seen_quit = seen_quit or "Quit the server with" in line
        self.stdout.flush()

        def forward() -> None:
            while True:
                self.stdout.write(lines.get(), ending="")
                self.stdout.flush()

        threading.Thread(target=forward, daemon=True).start()

    def _wait_for_http(self, host: str, port: int, timeout: float = 30.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://{host}:{port}/healthz", timeout=1.0)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise CommandError(f"the admin did not answer on {host}:{port}")

    def _stop_children(self) -> None:
        for child in reversed(self.children):
            if child.poll() is None:
                child.terminate()
        for child in self.children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
