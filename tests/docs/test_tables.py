"""The generated docs tables (docs/hooks.py) follow the registries."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import mtlzoo

_SPEC = importlib.util.spec_from_file_location("docs_hooks", Path(__file__).resolve().parents[2] / "docs" / "hooks.py")
hooks = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(hooks)


def _rows(table: str) -> dict[str, str]:
    """First cell (without backticks) -> whole row, for the body rows of a markdown table."""
    lines = table.splitlines()[2:]
    return {line.split("|")[1].strip().strip("`"): line for line in lines}


def test_balancer_table_has_one_row_per_registered_balancer():
    rows = _rows(hooks.balancer_table())
    assert sorted(rows) == mtlzoo.list_balancers()
    assert "Reconstruction" in rows["pomsi"] and "Reconstruction" not in rows["pcgrad"]
    assert "Yu et al., NeurIPS 2020" in rows["pcgrad"]
    assert "c=0.4" in rows["cagrad"]
    assert "feature grads" in rows["mgda_ub"] and "feature grads" not in rows["mgda"]
    assert "loss-level" in rows["ew"] and "Jacobian" in rows["db_mtl"]


def test_protocol_table_names_family_and_baseline():
    rows = _rows(hooks.protocol_table())
    assert sorted(rows) == mtlzoo.list_protocols()
    assert "cagrad_segnet_nyuv2" in rows["mtan_nyuv2"] and "| nash |" in rows["mtan_nyuv2"]
    assert "Vandenhende" in rows["mtinet_nyud"]


def test_pretrained_table_lists_every_tag():
    names = mtlzoo.list_models(pretrained=True)
    table = hooks.pretrained_table()
    if names:
        assert sorted(_rows(table)) == names
    else:
        assert "mtlzoo list pretrained" in table


def test_zoo_table_row_counts_parameters_and_tags(monkeypatch):
    monkeypatch.setattr(mtlzoo, "list_models",
                        lambda pattern="*", pretrained=False: [] if pretrained else ["hps_tiny"])
    row = _rows(hooks.zoo_table())["hps_tiny"]
    model = mtlzoo.create_model("hps_tiny", tasks=hooks.ZOO_TASKS)
    params = sum(p.numel() for p in model.parameters())
    assert f"| {params / 1e6:.2f} |" in row


def test_markers_are_replaced_and_unknown_markers_fail():
    text = hooks.render_markers("before\n<!-- mtlzoo:protocol-table -->\nafter")
    assert text.startswith("before\n<!-- mtlzoo:protocol-table -->\n|") and "mtan_nyuv2" in text
    assert text.endswith("\n<!-- /mtlzoo:protocol-table -->\nafter")
    with pytest.raises(ValueError, match="balancer-table"):
        hooks.render_markers("<!-- mtlzoo:balancer-tabel -->")


def test_rest_roles_and_literal_markers_render_as_code():
    html = hooks.on_page_content("<p>See :class:<code>Needs</code> and :func:<code>~mtlzoo.evaluate</code>::</p>")
    assert html == "<p>See <code>Needs</code> and <code>mtlzoo.evaluate</code>:</p>"


def test_config_table_has_one_row_per_shipped_config():
    from mtlzoo.config import shipped_configs

    rows = _rows(hooks.config_table())
    assert sorted(rows) == shipped_configs()
    assert "`nash_mtl`" in rows["nyuv2_mtan"] and "MTAN" in rows["nyuv2_mtan"]


def test_schema_table_lists_every_config_key():
    import dataclasses

    from mtlzoo.config import Config

    rows = _rows(hooks.schema_table())
    for section in dataclasses.fields(Config):
        factory = section.default_factory
        keys = [f.name for f in dataclasses.fields(factory)] if dataclasses.is_dataclass(factory) else [section.name]
        assert all(f"`{key}=" in rows[section.name] for key in keys), section.name


def test_balancer_api_documents_every_method_module():
    directives = hooks.balancer_api()
    for name in mtlzoo.list_balancers():
        module = type(mtlzoo.create_balancer(name)).__module__
        assert f"::: {module}\n" in directives, name


def test_the_pages_hold_the_generated_tables_so_they_read_without_a_docs_build():
    stale = [str(p.relative_to(hooks.DOCS)) for p in sorted(hooks.DOCS.rglob("*.md"))
             if hooks.render_markers(p.read_text(encoding="utf-8")) != p.read_text(encoding="utf-8")]
    assert not stale, f"stale generated tables in {stale}: run `python docs/hooks.py --write`"


def test_a_marker_is_filled_between_start_and_end_and_refreshed_in_place(monkeypatch, tmp_path):
    monkeypatch.setitem(hooks.TABLES, "demo-table", lambda: "| a |\n| --- |\n| 1 |")
    page = tmp_path / "page.md"
    page.write_text("intro\n\n<!-- mtlzoo:demo-table -->\n\nafter\n", encoding="utf-8")
    assert hooks.write_pages(tmp_path) == [page]
    filled = page.read_text(encoding="utf-8")
    table = "<!-- mtlzoo:demo-table -->\n| a |\n| --- |\n| 1 |\n<!-- /mtlzoo:demo-table -->"
    assert filled == f"intro\n\n{table}\n\nafter\n"
    monkeypatch.setitem(hooks.TABLES, "demo-table", lambda: "| b |\n| --- |\n| 2 |")
    assert hooks.write_pages(tmp_path) == [page] and "| 2 |" in page.read_text() and "| 1 |" not in page.read_text()
    assert hooks.write_pages(tmp_path) == []  # nothing stale: nothing written
    with pytest.raises(ValueError, match="unknown docs table marker 'nope'"):
        hooks.render_markers("<!-- mtlzoo:nope -->")
