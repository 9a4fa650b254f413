"""The page's pure JavaScript helpers, run as they are in Debian's Chromium.

Each test imports a module the server serves at ``/static/ui/<name>.js`` into the live page and
calls one exported function with edge cases (empty input, one value, NaN, text that is not a
number, degenerate shapes); nothing is uploaded, so the server's model (the suite's small fitted
one) is only there for it to start. The last tests check that the mode choice follows
``/health``'s ``mode_factors`` and nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import math

import httpx
import pytest
from support.browser import CHROMIUM, VIEWPORT
from support.server import Server, server_env

from anomalia.core.roi_mask import AnnulusShape, CircleShape, RectShape
from anomalia.core.scoring import MODE_FACTORS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium; "
                                                     "`make browser` (run by `make test`) installs it"),
]

CALL_JS = """async ([module, name, args]) => {
  const exported = (await import(`/static/ui/${module}.js`))[name];
  try {
    return { value: exported(...args) };
  } catch (error) {
    return { error: error.message };
  }
}"""


@pytest.fixture(scope="module")
def server(single_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("ui_helpers_server")
    running = Server(root, server_env(root, single_model_dir)).start()
    yield running
    running.stop()


def open_page(browser, url: str, *, health_patch: dict | None = None, drop: tuple[str, ...] = ()):
    """A fresh tab on the page; ``health_patch`` / ``drop`` rewrite the page's /health answer."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    if health_patch is not None or drop:
        def rewrite(route):
            body = route.fetch().json()
            body.update(health_patch or {})
            for key in drop:
                body.pop(key, None)
            route.fulfill(status=200, content_type="application/json", body=json.dumps(body))
        page.route("**/health", rewrite)
    page.goto(f"{url}/")
    page.wait_for_selector('#ui-health[data-state="ok"]')
    return context, page, errors


@pytest.fixture(scope="module")
def page(browser, server):
    context, opened, errors = open_page(browser, server.url)
    yield opened
    context.close()
    assert not errors, errors


def js(page, module: str, name: str, *args):
    """``name(...args)`` exported by ``/static/ui/<module>.js``; raises AssertionError if it threw."""
    answer = page.evaluate(CALL_JS, [module, name, list(args)])
    assert "error" not in answer, answer
    return answer.get("value")


def js_error(page, module: str, name: str, *args) -> str:
    """The message ``name(...args)`` threw (the test fails if it did not throw)."""
    answer = page.evaluate(CALL_JS, [module, name, list(args)])
    assert "error" in answer, f"{name}{tuple(args)} returned {answer.get('value')!r} instead of throwing"
    return answer["error"]


# ---- ui-format.js: numbers, file lists, score lists ----

@pytest.mark.parametrize(("args", "text"), [
    ((1.23456,), "1.2346"), ((1.5, 2), "1.50"), ((0,), "0.0000"), ((-0.00004,), "-0.0000"),
    ((math.nan,), "—"), ((math.inf,), "—"), (("1.5",), "—"), ((None,), "—"),
])
def test_fmt(page, args, text):
    assert js(page, "ui-format", "fmt", *args) == text


@pytest.mark.parametrize(("value", "text"), [(0.125, "+0.1250"), (-0.03, "-0.0300"), (0, "0.0000"), (math.nan, "—")])
def test_signed_margin(page, value, text):
    assert js(page, "ui-format", "signed", value) == text


def test_file_summary(page):
    assert js(page, "ui-format", "fileSummary", [{"name": "pieza.png", "size": 1500}]) == "pieza.png · 2 KB"
    assert js(page, "ui-format", "fileSummary", [{"name": "vacía.png", "size": 0}]) == "vacía.png · 0 KB"
    three = [{"name": f"{i}.png", "size": 400 * 1024} for i in range(3)]
    assert js(page, "ui-format", "fileSummary", three) == "3 imágenes · 1.2 MB"


@pytest.mark.parametrize(("text", "numbers"), [
    ("", []), ("  \n\t ", []), ("0.5", [0.5]), ("0.1, 0.2;0.3\n4e-2", [0.1, 0.2, 0.3, 0.04]),
    ("-1 +2 .5 3.", [-1, 2, 0.5, 3]), (",,0.25,,", [0.25]),
])
def test_parse_scores(page, text, numbers):
    assert js(page, "ui-format", "parseScores", text) == numbers


