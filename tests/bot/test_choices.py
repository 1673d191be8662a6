"""The recommended step's button comes first, from the worker's TrainingDone through the sink to the view."""

from __future__ import annotations

from bot.exts.training.choices import choice_view
from bot.jobs.models import TrainingResult
from bot.jobs.sink import ArtifactSink
from contract import TrainingDone


async def test_the_recommended_steps_button_comes_first_and_says_so():
    labels = [item.item.label for item in choice_view(7, (10, 20, 30), 30, recommended=20).children]
    assert labels == ["Use step 20 (recommended)", "Use step 10", "Keep step 30 (last)", "Train more"]
    plain = [item.item.label for item in choice_view(7, (10, 20, 30), 30).children]
    assert plain == ["Use step 10", "Use step 20", "Keep step 30 (last)", "Train more"]
    both = [item.item.label for item in choice_view(7, (10, 30), 30, recommended=30).children]
    assert both[0] == "Keep step 30 (recommended, last)"


async def test_the_recommendation_is_kept_with_the_result_only_where_it_can_be_chosen(tmp_path):
    sink = ArtifactSink(tmp_path)
    layout = sink.layout(1)
    for step in (10, 20, 30):
        layout.step_adapter(step).parent.mkdir(parents=True, exist_ok=True)
        layout.step_adapter(step).write_bytes(b"adapter")
    done = TrainingDone(b"adapter", {"steps": "30"}, None, (0, 10, 20, 30), (None, 0.5, 0.8, 0.6), 20)
    result = await sink.training_done(1, done)
    assert result.choices == (10, 20, 30) and result.recommended == 20
    assert TrainingResult.from_data(result.to_data()).recommended == 20  # kept in the job's record
    layout.step_adapter(20).unlink()  # chosen away meanwhile, say: nothing to recommend
    assert (await sink.training_done(1, done)).recommended is None
