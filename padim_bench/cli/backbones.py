"""``padim-bench list backbones [--search WORD]``: the families, their backbones, channels per tap
and whether the weights are on this machine (:mod:`padim_bench.backbones.catalog`)."""

from __future__ import annotations

from rich.markup import escape

from .common import out_console


def print_backbones(search: str = "") -> None:
    """Print the families, then per matching backbone: its family, the channels of its
    ``layer1``..``layer4`` taps, every tap name and where its ImageNet weights are.

    Raises:
        PadimBenchError: nothing matches.
    """
    from ..backbones.catalog import DETAIL_LIMIT, entries, family_lines

    def say(text: str) -> None:
        out_console.print(escape(text), highlight=False, soft_wrap=True)

    say("families:")
    for line in family_lines():
        say(f"  {line}")
    found, total = entries(search)
    say(f"backbones{f' matching {search!r}' if search else ''} ({total}):")
    for e in found:
        if e.channels is None:
            say(f"  {e.name}: {e.problem}")
            continue
        channels = "/".join(str(e.channels.get(k, "-")) for k in ("layer1", "layer2", "layer3", "layer4"))
        say(f"  {e.name} [{e.family}] channels layer1/2/3/4 {channels}; weights {e.weights}")
        say(f"      taps: {', '.join(e.taps)}")
    if total > DETAIL_LIMIT:
        say(f"channels shown for the first {DETAIL_LIMIT} of {total}; narrow --search")
