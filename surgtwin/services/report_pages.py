"""The plan report's layout (reportlab platypus): the blocks a report is made of, and ``build_pdf``.

``surgtwin.services.report`` decides *what* a case's report says and builds a ``ReportDoc`` of
``Section``s holding ``Text``, ``Table`` and ``Figure`` blocks (plain strings and RGB arrays); this
module decides how that looks on A4: styles, tables that wrap their cells and repeat their header,
pictures at their own aspect ratio, a red box for the intended-use statement and for stale items, and
on every page a header (case, "NOT FOR CLINICAL USE") and a footer (generator, "Page X of Y").
Every string passes through ``scrub`` (the de-identification net) on its way onto the page.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import numpy as np

PAGE_MARGIN_MM = 15.0
RED = "#b3261e"
GREEN = "#1b6e2d"
ORANGE = "#b35c00"
HEAD_BG = "#dde3ea"
ZEBRA_BG = "#f4f6f8"
#: cell texts coloured as a verdict
BAD = {"fail", "failed", "stale", "high", "severe", "breach", "flagged", "removed", "no"}
WARN = {"moderate", "edited", "between sizes"}
GOOD = {"pass", "passed", "ok", "low", "none", "yes", "confirmed"}


@dataclass
class Text:
    """A paragraph. ``style``: "body", "note" (small grey), "warning" (red), "small", "mono"."""

    text: str
    style: str = "body"


@dataclass(frozen=True)
class Swatch:
    """A table cell filled with a structure's colour."""

    rgb: tuple[int, int, int]


@dataclass
class Table:
    """A table: ``header`` and ``rows`` of strings (or ``Swatch``); ``widths`` as fractions of the
    text width (default equal); ``key_value``: first column (and third of four) bold, no header."""

    header: list
    rows: list
    widths: list | None = None
    caption: str = ""
    key_value: bool = False
    verdict_columns: tuple = ()  # columns whose words (pass/fail/...) are coloured


@dataclass
class Figure:
    """Pictures side by side (``columns`` per row) at their own aspect ratio, with a caption."""

    images: list  # [(title, RGB uint8 array)]
    caption: str = ""
    columns: int = 1
    max_height_mm: float = 150.0
    lossless: bool = False  # PNG instead of JPEG (plots: sharp lines and text)


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)
    stale: list = field(default_factory=list)  # reasons: drawn as a red box under the title
    new_page: bool = False


@dataclass
class ReportDoc:
    title: str
    subtitle: str
    case_label: str  # the case as the header names it (a pseudonym when de-identified)
    banner: str  # the intended-use statement
    generated: str
    version: str
    sections: list = field(default_factory=list)
    kind: str = "plan report"  # in the running header and the PDF's subject
    footer: str = "Planning aid only."  # the footer's statement, before "Generated ..."


def _styles():
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet

    base = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=base["BodyText"], fontName="Helvetica", fontSize=9.5, leading=12.5,
                          spaceAfter=4)
    return {
        "title": ParagraphStyle("title", parent=base["Title"], fontName="Helvetica-Bold", fontSize=20, leading=24,
                                alignment=0, spaceAfter=2),
        "subtitle": ParagraphStyle("subtitle", parent=body, fontSize=12, leading=15, textColor=colors.HexColor("#444"),
                                   spaceAfter=8),
        "h1": ParagraphStyle("h1", parent=base["Heading1"], fontName="Helvetica-Bold", fontSize=14, leading=17,
                             spaceBefore=10, spaceAfter=5, textColor=colors.HexColor("#1c3557"), keepWithNext=1),
        "h2": ParagraphStyle("h2", parent=base["Heading2"], fontName="Helvetica-Bold", fontSize=11, leading=14,
                             spaceBefore=6, spaceAfter=3, keepWithNext=1),
        "body": body,
        "note": ParagraphStyle("note", parent=body, fontSize=8, leading=10, textColor=colors.HexColor("#555")),
        "small": ParagraphStyle("small", parent=body, fontSize=8, leading=10),
        "warning": ParagraphStyle("warning", parent=body, textColor=colors.HexColor(RED)),
        "mono": ParagraphStyle("mono", parent=body, fontName="Courier", fontSize=7.5, leading=9),
        "cell": ParagraphStyle("cell", parent=body, fontSize=8.3, leading=10, spaceAfter=0),
        "cellbold": ParagraphStyle("cellbold", parent=body, fontName="Helvetica-Bold", fontSize=8.3, leading=10,
                                   spaceAfter=0),
        "banner": ParagraphStyle("banner", parent=body, fontName="Helvetica-Bold", fontSize=10.5, leading=13.5,
                                 textColor=colors.HexColor(RED), spaceAfter=0),
        "stale": ParagraphStyle("stale", parent=body, fontName="Helvetica-Bold", fontSize=9, leading=11.5,
                                textColor=colors.HexColor(RED), spaceAfter=0),
    }


