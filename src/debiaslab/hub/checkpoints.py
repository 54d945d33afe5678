"""Fine-tuning checkpoints that outlive a Kaggle session: pushed to the Hub as they are saved.

An interactive Kaggle session's ``/kaggle/working`` is gone when the session ends, and with it
the checkpoints a rerun would resume from. With a repo and a token, :class:`HubCheckpoints`
uploads each checkpoint as it is saved to the repo's ``last-checkpoint/`` folder (what
transformers' ``hub_strategy="checkpoint"`` does), and a new session restores it before
training, so :func:`debiaslab.mitigation.finetune.finetune` resumes from it. Without them,
:func:`checkpoint_store` says plainly where the checkpoints are and what keeps them.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from debiaslab.env import detect_platform
from debiaslab.hub.client import connect, read_token
from debiaslab.hub.scrub import check_repo_id, hub_errors

log = logging.getLogger(__name__)

FOLDER = "last-checkpoint"
STATE = "trainer_state.json"
LOST = (
    "checkpoints stay in this session's working folder. An interactive Kaggle session's "
    "/kaggle/working is lost when it ends: 'Save Version → Save & Run All' runs the notebook "
    "as a batch job whose output is kept, or set HUB_REPO (and the HF_TOKEN secret) to push "
    "each checkpoint to the Hub as it is saved and resume from it in a new session."
)


class HubCheckpoints:
    """Checkpoints in a (private) Hub repo's ``last-checkpoint/`` folder."""

    def __init__(self, repo_id: str, token: str, api: Any = None) -> None:
        check_repo_id(repo_id)
        self.repo_id, self.token, self.api = repo_id, token, connect(api)
        with hub_errors("create", repo_id, token):
            self.api.create_repo(repo_id, private=True, exist_ok=True, token=token)

    def save(self, checkpoint: Path, step: int) -> None:
        """Upload one saved checkpoint folder as the repo's last checkpoint."""
        with tempfile.TemporaryDirectory(prefix=".debiaslab-ckpt-") as tmp:
            shutil.copytree(checkpoint, Path(tmp) / FOLDER)
            with hub_errors("push a checkpoint to", self.repo_id, self.token):
                self.api.upload_folder(
                    repo_id=self.repo_id,
                    folder_path=tmp,
                    commit_message=f"checkpoint at step {step}",
                    token=self.token,
                )
        log.info("checkpoint %d pushed to %s", step, self.repo_id)

    def restore(self, checkpoints: Path) -> Path | None:
        """Put the repo's last checkpoint at ``checkpoints/checkpoint-<step>``; ``None`` when the
        repo holds none yet."""
        with hub_errors("download a checkpoint from", self.repo_id, self.token):
            snapshot = Path(
                self.api.snapshot_download(
                    self.repo_id, token=self.token, allow_patterns=[f"{FOLDER}/*"]
                )
            )
        source = snapshot / FOLDER
        if not (source / STATE).is_file():
            return None
        step = int(json.loads((source / STATE).read_text("utf-8"))["global_step"])
        target = checkpoints / f"checkpoint-{step}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)  # links in the snapshot become files here
        log.info("restored checkpoint %d from %s", step, self.repo_id)
        return target


def checkpoint_store(
    repo_id: str | None, *, api: Any = None, say: Callable[[str], None] = print
) -> HubCheckpoints | None:
    """A :class:`HubCheckpoints` for ``repo_id`` when a token is there; else ``None``, with a
    plain note of what happens to the checkpoints (on Kaggle)."""
    token = read_token()
    if repo_id and token:
        say(f"checkpoints go to the Hub as they are saved: {repo_id} ({FOLDER}/)")
        return HubCheckpoints(repo_id, token, api)
    if repo_id:
        say(f"HUB_REPO is set but no HF_TOKEN secret: {LOST}")
    elif detect_platform() == "kaggle":
        say(f"HUB_REPO is not set: {LOST}")
    return None
