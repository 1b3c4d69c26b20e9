"""Dataset sources and builders, on fixtures and shared/data only (no network: sockets are blocked where it matters)."""

from __future__ import annotations

import gzip
import io
import json
import socket
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from cycleresearcher.data import openreview as orv
from cycleresearcher.data.arxiv import ArxivSourceError, load_arxiv_paper, normalize_arxiv_id, parse_bbl
from cycleresearcher.data.build import (build_research_dataset, build_review_dataset, dataset_stats, review_target,
                                        split_of)
from cycleresearcher.data.cache import CacheMissError, RateLimiter
from cycleresearcher.data.normalize import (normalize_decision, parse_confidence, parse_rating, parse_subscore,
                                            review_from_text)
from cycleresearcher.data.peerread import load_peerread
from cycleresearcher.data.research import BackendExtractor, heuristic_extract
from cycleresearcher.data.sources import load_records
from cycleresearcher.formats.archive import UnsafeArchiveError
from cycleresearcher.formats.paper import parse_paper, render_completion
from cycleresearcher.formats.review import parse_review_set, render_review_set
from cycleresearcher.schema import ReviewSet


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ---- normalisation -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("6: marginally above the acceptance threshold", 6), (6, 6), ("6/10", 6), (" 8 ", 8), (8.0, 8),
    ({"value": "10: strong accept, should be highlighted at the conference"}, 10), ("Rating: 3", 3),
    ("11", None), (6.5, None), ("", None), (None, None), ("accept", None), (True, None),
])
def test_parse_rating(value, expected):
    problems: list[str] = []
    assert parse_rating(value, problems=problems) == expected
    assert bool(problems) == (expected is None and value not in ("", None))


def test_subscores_confidence_and_small_scale():
    assert parse_subscore("3 good") == 3
    assert parse_subscore({"value": "2 fair"}) == 2
    assert parse_subscore("excellent") == 4
    assert parse_subscore("5") is None
    assert parse_confidence("4: You are confident in your assessment, but not absolutely certain.") == 4
    assert parse_confidence("5: The reviewer is absolutely certain") == 5
    assert parse_rating(6, high=6) == 6 and parse_rating(7, high=6) is None  # NeurIPS 2025 is 1-6


@pytest.mark.parametrize("raw, expected", [
    ("Accept (Poster)", "Accept"), ("Accept (Oral)", "Accept"), ("Accept (spotlight)", "Accept"),
    ("Accept: notable-top-5%", "Accept"), ("Reject", "Reject"), ("Invite to Workshop Track", "Reject"),
    ("Desk Rejected", "Reject"), ("ICLR 2024 poster", "Accept"), ("Submitted to ICLR 2024", "Reject"),
    ({"value": "Accept (oral)"}, "Accept"), (True, "Accept"), (False, "Reject"), ("Withdrawn", None),
    ("", None), (None, None),
])
def test_normalize_decision(raw, expected):
    assert normalize_decision(raw) == expected


MESSY_REVIEW = """Summary: The paper proposes X for Y.
It is evaluated on MNIST.

Pros:
- simple
Review:
**********
Clarity: good, but the notation in Sec. 3 is heavy.
## Rating: 3 would be too harsh

Cons:
1) only toy data

Questions: why not CIFAR?"""


def test_review_text_structured_and_round_trips():
    review = review_from_text(MESSY_REVIEW, "6: marginally above the acceptance threshold", "4: confident")
    assert review.summary == "The paper proposes X for Y.\nIt is evaluated on MNIST."
    assert review.strengths.startswith("- simple\n- Review:\n---\n- Clarity: good")
    assert "- Rating: 3 would be too harsh" in review.strengths
    assert review.weaknesses == "1) only toy data"
    assert review.questions == "why not CIFAR?"
    assert (review.rating, review.confidence) == (6, 4)
    review_set = ReviewSet(reviews=[review, review_from_text("Just free text.", 3, None)],
                           meta_review="Decision: the AC agrees.\n* * *", decision="Reject")
    parsed = parse_review_set(render_review_set(review_set))
    assert parsed.reviews == review_set.reviews
    assert parsed.ratings == [6, 3]
    assert parsed.decision == "Reject"


# ---- OpenReview ----------------------------------------------------------------------------------------------

def _v(value):
    return {"value": value}


