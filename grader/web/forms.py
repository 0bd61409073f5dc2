"""WTForms: every form carries a CSRF token (Flask-WTF)."""

from __future__ import annotations

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


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class SetPasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), Length(min=8, max=200)])
    confirm = PasswordField(
        "Repeat it", validators=[DataRequired(), EqualTo("password", "The passwords differ.")]
    )


class TokenForm(FlaskForm):
    name = StringField("Token name", validators=[Length(max=100)], default="terminal")


class EmptyForm(FlaskForm):
    """A POST that only needs its CSRF token (logout, revoke, regrade)."""


class UploadForm(FlaskForm):
    model = FileField("Model file", validators=[FileRequired("Choose a model file to upload.")])


def _finite(_form: FlaskForm, field: DecimalField) -> None:
    """NaN and infinity are not scores (and would break the range check after this)."""
    if field.data is not None and not field.data.is_finite():
        raise StopValidation("The score must be a number.")


class OverrideForm(FlaskForm):
    """Set a score (0 to the assignment's maximum, checked by the service) or remove one."""

    score = DecimalField(
        "New score", validators=[Optional(), _finite, NumberRange(min=0, max=10000)]
    )
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(min=3, max=2000)])
    clear = SubmitField("Remove the override")

    def validate_score(self, field: DecimalField) -> None:
        if field.data is None and not self.clear.data:
            raise ValidationError("Give the new score.")


class ConfirmForm(FlaskForm):
    confirm = BooleanField("I understand", validators=[DataRequired()])


class SpecUploadForm(FlaskForm):
    spec = FileField("Spec file (.yaml)", validators=[FileRequired()])


class RosterForm(FlaskForm):
    roster = FileField("Roster (.csv)", validators=[FileRequired()])