@pytest.mark.parametrize(("text", "bad"), [
    ("0.1 abc", "abc"), ("NaN", "NaN"), ("0.2, Infinity", "Infinity"), ("0x10", "0x10"), ("1e999", "1e999"),
    ("0.1 0.2.3", "0.2.3"), ("1,5e", "5e"),
])
def test_parse_scores_names_the_first_bad_part(page, text, bad):
    assert js_error(page, "ui-format", "parseScores", text) == f"«{bad}» no es un número"


def test_scores_survive_the_text_box(page):
    scores = [0.1, 1 / 3, 2.5, 0]
    text = js(page, "ui-format", "formatScores", scores)
    assert text == "0.10000, 0.33333, 2.50000, 0.00000"
    assert js(page, "ui-format", "parseScores", text) == [0.1, 0.33333, 2.5, 0]
    assert js(page, "ui-format", "formatScores", []) == ""


# ---- ui-threshold.js: modes, effective threshold, slider scale ----

def test_mode_options_follow_the_given_factors(page):
    assert js(page, "ui-threshold", "modeOptions", {"sensitive": 0.8, "strict": 1.2}) == [
        {"value": "", "factor": 1}, {"value": "sensitive", "factor": 0.8}, {"value": "strict", "factor": 1.2}]
    only_valid = js(page, "ui-threshold", "modeOptions",
                    {"a": math.nan, "b": -1, "c": "1.2", "d": 0.9, "": 2, "e": 0, "f": math.inf})
    assert only_valid == [{"value": "", "factor": 1}, {"value": "d", "factor": 0.9}]


@pytest.mark.parametrize("missing", [None, [], "0.8", [0.8, 1.2], {}])
def test_mode_options_without_factors_are_normal_only(page, missing):
    assert js(page, "ui-threshold", "modeOptions", missing) == [{"value": "", "factor": 1}]


@pytest.mark.parametrize(("factor", "text"), [(0.8, "−20 %"), (1.2, "+20 %"), (1, "× 1"), (0.95, "−5 %"),
                                               (2, "+100 %"), (1.001, "× 1")])
def test_factor_text(page, factor, text):
    assert js(page, "ui-threshold", "factorText", factor) == text


def test_expected_threshold(page):
    def expected(base, factor, manual):
        return js(page, "ui-threshold", "expectedThreshold", {"base": base, "factor": factor, "manual": manual})

    assert expected(1.5, 1.2, None) == pytest.approx(1.8)
    assert expected(1.5, 1, 0.7) == 0.7            # the manual threshold replaces the mode
    assert expected(1.5, 0.8, 0) == 0              # 0 is a manual threshold too
    assert expected(None, 1.2, None) is None       # no model: nothing to multiply
    assert expected(math.nan, 1.2, None) is None


@pytest.mark.parametrize(("value", "nice"), [
    (0, 1), (-3, 1), (math.nan, 1), (math.inf, 1), (0.3, 0.5), (0.2, 0.2), (3, 5), (7, 10), (1234, 2000),
    (0.0042, 0.005), (2.2, 2.5),
])
def test_nice_ceil(page, value, nice):
    assert js(page, "ui-threshold", "niceCeil", value) == pytest.approx(nice)


# ---- ui-histogram.js: axis and bins ----

def test_score_range(page):
    assert js(page, "ui-histogram", "scoreRange", [], [], math.nan) is None
    assert js(page, "ui-histogram", "scoreRange", [math.nan], [math.inf], None) is None
    one = js(page, "ui-histogram", "scoreRange", [], [], 0.5)           # one value: ±10 % of it
    assert one == {"low": pytest.approx(0.45), "high": pytest.approx(0.55)}
    zero = js(page, "ui-histogram", "scoreRange", [0], [], 0)           # all zero: ±1
    assert zero == {"low": -1, "high": 1}
    spread = js(page, "ui-histogram", "scoreRange", [1, math.nan, 2, math.inf], [3], 2.5)  # ±8 % of 1..3
    assert spread == {"low": pytest.approx(0.84), "high": pytest.approx(3.16)}


