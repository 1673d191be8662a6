"""Properties of the photo intake (issue #27): damaged files are refused in the intake's words or stored whole.

Hypothesis runs with a fixed seed and few examples here (a few seconds); INTAKE_EXAMPLES=5000 runs more, and
bench/fuzz_intake.py runs the same property under a coverage-guided fuzzer for minutes.
"""

from __future__ import annotations

import os
import string
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from bot.intake import IntakeLimits, Rejected, check_source_url, prepare
from tests.intake_mutations import LIMITS, Damage, chunks, clean, damaged, judge, originals, png_is_whole

EXAMPLES = int(os.environ.get("INTAKE_EXAMPLES", "300"))
PROPERTY = settings(
    max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Damaged EXIF makes Pillow warn while it reads the header; the property is about what the intake answers.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")

NAMES = sorted(originals())
POSITION = st.integers(0, 2**32 - 1)
DAMAGES = st.one_of(
    st.builds(lambda at, mask: Damage("flip", (at, mask)), POSITION, st.integers(0, 254)),
    st.builds(lambda at, new: Damage("overwrite", (at, new)), POSITION, st.binary(min_size=1, max_size=16)),
    st.builds(lambda at: Damage("cut", (at,)), POSITION),
    st.builds(lambda index: Damage("delete_chunk", (index,)), st.integers(0, 63)),
    st.builds(lambda index: Damage("duplicate_chunk", (index,)), st.integers(0, 63)),
    st.builds(
        lambda index, value: Damage("set_length", (index, value)),
        st.integers(0, 63),
        st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1)),
    ),
    st.builds(lambda extra: Damage("append", (extra,)), st.binary(max_size=64)),
)


def test_the_originals_are_accepted_as_made():
    """The property means something only if the undamaged files get through, the way up their EXIF says."""
    for name in NAMES:
        photo = clean(name)
        assert photo.source_format == {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "heic": "HEIF"}[
            name.split("-")[0]
        ]
        assert len(chunks(originals()[name])) >= 1
    assert (clean("png-rgba-exif").width, clean("png-rgba-exif").height) == (48, 64)  # turned by its eXIf
    assert (clean("jpeg-progressive-exif").width, clean("jpeg-progressive-exif").height) == (64, 80)
    assert all(png_is_whole(originals()[name]) for name in NAMES if name.startswith("png"))


@PROPERTY
@given(st.sampled_from(NAMES), st.lists(DAMAGES, min_size=1, max_size=3))
def test_a_damaged_file_is_refused_in_the_intakes_words_or_stored_whole(name, damage):
    judge(name, damage)


@PROPERTY
@given(st.sampled_from(NAMES), st.lists(st.builds(lambda at: Damage("cut", (at,)), POSITION), min_size=1, max_size=2))
def test_a_cut_file_is_refused_or_stored_as_the_whole_picture(name, damage):
    judge(name, damage)


@pytest.mark.parametrize("name", NAMES)
def test_every_cut_of_a_file_is_refused_or_stored_as_the_whole_picture(name):
    for length in range(1, len(originals()[name])):
        judge(name, [Damage("cut", (length,))])


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("png")])
def test_a_png_cut_anywhere_is_refused(name):
    """Every cut point of each PNG: the end chunk is the last thing in the file, so any cut loses part of it."""
    data = originals()[name]
    for length in range(1, len(data)):
        assert judge(name, [Damage("cut", (length,))]).refused is not None, length


def test_a_png_damaged_in_any_byte_is_refused():
    """Every byte of a PNG flipped in turn: each lies inside a checksummed chunk or the signature."""
    data = originals()["png-interlaced"]
    for at in range(0, len(data), 3):
        outcome = judge("png-interlaced", [Damage("flip", (at, 0x20))])
        assert outcome.refused is not None, at


def test_findings_of_the_fuzz_target_stay_fixed():
    """bench/fuzz_intake.py's findings, each as it found it."""
    # A flipped byte of the frame header: the JPEG claims 80x43840, and was stored 1 pixel wide.
    too_narrow = judge("jpeg-progressive-exif", [Damage("flip", (4124702197, 45560))])
    assert too_narrow.refused is not None and "too long and narrow" in too_narrow.refused


@pytest.mark.xfail(strict=True, reason="Pillow does not report libjpeg's 'premature end of data segment' warning")
def test_a_jpeg_cut_short_with_its_end_marker_put_back_is_refused():
    """Known limit: libjpeg fills the missing part of the picture with grey and warns, and Pillow drops the
    warning. A JPEG has no checksum, so nothing else tells such a file from a whole one."""
    data = originals()["jpeg"]
    start, _, _, _ = chunks(data)[-1]  # the picture data
    cut = data[: (start + len(data)) // 2] + b"\xff\xd9"
    assert damaged("jpeg", []) == data
    with pytest.raises(Rejected):
        prepare(cut, LIMITS)


# ---- attachment links ----

LINK_REFUSALS = {
    "the link contains characters a Discord attachment link never has",
    "only https links to Discord attachments are accepted",
    "only links to files uploaded to Discord are accepted",
}
LINK_PIECES = st.sampled_from(
    ["https://", "http://", "HTTPS://", "https:", "//", "/", "cdn.discordapp.com", "media.discordapp.net",
     "CDN.DiscordApp.com", "evil.example", ".", "@", ":", ":443", ":8443", "#", "?", "\\", "%2e", "%40", "%2F",
     "user:pass@", "attachments/1/2/me.jpg", "?ex=1&is=2", "\t", " ", "\n", "\x00", "\u0456", "xn--", "[::1]",
     "127.0.0.1", "0x7f.1", ";", "&"]
)
LINKS = st.one_of(st.text(max_size=60), st.lists(st.one_of(LINK_PIECES, st.text(max_size=3)), max_size=10).map("".join))


@PROPERTY
@given(LINKS)
def test_a_link_is_let_through_only_to_an_allowed_host_over_https(url):
    """What the bot's HTTP client (aiohttp, which parses with yarl) would connect to decides: an accepted link
    goes to an allowed host on port 443 with no user name, whatever the link's tricks."""
    try:
        check_source_url(url, LIMITS)
    except Rejected as refusal:
        assert refusal.reason in LINK_REFUSALS
        return
    parsed = URL(url)
    assert parsed.scheme == "https" and parsed.host in LIMITS.allowed_hosts
    assert parsed.port == 443 and parsed.user is None and parsed.password is None
    split = urlsplit(url)
    assert split.hostname in LIMITS.allowed_hosts and split.port is None


@PROPERTY
@given(st.sampled_from(IntakeLimits().allowed_hosts), st.text(st.sampled_from(string.ascii_letters + string.digits
       + "-._~/?&=%"), max_size=80))
def test_a_discord_attachment_link_is_let_through(host, rest):
    check_source_url(f"https://{host}/{rest}", LIMITS)