def _v2_review(number, rating, soundness, text, cdate):
    return {"id": f"rev{number}{rating}", "cdate": cdate, "forum": f"f{number}", "replyto": f"f{number}",
            "invitations": [f"ICLR.cc/2024/Conference/Submission{number}/-/Official_Review"],
            "signatures": [f"ICLR.cc/2024/Conference/Submission{number}/Reviewer_ab{rating}"],
            "content": {"summary": _v(f"Summary {text}"), "soundness": _v(soundness), "presentation": _v("2 fair"),
                        "contribution": _v("3 good"), "strengths": _v("Clear writing."),
                        "weaknesses": _v("Weaknesses:\nSmall experiments."), "questions": _v("Why?"),
                        "flag_for_ethics_review": _v(["No ethics review needed."]),
                        "rating": _v(rating), "confidence": _v("4: You are confident in your assessment, but "
                                                               "not absolutely certain."),
                        "code_of_conduct": _v("Yes")}}


def _v2_submission(number, venueid, venue, replies):
    return {"id": f"f{number}", "forum": f"f{number}", "number": number,
            "invitations": ["ICLR.cc/2024/Conference/-/Submission", "ICLR.cc/2024/Conference/-/Post_Submission"],
            "content": {"title": _v(f"Paper {number}"), "abstract": _v(f"Abstract {number}."),
                        "keywords": _v(["graphs", "theory"]), "venueid": _v(venueid), "venue": _v(venue)},
            "details": {"replies": replies}}


def v2_notes():
    accepted = _v2_submission(1, "ICLR.cc/2024/Conference", "ICLR 2024 poster", [
        _v2_review(1, "8: accept, good paper", "4 excellent", "B", 20),
        _v2_review(1, "6: marginally above the acceptance threshold", "3 good", "A", 10),
        {"id": "m1", "invitations": ["ICLR.cc/2024/Conference/Submission1/-/Meta_Review"], "cdate": 30,
         "content": {"metareview": _v("All reviewers like it."), "recommendation": _v("Accept (poster)")}},
        {"id": "d1", "invitations": ["ICLR.cc/2024/Conference/Submission1/-/Decision"], "cdate": 40,
         "content": {"title": _v("Paper Decision"), "decision": _v("Accept (poster)"), "comment": _v("")}},
    ])
    rejected = _v2_submission(4, "ICLR.cc/2024/Conference/Rejected_Submission", "Submitted to ICLR 2024", [
        _v2_review(4, "3: reject, not good enough", "2 fair", "C", 10),
        {"id": "d4", "invitations": ["ICLR.cc/2024/Conference/Submission4/-/Decision"], "cdate": 40,
         "content": {"decision": _v("Reject")}},
    ])
    withdrawn = _v2_submission(2, "ICLR.cc/2024/Conference/Withdrawn_Submission", "ICLR 2024 Conference "
                               "Withdrawn Submission", [_v2_review(2, "1: strong reject", "1 poor", "D", 10)])
    desk = _v2_submission(3, "ICLR.cc/2024/Conference/Desk_Rejected_Submission", "ICLR 2024 Conference Desk "
                          "Rejected Submission", [
                              {"id": "x3", "invitations": ["ICLR.cc/2024/Conference/Submission3/-/Desk_Rejection"],
                               "content": {"desk_reject_comments": _v("Out of scope.")}}])
    return [accepted, withdrawn, desk, rejected]