@pytest.mark.parametrize(("n", "bins"), [(0, 8), (1, 8), (9, 9), (16, 12), (100, 30), (10_000, 30)])
def test_bin_count(page, n, bins):
    assert js(page, "ui-histogram", "binCount", n) == bins


def test_bin_counts(page):
    assert js(page, "ui-histogram", "binCounts", [], 0, 1, 4) == [0, 0, 0, 0]
    values = [0, 0.25, 0.5, 0.99, 1, -5, 7, math.nan, math.inf, None]
    assert js(page, "ui-histogram", "binCounts", values, 0, 1, 4) == [2, 1, 1, 3]  # outliers to the ends


def test_histogram(page):
    assert js(page, "ui-histogram", "histogram", {"ok": [], "ng": [], "threshold": None}) is None
    bars = js(page, "ui-histogram", "histogram", {"ok": [1, 2, 3], "ng": [5], "threshold": 4})
    assert bars["low"] == pytest.approx(0.68) and bars["high"] == pytest.approx(5.32)
    assert bars["bins"] == 8 and bars["top"] == 1
    assert bars["okCounts"] == [1, 0, 1, 0, 1, 0, 0, 0] and bars["ngCounts"] == [0, 0, 0, 0, 0, 0, 0, 1]
    single = js(page, "ui-histogram", "histogram", {"ok": [0.5], "ng": [], "threshold": 0.5})
    assert sum(single["okCounts"]) == 1 and single["ngCounts"] == [0] * 8 and single["top"] == 1
    skipped = js(page, "ui-histogram", "histogram", {"ok": [math.nan, 0.2], "ng": [math.inf], "threshold": 0.3})
    assert sum(skipped["okCounts"]) == 1 and sum(skipped["ngCounts"]) == 0
    many = js(page, "ui-histogram", "histogram", {"ok": [i / 100 for i in range(100)], "ng": [], "threshold": 2})
    assert many["bins"] == 30 and sum(many["okCounts"]) == 100 and many["top"] == max(many["okCounts"]) > 1


# ---- ui-shapes.js: shape geometry ----

@pytest.mark.parametrize(("shape", "inside"), [
    ({"kind": "rect", "x": 10, "y": 10, "w": 50, "h": 40}, True),
    ({"kind": "rect", "x": 0, "y": 0, "w": 640, "h": 480}, True),       # the whole image
    ({"kind": "rect", "x": 0, "y": 0, "w": 0, "h": 40}, False),          # no width
    ({"kind": "rect", "x": -1, "y": 0, "w": 10, "h": 10}, False),
    ({"kind": "rect", "x": 600, "y": 0, "w": 41, "h": 10}, False),       # one pixel past the edge
    ({"kind": "rect"}, False),                                           # fields missing
    ({"kind": "circle", "cx": 100, "cy": 100, "r": 100}, True),          # touches two edges
    ({"kind": "circle", "cx": 99, "cy": 100, "r": 100}, False),
    ({"kind": "circle", "cx": 100, "cy": 100, "r": 0}, False),
    ({"kind": "circle", "cx": math.nan, "cy": 100, "r": 10}, False),
    ({"kind": "annulus", "cx": 100, "cy": 100, "r_inner": 0, "r_outer": 50}, True),
    ({"kind": "annulus", "cx": 100, "cy": 100, "r_inner": 50, "r_outer": 50}, False),  # no ring left
    ({"kind": "annulus", "cx": 100, "cy": 100, "r_inner": -1, "r_outer": 50}, False),
    ({"kind": "triangle", "cx": 100, "cy": 100, "r": 10}, False),
    (None, False),
])
def test_fits(page, shape, inside):
    assert js(page, "ui-shapes", "fits", shape, 640, 480) is inside


