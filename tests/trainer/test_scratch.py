import os
import subprocess
import sys

from trainer.scratch import own_scratch, sweep


def test_a_dead_workers_folder_is_swept_and_a_living_ones_and_strangers_are_not(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    left = tmp_path / dead.stdout.strip()
    (left / "train-x" / "photos").mkdir(parents=True)
    (left / "train-x" / "photos" / "001.jpg").write_bytes(b"a member's photo")
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE) as alive:
        living = tmp_path / str(alive.pid)
        living.mkdir()
        stranger = tmp_path / "notes"
        stranger.mkdir()
        (stranger / "keep.txt").write_text("not doppel's")

        assert sweep(tmp_path) == [left]
        assert not left.exists() and living.is_dir() and (stranger / "keep.txt").is_file()
        alive.stdin.close()


def test_a_workers_folder_starts_empty_and_private(tmp_path):
    earlier = tmp_path / str(os.getpid())  # what an earlier process with this pid left
    earlier.mkdir()
    (earlier / "adapter.safetensors").write_bytes(b"someone's adapter")
    folder = own_scratch(tmp_path)
    assert folder == earlier and list(folder.iterdir()) == []
    assert folder.stat().st_mode & 0o077 == 0
