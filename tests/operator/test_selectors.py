import pytest

from flotta.operator.errors import SelectorError
from flotta.operator.selectors import compile_selector
from flotta.schemas.crd.common import LabelSelector


def selector(**kwargs: object) -> LabelSelector:
    return LabelSelector.model_validate(kwargs)


@pytest.mark.parametrize(
    ("spec", "labels", "expected"),
    [
        ({}, {}, True),
        ({"matchLabels": {"app": "x"}}, {"app": "x", "b": "1"}, True),
        ({"matchLabels": {"app": "x"}}, {"app": "y"}, False),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {"a": "1"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
        (
            {
                "matchLabels": {"site": "north"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["edge"]}],
            },
            {"site": "north", "tier": "core"},
            False,
        ),
    ],
)
def test_selector_matches(spec: dict[str, object], labels: dict[str, str], expected: bool) -> None:
    assert compile_selector(selector(**spec)).matches(labels) is expected


def test_in_without_values_is_refused() -> None:
    with pytest.raises(SelectorError, match="needs values"):
        compile_selector(selector(matchExpressions=[{"key": "a", "operator": "In"}]))


def test_exists_with_values_is_refused() -> None:
    with pytest.raises(SelectorError, match="takes no values"):
        compile_selector(
            selector(matchExpressions=[{"key": "a", "operator": "Exists", "values": ["1"]}])
        )
