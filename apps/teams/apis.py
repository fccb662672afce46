"""Team endpoints under /api/v1/teams (thin: selectors read, services write)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import User
from apps.core.pagination import LIST_HEADERS_DESCRIPTION, PagePagination
from apps.core.schema import ErrorSerializer

from .domains import domain_claim, domain_remove, domain_verify_dns
from .identity_provider import identity_provider_get, identity_provider_remove, identity_provider_set
from .invitations import invitation_accept, invitation_accept_by_token, invitation_create, invitation_revoke
from .models import Membership, Team, TeamIdentityProvider, TeamRole
from .selectors import (
    invitations_for_user,
    membership_for_user,
    membership_in_team,
    require_managing_role,
    seat_usage,
    team_invitations_pending,
    team_members,
    team_not_found,
)
from .services import member_remove, member_role_set, team_create, team_dissolve, team_update

CONFLICT = "Refused: see `code` (`already_in_team`, `no_free_seat`, `seats_in_use`, `owner_must_transfer`…)."
LIST_HEADERS = [
    OpenApiParameter("X-Total-Count", int, OpenApiParameter.HEADER, response=[200], description="Members."),
    OpenApiParameter("X-Page", int, OpenApiParameter.HEADER, response=[200]),
    OpenApiParameter("X-Per-Page", int, OpenApiParameter.HEADER, response=[200]),
    OpenApiParameter("Link", str, OpenApiParameter.HEADER, response=[200], description='rel="next" / "prev" links.'),
]
INVITABLE_ROLES = [TeamRole.ADMIN, TeamRole.MEMBER]


class TeamSerializer(serializers.Serializer):
    class Meta:
        ref_name = "Team"

    id = serializers.UUIDField()
    name = serializers.CharField()
    seats = serializers.IntegerField()
    seats_used = serializers.IntegerField(help_text="Members plus the seats pending invitations hold.")
    members = serializers.IntegerField()
    pending_invitations = serializers.IntegerField()
    over_seats = serializers.BooleanField(help_text="More members than seats: invitations are refused.")
    role = serializers.ChoiceField(choices=TeamRole.choices, help_text="The caller's role.")
    enforce_sso = serializers.BooleanField()
    dissolving = serializers.BooleanField(help_text="The owner deleted it; it ends with its paid period.")


def _caller(request: Request) -> User:
    """The signed-in caller (every view here requires authentication)."""
    return cast(User, request.user)


def team_data(team: Team, *, role: str) -> dict[str, Any]:
    usage = seat_usage(team=team)
    return {
        "id": team.pk,
        "name": team.name,
        "seats": usage.seats,
        "seats_used": usage.used,
        "members": usage.members,
        "pending_invitations": usage.pending_invitations,
        "over_seats": usage.over_seats,
        "role": role,
        "enforce_sso": team.enforce_sso,
        "dissolving": team.dissolving_at is not None,
    }


class TeamCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)

    @extend_schema(
        request=InputSerializer,
        responses={201: TeamSerializer, 409: OpenApiResponse(ErrorSerializer, "Already in a team (already_in_team).")},
        operation_id="teams_create",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        team = team_create(user=_caller(request), name=serializer.validated_data["name"])
        return Response(TeamSerializer(team_data(team, role=TeamRole.OWNER)).data, status=status.HTTP_201_CREATED)


class TeamCurrentApi(APIView):
    @extend_schema(
        responses={200: TeamSerializer, 404: OpenApiResponse(ErrorSerializer, "Not in a team (team_not_found).")},
        operation_id="teams_current",
    )
    def get(self, request: Request) -> Response:
        membership = membership_for_user(user=_caller(request))
        if membership is None:
            raise team_not_found()
        return Response(TeamSerializer(team_data(membership.team, role=membership.role)).data)


class TeamDetailApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False)
        seats = serializers.IntegerField(min_value=1, max_value=1000, required=False)
        enforce_sso = serializers.BooleanField(
            required=False, help_text="Members sign in only by SSO; switching it on ends their sessions."
        )

    @extend_schema(
        request=InputSerializer,
        responses={200: TeamSerializer, 409: OpenApiResponse(ErrorSerializer, CONFLICT)},
        operation_id="teams_update",
        description="Rename the team, change its paid seats (through Stripe, prorated), or enforce SSO; "
        "owner or admin.",
    )
    def patch(self, request: Request, team_id: uuid.UUID) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        team = team_update(team_id=team_id, actor=_caller(request), **serializer.validated_data)
        membership = membership_in_team(user=_caller(request), team_id=team_id)
        return Response(TeamSerializer(team_data(team, role=membership.role)).data)

    @extend_schema(
        responses={204: None, 409: OpenApiResponse(ErrorSerializer, CONFLICT)},
        operation_id="teams_delete",
        description="The owner deletes the team: its subscription ends at the end of the paid period, "
        "when members fall back to their own plans.",
    )
    def delete(self, request: Request, team_id: uuid.UUID) -> Response:
        team_dissolve(team_id=team_id, actor=_caller(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberSerializer(serializers.Serializer):
    class Meta:
        ref_name = "TeamMember"

    user_id = serializers.UUIDField()
    email = serializers.EmailField(source="user.email")
    role = serializers.ChoiceField(choices=TeamRole.choices)
    joined_at = serializers.DateTimeField(source="created_at")


class TeamMemberListApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("page", int), OpenApiParameter("limit", int), *LIST_HEADERS],
        responses={200: OpenApiResponse(MemberSerializer(many=True), description=LIST_HEADERS_DESCRIPTION)},
        operation_id="teams_members_list",
    )
    def get(self, request: Request, team_id: uuid.UUID) -> Response:
        membership = membership_in_team(user=_caller(request), team_id=team_id)
        paginator = PagePagination()
        page = paginator.paginate_queryset(team_members(team=membership.team), request, view=self)
        return paginator.get_list_response(list(MemberSerializer(page, many=True).data))


class TeamMemberDetailApi(APIView):
    class InputSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=TeamRole.choices, help_text="`owner` hands ownership over.")

    @extend_schema(
        request=InputSerializer,
        responses={200: MemberSerializer, 409: OpenApiResponse(ErrorSerializer, CONFLICT)},
        operation_id="teams_members_update",
    )
    def patch(self, request: Request, team_id: uuid.UUID, user_id: uuid.UUID) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership: Membership = member_role_set(
            team_id=team_id, actor=_caller(request), user_id=user_id, role=serializer.validated_data["role"]
        )
        return Response(MemberSerializer(membership).data)

    @extend_schema(
        responses={204: None, 409: OpenApiResponse(ErrorSerializer, CONFLICT)},
        operation_id="teams_members_remove",
        description="An owner or admin removes a member; a member leaves with their own id.",
    )
    def delete(self, request: Request, team_id: uuid.UUID, user_id: uuid.UUID) -> Response:
        member_remove(team_id=team_id, actor=_caller(request), user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationSerializer(serializers.Serializer):
    class Meta:
        ref_name = "TeamInvitation"

    id = serializers.UUIDField()
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=TeamRole.choices)
    expires_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()


class TeamInvitationListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        role = serializers.ChoiceField(choices=TeamRole.choices, default=TeamRole.MEMBER, help_text="admin or member.")

        def validate_role(self, value: str) -> str:
            if value not in INVITABLE_ROLES:
                raise serializers.ValidationError("Invite as admin or member; ownership is handed over, not invited.")
            return value

    @extend_schema(responses={200: InvitationSerializer(many=True)}, operation_id="teams_invitations_list")
    def get(self, request: Request, team_id: uuid.UUID) -> Response:
        membership = membership_in_team(user=_caller(request), team_id=team_id)
        require_managing_role(membership)
        return Response(InvitationSerializer(team_invitations_pending(team=membership.team), many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: InvitationSerializer, 409: OpenApiResponse(ErrorSerializer, CONFLICT)},
        operation_id="teams_invitations_create",
        description="Invite an address (e-mailed with accept links); the invitation holds a seat for 7 days.",
    )
    def post(self, request: Request, team_id: uuid.UUID) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = invitation_create(team_id=team_id, actor=_caller(request), **serializer.validated_data)
        return Response(InvitationSerializer(issued.invitation).data, status=status.HTTP_201_CREATED)


class TeamInvitationDetailApi(APIView):
    @extend_schema(responses={204: None}, operation_id="teams_invitations_revoke")
    def delete(self, request: Request, team_id: uuid.UUID, invitation_id: uuid.UUID) -> Response:
        invitation_revoke(team_id=team_id, actor=_caller(request), invitation_id=invitation_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MyInvitationSerializer(InvitationSerializer):
    class Meta:
        ref_name = "TeamInvitationReceived"

    class TeamRefSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TeamRef"

        id = serializers.UUIDField()
        name = serializers.CharField()

    team = TeamRefSerializer()


class MyInvitationListApi(APIView):
    @extend_schema(responses={200: MyInvitationSerializer(many=True)}, operation_id="teams_invitations_received")
    def get(self, request: Request) -> Response:
        """Pending invitations addressed to the caller's verified e-mail addresses."""
        return Response(MyInvitationSerializer(invitations_for_user(user=_caller(request)), many=True).data)


