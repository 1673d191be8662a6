"""Coverage-guided fuzzing of the photo intake (issue #27): the property of tests/bot/test_intake_properties.py,
driven by atheris (libFuzzer) for as long as asked.

    pip install atheris          # the fuzz extra; wheels for CPython 3.11 on Linux
    nice -n 19 python bench/fuzz_intake.py --minutes 10 --findings /tmp/intake-findings

Each input picks one of the valid files of tests/intake_mutations.py and one to four damages (flips, overwrites
with the fuzzer's bytes, cuts, chunk deletions and repeats, length fields changed, bytes added at the end);
`judge` then checks the intake's answer. Coverage is that of the Python code it runs: bot.intake and Pillow's
plugins (the C decoders are not instrumented). A failing input is written to the findings folder (the damaged
file, and a .txt with the original, the damages and the failure) and fuzzing goes on.

Figures, in <findings>/stats.json and the last line: inputs (run), per_original and per_damage (inputs by file
and damage kind), refused, stored, findings, slowest_cpu_s (the CPU time of the costliest input, the least of
three timings) and that input, peak_rss_mib (the process's peak resident memory) and the input that last raised it.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import atheris

with atheris.instrument_imports(include=["bot", "PIL", "tests"]):
    from tests.intake_mutations import DAMAGE, Damage, damaged, judge, originals

NAMES = sorted(originals())
KINDS = ["flip", *sorted(set(DAMAGE) - {"flip"})]  # a spent input reads as zeros: those flip, not append


class Run:
    def __init__(self, findings: Path):
        self.findings = findings
        self.inputs, self.refused, self.stored, self.found = 0, 0, 0, 0
        self.per_original: Counter[str] = Counter()
        self.per_damage: Counter[str] = Counter()
        self.slowest = (0.0, "")
        self.peak_kib, self.peak_input = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, ""
        self.started = time.monotonic()

    def figures(self) -> dict[str, object]:
        return {
            "inputs": self.inputs, "seconds": round(time.monotonic() - self.started),
            "per_original": dict(self.per_original), "per_damage": dict(self.per_damage),
            "refused": self.refused, "stored": self.stored, "findings": self.found,
            "slowest_cpu_s": round(self.slowest[0], 4), "slowest_input": self.slowest[1],
            "peak_rss_mib": round(self.peak_kib / 1024, 1), "peak_raised_by": self.peak_input,
        }

    def save(self) -> None:
        (self.findings / "stats.json").write_text(json.dumps(self.figures(), indent=1))


def damages(fdp: atheris.FuzzedDataProvider) -> list[Damage]:
    made = []
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        kind = KINDS[fdp.ConsumeIntInRange(0, len(KINDS) - 1)]
        number = fdp.ConsumeIntInRange(0, 2**32 - 1)
        if kind in ("overwrite", "append"):
            extra = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 64))
            made.append(Damage(kind, (number, extra) if kind == "overwrite" else (extra,)))
        elif kind in ("flip", "set_length"):
            made.append(Damage(kind, (number, fdp.ConsumeIntInRange(0, 2**32 - 1))))
        else:
            made.append(Damage(kind, (number,)))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--findings", type=Path, default=Path("fuzz-findings"))
    args, rest = parser.parse_known_args()
    args.findings.mkdir(parents=True, exist_ok=True)
    run = Run(args.findings)

    def one_input(raw: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(raw)
        original = NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)]
        damage = damages(fdp)
        label = f"{original} {[(d.kind, d.args) for d in damage]}"
        run.inputs += 1
        run.per_original[original] += 1
        run.per_damage.update(d.kind for d in damage)
        try:
            outcome = judge(original, damage)
        except Exception:  # a finding: keep it and go on (AssertionError from judge, or what the intake raised)
            run.found += 1
            (args.findings / f"finding-{run.found}.bin").write_bytes(damaged(original, damage))
            (args.findings / f"finding-{run.found}.txt").write_text(f"{label}\n\n{traceback.format_exc()}")
            run.save()
            return
        run.refused += outcome.refused is not None
        run.stored += outcome.refused is None
        if outcome.cpu_seconds > run.slowest[0]:  # timed again, the least of three: the machine is shared
            cpu = min([outcome.cpu_seconds] + [judge(original, damage).cpu_seconds for _ in range(2)])
            if cpu > run.slowest[0]:
                run.slowest = (cpu, label)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if peak > run.peak_kib:
            run.peak_kib, run.peak_input = peak, label
        if run.inputs % 2000 == 0:  # libFuzzer ends the process at its time limit without returning here
            run.save()

    atheris.Setup(
        [sys.argv[0], f"-max_total_time={round(args.minutes * 60)}", "-timeout=10", "-rss_limit_mb=2048",
         f"-artifact_prefix={args.findings}/", *rest],
        one_input,
    )
    try:
        atheris.Fuzz()
    finally:
        run.save()
        print(" ".join(f"{key}={value}" for key, value in run.figures().items()))


if __name__ == "__main__":
    main()
