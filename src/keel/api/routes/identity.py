"""Sign-in, sessions, API tokens, invitations, provider users."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from keel.accounts import auth
from keel.accounts import service as accounts
from keel.api.deps import SESSION_COOKIE, Page, current_actor, get_keel
from keel.api.idempotency import idempotent
from keel.api.models import InvitationAccept, SignIn, TokenCreate, UserCreate

router = APIRouter(tags=["identity"])


@router.post("/auth/sign-in")
def sign_in(body: SignIn, response: Response, keel=Depends(get_keel)):
    secret, session = auth.sign_in(keel, body.email, body.password)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        httponly=True,
        samesite="strict",
        secure=keel.settings.secure_cookies,
        max_age=keel.settings.session_ttl_minutes * 60,
        path="/",
    )
    return session


@router.post("/auth/sign-out", status_code=204)
def sign_out(request: Request, response: Response, actor=Depends(current_actor), keel=Depends(get_keel)):
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        auth.sign_out(keel, actor, secret)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = 204
    return response


@router.post("/auth/invitations/accept")
def accept_invitation(body: InvitationAccept, keel=Depends(get_keel)):
    return accounts.accept_invitation(keel, body.token, body.password)


@router.get("/me")
def me(actor=Depends(current_actor), keel=Depends(get_keel)):
    view = accounts.get_user(keel, actor, actor.user_id)
    return {**view, "effective_roles": sorted(actor.roles), "auth": actor.auth}


@router.post("/me/tokens", status_code=201)
async def create_token(
    body: TokenCreate, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    return await idempotent(
        request,
        actor,
        lambda: auth.create_token(keel, actor, name=body.name, roles=body.roles, ttl_days=body.ttl_days),
    )


@router.get("/me/tokens")
def list_tokens(actor=Depends(current_actor), keel=Depends(get_keel)):
    return {"items": auth.list_tokens(keel, actor), "next_cursor": None}


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return auth.revoke_token(keel, actor, token_id)


@router.post("/users", status_code=201)
async def create_provider_user(
    body: UserCreate, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    return await idempotent(request, actor, lambda: accounts.create_user(keel, actor, **body.model_dump()))


@router.get("/users")
def list_provider_users(page: Page = Depends(), actor=Depends(current_actor), keel=Depends(get_keel)):
    items = accounts.list_users(keel, actor, tenant_id=None, after=page.after, limit=page.limit + 1)
    return page.render(items, "id")


@router.get("/users/{user_id}")
def get_user(user_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return accounts.get_user(keel, actor, user_id)


@router.post("/users/{user_id}/invitation", status_code=201)
def reissue_invitation(user_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    """A new one-time invitation for a user who never accepted one (the old ones stop working)."""
    return accounts.reissue_invitation(keel, actor, user_id)
