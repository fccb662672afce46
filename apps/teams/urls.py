"""Team routes under /api/v1/teams."""

from django.urls import path

from .apis import (
    InvitationAcceptApi,
    InvitationAcceptByTokenApi,
    MyInvitationListApi,
    TeamCreateApi,
    TeamCurrentApi,
    TeamDetailApi,
    TeamDomainDetailApi,
    TeamDomainListCreateApi,
    TeamDomainVerifyApi,
    TeamIdentityProviderApi,
    TeamInvitationDetailApi,
    TeamInvitationListCreateApi,
    TeamMemberDetailApi,
    TeamMemberListApi,
)

urlpatterns = [
    path("teams", TeamCreateApi.as_view(), name="teams-create"),
    path("teams/current", TeamCurrentApi.as_view(), name="teams-current"),
    path("teams/invitations", MyInvitationListApi.as_view(), name="teams-invitations-received"),
    path("teams/invitations/accept", InvitationAcceptByTokenApi.as_view(), name="teams-invitations-accept-token"),
    path(
        "teams/invitations/<uuid:invitation_id>/accept", InvitationAcceptApi.as_view(), name="teams-invitations-accept"
    ),
    path("teams/<uuid:team_id>", TeamDetailApi.as_view(), name="teams-detail"),
    path("teams/<uuid:team_id>/members", TeamMemberListApi.as_view(), name="teams-members"),
    path("teams/<uuid:team_id>/members/<uuid:user_id>", TeamMemberDetailApi.as_view(), name="teams-member"),
    path("teams/<uuid:team_id>/invitations", TeamInvitationListCreateApi.as_view(), name="teams-invitations"),
    path(
        "teams/<uuid:team_id>/invitations/<uuid:invitation_id>",
        TeamInvitationDetailApi.as_view(),
        name="teams-invitation",
    ),
    path("teams/<uuid:team_id>/domains", TeamDomainListCreateApi.as_view(), name="teams-domains"),
    path("teams/<uuid:team_id>/domains/<uuid:domain_id>", TeamDomainDetailApi.as_view(), name="teams-domain"),
    path(
        "teams/<uuid:team_id>/domains/<uuid:domain_id>/verify",
        TeamDomainVerifyApi.as_view(),
        name="teams-domain-verify",
    ),
    path("teams/<uuid:team_id>/identity-provider", TeamIdentityProviderApi.as_view(), name="teams-identity-provider"),
]
