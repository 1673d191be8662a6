"""The playground in a real browser (Debian's Chromium, driven by Playwright): a newcomer's first minutes.

Photos uploaded through the page, /train on the tiny model, the announcement with its timeline, a button
that opens a modal, /imagine, and the picture shown. The playground runs in this process, on the session's
local Ray; the browser talks to it over 127.0.0.1 as a visitor would.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import ray

from playground.session import playground
from playground.setup import bot_settings
from tests.bot.conftest import remove_actors, start_local_ray
from tests.bot.test_bot import jpeg
from tests.photos import astronaut, variants

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PREFIX = "pg-browser"
WAIT_MS = 60_000  # the longest any one step may take on a busy machine

if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI must run the browser test: .ci/run installs chromium (apt-get install -y chromium)")
    pytest.skip("Chromium is not installed (apt-get install -y chromium); CI runs this test", allow_module_level=True)

from playwright import async_api  # noqa: E402  (the test extra; after the skip, which needs no browser driver)


@pytest.fixture(scope="module")
def ray_here(tiny_dir):
    """The session's local Ray if one runs, else one for this module (started here, on the main thread)."""
    started = not ray.is_initialized()
    if started:
        start_local_ray()
    yield
    remove_actors(PREFIX)
    if started:
        ray.shutdown()


async def test_a_newcomer_trains_and_draws_in_the_browser(ray_here, tmp_path):
    def settings_for(fake, guild_id):
        return bot_settings(
            fake, guild_id, tmp_path / "data", gpus=1, ray_actor_prefix=PREFIX, gpu_sharing="share",
            min_photos_to_train=4, min_photo_side=64, progress_interval_s=0.2,
        )

    her = variants(astronaut())  # one real face, so the face checks keep every photo for training
    photos = [
        {"name": f"{name}.jpg", "mimeType": "image/jpeg", "buffer": jpeg(her[name])}
        for name in ("crop", "mirror", "bright", "jpeg")
    ]
    async with playground(settings_for, "tiny: noise") as running, async_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = await browser.new_page()
        await page.goto(running.url + "?as=ann")
        await running.online(timeout=120)
        status = page.locator("#status")
        await async_api.expect(status).to_have_text("online", timeout=WAIT_MS)
        chat = page.locator("#messages")

        async def send(text: str) -> None:
            await page.fill("#text", text)
            await page.press("#text", "Enter")

        await page.set_input_files("#composer input[type=file]", photos)
        await send("/dataset add caption: me at home")
        await async_api.expect(chat).to_contain_text("Ready for /train", timeout=WAIT_MS)

        await send("/train steps: 10")
        await async_api.expect(chat).to_contain_text("adapter is ready", timeout=WAIT_MS)  # says what it saw
        announcement = chat.locator("article", has_text="adapter is ready")
        await _shown(announcement.locator("img"))

        await announcement.get_by_role("button", name="Train more").click()
        modal = page.locator("dialog#modal")
        await async_api.expect(modal).to_be_visible(timeout=WAIT_MS)
        await async_api.expect(modal.locator("input, textarea")).to_have_count(1)
        await modal.get_by_role("button", name="Cancel").click()
        await async_api.expect(modal).to_be_hidden()

        await send("/imagine prompt: as a knight seed: 7")
        picture = chat.locator("article", has_text="seed 7").locator("img")
        await async_api.expect(picture).to_have_count(1, timeout=WAIT_MS)
        await _shown(picture)
        await browser.close()


async def _shown(image) -> None:
    """The picture is on the page and the browser decoded it (not a broken image)."""
    await async_api.expect(image.first).to_be_visible(timeout=WAIT_MS)
    await image.first.evaluate("img => img.decode()")
    assert await image.first.evaluate("img => img.naturalWidth") > 0
