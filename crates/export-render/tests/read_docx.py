"""Reads a DOCX the way a user's tools do (python-docx) and prints what it holds as JSON.

Usage: python3 read_docx.py FILE.docx

Output: {"paragraphs": [...], "tables": [...], "headers": [...], "footers": [...], "core": {...},
"page": {...}}
Exit status 3 with a message on stderr when python-docx is not installed.
"""

import json
import sys

try:
    import docx
    import docx.table
    from docx.oxml.ns import qn
except ImportError:
    sys.stderr.write("python-docx is not installed: run `pip install python-docx`\n")
    sys.exit(3)


def run_info(run):
    color = run.font.color
    return {
        "text": run.text,
        "bold": bool(run.bold),
        "italic": bool(run.italic),
        "color": str(color.rgb) if color is not None and color.rgb is not None else None,
        "rtl": bool(run.font.rtl),
    }


def paragraph_info(paragraph):
    ppr = paragraph._p.pPr
    return {
        "text": paragraph.text,
        "style": paragraph.style.name if paragraph.style is not None else None,
        "alignment": str(paragraph.alignment) if paragraph.alignment is not None else None,
        "numbered": ppr is not None and ppr.find(qn("w:numPr")) is not None,
        "keep_with_next": bool(paragraph.paragraph_format.keep_with_next),
        "style_keeps_with_next": paragraph.style is not None
        and bool(paragraph.style.paragraph_format.keep_with_next),
        "bottom_border": ppr is not None and ppr.find(qn("w:pBdr")) is not None,
        "page_break": any(
            br.get(qn("w:type")) == "page" for br in paragraph._p.iter(qn("w:br"))
        ),
        "runs": [run_info(run) for run in paragraph.runs],
    }


def table_info(table):
    rows = []
    for row in table.rows:
        tr_pr = row._tr.trPr
        first = row.cells[0] if row.cells else None
        fill = None
        bold = None
        if first is not None:
            shd = first._tc.find(qn("w:tcPr") + "/" + qn("w:shd"))
            fill = shd.get(qn("w:fill")) if shd is not None else None
            runs = [run for p in first.paragraphs for run in p.runs]
            bold = bool(runs) and all(run.bold for run in runs)
        rows.append(
            {
                "cells": [cell.text for cell in row.cells],
                "cant_split": tr_pr is not None and tr_pr.find(qn("w:cantSplit")) is not None,
                "repeat_header": tr_pr is not None and tr_pr.find(qn("w:tblHeader")) is not None,
                "first_cell_fill": fill,
                "first_cell_bold": bold,
            }
        )
    return {
        "style": table.style.name if table.style is not None else None,
        "widths_in": [column.width.inches for column in table.columns],
        "rows": rows,
    }


def reading_order(document):
    """Every non-empty paragraph and table cell, in the order of the body."""
    lines = []
    for item in document.iter_inner_content():
        if isinstance(item, docx.table.Table):
            lines.extend(cell.text for row in item.rows for cell in row.cells)
        else:
            lines.append(item.text)
    return [line for line in lines if line]


def main():
    document = docx.Document(sys.argv[1])
    section = document.sections[0]
    core = document.core_properties
    result = {
        "paragraphs": [paragraph_info(p) for p in document.paragraphs],
        "reading_order": reading_order(document),
        "tables": [table_info(t) for t in document.tables],
        "footers": [p.text for s in document.sections for p in s.footer.paragraphs],
        "headers": [paragraph_info(p) for s in document.sections for p in s.header.paragraphs],
        "footer_xml_has": {
            name: name in section.footer._element.xml for name in ("PAGE", "NUMPAGES")
        },
        "core": {
            "title": core.title,
            "author": core.author,
            "created": core.created.isoformat() if core.created else None,
            "language": core.language,
        },
        "page": {
            "width_in": section.page_width.inches,
            "height_in": section.page_height.inches,
            "margins_in": [
                section.top_margin.inches,
                section.right_margin.inches,
                section.bottom_margin.inches,
                section.left_margin.inches,
            ],
        },
        "styles": {
            "Normal_pt": document.styles["Normal"].font.size.pt
            if document.styles["Normal"].font.size
            else None,
        },
    }
    json.dump(result, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
