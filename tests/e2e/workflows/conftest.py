"""The pipeline run for real: this checkout's workflows under act, against a staging guest.

One session-wide "GitHub": a forge (git + REST API on 127.0.0.1, forge.py) holding a
scratch copy of this checkout as ``acme/deployer``, act's artifact server shared by every
run, and one staging guest set up by ``deployer host setup``. The scenarios run in file
order and build on each other (push to main, then its tag, then ...), as a repository's
history does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git
from tests.e2e.workflows.act import ACTIONS_VAR, DEFAULT_ACTIONS, Act, offline_actions, tool_cache_python
from tests.e2e.workflows.forge import Forge, serve
from tests.notify.conftest import Mailbox, Webhook

ROOT = Path(__file__).resolve().parents[3]
REPO = "acme/deployer"
ORIGIN = f"https://github.com/{REPO}.git"
GUEST = 30  # relative to $DEPLOYER_STAGING_BASE_INDEX
#: recognisable secret values: none may ever reach a log
DOTENV_SECRET = "wf-dotenv-s3cret-7c1e0a"
HOOK_TOKEN = "wf-hook-t0ken-55aa91"
MAIL_PASSWORD = "wf-mail-pa55-0b7d"
#: what the scratch repository's deploy.toml changes for fast runs (the service's own config)
CONFIG_EDITS = {"watch = 60": "watch = 3", "timeout = 30": "timeout = 15"}
NOTIFY = """
[[notify]]
kind = "webhook"
url_from_variable = "WEBHOOK_URL"
on = ["success", "failure"]

