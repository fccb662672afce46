"""Team seats from signed Stripe webhooks, seat changes through Stripe, the effective tier of members."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as global_apps
from django.test import override_settings
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.tokens import tokens_issue
from apps.billing.models import BillingAccount
from apps.billing.throttles import TierRateThrottle
from apps.teams.models import Membership, Team, TeamRole
from apps.teams.seats import team_seats_grant
from apps.teams.services import team_create

from .helpers import subscribe

pytestmark = pytest.mark.django_db


def _client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_issue(user=user).access_token}")
    return client


def _tier(user: User) -> str:
    return User.objects.get(pk=user.pk).tier


def _team(owner: User) -> Team:
    team_id = _client(owner).post("/api/v1/teams", {"name": "Agency"}, format="json").json()["id"]
    return Team.objects.get(pk=team_id)


def _join(team: Team, owner: User, invitee: User) -> None:
    invitation = (
        _client(owner).post(f"/api/v1/teams/{team.pk}/invitations", {"email": invitee.email}, format="json").json()
    )
    response = _client(invitee).post(f"/api/v1/teams/invitations/{invitation['id']}/accept")
    assert response.status_code == 200, response.json()


@pytest.fixture
def paid_team(user, plans, fake_stripe, deliver):
    """``user`` owns a team whose subscription has five seats (as Stripe's webhook reports)."""
    team = _team(user)
    sub = subscribe(fake_stripe, user, "team", seats=5)
    deliver(fake_stripe.event("customer.subscription.created", sub))
    return team, sub


def test_a_subscription_with_quantity_5_gives_the_owners_team_five_seats(paid_team, user):
    team, _ = paid_team

    body = _client(user).get("/api/v1/teams/current").json()

    assert Team.objects.get(pk=team.pk).subscribed_seats == 5
    assert (body["seats"], body["seats_used"]) == (5, 1)
    assert _tier(user) == "team"


def test_members_get_the_team_tier_and_fall_back_to_their_own_when_removed(paid_team, user, make_user):
    # given a member with their own pro plan and one with none
    team, _ = paid_team
    member = make_user("m@agency.example", email_verified=True)
    free = make_user("f@agency.example", email_verified=True)
    User.objects.filter(pk=member.pk).update(tier="pro")  # stands in for a pro subscription below

    # when both join
    _join(team, user, member)
    _join(team, user, free)

    # then both have the team tier, recomputed by the one writer
    assert (_tier(member), _tier(free)) == ("team", "team")

    # when the free one is removed
    assert _client(user).delete(f"/api/v1/teams/{team.pk}/members/{free.pk}").status_code == 204

    # then they fall back to their own (free) plan
    assert _tier(free) == "free"


def test_a_members_own_plan_counts_after_the_team_ends(paid_team, user, make_user, fake_stripe, deliver):
    # given a member who also pays for pro themselves
    team, sub = paid_team
    member = make_user("m@agency.example", email_verified=True)
    own = subscribe(fake_stripe, member, "pro")
    deliver(fake_stripe.event("customer.subscription.created", own))
    _join(team, user, member)
    assert _tier(member) == "team"

    # when the team's subscription ends
    fake_stripe.set_status(sub["id"], "canceled")
    deliver(fake_stripe.event("customer.subscription.deleted", fake_stripe.objects["subscriptions"][sub["id"]]))

    # then each falls back to their own plan
    assert _tier(member) == "pro"
    assert _tier(user) == "free"
    assert Team.objects.get(pk=team.pk).seats == 0


def test_quantity_cut_below_the_members_marks_the_team_over_and_removes_nobody(
    paid_team, user, make_user, fake_stripe, deliver
):
    # given four members of five seats
    team, sub = paid_team
    members = [make_user(f"m{n}@agency.example", email_verified=True) for n in range(3)]
    for member in members:
        _join(team, user, member)

    # when the quantity is lowered to 2 from the Stripe dashboard
    current = fake_stripe.objects["subscriptions"][sub["id"]]
    current["items"]["data"][0]["quantity"] = 2
    response = deliver(fake_stripe.event("customer.subscription.updated", current))

    # then the team is over its seats, refuses invitations, and everyone stays (with the team tier)
    assert response.status_code == 200
    body = _client(user).get("/api/v1/teams/current").json()
    assert (body["seats"], body["members"], body["over_seats"]) == (2, 4, True)
    invite = _client(user).post(f"/api/v1/teams/{team.pk}/invitations", {"email": "x@agency.example"}, format="json")
    assert invite.status_code == 409
    assert invite.json()["code"] == "no_free_seat"
    assert Membership.objects.filter(team=team).count() == 4
    assert {_tier(member) for member in members} == {"team"}


def test_seats_change_through_stripe_with_proration(paid_team, user, fake_stripe):
    team, sub = paid_team

    response = _client(user).patch(f"/api/v1/teams/{team.pk}", {"seats": 8}, format="json")

    assert response.status_code == 200
    assert response.json()["seats"] == 8
    updates = [r for r in fake_stripe.requests if r[0] == "POST" and r[1] == f"/v1/subscriptions/{sub['id']}"]
    assert updates
    assert updates[-1][2]["proration_behavior"] == "create_prorations"
    assert updates[-1][2]["items"][0]["quantity"] == "8"
    assert BillingAccount.objects.get(user=user).seats == 8
    assert Team.objects.get(pk=team.pk).subscribed_seats == 8


def test_seats_never_go_below_the_seats_in_use(paid_team, user, make_user, fake_stripe):
    team, _ = paid_team
    _join(team, user, make_user("m@agency.example", email_verified=True))
    _client(user).post(f"/api/v1/teams/{team.pk}/invitations", {"email": "p@agency.example"}, format="json")
    calls_before = len(fake_stripe.requests)

    response = _client(user).patch(f"/api/v1/teams/{team.pk}", {"seats": 2}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "seats_in_use"
    assert response.json()["seats_used"] == 3
    assert len(fake_stripe.requests) == calls_before
    assert Team.objects.get(pk=team.pk).subscribed_seats == 5


def test_granted_seats_cannot_be_changed_through_stripe(user, plans, fake_stripe):
    team = _team(user)
    team_seats_grant(team=team, seats=3, until=None, actor=None)

    response = _client(user).patch(f"/api/v1/teams/{team.pk}", {"seats": 4}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "no_subscription"


def test_team_checkout_makes_the_buyer_a_team_and_buys_the_seats(user, auth_client, plans, fake_stripe):
    response = auth_client.post("/api/v1/billing/checkout", {"tier": "team", "seats": 5}, format="json")

    assert response.status_code == 200
    session = next(iter(fake_stripe.objects["checkout_sessions"].values()))
    assert session["line_items_requested"][0]["quantity"] == "5"
    assert Membership.objects.get(user=user).role == TeamRole.OWNER


def test_a_team_member_cannot_buy_the_team_plan(paid_team, user, make_user, plans, fake_stripe):
    team, _ = paid_team
    member = make_user("m@agency.example", email_verified=True)
    _join(team, user, member)

    response = _client(member).post("/api/v1/billing/checkout", {"tier": "team", "seats": 5}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "team_role_required"


def test_deleting_a_paid_team_cancels_at_period_end_and_ends_it_with_the_subscription(
    paid_team, user, make_user, fake_stripe, deliver
):
    # given
    team, sub = paid_team
    member = make_user("m@agency.example", email_verified=True)
    _join(team, user, member)

    # when the owner deletes it
    response = _client(user).delete(f"/api/v1/teams/{team.pk}")

    # then Stripe cancels at period end and members keep the team tier until then
    assert response.status_code == 204
    assert fake_stripe.objects["subscriptions"][sub["id"]]["cancel_at_period_end"] is True
    assert _tier(member) == "team"
    assert Team.objects.filter(pk=team.pk).exists()

    # when the period ends
    fake_stripe.set_status(sub["id"], "canceled")
    deliver(fake_stripe.event("customer.subscription.deleted", fake_stripe.objects["subscriptions"][sub["id"]]))

    # then the team is gone and members fall back
    assert not Team.objects.filter(pk=team.pk).exists()
    assert (_tier(member), _tier(user)) == ("free", "free")


def test_existing_team_subscribers_get_a_team_in_the_data_migration(make_user):
    # given a team-plan subscriber from before teams, with 4 seats
    subscriber = make_user("old@agency.example")
    User.objects.filter(pk=subscriber.pk).update(tier="team")
    BillingAccount.objects.create(user=subscriber, seats=4)
    migration = importlib.import_module("apps.billing.migrations.0004_team_subscribers_get_a_team")

    # when
    migration.team_subscribers_get_a_team(global_apps, None)

    # then they own a team of four seats; their account is unchanged
    membership = Membership.objects.select_related("team").get(user=subscriber)
    assert membership.role == TeamRole.OWNER
    assert membership.team.subscribed_seats == 4
    assert _tier(subscriber) == "team"


class _Request:
    def __init__(self, user: User) -> None:
        self.user = user


@override_settings(BILLING_RATE_LIMIT_SCALE=1)
def test_each_team_member_has_their_own_200_requests_a_minute(make_user):
    # given a granted team of three with two members
    owner, member = make_user(email_verified=True), make_user(email_verified=True)
    team = team_create(user=owner, name="Agency")
    team_seats_grant(team=team, seats=3, until=None, actor=None)
    Membership.objects.create(team=team, user=member, role=TeamRole.MEMBER)
    team_seats_grant(team=team, seats=3, until=None, actor=None)  # recompute both members' tiers
    owner.refresh_from_db()
    member.refresh_from_db()
    throttle = TierRateThrottle()

    # when the owner spends more than a budget, then the member calls
    owner_allowed = sum(throttle.allow_request(_Request(owner), None) for _ in range(260))
    member_allowed = sum(throttle.allow_request(_Request(member), None) for _ in range(260))

    # then each had 200, not a pool of 600 on the owner
    assert (owner.tier, member.tier) == ("team", "team")
    assert (owner_allowed, member_allowed) == (200, 200)


def _transfer(team: Team, owner: User, to: User):
    return _client(owner).patch(f"/api/v1/teams/{team.pk}/members/{to.pk}", {"role": "owner"}, format="json")


def test_handing_ownership_over_moves_the_paying_customer_to_the_new_owner(paid_team, user, make_user, fake_stripe):
    from djstripe.models import Customer

    from apps.core.audit import AuditAction
    from apps.core.models import AuditEvent

    # given a paid team of five seats and a member with no billing of their own
    team, sub = paid_team
    successor = make_user("next@agency.example", email_verified=True)
    _join(team, user, successor)

    # when the owner hands the team over
    response = _transfer(team, user, successor)

    # then the Stripe customer that pays the team bills the new owner, in Stripe and in dj-stripe
    assert response.status_code == 200, response.content
    customer = fake_stripe.objects["customers"][sub["customer"]]
    assert customer["email"] == "next@agency.example"
    assert customer["metadata"]["djstripe_subscriber"] == str(successor.pk)
    assert customer["metadata"]["team_id"] == str(team.pk)
    assert Customer.objects.get(id=sub["customer"]).subscriber_id == successor.pk
    # and the audit trail says what moved
    event = AuditEvent.objects.get(action=AuditAction.TEAM_OWNERSHIP_TRANSFERRED)
    assert event.data["subscription_moved"] is True
    assert event.data["subscription"] == sub["id"]
    # and the previous owner can leave: the team keeps its seats, they fall back to their own (free) tier
    left = _client(user).delete(f"/api/v1/teams/{team.pk}/members/{user.pk}")
    assert left.status_code == 204
    assert Team.objects.get(pk=team.pk).subscribed_seats == 5
    assert (_tier(user), _tier(successor)) == ("free", "team")


def test_a_new_owner_with_their_own_customer_takes_the_team_but_not_the_subscription(
    paid_team, user, make_user, fake_stripe
):
    from djstripe.models import Customer

    from apps.billing.subscriptions import customer_get_or_create
    from apps.core.audit import AuditAction
    from apps.core.models import AuditEvent

    # given a member who already pays Stripe for their own plan
    team, sub = paid_team
    successor = make_user("pro@agency.example", email_verified=True)
    own = customer_get_or_create(user=successor)
    _join(team, user, successor)

    # when the owner hands the team over
    response = _transfer(team, user, successor)

    # then the ownership moves, the paying customer stays the previous owner's (now an admin), said in the audit
    assert response.status_code == 200, response.content
    assert Membership.objects.get(user=successor).role == TeamRole.OWNER
    assert Membership.objects.get(user=user).role == TeamRole.ADMIN
    assert Customer.objects.get(id=sub["customer"]).subscriber_id == user.pk
    assert Customer.objects.get(id=own.id).subscriber_id == successor.pk
    assert fake_stripe.objects["customers"][sub["customer"]]["email"] != "pro@agency.example"
    event = AuditEvent.objects.get(action=AuditAction.TEAM_OWNERSHIP_TRANSFERRED)
    assert (event.data["subscription_moved"], event.data["subscription_reason"]) == (False, "new_owner_has_a_customer")
    assert Team.objects.get(pk=team.pk).subscribed_seats == 5


def _staff_make_owner(make_user, membership: Membership):
    from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
    from django.test import Client

    staff = Client()
    staff.force_login(make_user("staff@adiuva.example", is_staff=True, is_superuser=True))
    return staff.post(
        "/admin/teams/membership/",
        {"action": "make_owner", ACTION_CHECKBOX_NAME: [str(membership.pk)], "index": 0},
        follow=True,
    )


def test_staff_handing_a_paid_team_over_in_the_admin_moves_the_paying_customer(paid_team, user, make_user, fake_stripe):
    from djstripe.models import Customer

    from apps.core.audit import AuditAction
    from apps.core.models import AuditEvent

    # given a paid team and a member with no billing of their own
    team, sub = paid_team
    successor = make_user("next@agency.example", email_verified=True)
    _join(team, user, successor)

    # when staff make the member the owner with the admin action
    response = _staff_make_owner(make_user, Membership.objects.get(user=successor))

    # then the same service moved the paying customer, and staff are named in the audit
    assert response.status_code == 200
    assert Membership.objects.get(user=successor).role == TeamRole.OWNER
    assert Customer.objects.get(id=sub["customer"]).subscriber_id == successor.pk
    assert fake_stripe.objects["customers"][sub["customer"]]["email"] == "next@agency.example"
    event = AuditEvent.objects.get(action=AuditAction.TEAM_OWNERSHIP_TRANSFERRED)
    assert event.actor is not None
    assert event.actor.email == "staff@adiuva.example"
    assert event.data["subscription_moved"] is True
    assert (_tier(user), _tier(successor)) == ("team", "team")


def test_when_another_admin_pays_a_transfer_moves_the_team_but_not_the_subscription(
    paid_team, user, make_user, fake_stripe
):
    from djstripe.models import Customer

    from apps.billing.subscriptions import customer_get_or_create
    from apps.core.audit import AuditAction
    from apps.core.models import AuditEvent

    # given a paid team handed to a member with their own customer: the payer is now an admin
    team, sub = paid_team
    second = make_user("pro@agency.example", email_verified=True)
    customer_get_or_create(user=second)
    _join(team, user, second)
    assert _transfer(team, user, second).status_code == 200
    third = make_user("third@agency.example", email_verified=True)
    _join(team, second, third)
    requests_before = fake_stripe.count("POST", f"/v1/customers/{sub['customer']}")

    # when the owner (who does not pay) hands the team to a third member
    response = _transfer(team, second, third)

    # then ownership moves; the subscription stays with the admin who pays it, untouched in Stripe
    assert response.status_code == 200, response.content
    assert Membership.objects.get(user=third).role == TeamRole.OWNER
    assert Membership.objects.get(user=second).role == TeamRole.ADMIN
    assert Membership.objects.get(user=user).role == TeamRole.ADMIN
    assert Customer.objects.get(id=sub["customer"]).subscriber_id == user.pk
    assert fake_stripe.count("POST", f"/v1/customers/{sub['customer']}") == requests_before
    event = AuditEvent.objects.filter(action=AuditAction.TEAM_OWNERSHIP_TRANSFERRED).latest("created_at")
    assert (event.data["subscription_moved"], event.data["subscription_reason"]) == (False, "paid_by_another_admin")
    # and the team keeps its seats and everyone their tier
    assert Team.objects.get(pk=team.pk).subscribed_seats == 5
    assert (_tier(user), _tier(second), _tier(third)) == ("team", "team", "team")


def _customer_state(sub: dict, fake_stripe) -> tuple:
    from djstripe.models import Customer

    customer = Customer.objects.get(id=sub["customer"])
    in_stripe = fake_stripe.objects["customers"][sub["customer"]]
    return customer.subscriber_id, customer.email, in_stripe["email"], in_stripe.get("metadata")


def _nothing_moved(team: Team, owner: User, successor: User, sub: dict, fake_stripe, *, customer_before: tuple) -> None:
    from apps.core.audit import AuditAction
    from apps.core.models import AuditEvent

    assert Membership.objects.get(user=owner).role == TeamRole.OWNER
    assert Membership.objects.get(user=successor).role == TeamRole.MEMBER
    assert _customer_state(sub, fake_stripe) == customer_before
    assert customer_before[0] == owner.pk
    assert not AuditEvent.objects.filter(action=AuditAction.TEAM_OWNERSHIP_TRANSFERRED).exists()
    assert (_tier(owner), _tier(successor)) == ("team", "team")


def test_a_stripe_error_during_a_transfer_rolls_everything_back(paid_team, user, make_user, fake_stripe):
    # given a paid team and a member with no billing of their own, and Stripe failing the next call
    team, sub = paid_team
    successor = make_user("next@agency.example", email_verified=True)
    _join(team, user, successor)
    customer_before = _customer_state(sub, fake_stripe)
    fake_stripe.fail_next = 500

    # when the owner hands the team over
    response = _transfer(team, user, successor)

    # then the caller gets the stable payment-provider error, and nothing moved: roles, customer, audit
    assert response.status_code == 502, response.content
    assert response.json()["code"] == "stripe_unavailable"
    _nothing_moved(team, user, successor, sub, fake_stripe, customer_before=customer_before)


def test_a_stripe_error_during_a_transfer_in_the_admin_shows_an_error_and_rolls_back(
    paid_team, user, make_user, fake_stripe
):
    # given a paid team, a member with no billing, and Stripe failing the next call
    team, sub = paid_team
    successor = make_user("next@agency.example", email_verified=True)
    _join(team, user, successor)
    customer_before = _customer_state(sub, fake_stripe)
    fake_stripe.fail_next = 500

    # when staff make the member the owner
    response = _staff_make_owner(make_user, Membership.objects.get(user=successor))

    # then staff see why, not a server error, and nothing moved
    assert response.status_code == 200
    errors = [str(m) for m in response.context["messages"] if m.level_tag == "error"]
    assert errors == ["The payment provider could not complete the request. (stripe_unavailable)"]
    _nothing_moved(team, user, successor, sub, fake_stripe, customer_before=customer_before)