def v1_notes():
    def reply(number, kind, content, cdate):
        return {"id": f"{kind}{number}{cdate}", "forum": f"p{number}", "replyto": f"p{number}", "cdate": cdate,
                "invitation": f"ICLR.cc/2018/Conference/-/Paper{number}/{kind}" if kind != "Acceptance_Decision"
                else "ICLR.cc/2018/Conference/-/Acceptance_Decision", "content": content}
    return [
        {"id": "p12", "forum": "p12", "number": 12, "invitation": "ICLR.cc/2018/Conference/-/Blind_Submission",
         "content": {"title": "Old paper", "abstract": "Old abstract.", "keywords": ["rl"], "authors": ["Anonymous"]},
         "details": {"directReplies": [
             reply(12, "Official_Review", {"title": "ok", "rating": "6: Marginally above acceptance threshold",
                                           "review": "Pros: neat.\nCons: small.",
                                           "confidence": "4: The reviewer is confident but not absolutely certain "
                                                         "that the evaluation is correct"}, 5),
             reply(12, "Official_Review", {"title": "meh", "rating": "4: Ok but not good enough - rejection",
                                           "review": "Not convinced.", "confidence": "3: fairly confident"}, 6),
             reply(12, "Acceptance_Decision", {"decision": "Invite to Workshop Track",
                                               "comment": "Interesting but premature."}, 9),
             reply(12, "Official_Comment", {"comment": "Thanks for the reviews."}, 7),
         ]}},
        {"id": "p13", "forum": "p13", "number": 13, "invitation": "ICLR.cc/2018/Conference/-/Blind_Submission",
         "content": {"title": "Good paper", "abstract": "Good abstract."},
         "details": {"directReplies": [
             reply(13, "Official_Review", {"rating": "9: Top 15% of accepted papers, strong accept",
                                           "review": "Great.", "confidence": "5: certain"}, 5),
             reply(13, "Meta_Review", {"metareview": "Clear accept.", "recommendation": "Accept (Oral)"}, 8),
         ]}},
    ]


class FakeOpenReviewClient:
    """Answers get_all_notes from fixtures and records each call (the real client's signature)."""

    def __init__(self, notes_by_invitation):
        self.notes_by_invitation = notes_by_invitation
        self.calls = []

    def get_all_notes(self, invitation=None, details=None, **kwargs):
        self.calls.append((invitation, details))
        return list(self.notes_by_invitation.get(invitation, []))

    def get_pdf(self, note_id, is_reference=False):
        self.calls.append(("pdf", note_id))
        return b"%PDF-1.4 fake"


def _instant_limiter():
    return RateLimiter(1.0, clock=lambda: 0.0, sleep=lambda s: None)


def test_openreview_v2_normalised_withdrawn_skipped_and_cached(tmp_path, monkeypatch, no_network):
    import openreview

    # one submission as a real openreview-py Note object (the client returns those), the rest as dicts
    notes = v2_notes()
    first = notes[0]
    notes[0] = openreview.api.Note(id=first["id"], forum=first["forum"], number=1, content=first["content"],
                                   invitations=first["invitations"], details=first["details"])
    client = FakeOpenReviewClient({"ICLR.cc/2024/Conference/-/Submission": notes})
    venue = "ICLR.cc/2024/Conference"
    records = orv.load_venue(venue, tmp_path, client=client, limiter=_instant_limiter())
    assert client.calls == [("ICLR.cc/2024/Conference/-/Submission", "replies")]
    assert [r.paper_id for r in records] == ["iclr2024_f1", "iclr2024_f4"]
    accepted, rejected = records
    assert (accepted.decision, accepted.decision_raw, rejected.decision) == ("Accept", "Accept (poster)", "Reject")
    assert accepted.ratings == [6, 8]  # creation order, not the order the API listed them
    assert [r.soundness for r in accepted.reviews] == [3, 4]
    assert [(r.presentation, r.contribution, r.confidence) for r in accepted.reviews] == [(2, 3, 4)] * 2
    assert accepted.reviews[0].summary == "Summary A"
    assert accepted.reviews[0].weaknesses == "- Weaknesses:\nSmall experiments."
    assert accepted.meta_review == "All reviewers like it."
    assert (accepted.keywords, accepted.year, accepted.venue, accepted.rating_scale) == (
        ["graphs", "theory"], 2024, "ICLR", "1-10")

    cache_file = tmp_path / "ICLR.cc_2024_Conference" / "ICLR.cc_2024_Conference_-_Submission.json"
    assert json.loads(cache_file.read_text())["count"] == 4

    # Rebuild from the cache: no client may be built and no socket opened.
    def no_client(version):
        raise AssertionError("a client was built although the cache is complete")
    monkeypatch.setattr(orv, "make_client", no_client)
    again = orv.load_venue(venue, tmp_path, client=None, offline=False)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in records]
    dd = build_review_dataset(f"openreview:{venue}@{tmp_path}", tmp_path / "ds", split=(0.0, 0.0, 1.0))
    assert sorted(dd["test"]["paper_id"]) == ["iclr2024_f1", "iclr2024_f4"]
    assert parse_review_set(dd["test"].filter(lambda r: r["paper_id"] == "iclr2024_f1")[0]["target"]).ratings == [6, 8]

    with_withdrawn = orv.load_venue(venue, tmp_path, include_withdrawn=True)
    assert len(with_withdrawn) == 4
    assert {r.paper_id: r.decision_raw for r in with_withdrawn}["iclr2024_f2"] == "Withdrawn"
    assert {r.paper_id: r.decision for r in with_withdrawn}["iclr2024_f3"] is None


