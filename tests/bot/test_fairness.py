from bot.jobs.fairness import fair_order
from bot.jobs.models import Job, JobNotes
from bot.members.owner import Owner
from contract import JobKind, JobState

ANN, BOB, CY = Owner(1, 10), Owner(1, 20), Owner(1, 30)


def job(job_id, owner):
    return Job(job_id, JobKind.GENERATE, owner, None, JobNotes(), JobState.QUEUED, 0, None, None, None, None, None,
               False, None, float(job_id), None, None)


def ids(jobs):
    return [j.id for j in jobs]


def test_members_take_turns_whatever_order_they_queued_in():
    queued = [job(1, ANN), job(2, ANN), job(3, ANN), job(4, BOB), job(5, BOB), job(6, CY)]
    assert ids(fair_order(queued, {})) == [1, 4, 6, 2, 5, 3]


def test_the_member_served_longest_ago_goes_first():
    queued = [job(1, ANN), job(2, BOB)]
    assert ids(fair_order(queued, {ANN: 100.0, BOB: 50.0})) == [2, 1]
    assert ids(fair_order(queued, {ANN: 100.0})) == [2, 1]  # never served beats served


def test_an_empty_queue_has_no_order():
    assert fair_order([], {ANN: 1.0}) == []