[[notify]]
kind = "email"
url_from_variable = "MAIL_URL"
on = ["failure"]
"""


def snapshot(dest: Path) -> str:
    """Clone this checkout into ``dest`` with the work tree's uncommitted changes to tracked
    files as one more commit (what is being tested is what is on disk); returns the sha of
    the commit cloned (this checkout's HEAD then)."""
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(dest)], check=True)
    cloned = git(dest, "rev-parse", "HEAD")
    stash = subprocess.run(
        ["git", "-C", str(ROOT), "stash", "create"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if stash:
        subprocess.run(["git", "-C", str(dest), "fetch", "-q", str(ROOT), stash], check=True)
        subprocess.run(["git", "-C", str(dest), "read-tree", "-um", "HEAD", "FETCH_HEAD"], check=True)
        git(dest, "commit", "-qm", "work tree")
    git(dest, "checkout", "-q", "-B", "main")
    git(dest, "remote", "set-url", "origin", ORIGIN)
    return cloned


@pytest.fixture(scope="session")
def actions_folder() -> None:
    """The offline actions, or GitHub: no silent skip when neither is there."""
    if not offline_actions() and os.environ.get(ACTIONS_VAR):
        pytest.fail(f"{ACTIONS_VAR}={os.environ[ACTIONS_VAR]}: no actions/<name>@<sha> folders there")
    if not offline_actions():
        probe = subprocess.run(
            ["git", "ls-remote", "https://github.com/actions/checkout", "HEAD"],
            capture_output=True,
            timeout=20,
        )
        if probe.returncode != 0:
            pytest.fail(
                f"the workflows' actions are neither in {DEFAULT_ACTIONS} nor reachable on GitHub: "
                f"set {ACTIONS_VAR} to a folder of actions/<name>@<sha> copies"
            )


@pytest.fixture(scope="session")
def receivers():
    hook, box = Webhook(), Mailbox()
    yield hook, box
    hook.close()
    box.close()


@pytest.fixture(scope="session")
def forge(tmp_path_factory):
    root = tmp_path_factory.mktemp("forge")
    hub = Forge(git_root=root / "git", artifact_dir=root / "artifacts", repo=REPO)
    hub.artifact_dir.mkdir()
    server = serve(hub)
    yield hub
    server.shutdown()
    server.server_close()


class Pipeline:
    """The scratch repository (acme/deployer) and act, configured for one staging guest."""

    def __init__(self, work: Path, forge: Forge, guest, receivers, python: str):
        self.forge, self.guest = forge, guest
        self.repo = work / "acme-deployer"
        self.cloned = snapshot(self.repo)  # a commit the forge has, as main's ancestor
        config = (self.repo / "deploy.toml").read_text()
        for old, new in CONFIG_EDITS.items():
            assert old in config, f"deploy.toml has no {old!r}"
            config = config.replace(old, new)
        (self.repo / "deploy.toml").write_text(config + NOTIFY)
        git(self.repo, "commit", "-qam", "deploy.toml: the staging guest's timings and notifications")
        self.bare = forge.repository(REPO)
        self.push("main")
        hook, box = receivers
        self.hook, self.box = hook, box
        self.secrets = {
            "DEPLOY_SSH_KEY": Path(guest.key_path).read_text(),
            "DEPLOY_KNOWN_HOSTS": Path(guest.known_hosts_path).read_text(),
            "DEPLOY_DOTENV": (
                "HTTP_PORT=8080\nHTTP_HOST=127.0.0.1\nSTATE_DIR=/opt/tg_video_streamer/shared/sessions\n"
                f"API_TOKEN={DOTENV_SECRET}\n"
            ),
            "DEPLOY_NOTIFY_URLS": (
                f"WEBHOOK_URL=json://127.0.0.1:{hook.port}/hooks/{HOOK_TOKEN}\n"
                f"MAIL_URL=mailto://deployer:{MAIL_PASSWORD}@127.0.0.1:{box.port}"
                "?to=ops@example.invalid&from=deployer@example.invalid&mode=insecure\n"
            ),
        }
        # the hosts as a variable (they may be a secret too): the summary names them
        self.variables = {"DEPLOY_HOSTS": f"{guest.user}@{guest.host}:{guest.port}"}
        home = work / "act-home"
        tool_cache_python(home / "act", python)
        self.act = Act(
            workdir=self.repo,
            repository=REPO,
            forge=forge,
            home=home,
            secrets=self.secrets,
            variables=self.variables,
        )

    def push(self, *refs: str) -> None:
        """Push branches/tags of the scratch repository to the forge (as `git push` would)."""
        specs = [
            f"+refs/heads/{r}:refs/heads/{r}" if not r.startswith("v") else f"+refs/tags/{r}:refs/tags/{r}"
            for r in refs
        ]
        subprocess.run(["git", "-C", str(self.repo), "push", "-q", str(self.bare), *specs], check=True)

    def head(self) -> str:
        return git(self.repo, "rev-parse", "HEAD")

    def secret_values(self) -> list[str]:
        """What must never be printed: every secret act was given, whole; each line of the
        private key and of the notify URLs; the recognisable values inside the .env and URLs."""
        values = {self.forge.token, DOTENV_SECRET, HOOK_TOKEN, MAIL_PASSWORD}
        values.update(v.strip() for v in self.secrets.values())
        for name in ("DEPLOY_SSH_KEY", "DEPLOY_SIGNING_KEY", "DEPLOY_NOTIFY_URLS"):
            values.update(line.strip() for line in self.secrets[name].splitlines() if "-----" not in line)
        return sorted(v for v in values if v)


@pytest.fixture(scope="session")
def pipeline(actions_folder, staging_host_factory, forge, receivers, tmp_path_factory):
    """The guest trusts only the CI signing key (DEPLOY_SIGNING_KEY): every artifact the
    workflows deploy must have been signed by their build steps."""
    from deployer.provision import Trust
    from tests.conftest import target_python
    from tests.staging.guest import host_setup

    work = tmp_path_factory.mktemp("pipeline")
    signing_key = work / "signing_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ci", "-f", str(signing_key)], check=True
    )
    guest = staging_host_factory(GUEST)
    host_setup(
        guest,
        ROOT / "deploy.toml",
        authorized_key=Path(guest.key_path + ".pub").read_text(),
        trust=Trust(keys=(f"{signing_key}.pub",)),
    )
    found = Pipeline(work, forge, guest, receivers, shutil.which(target_python()) or target_python())
    found.secrets["DEPLOY_SIGNING_KEY"] = signing_key.read_text()
    return found
