"""One vocabulary: the words the engine reports in are defined by the engine, and the control
plane's model choices take every one of them (a kind the engine sends but the database does
not know would be refused by the admin's forms and shown raw)."""

from apps.sessions.choices import FAILURE_CLASS_CHOICES, EventKind
from apps.sessions.models import ErrorSample, RequestLogEntry, SessionEvent
from apps.workers.vocabulary import EngineEventKind, FailureClass


def test_every_engine_event_kind_is_a_stored_event_kind():
    assert {str(kind) for kind in EngineEventKind} <= set(EventKind.values)


def test_failure_class_choices_are_the_engines_failure_classes():
    assert [value for value, _label in FAILURE_CLASS_CHOICES] == [str(f) for f in FailureClass]
    for model in (ErrorSample, RequestLogEntry):
        assert model._meta.get_field("failure_class").choices == FAILURE_CLASS_CHOICES


def test_event_column_choices_are_the_event_kinds():
    assert SessionEvent._meta.get_field("kind").choices == EventKind.choices
