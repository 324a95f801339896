"""Sphinx directives that draw pages from doge's own data, so that they cannot drift from it.

``seg-label-table NAME``: the label-ID table ``plugins/controls/seg_labels/NAME.json`` as doge
ships it (ID, the dataset's class, the ADE20K class it is drawn as, and that class's colour).
"""

from __future__ import annotations

import json
from importlib import resources

from docutils import nodes
from docutils.parsers.rst import Directive


class SegLabelTable(Directive):
    required_arguments = 1
    has_content = False

    def run(self):
        from doge.plugins.controls.seg import ade20k_classes

        name = self.arguments[0]
        try:
            text = resources.files("doge.plugins.controls").joinpath("seg_labels", f"{name}.json").read_text("utf-8")
        except FileNotFoundError:
            raise self.error(f"no label table {name!r} in doge.plugins.controls/seg_labels") from None
        labels = json.loads(text)["labels"]
        colours = ade20k_classes()
        rows = [["ID", f"{name} class", "drawn as (ADE20K)", "colour"]]
        for key, entry in sorted(labels.items(), key=lambda kv: int(kv[0])):
            target = entry.get("ade20k")
            colour = "black (void)" if target is None else "#{:02x}{:02x}{:02x}".format(*colours[target])
            rows.append([key, entry.get("name", ""), target or "—", colour])
        return [_table(rows)]


def _table(rows: list[list[str]]) -> nodes.table:
    table = nodes.table()
    group = nodes.tgroup(cols=len(rows[0]))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in rows[0])
    for section, body in ((nodes.thead(), rows[:1]), (nodes.tbody(), rows[1:])):
        for cells in body:
            row = nodes.row()
            for cell in cells:
                entry = nodes.entry()
                entry += nodes.paragraph(text=str(cell))
                row += entry
            section += row
        group += section
    return table


def setup(app):
    app.add_directive("seg-label-table", SegLabelTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
