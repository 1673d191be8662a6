import torch

from trainer.errors import DatasetError, FileProblem
from trainer.worker import OUT_OF_MEMORY, describe_failure


def test_failures_are_told_in_a_members_words():
    bad_photo = DatasetError([FileProblem("me.jpg", "the file is empty (0 bytes)")])
    assert describe_failure(bad_photo, "training") == str(bad_photo)
    out_of_memory = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert describe_failure(out_of_memory, "training") == OUT_OF_MEMORY
    surprise = describe_failure(KeyError("transformer_blocks.0"), "training")
    assert surprise.startswith("training failed unexpectedly (KeyError") and "\n" not in surprise