def _joined(membership: Membership) -> Response:
    membership.refresh_from_db()
    return Response(TeamSerializer(team_data(membership.team, role=membership.role)).data)


ACCEPT_RESPONSES = {
    200: TeamSerializer,
    403: OpenApiResponse(ErrorSerializer, "The invited address is not verified (email_not_verified)."),
    409: OpenApiResponse(ErrorSerializer, "`no_free_seat`, `already_in_team`, `invitation_expired`…"),
}


class InvitationAcceptApi(APIView):
    @extend_schema(request=None, responses=ACCEPT_RESPONSES, operation_id="teams_invitations_accept")
    def post(self, request: Request, invitation_id: uuid.UUID) -> Response:
        membership = invitation_accept(invitation_id=invitation_id, user=_caller(request))
        return _joined(membership)


class InvitationAcceptByTokenApi(APIView):
    class InputSerializer(serializers.Serializer):
        token = serializers.CharField(max_length=200)

    @extend_schema(request=InputSerializer, responses=ACCEPT_RESPONSES, operation_id="teams_invitations_accept_token")
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = invitation_accept_by_token(token=serializer.validated_data["token"], user=_caller(request))
        return _joined(membership)


class DomainSerializer(serializers.Serializer):
    class Meta:
        ref_name = "TeamDomain"

    id = serializers.UUIDField()
    domain = serializers.CharField()
    txt_record = serializers.CharField(help_text="Publish this TXT record at the domain to prove it.")
    verified = serializers.BooleanField(source="is_verified")
    verified_by = serializers.CharField(help_text="`dns` or `staff`; empty while unproven.")
    verified_at = serializers.DateTimeField(allow_null=True)


class TeamDomainListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        domain = serializers.CharField(max_length=253)

    @extend_schema(responses={200: DomainSerializer(many=True)}, operation_id="teams_domains_list")
    def get(self, request: Request, team_id: uuid.UUID) -> Response:
        membership = membership_in_team(user=_caller(request), team_id=team_id)
        require_managing_role(membership)
        return Response(DomainSerializer(membership.team.domains.all(), many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: DomainSerializer, 409: OpenApiResponse(ErrorSerializer, "Claimed by a team (domain_taken).")},
        operation_id="teams_domains_claim",
        description="Claim an e-mail domain for the team's SSO; prove it with the returned TXT record.",
    )
    def post(self, request: Request, team_id: uuid.UUID) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row = domain_claim(team_id=team_id, actor=_caller(request), domain=serializer.validated_data["domain"])
        return Response(DomainSerializer(row).data, status=status.HTTP_201_CREATED)


class TeamDomainDetailApi(APIView):
    @extend_schema(responses={204: None}, operation_id="teams_domains_remove")
    def delete(self, request: Request, team_id: uuid.UUID, domain_id: uuid.UUID) -> Response:
        domain_remove(team_id=team_id, actor=_caller(request), domain_id=domain_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamDomainVerifyApi(APIView):
    @extend_schema(
        request=None,
        responses={200: DomainSerializer, 409: OpenApiResponse(ErrorSerializer, "No TXT record yet.")},
        operation_id="teams_domains_verify",
    )
    def post(self, request: Request, team_id: uuid.UUID, domain_id: uuid.UUID) -> Response:
        row = domain_verify_dns(team_id=team_id, actor=_caller(request), domain_id=domain_id)
        return Response(DomainSerializer(row).data)


class IdentityProviderSerializer(serializers.Serializer):
    class Meta:
        ref_name = "TeamIdentityProvider"

    provider_id = serializers.CharField(help_text="The id sign-in uses for this provider (`team-<team id>`).")
    issuer = serializers.CharField()
    client_id = serializers.CharField()
    has_secret = serializers.SerializerMethodField(help_text="The secret is stored encrypted and never returned.")
    callback_url = serializers.SerializerMethodField(help_text="Register this redirect URI at the provider.")
    updated_at = serializers.DateTimeField()

    def get_has_secret(self, row: TeamIdentityProvider) -> bool:
        return bool(row.secret_encrypted)

    def get_callback_url(self, row: TeamIdentityProvider) -> str:
        path = reverse("openid_connect_callback", kwargs={"provider_id": row.provider_id})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class TeamIdentityProviderApi(APIView):
    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TeamIdentityProviderInput"

        issuer = serializers.CharField(max_length=500, help_text="The provider's https issuer URL.")
        client_id = serializers.CharField(max_length=255)
        secret = serializers.CharField(
            max_length=2000,
            required=False,
            write_only=True,
            help_text="Required the first time; left out, the stored secret is kept.",
        )

    @extend_schema(
        responses={200: IdentityProviderSerializer, 404: OpenApiResponse(ErrorSerializer, "None registered.")},
        operation_id="teams_identity_provider_get",
    )
    def get(self, request: Request, team_id: uuid.UUID) -> Response:
        row = identity_provider_get(team_id=team_id, actor=_caller(request))
        return Response(IdentityProviderSerializer(row, context={"request": request}).data)

    @extend_schema(
        request=InputSerializer,
        responses={
            200: IdentityProviderSerializer,
            400: OpenApiResponse(
                ErrorSerializer, "`issuer_invalid`, `issuer_not_public`, `identity_provider_secret_required`…"
            ),
        },
        operation_id="teams_identity_provider_set",
        description="Register (or replace) the team's own OpenID Connect provider. Signing in through it "
        "with an address in one of the team's proven domains joins the team.",
    )
    def put(self, request: Request, team_id: uuid.UUID) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row = identity_provider_set(team_id=team_id, actor=_caller(request), **serializer.validated_data)
        return Response(IdentityProviderSerializer(row, context={"request": request}).data)

    @extend_schema(responses={204: None}, operation_id="teams_identity_provider_remove")
    def delete(self, request: Request, team_id: uuid.UUID) -> Response:
        identity_provider_remove(team_id=team_id, actor=_caller(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
