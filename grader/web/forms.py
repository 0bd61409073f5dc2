"""WTForms: every form carries a CSRF token (Flask-WTF)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DecimalField,
    PasswordField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    EqualTo,
    Length,
    NumberRange,
    Optional,
    StopValidation,
    ValidationError,
)


def _without_nul(value: object) -> object:
    return value.replace("\x00", "") if isinstance(value, str) else value


class Form(FlaskForm):
    """Every form's text arrives without NUL: PostgreSQL refuses it in a text column and
    even in a query's parameters (a 500 otherwise, found by tests/web/test_form_fuzz.py)."""

    class Meta:
        def bind_field(self, form: object, unbound_field: Any, options: dict[str, Any]) -> Any:
            filters = [*unbound_field.kwargs.get("filters", ()), _without_nul]
            return unbound_field.bind(form=form, filters=filters, **options)


class LoginForm(Form):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class SetPasswordForm(Form):
    password = PasswordField("New password", validators=[DataRequired(), Length(min=8, max=200)])
    confirm = PasswordField(
        "Repeat it", validators=[DataRequired(), EqualTo("password", "The passwords differ.")]
    )


class TokenForm(Form):
    name = StringField("Token name", validators=[Length(max=100)], default="terminal")


class EmptyForm(Form):
    """A POST that only needs its CSRF token (logout, revoke, regrade)."""


class UploadForm(Form):
    model = FileField("Model file", validators=[FileRequired("Choose a model file to upload.")])


def _finite(_form: FlaskForm, field: DecimalField) -> None:
    """NaN and infinity are not scores (and would break the range check after this)."""
    if field.data is not None and not field.data.is_finite():
        raise StopValidation("The score must be a number.")


class OverrideForm(Form):
    """Set a score (0 to the assignment's maximum, checked by the service) or remove one."""

    score = DecimalField(
        "New score", validators=[Optional(), _finite, NumberRange(min=0, max=10000)]
    )
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(min=3, max=2000)])
    clear = SubmitField("Remove the override")

    def validate_score(self, field: DecimalField) -> None:
        if field.data is None and not self.clear.data:
            raise ValidationError("Give the new score.")


class ConfirmForm(Form):
    confirm = BooleanField("I understand", validators=[DataRequired()])


class SpecUploadForm(Form):
    spec = FileField("Spec file (.yaml)", validators=[FileRequired()])


class RosterForm(Form):
    roster = FileField("Roster (.csv)", validators=[FileRequired()])
