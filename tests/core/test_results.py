"""Reading a trial's outcome from its termination message or its log."""

from __future__ import annotations

import json

from kubetune.api import TrialState
from kubetune.results import MESSAGE_LIMIT, last_json_object, parse_outcome

RESULT = {"val_accuracy": 0.9375, "val_loss": 0.21, "train_seconds": 12.5, "note": "cnn"}


def test_termination_message_json() -> None:
    outcome = parse_outcome("val_accuracy", 0, json.dumps(RESULT), log="noise\n")
    assert outcome.state == TrialState.succeeded
    assert outcome.value == 0.9375
    # numeric metrics are kept, strings dropped
    assert outcome.metrics == {"val_accuracy": 0.9375, "val_loss": 0.21, "train_seconds": 12.5}
    assert outcome.reason is None


def test_termination_message_wins_over_the_log() -> None:
    log = json.dumps({"val_accuracy": 0.1}) + "\n"
    outcome = parse_outcome("val_accuracy", 0, json.dumps(RESULT), log)
    assert outcome.value == 0.9375


def test_falls_back_to_the_last_json_line_of_the_log() -> None:
    log = "\n".join([
        "Epoch 1/2",
        json.dumps({"val_accuracy": 0.5, "epoch": 1}),
        "{not json at all}",
        json.dumps({"val_accuracy": 0.75, "epoch": 2}),
        "done.",
        "",
    ])
    for message in (None, "", "   \n"):
        outcome = parse_outcome("val_accuracy", 0, message, log)
        assert outcome.state == TrialState.succeeded
        assert outcome.value == 0.75
        assert outcome.metrics == {"val_accuracy": 0.75, "epoch": 2.0}


def test_last_json_line_inside_a_termination_message() -> None:
    message = "training finished\n" + json.dumps(RESULT)
    assert parse_outcome("val_accuracy", 0, message).value == 0.9375


def test_last_json_object_ignores_arrays_and_broken_lines() -> None:
    assert last_json_object('{"a": 1}\n[1, 2]\n{"b": 2\n') == {"a": 1}
    assert last_json_object("") is None
    assert last_json_object(None) is None


def test_integer_metric_is_a_float() -> None:
    outcome = parse_outcome("correct", 0, '{"correct": 17}')
    assert outcome.value == 17.0
    assert type(outcome.value) is float


def test_missing_metric() -> None:
    outcome = parse_outcome("val_accuracy", 0, json.dumps({"val_loss": 0.3, "acc": 0.9}))
    assert outcome.state == TrialState.failed
    assert outcome.reason == "MetricMissing"
    assert "'val_accuracy'" in (outcome.message or "")
    assert "acc, val_loss" in (outcome.message or "")
    assert outcome.value is None
    assert outcome.metrics == {"val_loss": 0.3, "acc": 0.9}


def test_metric_that_is_not_a_number() -> None:
    for value in ("0.9", True, None, [0.9]):
        outcome = parse_outcome("val_accuracy", 0, json.dumps({"val_accuracy": value}))
        assert outcome.state == TrialState.failed, value
        assert outcome.reason == "MetricNotANumber", value


def test_nan_and_infinity_are_not_finite() -> None:
    # Python's json writes and reads NaN / Infinity, so a trainer can report them
    for value in (float("nan"), float("inf"), float("-inf")):
        text = json.dumps({"val_accuracy": value, "val_loss": 0.5})
        outcome = parse_outcome("val_accuracy", 0, text)
        assert outcome.state == TrialState.failed
        assert outcome.reason == "MetricNotFinite"
        assert outcome.value is None
        assert "val_accuracy is" in (outcome.message or "")
        assert outcome.metrics == {"val_loss": 0.5}  # non-finite numbers are not kept
    from_log = parse_outcome("val_accuracy", 0, None, 'loss exploded\n{"val_accuracy": NaN}\n')
    assert from_log.reason == "MetricNotFinite"


def test_nonzero_exit_is_an_error_with_its_message() -> None:
    outcome = parse_outcome("val_accuracy", 1, json.dumps({"reason": "loss is NaN at step 40"}))
    assert outcome.state == TrialState.failed
    assert outcome.reason == "Error"
    assert outcome.message == "exit code 1: loss is NaN at step 40"


def test_nonzero_exit_wins_over_a_good_result() -> None:
    outcome = parse_outcome("val_accuracy", 137, json.dumps(RESULT))
    assert outcome.state == TrialState.failed
    assert outcome.reason == "Error"
    assert (outcome.message or "").startswith("exit code 137")
    assert outcome.value is None


def test_nonzero_exit_quotes_the_log_tail() -> None:
    log = "\n".join(f"line {i}" for i in range(20)) + "\nValueError: bad flag --lr\n"
    outcome = parse_outcome("val_accuracy", 2, None, log)
    assert outcome.reason == "Error"
    assert (outcome.message or "").startswith("exit code 2: ")
    assert "ValueError: bad flag --lr" in (outcome.message or "")
    assert "line 0" not in (outcome.message or "")  # only the tail
    assert parse_outcome("val_accuracy", 3).message == "exit code 3"


def test_no_json_is_no_result() -> None:
    for message, log in ((None, None), ("", "just text\nno result\n"), ("Segfault", "[1, 2]")):
        outcome = parse_outcome("val_accuracy", 0, message, log)
        assert outcome.state == TrialState.failed
        assert outcome.reason == "NoResult"
        assert "no JSON object" in (outcome.message or "")


def test_unknown_exit_code_is_judged_by_the_result() -> None:
    assert parse_outcome("val_accuracy", None, json.dumps(RESULT)).state == TrialState.succeeded


def test_long_messages_are_truncated_to_the_tail() -> None:
    reason = "x" * 5000 + "THE END"
    outcome = parse_outcome("val_accuracy", 1, json.dumps({"reason": reason}))
    message = outcome.message or ""
    assert len(message) <= MESSAGE_LIMIT + 3
    assert message.startswith("...")
    assert message.endswith("THE END")
