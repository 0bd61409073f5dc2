"""Log in and out, one-time set-up links from a roster import, and API tokens."""

from __future__ import annotations

import secrets

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from grader.service.db import db
from grader.service.models import ApiToken, User, hash_token, utcnow
from grader.web.access import MAX_ID
from grader.web.extensions import limiter
from grader.web.forms import EmptyForm, LoginForm, SetPasswordForm, TokenForm

bp = Blueprint("auth", __name__)


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _address_limit() -> str:
    """All accounts from one address together: guessing across a class is bounded too."""
    return current_app.config["LOGIN_ADDRESS_RATE_LIMIT"]


def _address_and_username() -> str:
    """Login attempts are counted per account and address: a flood of wrong passwords
    for one account does not lock out the other students behind the same NAT."""
    username = (request.form.get("username") or "").strip().lower()[:80]
    return f"{get_remote_address()}|{username}"


def _safe_next(target: str | None) -> str | None:
    """Only same-site relative paths: no open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=_address_and_username)
@limiter.limit(_address_limit, methods=["POST"])
def login() -> str | Response:
    if current_user.is_authenticated:
        return redirect(url_for("student.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = db.session.scalar(select(User).where(User.username == form.username.data))
        if user is not None and user.active and user.check_password(form.password.data or ""):
            login_user(user)
            return redirect(_safe_next(request.args.get("next")) or url_for("student.index"))
        flash("Wrong username or password.", "error")
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
def logout() -> Response:
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    logout_user()
    return redirect(url_for("auth.login"))


@bp.route("/welcome/<token>", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def welcome(token: str) -> str | Response:
    """The one-time link from a roster import: choose a password, then log in."""
    user = db.session.scalar(select(User).where(User.setup_token_hash == hash_token(token)))
    if (
        user is None
        or user.setup_token_expires is None
        or user.setup_token_expires < utcnow()
        or not user.active
    ):
        abort(404)
    form = SetPasswordForm()
    if form.validate_on_submit():
        user.set_password(form.password.data or "")
        user.setup_token_hash = None
        user.setup_token_expires = None
        db.session.commit()
        login_user(user)
        flash("Your password is set.", "ok")
        return redirect(url_for("student.index"))
    return render_template("auth/welcome.html", form=form, user=user)


@bp.route("/account", methods=["GET"])
@login_required
def account() -> str:
    tokens = db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == current_user.id).order_by(ApiToken.id)
    ).all()
    return render_template(
        "auth/account.html",
        tokens=tokens,
        token_form=TokenForm(),
        password_form=SetPasswordForm(),
        empty_form=EmptyForm(),
        new_token=None,
    )


@bp.post("/account/password")
@login_required
def change_password() -> str | Response:
    form = SetPasswordForm()
    if form.validate_on_submit():
        current_user.set_password(form.password.data or "")
        db.session.commit()
        flash("Password changed.", "ok")
    else:
        for errors in form.errors.values():
            for error in errors:
                flash(str(error), "error")
    return redirect(url_for("auth.account"))


@bp.post("/account/tokens")
@login_required
def create_token() -> str | Response:
    form = TokenForm()
    if not form.validate_on_submit():
        abort(400)
    raw = "gr_" + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=current_user.id,
        name=(form.name.data or "terminal")[:100],
        token_hash=hash_token(raw),
        prefix=raw[:8],
    )
    db.session.add(token)
    db.session.commit()
    tokens = db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == current_user.id).order_by(ApiToken.id)
    ).all()
    # Shown once; only its hash is kept.
    return render_template(
        "auth/account.html",
        tokens=tokens,
        token_form=TokenForm(formdata=None),
        password_form=SetPasswordForm(formdata=None),
        empty_form=EmptyForm(),
        new_token=raw,
    )


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int) -> Response:
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    token = db.session.get(ApiToken, token_id) if 0 < token_id <= MAX_ID else None
    if token is None or token.user_id != current_user.id:
        abort(404)
    db.session.delete(token)
    db.session.commit()
    flash("Token revoked.", "ok")
    return redirect(url_for("auth.account"))
