"""The runner's policy on its own: plain data in, decisions out. No Ray, no database."""

from __future__ import annotations

import itertools

import pytest

from bot.jobs import policy
from bot.jobs.models import Job, JobNotes
from bot.jobs.policy import Replica, Worker
from bot.members.owner import Owner
from contract import AdapterRef, GenerateRequest, JobKind, JobState, TrainRequest

ANN, BOB, CY = Owner(1, 1), Owner(1, 2), Owner(1, 3)
CARD_A, CARD_B = ("node-a", ("0",)), ("node-b", ("0",))
_ids = itertools.count(1)


def job(kind: JobKind, owner: Owner, adapters=()) -> Job:
    request: TrainRequest | GenerateRequest
    if kind is JobKind.TRAIN:
        request = TrainRequest(base="tiny", token="ABCD12")
    else:
        refs = tuple(AdapterRef(name, f"id-{name}") for name in adapters)
        request = GenerateRequest(base="tiny", prompt="a cat", adapters=refs)
    return Job(next(_ids), kind, owner, request, JobNotes(), JobState.QUEUED, 0, None, None, None, None, None, False,
               None, 0.0, None, None)


def cards(*, trainer_busy: dict | None = None, generator_busy: dict | None = None, held: dict | None = None):
    trainer_busy, generator_busy, held = trainer_busy or {}, generator_busy or {}, held or {}
    trainers = [Worker(f"t-{n}", location=loc, job_id=trainer_busy.get(n)) for n, loc in (("a", CARD_A), ("b", CARD_B))]
    generators = [Replica(f"g-{n}", location=loc, job_id=generator_busy.get(n), adapters=set(held.get(n, ())))
                  for n, loc in (("a", CARD_A), ("b", CARD_B))]
    return trainers, generators


def plan(pictures=(), trainings=(), *, trainers, generators, policy_name="share", owners=(), pausing=()):
    return policy.plan(pictures=list(pictures), trainings=list(trainings), last_started={},
                       training_owners=set(owners), trainers=trainers, generators=generators, policy=policy_name,
                       pausing=set(pausing))


def test_a_picture_goes_to_the_generator_that_holds_its_adapter():
    trainers, generators = cards(held={"b": {"ann"}})
    decided = plan([job(JobKind.GENERATE, ANN, adapters=["ann"])], trainers=trainers, generators=generators)
    assert [(j.owner, r.name) for j, r in decided.generations] == [(ANN, "g-b")]


def test_under_share_pictures_and_training_run_side_by_side():
    trainers, generators = cards(trainer_busy={"a": 7, "b": 8})
    decided = plan([job(JobKind.GENERATE, ANN)], trainers=trainers, generators=generators)
    assert len(decided.generations) == 1 and decided.pause == []


def test_under_yield_a_training_is_asked_once_to_pause_and_the_picture_waits():
    trainers, generators = cards(trainer_busy={"a": 7, "b": 8})
    picture = job(JobKind.GENERATE, ANN)
    first = plan([picture], trainers=trainers, generators=generators, policy_name="yield")
    assert first.generations == [] and [t.job_id for t in first.pause] == [7]
    again = plan([picture], trainers=trainers, generators=generators, policy_name="yield", pausing={7})
    assert again.pause == [] and again.generations == []


def test_under_yield_a_picture_further_back_still_asks_its_own_card_to_pause():
    trainers, generators = cards(trainer_busy={"a": 7, "b": 8}, held={"b": {"bob"}})
    backlog = [job(JobKind.GENERATE, ANN), job(JobKind.GENERATE, ANN), job(JobKind.GENERATE, BOB, adapters=["bob"])]
    decided = plan(backlog, trainers=trainers, generators=generators, policy_name="yield")
    assert [t.job_id for t in decided.pause] == [7, 8] and decided.pictures_settled
    front = plan(backlog[:2], trainers=trainers, generators=generators, policy_name="yield")
    assert [t.job_id for t in front.pause] == [7] and not front.pictures_settled  # the rest could still matter


def test_under_yield_training_keeps_off_cards_with_pictures_and_empties_the_generator_first():
    trainers, generators = cards(generator_busy={"a": 3})
    decided = plan(trainings=[job(JobKind.TRAIN, ANN)], trainers=trainers, generators=generators, policy_name="yield")
    assert [(j.owner, t.name) for j, t in decided.trainings] == [(ANN, "t-b")]
    assert [g.name for g in decided.offload] == ["g-b"]


def test_under_share_a_picture_backlog_does_not_keep_an_idle_trainer_from_training():
    trainers, generators = cards()
    backlog = [job(JobKind.GENERATE, owner) for owner in (ANN, BOB, CY, ANN, BOB)]
    decided = plan(backlog, [job(JobKind.TRAIN, CY)], trainers=trainers, generators=generators)
    assert len(decided.generations) == 2
    assert [(j.owner, t.name) for j, t in decided.trainings] == [(CY, "t-a")]


def test_one_training_per_member_and_members_take_turns():
    trainers, generators = cards()
    ann1, ann2, bob = job(JobKind.TRAIN, ANN), job(JobKind.TRAIN, ANN), job(JobKind.TRAIN, BOB)
    decided = plan(trainings=[ann1, ann2, bob], trainers=trainers, generators=generators)
    assert [j.id for j, _ in decided.trainings] == [ann1.id, bob.id]
    busy = plan(trainings=[ann2], trainers=trainers, generators=generators, owners={ANN})
    assert busy.trainings == []


def test_lost_workers_get_nothing_and_no_gpu_means_everything_waits():
    trainers, generators = cards()
    decided = plan([job(JobKind.GENERATE, CY)], [job(JobKind.TRAIN, CY)], trainers=[], generators=[])
    assert decided.generations == decided.trainings == []
    one = plan([job(JobKind.GENERATE, CY)], trainers=trainers[1:], generators=generators[1:])
    assert [r.name for _, r in one.generations] == ["g-b"]


@pytest.mark.parametrize(
    ("setting", "sizes", "expected"),
    [("auto", [80.0, 80.0], "share"), ("auto", [80.0, 24.0], "yield"), ("auto", [None], "share"),
     ("yield", [80.0], "yield"), ("share", [24.0], "share")],
)
def test_the_sharing_policy_follows_the_smallest_card(setting, sizes, expected):
    assert policy.sharing_policy(setting, sizes, share_min_gib=40) == expected


def test_positions_follow_the_fair_order():
    jobs = [job(JobKind.GENERATE, owner) for owner in (ANN, ANN, ANN, BOB, BOB)]
    places = policy.positions(jobs, last_started={})
    assert [places[j.id] for j in jobs] == [1, 3, 5, 2, 4]