def test_openreview_v1_forms_and_pdf_on_request(tmp_path):
    client = FakeOpenReviewClient({"ICLR.cc/2018/Conference/-/Blind_Submission": v1_notes()})
    records = orv.load_venue("ICLR.cc/2018/Conference", tmp_path, client=client, limiter=_instant_limiter())
    assert client.calls == [("ICLR.cc/2018/Conference/-/Blind_Submission", "directReplies")]
    workshop, oral = records
    assert workshop.ratings == [6, 4] and [r.confidence for r in workshop.reviews] == [4, 3]
    assert (workshop.reviews[0].strengths, workshop.reviews[0].weaknesses) == ("neat.", "small.")
    assert (workshop.decision, workshop.decision_raw) == ("Reject", "Invite to Workshop Track")
    assert workshop.meta_review == "Interesting but premature."  # 2018 kept it in the decision's comment
    assert workshop.authors == []  # "Anonymous" is no author
    assert (oral.decision, oral.meta_review, oral.ratings) == ("Accept", "Clear accept.", [9])
    assert not any(call[0] == "pdf" for call in client.calls)

    with_pdfs = orv.load_venue("ICLR.cc/2018/Conference", tmp_path, client=client, fetch_pdfs=True,
                               limiter=_instant_limiter())
    assert Path(with_pdfs[0].pdf_path).read_bytes().startswith(b"%PDF")
    assert ("pdf", "p12") in client.calls


def test_openreview_offline_cache_miss_and_api_choice(tmp_path, no_network):
    with pytest.raises(CacheMissError):
        orv.load_venue("ICLR.cc/2025/Conference", tmp_path, offline=True)
    assert orv.api_version_for("ICLR.cc/2023/Conference") == 1
    assert orv.api_version_for("ICLR.cc/2024/Conference") == 2
    assert orv.api_version_for("NeurIPS.cc/2025/Conference") == 2


