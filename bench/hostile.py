"""Bench: time and memory of the readers on hostile inputs (issue 15), each case in a forked process.

    .venv/bin/python bench/hostile.py                 # every case, 30 s and 3 GB each
    .venv/bin/python bench/hostile.py --only latex     # cases whose name contains "latex"
    .venv/bin/python bench/hostile.py --timeout 10

Each case builds its input in a temporary folder, calls one library entry point, and reports seconds, peak
memory and the outcome: `ok`, `error: <project error>` (a clean refusal), `UNCAUGHT <type>` (a bug), `HANG`
(over the timeout) or `MEMORY` (killed at the memory cap). Inputs are generated, never committed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))


def minimal_pdf(content: bytes) -> bytes:
    """A one-page PDF whose page content stream is `content` (Helvetica as /F1); offsets computed."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def well_formed_paper(n_bytes: int) -> str:
    para = ("We study $\\alpha$-sparse probes of transformer features \\citep{a2020,b2021}, and show in "
            "\\cref{tab:x} that accuracy rises by 12\\% with \\textbf{bold} and \\emph{emphasised} words. ") * 4
    parts = ["\\documentclass{article}\n\\title{A Long Paper}\n\\begin{document}\n\\maketitle\n"
             "\\begin{abstract}Short abstract.\\end{abstract}\n"]
    size, k = 0, 0
    while size < n_bytes:
        chunk = f"\\section{{Part {k}}}\n" + (para + "\n\n") * 5
        parts.append(chunk)
        size += len(chunk)
        k += 1
    parts.append("\\end{document}\n")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------- cases

def case_latex_unclosed(tmp: Path):
    from cycleresearcher.formats.latex import parse_latex

    return parse_latex("\\title{A\n\\section{B\n\\author{C\n" * 6700)


def case_latex_one_line_10mb(tmp: Path):
    from cycleresearcher.formats.latex import parse_latex

    return parse_latex("\\section{S} " + "word \\textbf{x} $y$ " * 500_000)


def case_latex_paper_1mb(tmp: Path):
    from cycleresearcher.formats.latex import parse_latex

    return parse_latex(well_formed_paper(1_000_000))


def case_latex_cite_100k(tmp: Path):
    from cycleresearcher.formats.latex import parse_latex

    return parse_latex("\\section{S} \\cite{" + ",".join(f"key{i}" for i in range(100_000)) + "}")


def case_latex_input_fanout(tmp: Path):
    from cycleresearcher.formats.latex import load_latex_project

    for i in range(20):
        (tmp / f"f{i}.tex").write_text((f"\\input{{f{i + 1}}}\n") * 10 + "text\n")
    (tmp / "f20.tex").write_text("leaf text\n")
    (tmp / "main.tex").write_text("\\documentclass{article}\\begin{document}\\input{f0}\\end{document}\n")
    return load_latex_project(tmp / "main.tex")


def case_latex_spaces_10mb(tmp: Path):
    from cycleresearcher.formats.latex import parse_latex

    return parse_latex("\\section{S} a" + " " * 10_000_000 + "b")


def case_latex_backslashes(tmp: Path):
    from cycleresearcher.formats.latex import parse_latex

    return parse_latex("\\\\" * 2_000_000)


def case_pdf_300k_ops(tmp: Path):
    from cycleresearcher.formats.pdf import pdf_to_text

    ops = b"BT /F1 12 Tf " + b"1 0 0 1 10 10 Tm (ab) Tj " * 300_000 + b"ET"
    (tmp / "big.pdf").write_bytes(minimal_pdf(ops))
    return pdf_to_text(tmp / "big.pdf")


def case_bibtex_string_doubling(tmp: Path):
    from cycleresearcher.formats.bibtex import load_bibtex

    lines = ["@string{s0 = {ab}}"] + [f"@string{{s{i} = s{i - 1} # s{i - 1}}}" for i in range(1, 41)]
    lines.append("@article{k, title = s40}")
    (tmp / "refs.bib").write_text("\n".join(lines))
    return load_bibtex(tmp / "refs.bib")


def case_fifo(tmp: Path):
    from cycleresearcher.formats.document import load_document

    os.mkfifo(tmp / "paper.tex")
    return load_document(tmp / "paper.tex")


def case_dev_zero(tmp: Path):
    from cycleresearcher.formats.document import load_document

    return load_document(Path("/dev/zero"))


def case_deep_json_paper(tmp: Path):
    from cycleresearcher.formats.paper import parse_paper

    return parse_paper("## Experimental Setup\n```json\n" + "[" * 3000 + "]" * 3000 + "\n```\n")


def case_json_5000_digits(tmp: Path):
    from cycleresearcher.formats.paper import parse_paper

    return parse_paper("## Experimental Setup\n```json\n[{\"name\": " + "9" * 5000 + "}]\n```\n")


def case_archive_dotdot_stem(tmp: Path):
    import io
    import tarfile

    from cycleresearcher.formats.document import load_document

    work = tmp / "work"
    work.mkdir()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        data = b"\\documentclass{article}\\begin{document}\\section{A} hi\\end{document}"
        info = tarfile.TarInfo("main.tex")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (tmp / "...tar.gz").write_bytes(buffer.getvalue())
    load_document(tmp / "...tar.gz", work_dir=work)
    escaped = (tmp / "main.tex").exists()
    return "ESCAPED to the work folder's parent" if escaped else "stayed inside"


CASES = {name[len("case_"):]: fn for name, fn in globals().items() if name.startswith("case_")}


# ---------------------------------------------------------------------------------------------- runner

def _child(name: str, write_fd: int, mem_gb: float) -> None:
    limit = int(mem_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        try:
            value = CASES[name](Path(tmp))
            outcome = value if isinstance(value, str) else "ok"
        except MemoryError:
            outcome = "MEMORY"
        except Exception as exc:  # noqa: BLE001  the bench classifies every outcome
            from cycleresearcher.errors import CycleResearcherError

            kind = "error" if isinstance(exc, CycleResearcherError) else f"UNCAUGHT {type(exc).__name__}"
            outcome = f"{kind}: {str(exc)[:120]}"
        seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    os.write(write_fd, json.dumps({"seconds": seconds, "rss_mb": rss, "outcome": outcome}).encode())
    os._exit(0)


def run_case(name: str, timeout: float, mem_gb: float) -> dict:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(name, write_fd, mem_gb)
    os.close(write_fd)
    start = time.perf_counter()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() - start > timeout:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(read_fd)
            return {"seconds": timeout, "rss_mb": None, "outcome": "HANG"}
        time.sleep(0.05)
    data = os.read(read_fd, 65536)
    os.close(read_fd)
    if not data:
        return {"seconds": time.perf_counter() - start, "rss_mb": None, "outcome": f"DIED (status {status})"}
    return json.loads(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per case")
    parser.add_argument("--mem-gb", type=float, default=3.0, help="address-space cap per case, GB")
    args = parser.parse_args()
    for name in CASES:
        if args.only in name:
            r = run_case(name, args.timeout, args.mem_gb)
            rss = f"{r['rss_mb']:.0f} MB" if r["rss_mb"] else "-"
            print(f"{name:28s} {r['seconds']:7.2f} s  {rss:>8s}  {r['outcome']}", flush=True)


if __name__ == "__main__":
    main()
