"""The phrases the injection finder looks for: instructions to a reviewer or a model (English and a few other
languages), and praise, which counts only in text nobody is meant to see."""

from __future__ import annotations

import re

_ADDRESSEE = r"(?:reviewers?|referees?|llms?|ai|language models?|assistants?|chatgpt|gpt-?\d?|claude|gemini)"
_PAPER = r"(?:paper|submission|manuscript|article|work)"
_HIGH = (r"(?:10|9|8|ten|nine|strong(?:ly)? accept|accept(?:ance)?|high(?:est|ly)?|top|perfect|maximum|max|full|"
         r"positive|excellent|outstanding|glowing|favou?rable|best)")
_TOP = r"(?:10|9|ten|strong(?:ly)? accept|perfect|maximum|top|highest|full marks)"
# Imperatives addressed to a reviewer or a model, or asking for a score: (gate, pattern) pairs. The pattern runs
# only when one of its gate words occurs in the text (a substring test, fast), on lower-cased text whose
# whitespace is collapsed, so a line break cannot split a phrase; `[^.]{0,N}` windows keep it in one sentence.
# Patterns start without \b (the regex engine then skips ahead by first character); the word boundary before
# a match is checked afterwards.
_RULES: list[tuple[tuple[str, ...], str]] = [
    (("ignor", "disregard", "forget", "overrid", "bypass"),
     r"(?:ignore|disregard|forget|override|bypass)\b[^.]{0,25}\b(?:previous|prior|above|earlier|all|your|system|"
     r"preceding|initial|any)\b[^.]{0,15}\b(?:instructions?|prompts|rules|guidelines|directions|directives)\b"),
    (("paper", "submission", "manuscript", "article", "work"),
     rf"(?:give|assign|award|rate|score|grade)\b[^.]{{0,30}}\b(?:this|the|our)\s+{_PAPER}\b[^.]{{0,30}}\b{_HIGH}\b"),
    (("give", "assign", "award"), rf"(?:give|assign|award)\s+(?:it|this|us)\s+(?:a\s+|the\s+)?{_TOP}\b"),
    (("rate", "score", "grade"), r"(?:rate|score|grade)\s+(?:it|this)\s+(?:a\s+|as\s+)?(?:10|9|8|highly|strong|"
                                 r"excellent|perfect)\b"),
    (("review",), r"(?:only|must|should)\s+(?:output|write|give|produce)\s+(?:a\s+)?(?:positive|favou?rable|glowing|"
                  r"good)\s+reviews?\b"),
    (("recommend",), r"(?:must|should|please|kindly)\s+recommend\s+(?:acceptance|accept(?:ing)?\s+(?:this|the))\b"),
    (("recommend",), rf"recommend\s+(?:acceptance|accept(?:ing)?\s+this)\b[^.]{{0,40}}\b{_ADDRESSEE}\b"),
    (("reviewer",), r"(?:as|you are)\s+an?\s+(?:ai|llm|language model|automated|large language model)\s+reviewer\b"),
    (("note", "instruction", "message", "request"),
     r"(?:note|instructions?|message|request)\s+(?:to|for)\s+(?:the\s+|all\s+|any\s+)?(?:llms?|ai|language models?|"
     r"automated reviewers?|ai reviewers?|llm reviewers?|reviewers?)\b\s*[:,-]"),
    (("instruction",), r"new\s+instructions?\s*:"),
    (("weakness", "limitation", "flaw", "shortcoming", "criticism", "instruction", "negative"),
     r"(?<!we )(?<!they )(?<!authors )(?:do not|don't|never|avoid|refrain from|without)\s+(?:mention|report|flag|list|point(?:ing)? out|discuss|"
     r"criticiz|critique|rais|includ|highlight|stat)\w*\b[^.]{0,40}\b(?:weakness(?:es)?|this instruction|"
     r"limitations?|flaws?|shortcomings?|negative (?:points|aspects|comments|remarks|feedback)|criticism)\b"),
    (("deserv", "merit", "warrant", "worthy", "should receive", "should get", "should be given"),
     rf"(?:{_PAPER}|it|this|study|contribution)\s+(?:clearly\s+|truly\s+|really\s+|certainly\s+)?(?:deserves?|merits?|"
     r"warrants?|is worthy of|should (?:receive|get|be given))\b[^.]{0,25}\b(?:highest|high|top|maximum|perfect|full|"
     r"best|strongest|strong)\b[^.]{0,25}\b(?:scores?|ratings?|marks?|grades?|evaluations?|reviews?|accept(?:ance)?)\b"),
    (("please", "kindly", "we ask", "we request", "we urge", "we kindly", "we humbly", "we respectfully", "appreciated"),
     rf"(?:please|kindly|we\s+(?:kindly\s+|humbly\s+|respectfully\s+)?(?:ask|request|urge|beg)|i\s+(?:ask|request|urge)|"
     rf"it would be (?:greatly |much )?appreciated if)\b[^.]{{0,80}}\b(?:accept(?:ance|ing| this| the| our)|"
     rf"(?:high|positive|favou?rable|top|maximum|perfect|full) (?:scores?|ratings?|reviews?|marks)|"
     rf"rate (?:this|the|our) {_PAPER}|recommend (?:it|this|acceptance))"),
    (("you must", "you should", "you will", "you shall", "you are required", "you have to"),
     r"you\s+(?:must|should|will|shall|are required to|have to)\s+(?:now\s+)?(?:accept|recommend acceptance|"
     r"rate (?:it|this)|score (?:it|this)|give (?:it|this|the paper)|ignore|disregard|overlook|praise)\b"),
    (("ignore", "overlook", "disregard", "penaliz"),
     r"(?:ignore|overlook|disregard|do not penalize)\s+(?:its|the|any|all|our)\s+(?:weakness|flaw|limitation|"
     r"shortcoming)"),
    (("accept",), r"(?:recommend|suggest|output|give|assign|vote|choose)\b[^.]{0,30}\bstrong(?:ly)?[ -]accept\b"),
    (("rating", "score", "decision"),
     r"(?:output|respond with|reply with|print|write|answer)\b[^.]{0,20}[\"'“]?(?:rating|score|decision)\s*[:=]\s*"
     r"(?:10|9|8|accept)"),
    (("dear", "hey", "hello"),
     r"(?:dear|hey|hello)\s*,?\s+(?:ai|llm|language model|gpt|chatgpt|claude|automated reviewer|ai reviewer)\b\s*[,:!]"),
]
# The same requests in other languages (kept short and specific; the text is NFKC-normalised first).
_FOREIGN_RULES: list[tuple[tuple[str, ...], str]] = [
    (("忽略",), r"忽略(?:之前|以上|先前|所有|前面|上述)?的?(?:所有)?(?:指令|指示|说明|提示)"),  # zh: ignore instructions
    (("论文", "論文", "文章"), r"(?:给|為|为|給)(?:这篇|本|這篇)(?:论文|論文|文章)(?:打)?(?:满分|滿分|高分|10分)|"
                             r"(?:接受|录用|錄用)(?:这篇|本|這篇)(?:论文|論文)"),
    (("指示", "命令", "論文"), r"(?:以前|前|上記|これまで)の(?:指示|命令)を(?:無視|忘れ)|この論文(?:を|に).{0,10}(?:採択|"
                           r"高い評価|満点|10点)"),  # ja
    (("무시", "논문"), r"이전\s*(?:지시|명령)\w*\s*무시|이\s*논문\w*\s*.{0,10}(?:채택|높은\s*점수|10점)"),  # ko
    (("instruc",), r"ignor(?:a|ad|ar|e|ez|er)\b[^.]{0,20}\b(?:las|les|as|le)\s+instruc\w+\s+(?:anteriores|previas|"
                   r"précédentes|antérieures|precedenti)"),  # es, fr, pt, it
    (("acept", "accept", "aceit"), r"(?:acepta|aceptar|acceptez|accepter|aceite|accetta)\s+(?:este|cet|questo)\s+"
                                   r"(?:artículo|trabajo|article|artigo|articolo)"),
    (("puntuación", "calificación", "nota", "note", "pontuação", "punteggio"),
     r"(?:máxima|mejor|meilleure|plus haute|maximale|massimo|massima)\s+(?:puntuación|calificación|nota|note|"
     r"pontuação|punteggio)"),
    (("ignorier",), r"ignorier\w*\s+(?:alle\s+)?(?:vorherigen|bisherigen|obigen)\s+(?:anweisungen|instruktionen)"),  # de
    (("bewertung", "punktzahl", "akzeptier"), r"(?:höchste|beste|volle)\s+(?:bewertung|punktzahl|note)\b|akzeptier\w*\s+"
                                               r"(?:diesen|das|dieses)\s+(?:artikel|paper|beitrag)"),
    (("игнорир",), r"игнорир\w*\s+(?:все\s+)?(?:предыдущ|прежн)\w*\s+(?:инструкц|указан)\w*"),  # ru
    (("оценк", "балл", "статью"), r"(?:постав|дай|выстав)\w*\s+(?:этой\s+)?(?:статье\s+)?(?:максимальн|высш|высок)\w*\s+"
                                  r"(?:оценк|балл)\w*|прим\w*\s+эту\s+статью"),
]
_COMPILED = [(gate, re.compile(p)) for gate, p in _RULES + _FOREIGN_RULES]
# One regex with every pattern, for short texts (hidden spans, comments, decoded payloads).
INSTRUCTION = re.compile("|".join(f"(?:{p})" for _, p in _RULES + _FOREIGN_RULES), re.I)


def instruction_matches(flat: str) -> list[tuple[int, int]]:
    """(start, end) of every instruction in whitespace-collapsed text; linear in the text per gated pattern."""
    lower = flat.lower()
    if len(lower) != len(flat):  # a few characters change length when lower-cased; keep offsets honest
        flat = lower
    spans = []
    for gate, pattern in _COMPILED:
        if not any(word in lower for word in gate):
            continue
        for m in pattern.finditer(lower):
            if m.start() > 0 and lower[m.start() - 1].isalnum() and lower[m.start()].isascii():
                continue  # "generate the paper" is not "rate the paper"
            spans.append((m.start(), m.end()))
    return sorted(spans)


# In text nobody is meant to see (white, microscopic, comments), praise and review words are enough.
PRAISE = re.compile(
    r"\b(?:ground-?breaking|flawless|impeccable|outstanding|exceptional(?:ly)?|excellent|brilliant|remarkable|"
    r"revolutionary|seminal|landmark|masterpiece|best paper|strong(?:ly)? accept|accept(?:ed|ance)?|highest|"
    r"perfect score|10/10|novel|significant contribution|no weaknesses|reviewers?|referees?|rating|llm|"
    r"language model|must be published|top[- ]tier)\b", re.I)
