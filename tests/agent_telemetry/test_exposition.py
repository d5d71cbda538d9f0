import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flotta.agent.telemetry.errors import ExpositionError
from flotta.agent.telemetry.exposition import (
    METRIC_NAME,
    Exposition,
    parse_exposition,
    parse_sample_line,
)

SAMPLE = """\
# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# A free comment
msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9
metric_without_timestamp_and_labels 12.47
something_weird{problem="division by zero"} +Inf -3982045
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.5"} NaN
rpc_duration_seconds_sum 1.7560473e+07
trailing_comma{a="1",} 2
"""


def test_parses_the_reference_example() -> None:
    exposition = parse_exposition(SAMPLE)
    assert exposition.types == {
        "http_requests_total": "counter",
        "rpc_duration_seconds": "summary",
    }
    assert exposition.help["http_requests_total"] == "The total number of HTTP requests."
    first, second, path, plain, weird, nan, total, comma = exposition.samples
    assert first.labels == {"method": "post", "code": "200"}
    assert first.value == 1027
    assert first.timestamp_ms == 1395066363000
    assert second.value == 3
    assert path.labels == {"path": "C:\\DIR\\FILE.TXT", "error": 'Cannot find file:\n"FILE.TXT"'}
    assert path.value == pytest.approx(1.458255915e9)
    assert plain.labels == {}
    assert plain.timestamp_ms is None
    assert weird.value == math.inf
    assert weird.timestamp_ms == -3982045
    assert math.isnan(nan.value)
    assert total.value == pytest.approx(1.7560473e07)
    assert comma.labels == {"a": "1"}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1metric 2", "must start with a metric name"),
        ('m{a="1",a="2"} 1', "appears twice"),
        ('m{a="1" 1', "expected , or }"),
        ('m{a="1\\x"} 1', "invalid escape"),
        ('m{a="1} 1', "unterminated"),
        ('m{1a="x"} 1', "expected a label name"),
        ("m 1 2 3", "value and an optional timestamp"),
        ("m one", "not a number"),
        ("m 1 1.5", "not an integer"),
        ("m", "value and an optional timestamp"),
        ("m{a=1} 1", 'expected ="'),
        ("m{}x 1", "unexpected 'x'"),
    ],
)
def test_rejects_broken_sample_lines(line: str, reason: str) -> None:
    with pytest.raises(ExpositionError, match=reason) as caught:
        parse_sample_line(line, 7)
    assert caught.value.line_number == 7


def test_rejects_bad_type_lines_with_the_line_number() -> None:
    with pytest.raises(ExpositionError, match="line 2: unknown metric type 'histo'"):
        parse_exposition("m 1\n# TYPE m histo\n")
    with pytest.raises(ExpositionError, match="second # TYPE"):
        parse_exposition("# TYPE m gauge\n# TYPE m counter\n")


def test_empty_labels_and_spaces_inside_braces() -> None:
    sample = parse_sample_line('m{ a = "x y" , b="" } -1.5e-3')
    assert sample.labels == {"a": "x y", "b": ""}
    assert sample.value == pytest.approx(-0.0015)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from('abc_:{}=",\\ \t\n#+-.0123456789eEINfa'), max_size=80))
def test_any_text_parses_or_fails_with_an_exposition_error(text: str) -> None:
    result = parse_or_error(text)
    if isinstance(result, ExpositionError):
        assert 1 <= result.line_number <= text.count("\n") + 1
    else:
        assert all(METRIC_NAME.fullmatch(sample.name) for sample in result.samples)


def parse_or_error(text: str) -> Exposition | ExpositionError:
    try:
        return parse_exposition(text)
    except ExpositionError as exc:
        return exc


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True),
        st.text(max_size=20),
        max_size=5,
    ),
    st.floats(allow_nan=False),
)
def test_written_samples_parse_back(labels: dict[str, str], value: float) -> None:
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    rendered = ",".join(f'{k}="{escape(v)}"' for k, v in labels.items())
    written = repr(value) if math.isfinite(value) else ("+Inf" if value > 0 else "-Inf")
    sample = parse_sample_line(f"m{{{rendered}}} {written}")
    assert sample.labels == labels
    assert sample.value == value