def test_rate_limiter_spaces_calls():
    now, slept = [0.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds
    limiter = RateLimiter(3.0, clock=lambda: now[0], sleep=sleep)
    limiter.wait()
    now[0] += 1.0
    limiter.wait()
    now[0] += 5.0
    limiter.wait()
    assert slept == [2.0]


# ---- arXiv ---------------------------------------------------------------------------------------------------

MAIN_TEX = r"""\documentclass{article}
\title{Sparse Widgets for Everyone}
\begin{document}
\maketitle
\begin{abstract}
We propose sparse widgets. They are fast.
\end{abstract}
\input{sections/intro}
\section{Method}
Widgets are sparse \cite{smith2020}.
\section{Experiments}
\subsection{Speed}
Widgets run fast on CPUs. They beat dense widgets.
\section{Conclusion}
Sparse widgets work.
\bibliography{refs}
\end{document}
"""
INTRO_TEX = r"""\section{Introduction}
Dense widgets are slow \citep{lee2019}. This hurts everyone.
"""
REFS_BIB = """@inproceedings{smith2020, title={Widgets}, author={Smith, Ann}, year={2020}, booktitle={ICML}}
@article{lee2019, title={Dense things}, author={Lee, Bo and Kim, Cy}, year={2019}, journal={JMLR}}
@article{unused2000, title={Never cited}, author={Nobody}, year={2000}}
"""


def _tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_arxiv_source_read_cached_and_offline(tmp_path, no_network):
    archive = _tarball({"main.tex": MAIN_TEX.encode(), "sections/intro.tex": INTRO_TEX.encode(),
                        "refs.bib": REFS_BIB.encode()})
    fetched = []

    def fetcher(url):
        fetched.append(url)
        return archive
    record = load_arxiv_paper("arXiv:2411.00816", tmp_path, fetcher=fetcher, limiter=_instant_limiter())
    assert fetched == ["https://arxiv.org/e-print/2411.00816"]
    assert record.title == "Sparse Widgets for Everyone"
    assert [s.heading for s in record.sections] == ["Introduction", "Method", "Experiments", "Conclusion"]
    assert [r.key for r in record.references] == ["lee2019", "smith2020"]  # cited ones, in citation order
    assert "Dense widgets are slow" in record.text

    def no_fetch(url):
        raise AssertionError("downloaded again although cached")
    again = load_arxiv_paper("2411.00816", tmp_path, fetcher=no_fetch, offline=True)
    assert again.to_dict() == record.to_dict()
    [from_spec] = load_records(f"arxiv:2411.00816@{tmp_path}", offline=True)
    assert from_spec.to_dict() == record.to_dict()

    paper = heuristic_extract(record)
    assert paper.motivation.startswith("Dense widgets are slow")
    assert [e["name"] for e in paper.experimental_setup] == ["Speed"]
    assert "\\section{Conclusion}" in paper.conclusion_latex
    parsed = parse_paper(render_completion(paper))
    assert parsed.title == record.title and parsed.motivation == paper.motivation
    assert [s.heading for s in parsed.sections] == ["Introduction", "Method", "Experiments", "Conclusion"]


def test_arxiv_single_gzip_source(tmp_path):
    data = gzip.compress(MAIN_TEX.replace("\\input{sections/intro}", INTRO_TEX).encode())
    record = load_arxiv_paper("1706.03762", tmp_path, fetcher=lambda url: data, limiter=_instant_limiter())
    assert record.title == "Sparse Widgets for Everyone" and record.sections[0].heading == "Introduction"


def test_arxiv_path_traversal_refused(tmp_path):
    evil = _tarball({"main.tex": MAIN_TEX.encode(), "../../escaped.tex": b"owned"})
    cache = tmp_path / "cache"
    with pytest.raises(UnsafeArchiveError):
        load_arxiv_paper("2401.00001", cache, fetcher=lambda url: evil, limiter=_instant_limiter())
    assert not list(tmp_path.rglob("escaped.tex"))
    assert not (cache / "extracted" / "2401.00001").exists()  # all or nothing
    for bad in ("../../etc/passwd", "2401.00001/../../x", "http://evil.example/2401.00001"):
        with pytest.raises(ArxivSourceError):
            normalize_arxiv_id(bad)


def test_parse_bbl():
    bbl = r"""\begin{thebibliography}{2}
\bibitem[{Smith(2020)}]{smith2020}
Ann Smith and Bo Lee.
\newblock Widgets for all.
\newblock In \emph{ICML}, 2020.
\bibitem{kim}
C.~Kim.
\newblock Dense things.
\end{thebibliography}"""
    refs = parse_bbl(bbl)
    assert [(r.key, r.title, r.year) for r in refs] == [("smith2020", "Widgets for all", "2020"),
                                                        ("kim", "Dense things", "")]
    assert refs[0].authors == ["Ann Smith", "Bo Lee"]


# ---- PeerRead --------------------------------------------------------------------------------------------------

def test_peerread_shared_transcription(shared_data):
    records = load_peerread(shared_data / "peerread_iclr2017")
    assert len(records) == 10 and sum(len(r.reviews) for r in records) == 30
    assert sorted(r.paper_id for r in records if r.decision == "Accept") == ["iclr2017_325", "iclr2017_378"]
    ratings = [x for r in records for x in r.ratings]
    assert round(sum(ratings) / len(ratings), 2) == 5.53  # the README's mean
    with_text = [r for r in records if r.sections]
    assert [r.paper_id for r in with_text] == ["iclr2017_378"] and len(with_text[0].sections) == 2


def test_peerread_layout(tmp_path):
    base = tmp_path / "iclr_2017" / "dev"
    (base / "reviews").mkdir(parents=True)
    (base / "parsed_pdfs").mkdir()
    review = {"OTHER_KEYS": "ICLR 2017 conference AnonReviewer1", "TITLE": "nice", "comments": "Good idea.",
              "RECOMMENDATION": 7, "REVIEWER_CONFIDENCE": 4, "IS_META_REVIEW": False}
    data = {"id": "42", "title": "T", "abstract": "A.", "accepted": False, "authors": ["X Y"], "reviews": [
        {"IS_META_REVIEW": True, "comments": "Good idea."},
        {"TITLE": "ICLR committee final decision", "OTHER_KEYS": "ICLR 2017 pcs", "comments": "Reject.",
         "IS_META_REVIEW": False},
        {"TITLE": "Reply", "OTHER_KEYS": "X Y", "comments": "Thanks.", "IS_META_REVIEW": False},
        review, dict(review),  # PeerRead lists some reviews twice
        {**review, "OTHER_KEYS": "ICLR 2017 conference AnonReviewer2", "comments": "Weak.", "RECOMMENDATION": 4,
         "REVIEWER_CONFIDENCE": 3},
    ]}
    (base / "reviews" / "42.json").write_text(json.dumps(data))
    pdf = {"name": "42.pdf", "metadata": {"sections": [{"heading": "1 INTRODUCTION", "text": "Why."},
                                                       {"heading": "2 METHOD", "text": "How."}],
                                          "references": [{"title": "Old work", "author": ["Ann Smith"],
                                                          "year": 2015, "venue": "NIPS"}]}}
    (base / "parsed_pdfs" / "42.pdf.json").write_text(json.dumps(pdf))
    [record] = load_peerread(tmp_path)
    assert (record.paper_id, record.venue, record.year, record.decision) == ("iclr2017_42", "ICLR", 2017, "Reject")
    assert record.ratings == [7, 4] and record.meta_review == "Reject."
    assert [s.heading for s in record.sections] == ["1 INTRODUCTION", "2 METHOD"]
    assert [(r.key, r.title) for r in record.references] == [("smith2015_0", "Old work")]


# ---- datasets from shared data -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def review_dataset(tmp_path_factory):
    path = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "reviews_real" / "reviews.jsonl"
    if not path.is_file():
        pytest.skip("shared data not found")
    out = tmp_path_factory.mktemp("review") / "ds"
    return path, out, build_review_dataset(str(path), out)


def test_review_dataset_counts_splits_and_targets(review_dataset):
    path, out, dd = review_dataset
    assert sum(ds.num_rows for ds in dd.values()) == 1381  # the README's counts
    assert sum(sum(ds["n_reviews"]) for ds in dd.values()) == 4201
    ids = {name: set(ds["paper_id"]) for name, ds in dd.items()}
    assert not (ids["train"] & ids["validation"] or ids["train"] & ids["test"] or ids["validation"] & ids["test"])
    assert 0.75 < len(ids["train"]) / 1381 < 0.85
    decisions = Counter(d for ds in dd.values() for d in ds["decision"])
    assert decisions == {"Accept": 528, "Reject": 853}
    for ds in dd.values():
        for row in ds:
            parsed = parse_review_set(row["target"])
            assert parsed.ratings == row["ratings"], row["paper_id"]
            assert parsed.decision == row["decision"]
            assert [r.confidence for r in parsed.reviews] == row["confidences"]
            assert row["messages"][-1]["content"] == row["target"]
            assert f"{len(row['ratings'])} expert reviewers" in row["messages"][0]["content"]
    stats = dataset_stats(out)
    assert stats["total"] == {"papers": 1381, "reviews": 4201}
    hist = Counter()
    for s in stats["splits"].values():
        hist.update({int(k): v for k, v in s["rating_histogram"]["1-10"].items()})
    assert hist[10] == 2 and hist[6] == 342 + 607  # README: 2017 and 2018 histograms
    card = (out / "README.md").read_text()
    assert "| train | " in card and "research-only" in card and "DylanJoo/OpenReview@" in card


def test_split_is_deterministic_and_by_year(shared_data):
    records = load_records(str(shared_data / "peerread_iclr2017"))
    assert [split_of(r.paper_id) for r in records] == [split_of(r.paper_id) for r in records]
    assert {split_of(r.paper_id, year=r.year, split_by_year=2017) for r in records} == {"test"}
    assert {split_of(r.paper_id, year=2016, split_by_year=2017) for r in records} <= {"train", "validation"}


def test_research_dataset_subset_parses(shared_data, tmp_path):
    dd = build_research_dataset(str(shared_data / "reviews_real" / "reviews.jsonl"), tmp_path / "research", limit=50)
    rows = [row for ds in dd.values() for row in ds]
    assert len(rows) == 50 and len({r["paper_id"] for r in rows}) == 50
    for row in rows:
        paper = parse_paper(row["target"])
        assert paper.title and paper.motivation and paper.main_idea, row["paper_id"]
        assert not [p for p in paper.problems if p.startswith("missing")], (row["paper_id"], paper.problems)
        assert row["prompt"][0]["role"] == "system" and row["prompt"][1]["content"].endswith("required structure.")


def test_combined_sources_and_cli(shared_data, tmp_path):
    from typer.testing import CliRunner

    from cycleresearcher.cli import app

    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"paper_id": "neurips2025_abc", "title": "N", "abstract": "A.", "decision": "Accept",
                                 "reviews": [{"rating": 5, "confidence": 3, "clarity": 3, "impact": 2,
                                              "text": "SUMMARY:\nS.\n\nSTRENGTHS AND WEAKNESSES:\n**Strengths:**\n"
                                                      "good\n**Weaknesses:**\nbad\n\nQUESTIONS:\nQ?\n\n"
                                                      "LIMITATIONS:\nyes"}],
                                 "meta_review": "DECISION:\nAccept (poster)\n\nCOMMENT:\nFine."}) + "\n")
    out = tmp_path / "ds"
    runner = CliRunner()
    result = runner.invoke(app, ["dataset", "review", "--source", f"{shared_data / 'peerread_iclr2017'}+{extra}",
                                 "--out", str(out), "--split-by-year", "2025"])
    assert result.exit_code == 0, result.output
    stats = dataset_stats(out)
    assert stats["total"] == {"papers": 11, "reviews": 31}
    assert stats["splits"]["test"]["rating_histogram"] == {"1-6": {"5": 1}}  # scales never pooled
    from datasets import load_from_disk
    [row] = load_from_disk(str(out))["test"]
    [review] = row["reviews"]
    assert (review["summary"], review["strengths"], review["weaknesses"], review["questions"]) == (
        "S.", "good", "bad\n\nLimitations:\nyes", "Q?")
    assert (review["presentation"], review["contribution"], row["meta_review"]) == (3, 2, "Fine.")
    result = runner.invoke(app, ["dataset", "stats", str(out)])
    assert result.exit_code == 0 and "rating histogram" in result.output and "p90" in result.output
    result = runner.invoke(app, ["dataset", "review", "--source", str(tmp_path / "missing.jsonl"), "--out",
                                 str(tmp_path / "x")])
    assert result.exit_code == 1 and "no such file or folder" in " ".join(result.output.split())
    assert "optionally @CACHE_DIR" in " ".join(result.output.split())


