"""What crosses between the bot and the trainer, written down once.

The bot (discord.py, no torch) and the trainer (torch, no discord) both import
this package and nothing else of each other's. It holds:

- `limits`: every range a request is checked against; Discord's option ranges come from here.
- `requests`: what the bot asks a GPU worker to do (`TrainRequest`, `GenerateRequest`), frozen,
  self-validating, and serialised to and from plain data in one place (`to_data`/`from_data`).
- `events`: what a worker reports back while and after it works, and the job and run states.
- `layout`: where a run's files live and what they are called, on either side.
- `subjects`: what an adapter learns (a person or a style), and each subject's training defaults.

Nothing here imports torch, diffusers, discord or ray: it must load in both processes.
"""

from contract.events import (
    CaptionsWritten,
    CheckpointSaved,
    Event,
    JobKind,
    JobState,
    Phase,
    PhaseName,
    Picture,
    PicturesMade,
    Report,
    RunStatus,
    SampleTaken,
    Step,
    TrainingDone,
)
from contract.layout import ADAPTER_FILENAME, LOOKS_FILENAME, RunLayout
from contract.requests import (
    AdapterRef,
    GenerateRequest,
    ReferenceRef,
    RequestError,
    SourcePicture,
    TrainingFiles,
    TrainRequest,
    adapter_identity,
    picture_identity,
    reference_identity,
)

__all__ = [
    "ADAPTER_FILENAME",
    "LOOKS_FILENAME",
    "AdapterRef",
    "CaptionsWritten",
    "CheckpointSaved",
    "Event",
    "GenerateRequest",
    "JobKind",
    "JobState",
    "Phase",
    "PhaseName",
    "Picture",
    "PicturesMade",
    "Report",
    "ReferenceRef",
    "RequestError",
    "RunLayout",
    "RunStatus",
    "SampleTaken",
    "SourcePicture",
    "Step",
    "TrainRequest",
    "TrainingDone",
    "TrainingFiles",
    "adapter_identity",
    "picture_identity",
    "reference_identity",
]