@pytest.mark.parametrize(("text", "shape"), [
    ('{"kind":"rect","x":1,"y":2,"w":3,"h":4}', {"kind": "rect", "x": 1, "y": 2, "w": 3, "h": 4}),
    ('{"kind":"circle","cx":5,"cy":6,"r":2.5}', {"kind": "circle", "cx": 5, "cy": 6, "r": 2.5}),
    ('{"kind":"annulus","cx":5,"cy":6,"r_inner":1,"r_outer":2}',
     {"kind": "annulus", "cx": 5, "cy": 6, "r_inner": 1, "r_outer": 2}),
    ("", None), ("null", None), ("[]", None), ("42", None), ("no es JSON", None),
    ('{"kind":"polygon","points":[]}', None), ('{"kind":"rect","x":1}', None),
    ('{"kind":"circle","cx":"5","cy":6,"r":2}', None), ('{"kind":"toString"}', None),
])
def test_parse_shape(page, text, shape):
    assert js(page, "ui-shapes", "parseShape", text) == shape


def test_shape_kinds_are_one_frozen_table(page):
    fields, frozen = page.evaluate("""async () => {
      const { SHAPE_FIELDS } = await import("/static/ui/ui-shapes.js");
      return [SHAPE_FIELDS, Object.isFrozen(SHAPE_FIELDS) && Object.values(SHAPE_FIELDS).every(Object.isFrozen)];
    }""")
    server_side = {"rect": RectShape, "circle": CircleShape, "annulus": AnnulusShape}
    assert fields == {kind: [field.name for field in dataclasses.fields(shape)] for kind, shape in server_side.items()}
    assert frozen


def test_describe_shape(page):
    assert js(page, "ui-shapes", "describeShape", {"kind": "rect", "x": 5, "y": 6, "w": 40, "h": 30}) \
        == "Rectángulo 40 × 30 px en (5, 6)"
    assert js(page, "ui-shapes", "describeShape", {"kind": "circle", "cx": 7, "cy": 8, "r": 9}) \
        == "Círculo r = 9 px en (7, 8)"
    assert js(page, "ui-shapes", "describeShape", {"kind": "annulus", "cx": 7, "cy": 8, "r_inner": 2, "r_outer": 9}) \
        == "Anillo r 2–9 px en (7, 8)"


@pytest.mark.parametrize(("tool", "start", "end", "options", "shape"), [
    ("rect", [10, 20], [4, 50], {}, {"kind": "rect", "x": 4, "y": 20, "w": 6, "h": 30}),  # dragged up-left
    ("rect", [10, 20], [12, 50], {}, None),                  # 2 px wide: a click, not a shape
    ("rect", [10, 20], [10, 20], {}, None),
    ("circle", [50, 50], [53, 54], {}, {"kind": "circle", "cx": 50, "cy": 50, "r": 5}),
    ("circle", [10, 50], [90, 50], {}, {"kind": "circle", "cx": 10, "cy": 50, "r": 10}),  # stays in the image
    ("circle", [0, 50], [40, 50], {}, None),                 # centred on the edge: no room
    ("annulus", [50, 50], [50, 90], {"innerRatio": 0.5},
     {"kind": "annulus", "cx": 50, "cy": 50, "r_inner": 20, "r_outer": 40}),
    ("annulus", [50, 50], [53, 50], {"innerRatio": 0.95}, None),   # inner rounds up to the outer radius
    ("annulus", [50, 50], [54, 50], {"innerRatio": 0.05},
     {"kind": "annulus", "cx": 50, "cy": 50, "r_inner": 1, "r_outer": 4}),
])
def test_shape_from_drag(page, tool, start, end, options, shape):
    assert js(page, "ui-shapes", "shapeFromDrag", tool, start, end, {"width": 100, "height": 100, **options}) == shape


