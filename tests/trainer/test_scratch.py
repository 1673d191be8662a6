import os
import subprocess
import sys
from pathlib import Path

from trainer.scratch import own_scratch, sweep


def start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


def test_a_dead_workers_folder_is_swept_and_a_living_ones_and_strangers_are_not(tmp_path):
    tmp_path.chmod(0o700)
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE) as alive:
        living = tmp_path / f"{alive.pid}-{start_time(alive.pid)}"
        living.mkdir()
        reused = tmp_path / f"{alive.pid}-1"  # the same pid, started at another time: a dead worker's
        (reused / "train-x" / "photos").mkdir(parents=True)
        (reused / "train-x" / "photos" / "001.jpg").write_bytes(b"a member's photo")
        stranger = tmp_path / "12345"  # not a name this module gives
        stranger.mkdir()
        (tmp_path / "notes").mkdir()

        assert sweep(tmp_path) == [reused]
        assert not reused.exists() and living.is_dir() and stranger.is_dir() and (tmp_path / "notes").is_dir()
        alive.stdin.close()
    assert sweep(tmp_path) == [living]  # it has ended now


def test_a_workers_folder_starts_empty_and_private(tmp_path):
    root = tmp_path / "workers"
    folder = own_scratch(root)
    assert folder.parent == root and list(folder.iterdir()) == []
    assert folder.name == f"{os.getpid()}-{start_time(os.getpid())}"
    assert root.stat().st_mode & 0o077 == 0


def test_a_root_that_is_not_a_private_folder_of_ours_is_never_swept(tmp_path):
    """A link or a folder others may enter might hold anything named like a worker's: not ours to delete."""
    elsewhere = tmp_path / "jobs"
    (elsewhere / "1-1").mkdir(parents=True)  # named like a dead worker's folder
    link = tmp_path / "workers"
    link.symlink_to(elsewhere, target_is_directory=True)
    elsewhere.chmod(0o700)
    folder = own_scratch(link)
    assert (elsewhere / "1-1").is_dir() and not folder.is_relative_to(link)
    assert sweep(link) == []
    folder.rmdir()

    shared = tmp_path / "shared"
    (shared / "1-1").mkdir(parents=True)
    shared.chmod(0o755)
    assert sweep(shared) == [] and (shared / "1-1").is_dir()
