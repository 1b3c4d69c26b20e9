"""The text the reward model reads: one markdown-like main body for every source, with camera-ready cues removed.

    clean = clean_paper_text(raw)        # CleanText(text="# Title\n\n## Abstract\n...", removed={"urls": 3, ...})

Training papers come from three parsers (Nougat OCR markdown, Docling markdown, generated LaTeX) and two kinds
of version (accepted papers are camera-ready, rejected ones are submissions). A model trained on them learns
whatever tells the two apart, so every text, in training and at scoring time, goes through the same cleaning:

* LaTeX is turned into the markdown shape of the data (`\\section{X}` -> `## X`, abstract environment ->
  `## Abstract`, citations -> `[n]`);
* everything between the title and the abstract (authors, affiliations, anonymity headers) is dropped;
* the paper is cut at its appendix, references or checklist (reviewers judge the main paper; camera-ready
  versions add appendices, and one source caps texts at 60k characters);
* acknowledgment, funding, broader-impact, contribution and checklist sections are dropped;
* URLs, e-mail addresses, conference headers and footers ("Published as a conference paper at", "Submitted to
  ... Do not distribute", "Preprint"), anonymous-author lines, bare line numbers, and the sentences about code
  release, anonymised links, equal contribution or camera-ready are removed.

`probe.leak_probe` checks that the result no longer gives the decision away.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from ..schema import Paper

Item = Union[str, Paper, Mapping[str, Any]]
CLEAN_VERSION = 1  # bump when clean_paper_text changes what it returns: cached rows and features are keyed by it

# ---- items -> raw text ---------------------------------------------------------------------------------------


def compose_text(title: str = "", abstract: str = "", body: str = "") -> str:
    """Title (as a `# ` line), abstract (under `## Abstract`) and body, leaving out what the body already has."""
    title, abstract, body = (title or "").strip(), (abstract or "").strip(), (body or "").strip()
    parts = []
    if title and title not in body[:4000]:
        parts.append(title if title.startswith("#") else f"# {title}")
    if abstract and abstract[:200] not in body:
        parts.append(f"## Abstract\n\n{abstract}")
    if body:
        parts.append(body)
    return "\n\n".join(parts)


def paper_text(paper: Paper) -> str:
    """A generated paper's text: title, abstract, LaTeX body, results and conclusion; its raw text when none of
    those parsed (so unparsable samples do not all tie at one score)."""
    import json

    body = [paper.latex]
    if paper.experimental_results:
        body.append("## Experimental results\n\n" + json.dumps(paper.experimental_results, ensure_ascii=False))
    body.append(paper.conclusion_latex)
    text = compose_text(paper.title, paper.abstract, "\n\n".join(b for b in body if b and b.strip()))
    return text if text.strip() else paper.raw_text


def item_text(item: Item) -> str:
    """Raw text of a string, a schema.Paper or a dataset row (title, abstract, text)."""
    if isinstance(item, str):
        return item
    if isinstance(item, Paper):
        return paper_text(item)
    if isinstance(item, Mapping):
        return compose_text(str(item.get("title") or ""), str(item.get("abstract") or ""),
                            str(item.get("text") or ""))
    raise TypeError(f"cannot score a {type(item).__name__}; give a str, a schema.Paper or a dataset row")


def raw_word_count(item: Item, text: Optional[str] = None) -> int:
    """Words of the whole paper as given, appendix and references included (a dataset row's `raw_words`, counted
    before its cleaning); the accept head reads it beside the cleaned main body. `text`: item_text(item), when
    the caller already has it."""
    if isinstance(item, Mapping) and item.get("raw_words"):
        return int(item["raw_words"])
    return len((item_text(item) if text is None else text).split())


def model_text(item: Item) -> str:
    """What the reward model reads: the cleaned main body. Rows that data.fulltext already cleaned (they carry
    this version's `clean_version`) are taken as they are: cleaning 10k papers again costs minutes."""
    if isinstance(item, Mapping) and item.get("clean_version") == CLEAN_VERSION and item.get("text"):
        return str(item["text"])
    return clean_paper_text(item_text(item)).text


# ---- LaTeX -> the data's markdown shape -----------------------------------------------------------------------

_LATEX_HINT = re.compile(r"\\(section|subsection|begin\{(abstract|document|equation|table|figure)\}|title\{)")
_LATEX_HEADINGS = [(re.compile(r"\\section\*?\s*\{([^{}]*)\}"), "## "),
                   (re.compile(r"\\subsection\*?\s*\{([^{}]*)\}"), "### "),
                   (re.compile(r"\\(?:subsubsection|paragraph)\*?\s*\{([^{}]*)\}"), "#### ")]


def latex_to_markdown(text: str) -> str:
    """Headings, abstract, title and citations of LaTeX in the data's markdown shape; math and the other
    environments are kept as they are (the features count them in either form)."""
    text = re.sub(r"(?<!\\)%[^\n]*", "", text)  # comments are not part of what a reader sees
    text = re.sub(r"\\title\s*\{([^{}]*)\}", r"\n# \1\n", text)
    text = re.sub(r"\\begin\{abstract\}", "\n## Abstract\n", text)
    text = re.sub(r"\\end\{abstract\}", "\n", text)
    text = re.sub(r"\\appendix\b", "\n## Appendix\n", text)
    text = re.sub(r"\\begin\{thebibliography\}", "\n## References\n", text)
    for pattern, prefix in _LATEX_HEADINGS:
        text = pattern.sub(lambda m, p=prefix: f"\n{p}{m.group(1).strip()}\n", text)
    counter: dict[str, int] = {}

    def cite(m: re.Match) -> str:
        keys = [k.strip() for k in m.group(1).split(",") if k.strip()]
        return "[" + "; ".join(str(counter.setdefault(k, len(counter) + 1)) for k in keys) + "]"

    text = re.sub(r"\\(?:cite[pt]?|citeauthor|citeyear|autocite|parencite)\*?(?:\[[^\]]*\])*\s*\{([^{}]*)\}",
                  cite, text)
    text = re.sub(r"\\(?:label|ref|eqref|autoref|cref|Cref)\s*\{[^{}]*\}", "", text)
    text = re.sub(r"\\(?:documentclass|usepackage|maketitle|author|date|bibliographystyle|bibliography)"
                  r"(?:\[[^\]]*\])?(?:\{[^{}]*\})?", "", text)
    text = re.sub(r"\\(?:begin|end)\{document\}", "", text)
    return text


# ---- cleaning ------------------------------------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})[ \t]*(.*?)[ \t]*$", re.M)
_ABSTRACT_HEADING = re.compile(r"^(?:#{1,6}[ \t]*|\*\*)?abstract\b[:.*]*[ \t]*$|^#{1,6}[ \t]*abstract\b", re.I | re.M)
# Section titles whose whole section goes (up to the next heading).
_DROP_SECTION = re.compile(
    r"^(?:\d+(?:\.\d+)*\.?\s*)?(?:acknowledge?ments?|acknowledgments? and disclosure.*|disclosure of funding.*|"
    r"funding(?: and.*)?|broader impacts?(?: statement)?|societal impacts?|impact statement|author contributions?|"
    r"contributions of the authors|ethics statement|reproducibility statement|contents|table of contents|"
    r"(?:neurips )?paper checklist|checklist)\b", re.I)
# Headings after which the rest of the paper is references, appendix or checklist: cut there.
_CUT_SECTION = re.compile(
    r"^(?:\d+(?:\.\d+)*\.?\s*)?(?:references|bibliography|literature cited|appendix|appendices|supplementary|"
    r"supplemental|technical appendices|(?:neurips )?paper checklist)\b", re.I)
# "A Proofs", "Appendix A: ...", "A.1 Setup": the first appendix heading, trusted only after the conclusion.
_APPENDIX_LETTER = re.compile(r"^(?:appendix\s+)?A(?:\.1)?[.:]?\s+[A-Z]")
_CONCLUSION = re.compile(r"^(?:\d+(?:\.\d+)*\.?\s*)?(?:conclusions?|discussion|limitations|summary|"
                         r"concluding remarks|future work)\b", re.I)

_URL = re.compile(r"\[URL\]|\bhttps?://\S+|\bwww\.\S+|\b[\w.-]+\.(?:github\.io|4open\.science)\S*|"
                  r"\bgithub\.com/\S*|\banonymous\.4open\S*", re.I)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Whole short lines (page furniture) and phrases inside longer ones.
_FOOTER = re.compile(
    r"(?:published|accepted) as a (?:conference|workshop) paper at [^\n.]*|under review as a [^\n.]*paper at [^\n.]*|"
    r"paper under double-blind review|submitted to (?:the )?\d*\w* ?(?:annual )?conference[^\n.]*|"
    r"\d+(?:st|nd|rd|th) conference on neural information processing systems[^\n.]*|"
    r"\(?neurips \d{4}\)?(?: track on datasets and benchmarks)?\.?|do not distribute\.?|preprint\.? under review\.?|"
    r"\bpreprint\b\.?|anonymous authors?\(?s?\)?|affiliation\s+address\s+email|camera[- ]ready", re.I)
_SENTENCE_CUES = re.compile(
    r"(?:\b(?:code|implementation|data ?sets?|models?|checkpoints?|repository|software|project page)\b"
    r"[^.!?\n]{0,80}\b(?:available|released?|open[- ]sourced?|publicly|accessible|provided|found)\b|"
    r"upon acceptance|after (?:the )?(?:review|acceptance)|anonymi[sz]ed (?:link|repository|code|version)|"
    r"\bequal contribution|corresponding authors?|\bwork (?:was )?done (?:while|during)|"
    r"\bwe (?:thank|acknowledge|are grateful)|\backnowledges?\b[^.!?\n]{0,40}\b(?:support|funding|grant)|"
    r"\bgrants?\s+(?:no\b|number|agreement)|\bfunded by|\b(?:partially |partly |in part )?supported by\b|"
    r"\bwill (?:be )?(?:made )?(?:publicly )?(?:release|available|open[- ]source)|"
    r"\banonymous (?:link|code|repositor|github|version|url)|\bfor anonymity|\banonymous,? \(?(?:19|20)\d\d)", re.I)
# Pointers to the appendix: camera-ready versions move material there and point to it more often.
_APPENDIX_MENTION = re.compile(r"\(?(?:see |in )?(?:the )?(?:appendix|appendices|supplementary|supplemental)"
                               r"(?: (?:material|materials|information|section))?(?: [A-H](?:\.\d+)*)?\b\)?", re.I)
# Acknowledgments written as a paragraph opener ("**Acknowledgments.** This work ..."), made a heading so that
# the section is dropped like any other.
_ACK_OPENER = re.compile(r"^[*_ ]*(acknowledge?ments?|funding|disclosure of funding)[*_ .:]*", re.I | re.M)
_SENTENCE_END = re.compile(r"[.!?\n]")


_URL_WORDS = ("http", "www.", "[url]", "github", "4open")
_FOOTER_WORDS = ("conference", "review", "submitted", "neurips", "preprint", "distribute", "anonymous",
                 "affiliation", "camera")
_CUE_WORDS = ("availab", "releas", "open", "public", "accessib", "provided", "found", "accept", "review", "anonymi",
              "equal contribution", "corresponding", "done", "thank", "acknowledg", "grateful", "grant", "funded",
              "supported", "anonymity", "anonymous")


def _by_line(text: str, needles: Sequence[str], fn: Callable[[str], tuple[str, int]]) -> tuple[str, int]:
    """Apply `fn` (line -> (new line, count)) to the lines whose lower case holds one of `needles`."""
    lines = text.split("\n")
    total = 0
    for i, line in enumerate(lines):
        low = line.lower()
        if any(n in low for n in needles):
            lines[i], k = fn(line)
            total += k
    return "\n".join(lines), total


def _drop_sentences(text: str, cue: re.Pattern) -> tuple[str, int]:
    """Remove every sentence (between [.!?] or line breaks) that contains a match of `cue`."""
    spans: list[tuple[int, int]] = []
    for m in cue.finditer(text):
        if spans and m.start() < spans[-1][1]:
            continue
        start = max(text.rfind(c, 0, m.start()) for c in ".!?\n") + 1
        end_m = _SENTENCE_END.search(text, m.end())
        end = end_m.end() if end_m and end_m.group() != "\n" else (end_m.start() if end_m else len(text))
        spans.append((start, end))
    if not spans:
        return text, 0
    out, pos = [], 0
    for a, b in spans:
        out.append(text[pos:a])
        pos = b
    out.append(text[pos:])
    return "".join(out), len(spans)


_LINE_NUMBER = re.compile(r"^[ \t]*\d{1,4}[ \t]*$", re.M)


@dataclass
class CleanText:
    text: str
    removed: Counter = field(default_factory=Counter)  # what was removed, by kind (counts)


def _cut_before_abstract(text: str, removed: Counter) -> str:
    """Keep the title line and everything from the abstract heading on."""
    m = _ABSTRACT_HEADING.search(text[:6000])
    if not m or m.start() == 0:
        return text
    head = text[:m.start()]
    title = next((ln for ln in head.splitlines() if ln.startswith("# ")), "")
    if len(head) - len(title) > 20:
        removed["author_block"] += 1
    return (title + "\n\n" if title else "") + text[m.start():]


def _sections(text: str) -> list[tuple[int, int, str]]:
    """(start, end of heading line, heading title) of every markdown heading."""
    return [(m.start(), m.end(), m.group(2).strip("*_ .:")) for m in _HEADING.finditer(text)]


def _drop_and_cut(text: str, removed: Counter) -> str:
    """Drop acknowledgment-like sections; cut at the references, appendix or checklist."""
    heads = _sections(text)
    n = len(text)
    keep: list[tuple[int, int]] = []
    pos, concluded = 0, False
    for i, (start, end, title) in enumerate(heads):
        if start < pos:
            continue
        concluded = concluded or bool(_CONCLUSION.match(title))
        late_letter = _APPENDIX_LETTER.match(title) and (concluded or start > 0.5 * n)
        if (_CUT_SECTION.match(title) and start > 0.15 * n) or late_letter:
            keep.append((pos, start))
            removed["appendix_or_references"] += 1
            return "".join(text[a:b] for a, b in keep if b > a)
        if _DROP_SECTION.match(title):
            keep.append((pos, start))
            removed["dropped_sections"] += 1
            pos = heads[i + 1][0] if i + 1 < len(heads) else n
    keep.append((pos, n))
    return "".join(text[a:b] for a, b in keep if b > a)


def clean_paper_text(text: str) -> CleanText:
    """The main body of a paper with camera-ready and identity cues removed (see the module docstring)."""
    removed: Counter = Counter()
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    if _LATEX_HINT.search(text):
        text = latex_to_markdown(text)
        removed["latex_converted"] += 1
    text = re.sub(r"^[ \t]*\*\*([^*\n]{1,120})\*\*[ \t]*$", r"## \1", text, flags=re.M)  # bold-line headings
    text = _cut_before_abstract(text, removed)
    text = _ACK_OPENER.sub(lambda m: f"## {m.group(1)}\n\n", text)
    text = _drop_and_cut(text, removed)
    # Phrases first, sentences last: a URL's dots would split the sentence that mentions it ("code at https://..."),
    # and a removed phrase can join the words of a cue.
    # Each pattern runs only on the lines holding one of its literal words (none spans a line): the
    # case-insensitive alternations cost ~15 ms a paper each on whole texts, and scoring must stay fast.
    for kind, pattern, needles in (("urls", _URL, _URL_WORDS), ("emails", _EMAIL, ("@",)),
                                   ("footers", _FOOTER, _FOOTER_WORDS),
                                   ("appendix_mentions", _APPENDIX_MENTION, ("appendi", "supplement"))):
        text, k = _by_line(text, needles, lambda line, p=pattern: p.subn("", line))
        if k:
            removed[kind] += k
    text, k = _LINE_NUMBER.subn("", text)
    if k:
        removed["line_numbers"] += k
    text, k = _by_line(text, _CUE_WORDS, lambda line: _drop_sentences(line, _SENTENCE_CUES))
    if k:
        removed["cue_sentences"] += k
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return CleanText(text, removed)


# ---- pieces used by the features -----------------------------------------------------------------------------

_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[])")


def paragraphs(text: str) -> list[str]:
    """Non-heading paragraphs (blank-line separated blocks, or single lines in one-paragraph-per-line text)."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n|\n(?=#)", text)]
    out = []
    for b in blocks:
        if not b or b.startswith("#"):
            continue
        out.extend(x.strip() for x in b.split("\n") if x.strip()) if b.count("\n") > 3 else out.append(b)
    return out


def sentences(text: str) -> list[str]:
    """Sentences of the prose paragraphs (a crude splitter: enough for cohesion and repetition statistics)."""
    out = []
    for p in paragraphs(text):
        if p.startswith("|") or p.count("&") > 3:  # table rows
            continue
        out.extend(s.strip() for s in _SENT_SPLIT.split(p) if len(s.split()) >= 3)
    return out


def headings(text: str) -> list[str]:
    return [m.group(2).strip("*_ .:") for m in _HEADING.finditer(text)]
