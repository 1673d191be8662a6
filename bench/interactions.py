"""How fast the real bot acknowledges a burst of /imagine, through the local Discord stand-in.

    python bench/interactions.py [--n 200]

Fires N /imagine at once from N members, and measures, on the stand-in's own
clock and thread, the time from dispatching each interaction to receiving its
acknowledgement (Discord allows 3 s). The pictures are then made on the tiny
model with a local Ray; the benchmark waits for none of them.
Last line: n=.. p50_ms=.. p99_ms=.. max_ms=.. late=K (K acknowledgements later than 3 s) load=..
(the 1-minute load average as the burst ended: on a shared machine, what the figures were measured under).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ["BASE_MODEL"] = "tiny"

DEADLINE_MS = 3000
# Start-up starts a local Ray and waits for its workers: 5-10 s on a free machine, several times that on a busy one.
READY_TIMEOUT_S = 180


async def burst(n: int, scratch: Path) -> list[float]:
    from bot.app import DoppelBot
    from bot.settings import BotSettings
    from contract import JobState
    from fake_discord.api import FakeDiscord
    from fake_discord.fixtures import running_bot

    with FakeDiscord() as fake:
        guild = fake.add_guild("Team")
        members = [guild.add_member(f"member{k}") for k in range(n)]
        channel = guild.add_text_channel("general")
        settings = BotSettings(
            discord_token=fake.token,
            data_dir=scratch / "data",
            ray_num_gpus=1,
            gpu_sharing="share",
            attachment_hosts=[urlsplit(fake.base_url).netloc],
            attachment_schemes=["http"],
        )
        bot = DoppelBot(settings)
        async with running_bot(fake, bot, ready_timeout=READY_TIMEOUT_S, fail_on_bot_errors=False):
            interactions = await asyncio.gather(
                *(
                    fake.slash(member, channel, "imagine", options={"prompt": "a lighthouse at dusk"})
                    for member in members
                )
            )
            await asyncio.gather(*(i.acknowledged(timeout=30) for i in interactions))
            latencies = [i.ack_ms for i in interactions]
            # The pictures are not what is measured: drop those still waiting, then stop.
            for job in await bot.jobs.in_state(JobState.QUEUED):
                await bot.runner.cancel(job.id)
            bot.runner.transport.remove(bot.runner.trainers + bot.runner.generators)
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as scratch:
        os.environ["MODEL_CACHE_DIR"] = str(Path(scratch) / "models")
        latencies = asyncio.run(burst(args.n, Path(scratch)))
        ray.shutdown()  # before the scratch folder goes: Ray's workers write under it
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    late = sum(1 for ms in latencies if ms > DEADLINE_MS)
    print(
        f"n={len(latencies)} p50_ms={statistics.median(latencies):.1f} p99_ms={p99:.1f} "
        f"max_ms={max(latencies):.1f} late={late} load={os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
