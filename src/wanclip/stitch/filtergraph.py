"""A ``-filter_complex`` and the ffmpeg command around it, built as the frames flow. Pure.

Replaces ffmpeg-python (last released 2019, and it pulled in ``future``, a Python 2 shim): wanclip
builds only chains of filters joined by xfade/concat, so a list of labelled filters is all it
needs. The text is the one ffmpeg-python wrote for the same graphs, so the films are the same
(``tests/test_stitch_golden.py`` holds the commands it built):

* every filter is its own chain, ``[in]name=args:options[sN]``, and output labels ``s0, s1, ...``
  are numbered in the order filters are added: add them upstream first, one branch after the
  other (a caller that splits a stream finishes the first branch before it starts the second);
* positional arguments come first, then options in name order (the text never depends on the
  order a call site writes them in);
* a value is escaped for the filter's options (``\\ ' = :``), the whole filter then for the
  graph (``\\ ' [ ] , ;``): ``select=eq(n\\,0)`` reaches the select filter as ``eq(n,0)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Stream:
    """A link of the graph: an input's stream (``0:v``) or a filter's output (``s3``)."""

    label: str

    @property
    def from_input(self) -> bool:
        return not self.label.startswith("s")


@dataclass(frozen=True)
class Output:
    """One output file: the streams mapped into it, its options (in the order given), its path."""

    streams: list[Stream]
    options: list[str]
    path: str


@dataclass
class FilterGraph:
    inputs: list[str] = field(default_factory=list)  # the -i files, in input-number order
    filters: list[str] = field(default_factory=list)
    links: int = 0  # filter outputs labelled so far: the next is s<links>

    def input(self, path: str) -> int:
        """Add an input file; its number (``0`` for the first)."""
        self.inputs.append(path)
        return len(self.inputs) - 1

    def filter(self, sources: Stream | list[Stream], name: str, *args: object, outputs: int = 1,
               **options: object) -> Stream:
        """Add ``name`` fed by ``sources``; its output (the first, with ``outputs`` > 1: see ``split``)."""
        return self._add(sources, name, args, options, outputs)[0]

    def split(self, source: Stream, n: int = 2) -> list[Stream]:
        return self._add(source, "split", (n,), {}, n)

    def _add(self, sources, name: str, args: tuple, options: dict, outputs: int) -> list[Stream]:
        sources = [sources] if isinstance(sources, Stream) else sources
        params = [_option_value(a) for a in args] + [f"{k}={_option_value(v)}" for k, v in sorted(options.items())]
        text = name + (f"={':'.join(params)}" if params else "")
        made = [Stream(f"s{self.links + i}") for i in range(outputs)]
        self.links += outputs
        self.filters.append("".join(f"[{s.label}]" for s in sources) + _graph_escape(text)
                            + "".join(f"[{s.label}]" for s in made))
        return made

    @property
    def text(self) -> str:
        return ";".join(self.filters)

    def argv(self, exe: str, outputs: list[Output]) -> list[str]:
        """The whole command. Global options come last (after the outputs, where ffmpeg-python put
        them; ffmpeg reads them anywhere)."""
        argv = [exe]
        for path in self.inputs:
            argv += ["-i", path]
        if self.filters:
            argv += ["-filter_complex", self.text]
        for out in outputs:
            for stream in out.streams:
                argv += ["-map", stream.label if stream.from_input else f"[{stream.label}]"]
            argv += [*out.options, out.path]
        return [*argv, "-y", "-hide_banner", "-nostdin"]


def _escape(text: str, chars: str) -> str:
    text = text.replace("\\", "\\\\")
    for ch in chars:
        text = text.replace(ch, "\\" + ch)
    return text


def _option_value(value: object) -> str:
    return _escape(str(value), "'=:")


def _graph_escape(text: str) -> str:
    return _escape(text, "'[],;")