@pytest.mark.parametrize(("shape", "key", "step", "after"), [
    ({"kind": "rect", "x": 1, "y": 2, "w": 3, "h": 4}, "ArrowRight", 10,
     {"kind": "rect", "x": 11, "y": 2, "w": 3, "h": 4}),
    ({"kind": "circle", "cx": 5, "cy": 5, "r": 2}, "ArrowUp", 1, {"kind": "circle", "cx": 5, "cy": 4, "r": 2}),
    ({"kind": "rect", "x": 1, "y": 2, "w": 3, "h": 4}, "+", 1, {"kind": "rect", "x": 1, "y": 2, "w": 4, "h": 5}),
    ({"kind": "circle", "cx": 5, "cy": 5, "r": 2}, "-", 1, {"kind": "circle", "cx": 5, "cy": 5, "r": 1}),
    ({"kind": "annulus", "cx": 9, "cy": 9, "r_inner": 5, "r_outer": 8}, "-", 10,   # the hole never goes negative
     {"kind": "annulus", "cx": 9, "cy": 9, "r_inner": 0, "r_outer": -2}),
    ({"kind": "annulus", "cx": 9, "cy": 9, "r_inner": 5, "r_outer": 8}, "=", 1,
     {"kind": "annulus", "cx": 9, "cy": 9, "r_inner": 6, "r_outer": 9}),
    ({"kind": "rect", "x": 1, "y": 2, "w": 3, "h": 4}, "a", 1, None),
])
def test_shape_after_key(page, shape, key, step, after):
    assert js(page, "ui-shapes", "shapeAfterKey", shape, key, step) == after


def test_shape_after_key_leaves_the_shape_alone(page):
    original, moved = page.evaluate("""async () => {
      const { shapeAfterKey } = await import("/static/ui/ui-shapes.js");
      const shape = { kind: "rect", x: 1, y: 2, w: 3, h: 4 };
      const moved = shapeAfterKey(shape, "ArrowDown", 1);
      return [shape, moved];
    }""")
    assert original == {"kind": "rect", "x": 1, "y": 2, "w": 3, "h": 4} and moved["y"] == 3


# ---- ui-api.js and ui-product-inspect.js: messages ----

@pytest.mark.parametrize(("status", "detail", "message"), [
    (422, [{"loc": ["query", "mode"], "msg": "Input should be 'sensitive' or 'strict'"}],
     "422 · Parámetros no válidos: mode: Input should be 'sensitive' or 'strict'"),
    (422, [{"loc": ["body"], "msg": "Field required"}, "raw"], "422 · Parámetros no válidos: Field required; raw"),
    (0, None, "Sin conexión con el servidor"),
    (418, "tetera", "418 · Error 418: tetera"),
    (404, {"a": 1}, '404 · No encontrado: {"a":1}'),
    (500, "", "500 · Error del servidor"),
])
def test_describe_error(page, status, detail, message):
    assert js(page, "ui-api", "describeError", status, detail) == message


def test_explain_verdict(page):
    regions = [{"area_mm2": 0.5}, {"area_mm2": 2.0}]
    base = {"score": 0.9, "threshold": 0.5, "area_mm2_thr": 1, "regions": regions}
    assert js(page, "ui-product-inspect", "explainVerdict", {**base, "is_ng": True}) \
        == "score 0.9000 > umbral 0.5000 y 1 región(es) ≥ 1.00 mm²"
    assert js(page, "ui-product-inspect", "explainVerdict", {**base, "is_ng": False, "regions": regions[:1]}) \
        == "score sobre el umbral, pero ninguna región alcanza 1.00 mm²"
    assert js(page, "ui-product-inspect", "explainVerdict", {**base, "score": 0.5, "is_ng": False, "regions": []}) \
        == "score 0.5000 ≤ umbral 0.5000"


# ---- ui-record-text.js: the "Historial" tab's texts and query ----

def test_product_text(page):
    assert js(page, "ui-record-text", "productText", {"source": "artifacts", "role_id": None}) == "modelo único"
    assert js(page, "ui-record-text", "productText",
              {"source": "product", "role_id": "carcasa", "roi_id": "tornillo"}) == "carcasa / tornillo"
    assert js(page, "ui-record-text", "productText", {"source": "product", "role_id": None, "roi_id": None}) == "—"


@pytest.mark.parametrize(("verdict", "review", "text"), [
    ("NG", None, "Sin revisar"), ("OK", None, "Sin revisar"),
    ("NG", {"label": "ok"}, "OK (falso NG)"), ("NG", {"label": "ng"}, "NG confirmado"),
    ("OK", {"label": "ok"}, "OK confirmado"), ("OK", {"label": "ng"}, "NG no detectado"),
])
def test_review_text_reads_the_label_against_the_verdict(page, verdict, review, text):
    assert js(page, "ui-record-text", "reviewText", verdict, review) == text