def _p(text, style, scrub):
    from reportlab.platypus import Paragraph

    return Paragraph(escape(scrub(str(text))).replace("\n", "<br/>"), style)


def verdict_colour(text: str) -> str | None:
    t = str(text).strip().lower()
    first = t.split(" ")[0].rstrip(":,") if t else ""
    if t in BAD or first in BAD:
        return RED
    if t in WARN or first in WARN:
        return ORANGE
    if t in GOOD or first in GOOD:
        return GREEN
    return None


def _table(block: Table, width: float, st, scrub):
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph
    from reportlab.platypus import Table as RLTable

    ncol = max([len(block.header)] + [len(r) for r in block.rows])
    fr = block.widths or [1.0 / ncol] * ncol
    total = float(sum(fr))
    col_w = [width * f / total for f in fr]
    style = [("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 3),
             ("RIGHTPADDING", (0, 0), (-1, -1), 3), ("TOPPADDING", (0, 0), (-1, -1), 1.5),
             ("BOTTOMPADDING", (0, 0), (-1, -1), 2), ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#c5ccd4")),
             ("BOX", (0, 0), (-1, -1), 0.5, colors.HexColor("#8a97a6"))]
    data = []
    head = 0
    if block.header and not block.key_value:
        data.append([Paragraph(escape(scrub(str(h))), st["cellbold"]) for h in block.header])
        style += [("BACKGROUND", (0, 0), (-1, 0), colors.HexColor(HEAD_BG))]
        head = 1
    for r, row in enumerate(block.rows):
        if r % 2 == 1:  # before the row's own cell colours (swatches), which must win
            style.append(("BACKGROUND", (0, r + head), (-1, r + head), colors.HexColor(ZEBRA_BG)))
        cells = []
        for c, v in enumerate(list(row) + [""] * (ncol - len(row))):
            if isinstance(v, Swatch):
                cells.append("")
                style.append(("BACKGROUND", (c, r + head), (c, r + head), colors.Color(*(np.asarray(v.rgb) / 255.0))))
                continue
            bold = block.key_value and c % 2 == 0
            text = escape(scrub(str(v)))
            colour = verdict_colour(v) if c in block.verdict_columns else None
            if colour:
                text = f'<font color="{colour}"><b>{text}</b></font>'
            cells.append(Paragraph(text, st["cellbold" if bold else "cell"]))
        data.append(cells)
    t = RLTable(data, colWidths=col_w, repeatRows=head, hAlign="LEFT")
    t.setStyle(style)
    return t


def _encoded(rgb: np.ndarray, lossless: bool = False) -> io.BytesIO:
    from PIL import Image

    buf = io.BytesIO()
    im = Image.fromarray(np.ascontiguousarray(rgb[..., :3]).astype(np.uint8))
    if lossless:
        im.save(buf, "PNG", optimize=True)
    else:
        im.save(buf, "JPEG", quality=88, optimize=True)
    buf.seek(0)
    return buf


def _figure(block: Figure, width: float, st, scrub):
    """One table: rows of pictures (each as wide as its cell, aspect kept) and the caption under them; it is
    not split across pages, and a heading before it stays with it (``keepWithNext``)."""
    from reportlab.lib.units import mm
    from reportlab.platypus import Image
    from reportlab.platypus import Table as RLTable

    cols = max(1, int(block.columns))
    gap = 3 * mm
    cell_w = (width - gap * (cols - 1)) / cols
    rows = []
    imgs = [img for _, img in block.images]
    for i in range(0, len(imgs), cols):
        chunk = imgs[i:i + cols]
        row = []
        for a in chunk:  # as wide as its cell, no higher than the limit, at its own aspect ratio
            h = min(cell_w * a.shape[0] / a.shape[1], block.max_height_mm * mm)
            row.append(Image(_encoded(a, block.lossless), width=h * a.shape[1] / a.shape[0], height=h))
        rows.append(row + [""] * (cols - len(row)))
    style = [("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 0),
             ("TOPPADDING", (0, 0), (-1, -1), 0), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
             ("VALIGN", (0, 0), (-1, -1), "TOP"), ("ALIGN", (0, 0), (-1, -1), "LEFT"), ("NOSPLIT", (0, 0), (-1, -1))]
    if block.caption:
        rows.append([_p(block.caption, st["note"], scrub)] + [""] * (cols - 1))
        style += [("SPAN", (0, len(rows) - 1), (-1, len(rows) - 1)), ("BOTTOMPADDING", (0, -1), (-1, -1), 6)]
    t = RLTable(rows, colWidths=[cell_w + (gap if c < cols - 1 else 0) for c in range(cols)], hAlign="LEFT")
    t.setStyle(style)
    return t


def _boxed(paragraph, border: str, background: str):
    from reportlab.lib import colors
    from reportlab.platypus import Table as RLTable

    t = RLTable([[paragraph]], colWidths=None, hAlign="LEFT", spaceAfter=6)
    t.setStyle([("BOX", (0, 0), (-1, -1), 1.2, colors.HexColor(border)),
                ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(background)),
                ("LEFTPADDING", (0, 0), (-1, -1), 6), ("RIGHTPADDING", (0, 0), (-1, -1), 6),
                ("TOPPADDING", (0, 0), (-1, -1), 4), ("BOTTOMPADDING", (0, 0), (-1, -1), 5)])
    return t


def flowables(doc: ReportDoc, width: float, scrub=lambda s: s) -> list:
    """The platypus story of ``doc`` for a text width of ``width`` points."""
    from reportlab.lib.units import mm
    from reportlab.platypus import PageBreak, Spacer

    st = _styles()
    story = [_p(doc.title, st["title"], scrub), _p(doc.subtitle, st["subtitle"], scrub),
             _boxed(_p(doc.banner, st["banner"], scrub), RED, "#fdecea"), Spacer(1, 3 * mm)]
    for i, sec in enumerate(doc.sections):
        if sec.new_page and i > 0:
            story.append(PageBreak())
        story.append(_p(sec.title, st["h1"], scrub))
        if sec.stale:
            text = "STALE: " + "; ".join(sec.stale) + ". Rebuild it before relying on it."
            box = _boxed(_p(text, st["stale"], scrub), RED, "#fdecea")
            box.keepWithNext = True  # the heading, the box and the section's first block stay on one page
            story.append(box)
        for b in sec.blocks:
            if isinstance(b, Text):
                story.append(_p(b.text, st["h2"] if b.style == "h2" else st.get(b.style, st["body"]), scrub))
            elif isinstance(b, Table):
                story.append(_table(b, width, st, scrub))
                if b.caption:
                    story.append(_p(b.caption, st["note"], scrub))
                story.append(Spacer(1, 2.5 * mm))
            elif isinstance(b, Figure):
                story.append(_figure(b, width, st, scrub))
    return story


def _canvas_class(doc: ReportDoc, scrub):
    """A canvas that draws the header and footer on every page once it knows the page count."""
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    left_head = scrub(f"surgtwin {doc.kind}  \u2014  {doc.case_label}")
    left_foot = scrub(f"{doc.footer} Generated {doc.generated} by surgtwin {doc.version}.")

    class NumberedCanvas(canvas.Canvas):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pages = []

        def showPage(self):  # noqa: N802 - reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            n = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self._decorate(n)
                super().showPage()
            super().save()

        def _decorate(self, count: int) -> None:
            w, h = self._pagesize
            m = PAGE_MARGIN_MM * mm
            self.saveState()
            self.setStrokeColor(colors.HexColor("#8a97a6"))
            self.setLineWidth(0.5)
            self.line(m, h - 13 * mm, w - m, h - 13 * mm)
            self.line(m, 12 * mm, w - m, 12 * mm)
            self.setFont("Helvetica", 8)
            self.setFillColor(colors.HexColor("#333333"))
            self.drawString(m, h - 11.5 * mm, left_head[:110])
            self.drawString(m, 8 * mm, left_foot[:120])
            self.drawRightString(w - m, 8 * mm, f"Page {self._pageNumber} of {count}")
            self.setFont("Helvetica-Bold", 8.5)
            self.setFillColor(colors.HexColor(RED))
            self.drawRightString(w - m, h - 11.5 * mm, "NOT FOR CLINICAL USE")
            self.restoreState()

    return NumberedCanvas


def build_pdf(doc: ReportDoc, path, *, scrub=lambda s: s) -> int:
    """Write ``doc`` as an A4 PDF at ``path``; returns the number of pages."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import SimpleDocTemplate

    m = PAGE_MARGIN_MM * mm
    pdf = SimpleDocTemplate(str(path), pagesize=A4, leftMargin=m, rightMargin=m, topMargin=18 * mm,
                            bottomMargin=17 * mm, title=scrub(f"{doc.title}: {doc.case_label}"),
                            author="surgtwin", subject=f"surgtwin {doc.kind} (NOT FOR CLINICAL USE)",
                            creator=f"surgtwin {doc.version}")
    story = flowables(doc, pdf.width, scrub)
    pdf.build(story, canvasmaker=_canvas_class(doc, scrub))
    return int(pdf.page)