def test_backend_extractor_with_fake_model(shared_data):
    from cycleresearcher.backends.fake import FakeBackend

    [record] = [r for r in load_peerread(shared_data / "peerread_iclr2017") if r.sections]
    backend = FakeBackend().enqueue("## Motivation\nExploration is hard.\n## Main Idea\nUse UREX.\n"
                                    "## Interestingness\n7\n## Feasibility\n8\n## Novelty\n6")
    paper = BackendExtractor("fake", backend=backend)(record)
    assert (paper.motivation, paper.main_idea, paper.novelty) == ("Exploration is hard.", "Use UREX.", 6.0)
    assert "Improving Policy Gradient" in backend.history[0].messages[1]["content"]
    assert parse_paper(render_completion(paper)).main_idea == "Use UREX."


def test_review_target_keeps_neurips_scale():
    from cycleresearcher.data.normalize import PaperRecord

    record = PaperRecord(paper_id="neurips2025_x", reviews=[review_from_text("ok", 6, 4, rating_high=6)],
                         decision="Accept", rating_scale="1-6")
    assert parse_review_set(review_target(record)).ratings == [6]


def test_openreview_neurips2025_form():
    content = {"summary": "S.", "strengths_and_weaknesses": "Strengths:\nnovel\nWeaknesses:\nslow",
               "questions": "Q?", "limitations": "yes", "quality": 3, "clarity": 2, "significance": 4,
               "originality": 3, "rating": 5, "confidence": 4, "flag_for_ethics_review": ["Yes, privacy"]}
    problems: list[str] = []
    review, extras = orv.review_from_content(content, rating_high=6, problems=problems)
    assert (review.summary, review.strengths, review.weaknesses, review.questions) == (
        "S.", "novel", "slow\n\nLimitations: yes", "Q?")
    assert (review.soundness, review.presentation, review.contribution, review.rating) == (3, 2, 4, 5)
    assert review.ethics_flag == "Yes, privacy" and extras["originality"] == 3 and not problems
    assert orv.review_from_content({"rating": 7}, rating_high=6, problems=problems)[0].rating is None
    assert problems == ["rating: 7 is not a whole number in 1-6"]