def test_review_choices(page):
    assert js(page, "ui-record-text", "reviewChoices", "NG") == [{"label": "ok", "text": "OK (falso NG)"},
                                                                 {"label": "ng", "text": "NG confirmado"}]
    assert [c["text"] for c in js(page, "ui-record-text", "reviewChoices", "OK")] == ["OK confirmado",
                                                                                     "NG no detectado"]


def test_record_query_leaves_out_empty_filters(page):
    filters = {"role_id": " carcasa ", "roi_id": "", "verdict": "NG", "part_id": "  ", "since": None}
    assert js(page, "ui-record-text", "recordQuery", filters) == "role_id=carcasa&verdict=NG"
    assert js(page, "ui-record-text", "recordQuery", {"part_id": "a&b=c"}, {"limit": 50, "cursor": None}) == \
        "part_id=a%26b%3Dc&limit=50"
    assert js(page, "ui-record-text", "recordQuery", {}) == ""


def test_dates_between_the_operator_clock_and_utc(page):
    assert js(page, "ui-record-text", "isoFromLocal", "") == ""
    local = js(page, "ui-record-text", "isoFromLocal", "2024-05-01T13:45:07")
    assert js(page, "ui-record-text", "localTime", local) == "2024-05-01 13:45:07"  # and back, whatever the zone
    assert js_error(page, "ui-record-text", "isoFromLocal", "ayer") == "«ayer» no es una fecha"
    assert js(page, "ui-record-text", "localTime", None) == "—"
    assert js(page, "ui-record-text", "localTime", "no es una fecha") == "—"


# ---- the mode choice has one source: /health's mode_factors ----

def mode_choice(page) -> dict:
    return page.evaluate("""() => {
      const group = document.getElementById("inspect-mode-group");
      const radios = [...group.querySelectorAll('input[name="inspect-mode"]')];
      return { disabled: group.disabled, values: radios.map((r) => r.value),
               labels: radios.map((r) => r.parentElement.textContent.trim()),
               checked: radios.filter((r) => r.checked).map((r) => r.value),
               source: document.getElementById("inspect-thr-source").textContent };
    }""")


def test_health_names_the_mode_factors(server):
    assert httpx.get(f"{server.url}/health").json()["mode_factors"] == MODE_FACTORS


def test_the_modes_are_the_servers(page):
    choice = mode_choice(page)
    assert not choice["disabled"] and choice["values"] == ["", *MODE_FACTORS] and choice["checked"] == [""]
    assert choice["labels"] == ["Normal × 1", "Sensible −20 %", "Estricto +20 %"]


def test_other_factors_from_the_server_change_the_page(browser, server):
    factors = {"sensitive": 0.5, "strict": 1.5, "lenient": 0.9}
    context, page, errors = open_page(browser, server.url, health_patch={"mode_factors": factors, "threshold": 2.0})
    try:
        choice = mode_choice(page)
        assert choice["values"] == ["", "sensitive", "strict", "lenient"]
        assert choice["labels"] == ["Normal × 1", "Sensible −50 %", "Estricto +50 %", "lenient −10 %"]
        page.click('label:has(input[name="inspect-mode"][value="strict"])')
        assert page.inner_text("#inspect-effective") == "3.0000"
        assert mode_choice(page)["source"] == "base 2.0000 × 1.5 (modo estricto)"
    finally:
        context.close()
    assert not errors, errors


def test_without_mode_factors_the_mode_choice_is_disabled(browser, server):
    context, page, errors = open_page(browser, server.url, health_patch={"threshold": 2.0}, drop=("mode_factors",))
    try:
        choice = mode_choice(page)
        assert choice["disabled"] and choice["values"] == [""] and choice["checked"] == [""]
        assert page.inner_text("#inspect-effective") == "2.0000"
        assert choice["source"] == "base 2.0000 × 1 (modo normal)"
    finally:
        context.close()
    assert not errors, errors
